"""Vector releases end to end: images served over HTTP on 127.0.0.1, sizes read from image
headers (Range requests), COCO checked by pycocotools (self-AP 1.0), YOLO read back by
supervision with every box equal to the drawn one (clipped by the test itself)."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from benchmarks import synth
from benchmarks.server import StaticServer
from pipeline import validate
from pipeline.run import run

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def _rotated_jpeg(path: str, w: int, h: int) -> None:
    """A w x h stored JPEG with EXIF orientation 6: it displays as h x w."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(path, exif=exif.tobytes())


@pytest.fixture
def vector_release(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    with StaticServer(str(root)) as server:
        entries = synth.make_vector_release(str(root), samples=9, seed=4, task_type="vector",
                                            base_url=server.url)
        # Sample 8: stored 40x64, displayed 64x40 (EXIF 6); one box runs off the image.
        _rotated_jpeg(str(root / "images" / "v_000008.jpg"), 40, 64)
        anns = entries[8]["labels"]["ground-truth"]["attributes"]["annotations"]
        anns[0]["points"] = [[50, 30], [80, 50]]
        anns.append({"id": 9, "category_id": 2, "type": "polyline", "points": [[0, 0], [5, 5]]})
        anns.append({"id": 10, "category_id": 1, "type": "bbox", "points": [[70, 0], [90, 10]]})
        path = synth.write_release(str(root), entries, task_type="vector")
        yield path, entries, server


def _expected(entry, w: int, h: int):
    """(class position, [x0, y0, x1, y1]) per exported shape, clipped by hand."""
    position = {c["id"]: i for i, c in enumerate(synth.CATEGORIES)}
    out = []
    for a in entry["labels"]["ground-truth"]["attributes"]["annotations"]:
        if a["type"] not in ("bbox", "polygon"):
            continue
        xs = [min(max(p[0], 0), w) for p in a["points"]]
        ys = [min(max(p[1], 0), h) for p in a["points"]]
        box = [min(xs), min(ys), max(xs), max(ys)]
        if box[2] > box[0] and box[3] > box[1]:
            out.append((position[a["category_id"]], box))
    return out


def test_vector_export_reads_sizes_from_headers_and_round_trips(vector_release, tmp_path):
    path, entries, server = vector_release
    out = tmp_path / "out"
    counts = run(["--release", path, "--output", str(out), "--images", "none", *IN_MEMORY])
    assert counts["samples_exported"] == 9
    # Only the first samples (the preview) are fetched whole; the others by their header.
    assert server.range_requests == 9 - 6
    report = validate.validate(str(out))
    assert report.ok, report.problems
    assert "self-AP bbox 1.000" in report.summary["coco-instance"]

    doc = json.loads((out / "coco-instance.json").read_text())
    sizes = {im["file_name"]: (im["width"], im["height"]) for im in doc["images"]}
    assert sizes["v_000008.jpg"] == (64, 40)  # EXIF orientation applied
    assert sizes["v_000001.jpg"] == (80, 40)

    import supervision as sv

    dataset = sv.DetectionDataset.from_yolo(
        images_directory_path=str(tmp_path / "served" / "images"),
        annotations_directory_path=str(out / "labels"),
        data_yaml_path=str(out / "data.yaml"))
    assert list(dataset.classes) == [c["name"] for c in synth.CATEGORIES]
    checked = 0
    for image_path, _, detections in dataset:
        entry = next(e for e in entries if e["name"] == os.path.basename(image_path))
        w, h = sizes[entry["name"]]
        expected = _expected(entry, w, h)
        assert len(detections) == len(expected)
        for (cls, box), got_cls, got_box in zip(expected, detections.class_id, detections.xyxy):
            assert got_cls == cls
            assert np.allclose(got_box, box, atol=1e-3)
            checked += 1
    assert checked >= 9 * 3
    # The box running off the image was clipped, the one outside it and the polyline counted.
    rotated = next(a for a in doc["annotations"]
                   if a["image_id"] == 9 and a["category_id"] == synth.THINGS[0])
    assert rotated["bbox"] == [50, 30, 14, 10]
    import pyarrow.parquet as pq

    rows = {r["name"]: r for r in pq.read_table(str(out / "manifest")).to_pylist()}
    assert sorted(rows["v_000008.jpg"]["warnings"]) == [
        "annotations left out (box with no area inside the image): 1",
        "annotations left out (polyline annotations are not exported): 1"]


def test_copied_images_size_the_labels_without_a_second_fetch(vector_release, tmp_path):
    path, _, server = vector_release
    out = tmp_path / "out"
    run(["--release", path, "--output", str(out), *IN_MEMORY])
    assert server.range_requests == 0
    copied = Image.open(io.BytesIO((out / "images" / "v_000008.jpg").read_bytes()))
    assert copied.size == (40, 64)  # original bytes; COCO says 64x40 as displayed
    assert validate.validate(str(out)).ok


def test_a_sample_without_image_url_fails_alone(vector_release, tmp_path):
    path, entries, _ = vector_release
    entries[3]["attributes"]["image"]["url"] = None
    synth.write_release(os.path.dirname(path), entries, task_type="vector")
    out = tmp_path / "out"
    counts = run(["--release", path, "--output", str(out), "--images", "none", *IN_MEMORY])
    assert counts["samples_exported"] == 8 and counts["samples_failed"] == 1
    failure = json.loads((out / "failures.jsonl").read_text())
    assert failure["name"] == "v_000003.jpg" and "image size is needed" in failure["reason"]


def test_chunked_vector_export_is_byte_identical(vector_release, tmp_path):
    from tests.conftest import tree

    path, _, _ = vector_release
    one, chunked = tmp_path / "one", tmp_path / "chunked"
    run(["--release", path, "--output", str(one), "--images", "none", "--chunk_samples", "0",
         *IN_MEMORY])
    run(["--release", path, "--output", str(chunked), "--images", "none", "--chunk_samples", "4",
         "--coco_shard_size", "3", *IN_MEMORY])
    a, b = tree(str(one)), tree(str(chunked))
    assert sorted(a) == sorted(b) and "coco-instance.json" in a
    assert [k for k in a if a[k] != b[k]] == []


def test_points_go_to_coco_keypoints_and_an_exact_detector_scores_ap_1(vector_release, tmp_path):
    """A vector release whose shapes are 10 % points: coco-instance holds the boxes and
    polygons only, so a detector predicting each of them exactly gets bbox AP 1.0 in
    pycocotools (as 0x0 boxes, points cost AP 0.86 before); the points are all in
    coco-keypoints, at their drawn positions, for keypoint tools."""
    import contextlib

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    path, entries, _ = vector_release
    points = {}  # image name -> [(category, x, y)]
    for i, entry in enumerate(entries):
        anns = entry["labels"]["ground-truth"]["attributes"]["annotations"]
        if i % 3 == 0:  # a third of the samples get a point: ~10 % of the shapes
            point = (synth.THINGS[i % 2], 5.5 + i, 6.25)
            anns.append({"id": 50 + i, "category_id": point[0], "type": "point",
                         "points": [[point[1], point[2]]]})
            points[entry["name"]] = [point]
    synth.write_release(os.path.dirname(path), entries, task_type="vector")
    out = tmp_path / "out"
    run(["--release", path, "--output", str(out), "--images", "none", *IN_MEMORY])

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(out / "coco-instance.json"))
    assert not [a for a in gt.dataset["annotations"] if "keypoints" in a]
    image_ids = {im["file_name"]: im["id"] for im in gt.dataset["images"]}
    sizes = {im["file_name"]: (im["width"], im["height"]) for im in gt.dataset["images"]}
    position = {c["id"]: i for i, c in enumerate(synth.CATEGORIES)}
    category = {i: c for c, i in position.items()}
    detections = [{"image_id": image_ids[e["name"]], "category_id": category[cls],
                   "bbox": [x0, y0, x1 - x0, y1 - y0], "score": 1.0}
                  for e in entries for cls, (x0, y0, x1, y1) in _expected(e, *sizes[e["name"]])]
    assert len(detections) == len(gt.dataset["annotations"])
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # AP @ IoU 0.50:0.95

    keypoints = json.loads((out / "coco-keypoints.json").read_text())
    names = {im["id"]: im["file_name"] for im in keypoints["images"]}
    got = {}
    for a in keypoints["annotations"]:
        x, y, v = a["keypoints"]
        got.setdefault(names[a["image_id"]], []).append((a["category_id"], x, y))
        assert v == 2 and a["num_keypoints"] == 1
    assert got == points
    assert [c["keypoints"] for c in keypoints["categories"]] == [
        [c["name"]] for c in synth.CATEGORIES]
    assert validate.validate(str(out)).ok
