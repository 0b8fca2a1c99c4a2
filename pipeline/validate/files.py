"""Checks of the per-sample files: the manifest and failure report, YOLO labels, PNG formats."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from pipeline.validate.common import Report, read_png
from transforms.model import paths

PNG_MODES = {
    "instance": ("I;16", "RGB"),  # gray16, or rgb24
    "semantic": ("L", "I;16"),
    "instance-color": ("RGB",),
    "semantic-color": ("RGB",),
}


def check_manifest(out: str, report: Report) -> dict:
    import pyarrow.parquet as pq

    folder = os.path.join(out, paths.MANIFEST_DIR)
    files = sorted(f for f in os.listdir(folder) if f.endswith(".parquet")) if os.path.isdir(folder) else []
    if not files:
        report.fail("manifest", "no manifest/*.parquet")
        return {}
    rows = []
    for f in files:
        rows += pq.read_table(os.path.join(folder, f)).to_pylist()
    positions = [r["position"] for r in rows]
    if positions != list(range(len(rows))):
        report.fail("manifest", "positions are not 0..N-1 in order across shards")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
        if r["status"] not in ("exported", "failed", "skipped"):
            report.fail("manifest", f"row {r['position']}: unknown status {r['status']!r}")
        for key, value in r.items():
            if key.endswith("_path") and value and not os.path.exists(os.path.join(out, value)):
                report.fail("manifest", f"row {r['position']}: {key} {value} does not exist")
    failures_path = os.path.join(out, paths.FAILURES)
    if os.path.exists(failures_path):
        with open(failures_path, encoding="utf-8") as f:
            failed = [json.loads(line)["position"] for line in f if line.strip()]
        if failed != [r["position"] for r in rows if r["status"] == "failed"]:
            report.fail("manifest", "failures.jsonl does not list exactly the failed rows")
    else:
        report.fail("manifest", "failures.jsonl is missing")
    report.summary["manifest"] = (f"{len(rows)} samples: " + ", ".join(
        f"{counts.get(s, 0)} {s}" for s in ("exported", "failed", "skipped")))
    return {"rows": rows}


def formats_of(out: str) -> list[str] | None:
    try:
        with open(os.path.join(out, paths.REPORT), encoding="utf-8") as f:
            return list(json.load(f)["options"]["formats"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_yolo(out: str, report: Report, fmt: str = "yolo", folder: str = "labels") -> None:
    import yaml

    try:
        with open(os.path.join(out, paths.YOLO_DATA_YAML), encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        report.fail(fmt, f"data.yaml unreadable: {e}")
        return
    names = data.get("names") or {}
    if sorted(names) != list(range(len(names))) or data.get("nc", len(names)) != len(names):
        report.fail(fmt, "data.yaml names are not classes 0..N-1")
    files = lines = 0
    for label in _files(os.path.join(out, folder), ".txt"):
        files += 1
        with open(label, encoding="ascii") as f:
            for n, line in enumerate(f, 1):
                lines += 1
                parts = line.split()
                if fmt == "yolo":
                    ok = len(parts) == 5
                else:  # a polygon of 3+ points (Ultralytics reads 5 values as a box)
                    ok = len(parts) >= 7 and len(parts) % 2 == 1
                ok = ok and parts[0].isdigit() and int(parts[0]) in names
                try:
                    values = [float(v) for v in parts[1:]] if ok else []
                except ValueError:
                    ok, values = False, []
                bad = not ok or not all(0.0 <= v <= 1.0 for v in values)
                if fmt == "yolo" and not bad:
                    bad = values[2] <= 0 or values[3] <= 0
                if bad:
                    report.fail(fmt, f"{os.path.relpath(label, out)}:{n}: bad line {line.strip()!r}")
    what = "boxes" if fmt == "yolo" else "polygons"
    report.summary[fmt] = f"{len(names)} classes, {files} label files, {lines} {what}"


def check_pngs(out: str, fmt: str, report: Report, rows: list[dict], sizes: dict) -> None:
    column = fmt.replace("-", "_") + "_path"
    count = 0
    for r in rows:
        rel = r.get(column)
        if not rel:
            continue
        count += 1
        try:
            mode, pixels = read_png(os.path.join(out, rel))
        except OSError as e:
            report.fail(fmt, f"{rel}: unreadable: {e}")
            continue
        if mode not in PNG_MODES[fmt]:
            report.fail(fmt, f"{rel}: mode {mode}, want {' or '.join(PNG_MODES[fmt])}")
        size = sizes.get(r["image_id"])
        if size is not None and pixels.shape[:2] != tuple(size):
            report.fail(fmt, f"{rel}: {pixels.shape[:2]} differs from the image size {size}")
    report.summary[fmt] = f"{count} PNGs"


def _files(folder: str, suffix: str) -> Iterable[str]:
    for dirpath, _, names in os.walk(folder):
        for name in sorted(names):
            if name.endswith(suffix):
                yield os.path.join(dirpath, name)
