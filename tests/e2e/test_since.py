"""--since: a new release exported into the previous export's folder, re-exporting only what
changed, must give exactly the export a full run of the new release gives.

Release v1 has 12 samples (names that collide, a folder). Release v2, downloaded again with
every URL re-signed, inserts a new sample first (shifting image ids), drops one, changes
two labels, renames one, unlabels one and appends a new sample whose name collides.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks import synth
from pipeline import config as config_mod
from pipeline.run import run
from tests.conftest import tree
from tests.faultserver import FaultServer
from transforms.state import ledger
from transforms.storage import pickles

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
STATE = ".export-state"
NAMES = {0: "a.jpg", 6: "a.jpg", 9: "A.png", 2: "dir/x.jpg"}
REMOVED, CHANGED, RENAMED, UNLABELED = 4, (3, 8), 10, 7


def _signed(url: str, version: str) -> str:
    return f"{url}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=2026{version}&X-Amz-Signature={version}"


@pytest.fixture
def releases(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    with FaultServer(str(root)) as server:
        url = server.url
        a = synth.make_release(str(root / "a"), samples=12, height=24, width=32, instances=4,
                               seed=5, base_url=url + "a/")
        b = synth.make_release(str(root / "b"), samples=14, height=24, width=32, instances=4,
                               seed=6, base_url=url + "b/")

        def entry(t, base, version, name=None, annotations=None, bitmap=None, unlabeled=False):
            return synth.sample_entry(
                name or t.name, t.uuid, _signed(url + base + t.image_file, version),
                _signed(url + (bitmap or base + t.bitmap_file), version),
                None if unlabeled else (annotations if annotations is not None else t.annotations))

        v1 = [entry(t, "a/", "v1", name=NAMES.get(i)) for i, t in enumerate(a)]
        v2 = [entry(b[12], "b/", "v2", name="new_first.jpg")]
        for i, t in enumerate(a):
            if i == REMOVED:
                continue
            if i in CHANGED:  # a new label: drawn again, stored under a new URL
                v2.append(entry(t, "a/", "v2", name=NAMES.get(i), annotations=b[i].annotations,
                                bitmap="b/" + b[i].bitmap_file))
            elif i == RENAMED:
                v2.append(entry(t, "a/", "v2", name="renamed.jpg"))
            else:
                v2.append(entry(t, "a/", "v2", name=NAMES.get(i), unlabeled=i == UNLABELED))
        v2.append(entry(b[13], "b/", "v2", name="a.jpg"))
        (root / "r1").mkdir()
        (root / "r2").mkdir()
        p1 = synth.write_release(str(root / "r1"), v1, name="v1")
        p2 = synth.write_release(str(root / "r2"), v2, name="v2")
        # The label files a --since run must fetch, and nothing else.
        changed = ({"/b/" + b[k].bitmap_file for k in (12, 13, *CHANGED)}
                   | {"/a/" + a[RENAMED].bitmap_file})
        yield server, p1, p2, changed


def _export(path, out, *extra):
    return run(["--release", path, "--output", str(out), "--coco_shard_size", "3",
                "--manifest_rows_per_shard", "5", *extra])


def _outputs(folder) -> dict[str, bytes]:
    """Every file; the ledger's entries unpacked (their position-dependent fields were
    rewritten, their pickles need not be byte-equal), state.json without the generation."""
    out = {}
    for rel, data in tree(str(folder)).items():
        parts = rel.split(os.sep)
        if parts[0] == STATE:
            if parts[-1] == "state.json":
                continue
            rel = os.path.join(STATE, parts[-1])  # gen-00000N/ledger-... -> ledger-...
            data = repr([(e[0], e[1], pickles.unpack(e[2]), e[3])
                         for e in pickles.read_pickles(os.path.join(str(folder), *parts))])
        out[rel] = data
    return out


@pytest.mark.parametrize("mode", [["--chunk_samples", "0"], ["--chunk_samples", "4"]],
                         ids=["one-pipeline", "chunked"])
def test_since_rewrites_only_what_changed_and_equals_a_full_export(releases, tmp_path, mode):
    server, v1, v2, changed = releases
    out, clean = tmp_path / "out", tmp_path / "clean"
    _export(v1, out, *mode, *IN_MEMORY)
    before = tree(str(out))

    plan = _export(v2, out, *mode, "--since", str(out), "--dry_run")
    # v2: 13 samples; 7 kept (0, 1, 2, 5, 6, 9, 11 of v1); the 5 changed or new and the
    # unlabeled one (a skipped row, nothing to fetch) go through the reader again.
    assert plan["since"] == {"reused": 7, "export": 6, "previous": 12}
    server.reset()
    counts = _export(v2, out, *mode, *IN_MEMORY, "--since", str(out))
    fetched = {h.path for h in server.hits}
    assert {p for p in fetched if "/labels/" in p} == changed
    assert counts["samples_exported"] == len(changed)
    record = json.loads((out / "run.json").read_text())
    assert record["mode"] == "since" and record["samples"] == {
        "in_release": 13, "exported_by_this_run": len(changed), "failed_in_this_run": 0,
        "skipped_in_this_run": 1, "kept_from_previous_export": 7}

    _export(v2, clean, *mode, *IN_MEMORY)
    updated, reference = _outputs(out), _outputs(clean)
    assert sorted(updated) == sorted(reference)
    assert [k for k in updated if updated[k] != reference[k]] == []
    # What the comparison covers: the global files, and per-sample files kept from v1
    # byte for byte (a reused sample was not written again).
    assert {"coco-instance.json", "coco-panoptic.json", "manifest/manifest-00000-of-00003.parquet",
            "report.json", "preview.png", "data.yaml"} <= set(updated)
    kept = os.path.join("semantic", "sample_00011_label_ground-truth_semantic.png")
    assert updated[kept] == before[kept]
    # The removed, unlabeled and renamed samples' files are gone.
    for stem in ("sample_00004", "sample_00007", "sample_00010"):
        assert not [k for k in updated
                    if os.path.basename(k).split(".")[0].split("_label_")[0] == stem], stem
        assert [k for k in before if os.path.basename(k).split(".")[0].split("_label_")[0] == stem]
    assert not (out / ".tmp-export").exists()
    assert sorted(os.listdir(out / STATE)) == ["gen-000001", "state.json"]

    # Nothing changed since: a second run exports nothing and changes nothing.
    server.reset()
    again = _export(v2, out, *mode, *IN_MEMORY, "--since", str(out))
    assert again.get("samples_exported", 0) == 0
    assert not {h.path for h in server.hits if "/labels/" in h.path}
    assert _outputs(out) == reference


def test_since_refuses_what_it_cannot_update(releases, tmp_path):
    _, v1, v2, _ = releases
    out = tmp_path / "out"
    with pytest.raises(config_mod.ConfigError, match="holds no finished export"):
        _export(v2, out, *IN_MEMORY, "--since", str(out))
    _export(v1, out, *IN_MEMORY, "--formats", "coco-instance,yolo")
    with pytest.raises(config_mod.ConfigError, match="is not the --output folder"):
        _export(v2, tmp_path / "elsewhere", *IN_MEMORY, "--since", str(out))
    with pytest.raises(config_mod.ConfigError, match=r"formats was \['coco-instance', 'yolo'\]"):
        _export(v2, out, *IN_MEMORY, "--since", str(out))
    with pytest.raises(config_mod.ConfigError, match="choose one"):
        _export(v2, out, *IN_MEMORY, "--formats", "coco-instance,yolo", "--since", str(out),
                "--only_failed")


def test_since_interrupted_anywhere_and_run_again_equals_a_full_export(
        releases, tmp_path, monkeypatch):
    server, v1, v2, _ = releases
    out, clean = tmp_path / "out", tmp_path / "clean"
    _export(v1, out, *IN_MEMORY)

    # 1. Killed while exporting the changed samples (its whole process group, at the
    #    second changed label it asks for).
    hold = server.hold("/b/labels/", nth=2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--release", v2, "--output", str(out),
         "--coco_shard_size", "3", "--manifest_rows_per_shard", "5", "--since", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    hold.kill_when_reached(proc, "a second changed label")
    assert ledger.read_state(str(out))[0] == 0  # the previous export is still the current one

    # 2. Crashed after the new ledger became current, before any global file was rebuilt.
    def crash(self, task):
        raise RuntimeError("killed while rebuilding")

    with monkeypatch.context() as m:
        m.setattr(ledger.Rebuild, "run", crash)
        with pytest.raises(Exception, match="killed while rebuilding"):
            _export(v2, out, *IN_MEMORY, "--since", str(out))
    assert ledger.read_state(str(out))[0] == 1

    # 3. Run again: the export a full run of v2 gives, nothing temporary left.
    _export(v2, out, *IN_MEMORY, "--since", str(out))
    _export(v2, clean, *IN_MEMORY)
    assert _outputs(out) == _outputs(clean)
    assert not (out / ".tmp-export").exists()
