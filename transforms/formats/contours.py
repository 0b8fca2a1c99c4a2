"""Polygons of a bitmap instance: COCO polygons and YOLO (Ultralytics) segments.

Contract:
  * Pure numpy, no OpenCV: the tracer is this module's own (a crack-edge tracer), so the text
    written is the same on every machine and no 50 MB binary wheel is needed.
  * Connectivity: foreground pixels that touch by an edge *or a corner* (8-connectivity, as
    `cv2.findContours` and so Ultralytics' `masks2segments`) form one connected component;
    background is 4-connected, so a hole is a 4-connected background region the component
    encloses. Every component gets one outer contour; its holes are kept (see below).
  * Loops are traced on the cracks between pixels (corner coordinates are integers, pixel
    (c, r) covers [c, c+1) x [r, r+1)), foreground on the right in image coordinates (x right,
    y down): outer loops have positive shoelace area, holes negative, and the areas add up to
    the pixel count exactly. A loop starts at its smallest (y, x) corner; loops are listed by
    that corner, so the output does not depend on anything but the mask.
  * Holes are spliced into the loop around them by a zero-width bridge (walked out and back)
    at the loops' nearest vertices: the "keyhole" polygon Ultralytics' maintainers point users
    to for donuts (Ultralytics issues #1106, #4426, #19153) and the way its
    `merge_multi_segment` joins the pieces of one object. Even-odd rasterisers (pycocotools
    `frPyObjects`, OpenCV `fillPoly` as Ultralytics' `polygon2mask` uses it) then leave the
    hole empty, and an island inside a hole is filled again.
  * `coco_polygons`: one polygon per connected component (holes spliced in), as COCO lists the
    parts of one object; vertices are crack corners, so pycocotools rasterises every polygon
    back to exactly the mask (tested: the bridges cancel in its even-odd scanline fill).
  * `yolo_points`: one polygon per instance, Ultralytics' segment line: components are
    chained in list order by bridges between their nearest vertices (merge_multi_segment).
    Vertices are boundary *pixels* (what `cv2.findContours` returns), because Ultralytics
    fills the polygon with its edges (`cv2.fillPoly` on int32 coordinates): corner
    coordinates would grow the mask by one pixel on the right and bottom. A vertex for pixel c
    is written at c + 0.25 (before normalising), so a reader that truncates (Ultralytics'
    `polygon2mask`) and one that rounds (supervision) both land on pixel c despite the six
    decimals. Filled that way, no pixel of the mask is lost; the only pixels added are those
    of bridges crossing background (between components, or a hole's bridge over another
    hole: 1-pixel lines, as with merge_multi_segment). A component without holes fills back
    exactly.
    At least 3 points (a 1- or 2-pixel instance repeats its last point), so Ultralytics never
    reads the line as a box.
  * Collinear vertices are dropped (lossless: edges are axis-aligned or 45 degree diagonals).
"""

from __future__ import annotations

import numpy as np

# Directions in image coordinates (y down): east, south, west, north.
_DX = np.array([1, 0, -1, 0], np.int64)
_DY = np.array([0, 1, 0, -1], np.int64)
_MAX_PAIRS = 1 << 22  # distance-matrix cells per nearest-vertex search (then subsampled)


class Loop:
    """One closed crack loop: corner points (N, 2) int64 (x, y) and its boundary pixels."""

    __slots__ = ("corners", "pixels", "area")

    def __init__(self, corners: np.ndarray, pixels: np.ndarray, area: int):
        self.corners = corners
        self.pixels = pixels
        self.area = area  # signed: > 0 outer, < 0 hole


def _runs(kind: np.ndarray):
    """(row, first column, last column, value) of runs of equal non-zero values per row."""
    flat = kind.reshape(-1)
    nz = flat != 0
    prev = np.empty_like(flat)
    prev[0] = 0
    prev[1:] = flat[:-1]
    nxt = np.empty_like(flat)
    nxt[-1] = 0
    nxt[:-1] = flat[1:]
    starts = np.flatnonzero(nz & (flat != prev))
    ends = np.flatnonzero(nz & (flat != nxt))
    w = kind.shape[1]
    return starts // w, starts % w, ends % w, flat[starts]


def _segments(mask: np.ndarray):
    """Maximal straight crack runs of a padded mask: start x, y, direction, length."""
    m = mask
    # Horizontal cracks on line r, between pixel rows r-1 and r, cell c: 1 east (foreground
    # below), 2 west (foreground above).
    below = m[1:, :]
    above = m[:-1, :]
    hk = np.where(below & ~above, 1, np.where(above & ~below, 2, 0)).astype(np.int8)
    r, c0, c1, k = _runs(hk)
    r = r + 1
    east = k == 1
    hx = np.where(east, c0, c1 + 1)
    hd = np.where(east, 0, 2)
    hl = c1 - c0 + 1
    # Vertical cracks on line c, between pixel columns c-1 and c, cell r: 1 north (foreground
    # on the right), 2 south (foreground on the left). Runs along columns: transpose.
    right = m[:, 1:]
    left = m[:, :-1]
    vk = np.where(right & ~left, 1, np.where(left & ~right, 2, 0)).astype(np.int8).T
    c, r0, r1, k = _runs(np.ascontiguousarray(vk))
    c = c + 1
    north = k == 1
    vy = np.where(north, r1 + 1, r0)
    vd = np.where(north, 3, 1)
    vl = r1 - r0 + 1
    x = np.concatenate((hx, c)).astype(np.int64)
    y = np.concatenate((r, vy)).astype(np.int64)
    d = np.concatenate((hd, vd)).astype(np.int64)
    length = np.concatenate((hl, vl)).astype(np.int64)
    return x, y, d, length


def _cycles(succ: np.ndarray):
    """(leader, rank) per element of a permutation: leader = smallest index of its cycle,
    rank = steps from the leader along the cycle."""
    n = succ.size
    idx = np.arange(n)
    leader = idx.copy()
    p = succ.copy()
    steps = 1
    while steps < n:
        leader = np.minimum(leader, leader[p])
        p = p[p]
        steps *= 2
    # List ranking (Wyllie): cut every cycle before its leader (the tail points at itself)
    # and count the steps to the tail.
    nxt = succ.copy()
    tail = nxt == leader
    nxt[tail] = idx[tail]
    dist = np.where(tail, 0, 1)
    steps = 1
    while steps < n:
        dist = dist + dist[nxt]
        nxt = nxt[nxt]
        steps *= 2
    # dist = steps from the element to the last one of its cycle; rank counts from the leader.
    length = np.bincount(leader, minlength=n)
    return leader, length[leader] - 1 - dist


def trace(mask: np.ndarray) -> list[Loop]:
    """Every crack loop of a 2-D boolean mask (see the contract), in (y, x) order of start."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    if not mask.any():
        return []
    m = np.pad(mask, 1)
    x, y, d, length = _segments(m)
    width = m.shape[1] + 1
    skey = y * width + x
    ex = x + _DX[d] * length
    ey = y + _DY[d] * length
    ekey = ey * width + ex
    order = np.lexsort((d, skey))  # by start point, then direction: deterministic
    x, y, d, length, skey, ekey = (a[order] for a in (x, y, d, length, skey, ekey))
    lo = np.searchsorted(skey, ekey, "left")
    hi = np.searchsorted(skey, ekey, "right")
    succ = lo.copy()
    two = np.flatnonzero(hi - lo == 2)  # a saddle corner: turn left (8-connected foreground)
    if two.size:
        want = (d[two] - 1) % 4
        succ[two] = np.where(d[lo[two]] == want, lo[two], lo[two] + 1)
    leader, rank = _cycles(succ)
    seq = np.lexsort((rank, leader))
    leaders, first = np.unique(leader[seq], return_index=True)
    bounds = np.append(first, seq.size)
    # Boundary pixel of each run's first and last unit crack (padded coordinates).
    fpx = np.select([d == 0, d == 1, d == 2], [x, x - 1, x - 1], x)
    fpy = np.select([d == 0, d == 1, d == 2], [y, y, y - 1], y - 1)
    lpx = np.select([d == 0, d == 1, d == 2], [x + length - 1, x - 1, x - length], x)
    lpy = np.select([d == 0, d == 1, d == 2], [y, y + length - 1, y - 1], y - length)
    loops = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        s = seq[a:b]
        cx, cy = x[s] - 1, y[s] - 1
        area = int((cx * np.roll(cy, -1) - np.roll(cx, -1) * cy).sum()) // 2
        corners = np.stack((cx, cy), axis=1)
        px = np.stack((fpx[s], lpx[s]), axis=1).reshape(-1) - 1
        py = np.stack((fpy[s], lpy[s]), axis=1).reshape(-1) - 1
        loops.append(Loop(corners, _simplify(np.stack((px, py), axis=1)), area))
    return loops


def _simplify(points: np.ndarray) -> np.ndarray:
    """Drops consecutive duplicates and middle points of straight stretches (cyclic)."""
    keep = np.any(points != np.roll(points, 1, axis=0), axis=1)
    if not keep.any():
        return points[:1]
    points = points[keep]
    if len(points) < 3:
        return points
    d1 = points - np.roll(points, 1, axis=0)
    d2 = np.roll(points, -1, axis=0) - points
    cross = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    dot = (d1 * d2).sum(axis=1)
    keep = ~((cross == 0) & (dot > 0))
    return points[keep] if keep.any() else points[:1]


def _contains(loop: Loop, px: float, py: float) -> bool:
    """Even-odd test of a point off every crack line against a crack loop."""
    c = loop.corners
    nx = np.roll(c, -1, axis=0)
    vertical = c[:, 0] == nx[:, 0]
    y0 = np.minimum(c[:, 1], nx[:, 1])
    y1 = np.maximum(c[:, 1], nx[:, 1])
    hits = vertical & (c[:, 0] > px) & (y0 < py) & (py < y1)
    return bool(np.count_nonzero(hits) % 2)


def components(loops: list[Loop]) -> list[tuple[Loop, list[Loop]]]:
    """(outer loop, its holes) per connected component, in the order of the outer loops."""
    outers = [lp for lp in loops if lp.area > 0]
    holes: dict[int, list[Loop]] = {id(o): [] for o in outers}
    for h in (lp for lp in loops if lp.area < 0):
        # The pixel on the foreground side of the hole's first crack belongs to the component
        # around it: the smallest outer loop containing that pixel's centre.
        (x0, y0), (x1, y1) = h.corners[0], h.corners[1]
        dx, dy = int(np.sign(x1 - x0)), int(np.sign(y1 - y0))
        px = x0 + 0.5 * dx - 0.5 * dy
        py = y0 + 0.5 * dy + 0.5 * dx
        best = None
        for o in outers:
            if (best is None or o.area < best.area) and _contains(o, px, py):
                best = o
        if best is not None:
            holes[id(best)].append(h)
    return [(o, holes[id(o)]) for o in outers]


def _nearest(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Indexes of the closest pair of vertices of a and b (ties: first in a, then b)."""
    sa = max(1, -(-a.shape[0] * b.shape[0] // _MAX_PAIRS))
    ia = np.arange(0, a.shape[0], sa)
    sb = max(1, -(-ia.size * b.shape[0] // _MAX_PAIRS))
    ib = np.arange(0, b.shape[0], sb)
    diff = a[ia, None, :] - b[None, ib, :]
    dist = (diff * diff).sum(-1)
    i, j = np.unravel_index(int(np.argmin(dist)), dist.shape)
    return int(ia[i]), int(ib[j])


def _splice(base: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
    """`base` with each part walked in at their nearest vertices (out and back)."""
    attach: dict[int, list[np.ndarray]] = {}
    for part in parts:
        i, j = _nearest(base, part)
        rolled = np.roll(part, -j, axis=0)
        attach.setdefault(i, []).append(np.concatenate((rolled, rolled[:1])))
    if not attach:
        return base
    pieces = []
    for i in range(base.shape[0]):
        pieces.append(base[i:i + 1])
        for walk in attach.get(i, ()):
            pieces.append(walk)
            pieces.append(base[i:i + 1])
    return np.concatenate(pieces)


def _chain(polys: list[np.ndarray]) -> np.ndarray:
    """One polygon through all `polys`: each is bridged to the next at their nearest vertices
    and the bridges are walked out and back (Ultralytics' merge_multi_segment)."""
    entry = [0]
    link = []
    for prev, cur in zip(polys[:-1], polys[1:]):
        i, j = _nearest(prev, cur)
        link.append(i)
        entry.append(j)
    head, tail = [], []
    for n, poly in enumerate(polys):
        walk = np.roll(poly, -entry[n], axis=0)
        if n:
            walk = np.concatenate((walk, walk[:1]))  # back to where the bridge arrived
        if n == len(polys) - 1:
            head.append(walk)
            break
        k = (link[n] - entry[n]) % poly.shape[0]
        head.append(walk[:k + 1])
        tail.append(walk[k:])
    return np.concatenate(head + tail[::-1])


def coco_polygons(mask: np.ndarray, x0: int = 0, y0: int = 0, comps=None) -> list[list[int]]:
    """COCO `segmentation` polygons of a mask (offset by x0, y0), see the contract.

    `comps`: `components(trace(mask))` when the caller has it already."""
    if comps is None:
        comps = components(trace(mask))
    out = []
    for outer, holes in comps:
        poly = _splice(outer.corners, [h.corners for h in holes])
        out.append((poly + (x0, y0)).reshape(-1).tolist())
    return out


def yolo_points(mask: np.ndarray, x0: int = 0, y0: int = 0, comps=None) -> np.ndarray:
    """The instance's one Ultralytics polygon as boundary pixel indexes (N >= 3, 2), int64."""
    if comps is None:
        comps = components(trace(mask))
    if not comps:
        return np.empty((0, 2), np.int64)
    polys = [_splice(outer.pixels, [h.pixels for h in holes]) for outer, holes in comps]
    poly = _chain(polys) + (x0, y0)
    if poly.shape[0] < 3:
        poly = np.concatenate([poly] + [poly[-1:]] * (3 - poly.shape[0]))
    return poly


def yolo_text(points: np.ndarray, width: int, height: int) -> str:
    """`x1 y1 x2 y2 ...` normalised, six decimals; pixel c is written at (c + 0.25) / size."""
    xs = (points[:, 0] + 0.25) / width
    ys = (points[:, 1] + 0.25) / height
    return " ".join(f"{x:.6f} {y:.6f}" for x, y in zip(xs.tolist(), ys.tolist()))
