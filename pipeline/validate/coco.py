"""Checks of the COCO documents: structure, masks and shapes, self-AP, panoptic PNGs and PQ."""

from __future__ import annotations

import json
import os

import numpy as np

from pipeline.validate.common import Report, extent, quiet, read_png
from transforms.model import paths


def check_coco_instance(out: str, report: Report, eval_images: int,
                        doc: str = "coco-instance") -> dict[int, tuple[int, int]]:
    """`doc`: the document (`coco-instance`, or `coco-instance-{split}` with --split; or
    coco-keypoints, the points of vector and sequence releases, checked alike)."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    fmt = doc
    path = os.path.join(out, paths.coco_json(doc))
    try:
        coco = quiet(COCO, path)
    except Exception as e:  # any reader failure is the verdict
        report.fail(fmt, f"pycocotools cannot load it: {type(e).__name__}: {e}")
        return {}
    sizes = {img["id"]: (img["height"], img["width"]) for img in coco.dataset["images"]}
    if len(sizes) != len(coco.dataset["images"]):
        report.fail(fmt, "image ids are not unique")
    ann_ids = [a["id"] for a in coco.dataset["annotations"]]
    if sorted(ann_ids) != list(range(1, len(ann_ids) + 1)):
        report.fail(fmt, "annotation ids are not unique and dense from 1")
    cat_ids = {c["id"] for c in coco.dataset["categories"]}
    strict = _faster_coco_eval_mask()
    if strict is None and any(isinstance(a.get("segmentation"), dict)
                              for a in coco.dataset["annotations"]):
        report.skip("faster-coco-eval")
    for a in coco.dataset["annotations"]:
        where = f"annotation {a['id']}"
        if a["image_id"] not in sizes:
            report.fail(fmt, f"{where}: unknown image_id {a['image_id']}")
            continue
        if a["category_id"] not in cat_ids:
            report.fail(fmt, f"{where}: unknown category_id {a['category_id']}")
        if "keypoints" in a:  # a point (vector, keypoints and sequence releases)
            _check_keypoint(a, sizes[a["image_id"]], report, where)
            continue
        seg = a.get("segmentation")
        if isinstance(seg, list) and seg and _polygons_match(seg, a, sizes[a["image_id"]]):
            continue  # bitmap polygons (--coco_segmentation polygon): exactly the mask
        if seg is None or isinstance(seg, list):  # a vector box or polygon
            _check_vector(a, sizes[a["image_id"]], report, where)
            continue
        if not isinstance(seg, dict) or seg.get("size") != list(sizes[a["image_id"]]):
            report.fail(fmt, f"{where}: RLE size differs from the image size")
            continue
        try:
            mask = mask_utils.decode(seg).astype(bool)
        except (ValueError, TypeError) as e:
            report.fail(fmt, f"{where}: pycocotools cannot decode its RLE: {e}")
            continue
        if not mask.any():
            report.fail(fmt, f"{where}: empty mask")
            continue
        if int(mask.sum()) != a["area"] or extent(mask) != a["bbox"] or a.get("iscrowd") != 0:
            report.fail(fmt, f"{where}: area/bbox/iscrowd do not match its mask")
        if strict is not None:
            try:
                same = np.array_equal(strict.decode(seg).astype(bool), mask)
            except ValueError as e:  # pycocotools silently accepts some broken RLE
                report.fail(fmt, f"{where}: faster-coco-eval rejects its RLE: {e}")
                continue
            if not same:
                report.fail(fmt, f"{where}: faster-coco-eval decodes a different mask")
    ap = {}
    rle = any(isinstance(a.get("segmentation"), dict) for a in coco.dataset["annotations"])
    if coco.dataset["annotations"] and not report.problems.get(fmt):
        image_ids = sorted(sizes)[:eval_images]
        for iou, value in self_ap(coco, image_ids).items():
            ap[iou] = value
            if abs(value - 1.0) > 1e-9:
                report.fail(fmt, f"COCOeval of the file against itself: AP {iou} = {value:.4f}, not 1.0")
    report.summary[fmt] = (
        f"{len(sizes)} images, {len(ann_ids)} annotations"
        + (", self-AP " + " ".join(f"{iou} {v:.3f}" for iou, v in ap.items()) if ap else "")
        + (", RLE checked with faster-coco-eval" if strict is not None and rle else ""))
    return sizes


def _polygons_match(seg: list, a: dict, size: tuple[int, int]) -> bool:
    """The polygons, rasterised by pycocotools, have the annotation's area and bbox."""
    from pycocotools import mask as mask_utils

    if not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg):
        return False
    h, w = size
    mask = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(seg, h, w))).astype(bool)
    return mask.any() and int(mask.sum()) == a.get("area") and extent(mask) == a.get("bbox")


KEYPOINT_SIGMA = 0.05  # OKS sigma of the one keypoint of a category (pycocotools': 17 values)


def _subset(coco, annotations: list[dict]):
    """A pycocotools COCO of the same images and categories with these annotations."""
    from pycocotools.coco import COCO

    sub = COCO()
    sub.dataset = {**coco.dataset, "annotations": annotations}
    quiet(sub.createIndex)
    return sub


def self_ap(coco, image_ids: list[int]) -> dict[str, float]:
    """COCOeval AP of the document against itself: bbox (and segm when every shape has a
    mask) over the annotations without keypoints, keypoints (OKS, one keypoint per
    category, sigma KEYPOINT_SIGMA) over the points; each only when it has annotations."""
    from pycocotools.cocoeval import COCOeval

    wanted = set(image_ids)
    points = [a for a in coco.dataset["annotations"] if "keypoints" in a]
    shapes = [a for a in coco.dataset["annotations"] if "keypoints" not in a]
    ap: dict[str, float] = {}
    for anns, kinds in ((shapes, ("bbox", "segm") if all("segmentation" in a for a in shapes)
                         else ("bbox",)), (points, ("keypoints",))):
        if not anns:
            continue
        gt = _subset(coco, anns) if len(anns) != len(coco.dataset["annotations"]) else coco
        dets = [dict(a, score=1.0) for a in anns if a["image_id"] in wanted]
        if not dets:
            continue
        results = quiet(gt.loadRes, dets)
        for iou in kinds:
            ev = COCOeval(gt, results, iou)
            ev.params.imgIds = image_ids
            if iou == "keypoints":
                ev.params.kpt_oks_sigmas = np.full(1, KEYPOINT_SIGMA)
            quiet(ev.evaluate)
            quiet(ev.accumulate)
            quiet(ev.summarize)
            ap[iou] = float(ev.stats[0])
    return ap


def _check_keypoint(a: dict, size: tuple[int, int], report: Report, where: str) -> None:
    """A point: one visible keypoint inside the image, bbox [x, y, 0, 0], area = W * H."""
    fmt, (h, w) = "coco-instance", size
    kp = a.get("keypoints")
    if (not isinstance(kp, list) or len(kp) != 3 or kp[2] != 2 or a.get("num_keypoints") != 1
            or not (0 <= kp[0] <= w and 0 <= kp[1] <= h)):
        report.fail(fmt, f"{where}: keypoints {kp} are not one visible point in the {w}x{h} image")
        return
    if a.get("bbox") != [kp[0], kp[1], 0, 0] or a.get("area") != w * h or a.get("iscrowd") != 0:
        report.fail(fmt, f"{where}: bbox/area/iscrowd of a point must be [x, y, 0, 0], W*H, 0")


def _check_vector(a: dict, size: tuple[int, int], report: Report, where: str) -> None:
    """A box (no segmentation) or polygon inside the image, with a consistent area."""
    fmt, (h, w) = "coco-instance", size
    x, y, bw, bh = a.get("bbox") or (0, 0, 0, 0)
    tol = 2e-3
    if bw <= 0 or bh <= 0 or x < 0 or y < 0 or x + bw > w + tol or y + bh > h + tol:
        report.fail(fmt, f"{where}: bbox {a.get('bbox')} is empty or outside the {w}x{h} image")
        return
    seg = a.get("segmentation")
    if seg is None:
        expected = bw * bh
    else:
        if len(seg) != 1 or len(seg[0]) < 6 or len(seg[0]) % 2:
            report.fail(fmt, f"{where}: segmentation is not one polygon of 3+ points")
            return
        xs, ys = seg[0][0::2], seg[0][1::2]
        n = len(xs)
        expected = abs(sum(xs[i] * ys[(i + 1) % n] - xs[(i + 1) % n] * ys[i]
                           for i in range(n))) / 2
        extent = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        if any(abs(p - q) > tol for p, q in zip(extent, a["bbox"])):
            report.fail(fmt, f"{where}: bbox {a['bbox']} is not the polygon's extent {extent}")
    if abs(a.get("area", -1) - expected) > max(0.01, 1e-6 * expected) or a.get("iscrowd") != 0:
        report.fail(fmt, f"{where}: area/iscrowd do not match its shape")


def _faster_coco_eval_mask():
    try:
        from faster_coco_eval.core import mask as strict_mask
    except ImportError:
        return None
    return strict_mask


def check_coco_panoptic(out: str, report: Report,
                        doc: str = "coco-panoptic") -> dict[int, tuple[int, int]]:
    """`doc`: the document (`coco-panoptic`, or `coco-panoptic-{split}`); the PNGs of
    every document are in `coco-panoptic/`."""
    fmt = doc
    path = os.path.join(out, paths.coco_json(doc))
    folder = os.path.join(out, "coco-panoptic")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        report.fail(fmt, f"cannot load it: {e}")
        return {}
    sizes = {img["id"]: (img["height"], img["width"]) for img in doc["images"]}
    cats = {c["id"]: c for c in doc["categories"]}
    segments = 0
    for ann in doc["annotations"]:
        where = f"image {ann['image_id']}"
        png_path = os.path.join(folder, ann["file_name"])
        try:
            mode, rgb = read_png(png_path)
        except OSError as e:
            report.fail(fmt, f"{where}: PNG unreadable: {e}")
            continue
        if mode != "RGB" or rgb.shape[:2] != sizes.get(ann["image_id"]):
            report.fail(fmt, f"{where}: PNG is {mode} {rgb.shape[:2]}, want RGB {sizes.get(ann['image_id'])}")
            continue
        rgb = rgb.astype(np.uint32)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        present = set(np.unique(ids).tolist()) - {0}
        infos = ann["segments_info"]
        seg_ids = [s["id"] for s in infos]
        if len(set(seg_ids)) != len(seg_ids) or 0 in seg_ids:
            report.fail(fmt, f"{where}: segment ids not unique or 0")
        if present != set(seg_ids):
            report.fail(fmt, f"{where}: PNG colours and segments_info ids differ")
        stuff = [s["category_id"] for s in infos if not cats.get(s["category_id"], {}).get("isthing")]
        if len(stuff) != len(set(stuff)):
            report.fail(fmt, f"{where}: a stuff category has several segments")
        for s in infos:
            segments += 1
            if s["category_id"] not in cats:
                report.fail(fmt, f"{where}: segment {s['id']} has unknown category {s['category_id']}")
            mask = ids == s["id"]
            if mask.any() and (int(mask.sum()) != s["area"] or extent(mask) != s["bbox"]
                               or s.get("iscrowd") != 0):
                report.fail(fmt, f"{where}: segment {s['id']} area/bbox/iscrowd do not match its pixels")
    try:
        pq = _hotcoco_pq(path, folder, report) if not report.problems.get(fmt) else None
    except (ValueError, RuntimeError, KeyError) as e:  # hotcoco refuses inconsistent files
        report.fail(fmt, f"hotcoco cannot evaluate it: {e}")
        pq = None
    if pq is not None and abs(pq - 1.0) > 1e-9:
        report.fail(fmt, f"hotcoco PQ of the file against itself = {100 * pq:.2f}, not 100")
    report.summary[fmt] = (f"{len(doc['annotations'])} images, {segments} segments"
                           + (f", hotcoco self-PQ {100 * pq:.1f}" if pq is not None else ""))
    return sizes


def _hotcoco_pq(path: str, folder: str, report: Report) -> float | None:
    try:
        from hotcoco.panoptic import pq_compute
    except ImportError:
        report.skip("hotcoco")
        return None
    with open(path, encoding="utf-8") as f:
        if not any(a["segments_info"] for a in json.load(f)["annotations"]):
            return None  # PQ is undefined without segments
    result = quiet(pq_compute, path, path, folder, folder)
    return float(result["All"]["pq"]) if result["All"]["pq"] <= 1.0 else float(result["All"]["pq"]) / 100
