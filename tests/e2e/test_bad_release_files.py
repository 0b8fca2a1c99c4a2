"""Bad release files through the real command (`python -m pipeline`, `--images none`).

A file that cannot be read (truncated anywhere, a single value too large to hold) fails
before any work: exit code 2, one `error:` line naming the problem, no traceback, nothing
written. A file whose samples are broken (wrong types, 100,000 nested `[`, duplicate uuids)
exports every other sample; each broken one is a row of failures.jsonl and of the manifest
naming the field, identically with and without chunks, and --dry_run announces them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from benchmarks import synth
from benchmarks.procmem import run_measured
from tests.conftest import tree

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
DEEP = 100_000


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def _assert_refused(result: subprocess.CompletedProcess, out, message: str) -> None:
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m pipeline: error: ") and message in last, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not out.exists()


@pytest.fixture
def good_release(tmp_path):
    """Four labelled samples whose bitmaps exist (relative URLs); the release as text."""
    synth.make_release(str(tmp_path), samples=4, height=16, width=20, instances=2, seed=5)
    return (tmp_path / "release.json").read_bytes()


# --------------------------------------------------------------------------- whole file


def _cuts(data: bytes) -> dict[str, int]:
    second = data.index(b'{"uuid": "00000000-0000-4000-8000-000000000001"')
    return {
        "inside the header": data.index(b'"task_attributes"') + 12,
        "between two samples": second - 1,
        "in the middle of a sample": second + 80,
        "right after the last sample": data.rindex(b"]}}"),
    }


@pytest.mark.parametrize("where", ["inside the header", "between two samples",
                                   "in the middle of a sample", "right after the last sample"])
def test_a_truncated_release_fails_before_any_output(tmp_path, good_release, where):
    path = tmp_path / "cut.json"
    path.write_bytes(good_release[: _cuts(good_release)[where]])
    out = tmp_path / "out"
    result = _cli("--release", str(path), "--output", str(out), "--images", "none", *IN_MEMORY)
    _assert_refused(result, out, "release file is not valid JSON (error at or before byte ")


def test_a_string_too_large_to_hold_fails_before_any_output(tmp_path, good_release):
    rel = json.loads(good_release)
    rel["dataset"]["samples"][2]["metadata"] = {"blob": "x" * (20 * 2**20)}
    path = tmp_path / "blob.json"
    path.write_text(json.dumps(rel))
    out = tmp_path / "out"
    result = _cli("--release", str(path), "--output", str(out), "--images", "none", *IN_MEMORY)
    _assert_refused(result, out, "release file: a JSON string or number of more than 16 MiB")
    assert "(in dataset.samples[2])" in result.stderr


# --------------------------------------------------------------------------- broken samples

# position -> (what is broken, the failure reason it must give)
BROKEN = {
    1: ("name", "name: expected a string, got a number"),
    3: ("deep", "metadata: nested more than 128 levels deep"),
    4: ("labels", "labels: expected an object keyed by labelset, got an array"),
    5: ("url", "attributes.image.url: expected a string, got an array"),
    6: ("duplicate", "uuid: duplicate uuid (first at position 0)"),
    7: ("not an object", "sample: expected an object, got an array"),
    9: ("duplicate", "uuid: duplicate uuid (first at position 2)"),
}


@pytest.fixture
def broken_release(tmp_path):
    """Ten samples: 0, 2 and 8 good, the others broken as in BROKEN; plus 100,000 nested
    `[` under an unknown top-level key. One line of JSON."""
    truth = synth.make_release(str(tmp_path), samples=10, height=16, width=20, instances=2,
                               seed=6)
    rel = json.loads((tmp_path / "release.json").read_text())
    samples = rel["dataset"]["samples"]
    samples[1]["name"] = 17
    samples[3]["metadata"] = "@@deep@@"
    samples[4]["labels"] = ["ground-truth"]
    samples[5]["attributes"]["image"]["url"] = ["images/sample_00005.jpg"]
    samples[6]["uuid"] = samples[0]["uuid"]
    samples[7] = ["not", "a", "sample"]
    samples[9]["uuid"] = samples[2]["uuid"]
    rel["junk"] = "@@deep@@"
    text = json.dumps(rel, separators=(",", ":"))
    text = text.replace('"@@deep@@"', "[" * DEEP + "]" * DEEP)
    path = tmp_path / "broken.json"
    path.write_text(text)
    return str(path), truth


def _export(release: str, out, *extra: str) -> dict:
    return run_measured([sys.executable, "-m", "pipeline", "--release", release, "--output",
                         str(out), "--images", "none", *IN_MEMORY, *extra], cwd=ROOT)


def test_broken_samples_fail_alone_and_the_others_export(broken_release, tmp_path):
    path, truth = broken_release
    out = tmp_path / "out"
    run = _export(path, out, "--chunk_samples", "0")
    assert "Traceback" not in run["stderr"]
    assert "10 samples, 10 selected -> 3 exported, 7 failed, 0 skipped" in run["stderr"]
    # 100,000 nested `[`: ijson's prefixes alone would have needed ~25 GB.
    assert run["peak_rss_mb_largest_process"] < 600  # 175 MB measured

    rows = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [r["position"] for r in rows] == sorted(BROKEN)
    for r in rows:
        assert r["stage"] == "read"
        assert r["reason"] == BROKEN[r["position"]][1], r
    named = {r["position"]: (r["uuid"], r["name"]) for r in rows}
    assert named[3] == (truth[3].uuid, truth[3].name)  # a sample never built is still named
    assert named[6] == (truth[0].uuid, truth[6].name)
    assert named[1] == (truth[1].uuid, truth[1].uuid)  # no usable name: its uuid stands in

    manifest = pq.read_table(out / "manifest").to_pylist()
    assert [m["status"] for m in manifest] == [
        "failed" if i in BROKEN else "exported" for i in range(10)]
    # Samples whose label status cannot be read (3, 4, 7) are not selected and take no
    # image id; the other failed ones keep theirs.
    assert [m["image_id"] for m in manifest] == [1, 2, 3, None, None, 4, 5, None, 6, 7]
    coco = json.loads((out / "coco-instance.json").read_text())
    assert [im["file_name"] for im in coco["images"]] == [
        truth[i].name for i in (0, 2, 8)]
    assert sorted(os.listdir(out / "semantic")) == [
        f"{truth[i].name[:-4]}_label_ground-truth_semantic.png" for i in (0, 2, 8)]


def test_broken_samples_chunked_are_byte_identical_to_one_pipeline(broken_release, tmp_path):
    path, _ = broken_release
    one, chunked = tmp_path / "one", tmp_path / "chunked"
    _export(path, one, "--chunk_samples", "0")
    _export(path, chunked, "--chunk_samples", "2")
    a, b = tree(str(one)), tree(str(chunked))
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []
    assert b"duplicate uuid (first at position 2)" in a["failures.jsonl"]


def test_dry_run_announces_the_broken_samples(broken_release, tmp_path):
    path, _ = broken_release
    out = tmp_path / "out"
    result = _cli("--release", path, "--output", str(out), "--dry_run")
    assert result.returncode == 0, result.stderr
    assert "would export 3 samples" in result.stdout
    assert "7 malformed samples would fail, e.g.:" in result.stdout
    for position, (_, reason) in BROKEN.items():
        assert f"#{position}: {reason}" in result.stdout
    assert not out.exists()


# --------------------------------------------------------------------------- long lines


def test_a_few_mb_single_line_release_is_planned_in_full(tmp_path):
    n = 8000
    entries = [synth.sample_entry(f"s_{i:05d}.jpg", f"00000000-0000-4000-8000-{i:012d}",
                                  f"https://assets.example/i/{i}.jpg",
                                  f"https://assets.example/l/{i}.png",
                                  [{"id": 1, "category_id": 1}]) for i in range(n)]
    path = synth.write_release(str(tmp_path), entries)
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) > 2 * 2**20 and data.count(b"\n") == 0
    result = _cli("--release", path, "--output", str(tmp_path / "out"), "--dry_run")
    assert result.returncode == 0, result.stderr
    assert f"{n} samples; label status: LABELED {n}" in result.stdout
    assert f"would export {n} samples" in result.stdout


def test_a_name_of_megabytes_exports_under_a_cut_stem(tmp_path):
    truth = synth.make_release(str(tmp_path), samples=3, height=16, width=20, instances=2,
                               seed=7)
    rel = json.loads((tmp_path / "release.json").read_text())
    long_name = "n" * (4 * 2**20) + ".jpg"
    rel["dataset"]["samples"][1]["name"] = long_name
    path = tmp_path / "long.json"
    path.write_text(json.dumps(rel))
    out = tmp_path / "out"
    result = _cli("--release", str(path), "--output", str(out), "--images", "none",
                  "--formats", "semantic", *IN_MEMORY)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "3 exported, 0 failed" in result.stderr
    names = sorted(os.listdir(out / "semantic"))
    assert len(names) == 3 and all(len(n) < 256 for n in names)
    manifest = pq.read_table(out / "manifest").to_pylist()
    assert manifest[1]["name"] == long_name and manifest[1]["status"] == "exported"
    assert manifest[0]["name"] == truth[0].name
