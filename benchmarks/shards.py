"""Shard benchmark: what writing hf-parquet and webdataset costs on top of the same export.

    python -m benchmarks.shards                     # 10,000 samples, 320x240, 10 instances
    python -m benchmarks.shards --samples 2000 --runs 3 --shard_mb 16

Runs the real command (`python -m pipeline`, DirectRunner with every core, assets served on
127.0.0.1) on one generated release, twice per run: with --split and the per-sample formats,
then the same with hf-parquet and webdataset added. Prints, for each: samples/s, CPU per
sample (every process of the run, sampled from /proc), peak RSS (launcher, largest process, all
processes, from /proc), the shards written per format and split, and the extra CPU per
sample that the shards cost (the issue's budget: at most 15 %).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from benchmarks import synth
from benchmarks.procmem import run_measured
from benchmarks.server import StaticServer

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_FORMATS = "coco-instance,coco-panoptic,yolo,instance,semantic"
SHARD_FORMATS = "hf-parquet,webdataset"


def _shards(out: str) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for folder, fmt in (("hf/data", "hf-parquet"), ("webdataset", "webdataset")):
        path = os.path.join(out, folder)
        for name in sorted(os.listdir(path)) if os.path.isdir(path) else []:
            split = name.split("-", 1)[0]
            found.setdefault(fmt, {}).setdefault(split, 0)
            found[fmt][split] += 1
    return found


def _run(url: str, out: str, formats: str, args) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    r = run_measured([sys.executable, "-m", "pipeline", "--release", url + "release.json",
                      "--output", out, "--formats", formats, "--split", args.split,
                      "--shard_mb", str(args.shard_mb), *args.pipeline_args], cwd=_REPO)
    # getrusage misses the SDK worker processes (never waited for): /proc sees them all.
    return {"wall_s": r["wall_s"], "cpu_s": max(r["cpu_s"], r["cpu_s_all_processes"]),
            "peak_rss_mb_launcher": r["peak_rss_mb_launcher"],
            "peak_rss_mb_largest_process": r["peak_rss_mb_largest_process"],
            "peak_rss_mb_all_processes": r["peak_rss_mb_all_processes"],
            "shards": _shards(out)}


def _shard_step_cpu(root: str, out: str, args) -> float:
    """CPU ms per sample of writing the split lists and every shard again, in-process, from
    the ledger and files of the export in `out` (the tasks a run gives to its workers)."""
    from transforms import release
    from transforms.model.taxonomy import Taxonomy
    from transforms.state import ledger, shards

    with open(os.path.join(root, "release.json"), "rb") as f:
        info = release.release_info(release.scan_header(f), release.Selection())
    names, _ = release.parse_ratios(args.split)
    job = shards.LedgerOutputs(
        output=out, ledger=ledger.generation_dir(out, 0),
        formats=tuple((BASE_FORMATS + "," + SHARD_FORMATS).split(",")), split_names=names,
        shard_bytes=max(1, int(args.shard_mb * (1 << 20))), taxonomy=Taxonomy(info.categories),
        dataset_name=info.dataset_name, release_name=info.name, task_type=info.task_type)
    job.run_all()  # once to import what a worker imports once (pyarrow pulls in pandas)
    t0 = time.process_time()
    job.run_all()
    return 1000 * (time.process_time() - t0) / args.samples


def _summary(runs: list[dict], samples: int) -> dict:
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    return {"samples_per_s": round(samples / med("wall_s"), 1),
            "wall_s": round(med("wall_s"), 1),
            "cpu_ms_per_sample": round(1000 * med("cpu_s") / samples, 2),
            "peak_rss_mb_launcher": round(max(r["peak_rss_mb_launcher"] for r in runs)),
            "peak_rss_mb_largest_process": round(max(r["peak_rss_mb_largest_process"]
                                                     for r in runs)),
            "peak_rss_mb_all_processes": round(max(r["peak_rss_mb_all_processes"] for r in runs)),
            "shards": runs[-1]["shards"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.shards", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--instances", type=int, default=10)
    ap.add_argument("--runs", type=int, default=1, help="runs of each (medians reported)")
    ap.add_argument("--split", default="train=0.8,val=0.1,test=0.1")
    ap.add_argument("--shard_mb", type=float, default=500)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "segments-bench"))
    ap.add_argument("pipeline_args", nargs="*", help="extra flags for the pipeline (after --)")
    args = ap.parse_args(argv)
    root = synth.cached_release(args.workdir, args.samples, args.height, args.width,
                                 args.instances)
    out = os.path.join(args.workdir, "out-shards")
    base, sharded = [], []
    with StaticServer(root) as server:
        for _ in range(args.runs):  # interleaved, so machine noise hits both alike
            base.append(_run(server.url, out, BASE_FORMATS, args))
            sharded.append(_run(server.url, out, BASE_FORMATS + "," + SHARD_FORMATS, args))
    step = _shard_step_cpu(root, out, args)
    shutil.rmtree(out, ignore_errors=True)
    without, with_shards = _summary(base, args.samples), _summary(sharded, args.samples)
    report = {
        "samples": args.samples, "size": f"{args.width}x{args.height}",
        "instances": args.instances, "split": args.split, "shard_mb": args.shard_mb,
        "runs": args.runs, "cores": os.cpu_count(), "formats": BASE_FORMATS,
        "without_shards": {k: v for k, v in without.items() if k != "shards"},
        "with_shards": with_shards,
        "shard_cpu_overhead_pct": round(100 * (with_shards["cpu_ms_per_sample"]
                                               / without["cpu_ms_per_sample"] - 1), 1),
        # The shard step alone, run again in this process on the last export (its CPU time
        # does not depend on what else the machine runs as much as two whole runs do).
        "shard_step_cpu_ms_per_sample": round(step, 2),
        "shard_step_pct_of_export_without_shards": round(
            100 * step / without["cpu_ms_per_sample"], 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
