"""Points, keypoint releases and image-vector-sequence releases end to end.

Images are served over HTTP on 127.0.0.1 and the real command exports them. COCO is checked
with pycocotools' COCOeval (bbox and keypoints, AP 1.0 against itself) and against the
shapes drawn here (clipped by the test itself); YOLO is read back with supervision and every
box must equal the drawn one. Sequence exports are byte-identical in memory, on several
worker processes and in chunks.
"""

from __future__ import annotations

import contextlib
import io
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from benchmarks import synth
from benchmarks.server import StaticServer
from pipeline import validate
from pipeline.run import run
from tests.conftest import tree

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
POSITION = {c["id"]: i for i, c in enumerate(synth.CATEGORIES)}
SIGMAS = np.full(1, 0.05)  # one keypoint per category


def _jpeg(root, rel: str, w: int, h: int, shade: int) -> None:
    os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
    Image.fromarray(np.full((h, w, 3), shade, np.uint8)).save(os.path.join(root, rel))


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def _self_ap(doc_path: str) -> dict[str, float]:
    """COCOeval of the document against itself: bbox over boxes, OKS over keypoints."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    doc = json.loads(open(doc_path, encoding="utf-8").read())
    out = {}
    for iou, anns in (("bbox", [a for a in doc["annotations"] if "keypoints" not in a]),
                      ("keypoints", [a for a in doc["annotations"] if "keypoints" in a])):
        if not anns:
            continue
        gt = COCO()
        gt.dataset = {**doc, "annotations": anns}
        _quiet(gt.createIndex)
        dt = _quiet(gt.loadRes, [dict(a, score=1.0) for a in anns])
        ev = COCOeval(gt, dt, iou)
        if iou == "keypoints":
            ev.params.kpt_oks_sigmas = SIGMAS
        _quiet(ev.evaluate)
        _quiet(ev.accumulate)
        _quiet(ev.summarize)
        out[iou] = float(ev.stats[0])
    return out


def _truth(anns: list[dict], w: int, h: int):
    """(boxes [(category, [x0, y0, x1, y1])], points [(category, x, y)]) as exported."""
    boxes, points = [], []
    for a in anns:
        if a["type"] == "bbox":
            xs = sorted(min(max(p[0], 0), w) for p in a["points"])
            ys = sorted(min(max(p[1], 0), h) for p in a["points"])
            if xs[1] > xs[0] and ys[1] > ys[0]:
                boxes.append((a["category_id"], [xs[0], ys[0], xs[1], ys[1]]))
        elif a["type"] == "point":
            (x, y), = a["points"]
            if 0 <= x <= w and 0 <= y <= h:
                points.append((a["category_id"], x, y))
    return boxes, points


def _coco_by_image(doc):
    """{file_name: (image, [annotations])}."""
    anns: dict[int, list] = {}
    for a in doc["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    return {im["file_name"]: (im, anns.get(im["id"], [])) for im in doc["images"]}


def _check_coco_image(image, anns, boxes, points):
    got_boxes = [(a["category_id"], [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                                     a["bbox"][1] + a["bbox"][3]])
                 for a in anns if "keypoints" not in a]
    got_points = [(a["category_id"], a["keypoints"][0], a["keypoints"][1])
                  for a in anns if "keypoints" in a]
    assert got_boxes == boxes
    assert [(c, pytest.approx(x, abs=1e-3), pytest.approx(y, abs=1e-3))
            for c, x, y in points] == got_points
    for a in anns:
        if "keypoints" in a:
            assert a["keypoints"][2] == 2 and a["num_keypoints"] == 1 and a["iscrowd"] == 0
            assert a["area"] == image["width"] * image["height"]


def _check_yolo(images_dir: str, labels_dir: str, data_yaml: str, expected: dict) -> int:
    """supervision reads the YOLO export; every box equals the expected one (per image)."""
    import supervision as sv

    dataset = sv.DetectionDataset.from_yolo(images_directory_path=images_dir,
                                            annotations_directory_path=labels_dir,
                                            data_yaml_path=data_yaml)
    assert list(dataset.classes) == [c["name"] for c in synth.CATEGORIES]
    checked = seen = 0
    for image_path, _, detections in dataset:
        boxes = expected[os.path.basename(image_path)]
        seen += 1
        assert len(detections) == len(boxes)
        for (cat, box), got_cls, got_box in zip(boxes, detections.class_id, detections.xyxy):
            assert got_cls == POSITION[cat]
            assert np.allclose(got_box, box, atol=1e-3)
            checked += 1
    assert seen == len(expected)
    return checked


# --------------------------------------------------------------------------- sequences

SIZES = ((64, 48), (80, 40), (50, 70))
NAMES = ("clip.mp4", "Clip.avi", "clip-00001", "walk", "broken")  # "Clip" collides with "clip"


def _frame_anns(rng, w: int, h: int, cat_shift: int) -> list[dict]:
    anns = []
    for k in range(2):
        x0, x1 = sorted(int(v) for v in rng.integers(0, w + 1, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, h + 1, 2))
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
        pts = [[x0, y0], [x1, y1]] if k == 0 else [[x1, y1], [x0, y0]]
        anns.append({"id": k + 1, "track_id": k + 1, "category_id": synth.THINGS[
            (k + cat_shift) % 3], "type": "bbox", "points": pts, "is_keyframe": True})
    anns.append({"id": 3, "track_id": 3, "category_id": 2, "type": "bbox",  # runs off
                 "points": [[w - 5, h - 4], [w + 10, h + 10]]})
    anns.append({"id": 4, "track_id": 4, "category_id": 1, "type": "bbox",  # zero size
                 "points": [[3, 3], [3, 9]]})
    anns.append({"id": 5, "track_id": 5, "category_id": 3, "type": "point",
                 "points": [[w / 3, h / 4]], "attributes": {"visible": True}})
    return anns


@pytest.fixture(scope="module")
def sequence_release(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("seq"))
    rng = np.random.default_rng(11)
    with StaticServer(root) as server:
        entries, truth = [], {}  # truth: frame file name -> (w, h, ground-truth, preds)
        for i, name in enumerate(NAMES):
            frames, gt, preds = [], [], []
            for j in range(2 + i % 2):
                w, h = SIZES[(i + j) % 3]
                rel = f"frames/{i}/{j}.jpg"
                _jpeg(root, rel, w, h, 20 + 40 * j)
                frame = {"image": {"url": server.url + rel}, "timestamp": j}
                if j == 0:
                    frame["name"] = None  # the SDK writes every such frame to "{stem}-None"
                elif j == 2:
                    frame["name"] = "same"
                frames.append(frame)
                gt.append({"annotations": _frame_anns(rng, w, h, 0)})
                preds.append({"annotations": _frame_anns(rng, w, h, 1)})
            if name == "broken":
                frames[1]["image"]["url"] = server.url + "frames/missing.jpg"
            gt.append({"annotations": _frame_anns(rng, 10, 10, 0)})  # a label frame too many
            label = {"label_status": "LABELED", "attributes": {"format_version": "0.2",
                                                                "frames": gt}}
            pred = {"label_status": "PRELABELED", "attributes": {"format_version": "0.2",
                                                                  "frames": preds}}
            entries.append({"uuid": f"u{i}", "name": name, "attributes": {"frames": frames},
                            "labels": {"ground-truth": label, "preds": pred}})
        path = synth.write_release(root, entries, task_type="image-vector-sequence")
        doc = json.loads(open(path).read())
        doc["dataset"]["labelsets"].append({"name": "preds", "description": ""})
        with open(path, "w") as f:
            json.dump(doc, f)
        out = os.path.join(root, "out-in-memory")
        counts = run(["--release", path, "--output", out, "--labelset", "preds",
                      "--chunk_samples", "0", *IN_MEMORY])
        yield path, entries, out, counts


def _stems():
    return {"clip.mp4": "clip", "Clip.avi": "Clip__2", "clip-00001": "clip-00001",
            "walk": "walk", "broken": "broken"}


def test_sequence_frames_export_to_coco_and_yolo_from_the_chosen_labelset(sequence_release):
    path, entries, out, counts = sequence_release
    assert counts["samples_exported"] == 4 and counts["samples_failed"] == 1
    report = validate.validate(out)
    assert report.ok, report.problems
    # The broken sample fails alone, naming its frame, and leaves no file behind.
    (failure,) = [json.loads(line) for line in open(os.path.join(out, "failures.jsonl"))]
    assert failure["name"] == "broken" and failure["reason"].startswith("frame 2: ")
    assert not [f for f in tree(out) if os.path.basename(f).startswith("broken")]

    doc = json.loads(open(os.path.join(out, "coco-instance.json")).read())
    by_file = _coco_by_image(doc)
    # Points are in coco-keypoints, over the same images; coco-instance holds the boxes.
    kdoc = json.loads(open(os.path.join(out, "coco-keypoints.json")).read())
    assert kdoc["images"] == doc["images"]
    keypoints_by_file = _coco_by_image(kdoc)
    expected_files, yolo_expected, next_id = [], {}, 1
    for entry in entries[:4]:
        stem = _stems()[entry["name"]]
        for j, _ in enumerate(entry["attributes"]["frames"]):
            i = NAMES.index(entry["name"])
            w, h = SIZES[(i + j) % 3]
            file_name = f"{stem}-{j + 1:05d}.jpg"
            expected_files.append(file_name)
            image, anns = by_file[file_name]
            # ids dense over the frames in release order; each frame's own size
            assert (image["id"], image["width"], image["height"]) == (next_id, w, h)
            next_id += 1
            boxes, points = _truth(entry["labels"]["preds"]["attributes"]["frames"][j][
                "annotations"], w, h)
            kanns = keypoints_by_file[file_name][1]
            assert all("keypoints" not in a for a in anns)
            assert all("keypoints" in a for a in kanns)
            _check_coco_image(image, anns + kanns, boxes, points)
            yolo_expected[file_name] = boxes
    assert [im["file_name"] for im in doc["images"]] == expected_files
    assert _self_ap(os.path.join(out, "coco-instance.json")) == {"bbox": 1.0}
    assert _self_ap(os.path.join(out, "coco-keypoints.json")) == {"keypoints": 1.0}
    checked = _check_yolo(os.path.join(out, "images"), os.path.join(out, "labels"),
                          os.path.join(out, "data.yaml"), yolo_expected)
    assert checked == 2 * len(yolo_expected) + len(yolo_expected)  # two boxes + the clipped one
    # Every copied frame is the served file, byte for byte.
    served = os.path.join(os.path.dirname(path), "frames", "0", "1.jpg")
    assert open(os.path.join(out, "images", "clip-00002.jpg"), "rb").read() == open(
        served, "rb").read()
    rows = {r["name"]: r for r in pq.read_table(os.path.join(out, "manifest")).to_pylist()}
    assert rows["clip.mp4"]["image_path"] == "images/clip-00001.jpg"
    assert rows["clip.mp4"]["image_id"] == 1 and rows["Clip.avi"]["image_id"] == 2
    assert sorted(rows["walk"]["warnings"]) == [
        "annotations left out (box with no area inside the image): 3 (frames 1, 2, 3)",
        "points left out of yolo (a point has no box): 3 (frames 1, 2, 3)"]


def test_sequence_export_is_byte_identical_on_workers_and_in_chunks(sequence_release, tmp_path):
    path, _, out, _ = sequence_release
    multi, chunked = str(tmp_path / "multi"), str(tmp_path / "chunked")
    run(["--release", path, "--output", multi, "--labelset", "preds", "--chunk_samples", "0",
         "--direct_num_workers=2"])
    run(["--release", path, "--output", chunked, "--labelset", "preds", "--chunk_samples", "2",
         "--coco_shard_size", "1", *IN_MEMORY])
    a, b, c = tree(out), tree(multi), tree(chunked)
    assert sorted(a) == sorted(b) == sorted(c) and "coco-instance.json" in a
    assert [k for k in a if a[k] != b[k]] == []
    assert [k for k in a if a[k] != c[k]] == []


# --------------------------------------------------------------------------- keypoints


def test_keypoint_release_exports_coco_keypoints(tmp_path):
    root = str(tmp_path / "served")
    os.makedirs(root)
    with StaticServer(root) as server:
        entries, sizes = [], [(64, 48), (40, 90), (33, 33)]
        rng = np.random.default_rng(5)
        for i, (w, h) in enumerate(sizes):
            _jpeg(root, f"images/k{i}.jpg", w, h, 100)
            anns = [{"id": k + 1, "category_id": synth.THINGS[k % 3], "type": "point",
                     "points": [[float(rng.uniform(0, w)), float(rng.uniform(0, h))]]}
                    for k in range(4)]
            anns.append({"id": 9, "category_id": 1, "type": "point", "points": [[w + 1, 0]]})
            entries.append({"uuid": f"k{i}", "name": f"k{i}.jpg",
                            "attributes": {"image": {"url": server.url + f"images/k{i}.jpg"}},
                            "labels": {"ground-truth": {"label_status": "REVIEWED",
                                                        "attributes": {"annotations": anns}}}})
        path = synth.write_release(root, entries, task_type="keypoints")
        out = str(tmp_path / "out")
        counts = run(["--release", path, "--output", out, "--images", "none", *IN_MEMORY])
    assert counts["samples_exported"] == 3
    assert sorted(os.listdir(out)) == sorted([".export-state", "coco-instance.json",
                                              "failures.jsonl", "manifest", "preview.png",
                                              "report.json", "run.json"])
    report = validate.validate(out)
    assert report.ok, report.problems
    doc = json.loads(open(os.path.join(out, "coco-instance.json")).read())
    assert [(c["name"], c["keypoints"], c["skeleton"]) for c in doc["categories"]] == [
        (c["name"], [c["name"]], []) for c in synth.CATEGORIES]
    by_file = _coco_by_image(doc)
    for entry, (w, h) in zip(entries, sizes):
        image, anns = by_file[entry["name"]]
        assert (image["width"], image["height"]) == (w, h)
        boxes, points = _truth(entry["labels"]["ground-truth"]["attributes"]["annotations"], w, h)
        assert boxes == [] and len(points) == 4
        _check_coco_image(image, anns, boxes, points)
    assert _self_ap(os.path.join(out, "coco-instance.json")) == {"keypoints": 1.0}
    rows = pq.read_table(os.path.join(out, "manifest")).to_pylist()
    assert [r["warnings"] for r in rows] == [
        ["annotations left out (point outside the image): 1"]] * 3


def test_keypoint_release_refuses_yolo(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    path = synth.write_release(str(root), [], task_type="keypoints")
    with pytest.raises(ValueError, match="yolo"):
        run(["--release", path, "--output", str(tmp_path / "out"), "--formats", "yolo",
             *IN_MEMORY])


# --------------------------------------------------------------------------- vector points


def test_vector_points_are_keypoints_and_polylines_are_counted(tmp_path):
    root = str(tmp_path / "served")
    os.makedirs(root)
    with StaticServer(root) as server:
        entries = synth.make_vector_release(root, samples=4, seed=8, task_type="vector",
                                            base_url=server.url)
        for e in entries:
            anns = e["labels"]["ground-truth"]["attributes"]["annotations"]
            anns.append({"id": 20, "category_id": 2, "type": "point", "points": [[7.5, 8]]})
            anns.append({"id": 21, "category_id": 3, "type": "polyline",
                         "points": [[0, 0], [5, 5], [9, 2]]})
        path = synth.write_release(root, entries, task_type="vector")
        out = str(tmp_path / "out")
        run(["--release", path, "--output", out, "--images", "none", *IN_MEMORY])
    report = validate.validate(out)
    assert report.ok, report.problems
    assert "keypoints 1.000" in report.summary["coco-keypoints"]
    doc = json.loads(open(os.path.join(out, "coco-instance.json")).read())
    by_file = _coco_by_image(doc)
    keypoints_by_file = _coco_by_image(
        json.loads(open(os.path.join(out, "coco-keypoints.json")).read()))
    yolo_expected = {}
    for i, e in enumerate(entries):
        w, h = ((64, 48), (80, 40))[i % 2]
        image, anns = by_file[e["name"]]
        assert all("keypoints" not in a for a in anns)
        anns = anns + keypoints_by_file[e["name"]][1]
        shapes = e["labels"]["ground-truth"]["attributes"]["annotations"]
        boxes, points = _truth(shapes, w, h)
        polygon = [a for a in anns if "segmentation" in a]
        assert len(polygon) == 1  # the polygon, checked by pycocotools self-AP above
        _check_coco_image(image, [a for a in anns if "segmentation" not in a], boxes, points)
        xs = [p[0] for p in shapes[3]["points"]]
        ys = [p[1] for p in shapes[3]["points"]]
        yolo_expected[e["name"]] = boxes + [(shapes[3]["category_id"],
                                             [min(xs), min(ys), max(xs), max(ys)])]
    assert _self_ap(os.path.join(out, "coco-instance.json")) == {"bbox": 1.0}  # boxes: no segm
    assert _self_ap(os.path.join(out, "coco-keypoints.json")) == {"keypoints": 1.0}
    _check_yolo(os.path.join(root, "images"), os.path.join(out, "labels"),
                os.path.join(out, "data.yaml"), yolo_expected)
    rows = pq.read_table(os.path.join(out, "manifest")).to_pylist()
    assert [sorted(r["warnings"]) for r in rows] == [[
        "annotations left out (polyline annotations are not exported): 1",
        "points left out of yolo (a point has no box): 1"]] * 4


# --------------------------------------------------------------------------- bitmap sizes


def test_bitmap_size_mismatch_is_reported_without_copying_images(tmp_path):
    root = str(tmp_path / "served")
    os.makedirs(root)
    with StaticServer(root) as server:
        truth = synth.make_release(root, samples=3, base_url=server.url)
        _jpeg(root, truth[1].image_file, 30, 20, 50)  # the bitmap stays 64x48
        os.remove(os.path.join(root, truth[2].image_file))
        out = str(tmp_path / "out")
        counts = run(["--release", os.path.join(root, "release.json"), "--output", out,
                      "--images", "none", *IN_MEMORY])
    assert counts["samples_exported"] == 3  # the image is not needed to export the bitmap
    rows = pq.read_table(os.path.join(out, "manifest")).to_pylist()
    assert rows[0]["warnings"] == []
    assert rows[1]["warnings"] == ["image and bitmap sizes differ: image 30x20, bitmap 64x48"]
    assert len(rows[2]["warnings"]) == 1
    assert rows[2]["warnings"][0].startswith("image size not checked: image: ")


# --------------------------------------------------------------------------- --since


def test_since_on_a_sequence_release_equals_a_full_export(tmp_path):
    from tests.e2e.test_since import _outputs

    root = str(tmp_path / "served")
    os.makedirs(root)
    rng = np.random.default_rng(3)
    with StaticServer(root) as server:
        def seq(name, n_frames, shift=0):
            frames, labels = [], []
            for j in range(n_frames):
                w, h = SIZES[j % 3]
                rel = f"frames/{name}/{j}.jpg"
                _jpeg(root, rel, w, h, 30 + 50 * j)
                frames.append({"image": {"url": server.url + rel}})
                labels.append({"annotations": _frame_anns(rng, w, h, shift)})
            return {"uuid": f"u-{name}", "name": name, "attributes": {"frames": frames},
                    "labels": {"ground-truth": {"label_status": "LABELED", "attributes": {
                        "format_version": "0.2", "frames": labels}}}}

        s = [seq(f"s{i}", 2) for i in range(4)]
        os.makedirs(os.path.join(root, "r1"))
        os.makedirs(os.path.join(root, "r2"))
        v1 = synth.write_release(os.path.join(root, "r1"), s,
                                 task_type="image-vector-sequence")
        # v2: an empty sequence first (every sample number moves, no frame id does), s1
        # labelled again, s4 appended
        v2 = synth.write_release(os.path.join(root, "r2"),
                                 [seq("e", 0), s[0], seq("s1", 2, shift=1), s[2], s[3],
                                  seq("s4", 3)], task_type="image-vector-sequence")
        out, clean = tmp_path / "out", tmp_path / "clean"
        run(["--release", v1, "--output", str(out), *IN_MEMORY])
        plan = run(["--release", v2, "--output", str(out), "--since", str(out), "--dry_run"])
        assert plan["since"]["reused"] == 3  # s0, s2, s3
        run(["--release", v2, "--output", str(out), "--since", str(out), *IN_MEMORY])
        run(["--release", v2, "--output", str(clean), *IN_MEMORY])
    updated, reference = _outputs(out), _outputs(clean)
    assert sorted(updated) == sorted(reference) and "coco-instance.json" in updated
    assert [k for k in updated if updated[k] != reference[k]] == []
