"""Per-sample export of every format from one id map (spec §7.3 fixture and edge cases)."""

import io
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from tests.conftest import SPEC_COLORMAP
from transforms import release
from transforms.formats.sample_export import ExportSettings, export_sample
from transforms.model.taxonomy import Taxonomy, rgb_id
from transforms.model.types import FORMATS, Annotation, Sample

CATEGORIES = [
    {"id": 1, "name": "thing", "color": [200, 10, 10], "has_instances": True},
    {"id": 2, "name": "other", "has_instances": True},
    {"id": 5, "name": "stuff", "color": [10, 200, 10], "has_instances": False},
]


def _taxonomy(cats=CATEGORIES, inc=0, keep_stuff=False):
    return Taxonomy(release.parse_categories(cats, "categories"), inc, keep_stuff)


def _sample(anns, index=0):
    return Sample(index=index, position=index, uuid="u", name="x.jpg", image_url=None,
                  label_status="LABELED",
                  annotations=tuple(Annotation(i, c) for i, c in anns), bitmap_url="b", stem="x")


def _files(out):
    return {path.split("/")[0]: data for path, data in out.files}


def _decode(data):
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img)


@pytest.fixture
def spec_fixture():
    """Spec §7.3: ids {1,2,3,7 orphan,257,300,70000}; annotations {1,2,3,4 empty,257,70000,300}."""
    id_map = np.zeros((8, 12), np.uint32)
    id_map[0:2, 0:3] = 1
    id_map[3, 4] = 2
    id_map[5:8, :] = 3
    id_map[0, 11] = 7
    id_map[2, 6:9] = 257
    id_map[3:5, 9] = 300
    id_map[4, 0:2] = 70000
    anns = [(1, 1), (2, 1), (3, 5), (4, 1), (257, 2), (70000, 2), (300, 1)]
    return id_map, _sample(anns)


def _export(id_map, sample, formats=FORMATS, tax=None, **kw):
    settings = ExportSettings(formats=tuple(formats), labelset="ground-truth",
                              taxonomy=tax or _taxonomy(), **kw)
    return export_sample(sample, id_map, settings, ".jpg")


def test_coco_annotations_follow_annotation_order_and_skip_empty(spec_fixture):
    id_map, sample = spec_fixture
    before = id_map.copy()
    out = _export(id_map, sample, ["coco-instance"])
    anns = [json.loads(a) for a in out.coco_annotations]
    # 4 has no pixels; 70000 kept (24-bit ids); 3 is of the stuff category 5: left out of
    # the instance formats by default, kept with --stuff_as_instances.
    expected_ids = [1, 2, 257, 70000, 300]
    assert [json.loads(a)["category_id"] for a in _export(
        id_map, sample, ["coco-instance"], tax=_taxonomy(keep_stuff=True)).coco_annotations
            ] == [1, 1, 5, 2, 2, 1]
    assert len(anns) == len(expected_ids)
    for ann, iid in zip(anns, expected_ids):
        mask = id_map == iid
        assert np.array_equal(mask_utils.decode(ann["segmentation"]).astype(bool), mask)
        assert ann["area"] == int(mask.sum()) and ann["iscrowd"] == 0 and "id" not in ann
    assert json.loads(out.coco_image) == {"id": 1, "file_name": "x.jpg", "height": 8, "width": 12}
    assert any("without pixels: 4" in w for w in out.warnings)
    assert any("without an annotation (left out): 7" in w for w in out.warnings)
    assert np.array_equal(id_map, before)  # the shared id map is never mutated


def test_gray16_leaves_out_only_the_instance_png_of_ids_above_65535(spec_fixture):
    """A format that cannot hold a sample's data leaves out that one file, not the sample."""
    id_map, sample = spec_fixture
    out = _export(id_map, sample, ["instance", "semantic", "coco-instance", "yolo"])
    assert sorted(fmt for fmt, _ in out.artifacts) == ["semantic", "yolo"]
    assert out.left_out == ["instance"]
    assert len(out.coco_annotations) == 5  # 70000 included (3, of a stuff category, not)
    assert ("instance PNG left out (ids above 65535 need --instance_png rgb24): ids 70000"
            in out.warnings)
    out = _export(id_map, sample, ["instance"], instance_png="rgb24")
    assert out.left_out == []
    rgb = _decode(_files(out)["instance"]).astype(np.uint32)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    assert np.array_equal(ids, np.where(id_map == 7, 0, id_map))  # orphan 7 left out


def test_semantic_and_colors_keyed_by_category_id(spec_fixture):
    id_map, sample = spec_fixture
    out = _export(id_map, sample, ["semantic", "semantic-color", "instance-color"])
    files = _files(out)
    sem = _decode(files["semantic"])
    cat = {1: 1, 2: 1, 3: 5, 257: 2, 70000: 2, 300: 1}
    expect = np.zeros(id_map.shape, np.uint8)
    for iid, c in cat.items():
        expect[id_map == iid] = c
    assert sem.dtype == np.uint8 and np.array_equal(sem, expect)
    sem_c = _decode(files["semantic-color"])
    # Category 5 is third in the list and has its own colour; category 2 has none: the SDK's
    # fallback is COLORMAP[position] = COLORMAP[1].
    assert (sem_c[expect == 5] == (10, 200, 10)).all()
    assert (sem_c[expect == 2] == SPEC_COLORMAP[1]).all()
    assert (sem_c[expect == 0] == 0).all()
    inst_c = _decode(files["instance-color"])
    for iid in cat:
        assert (inst_c[id_map == iid] == SPEC_COLORMAP[(iid - 1) % 36]).all()
    assert (inst_c[id_map == 7] == 0).all()
    # No uint8 wrap-around: 257 does not take id 1's colour (the SDK's bug #11).
    assert SPEC_COLORMAP[(257 - 1) % 36] != SPEC_COLORMAP[0]


def test_semantic_widens_to_16_bit_when_a_value_exceeds_255():
    cats = [{"id": 1, "name": "a"}, {"id": 300, "name": "b"}]
    id_map = np.array([[1, 2]], np.uint32)
    out = _export(id_map, _sample([(1, 1), (2, 300)]), ["semantic"], tax=_taxonomy(cats))
    sem = _decode(_files(out)["semantic"])
    assert sem.dtype == np.uint16 and sem.tolist() == [[1, 300]]


def test_id_increment_for_zero_based_taxonomies():
    cats = [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]
    id_map = np.array([[1, 2, 0]], np.uint32)
    out = _export(id_map, _sample([(1, 0), (2, 1)]), ["semantic"], tax=_taxonomy(cats, inc=1))
    assert _decode(_files(out)["semantic"]).tolist() == [[1, 2, 0]]


def test_panoptic_is_deterministic_unique_and_merges_stuff(spec_fixture):
    id_map, sample = spec_fixture
    sample = _sample([(1, 1), (2, 1), (3, 5), (257, 2), (300, 5), (70000, 1)])
    first = _export(id_map, sample, ["coco-panoptic"])
    second = _export(id_map, sample, ["coco-panoptic"])
    assert first.panoptic_annotation == second.panoptic_annotation
    assert _files(first) == _files(second)
    ann = json.loads(first.panoptic_annotation)
    segs = ann["segments_info"]
    ids = [s["id"] for s in segs]
    assert len(ids) == len(set(ids)) and 0 not in ids
    stuff = [s for s in segs if s["category_id"] == 5]
    assert len(stuff) == 1  # ids 3 and 300 merged into one segment
    merged = np.isin(id_map, [3, 300])
    assert stuff[0]["area"] == int(merged.sum())
    ys, xs = np.nonzero(merged)
    assert stuff[0]["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    assert stuff[0]["id"] == rgb_id((10, 200, 10))  # stuff segment = its category colour
    thing_ids = [s["id"] for s in segs if s["category_id"] == 1]
    assert thing_ids[0] == rgb_id((200, 10, 10))  # first instance: the category colour
    rgb = _decode(_files(first)["coco-panoptic"]).astype(np.uint32)
    seg_map = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    for s in segs:
        assert int((seg_map == s["id"]).sum()) == s["area"]
    assert (seg_map[id_map == 7] == 0).all()  # orphan is VOID


def test_panoptic_ids_stay_unique_with_many_instances_of_one_category():
    id_map = np.arange(1, 2001, dtype=np.uint32).reshape(40, 50)
    out = _export(id_map, _sample([(i, 1) for i in range(1, 2001)]), ["coco-panoptic"])
    segs = json.loads(out.panoptic_annotation)["segments_info"]
    ids = {s["id"] for s in segs}
    assert len(ids) == 2000 and rgb_id((10, 200, 10)) not in ids and 0 not in ids


def test_stuff_colours_are_unique_even_when_the_release_repeats_them():
    cats = [{"id": 1, "name": "a", "color": [0, 0, 0]}, {"id": 2, "name": "b", "color": [9, 9, 9]},
            {"id": 3, "name": "c", "color": [9, 9, 9]}]
    tax = _taxonomy(cats)
    colours = [tax.stuff_color(i) for i in (1, 2, 3)]
    assert len(set(colours)) == 3 and (0, 0, 0) not in colours
    assert colours[1] == (9, 9, 9)


def test_unknown_category_is_left_out_everywhere_with_a_warning():
    id_map = np.array([[1, 2]], np.uint32)
    out = _export(id_map, _sample([(1, 1), (2, 42)]))
    assert len(out.coco_annotations) == 1 and out.num_instances == 1
    assert any("category not in the taxonomy: 2" in w for w in out.warnings)
    assert _decode(_files(out)["semantic"]).tolist() == [[1, 0]]
    assert _decode(_files(out)["instance"]).tolist() == [[1, 0]]


def test_empty_label_gives_an_image_entry_and_empty_pictures():
    out = _export(np.zeros((3, 4), np.uint32), _sample([]))
    assert out.coco_annotations == [] and json.loads(out.panoptic_annotation)["segments_info"] == []
    files = _files(out)
    assert files["labels"] == b""  # YOLO: an empty label file marks a background image
    assert not _decode(files["semantic"]).any() and not _decode(files["coco-panoptic"]).any()


def test_yolo_lines_are_normalised_boxes_with_zero_based_classes():
    id_map = np.zeros((10, 20), np.uint32)
    id_map[2:6, 4:10] = 1  # x 4..9, y 2..5
    out = _export(id_map, _sample([(1, 2)]), ["yolo"])
    # category 2 is the second category -> class 1; box centre (7, 4), size 6 x 4
    assert _files(out)["labels"] == b"1 0.350000 0.400000 0.300000 0.400000\n"
    # Stuff (category 5, the third): no object in YOLO, unless kept as instances (class 2).
    assert _files(_export(id_map, _sample([(1, 5)]), ["yolo"]))["labels"] == b""
    out = _export(id_map, _sample([(1, 5)]), ["yolo"], tax=_taxonomy(keep_stuff=True))
    assert _files(out)["labels"] == b"2 0.350000 0.400000 0.300000 0.400000\n"


def test_annotation_text_is_the_canonical_json_of_its_fields():
    id_map = np.zeros((6, 9), np.uint32)
    id_map[1:4, 2:7] = 3
    sample = Sample(index=4, position=4, uuid="u", name="x.jpg", image_url=None, label_status="LABELED",
                    annotations=(Annotation(3, 1, (("occluded", True), ("note", 'a "q" \\ é')),),),
                    bitmap_url="b", stem="x")
    out = _export(id_map, sample, ["coco-instance"])
    text = out.coco_annotations[0]
    parsed = json.loads(text)
    assert text == json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))
    assert parsed["attributes"] == {"occluded": True, "note": 'a "q" \\ é'}
    assert parsed["image_id"] == 5 and parsed["bbox"] == [2, 1, 5, 3] and parsed["area"] == 15
