"""What every check shares: the report of problems, PNG reading, extents."""

from __future__ import annotations

import io

import numpy as np

# Optional readers (the `validate` extra) and the check each one adds.
OPTIONAL = {
    "faster-coco-eval": "its stricter RLE decoder agrees on every coco-instance mask",
    "hotcoco": "coco-panoptic's PQ against itself is 100",
    "datasets": "hf/ loads with datasets.load_dataset into its splits",
    "webdataset": "webdataset.WebDataset iterates every record of the tars",
}
INSTALL_OPTIONAL = "pip install -e '.[validate]' (in the clone; make test installs them too)"


class Report:
    def __init__(self):
        self.problems: dict[str, list[str]] = {}
        self.summary: dict[str, str] = {}
        self.skipped: set[str] = set()  # OPTIONAL readers not installed whose check applied

    def skip(self, reader: str) -> None:
        self.skipped.add(reader)

    def fail(self, fmt: str, what: str) -> None:
        problems = self.problems.setdefault(fmt, [])
        if len(problems) < 50:
            problems.append(what)
        elif len(problems) == 50:
            problems.append("... (more problems not listed)")

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())


def read_png(path: str):
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return img.mode, np.asarray(img)


def extent(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def quiet(fn, *args, **kwargs):
    """pycocotools prints progress to stdout; keep the verdict readable."""
    import contextlib

    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)
