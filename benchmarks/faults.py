"""Fault benchmark: the export's throughput when asset requests fail at random.

    python -m benchmarks.faults                        # 300 samples; 0%, 20%, 50% faults
    python -m benchmarks.faults --rates 0,0.2 --kinds 429,503,reset,slow -- --http_timeout 0.5

Generates a seeded release, serves it from the fault-injecting loopback server
(tests/faultserver.py) and runs the real command (`python -m pipeline`, DirectRunner with
every core, default retry settings) once per fault rate. Each asset request (image or
bitmap) fails with probability RATE, the kind drawn from --kinds, for at most --max_faults
consecutive attempts per asset (below the client's 5 attempts, so every sample can be
exported). Prints per rate: samples/s, wall time, exported and failed samples, requests and
faults injected (by kind), and whether the output is byte-identical to the 0% run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchmarks import synth
from tests.faultserver import QUICK, FaultServer


def _digest(root: str) -> str:
    """One hash of every file under root (relative path and bytes)."""
    h = hashlib.sha256()
    for dirpath, dirnames, files in os.walk(root):
        dirnames.sort()
        for name in sorted(files):
            if name == "run.json" and dirpath == root:
                continue  # this run's timing: the one file that differs between runs
            path = os.path.join(dirpath, name)
            h.update(os.path.relpath(path, root).encode() + b"\0")
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def _run(release_url: str, out: str, extra: list[str]) -> float:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "pipeline", "--release", release_url, "--output", out, *extra]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        sys.exit(f"export failed:\n{proc.stderr[-3000:]}")
    return wall


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--instances", type=int, default=8)
    p.add_argument("--rates", default="0,0.2,0.5", help="comma-separated fault rates")
    p.add_argument("--kinds", default=",".join(QUICK),
                   help="transient fault kinds (tests/faultserver.py); slow and stall cost "
                        "--http_timeout each")
    p.add_argument("--max_faults", type=int, default=2)
    p.add_argument("--latency", type=float, default=1.0,
                   help="seconds a slow or stalled answer waits (a timeout when above the "
                        "export's --http_timeout, given after --)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "segments-bench"))
    p.add_argument("extra", nargs="*", help="extra flags for the export (after --)")
    args = p.parse_args(argv)

    root = os.path.join(args.workdir, f"faults-s{args.samples}-{args.width}x{args.height}"
                                      f"-i{args.instances}")
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.monotonic()
    synth.make_release(root, samples=args.samples, height=args.height, width=args.width,
                       instances=args.instances, seed=args.seed, keep_truth=False)
    print(f"generated {args.samples} samples ({args.width}x{args.height}, {args.instances} "
          f"instances) in {time.monotonic() - t0:.1f} s; relative asset URLs, release served "
          "over HTTP", file=sys.stderr)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    rows, reference = [], None
    with FaultServer(root) as server:
        release_url = server.url + "release.json"
        for rate in (float(r) for r in args.rates.split(",")):
            server.reset(seed=args.seed, rate=rate, kinds=kinds, match=("/images/", "/labels/"),
                         max_faults=args.max_faults, latency=args.latency)
            out = os.path.join(args.workdir, "faults-out")
            wall = _run(release_url, out, args.extra)
            with open(os.path.join(out, "report.json")) as f:
                report = json.load(f)
            digest = _digest(out)
            if rate == 0 and reference is None:
                reference = digest
            assets = [h for h in server.hits if h.path.startswith(("/images/", "/labels/"))]
            faults = server.faults()
            rows.append({
                "rate": rate, "wall": wall,
                "rate_sps": report["samples"]["exported"] / wall,
                "exported": report["samples"]["exported"], "failed": report["samples"]["failed"],
                "requests": len(assets), "faults": sum(faults.values()),
                "by_kind": ", ".join(f"{k} {n}" for k, n in sorted(faults.items())),
                "identical": ("-" if rate == 0 or reference is None
                              else "yes" if digest == reference else "NO"),
            })
            print(f"rate {rate:.0%}: {wall:.1f} s", file=sys.stderr)
    print(f"{'faults':>6}  {'samples/s':>9}  {'wall s':>6}  {'exported':>8}  {'failed':>6}  "
          f"{'asset requests':>14}  {'injected':>8}  {'same bytes as 0%':>16}  by kind")
    for r in rows:
        print(f"{r['rate']:>6.0%}  {r['rate_sps']:>9.1f}  {r['wall']:>6.1f}  {r['exported']:>8}  "
              f"{r['failed']:>6}  {r['requests']:>14}  {r['faults']:>8}  {r['identical']:>16}  "
              f"{r['by_kind']}")


if __name__ == "__main__":
    main()
