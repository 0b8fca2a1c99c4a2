"""Points as COCO keypoints, and image-vector-sequence releases (frames, names, ids).

Expected values are worked out by hand in each test (not taken from the code under test).
"""

from __future__ import annotations

import json

import pytest

from transforms import release
from transforms.formats import coco, sequence, vector
from transforms.formats.sample_export import ExportSettings, SampleOutput
from transforms.model import errors
from transforms.model.taxonomy import Taxonomy
from transforms.model.types import FORMATS_BY_TASK, Annotation, Category, Sample
from transforms.release import ReleaseInfo
from transforms.summary import preview

CATS = (Category(1, "nose", (255, 0, 0), True, (("id", 1), ("name", "nose"))),
        Category(4, "car", (0, 0, 255), True, (("id", 4), ("name", "car"))))
SETTINGS = ExportSettings(formats=("coco-instance", "yolo"), labelset="ground-truth",
                          taxonomy=Taxonomy(CATS), vector=True)


def _sample(*anns: Annotation, index: int = 2) -> Sample:
    return Sample(index=index, position=5, uuid="u", name="a.jpg", image_url="a.jpg",
                  label_status="LABELED", annotations=anns, bitmap_url=None, stem="a")


def _point(x, y, cat=1, **kw) -> Annotation:
    return Annotation(7, cat, type="point", points=((x, y),), **kw)


def test_a_point_is_one_visible_keypoint_of_its_category_scaled_by_the_image():
    s = _sample(_point(10.25, 20, attributes=(("side", "left"),)), _point(200, 100, cat=4))
    out = vector.export_vector_sample(s, 200, 100, SETTINGS, ".jpg")
    bodies = [json.loads(b) for b in out.coco_annotations]
    assert bodies == [
        {"image_id": 3, "category_id": 1, "bbox": [10.25, 20, 0, 0], "area": 20000,
         "iscrowd": 0, "keypoints": [10.25, 20, 2], "num_keypoints": 1,
         "attributes": {"side": "left"}},
        {"image_id": 3, "category_id": 4, "bbox": [200, 100, 0, 0], "area": 20000,  # on the edge
         "iscrowd": 0, "keypoints": [200, 100, 2], "num_keypoints": 1}]
    assert out.files == [("labels/a.txt", b"")] and out.num_instances == 2
    assert out.warnings == ["points left out of yolo (a point has no box): 2"]
    assert out.category_stats == ((1, 1, 0), (4, 1, 0))


def test_points_outside_the_image_or_malformed_are_left_out_and_counted():
    s = _sample(_point(-0.5, 3), _point(3, 100.5), Annotation(1, 1, type="point", points=()),
                Annotation(1, 1, type="point", points=((1, 1), (2, 2))))
    out = vector.export_vector_sample(s, 200, 100, SETTINGS, ".jpg")
    assert out.coco_annotations == [] and out.num_instances == 0
    assert sorted(out.warnings) == ["annotations left out (point outside the image): 2",
                                    "annotations left out (point with 0 points): 1",
                                    "annotations left out (point with 2 points): 1"]


def test_keypoints_only_export_has_no_yolo_warning():
    settings = ExportSettings(formats=("coco-instance",), labelset="gt",
                              taxonomy=Taxonomy(CATS), vector=True)
    out = vector.export_vector_sample(_sample(_point(1, 1)), 10, 10, settings, ".jpg")
    assert out.warnings == [] and len(out.coco_annotations) == 1 and out.files == []


def test_categories_name_their_one_keypoint_when_points_can_occur():
    plain = coco.instance_header("r", "d", Taxonomy(CATS))
    with_kp = coco.instance_header("r", "d", Taxonomy(CATS), keypoints=True)
    assert all("keypoints" not in c for c in plain["categories"])
    assert [(c["name"], c["keypoints"], c["skeleton"]) for c in with_kp["categories"]] == [
        ("nose", ["nose"], []), ("car", ["car"], [])]


def test_formats_per_task_type():
    assert FORMATS_BY_TASK["keypoints"] == ("coco-instance",)
    assert FORMATS_BY_TASK["image-vector-sequence"] == ("coco-instance", "coco-keypoints", "yolo")


def test_preview_draws_points():
    ids = preview.rasterize(_sample(_point(50, 50)), 100, 100)
    assert ids[50, 50] == 1 and ids[0, 0] == 0


# --------------------------------------------------------------------------- sequences


def _seq_info(labelset="ground-truth") -> ReleaseInfo:
    return ReleaseInfo("r", "d", "o", "image-vector-sequence", "v2", ("ground-truth", "preds"),
                       labelset, CATS, "dataset.samples.item", 3)


def _box(x0, y0, x1, y1, cat=1):
    return {"id": 1, "track_id": 1, "category_id": cat, "type": "bbox",
            "points": [[x0, y0], [x1, y1]]}


def _seq_raw(name, n_frames, label_frames, status="LABELED", preds=None):
    frames = [{"image": {"url": f"https://h/{name}/{j}.jpg"}, "name": None if j == 0 else f"f{j}"}
              for j in range(n_frames)]
    if n_frames > 1:
        del frames[1]["name"]  # missing name

    def label(fr):
        return {"label_status": status, "attributes": {"format_version": "0.2",
                                                       "frames": fr}}
    labels = {"ground-truth": label(label_frames)}
    labels["preds"] = label(preds) if preds is not None else None
    return {"uuid": f"u-{name}", "name": name, "attributes": {"frames": frames},
            "labels": labels}


def _decide(tmp_path, samples, labelset="ground-truth"):
    rel = {"name": "r", "dataset": {"name": "d", "owner": "o",
                                    "task_type": "image-vector-sequence",
                                    "task_attributes": {"categories": [
                                        {"id": 1, "name": "nose"}, {"id": 4, "name": "car"}]},
                                    "labelsets": [{"name": "ground-truth"}, {"name": "preds"}],
                                    "samples": samples}}
    path = tmp_path / "release.json"
    path.write_text(json.dumps(rel))
    with open(path, "rb") as f:
        info = release.release_info(release.scan_header(f),
                                    release.Selection(labelset=labelset))
    with open(path, "rb") as f:
        return list(release.decide(f, info, release.Selection(labelset=labelset)))


def test_sequence_frames_are_read_with_their_label_frames_and_dense_frame_ids(tmp_path):
    samples = [
        _seq_raw("a.mp4", 2, [{"annotations": [_box(1, 2, 3, 4)]}, {"annotations": []}]),
        {**_seq_raw("skipped", 4, []), "labels": {"ground-truth": None}},  # reserves nothing
        _seq_raw("b", 3, [{"annotations": []}, None,
                          {"annotations": [_box(5, 6, 7, 8, cat=4)]},
                          {"annotations": [_box(0, 0, 1, 1)]}]),  # a 4th label frame
    ]
    a, skipped, b = _decide(tmp_path, samples)
    assert skipped.sample is None and skipped.image_id == 2
    assert [f.image_url for f in a.sample.frames] == ["https://h/a.mp4/0.jpg",
                                                      "https://h/a.mp4/1.jpg"]
    assert [f.name for f in a.sample.frames] == [None, None]
    assert [f.name for f in b.sample.frames] == [None, None, "f2"]
    assert a.sample.frames[0].annotations[0].points == ((1, 2), (3, 4))
    assert [len(f.annotations) for f in b.sample.frames] == [0, 0, 1]
    assert b.sample.frames[2].annotations[0].category_id == 4
    assert b.sample.extra_label_frames == 1 and a.sample.extra_label_frames == 0
    # frame image ids: a -> 1, 2; b -> 3, 4, 5 (sample numbers stay 1 and 3)
    assert [a.sample.frame_image_id(j) for j in range(2)] == [1, 2]
    assert [b.sample.frame_image_id(j) for j in range(3)] == [3, 4, 5]
    assert (a.sample.image_id, b.sample.image_id) == (1, 3)


def test_sequence_labelset_is_honoured(tmp_path):
    samples = [_seq_raw("a", 1, [{"annotations": [_box(1, 1, 2, 2)]}],
                        preds=[{"annotations": [_box(5, 5, 9, 9, cat=4)]}])]
    (d,) = _decide(tmp_path, samples, labelset="preds")
    (ann,) = d.sample.frames[0].annotations
    assert ann.category_id == 4 and ann.points == ((5, 5), (9, 9))


@pytest.mark.parametrize("mutate, field", [
    (lambda r: r["attributes"].update(frames=None), "attributes.frames"),
    (lambda r: r["attributes"]["frames"].__setitem__(0, 3), "attributes.frames[0]"),
    (lambda r: r["attributes"]["frames"][0].update(name=5), "attributes.frames[0].name"),
    (lambda r: r["attributes"]["frames"][0].update(image={"url": 5}),
     "attributes.frames[0].image.url"),
    (lambda r: r["labels"]["ground-truth"]["attributes"].update(frames={}),
     "labels.ground-truth.attributes.frames"),
    (lambda r: r["labels"]["ground-truth"]["attributes"]["frames"][0].update(annotations=3),
     "labels.ground-truth.attributes.frames[0].annotations"),
])
def test_malformed_sequences_fail_alone_naming_the_field(tmp_path, mutate, field):
    bad = _seq_raw("bad", 2, [{"annotations": []}])
    mutate(bad)
    d_bad, d_ok = _decide(tmp_path, [bad, _seq_raw("ok", 2, [])])
    assert isinstance(d_bad.failed, errors.SampleSchemaError)
    assert d_bad.failed.reason.startswith(field + ":"), d_bad.failed.reason
    assert d_ok.sample.frame_image_id(0) == 1  # a failed sample reserves no frame ids


def test_frame_names_cannot_collide():
    # the suffix after the last "-" is the frame number: distinct (stem, frame) pairs give
    # distinct names, even for stems that look like frame names
    names = {sequence.frame_stem(stem, j) for stem in ("a", "a-00001", "a-1", "b/a")
             for j in (0, 1, 9, 99_999, 100_000)}
    assert len(names) == 20
    assert sequence.frame_stem("a", 0) == "a-00001"
    assert sequence.frame_stem("a", 100_000) == "a-100001"


def test_merged_frames_sum_counted_warnings_and_keep_frame_order():
    def out(image, bodies, warnings, stats):
        return SampleOutput([(f"labels/{image}.txt", b"x")], f'{{"id":{image}}}', bodies, None,
                            len(bodies), warnings, [("yolo", f"labels/{image}.txt")], stats)

    s = Sample(0, 0, "u", "n", None, "LABELED", (), None, stem="n", extra_label_frames=2)
    merged = sequence.merge_frames(s, [
        out(1, ["{}"], ["points left out of yolo (a point has no box): 1"], ((1, 1, 10),)),
        out(2, [], ["image size not checked: odd"], ()),
        out(3, ["{}", "{}"], ["points left out of yolo (a point has no box): 2"],
            ((1, 1, 5), (4, 1, 7))),
    ])
    assert merged.coco_image == '{"id":1},{"id":2},{"id":3}'
    assert merged.num_instances == 3 and len(merged.coco_annotations) == 3
    assert [p for _, p in merged.artifacts] == ["labels/1.txt", "labels/2.txt", "labels/3.txt"]
    assert merged.category_stats == ((1, 2, 15), (4, 1, 7))
    assert merged.warnings == ["label frames without an image (left out): 2",
                               "frame 2: image size not checked: odd",
                               "points left out of yolo (a point has no box): 3 (frames 1, 3)"]


def test_frame_sample_is_a_single_image_sample_of_the_frame(tmp_path):
    (d,) = _decide(tmp_path, [_seq_raw("x/y.mp4", 2, [{}, {"annotations": [_box(1, 1, 4, 4)]}])])
    s = d.sample.__class__(**{**d.sample.__dict__, "stem": "x/y", "frame_base": 10})
    f = sequence.frame_sample(s, 1)
    assert (f.image_id, f.stem, f.image_url, f.frames) == (12, "x/y-00002",
                                                           "https://h/x/y.mp4/1.jpg", None)
    out = vector.export_vector_sample(f, 10, 10, SETTINGS, ".jpg")
    assert json.loads(out.coco_image) == {"id": 12, "file_name": "x/y-00002.jpg",
                                          "height": 10, "width": 10}
    assert out.files == [("labels/x/y-00002.txt", b"0 0.250000 0.250000 0.300000 0.300000\n")]
