"""Vector labels (bboxes / vector task types): geometry and the coco-instance / YOLO text.

Expected values are worked out by hand in each test (not taken from the code under test).
"""

from __future__ import annotations

import json

import pytest

from transforms import release
from transforms.formats import vector
from transforms.formats.sample_export import ExportSettings
from transforms.model import errors
from transforms.model.taxonomy import Taxonomy
from transforms.model.types import Annotation, Category, Sample
from transforms.release import ReleaseInfo
from transforms.summary import preview

CATS = (Category(1, "person", (255, 0, 0), True, (("id", 1), ("name", "person"))),
        Category(4, "car", (0, 0, 255), True, (("id", 4), ("name", "car"))))
SETTINGS = ExportSettings(formats=("coco-instance", "yolo"), labelset="ground-truth",
                          taxonomy=Taxonomy(CATS), vector=True)


def _sample(*anns: Annotation, index: int = 2) -> Sample:
    return Sample(index=index, position=5, uuid="u", name="a.jpg", image_url="a.jpg",
                  label_status="LABELED", annotations=anns, bitmap_url=None, stem="a")


def _box(x0, y0, x1, y1, cat=1, **kw) -> Annotation:
    return Annotation(1, cat, type="bbox", points=((x0, y0), (x1, y1)), **kw)


def test_reversed_corners_are_sorted_and_the_box_clipped_to_the_image():
    assert vector.clip_box(((150, 80), (110, 40)), 200, 100) == (110, 40, 150, 80)
    assert vector.clip_box(((-10, 90), (30, 120)), 200, 100) == (0, 90, 30, 100)
    assert vector.clip_box(((210, 10), (250, 20)), 200, 100) is None  # outside
    assert vector.clip_box(((5, 5), (5, 20)), 200, 100) is None  # zero width


def test_a_polygon_half_outside_is_clipped_to_the_image():
    # A 20x10 rectangle from x=-10 to 10: the inside half is 10x10.
    poly = vector.clip_polygon(((-10, 0), (10, 0), (10, 10), (-10, 10)), 50, 50)
    assert vector.polygon_area(poly) == pytest.approx(100.0)
    assert min(p[0] for p in poly) == 0 and max(p[0] for p in poly) == 10
    # A triangle crossing the bottom edge (y = 10): apex (5, 20) cut off.
    tri = vector.clip_polygon(((0, 0), (10, 0), (5, 20)), 10, 10)
    # Inside part: trapezoid with top width 10, bottom width 5, height 10 -> 75.
    assert vector.polygon_area(tri) == pytest.approx(75.0)
    assert vector.clip_polygon(((20, 20), (30, 20), (25, 30)), 10, 10) == []


def test_coco_bodies_and_yolo_lines_of_a_box_and_a_polygon():
    attrs = (("occluded", True),)
    s = _sample(_box(150, 80, 110, 40, cat=4, attributes=attrs),
                Annotation(2, 1, type="polygon", points=((10, 10), (30, 10), (30, 20))))
    out = vector.export_vector_sample(s, 200, 100, SETTINGS, ".jpg")
    box, poly = (json.loads(b) for b in out.coco_annotations)
    assert box == {"image_id": 3, "category_id": 4, "bbox": [110, 40, 40, 40], "area": 1600,
                   "iscrowd": 0, "attributes": {"occluded": True}}
    assert poly == {"image_id": 3, "category_id": 1, "bbox": [10, 10, 20, 10],
                    "segmentation": [[10, 10, 30, 10, 30, 20]], "area": 100, "iscrowd": 0}
    assert json.loads(out.coco_image) == {"id": 3, "file_name": "a.jpg", "height": 100,
                                          "width": 200}
    (path, data), = out.files
    assert path == "labels/a.txt"
    # car is position 1, person 0; centres and sizes over 200x100.
    assert data.decode() == ("1 0.650000 0.600000 0.200000 0.400000\n"
                             "0 0.100000 0.150000 0.100000 0.100000\n")
    assert out.num_instances == 2 and out.category_stats == ((1, 1, 100), (4, 1, 1600))
    assert out.warnings == []


def test_fractions_are_kept_to_a_thousandth_of_a_pixel():
    s = _sample(_box(10.5, 20.25, 50.5, 60.125))
    body = json.loads(vector.export_vector_sample(s, 200, 100, SETTINGS, ".jpg")
                      .coco_annotations[0])
    assert body["bbox"] == [10.5, 20.25, 40, 39.875] and body["area"] == 1595


def test_what_is_not_exported_is_counted_in_warnings():
    s = _sample(Annotation(1, 1, type="polyline", points=((0, 0), (5, 5))),
                Annotation(2, 1, type="point", points=((300, 3),)),  # outside
                Annotation(3, 1, type="point", points=((4, -1),)),  # outside
                _box(300, 300, 400, 400),  # outside a 200x100 image
                _box(1, 1, 5, 5, cat=99),  # unknown category
                Annotation(6, 1, type="cuboid", points=()))
    out = vector.export_vector_sample(s, 200, 100, SETTINGS, ".jpg")
    assert out.coco_annotations == [] and out.files[0][1] == b"" and out.num_instances == 0
    assert sorted(out.warnings) == [
        "annotations left out (a category not in the taxonomy): 1",
        "annotations left out (box with no area inside the image): 1",
        "annotations left out (cuboid annotations are not exported): 1",
        "annotations left out (point outside the image): 2",
        "annotations left out (polyline annotations are not exported): 1",
    ]


def test_rasterized_preview_map_fills_boxes_and_polygons():
    s = _sample(_box(2, 2, 6, 4), Annotation(2, 1, type="polygon",
                                             points=((10, 0), (19, 0), (19, 9), (10, 9))))
    ids = preview.rasterize(s, 20, 10)
    assert ids.shape == (10, 20) and ids[3, 4] == 1 and ids[5, 15] == 2 and ids[8, 2] == 0


def test_a_huge_image_is_rasterized_at_twice_the_thumbnail_size():
    # 20 000 x 10 000 pixels would be 800 MB of ids: drawn at scale 640 / 20 000 instead
    s = _sample(_box(2000, 2000, 6000, 4000), Annotation(2, 1, type="polygon", points=(
        (10000, 0), (19000, 0), (19000, 9000), (10000, 9000))))
    ids = preview.rasterize(s, 20_000, 10_000, max_pixels=10_000_000)
    assert ids.shape == (320, 640)
    assert ids[96, 128] == 1 and ids[160, 480] == 2 and ids[300, 50] == 0
    assert ids[70, 200] == 0 and ids[70, 330] == 2  # box ends at x 192, polygon starts at 320


def _info(task="bboxes") -> ReleaseInfo:
    return ReleaseInfo("r", "d", "o", task, "v2", ("ground-truth",), "ground-truth", CATS,
                       "dataset.samples.item", 1)


def _raw(anns):
    return {"uuid": "u", "name": "a.jpg", "attributes": {"image": {"url": "a.jpg"}},
            "labels": {"ground-truth": {"label_status": "LABELED",
                                         "attributes": {"annotations": anns}}}}


def test_vector_annotations_are_parsed_with_type_and_points():
    s = release.parse_sample(_raw([{"id": 7, "category_id": 1, "type": "bbox",
                                    "points": [[1, 2], [3.5, 4]]},
                                   {"id": 7, "category_id": 4, "type": "polygon",
                                    "points": [[0, 0], [1, 0], [1, 1]]}]), 0, 0, _info())
    assert [(a.type, a.points) for a in s.annotations] == [
        ("bbox", ((1.0, 2.0), (3.5, 4.0))), ("polygon", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)))]


@pytest.mark.parametrize("ann, field", [
    ({"id": 1, "category_id": 1, "points": [[0, 0], [1, 1]]}, "annotations[0].type"),
    ({"id": 1, "category_id": 1, "type": "bbox", "points": "0,0"}, "annotations[0].points"),
    ({"id": 1, "category_id": 1, "type": "bbox", "points": [[0, 0], [1, "x"]]},
     "annotations[0].points[1]"),
    ({"id": 1, "category_id": 1, "type": "bbox", "points": [[0, 0], [1, float("nan")]]},
     "annotations[0].points[1]"),
])
def test_malformed_vector_annotations_name_the_field(ann, field):
    with pytest.raises(errors.SampleSchemaError, match=field.replace("[", r"\[").replace("]", r"\]")):
        release.parse_sample(_raw([ann]), 0, 0, _info())
