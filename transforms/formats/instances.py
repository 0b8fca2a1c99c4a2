"""Every instance's area, bbox and COCO RLE from one pass over the id map.

Contract:
  * Input: (H, W) uint32 id map; 0 is background and never an instance.
  * The map is flattened in column-major (Fortran) order, the order COCO RLE uses, and cut
    into runs of equal ids. Each id's runs, in order, *are* its RLE: the gaps between them
    are its zero runs. So one pass gives area (sum of run lengths), bbox and RLE for every id
    at once; cost grows with pixels and boundary length, not with instances x pixels.
  * bbox = (x0, y0, x1, y1) inclusive pixel extents; COCO's [x, y, w, h] is
    [x0, y0, x1 - x0 + 1, y1 - y0 + 1] (the SDK's regionprops-based value).
  * RLE = pycocotools' compressed RLE of the full-image mask `id_map == id`, with `counts` a
    str: byte-identical to `pycocotools.mask.encode` (its C encoder is used for the string).
  * `ids` lists every non-zero id present (orphans included), ascending.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_utils


@dataclasses.dataclass(frozen=True)
class InstanceTable:
    height: int
    width: int
    ids: np.ndarray  # (K,) uint32, ascending
    area: np.ndarray  # (K,) int64
    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray  # inclusive
    y1: np.ndarray
    _run_first: np.ndarray  # (K+1,) offsets into the sorted run arrays
    _run_start: np.ndarray  # run start positions (column-major), grouped by id
    _run_end: np.ndarray  # exclusive ends

    def __len__(self) -> int:
        return int(self.ids.size)

    def lookup(self, instance_id: int) -> int:
        """Row of `instance_id`, or -1 when it has no pixels."""
        k = int(np.searchsorted(self.ids, instance_id))
        return k if k < self.ids.size and int(self.ids[k]) == instance_id else -1

    def bbox_xywh(self, k: int) -> list[int]:
        x0, y0 = int(self.x0[k]), int(self.y0[k])
        return [x0, y0, int(self.x1[k]) - x0 + 1, int(self.y1[k]) - y0 + 1]

    @functools.cached_property
    def _gaps_and_lengths(self) -> np.ndarray:
        """All runs' (zeros before, ones) pairs, interleaved, grouped by id (one pass)."""
        starts, ends = self._run_start, self._run_end
        prev_end = np.empty_like(ends)
        prev_end[:1] = 0
        prev_end[1:] = ends[:-1]
        prev_end[self._run_first[:-1]] = 0  # an id's first run counts zeros from pixel 0
        pairs = np.empty(2 * starts.size, np.uint32)
        pairs[0::2] = starts - prev_end
        pairs[1::2] = ends - starts
        return pairs

    def rle_counts(self, k: int) -> np.ndarray:
        """Uncompressed COCO RLE counts of instance row k (starts with a run of zeros)."""
        lo, hi = int(self._run_first[k]), int(self._run_first[k + 1])
        counts = self._gaps_and_lengths[2 * lo:2 * hi]
        tail = self.height * self.width - int(self._run_end[hi - 1])
        return np.append(counts, np.uint32(tail)) if tail else counts

    def rles(self, rows: Sequence[int]) -> list[dict[str, object]]:
        """Compressed RLEs {"size": [H, W], "counts": str} of several rows, one C call."""
        if not rows:
            return []
        h, w = self.height, self.width
        encoded = mask_utils.frPyObjects(
            [{"size": [h, w], "counts": self.rle_counts(k)} for k in rows], h, w)
        return [{"size": [h, w], "counts": e["counts"].decode("ascii")} for e in encoded]

    def rle(self, k: int) -> dict[str, object]:
        """Compressed RLE {"size": [H, W], "counts": str} of instance row k."""
        return self.rles([k])[0]


def instance_table(id_map: np.ndarray) -> InstanceTable:
    if id_map.ndim != 2:
        raise ValueError(f"id map must be 2-D, got shape {id_map.shape}")
    h, w = id_map.shape
    flat = np.ascontiguousarray(id_map.T).reshape(-1)  # column-major order
    n = flat.size
    if n == 0:
        edges = np.empty(0, np.int64)
    else:
        edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], edges)) if n else np.empty(0, np.int64)
    ends = np.concatenate((edges, [n])) if n else np.empty(0, np.int64)
    labels = flat[starts] if n else np.empty(0, np.uint32)
    keep = labels != 0
    starts, ends, labels = starts[keep], ends[keep], labels[keep]

    order = np.argsort(labels, kind="stable")  # runs of one id stay in position order
    starts, ends, labels = starts[order], ends[order], labels[order]
    ids, first = np.unique(labels, return_index=True)
    run_first = np.append(first, labels.size).astype(np.int64)
    if ids.size == 0:
        empty = np.empty(0, np.int64)
        return InstanceTable(h, w, ids.astype(np.uint32), empty, empty, empty, empty, empty,
                             run_first, starts, ends)

    last = ends - 1
    col0, row0 = np.divmod(starts, h)
    col1, row1 = np.divmod(last, h)
    same_col = col0 == col1
    # A run that wraps into the next column covers that column's top and the previous
    # column's bottom, so its rows span the full height.
    ymin = np.where(same_col, row0, 0)
    ymax = np.where(same_col, row1, h - 1)
    return InstanceTable(
        height=h,
        width=w,
        ids=ids.astype(np.uint32),
        area=np.add.reduceat(ends - starts, first).astype(np.int64),
        x0=np.minimum.reduceat(col0, first),
        y0=np.minimum.reduceat(ymin, first),
        x1=np.maximum.reduceat(col1, first),
        y1=np.maximum.reduceat(ymax, first),
        _run_first=run_first,
        _run_start=starts,
        _run_end=ends,
    )


def compact_labels(id_map: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(H, W) map of row numbers into `ids` plus one (0 = background), for LUT rendering.

    Every format's picture is then one gather `lut[compact]` with a (K+1)-entry table.
    """
    k = ids.size
    dtype = np.uint16 if k < (1 << 16) else np.uint32
    if k == 0:
        return np.zeros(id_map.shape, dtype)
    top = int(ids[-1])
    if top < (1 << 22):  # dense table: one gather, at most 16 MB
        lut = np.zeros(top + 1, dtype)
        lut[ids] = np.arange(1, k + 1, dtype=dtype)
        return np.take(lut, id_map)
    pos = np.searchsorted(ids, id_map)
    pos = np.minimum(pos, k - 1)
    hit = ids[pos] == id_map
    return np.where(hit, pos + 1, 0).astype(dtype)
