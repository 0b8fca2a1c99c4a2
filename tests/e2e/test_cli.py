"""The command line: bad input fails before any work with a one-line message; the bundled
example runs with no arguments but --output; a legacy v1 release exports."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import synth

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def _write(tmp_path, text):
    p = tmp_path / "release.json"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("content,message", [
    (None, "no such file"),
    ("{not json", "not valid JSON"),
    ('{"name": "r", "dataset": {"name": "d", "task_type": "segmentation-bitmap", "task_attributes": '
     '{"categories": []}, "labelsets": [{"name": "ground-truth"}], "samples": [', "not valid JSON"),
    ('[1, 2]', "top level must be a JSON object"),
    ('{"name": "r", "dataset": {"name": "d", "task_attributes": {"categories": []}, "labelsets": [], '
     '"samples": []}}', "dataset.task_type: missing"),
    ('{"name": "r", "dataset": {"name": "d", "task_type": "pointcloud-cuboid", "task_attributes": '
     '{"categories": []}, "labelsets": [{"name": "ground-truth"}], "samples": []}}',
     "dataset.task_type: 'pointcloud-cuboid' cannot be exported"),
    ('{"name": "r", "dataset": {"name": "d", "task_type": "segmentation-bitmap", "task_attributes": '
     '{"categories": [{"id": 1, "name": "a"}]}, "labelsets": [{"name": "preds"}], "samples": []}}',
     "no labelset named 'ground-truth' in this release (available: preds)"),
])
def test_broken_release_fails_before_any_output(tmp_path, content, message):
    path = str(tmp_path / "missing.json") if content is None else _write(tmp_path, content)
    out = tmp_path / "out"
    result = _cli("--release", path, "--output", str(out), "--direct_running_mode=in_memory")
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("python -m pipeline: error: ")
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_unknown_config_key_and_format_are_named(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("formats: [yolo]\nshard: 3\n")
    result = _cli("--config", str(cfg), "--output", str(tmp_path / "o"))
    assert result.returncode == 2 and "unknown setting 'shard'" in result.stderr
    result = _cli("--formats", "coco,yolo", "--output", str(tmp_path / "o"))
    assert result.returncode == 2 and "unknown format 'coco'" in result.stderr


def test_bundled_example_runs_with_only_output(tmp_path):
    out = tmp_path / "out"
    result = _cli("--output", str(out), cwd=str(tmp_path))  # not the repo: paths must not matter
    assert result.returncode == 0, result.stderr
    assert "4 exported, 0 failed, 2 skipped" in result.stderr
    doc = json.loads((out / "coco-instance.json").read_text())
    assert doc["info"] == {"description": "coins", "version": "v1.0"}
    assert len(doc["images"]) == 4 and len(doc["annotations"]) > 80
    for image in doc["images"]:
        assert (out / "images" / image["file_name"]).exists()
    # run.json: how this run went (report.json holds only what the export is).
    record = json.loads((out / "run.json").read_text())
    # A small release runs in one process: worker processes would cost more than they save.
    assert record["mode"] == "full" and record["runner"] == "DirectRunner (FnApiRunner, in_memory x1)"
    assert record["samples"]["in_release"] == 6 and record["samples"]["exported_by_this_run"] == 4
    assert record["wall_s"] > 0 and record["samples_per_s"] == pytest.approx(
        4 / record["wall_s"], rel=0.01)
    assert "wall" not in (out / "report.json").read_text()


def test_legacy_v1_release_exports(tmp_path):
    truth = synth.make_release(str(tmp_path), samples=2, instances=3, seed=3)
    v2 = json.loads((tmp_path / "release.json").read_text())["dataset"]
    legacy = {
        "name": "old", "description": "", "created_at": "2020-07-09",
        "tasks": [{"name": "segmentation", "description": "", "task_type": "segmentation-bitmap",
                   "attributes": {"categories": v2["task_attributes"]["categories"]}}],
        "samples": [{**s, "data_type": "IMAGE", "labels": {"segmentation": s["labels"]["ground-truth"]}}
                    for s in v2["samples"]],
    }
    path = tmp_path / "legacy.json"
    path.write_text(json.dumps(legacy))
    out = tmp_path / "out"
    result = _cli("--release", str(path), "--output", str(out), "--formats", "semantic",
                  "--direct_running_mode=in_memory")
    assert result.returncode == 0, result.stderr
    assert "v1 layout" in result.stderr
    names = sorted(os.listdir(out / "semantic"))
    assert names == [f"sample_{i:05d}_label_segmentation_semantic.png" for i in range(len(truth))]


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = _cli("--output", str(out), "--dry_run", "--filter_by", "labeled,unlabeled")
    assert result.returncode == 0, result.stderr
    # The bundled example: 2 LABELED, 2 REVIEWED, 1 SKIPPED (null attributes), 1 unlabeled.
    assert "6 samples; label status: LABELED 2, REVIEWED 2, SKIPPED 1, UNLABELED 1" in result.stdout
    assert "would export 2 samples to coco-instance" in result.stdout
    assert "skip       2  filtered out by --filter_by (status REVIEWED)" in result.stdout
    assert "skip       1  no label in this labelset" in result.stdout
    assert "chunks" not in result.stdout  # 6 samples: below the automatic chunk size
    assert not out.exists()


def test_dry_run_says_when_a_local_run_would_be_chunked(tmp_path):
    result = _cli("--output", str(tmp_path / "out"), "--dry_run", "--chunk_samples", "4")
    assert result.returncode == 0, result.stderr
    assert "in chunks of up to 4 samples (--chunk_samples)" in result.stdout


def test_help_documents_every_setting():
    import dataclasses

    from pipeline.config import ExportConfig

    result = _cli("--help")
    assert result.returncode == 0
    for field in dataclasses.fields(ExportConfig):
        assert f"--{field.name}" in result.stdout, field.name
    for beam_flag in ("--runner", "--dry_run", "--direct_num_workers"):
        assert beam_flag in result.stdout


def test_rerun_into_the_same_folder_replaces_the_previous_export(tmp_path):
    out = tmp_path / "out"
    first = _cli("--output", str(out), "--manifest_rows_per_shard", "2", "--direct_running_mode=in_memory")
    assert first.returncode == 0 and len(os.listdir(out / "manifest")) == 3
    second = _cli("--output", str(out), "--formats", "semantic", "--validate",
                  "--direct_running_mode=in_memory")
    assert second.returncode == 0, second.stdout + second.stderr
    assert os.listdir(out / "manifest") == ["manifest-00000-of-00001.parquet"]
    assert not (out / "coco-instance.json").exists() and not (out / "instance").exists()


def test_a_foreign_non_empty_folder_is_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    result = _cli("--output", str(tmp_path), "--direct_running_mode=in_memory")
    assert result.returncode == 2 and "is not empty and holds no previous export" in result.stderr
    assert os.listdir(tmp_path) == ["mine.txt"]


@pytest.mark.parametrize("increment,message", [
    ("-2", "category 1 (coin) + -2 = -1 does not fit a semantic PNG"),
    ("65535", "category 1 (coin) + 65535 = 65536 does not fit a semantic PNG"),
])
def test_semantic_values_out_of_range_fail_before_any_work(tmp_path, increment, message):
    out = tmp_path / "out"
    result = _cli("--output", str(out), "--id_increment", increment)
    assert result.returncode == 2 and message in result.stderr
    assert not out.exists()


def _release_with_one_bad_sample(tmp_path):
    truth = synth.make_release(str(tmp_path), samples=3, instances=2, seed=4)
    (tmp_path / truth[1].bitmap_file).write_bytes(b"corrupt")
    return str(tmp_path / "release.json")


@pytest.mark.parametrize("budget,code", [
    (["--max_failures", "0"], 3),
    (["--max_failures", "1"], 0),
    (["--max_failure_ratio", "0.2"], 3),   # 1 of 3 selected = 33 %
    (["--max_failure_ratio", "0.5"], 0),
])
def test_failure_budget(tmp_path, budget, code):
    out = tmp_path / "out"
    result = _cli("--release", _release_with_one_bad_sample(tmp_path), "--output", str(out),
                  "--direct_running_mode=in_memory", *budget)
    assert result.returncode == code, result.stderr
    if code:
        assert "python -m pipeline: error: failure budget exceeded: " in result.stderr
        assert "every other sample was exported" in result.stderr
    # Either way the outputs are complete for the two good samples.
    assert len(json.loads((out / "coco-instance.json").read_text())["images"]) == 2
    assert len((out / "failures.jsonl").read_text().splitlines()) == 1


# --------------------------------------------------------------------------- a strict command line


@pytest.mark.parametrize("args,message", [
    (["--dryrun"], "--dryrun: unknown flag (did you mean --dry_run?)"),
    (["--format", "coco-instance"], "--format: unknown flag (did you mean --formats?)"),
    (["--ouput", "DIR"], "--ouput: unknown flag (did you mean --output?)"),
    (["--filter-by", "labeled"], "--filter-by: unknown flag (did you mean --filter_by?)"),
    (["my_release.json"], "'my_release.json': unexpected argument; every setting is a --flag "
                          "(the release is given with --release my_release.json)"),
    (["--filter_by", "REVIEWD"], "--filter_by: unknown label status 'REVIEWD'; did you mean "
                                 "REVIEWED?"),
    (["--formats", "coco-instanse"], "--formats: unknown format 'coco-instanse'; did you mean "
                                     "coco-instance?"),
    (["--images", "nothing"], "--images: invalid choice: 'nothing' (choose from 'copy', 'none')"),
    (["--runner"], "--runner: expected one argument"),
    (["--labelset", "a", "--labelset", "b"], "--labelset: given more than once; give it once"),
])
def test_what_the_tool_does_not_understand_is_an_error_before_any_work(tmp_path, args, message):
    """Typos, positional arguments and invalid values: exit 2 naming them, one line, nothing
    done; before, Beam dropped unknown flags with a warning and the export ran anyway."""
    out = tmp_path / "out"
    result = _cli("--output", str(out), *args)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()  # one line, nothing else (no warning, no traceback)
    assert line.startswith(f"python -m pipeline: error: {message}"), line
    assert not out.exists()


def test_a_mistyped_dry_run_leaves_the_previous_export_alone(tmp_path):
    out = tmp_path / "out"
    first = _cli("--output", str(out), "--direct_running_mode=in_memory")
    assert first.returncode == 0, first.stderr
    before = {p: os.path.getmtime(os.path.join(d, p)) for d, _, names in os.walk(out)
              for p in names}
    result = _cli("--output", str(out), "--dryrun")
    assert result.returncode == 2 and "--dryrun: unknown flag" in result.stderr
    assert {p: os.path.getmtime(os.path.join(d, p)) for d, _, names in os.walk(out)
            for p in names} == before


def test_repeated_list_flags_combine(tmp_path):
    result = _cli("--output", str(tmp_path / "o"), "--dry_run", "--formats", "semantic",
                  "--formats", "yolo", "--filter_by", "labeled", "--filter_by", "reviewed")
    assert result.returncode == 0, result.stderr
    assert "would export 4 samples to semantic, yolo" in result.stdout


@pytest.mark.parametrize("args,message", [
    (["--filter_by", "rejected"],
     "--filter_by REJECTED: selects none of the 6 samples (label statuses in labelset "
     "'ground-truth': LABELED 2, REVIEWED 2, SKIPPED 1, UNLABELED 1)"),
    (["--filter_by_metadata", "splt=val"],
     "--filter_by_metadata splt='val': selects none of the 6 samples (metadata keys seen: "
     "split, variant)"),
])
def test_a_filter_that_selects_nothing_is_refused(tmp_path, args, message):
    out = tmp_path / "out"
    for extra in ([], ["--dry_run"]):
        result = _cli("--output", str(out), *args, *extra)
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [f"python -m pipeline: error: {message}"]
        assert not out.exists()


def test_an_output_that_cannot_be_a_folder_is_one_line(tmp_path):
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    for out, message in ((a_file, f"--output: {a_file} is a file, not a folder"),
                         (a_file / "sub", f"--output: cannot create {a_file / 'sub'}: {a_file} "
                                          "is a file, not a folder")):
        result = _cli("--output", str(out))
        assert result.returncode == 2
        assert result.stderr.splitlines() == [f"python -m pipeline: error: {message}"]
    assert a_file.read_text() == "x"


def test_the_installed_command_names_itself(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "segments-export")
    result = subprocess.run([exe, "--ouput", "x"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "segments-export: error: --ouput: unknown flag (did you mean --output?)"]


def test_runs_from_a_folder_holding_pipeline_and_transforms_modules(tmp_path):
    """ML projects hold a transforms.py (and often a pipeline.py): neither may be imported
    by the launcher or by any worker process."""
    project = tmp_path / "ml-project"
    project.mkdir()
    for name in ("transforms.py", "pipeline.py"):
        (project / name).write_text(f"raise SystemExit('the project {name} was imported')\n")
    exe = os.path.join(os.path.dirname(sys.executable), "segments-export")
    result = subprocess.run([exe, "--output", "out", "--direct_num_workers", "2"], cwd=project,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "was imported" not in result.stderr
    doc = json.loads((project / "out" / "coco-instance.json").read_text())
    assert len(doc["images"]) == 4
    # `python -m pipeline` finds a pipeline.py first (Python's rule); with only a
    # transforms.py (and a transforms/ package) there, it works too.
    (project / "pipeline.py").unlink()
    (project / "transforms").mkdir()
    (project / "transforms" / "__init__.py").write_text("raise SystemExit('transforms/')\n")
    result = subprocess.run([sys.executable, "-m", "pipeline", "--output", "out2",
                             "--direct_num_workers", "2"], cwd=project, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((project / "out2" / "coco-instance.json").read_text()) == doc


def test_status_tells_whether_a_folder_holds_an_export_to_update(tmp_path):
    """python -m pipeline.status: the supported way for a scheduled job to choose between a
    first export and --since (exit 0: a finished export; 1: none, or unfinished)."""
    def status(folder):
        return subprocess.run([sys.executable, "-m", "pipeline.status", str(folder)],
                              capture_output=True, text=True, timeout=300)

    out = tmp_path / "out"
    result = status(out)
    assert (result.returncode, result.stdout) == (1, f"{out}: no export here\n")
    assert _cli("--output", str(out), "--direct_running_mode=in_memory").returncode == 0
    result = status(out)
    assert result.returncode == 0
    assert result.stdout.startswith(
        f"{out}: a finished export (release 'v1.0': 4 exported, 0 failed, 2 skipped; formats "
        "coco-instance, coco-panoptic, yolo, instance, semantic, instance-color, "
        f"semantic-color; ledger generation 0); --since {out} --output {out} updates it")
    (out / ".export-state" / "state.json").unlink()  # as if killed before the end
    result = status(out)
    assert result.returncode == 1 and "an unfinished or interrupted export" in result.stdout
