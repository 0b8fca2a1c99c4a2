"""Shared fixtures: synthetic releases with ground truth, a loopback HTTP server."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from benchmarks.server import StaticServer

# The SDK's colour map as printed in the spec (§4.0.3), written out independently of the code.
SPEC_COLORMAP = [
    (0, 113, 188), (216, 82, 24), (236, 176, 31), (125, 46, 141), (118, 171, 47),
    (76, 189, 237), (161, 19, 46), (255, 0, 0), (255, 127, 0), (190, 190, 0), (0, 255, 0),
    (0, 0, 255), (170, 0, 255), (84, 84, 0), (84, 170, 0), (84, 255, 0), (170, 84, 0),
    (170, 170, 0), (170, 255, 0), (255, 84, 0), (255, 170, 0), (255, 255, 0), (0, 84, 127),
    (0, 170, 127), (0, 255, 127), (84, 0, 127), (84, 84, 127), (84, 170, 127),
    (84, 255, 127), (170, 0, 127), (170, 84, 127), (170, 170, 127), (170, 255, 127),
    (255, 0, 127), (255, 84, 127), (255, 170, 127),
]


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    with StaticServer(str(root)) as server:
        yield str(root), server.url


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def read_png(path: str) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def tree(root: str) -> dict[str, bytes]:
    """Every file under root (relative path -> bytes)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out
