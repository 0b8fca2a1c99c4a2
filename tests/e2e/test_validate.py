"""Consumer checks: the outputs load in the readers users use, and `pipeline.validate`
catches what those readers would trip over."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hotcoco.panoptic import pq_compute
from PIL import Image

from benchmarks import synth
from pipeline import validate
from pipeline.run import run
from tests.conftest import png_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    truth = synth.make_release(str(root), samples=4, height=48, width=64, instances=7, seed=11)
    out = tmp_path_factory.mktemp("out")
    run(["--release", str(root / "release.json"), "--output", str(out), *IN_MEMORY])
    return str(out), truth


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return str(dst)


def test_a_good_export_passes_every_reader(exported):
    out, _ = exported
    report = validate.validate(out)
    assert report.problems == {} and report.ok
    assert set(report.summary) == {"manifest", "coco-instance", "coco-panoptic", "yolo", "instance",
                                   "semantic", "instance-color", "semantic-color"}
    assert "self-AP bbox 1.000 segm 1.000" in report.summary["coco-instance"]
    assert "RLE checked with faster-coco-eval" in report.summary["coco-instance"]
    assert "hotcoco self-PQ 100.0" in report.summary["coco-panoptic"]


def _ground_truth_panoptic(out, truth, folder):
    """The panoptic ground truth as the test drew it: one segment per thing instance (id =
    instance id), one per stuff category (id = 1e6 + category), written as COCO panoptic."""
    ours = json.load(open(os.path.join(out, "coco-panoptic.json")))
    stuff = {c["id"] for c in synth.CATEGORIES if not c["has_instances"]}
    os.makedirs(folder, exist_ok=True)
    annotations = []
    for image, t in zip(ours["images"], truth):
        seg_map = np.zeros(t.id_map.shape, np.uint32)
        segments = {}
        for a in t.annotations:
            mask = t.id_map == a["id"]
            if not mask.any():
                continue
            sid = 1_000_000 + a["category_id"] if a["category_id"] in stuff else a["id"]
            seg_map[mask] = sid
            segments[sid] = a["category_id"]
        infos = []
        for sid, cat in segments.items():
            ys, xs = np.nonzero(seg_map == sid)
            infos.append({"id": sid, "category_id": cat, "iscrowd": 0, "area": int(xs.size),
                          "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1]})
        rgb = np.stack([seg_map & 255, (seg_map >> 8) & 255, seg_map >> 16], -1).astype(np.uint8)
        name = f"gt_{image['id']}.png"
        Image.fromarray(rgb).save(os.path.join(folder, name))
        annotations.append({"image_id": image["id"], "file_name": name, "segments_info": infos})
    path = folder + ".json"
    json.dump({"images": ours["images"], "categories": ours["categories"],
               "annotations": annotations}, open(path, "w"))
    return path


def test_panoptic_quality_is_100_against_the_drawn_ground_truth_both_ways(exported, tmp_path):
    out, truth = exported
    gt = _ground_truth_panoptic(out, truth, str(tmp_path / "gt"))
    ours = os.path.join(out, "coco-panoptic.json")
    folder = os.path.join(out, "coco-panoptic")
    forward = pq_compute(gt, ours, gt_folder=str(tmp_path / "gt"), pred_folder=folder)
    backward = pq_compute(ours, gt, gt_folder=folder, pred_folder=str(tmp_path / "gt"))
    for result in (forward, backward):
        pq = result["All"]["pq"]
        assert pq == pytest.approx(1.0) or pq == pytest.approx(100.0)
        assert result["All"]["n"] == len(synth.CATEGORIES)


def test_pq_notices_a_wrong_segment(exported, tmp_path):
    """The PQ check above can fail: one merged instance lowers it."""
    out, truth = exported
    gt = _ground_truth_panoptic(out, truth, str(tmp_path / "gt"))
    bad = _copy(out, tmp_path / "bad")
    doc = json.load(open(os.path.join(bad, "coco-panoptic.json")))
    ann = doc["annotations"][0]
    things = [s for s in ann["segments_info"] if s["category_id"] in (1, 2, 3)]
    keep, drop = things[0], things[1]
    png = os.path.join(bad, "coco-panoptic", ann["file_name"])
    rgb = np.asarray(Image.open(png)).copy()
    wide = rgb.astype(np.uint32)
    ids = wide[..., 0] + 256 * wide[..., 1] + 65536 * wide[..., 2]
    rgb[ids == drop["id"]] = [keep["id"] & 255, (keep["id"] >> 8) & 255, keep["id"] >> 16]
    Image.fromarray(rgb).save(png)
    keep["area"] += drop["area"]
    ann["segments_info"].remove(drop)
    json.dump(doc, open(os.path.join(bad, "coco-panoptic.json"), "w"))
    result = pq_compute(gt, os.path.join(bad, "coco-panoptic.json"), gt_folder=str(tmp_path / "gt"),
                        pred_folder=os.path.join(bad, "coco-panoptic"))
    pq = result["All"]["pq"]
    assert pq < (1.0 if pq <= 1.0 else 100.0) - 1e-6


def _corrupt_rle(out):
    path = os.path.join(out, "coco-instance.json")
    doc = json.load(open(path))
    counts = doc["annotations"][0]["segmentation"]["counts"]
    doc["annotations"][0]["segmentation"]["counts"] = counts[: len(counts) // 2]
    json.dump(doc, open(path, "w"))


def _panoptic_pixel(out):
    doc = json.load(open(os.path.join(out, "coco-panoptic.json")))
    png = os.path.join(out, "coco-panoptic", doc["annotations"][0]["file_name"])
    rgb = np.asarray(Image.open(png)).copy()
    rgb[0, 0] = [1, 2, 3]
    Image.fromarray(rgb).save(png)


def _yolo_class(out):
    label = os.path.join(out, "labels", "sample_00000.txt")
    with open(label, "a") as f:
        f.write("9 0.5 0.5 0.1 0.1\n")


def _semantic_rgb(out):
    path = os.path.join(out, "semantic", "sample_00001_label_ground-truth_semantic.png")
    open(path, "wb").write(png_bytes(np.zeros((48, 64, 3), np.uint8)))


def _missing_image(out):
    os.remove(os.path.join(out, "images", "sample_00002.jpg"))


def _stale_failures(out):
    with open(os.path.join(out, "failures.jsonl"), "a") as f:
        f.write(json.dumps({"position": 3, "reason": "x"}) + "\n")


@pytest.mark.parametrize("corrupt,fmt,message", [
    (_corrupt_rle, "coco-instance", "annotation 1"),
    (_panoptic_pixel, "coco-panoptic", "PNG colours and segments_info ids differ"),
    (_yolo_class, "yolo", "bad line '9 0.5 0.5 0.1 0.1'"),
    (_semantic_rgb, "semantic", "mode RGB"),
    (_missing_image, "manifest", "image_path images/sample_00002.jpg does not exist"),
    (_stale_failures, "manifest", "failures.jsonl does not list exactly the failed rows"),
])
def test_validate_names_each_broken_output(exported, tmp_path, corrupt, fmt, message):
    out = _copy(exported[0], tmp_path / "copy")
    corrupt(out)
    report = validate.validate(out)
    assert not report.ok
    assert list(report.problems) == [fmt]
    assert any(message in p for p in report.problems[fmt]), report.problems


def test_validate_command_exit_codes(exported, tmp_path):
    out = _copy(exported[0], tmp_path / "copy")
    ok = subprocess.run([sys.executable, "-m", "pipeline.validate", out], capture_output=True,
                        text=True, cwd=ROOT, timeout=300)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "coco-instance   ok" in ok.stdout
    _yolo_class(out)
    bad = subprocess.run([sys.executable, "-m", "pipeline.validate", out], capture_output=True,
                         text=True, cwd=ROOT, timeout=300)
    assert bad.returncode == 1 and "yolo            FAILED (1 problems)" in bad.stdout


def test_export_with_validate_flag(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "pipeline", "--output", str(out), "--validate",
                             *IN_MEMORY], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "coco-panoptic   ok" in result.stdout and "hotcoco self-PQ 100.0" in result.stdout


def test_yolo_reads_back_in_supervision_with_every_box_equal_to_the_drawn_extent(exported):
    import supervision as sv

    out, truth = exported
    dataset = sv.DetectionDataset.from_yolo(
        images_directory_path=os.path.join(out, "images"),
        annotations_directory_path=os.path.join(out, "labels"),
        data_yaml_path=os.path.join(out, "data.yaml"))
    # YOLO's classes: the thing categories (stuff, has_instances: false, is no object).
    things = [c for c in synth.CATEGORIES if c["has_instances"]]
    assert list(dataset.classes) == [c["name"] for c in things]
    assert len(dataset) == len(truth)
    position = {c["id"]: i for i, c in enumerate(things)}
    checked = 0
    for image_path, _, detections in dataset:
        t = next(t for t in truth if os.path.basename(image_path) == t.name)
        expected = []
        for a in t.annotations:
            ys, xs = np.nonzero(t.id_map == a["id"])
            if xs.size and a["category_id"] in position:
                expected.append((position[a["category_id"]],
                                 [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]))
        assert len(detections) == len(expected)
        for (cls, box), got_cls, got_box in zip(expected, detections.class_id, detections.xyxy):
            assert got_cls == cls
            assert np.allclose(got_box, box, atol=1e-3)  # 6 decimals of a normalised value
            checked += 1
    assert checked > 20


def test_validate_says_which_checks_it_skipped_and_how_to_enable_them(exported):
    """Without the optional readers (the `validate` extra), the verdict names the checks it
    could not make and the install command that enables them, instead of skipping quietly."""
    out, _ = exported
    code = ("import sys; sys.modules['hotcoco'] = sys.modules['faster_coco_eval'] = None\n"
            "from pipeline.validate.__main__ import main\nmain(sys.argv[1:])")
    result = subprocess.run([sys.executable, "-c", code, out], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = [line for line in result.stdout.splitlines() if line.startswith("skipped")]
    install = "pip install -e '.[validate]' (in the clone; make test installs them too)"
    assert skipped == [
        "skipped         faster-coco-eval not installed: not checked that its stricter RLE "
        f"decoder agrees on every coco-instance mask; to check it: {install}",
        "skipped         hotcoco not installed: not checked that coco-panoptic's PQ against "
        f"itself is 100; to check it: {install}"]
    with_readers = subprocess.run([sys.executable, "-m", "pipeline.validate", out],
                                  capture_output=True, text=True, timeout=300)
    assert with_readers.returncode == 0
    assert not [line for line in with_readers.stdout.splitlines() if line.startswith("skipped")]
