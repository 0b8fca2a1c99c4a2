"""One-pass instance table: area, bbox and RLE of every id, checked against pycocotools."""

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from transforms.formats.instances import compact_labels, instance_table


def _reference(id_map, iid):
    mask = id_map == iid
    ys, xs = np.nonzero(mask)
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    bbox = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    return int(mask.sum()), bbox, rle["counts"].decode()


def test_spec_example_rle():
    # Spec §4.1.1: an 8x12 mask with rows 0-1, cols 0-2 has counts "026000X2".
    id_map = np.zeros((8, 12), np.uint32)
    id_map[0:2, 0:3] = 5
    t = instance_table(id_map)
    assert t.ids.tolist() == [5]
    assert t.rle_counts(0).tolist() == [0, 2, 6, 2, 6, 2, 78]
    assert t.rle(0) == {"size": [8, 12], "counts": "026000X2"}
    assert t.bbox_xywh(0) == [0, 0, 3, 2] and t.area[0] == 6


def test_single_pixel_bbox_is_half_open_like_regionprops():
    id_map = np.zeros((6, 8), np.uint32)
    id_map[3, 4] = 2  # spec §4.0.5: a single pixel at (x=4, y=3) gives [4, 3, 1, 1]
    assert instance_table(id_map).bbox_xywh(0) == [4, 3, 1, 1]


@pytest.mark.parametrize("seed", range(40))
def test_random_maps_match_pycocotools(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 40, 2)
    values = np.array([0, 1, 255, 256, 65535, 65536, 16_777_215], np.uint32)
    id_map = values[rng.integers(0, values.size, (h, w))]
    if seed % 2:  # blobs instead of noise: long runs that wrap across columns
        id_map = np.repeat(np.repeat(id_map[: max(1, h // 4), : max(1, w // 4)], 4, 0), 4, 1)[:h, :w]
    t = instance_table(id_map)
    present = sorted(set(id_map.ravel().tolist()) - {0})
    assert t.ids.tolist() == present
    for k, iid in enumerate(present):
        area, bbox, counts = _reference(id_map, iid)
        assert int(t.area[k]) == area
        assert t.bbox_xywh(k) == bbox
        assert t.rle(k)["counts"] == counts


def test_full_frame_and_empty_maps():
    full = np.full((5, 7), 3, np.uint32)
    t = instance_table(full)
    assert t.bbox_xywh(0) == [0, 0, 7, 5] and t.area[0] == 35
    assert t.rle(0)["counts"] == _reference(full, 3)[2]
    empty = instance_table(np.zeros((4, 4), np.uint32))
    assert len(empty) == 0 and empty.lookup(1) == -1


def test_run_wrapping_into_next_column_spans_full_height():
    id_map = np.zeros((4, 3), np.uint32)
    id_map[3, 0] = 1  # bottom of column 0 ...
    id_map[0, 1] = 1  # ... and top of column 1: one run in column-major order
    t = instance_table(id_map)
    assert t.bbox_xywh(0) == [0, 0, 2, 4]


def test_compact_labels_dense_and_sparse_paths_agree():
    id_map = np.array([[0, 5, 16_000_000], [5, 0, 7]], np.uint32)
    ids = np.array([5, 7, 16_000_000], np.uint32)
    comp = compact_labels(id_map, ids)
    assert comp.tolist() == [[0, 1, 3], [1, 0, 2]]
    small = np.array([[0, 5], [7, 5]], np.uint32)
    assert compact_labels(small, np.array([5, 7], np.uint32)).tolist() == [[0, 1], [2, 1]]
