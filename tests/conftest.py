"""Shared fixtures: synthetic releases with ground truth, a loopback HTTP server."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from benchmarks.server import StaticServer
from benchmarks.verify import SPEC_COLORMAP, read_png  # noqa: F401  (re-exported for tests)


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


def tree(root: str) -> dict[str, bytes]:
    """Every file under root (relative path -> bytes), except an export's run.json (this
    run's wall time and runner: the one file meant to differ between runs)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            if f == "run.json" and os.path.samefile(dirpath, root):
                continue
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out
