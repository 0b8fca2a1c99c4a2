"""Incremental benchmark: `--since` against a full export, when a few labels change.

    python -m benchmarks.incremental                 # 2000 samples; 1% changed, 1% new, 1% removed
    python -m benchmarks.incremental --samples 10000 --changed 0.05

Generates a seeded segmentation release (v1) and a second download of it (v2: every URL
re-signed, a share of the labels changed, new samples appended, some removed), serves both on
127.0.0.1 and runs the real command (`python -m pipeline`, DirectRunner with every core,
every format, images copied): a full export of v1, then `--since` to v2 in the same folder,
then a full export of v2 in another folder. Prints the wall times, the speed-up, how many
bitmaps each run fetched, and whether the updated folder equals the full export of v2 byte for
byte (every file outside `.export-state/`, whose ledger pickles may differ in bytes only).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchmarks import synth
from tests.faultserver import FaultServer


def _digests(root: str) -> dict[str, str]:
    """{relative path: sha256} of every file but the ledger and run.json (this run's timing:
    the one file that differs between runs)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        if os.path.relpath(dirpath, root).split(os.sep)[0] == ".export-state":
            continue
        for name in files:
            if name == "run.json" and dirpath == root:
                continue
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def _run(release_url: str, out: str, *extra: str) -> float:
    cmd = [sys.executable, "-m", "pipeline", "--release", release_url, "--output", out, *extra]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        sys.exit(f"export failed:\n{proc.stderr[-3000:]}")
    return wall


def _sign(url: str, version: str) -> str:
    return f"{url}?X-Amz-Date=2026{version}&X-Amz-Signature={version}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--instances", type=int, default=8)
    p.add_argument("--changed", type=float, default=0.01, help="share of labels changed")
    p.add_argument("--new", type=float, default=0.01, help="share of samples added")
    p.add_argument("--removed", type=float, default=0.01, help="share of samples removed")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "segments-bench"))
    args = p.parse_args(argv)

    root = os.path.join(args.workdir, f"incremental-s{args.samples}")
    shutil.rmtree(root, ignore_errors=True)
    synth.make_release(root, samples=args.samples, height=args.height, width=args.width,
                       instances=args.instances, seed=3, keep_truth=False)
    with open(os.path.join(root, "release.json"), encoding="utf-8") as f:
        release = json.load(f)
    samples = release["dataset"]["samples"]
    n = len(samples)
    every = {k: max(1, round(1 / share)) if share else 0
             for k, share in (("changed", args.changed), ("new", args.new),
                              ("removed", args.removed))}

    def signed(s: dict, version: str) -> dict:
        s = copy.deepcopy(s)
        s["attributes"]["image"]["url"] = _sign(s["attributes"]["image"]["url"], version)
        bitmap = s["labels"]["ground-truth"]["attributes"]["segmentation_bitmap"]
        bitmap["url"] = _sign(bitmap["url"], version)
        return s

    v1 = [signed(s, "v1") for s in samples]
    v2, changed, removed = [], 0, 0
    for i, s in enumerate(samples):
        if every["removed"] and i % every["removed"] == every["removed"] // 2:
            removed += 1
            continue
        s = signed(s, "v2")
        if every["changed"] and i % every["changed"] == 1:
            # A new label: another sample's drawing, stored under its own URL.
            other = samples[(i + 1) % n]["labels"]["ground-truth"]
            s["labels"]["ground-truth"] = signed({"attributes": {"image": {"url": ""}},
                                                  "labels": {"ground-truth": other}},
                                                 "v2")["labels"]["ground-truth"]
            changed += 1
        v2.append(s)
    added = n // every["new"] if every["new"] else 0
    for k in range(added):
        s = signed(samples[k % n], "v2")
        s["uuid"], s["name"] = f"new-{k:08d}", f"new_{k:06d}.jpg"
        v2.append(s)
    for name, entries in (("v1", v1), ("v2", v2)):
        release["name"], release["dataset"]["samples"] = name, entries
        with open(os.path.join(root, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(release, f)

    out, clean = os.path.join(args.workdir, "incremental-out"), os.path.join(args.workdir,
                                                                             "incremental-clean")
    for folder in (out, clean):
        shutil.rmtree(folder, ignore_errors=True)
    with FaultServer(root) as server:
        full_v1 = _run(server.url + "v1.json", out)
        server.reset()
        since = _run(server.url + "v2.json", out, "--since", out)
        since_labels = sum(1 for h in server.hits if h.path.startswith("/labels/"))
        server.reset()
        full_v2 = _run(server.url + "v2.json", clean)
        full_labels = sum(1 for h in server.hits if h.path.startswith("/labels/"))
    updated, reference = _digests(out), _digests(clean)
    differ = sorted(k for k in set(updated) | set(reference) if updated.get(k) != reference.get(k))
    same = not differ
    print(f"v1 {n} samples; v2 {len(v2)} samples: {changed} labels changed, {added} new, "
          f"{removed} removed, every URL re-signed")
    print(f"{'run':<22}{'wall s':>8}{'bitmaps fetched':>17}")
    print(f"{'full export of v1':<22}{full_v1:>8.1f}{'':>17}")
    print(f"{'--since to v2':<22}{since:>8.1f}{since_labels:>17}")
    print(f"{'full export of v2':<22}{full_v2:>8.1f}{full_labels:>17}")
    print(f"speed-up {full_v2 / since:.1f}x; updated folder equals the full export of v2: "
          f"{'yes' if same else 'NO'}")
    if differ:
        sys.exit("differing files: " + ", ".join(differ[:10]))


if __name__ == "__main__":
    main()
