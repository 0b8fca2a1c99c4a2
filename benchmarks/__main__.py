"""Benchmark: generate a seeded release, serve it on 127.0.0.1, export it, report numbers.

    python -m benchmarks                          # 200 samples, 1920x1080, 30 instances
    python -m benchmarks --samples 50 --verify    # also check every artifact vs ground truth

Prints: end-to-end samples/second of the real command (`python -m pipeline`, DirectRunner
with every core, assets over HTTP), the peak RSS of the largest process, and the CPU
milliseconds per sample of each step (decode, then each format alone), measured in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks import synth
from benchmarks.server import StaticServer

FORMATS = ("coco-instance", "coco-panoptic", "yolo", "yolo-seg", "instance", "semantic",
           "instance-color", "semantic-color")
COCO_POLYGON = "coco-instance polygon"  # --coco_segmentation polygon


def _export(release_url: str, out: str, formats: str | None, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "pipeline", "--release", release_url, "--output", out, *extra]
    if formats:
        cmd += ["--formats", formats]
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"export failed:\n{proc.stderr[-3000:]}")
    done = [line for line in proc.stderr.splitlines() if " done in " in line]
    return {
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "peak_rss_mb": after.ru_maxrss / 1024,
        "summary": done[-1].split(": ", 1)[-1] if done else "",
    }


def _cpu_breakdown(root: str, samples: int) -> dict[str, float]:
    """CPU ms per sample: fetch+decode, then each format on its own (in-process, 1 core)."""
    from transforms import release
    from transforms.formats import bitmap
    from transforms.formats.sample_export import ExportSettings, export_sample
    from transforms.model.taxonomy import Taxonomy
    from transforms.model.types import Sample

    with open(os.path.join(root, "release.json"), "rb") as f:
        info = release.release_info(release.scan_header(f), release.Selection())
    tax = Taxonomy(info.categories)
    with open(os.path.join(root, "release.json"), "rb") as f:
        raws = [r for _, r in zip(range(samples), release.iter_raw_samples(f, info.samples_prefix))]
    times: dict[str, list[float]] = {"decode": []}
    for fmt in FORMATS:
        times[fmt] = []
    times[COCO_POLYGON] = []
    times["all formats"] = []
    for i, raw in enumerate(raws):
        s = release.parse_sample(raw, i, i, info)
        s = Sample(**{**s.__dict__, "stem": f"s{i}"})
        t = time.process_time()
        with open(os.path.join(root, s.bitmap_url), "rb") as f:
            id_map = bitmap.decode_id_map(f.read())
        times["decode"].append(time.process_time() - t)
        for fmt in FORMATS + (COCO_POLYGON, "all formats"):
            fmts = {"all formats": FORMATS, COCO_POLYGON: ("coco-instance",)}.get(fmt, (fmt,))
            settings = ExportSettings(formats=fmts, labelset="ground-truth", taxonomy=tax,
                                      coco_segmentation="polygon" if fmt == COCO_POLYGON
                                      else "rle")
            t = time.process_time()
            export_sample(s, id_map, settings, ".jpg")
            times[fmt].append(time.process_time() - t)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--instances", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=1, help="end-to-end runs (median reported)")
    ap.add_argument("--formats", default=None, help="comma-separated; default all seven")
    ap.add_argument("--images", choices=("copy", "none"), default="copy")
    ap.add_argument("--profile_samples", type=int, default=10,
                    help="samples for the per-format CPU breakdown (0 to skip)")
    ap.add_argument("--verify", action="store_true",
                    help="check every artifact against the drawn ground truth")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "segments-bench"))
    ap.add_argument("--sdk_python", default=None,
                    help="python of an environment with segments-ai installed: time the SDK on "
                         "the same release and print the ratios")
    ap.add_argument("pipeline_args", nargs="*", help="extra flags for the pipeline (after --)")
    args = ap.parse_args(argv)

    root = synth.cached_release(args.workdir, args.samples, args.height, args.width,
                                 args.instances, args.seed)
    out = os.path.join(args.workdir, "out")
    results, sdk_runs = [], []
    with StaticServer(root) as server:
        for _ in range(args.runs):
            results.append(_export(server.url + "release.json", out, args.formats,
                                   ["--images", args.images, *args.pipeline_args]))
        if args.sdk_python:
            for _ in range(args.runs):
                sdk_runs.append(_run_sdk(args.sdk_python, root, server.url, args))
    wall = statistics.median(r["wall_s"] for r in results)
    report = {
        "samples": args.samples,
        "size": f"{args.width}x{args.height}",
        "instances": args.instances,
        "formats": args.formats or "all",
        "runs": args.runs,
        "wall_s_median": round(wall, 2),
        "samples_per_s": round(args.samples / wall, 2),
        "cpu_ms_per_sample_end_to_end": round(1000 * statistics.median(r["cpu_s"] for r in results)
                                              / args.samples, 1),
        # Largest single process of the export (runner or SDK worker), from getrusage.
        "peak_rss_mb_largest_process": round(max(r["peak_rss_mb"] for r in results), 1),
        "cores": os.cpu_count(),
        "pipeline_summary": results[-1]["summary"],
    }
    if args.profile_samples:
        report["cpu_ms_per_sample"] = {k: round(v, 1) for k, v in
                                       _cpu_breakdown(root, min(args.profile_samples, args.samples)).items()}
    if sdk_runs:
        report["sdk"] = _sdk_report(sdk_runs, report, args)
    if args.verify:
        from benchmarks.verify import verify_export

        truth = _truth(root, args)
        problems = verify_export(out, truth, synth.CATEGORIES,
                                 image_sources=root if args.images == "copy" else None)
        report["verify"] = "every artifact matches the ground truth" if not problems else problems[:20]
    print(json.dumps(report, indent=2))
    if args.verify and problems:
        sys.exit(1)


SDK_FORMATS = ("coco-instance", "coco-panoptic", "instance", "semantic", "instance-color",
               "semantic-color")  # the SDK has no yolo for segmentation releases


def _run_sdk(sdk_python: str, root: str, base_url: str, args) -> dict:
    """One SDK run on the same files, served by the same server (absolute URLs)."""
    release = json.load(open(os.path.join(root, "release.json"), encoding="utf-8"))
    for s in release["dataset"]["samples"]:
        s["attributes"]["image"]["url"] = base_url + s["attributes"]["image"]["url"]
        label = s["labels"]["ground-truth"]["attributes"]
        label["segmentation_bitmap"]["url"] = base_url + label["segmentation_bitmap"]["url"]
    work = os.path.join(args.workdir, "sdk")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    path = os.path.join(work, "release.json")
    json.dump(release, open(path, "w", encoding="utf-8"))
    formats = [f for f in (args.formats.split(",") if args.formats else SDK_FORMATS)
               if f in SDK_FORMATS]
    runner = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sdk_runner.py")
    proc = subprocess.run([sdk_python, runner, path, os.path.join(work, "out"),
                           os.path.join(work, "cache"), ",".join(formats)],
                          capture_output=True, text=True, cwd=work)
    if proc.returncode != 0:
        sys.exit(f"SDK run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _sdk_report(runs: list[dict], ours: dict, args) -> dict:
    n = runs[0]["samples"]
    med = lambda xs: statistics.median(xs)  # noqa: E731
    wall = med([r["load"]["wall_s"] + sum(f["wall_s"] for f in r["formats"].values()) for r in runs])
    per_format = {f: round(1000 * med([r["formats"][f]["cpu_s"] for r in runs]) / n, 1)
                  for f in runs[0]["formats"]}
    load_ms = round(1000 * med([r["load"]["cpu_s"] for r in runs]) / n, 1)
    out = {
        "version_note": "segments-ai run in its own environment on the same served files",
        "samples_per_s": round(n / wall, 2),
        "cpu_ms_per_sample": {"load (download + decode)": load_ms, **per_format,
                              "total": round(load_ms + sum(per_format.values()), 1)},
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
        "crashed": runs[0]["crashed"],  # formats the SDK could not export (not in its total)
    }
    out["ratio_samples_per_s"] = round(ours["samples_per_s"] / out["samples_per_s"], 1)
    if "cpu_ms_per_sample" in ours:
        ours_total = ours["cpu_ms_per_sample"]["all formats"] + ours["cpu_ms_per_sample"]["decode"]
        out["ratio_cpu_per_sample"] = round(out["cpu_ms_per_sample"]["total"] / ours_total, 1)
    return out


def _truth(root: str, args):
    """The ground truth, decoded from the written bitmaps with plain numpy (not our decoder)."""
    from PIL import Image

    release = json.load(open(os.path.join(root, "release.json")))
    truth = []
    for s in release["dataset"]["samples"]:
        label = s["labels"]["ground-truth"]["attributes"]
        rgba = np.asarray(Image.open(os.path.join(root, label["segmentation_bitmap"]["url"])))
        id_map = (rgba[..., 0].astype(np.uint32) | rgba[..., 1].astype(np.uint32) << 8
                  | rgba[..., 2].astype(np.uint32) << 16)
        truth.append(synth.TruthSample(s["name"], s["uuid"], id_map, label["annotations"],
                                       label["segmentation_bitmap"]["url"], s["attributes"]["image"]["url"]))
    return truth


if __name__ == "__main__":
    main()
