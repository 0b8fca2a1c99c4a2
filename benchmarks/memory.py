"""Memory benchmark: peak RSS against release size.

    python -m benchmarks.memory          # reader on 1M samples; segmentation 1k, 10k; bboxes 20k, 200k
    python -m benchmarks.memory --reader 0 --segmentation 1000,4000 --chunk_samples 1000

Prints one row per run and the ratios the project tracks:
  * reader: the release reader alone (header scan + streaming selection of every sample, as
    the pipeline's reader step does) on a generated N-sample release file;
  * segmentation: the real command (`python -m pipeline`, every format, DirectRunner with
    every core, assets over HTTP on 127.0.0.1) on generated releases of each size;
  * bboxes: the same for a bounding-box release (3 boxes per sample, image sizes read from
    the first bytes of each image: one HTTP Range request per sample).
Peak RSS is measured per process from /proc (VmHWM), for the launcher (the Beam runner,
which holds the data between steps on local runs), the largest process, and every process
together (sampled every 0.2 s).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time

from benchmarks import synth
from benchmarks.procmem import run_measured
from benchmarks.server import StaticServer


def _reader_release(workdir: str, samples: int, compress: bool) -> str:
    """A release of `samples` labelled samples (URLs only, no files), v2 layout."""
    name = f"reader-{samples}.json" + (".gz" if compress else "")
    path = os.path.join(workdir, name)
    if os.path.exists(path):
        return path
    os.makedirs(workdir, exist_ok=True)
    tmp = path + ".partial"
    t0 = time.monotonic()
    opener = gzip.open if compress else open
    with opener(tmp, "wt", encoding="utf-8") as f:
        head = {"name": "reader-bench", "description": "", "created_at": "2026-01-01",
                "dataset": {"name": "bench", "owner": "bench", "task_type": "segmentation-bitmap",
                            "task_attributes": {"format_version": "0.1",
                                                "categories": synth.CATEGORIES},
                            "labelsets": [{"name": "ground-truth"}], "samples": []}}
        text = json.dumps(head)
        f.write(text[: text.rindex("[]")] + "[")
        for i in range(samples):
            anns = [{"id": k + 1, "category_id": synth.THINGS[k % 3]} for k in range(8)]
            entry = synth.sample_entry(
                f"folder/sample_{i:07d}.jpg", f"00000000-0000-4000-8000-{i:012d}",
                f"https://assets.example.com/images/{i:07d}.jpg?X-Amz-Signature=abc",
                f"https://assets.example.com/labels/{i:07d}.png?X-Amz-Signature=abc", anns)
            f.write(("," if i else "") + json.dumps(entry))
        f.write("]}}")
    os.replace(tmp, path)
    print(f"generated {name} ({os.path.getsize(path) / 2**20:.0f} MB) in "
          f"{time.monotonic() - t0:.0f} s", file=sys.stderr)
    return path


_READ_SCRIPT = """
import sys
from transforms import release, storage
with storage.open_release(sys.argv[1]) as f:
    info = release.release_info(release.scan_header(f), release.Selection())
n = 0
with storage.open_release(sys.argv[1]) as f:
    for d in release.decide(f, info, release.Selection()):
        n += d.sample is not None
print(n)
"""


def reader_row(workdir: str, samples: int, compress: bool) -> dict:
    path = _reader_release(workdir, samples, compress)
    r = run_measured([sys.executable, "-c", _READ_SCRIPT, path], cwd=_REPO)
    assert int(r["stdout"].strip()) == samples
    return {"run": "reader" + (" (.gz)" if compress else ""), "samples": samples,
            "file_mb": round(os.path.getsize(path) / 2**20), **_numbers(r, samples)}


def _bboxes_release(workdir: str, samples: int) -> str:
    """A bboxes release: 3 boxes per sample; 100 image files, a distinct URL per sample."""
    root = os.path.join(workdir, f"bboxes-{samples}")
    if not os.path.exists(os.path.join(root, "release.json")):
        tmp = root + ".partial"
        shutil.rmtree(tmp, ignore_errors=True)
        t0 = time.monotonic()
        synth.make_vector_release(tmp, samples=samples, seed=0, task_type="bboxes",
                                  sizes=((640, 480), (480, 640), (1280, 720)),
                                  distinct_images=100, keep_truth=False)
        os.replace(tmp, root)
        print(f"generated bboxes-{samples} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return root


def export_row(kind: str, root: str, samples: int, args) -> dict:
    out = os.path.join(args.workdir, "out-memory")
    shutil.rmtree(out, ignore_errors=True)
    extra = ["--images", "none"]
    if args.chunk_samples is not None:
        extra += ["--chunk_samples", args.chunk_samples]
    with StaticServer(root) as server:
        r = run_measured([sys.executable, "-m", "pipeline", "--release",
                          server.url + "release.json", "--output", out, *extra], cwd=_REPO)
    done = [line for line in r["stderr"].splitlines() if " done in " in line]
    chunks = [line for line in r["stderr"].splitlines() if "split into" in line]
    shutil.rmtree(out, ignore_errors=True)
    return {"run": kind, "samples": samples,
            "chunks": int(chunks[-1].split("split into ")[1].split()[0]) if chunks else 1,
            **_numbers(r, samples), "summary": done[-1].split(": ", 1)[-1] if done else ""}


def _numbers(r: dict, samples: int) -> dict:
    return {"wall_s": round(r["wall_s"], 1),
            "samples_per_s": round(samples / r["wall_s"], 1),
            "launcher_mb": round(r["peak_rss_mb_launcher"]),
            "largest_process_mb": round(r["peak_rss_mb_largest_process"]),
            "all_processes_mb": round(r["peak_rss_mb_all_processes"])}


def _table(rows: list[dict]) -> str:
    cols = ["run", "samples", "chunks", "wall_s", "samples_per_s", "launcher_mb",
            "largest_process_mb", "all_processes_mb"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)


def _ratios(rows: list[dict], kind: str) -> dict | None:
    runs = sorted((r for r in rows if r["run"] == kind), key=lambda r: r["samples"])
    if len(runs) < 2:
        return None
    small, large = runs[0], runs[-1]
    return {"run": kind, "from": small["samples"], "to": large["samples"],
            **{k: round(large[k] / small[k], 2)
               for k in ("launcher_mb", "largest_process_mb", "all_processes_mb")}}


_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip() and int(s) > 0]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reader", default="1000000",
                    help="release sizes for the reader alone (comma-separated; 0 to skip)")
    ap.add_argument("--reader_gz", action="store_true", help="also read a .gz copy")
    ap.add_argument("--segmentation", default="1000,10000",
                    help="segmentation release sizes to export (comma-separated; 0 to skip)")
    ap.add_argument("--bboxes", default="20000,200000",
                    help="bboxes release sizes to export (comma-separated; 0 to skip)")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--instances", type=int, default=10)
    ap.add_argument("--chunk_samples", default=None, help="passed to the pipeline (default: auto)")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "segments-bench"))
    args = ap.parse_args(argv)

    rows = []
    for n in _sizes(args.reader):
        rows.append(reader_row(args.workdir, n, False))
        if args.reader_gz:
            rows.append(reader_row(args.workdir, n, True))
        print(json.dumps(rows[-1]), file=sys.stderr)
    for n in _sizes(args.segmentation):
        root = synth.cached_release(args.workdir, n, args.height, args.width, args.instances)
        rows.append(export_row("segmentation", root, n, args))
        print(json.dumps(rows[-1]), file=sys.stderr)
    for n in _sizes(args.bboxes):
        rows.append(export_row("bboxes", _bboxes_release(args.workdir, n), n, args))
        print(json.dumps(rows[-1]), file=sys.stderr)
    print(_table(rows))
    ratios = [r for r in (_ratios(rows, "segmentation"), _ratios(rows, "bboxes")) if r]
    for r in ratios:
        print(f"\npeak ratio {r['run']} {r['to']} / {r['from']} samples: launcher "
              f"{r['launcher_mb']}x, largest process {r['largest_process_mb']}x, all processes "
              f"{r['all_processes_mb']}x")
    print(json.dumps({"rows": rows, "ratios": ratios}, indent=1))


if __name__ == "__main__":
    main()
