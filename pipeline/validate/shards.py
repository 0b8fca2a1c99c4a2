"""Checks of --split and of the shard formats (hf-parquet, webdataset).

  * splits: every exported sample of the manifest has exactly one of the requested splits
    (none without --split), the counts per split equal report.json's; each split's COCO
    documents hold exactly its samples' images, disjoint across splits; each YOLO list
    names exactly its split's copied images.
  * hf-parquet: shard names `{split}-NNNNN-of-NNNNN.parquet` complete and consistent; the rows
    (read with pyarrow) are the split's exported samples; with `datasets` installed,
    `load_dataset(OUT/hf)` gives the same examples per split and decodes each split's first.
  * webdataset: every tar lists whole records (members of a key together, a `.json` and an
    image each), each record's split is its manifest split, one record per exported
    sample; with `webdataset` installed, `WebDataset(...)` iterates the same records.
  A reader that is not installed is named in the summary line as skipped.
"""

from __future__ import annotations

import glob
import json
import os
import re
import tarfile
import tempfile

from pipeline.validate.common import Report
from transforms.model import paths

_HF_SHARD = re.compile(r"^(\w+)-(\d{5})-of-(\d{5})\.parquet$")


def _report_json(out: str) -> dict:
    try:
        with open(os.path.join(out, paths.REPORT), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def check_splits(out: str, report: Report, rows: list[dict]) -> None:
    fmt = "splits"
    summary = _report_json(out)
    requested = list(summary.get("splits") or [])
    exported = [r for r in rows if r["status"] == "exported"]
    by_split: dict[str, list[dict]] = {s: [] for s in requested}
    for r in exported:
        split = r.get("split")
        if split not in by_split:
            report.fail(fmt, f"row {r['position']}: exported with split {split!r}, not one of "
                             f"{requested}")
        else:
            by_split[split].append(r)
    counted = {s: {"exported": len(v), "failed": sum(
        1 for r in rows if r["status"] == "failed" and r.get("split") == s)}
               for s, v in by_split.items()}
    if counted != summary.get("splits"):
        report.fail(fmt, f"counts per split {counted} differ from report.json's "
                         f"{summary.get('splits')}")
    sequence = summary.get("release", {}).get("task_type") == "image-vector-sequence"
    for doc_fmt in paths.COCO_FORMATS:
        seen: set[int] = set()
        for split, members in by_split.items():
            path = os.path.join(out, f"{doc_fmt}-{split}.json")
            if not os.path.exists(path):
                continue
            with open(path, encoding="utf-8") as f:
                ids = {im["id"] for im in json.load(f)["images"]}
            if ids & seen:
                report.fail(fmt, f"{doc_fmt}: images in more than one split: {sorted(ids & seen)[:5]}")
            seen |= ids
            if not sequence and ids != {r["image_id"] for r in members}:
                report.fail(fmt, f"{doc_fmt}-{split}.json: images are not the split's samples")
    for split, members in by_split.items():
        path = os.path.join(out, f"{split}.txt")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            listed = [line.strip() for line in f if line.strip()]
        missing = [line for line in listed if not os.path.exists(os.path.join(out, line))]
        if missing:
            report.fail(fmt, f"{split}.txt: {missing[0]} does not exist")
        firsts = {"./" + r["image_path"] for r in members if r.get("image_path")}
        if not firsts <= set(listed) or (not sequence and len(listed) != len(firsts)):
            report.fail(fmt, f"{split}.txt does not list exactly the split's images")
    report.summary[fmt] = (", ".join(f"{s} {len(v)}" for s, v in by_split.items())
                           + " exported samples, each in one split")


def _expected(rows: list[dict], requested: list[str]) -> dict[str, set[str]]:
    """{split: uuids} of the exported samples with an image (the shard records)."""
    out: dict[str, set[str]] = {}
    for r in rows:
        if r["status"] == "exported" and r.get("image_path"):
            out.setdefault(r.get("split") or "train", set()).add(r["uuid"])
    return out


def check_hf(out: str, report: Report, rows: list[dict]) -> None:
    import pyarrow.parquet as pq

    fmt = "hf-parquet"
    requested = list(_report_json(out).get("splits") or ["train"])
    want = _expected(rows, requested)
    hf_names = {"val": "validation"}
    files = sorted(os.listdir(os.path.join(out, "hf", "data")))
    got: dict[str, set[str]] = {}
    shards: dict[str, list[tuple[int, int]]] = {}
    for name in files:
        m = _HF_SHARD.match(name)
        if not m:
            report.fail(fmt, f"hf/data/{name}: not a {{split}}-NNNNN-of-NNNNN.parquet name")
            continue
        shards.setdefault(m.group(1), []).append((int(m.group(2)), int(m.group(3))))
        uuids = pq.read_table(os.path.join(out, "hf", "data", name), columns=["uuid"]).column(0)
        got.setdefault(m.group(1), set()).update(uuids.to_pylist())
    for split, numbers in shards.items():
        n = numbers[0][1]
        if sorted(numbers) != [(k, n) for k in range(n)]:
            report.fail(fmt, f"{split}: shards are not 0..{n - 1} of {n}")
    expected = {hf_names.get(s, s): v for s, v in want.items()}
    if got != expected:
        report.fail(fmt, "the Parquet rows are not each split's exported samples")
    loaded = "datasets not installed: load_dataset skipped"
    try:
        import datasets
    except ImportError:
        datasets = None
        report.skip("datasets")
    if datasets is not None and not report.problems.get(fmt):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never the network
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        with tempfile.TemporaryDirectory(prefix="segments-validate-hf-") as cache:
            ds = datasets.load_dataset(os.path.join(out, "hf"), cache_dir=cache)
            for split, uuids in expected.items():
                if split not in ds or set(ds[split]["uuid"]) != uuids:
                    report.fail(fmt, f"load_dataset: split {split} does not hold its samples")
                elif len(ds[split]):
                    ds[split][0]  # decodes the image columns of one example
            loaded = "load_dataset ok"
    report.summary[fmt] = (", ".join(f"{s} {len(v)} in {len(shards.get(s, []))} shards"
                                     for s, v in expected.items()) + f"; {loaded}")


def check_webdataset(out: str, report: Report, rows: list[dict]) -> None:
    fmt = "webdataset"
    requested = list(_report_json(out).get("splits") or ["train"])
    want = _expected(rows, requested)
    split_of = {r["uuid"]: r.get("split") or "train" for r in rows}
    urls = sorted(glob.glob(os.path.join(out, "webdataset", "*.tar")))
    records, got = 0, {}
    for url in urls:
        split = os.path.basename(url).rsplit("-", 1)[0]
        keys: list[str] = []
        members: dict[str, dict[str, bytes]] = {}
        with tarfile.open(url) as tar:
            for m in tar.getmembers():
                key = m.name.split("/")[-1].split(".", 1)[0]
                key = m.name[: len(m.name) - len(m.name.split("/")[-1])] + key
                if not keys or keys[-1] != key:
                    if key in members:
                        report.fail(fmt, f"{os.path.basename(url)}: record {key} is not contiguous")
                    keys.append(key)
                ext = m.name[len(key) + 1:]
                members.setdefault(key, {})[ext] = (
                    tar.extractfile(m).read() if ext == "json" else b"")
        for key in keys:
            exts = members[key]
            if "json" not in exts or len(exts) < 2:
                report.fail(fmt, f"{os.path.basename(url)}: record {key} lacks its json or image")
                continue
            info = json.loads(exts["json"])
            records += 1
            got.setdefault(split, set()).add(info["uuid"])
            if split_of.get(info["uuid"]) != split or info.get("split") != split:
                report.fail(fmt, f"{os.path.basename(url)}: record {key} is not in its split")
    if got != want:
        report.fail(fmt, "the records are not each split's exported samples")
    iterated = "webdataset not installed: WebDataset iteration skipped"
    try:
        import webdataset as wds
    except ImportError:
        wds = None
        report.skip("webdataset")
    if wds is not None and urls:
        n = sum(1 for _ in wds.WebDataset(urls, shardshuffle=False))
        if n != records:
            report.fail(fmt, f"webdataset.WebDataset iterates {n} records, the tars hold {records}")
        iterated = "WebDataset iteration ok"
    report.summary[fmt] = f"{records} records in {len(urls)} tars; {iterated}"
