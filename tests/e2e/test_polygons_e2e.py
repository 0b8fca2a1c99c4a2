"""yolo-seg and --coco_segmentation polygon end to end, read back by maintained readers
(supervision for YOLO, pycocotools for COCO) and compared with the drawn ground truth."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy import ndimage

from benchmarks import synth
from pipeline.run import run
from tests.conftest import tree
from tests.e2e.test_vector_e2e import _expected, vector_release  # noqa: F401 (fixture)

sv = pytest.importorskip("supervision")
IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
# The instance formats' categories (stuff, has_instances: false, is no object) and classes.
POSITION = {c["id"]: i for i, c in enumerate(c for c in synth.CATEGORIES if c["has_instances"])}


@pytest.fixture
def seg_release(http_root):
    root, url = http_root
    # Overlapping shapes cut instances into several components and leave holes.
    truth = synth.make_release(root, samples=4, height=60, width=80, instances=12, seed=5,
                               base_url=url)
    return root + "/release.json", truth


def _truth_instances(t):
    """(YOLO class, mask) per annotation of a thing category with pixels, in annotation
    order."""
    out = []
    for a in t.annotations:
        m = t.id_map == a["id"]
        if m.any() and a["category_id"] in POSITION:
            out.append((POSITION[a["category_id"]], m))
    return out


def _components(m):
    return ndimage.label(m, structure=np.ones((3, 3)))[1]


def test_yolo_seg_and_coco_polygons_read_back_as_the_drawn_masks(seg_release, tmp_path):
    path, truth = seg_release
    out = tmp_path / "out"
    run(["--release", path, "--output", str(out), *IN_MEMORY, "--formats",
         "coco-instance,yolo-seg", "--coco_segmentation", "polygon", "--validate"])
    assert (out / "labels").is_dir() and not (out / "labels-seg").exists()  # yolo-seg alone

    # YOLO: Roboflow's reader, masks from the polygons (round, then OpenCV-style fill).
    ds = sv.DetectionDataset.from_yolo(
        images_directory_path=str(out / "images"), annotations_directory_path=str(out / "labels"),
        data_yaml_path=str(out / "data.yaml"), force_masks=True)
    assert len(ds) == len(truth)
    by_name = {os.path.basename(p): (image, det) for p, image, det in ds}
    multi = exact = 0
    for t in truth:
        _, det = by_name[t.name]
        lines = (out / "labels" / (t.name.rsplit(".", 1)[0] + ".txt")).read_text().splitlines()
        expected = _truth_instances(t)
        assert det.class_id.tolist() == [c for c, _ in expected]
        for k, (_, m) in enumerate(expected):
            got = det.mask[k]
            ys, xs = np.nonzero(m)
            extent = [xs.min(), ys.min(), xs.max(), ys.max()]
            # supervision's box is the polygon's extent: the boundary pixels' indexes as
            # written (+ 0.25, see contours), so the pixel extent to within 0.25 px ...
            assert np.allclose(det.xyxy[k], extent, atol=0.2501)
            # ... and the box of the mask it reads is exactly the instance's.
            assert sv.mask_to_xyxy(got[None])[0].tolist() == extent
            assert not (m & ~got).any()  # no pixel of the instance is lost
            if _components(m) == 1:
                exact += 1
                assert np.array_equal(got, m)  # one component (holes included): exact
            else:
                multi += 1
                # Components are joined by 1-pixel bridges (Ultralytics' merge_multi_segment):
                # the only pixels added are on them, at most their length + 1 each.
                pts = np.floor(np.array(lines[k].split()[1:], float).reshape(-1, 2)
                               * [t.id_map.shape[1], t.id_map.shape[0]]).astype(int)
                hops = np.abs(np.diff(np.vstack((pts, pts[:1])), axis=0)).max(axis=1)
                assert int((got & ~m).sum()) <= int((hops[hops > 1] + 1).sum()) // 2
    assert exact and multi  # both cases were exercised

    # COCO: pycocotools rasterises every polygon list back to exactly the mask.
    coco = COCO(str(out / "coco-instance.json"))
    anns = coco.dataset["annotations"]
    assert all(isinstance(a["segmentation"], list) for a in anns)
    by_image = {}
    for a in anns:
        by_image.setdefault(a["image_id"], []).append(a)
    for i, t in enumerate(truth):
        expected = _truth_instances(t)
        got = by_image[i + 1]
        assert len(got) == len(expected)
        for a, (_, m) in zip(got, expected):
            ys, xs = np.nonzero(m)
            assert np.array_equal(coco.annToMask(a).astype(bool), m)
            assert a["area"] == int(m.sum())
            assert a["bbox"] == [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1,
                                 int(np.ptp(ys)) + 1]
            assert len(a["segmentation"]) == _components(m)
    dets = coco.loadRes([dict(a, score=1.0) for a in anns])
    for iou in ("segm", "bbox"):
        ev = COCOeval(coco, dets, iou)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0)


def test_yolo_and_yolo_seg_together_and_runners_agree(seg_release, tmp_path):
    path, truth = seg_release
    args = ["--release", path, "--formats", "yolo,yolo-seg,coco-instance",
            "--coco_segmentation", "polygon", "--images", "none"]
    a, b = tmp_path / "a", tmp_path / "b"
    run([*args, "--output", str(a), *IN_MEMORY])
    run([*args, "--output", str(b), "--direct_num_workers=2"])  # multi-process
    ta, tb = tree(str(a)), tree(str(b))
    assert ta.keys() == tb.keys()
    assert [k for k in ta if ta[k] != tb[k]] == []
    stem = truth[0].name.rsplit(".", 1)[0]
    boxes = ta[f"labels/{stem}.txt"].decode().splitlines()
    polys = ta[f"labels-seg/{stem}.txt"].decode().splitlines()
    assert len(boxes) == len(polys) == len(_truth_instances(truth[0]))
    assert all(len(line.split()) == 5 for line in boxes)
    assert all(len(line.split()) >= 7 for line in polys)
    # RLE mode is unchanged by the new option's existence.
    run(["--release", path, "--formats", "coco-instance", "--images", "none",
         "--output", str(tmp_path / "rle"), *IN_MEMORY])
    rle = json.loads((tmp_path / "rle" / "coco-instance.json").read_text())
    m = _truth_instances(truth[0])[0][1]
    seg = rle["annotations"][0]["segmentation"]
    assert np.array_equal(mask_utils.decode(seg).astype(bool), m)


def test_vector_yolo_seg_boxes_and_polygons(vector_release, tmp_path):  # noqa: F811
    path, entries, _ = vector_release
    out = tmp_path / "out"
    run(["--release", path, "--output", str(out), *IN_MEMORY, "--formats", "yolo-seg",
         "--validate"])
    ds = sv.DetectionDataset.from_yolo(
        images_directory_path=str(out / "images"), annotations_directory_path=str(out / "labels"),
        data_yaml_path=str(out / "data.yaml"), force_masks=True)
    by_name = {os.path.basename(p): (image, det) for p, image, det in ds}
    for entry in entries:
        name = entry["name"]
        image, det = by_name[name]
        h, w = image.shape[:2]
        expected = _expected(entry, w, h)
        assert det.class_id.tolist() == [c for c, _ in expected]
        for got, (_, box) in zip(det.xyxy.tolist(), expected):
            # The fill covers the pixels the shape's vertices fall on: within one pixel.
            assert np.allclose(got, box, atol=1.0)
