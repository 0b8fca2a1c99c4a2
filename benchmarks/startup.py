"""Start-up and per-sample overhead of the real command on small releases.

    python -m benchmarks.startup                 # the bundled example, 60 and 160 1080p samples
    python -m benchmarks.startup --runs 5

Prints, per release and per local runner mode (the default choice, one process, two worker
processes): the wall time and CPU of `python -m pipeline` (medians of --runs), samples/s;
then the import time of the launcher, and the marginal CPU of one more 1080p sample in
coco-instance alone (from the 60- and 160-sample runs) next to what its decode and format
cost in-process: the difference is what a sample costs outside the kernel (fetching,
copying, writing, what crosses Beam's boundaries).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import synth
from benchmarks.server import StaticServer
from pipeline import EXAMPLE_RELEASE

MODES = {
    "default": [],
    "one process": ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
    "2 workers": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
}


def _run(args: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the command and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True,
                          text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"export failed: {proc.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _median_run(args: list[str], runs: int) -> tuple[float, float]:
    walls, cpus = zip(*(_run(args) for _ in range(runs)))
    return statistics.median(walls), statistics.median(cpus)


def _import_seconds(runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "import pipeline.run"], check=True)
        times.append(time.monotonic() - t0)
    return statistics.median(times)


def _release(workdir: str, samples: int) -> str:
    root = os.path.join(workdir, f"startup-{samples}")
    if not os.path.exists(os.path.join(root, "release.json")):
        synth.make_release(root, samples=samples, height=1080, width=1920, instances=30,
                           seed=3, keep_truth=False)
    return root


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--samples", type=int, nargs=2, default=(60, 160), metavar=("SMALL", "LARGE"))
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "segments-bench"))
    ap.add_argument("--no_kernel", action="store_true",
                    help="skip the in-process kernel measurement (e.g. on older code)")
    args = ap.parse_args(argv)

    print(f"import pipeline.run: {_import_seconds(args.runs):.2f} s")
    with tempfile.TemporaryDirectory(prefix="startup-out-") as out:
        rows = [("bundled example (6 samples, 4 exported)", EXAMPLE_RELEASE, 4, [])]
        roots = {}
        with StaticServer(args.workdir) as server:
            for n in args.samples:
                roots[n] = _release(args.workdir, n)
                url = f"{server.url}{os.path.basename(roots[n])}/release.json"
                rows.append((f"{n} samples 1920x1080, all formats", url, n, []))
                rows.append((f"{n} samples 1920x1080, coco-instance", url, n,
                             ["--formats", "coco-instance"]))
            print(f"{'release':44s} {'mode':12s} {'wall':>7s} {'cpu':>7s} {'samples/s':>9s}")
            results = {}
            for name, url, n, extra in rows:
                for mode, flags in MODES.items():
                    wall, cpu = _median_run(["--release", url, "--output", out, *extra,
                                             *flags], args.runs)
                    results[(name, mode)] = (wall, cpu)
                    print(f"{name:44s} {mode:12s} {wall:6.2f}s {cpu:6.2f}s {n / wall:9.1f}",
                          flush=True)
        small, large = args.samples
        name = "samples 1920x1080, coco-instance"
        for mode in MODES:
            cpu_small = results[(f"{small} {name}", mode)][1]
            cpu_large = results[(f"{large} {name}", mode)][1]
            per = 1000 * (cpu_large - cpu_small) / (large - small)
            print(f"marginal CPU of one more sample, coco-instance, {mode}: {per:.1f} ms")
    if not args.no_kernel:
        kernel = _kernel_ms(roots[small], 20)
        print(f"in-process, one core: decode + coco-instance {kernel:.1f} ms a sample")


def _kernel_ms(root: str, samples: int) -> float:
    """CPU ms of decoding the bitmap and computing coco-instance, in-process (median)."""
    from transforms import release
    from transforms.formats import bitmap
    from transforms.formats.sample_export import ExportSettings, export_sample
    from transforms.model.taxonomy import Taxonomy

    with open(os.path.join(root, "release.json"), "rb") as f:
        info = release.release_info(release.scan_header(f), release.Selection())
    settings = ExportSettings(formats=("coco-instance",), labelset="ground-truth",
                              taxonomy=Taxonomy(info.categories))
    times = []
    with open(os.path.join(root, "release.json"), "rb") as f:
        for i, raw in zip(range(samples), release.iter_raw_samples(f, info.samples_prefix)):
            sample = release.parse_sample(raw, i, i, info)
            with open(os.path.join(root, sample.bitmap_url), "rb") as g:
                data = g.read()
            t = time.process_time()
            export_sample(sample, bitmap.decode_id_map(data), settings, ".jpg")
            times.append(time.process_time() - t)
    return 1000 * statistics.median(times)


if __name__ == "__main__":
    main()
