"""transforms.formats.contours: polygons read back by the rasterisers their users have.

COCO polygons are rasterised by pycocotools (what every COCO evaluator does with them);
YOLO polygons as Ultralytics' polygon2mask does (denormalise, int32, even-odd fillPoly with
the edges drawn), here with supervision's OpenCV-compatible fill (`sv.polygon_to_mask`), and
as supervision's reader does (rounding). Expected masks are drawn by the tests.
"""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from transforms.formats import contours

sv = pytest.importorskip("supervision")


def coco_raster(polys, h, w):
    if not polys:
        return np.zeros((h, w), bool)
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w))).astype(bool)


def yolo_raster(mask, reader="ultralytics"):
    """The instance's label line written and read back as text, then filled."""
    h, w = mask.shape
    text = contours.yolo_text(contours.yolo_points(mask), w, h)
    values = np.array(text.split(), np.float32).reshape(-1, 2) * np.array([w, h], np.float32)
    if reader == "supervision":
        values = np.round(values)
    return sv.polygon_to_mask(values, (w, h)).astype(bool)  # int32 cast + even-odd fillPoly


def draw(rows: list[str]) -> np.ndarray:
    return np.array([[c == "#" for c in r] for r in rows], bool)


DONUT = draw(["........",
              ".######.",
              ".#....#.",
              ".#....#.",
              ".######.",
              "........"])
ISLAND_IN_HOLE = draw(["#########",
                       "#.......#",
                       "#.#####.#",
                       "#.#...#.#",
                       "#.#.#.#.#",
                       "#.#...#.#",
                       "#.#####.#",
                       "#.......#",
                       "#########"])
DIAGONAL = draw(["#...",
                 ".#..",
                 "..#.",
                 "...#"])
TOUCHING_CORNERS = draw(["##..",
                         "##..",
                         "..##",
                         "..##"])
APART = draw(["##...",
              "##...",
              ".....",
              "...##"])
HLINE = draw(["......", ".####.", "......"])
VLINE = draw([".#.", ".#.", ".#.", ".#."])
PIXEL = draw(["...", ".#.", "..."])
BORDER = np.ones((5, 7), bool)
# A hole whose only opening is a corner: background is 4-connected, so it is a hole.
CORNER_HOLE = draw(["####",
                    "#..#",
                    "#..#",
                    "####"])
SHAPES = {"donut": DONUT, "island_in_hole": ISLAND_IN_HOLE, "diagonal": DIAGONAL,
          "touching_corners": TOUCHING_CORNERS, "apart": APART, "hline": HLINE, "vline": VLINE,
          "pixel": PIXEL, "border": BORDER, "corner_hole": CORNER_HOLE}


def random_masks(n, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(1, 24, 2))
        yield rng.random((h, w)) < rng.uniform(0.2, 0.9)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_coco_polygons_rasterise_to_exactly_the_mask(name):
    mask = SHAPES[name]
    assert np.array_equal(coco_raster(contours.coco_polygons(mask), *mask.shape), mask)


def test_coco_polygons_of_random_masks_are_exact_under_pycocotools():
    for mask in random_masks(300):
        assert np.array_equal(coco_raster(contours.coco_polygons(mask), *mask.shape), mask)


def test_loop_areas_add_up_to_the_pixels_outer_positive_holes_negative():
    loops = contours.trace(DONUT)
    assert sorted(lp.area for lp in loops) == [-8, 24]
    for mask in random_masks(100, seed=1):
        assert sum(lp.area for lp in contours.trace(mask)) == int(mask.sum())


def test_eight_connectivity_one_polygon_per_component():
    assert len(contours.coco_polygons(DIAGONAL)) == 1
    assert len(contours.coco_polygons(TOUCHING_CORNERS)) == 1
    assert len(contours.coco_polygons(APART)) == 2
    # Two nested rings and the pixel in the middle: three components.
    outer, inner, centre = contours.coco_polygons(ISLAND_IN_HOLE)
    # A ring's polygon carries its hole: rasterised alone it is the ring.
    expected = ISLAND_IN_HOLE.copy()
    expected[1:8, 1:8] = False
    assert np.array_equal(coco_raster([outer], 9, 9), expected)
    assert coco_raster([centre], 9, 9).sum() == 1


def test_polygon_coordinates_are_pixel_corners_with_the_instance_offset():
    (poly,) = contours.coco_polygons(draw(["##", "##"]), x0=10, y0=20)
    assert sorted(zip(poly[0::2], poly[1::2])) == [(10, 20), (10, 22), (12, 20), (12, 22)]


@pytest.mark.parametrize("reader", ["ultralytics", "supervision"])
@pytest.mark.parametrize("name", ["donut", "diagonal", "touching_corners", "hline", "vline",
                                  "pixel", "border", "corner_hole"])
def test_yolo_polygon_of_one_component_fills_back_exactly(name, reader):
    mask = SHAPES[name]
    assert np.array_equal(yolo_raster(mask, reader), mask)


def test_yolo_polygons_of_filled_components_are_exact():
    from scipy import ndimage

    for mask in random_masks(200, seed=2):
        labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
        if n == 0:
            continue
        biggest = 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
        one = ndimage.binary_fill_holes(labels == biggest)
        for reader in ("ultralytics", "supervision"):
            assert np.array_equal(yolo_raster(one, reader), one)


def test_yolo_bridges_between_components_add_at_most_their_own_pixels():
    # Several components and holes in one line: nothing of the mask is lost; what is added
    # lies on the 1-pixel bridges (no more pixels than the bridges' Chebyshev length).
    for name in ("apart", "island_in_hole"):
        mask = SHAPES[name]
        filled = yolo_raster(mask)
        assert not (mask & ~filled).any()
        pts = contours.yolo_points(mask)
        hops = np.abs(np.diff(np.concatenate((pts, pts[:1])), axis=0)).max(axis=1)
        bridge = int(hops[hops > 1].sum())  # ring/outline steps are 0 or 1 pixel apart
        assert int((filled & ~mask).sum()) <= bridge
    for mask in random_masks(200, seed=3):
        if mask.any():
            assert not (mask & ~yolo_raster(mask)).any()


def test_yolo_line_has_three_points_at_least_and_stays_in_the_unit_square():
    for name in ("pixel", "hline", "border"):
        mask = SHAPES[name]
        pts = contours.yolo_points(mask)
        assert pts.shape[0] >= 3
        values = [float(v) for v in contours.yolo_text(pts, *mask.shape[::-1]).split()]
        assert len(values) >= 6 and all(0.0 <= v <= 1.0 for v in values)


def test_output_depends_only_on_the_mask():
    mask = ISLAND_IN_HOLE
    shifted = np.zeros((20, 20), bool)
    shifted[5:14, 7:16] = mask
    assert contours.coco_polygons(shifted) == contours.coco_polygons(mask, x0=7, y0=5)
    assert np.array_equal(contours.yolo_points(shifted), contours.yolo_points(mask, 7, 5))
    assert contours.coco_polygons(np.zeros((3, 3), bool)) == []
    assert contours.yolo_points(np.zeros((3, 3), bool)).shape == (0, 2)
