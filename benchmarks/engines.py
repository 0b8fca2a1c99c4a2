"""Engine benchmark: the same export on the DirectRunner, Prism, Flink and Spark.

    python -m benchmarks.engines                              # 200 samples, 1920x1080
    python -m benchmarks.engines --samples 50 --engines direct,prism

Generates one seeded release (1080p pictures, 30 instances each by default), serves it on
127.0.0.1 and exports it (the default formats) with the real command on each runner. Each
engine is started with `scripts/cluster.sh ENGINE up` (installed on first use), used for
one export and stopped with `down`, so that only one engine holds the machine's cores at a
time. Prints, per runner: samples/s and wall time of the export (the engine's start-up not
included; the launcher, job submission and the SDK workers' start-up are), CPU seconds of
the launcher's process tree (the engine's JVMs and a worker pool are not in it: they are
not its children), peak RSS of the launcher's tree, the time `up` took, and whether the
output tree is byte-identical to the DirectRunner's (`run.json` aside).
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
from benchmarks.procmem import run_measured
from benchmarks.server import StaticServer

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CLUSTER = os.path.join(_REPO, "scripts", "cluster.sh")
ENGINES = ("direct", "prism", "flink", "spark")


def _digests(out: str) -> dict[str, str]:
    found = {}
    for folder, _, files in os.walk(out):
        for name in files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, out)
            if rel == "run.json":
                continue
            with open(path, "rb") as f:
                found[rel] = hashlib.sha256(f.read()).hexdigest()
    return found


def _export(url: str, out: str, flags: list[str], samples: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    r = run_measured([sys.executable, "-m", "pipeline", "--release", url + "release.json",
                      "--output", out, *flags], cwd=_REPO)
    with open(os.path.join(out, "run.json"), encoding="utf-8") as f:
        record = json.load(f)
    return {"samples_per_s": round(samples / r["wall_s"], 2), "wall_s": round(r["wall_s"], 1),
            "launcher_tree_cpu_s": round(max(r["cpu_s"], r["cpu_s_all_processes"]), 1),
            "peak_rss_mb_launcher_tree": round(r["peak_rss_mb_all_processes"]),
            "exported": record["samples"]["exported_by_this_run"],
            "runner": record["runner"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.engines", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--instances", type=int, default=30)
    ap.add_argument("--engines", default=",".join(ENGINES),
                    help=f"comma-separated, from {', '.join(ENGINES)}")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "segments-bench"))
    args = ap.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        ap.error(f"--engines: unknown {', '.join(unknown)} (choose from {', '.join(ENGINES)})")
    root = synth.cached_release(args.workdir, args.samples, args.height, args.width,
                                 args.instances)
    results: dict[str, dict] = {}
    reference = None
    env = dict(os.environ, BEAM_PYTHON=sys.executable)  # the SDK workers' Python: this one
    with StaticServer(root) as server:
        for name in ["direct", *[e for e in engines if e != "direct"]]:
            out = os.path.join(args.workdir, f"out-engine-{name}")
            flags: list[str] = []
            up_s = 0.0
            if name != "direct":
                t0 = time.monotonic()
                up = subprocess.run(["bash", _CLUSTER, name, "up"], capture_output=True,
                                    text=True, check=False, env=env)
                up_s = time.monotonic() - t0
                if up.returncode != 0:
                    sys.exit(f"{name}: cluster.sh up failed: {up.stderr.strip()}")
                flags = up.stdout.strip().splitlines()[-1].split()
            try:
                print(f"exporting on {name} ...", file=sys.stderr)
                result = _export(server.url, out, flags, args.samples)
            finally:
                if name != "direct":
                    subprocess.run(["bash", _CLUSTER, name, "down"], capture_output=True,
                                   check=False, env=env)
            digests = _digests(out)
            if reference is None:
                reference = digests
            result["identical_to_direct"] = digests == reference
            result["engine_up_s"] = round(up_s, 1)
            results[name] = result
            if name != "direct":
                shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(os.path.join(args.workdir, "out-engine-direct"), ignore_errors=True)
    print(json.dumps({"samples": args.samples, "size": f"{args.width}x{args.height}",
                      "instances": args.instances, "cores": os.cpu_count(),
                      "runners": {n: results[n] for n in results if n in engines
                                  or n == "direct"}}, indent=2))


if __name__ == "__main__":
    main()
