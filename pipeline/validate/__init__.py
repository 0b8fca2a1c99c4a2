"""Re-open an export with the readers users load it with and print a verdict per format.

    python -m pipeline.validate OUT [--eval_images N]        (OUT local, gs:// or s3://)
    python -m pipeline --validate ...        (validates right after the export)

Exit code 0 when every format present passes, 1 otherwise. Checks:
  * manifest + failures.jsonl: readable, every artifact listed exists, failed rows and the
    failure report agree;
  * coco-instance (and coco-keypoints, alike): loads in pycocotools; ids unique and dense from 1; every annotation's
    mask decodes to `area` pixels within `bbox` (vector releases: boxes and polygons lie in
    the image and their area matches the shape); categories and images referenced exist;
    COCOeval of the file against itself gives AP = 1.0 for bbox and segm (bbox only when
    some annotations are boxes without a mask) over the shapes, and for keypoints (OKS, one
    keypoint per category, sigma KEYPOINT_SIGMA) over the points, each a visible keypoint
    in the image with bbox [x, y, 0, 0] and area W * H; with
    faster-coco-eval installed, its (stricter) RLE decoder must agree on every mask;
  * coco-panoptic: every PNG decodes, its colours are exactly the segment ids of its
    `segments_info` (id != 0, unique), areas and boxes match the pixels, one segment per
    stuff category; with hotcoco installed, PQ of the file against itself is 100;
  * yolo: data.yaml lists classes 0..N-1, every label line is `class xc yc w h` with a known
    class and coordinates in [0, 1]; yolo-seg: every line is `class x1 y1 ...` with 3+ points
    in [0, 1] (bitmap polygons in coco-instance must rasterise to their area and bbox);
  * PNG formats: every file decodes with the documented mode and the image's size;
  * --split: every exported sample in exactly one split, counts as in report.json, each
    split's COCO documents and YOLO list hold exactly its samples (`shards.check_splits`);
  * hf-parquet and webdataset: every exported sample once, in its split's shards, read back
    with `datasets.load_dataset` and `webdataset.WebDataset` when they are installed (the
    summary says which reader was skipped).
"""

from __future__ import annotations

import os
import sys

from pipeline.validate.coco import check_coco_instance, check_coco_panoptic, self_ap
from pipeline.validate.common import INSTALL_OPTIONAL, OPTIONAL, Report
from pipeline.validate.files import PNG_MODES, check_manifest, check_pngs, check_yolo, formats_of
from pipeline.validate.shards import check_hf, check_splits, check_webdataset
from transforms import storage
from transforms.model import paths

__all__ = ["Report", "check_coco_instance", "check_coco_panoptic", "check_hf", "check_manifest",
           "check_pngs", "check_splits", "check_webdataset", "check_yolo", "print_report",
           "self_ap", "validate"]


def validate(out: str, eval_images: int = 1000) -> Report:
    """Checks the export in `out`: a local folder, or a gs:// or s3:// one, which is first
    copied to a temporary local folder (without the ledger) and checked there."""
    if storage.scheme(out):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="segments-validate-") as local:
            storage.download_tree(out, local, skip=(paths.STATE_DIR, paths.TEMP_DIR))
            return validate(local, eval_images)
    report = Report()
    rows = check_manifest(out, report).get("rows", [])
    sizes: dict = {}
    docs = [paths.coco_document(fmt, split) for fmt in paths.COCO_FORMATS
            for split in (None, *paths.SPLIT_NAMES)]
    for doc in docs:
        if os.path.exists(os.path.join(out, paths.coco_json(doc))):
            if doc.startswith(("coco-instance", "coco-keypoints")):
                sizes.update(check_coco_instance(out, report, eval_images, doc))
            else:
                sizes.update(check_coco_panoptic(out, report, doc))
    if os.path.exists(os.path.join(out, paths.YOLO_DATA_YAML)):
        formats = formats_of(out) or ["yolo"]
        if "yolo" in formats:
            check_yolo(out, report)
        if "yolo-seg" in formats:
            check_yolo(out, report, "yolo-seg", "labels-seg" if "yolo" in formats else "labels")
    for fmt in PNG_MODES:
        if os.path.isdir(os.path.join(out, fmt)):
            check_pngs(out, fmt, report, rows, sizes)
    if rows and "split" in rows[0]:
        check_splits(out, report, rows)
    if os.path.isdir(os.path.join(out, paths.HF_DIR, "data")):
        check_hf(out, report, rows)
    if os.path.isdir(os.path.join(out, paths.WEBDATASET_DIR)):
        check_webdataset(out, report, rows)
    return report


def print_report(report: Report, stream=sys.stdout) -> None:
    names = list(report.summary) + [f for f in report.problems if f not in report.summary]
    width = max([15] + [len(f) + 1 for f in names])  # split documents have longer names
    for fmt in names:
        problems = report.problems.get(fmt, [])
        verdict = "ok" if not problems else f"FAILED ({len(problems)} problems)"
        print(f"{fmt:{width}s} {verdict:22s} {report.summary.get(fmt, '')}", file=stream)
        for p in problems:
            print(f"    - {p}", file=stream)
    for reader in sorted(report.skipped):
        print(f"{'skipped':15s} {reader} not installed: not checked that {OPTIONAL[reader]}; "
              f"to check it: {INSTALL_OPTIONAL}", file=stream)
