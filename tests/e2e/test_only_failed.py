"""--only_failed: re-export what failed, and get the export a faultless run would have made.

The release's bitmaps for a few samples are missing at first (HTTP 404), among names that
collide and straddle COCO, manifest and chunk boundaries; they appear, and `--only_failed`
completes the export in place. Every file (outputs and ledger) must then equal a full
export made when all bitmaps were there; a sample that still fails stays listed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from benchmarks import synth
from pipeline import config as config_mod
from pipeline.run import run
from tests.conftest import tree
from tests.faultserver import FaultServer
from transforms.state import ledger

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
NAMES = {0: "a.jpg", 5: "a__10.jpg", 9: "a.jpg", 13: "A.png", 2: "dir/x.jpg", 15: "dir\\x.jpg"}
LATE = (1, 9, 12)  # bitmaps that appear between the runs (9 also has a colliding name)
GONE = (11,)  # a bitmap that never appears
UNLABELED = (7,)
STATE = ".export-state"


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    with FaultServer(str(root)) as s:
        yield s


@pytest.fixture
def served(server):
    root, url = server.root, server.url
    truth = synth.make_release(root, samples=16, height=24, width=32, instances=4, seed=5,
                               base_url=url)
    entries = []
    for i, t in enumerate(truth):
        bitmap = t.bitmap_file
        if i in LATE or i in GONE:
            bitmap = f"late/{i}.png"
        entries.append(synth.sample_entry(NAMES.get(i, t.name), t.uuid, url + t.image_file,
                                          url + bitmap, None if i in UNLABELED else t.annotations))
    path = synth.write_release(root, entries)

    def publish_late_bitmaps():
        os.makedirs(os.path.join(root, "late"), exist_ok=True)
        for i in LATE:
            shutil.copy(os.path.join(root, truth[i].bitmap_file), os.path.join(root, "late", f"{i}.png"))

    return path, publish_late_bitmaps


def _export(path, out, *extra):
    return run(["--release", path, "--output", str(out), "--coco_shard_size", "3",
                "--manifest_rows_per_shard", "5", *extra])


def _outputs(folder) -> dict[str, bytes]:
    """Every file except state.json and with the ledger generation folder name dropped."""
    out = {}
    for rel, data in tree(str(folder)).items():
        parts = rel.split(os.sep)
        if parts[0] == STATE:
            if parts[-1] == "state.json":
                continue
            rel = os.path.join(STATE, parts[-1])  # gen-00000N/ledger-... -> ledger-...
        out[rel] = data
    return out


def _failed_positions(folder) -> list[int]:
    return [json.loads(line)["position"]
            for line in (folder / "failures.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("mode", [["--chunk_samples", "0"], ["--chunk_samples", "4"]],
                         ids=["one-pipeline", "chunked"])
def test_only_failed_completes_the_export_byte_for_byte(served, tmp_path, mode):
    path, publish_late_bitmaps = served
    out, clean = tmp_path / "out", tmp_path / "clean"
    first = _export(path, out, *mode, *IN_MEMORY)
    assert first["samples_failed"] == len(LATE + GONE)
    assert _failed_positions(out) == sorted(LATE + GONE)
    images_before = {k: v for k, v in tree(str(out)).items() if k.startswith("images")}

    publish_late_bitmaps()
    plan = _export(path, out, *mode, "--only_failed", "--dry_run")
    assert plan["only_failed"] == len(LATE + GONE) and _failed_positions(out) == sorted(LATE + GONE)
    again = _export(path, out, *mode, *IN_MEMORY, "--only_failed")
    # Only the failed samples went through the export step.
    assert again["samples_exported"] == len(LATE) and again["samples_failed"] == len(GONE)
    _export(path, clean, *mode, *IN_MEMORY)
    completed, reference = _outputs(out), _outputs(clean)
    assert sorted(completed) == sorted(reference)
    assert [k for k in completed if completed[k] != reference[k]] == []
    # What the comparison covers: every global file, the ledger, the new samples' files.
    assert {"coco-instance.json", "coco-panoptic.json", "failures.jsonl", "report.json",
            "preview.png", "data.yaml", os.path.join(STATE, "ledger-0000000.pickle")} <= set(completed)
    new_images = {k for k in completed if k.startswith("images")} - set(images_before)
    assert len(new_images) == len(LATE)
    # Position 9 collides with 0 ("a.jpg") and with the literal "a__10" of position 5.
    assert os.path.join("images", "a__10_2.jpg") in new_images
    assert all(tree(str(out))[k] == v for k, v in images_before.items())  # untouched
    assert _failed_positions(out) == list(GONE)
    report = json.loads((out / "report.json").read_text())
    assert report["samples"]["exported"] == 16 - len(GONE + UNLABELED)
    assert report["samples"]["failed"] == len(GONE)
    rows = pq.read_table(str(out / "manifest")).to_pylist()
    assert [r["status"] for r in rows if r["position"] in LATE] == ["exported"] * len(LATE)
    doc = json.loads((out / "coco-instance.json").read_text())
    ids = [a["id"] for a in doc["annotations"]]
    assert ids == list(range(1, len(ids) + 1))
    assert not (out / ".tmp-export").exists()
    assert sorted(os.listdir(out / STATE)) == ["gen-000001", "state.json"]

    # Nothing left to fix: a second --only_failed re-exports the one failure and changes nothing.
    third = _export(path, out, *mode, *IN_MEMORY, "--only_failed")
    assert third.get("samples_exported", 0) == 0 and third["samples_failed"] == len(GONE)
    assert _outputs(out) == completed


def test_only_failed_refuses_another_release_or_other_options(served, tmp_path):
    path, _ = served
    out = tmp_path / "out"
    with pytest.raises(config_mod.ConfigError, match="holds no finished export"):
        _export(path, out, *IN_MEMORY, "--only_failed")
    _export(path, out, *IN_MEMORY, "--formats", "coco-instance,yolo")
    with pytest.raises(config_mod.ConfigError, match=r"formats was \['coco-instance', 'yolo'\]"):
        _export(path, out, *IN_MEMORY, "--only_failed")
    with pytest.raises(config_mod.ConfigError, match="id_increment was 0, now 1"):
        _export(path, out, *IN_MEMORY, "--formats", "coco-instance,yolo", "--id_increment", "1",
                "--only_failed")
    with open(path, "a", encoding="utf-8") as f:
        f.write("\n")  # same JSON, different bytes: a different release file
    with pytest.raises(config_mod.ConfigError, match="release file's content changed"):
        _export(path, out, *IN_MEMORY, "--formats", "coco-instance,yolo", "--only_failed")


def test_a_killed_run_leaves_no_state_to_complete(served, tmp_path):
    """state.json is written last: an export that did not finish cannot be 'completed'."""
    path, _ = served
    out = tmp_path / "out"
    _export(path, out, *IN_MEMORY)
    os.remove(out / STATE / "state.json")  # what a run killed before its end leaves
    with pytest.raises(config_mod.ConfigError, match="no finished export"):
        _export(path, out, *IN_MEMORY, "--only_failed")


def test_only_failed_interrupted_anywhere_and_run_again_completes_the_export(
        served, server, tmp_path, monkeypatch):
    path, publish_late_bitmaps = served
    out, clean = tmp_path / "out", tmp_path / "clean"
    _export(path, out, *IN_MEMORY)
    publish_late_bitmaps()
    stale = _outputs(out)

    # 1. Killed while re-exporting (its whole process group, at the second late bitmap).
    hold = server.hold("/late/", nth=2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--release", path, "--output", str(out),
         "--coco_shard_size", "3", "--manifest_rows_per_shard", "5", "--only_failed"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    hold.kill_when_reached(proc, "a second late bitmap")
    assert ledger.read_state(str(out))[0] == 0  # the ledger did not move
    assert {k: v for k, v in _outputs(out).items() if k in stale} == stale  # globals untouched

    # 2. Crashed after the new ledger became current, before any global file was rebuilt.
    def crash(self, task):
        raise RuntimeError("killed while rebuilding")

    with monkeypatch.context() as m:
        m.setattr(ledger.Rebuild, "run", crash)
        with pytest.raises(Exception, match="killed while rebuilding"):
            _export(path, out, *IN_MEMORY, "--only_failed")
    assert ledger.read_state(str(out))[0] == 1
    assert _failed_positions(out) == sorted(LATE + GONE)  # still the stale failures file

    # 3. Run again: complete, and equal to a faultless full export.
    _export(path, out, *IN_MEMORY, "--only_failed")
    _export(path, clean, *IN_MEMORY)
    assert _outputs(out) == _outputs(clean)
    assert not (out / ".tmp-export").exists()
    assert sorted(os.listdir(out / STATE)) == ["gen-000002", "state.json"]
