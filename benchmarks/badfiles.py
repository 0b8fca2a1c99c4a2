"""Bad release files: wall time and peak memory of reading hostile releases.

    python -m benchmarks.badfiles                      # 2 GB files, reader and --dry_run
    python -m benchmarks.badfiles --size_mb 256 --no_dry_run

Generates, in a temporary folder (removed at the end unless --keep), single-line releases:
  * string: three samples, the second with one metadata string of SIZE (refused: a token
    over release.MAX_TOKEN_BYTES; the parser would hold it whole);
  * values: three samples, the second with VALUES of small metadata numbers (fails alone:
    a sample over release.MAX_VALUE_BYTES is never built);
  * plain: ordinary samples up to SIZE, every 10th repeating an earlier sample's uuid
    (the later ones fail as duplicates);
  * deep: DEPTH nested `[` in one sample's metadata, DEPTH nested `{"a":` in another's
    attributes, and DEPTH nested `[` under an unknown top-level key (those two samples fail
    alone; the junk is skipped).
Each is read in a subprocess the way a run reads it (`release.scan_header`, then every
sample through `release.decide`, as the launcher and the reader step do) and, unless
--no_dry_run, by `python -m pipeline --dry_run`. Prints the outcome, the wall time and the
peak RSS (VmHWM of the process, from /proc) of each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchmarks.procmem import TreeSampler

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MB = 2**20

_HEAD = ('{"name":"bad-files","description":"","dataset":{"name":"bench","owner":"bench",'
         '"task_type":"segmentation-bitmap","task_attributes":{"format_version":"0.1",'
         '"categories":[{"id":1,"name":"thing","has_instances":true}]},'
         '"labelsets":[{"name":"ground-truth","description":""}],"samples":[')
_TAIL = "]}}"
_SAMPLE = ('{{"uuid":"00000000-0000-4000-8000-{uuid:012d}","name":"folder/sample_{i:08d}.jpg",'
           '"metadata":{metadata},"attributes":{attributes},'
           '"labels":{{"ground-truth":{{"label_status":"LABELED","attributes":{{'
           '"format_version":"0.1","annotations":[{{"id":1,"category_id":1}},'
           '{{"id":2,"category_id":1}}],"segmentation_bitmap":{{"url":'
           '"https://assets.example.com/labels/{i:08d}.png?X-Amz-Signature=abc"}}}}}}}}}}')


def _sample(i: int, uuid: int | None = None, metadata: str = '{"split":"train"}',
            attributes: str | None = None) -> str:
    if attributes is None:
        attributes = (f'{{"image":{{"url":"https://assets.example.com/images/{i:08d}.jpg'
                      '?X-Amz-Signature=abc"}}')
    return _SAMPLE.format(i=i, uuid=i if uuid is None else uuid, metadata=metadata,
                          attributes=attributes)


def _write_big_sample(path: str, size: int, kind: str) -> None:
    """Three samples; the second's metadata is one string or a list of numbers of `size`."""
    marker = "@@METADATA@@"
    before, after = _sample(1, metadata=f'"{marker}"').split(f'"{marker}"')
    block = b"x" * _MB if kind == "string" else b"1," * (_MB // 2)
    with open(path, "wb") as f:
        f.write((_HEAD + _sample(0) + "," + before).encode())
        f.write(b'"' if kind == "string" else b"[")
        f.writelines(block for _ in range(size // _MB))
        f.write(b'"' if kind == "string" else b"1]")
        f.write((after + "," + _sample(2) + _TAIL).encode())


def _write_plain(path: str, size: int) -> int:
    """Ordinary samples up to `size` bytes, every 10th repeating the uuid of sample i - 5."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write(_HEAD)
        written = len(_HEAD)
        batch: list[str] = []
        while written < size:
            text = _sample(n, uuid=n - 5 if n % 10 == 9 else n)
            batch.append(text)
            written += len(text) + 1
            n += 1
            if len(batch) == 10_000:
                f.write(("," if n > len(batch) else "") + ",".join(batch))
                batch = []
        if batch:
            f.write(("," if n > len(batch) else "") + ",".join(batch))
        f.write(_TAIL)
    return n


def _write_deep(path: str, depth: int) -> None:
    deep_list = "[" * depth + "]" * depth
    deep_map = '{"a":' * depth + "1" + "}" * depth
    samples = [_sample(0), _sample(1, metadata=deep_list), _sample(2, attributes=deep_map),
               _sample(3)]
    text = _HEAD + ",".join(samples) + _TAIL
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"junk":' + deep_list + "," + text[1:])


_READ_SCRIPT = """
import json, sys, time
from transforms import release, storage
from transforms.model import errors
t0 = time.monotonic()
try:
    with storage.open_release(sys.argv[1]) as f:
        info = release.release_info(release.scan_header(f), release.Selection())
except errors.ReleaseError as e:
    print(json.dumps({"error": str(e), "scan_s": time.monotonic() - t0}))
    sys.exit(0)
t1 = time.monotonic()
counts, first = {"exported": 0, "failed": 0, "skipped": 0}, {}
with storage.open_release(sys.argv[1]) as f:
    for d in release.decide(f, info, release.Selection()):
        kind = "failed" if d.failed else "skipped" if d.skipped else "exported"
        counts[kind] += 1
        if d.failed and len(first) < 3:
            first.setdefault(d.failed.reason[:80], d.position)
print(json.dumps({"samples": info.sample_count, **counts, "scan_s": t1 - t0,
                  "decide_s": time.monotonic() - t1, "failures": first}))
"""


def _measure(cmd: list[str]) -> dict:
    """Runs `cmd`; its exit code, output, wall time and peak RSS (any exit code)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=_REPO)
    with TreeSampler(proc.pid) as sampler:
        out, err = proc.communicate()
    return {"code": proc.returncode, "stdout": out, "stderr": err,
            "wall_s": round(time.monotonic() - t0, 1),
            "peak_rss_mb": round(sampler.peak_single / _MB)}


def _reader(path: str) -> dict:
    r = _measure([sys.executable, "-c", _READ_SCRIPT, path])
    if r["code"] != 0:
        return {"wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"],
                "outcome": f"exit {r['code']}: {r['stderr'].strip()[-300:]}"}
    result = json.loads(r["stdout"])
    if "error" in result:
        outcome = f"refused: {result['error']}"
    else:
        outcome = (f"{result['samples']} samples: {result['exported']} exported, "
                   f"{result['failed']} failed, {result['skipped']} skipped; scan "
                   f"{result['scan_s']:.1f} s, decide {result['decide_s']:.1f} s; failures "
                   f"{result['failures']}")
    return {"wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"], "outcome": outcome}


def _dry_run(path: str, workdir: str) -> dict:
    r = _measure([sys.executable, "-m", "pipeline", "--release", path, "--output",
                  os.path.join(workdir, "out-dry-run"), "--dry_run"])
    lines = (r["stdout"] + r["stderr"]).strip().splitlines()
    keep = [ln for ln in lines if ln.startswith(("error:", "would export", "  "))
            or " malformed " in ln or "samples; label status" in ln]
    traceback = "Traceback" in r["stderr"]
    return {"wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"],
            "outcome": f"exit {r['code']}{' WITH TRACEBACK' if traceback else ''}: "
                       + " | ".join(ln.strip()[:160] for ln in keep[:6])}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.badfiles", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size_mb", type=int, default=2048,
                    help="size of the long string and of the plain release (MB)")
    ap.add_argument("--values_mb", type=int, default=256,
                    help="size of the sample made of small numbers (MB; ~3.5M numbers/s)")
    ap.add_argument("--depth", type=int, default=100_000, help="nesting of the deep junk")
    ap.add_argument("--cases", default="string,values,plain,deep")
    ap.add_argument("--no_dry_run", action="store_true", help="only the reader")
    ap.add_argument("--workdir", default=None, help="default: a new temporary folder")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    args = ap.parse_args(argv)

    workdir = args.workdir or tempfile.mkdtemp(prefix="segments-badfiles-")
    os.makedirs(workdir, exist_ok=True)
    rows = []
    try:
        for case in args.cases.split(","):
            path = os.path.join(workdir, f"{case}.json")
            t0 = time.monotonic()
            if case in ("string", "values"):
                _write_big_sample(path, (args.size_mb if case == "string" else args.values_mb)
                                  * _MB, case)
            elif case == "plain":
                _write_plain(path, args.size_mb * _MB)
            elif case == "deep":
                _write_deep(path, args.depth)
            else:
                raise SystemExit(f"unknown case {case!r}")
            size = os.path.getsize(path)
            print(f"generated {case}.json ({size / _MB:.0f} MB, one line) in "
                  f"{time.monotonic() - t0:.0f} s", file=sys.stderr)
            runs = [("reader", _reader(path))]
            if not args.no_dry_run:
                runs.append(("--dry_run", _dry_run(path, workdir)))
            for how, r in runs:
                rows.append({"case": case, "file_mb": round(size / _MB), "run": how, **r})
                print(json.dumps(rows[-1]), file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print("| case | file | run | wall | peak RSS | outcome |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['file_mb']} MB | {r['run']} | {r['wall_s']} s | "
              f"{r['peak_rss_mb']} MB | {r['outcome']} |")


if __name__ == "__main__":
    main()
