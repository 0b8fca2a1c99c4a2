"""What the person running an export sees in the terminal: a quiet run, failures grouped
by reason in the summary, and Ctrl-C answered with one line saying what was kept.

Runs the real command (two worker processes, as by default) against a loopback server.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys

import pytest

from benchmarks import synth
from tests.faultserver import FaultServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOOD, GONE = 12, 100


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """release.json: GOOD exportable samples, then GONE whose bitmaps answer 404 (their
    names `gone_NNN.jpg`), all served by one loopback server."""
    root = str(tmp_path_factory.mktemp("site"))
    truth = synth.make_release(root, samples=GOOD, height=24, width=32, instances=3, seed=5)
    with FaultServer(root) as server:
        good = [synth.sample_entry(t.name, t.uuid, server.url + t.image_file,
                                   server.url + t.bitmap_file, t.annotations) for t in truth]
        gone = [synth.sample_entry(f"gone_{i:03d}.jpg", f"u-gone-{i}",
                                   server.url + truth[0].image_file,
                                   f"{server.url}labels/gone_{i:03d}.png?X-Amz-Signature=s3cr3t",
                                   [{"id": 1, "category_id": 1}]) for i in range(GONE)]
        synth.write_release(root, good + gone)
        yield root, server


def _cli(root, out, *args, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--release", os.path.join(root, "release.json"),
         "--output", str(out), "--direct_num_workers", "2", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_a_run_with_100_failures_is_quiet_until_its_grouped_summary(site, tmp_path):
    root, server = site
    server.reset()
    proc = _cli(root, tmp_path / "out")
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    summary_at = stderr.index("\nrelease 'synthetic'") + 1  # the summary's first line
    before, summary = stderr[:summary_at], stderr[summary_at:]
    # No relayed worker record (a protobuf dump), no traceback, no sample named while the
    # job runs: the run says it started and finished, nothing more.
    for word in ("Worker:", "severity", "instruction_id", "log_location", "Traceback"):
        assert word not in stderr
    assert "gone_" not in before and "sample_" not in before
    assert [line.split(":")[0] for line in before.splitlines()] == ["INFO pipeline"] * 2
    # The summary groups the 100 failures as one reason, naming a few of them, once.
    lines = summary.splitlines()
    assert f"-> {GOOD} exported, {GONE} failed, 0 skipped" in lines[0]
    assert ("  failed      100 x bitmap: HTTP 404 at fetch  (e.g. gone_000.jpg, gone_001.jpg, "
            "gone_002.jpg, ...)") in lines
    assert lines[-1] == "  every failed sample, with its reason: failures.jsonl"
    names = [n for n in (f"gone_{i:03d}.jpg" for i in range(GONE)) if n in summary]
    assert names == ["gone_000.jpg", "gone_001.jpg", "gone_002.jpg"]
    assert "s3cr3t" not in stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["failures_by_reason"] == [
        {"stage": "fetch", "reason": "bitmap: HTTP 404", "samples": GONE,
         "examples": ["gone_000.jpg", "gone_001.jpg", "gone_002.jpg"]}]


def _alive_in_group(pgid: int) -> list[str]:
    """Processes of the group that still run (Linux /proc; a killed child not yet reaped by
    its new parent is a zombie: it runs nothing)."""
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        state, _, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state != "Z":
            alive.append(int(pid))
    return alive


def _wait_for_exit(pids: list[int], timeout: float) -> None:
    """Waits until each process has ended (a pidfd is readable once it has)."""
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            select.select([fd], [], [], timeout)
        finally:
            os.close(fd)


def test_ctrl_c_ends_with_one_line_saying_what_was_kept(site, tmp_path):
    """Ctrl-C reaches the launcher and its workers (one process group): one line, no
    traceback, no process left behind; running the command again completes the export."""
    root, server = site
    server.reset()
    hold = server.hold("/labels/sample_", nth=4)  # mid-export: a few samples are done
    out = tmp_path / "out"
    proc = _cli(root, out, start_new_session=True)
    try:
        assert hold.reached.wait(120), "the export never fetched a fourth bitmap"
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        hold.release()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130
    lines = stderr.splitlines()
    assert lines[-1].startswith(
        f"python -m pipeline: interrupted: {out} holds an unfinished export (no ledger state: "
        "nothing there is reused); running the same command again replaces it: "
        "python -m pipeline --release ")
    assert "Traceback" not in stderr and "Exception" not in stderr
    # Workers end with the launcher (the kernel kills them as it ends: give it the moment).
    _wait_for_exit(_alive_in_group(proc.pid), timeout=10)
    assert _alive_in_group(proc.pid) == []
    again = _cli(root, out)
    _, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr[-3000:]
    assert len(json.loads((out / "coco-instance.json").read_text())["images"]) == GOOD
