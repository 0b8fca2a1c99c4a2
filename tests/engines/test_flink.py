"""Apache Flink 1.19.3 standalone (a JobManager and two TaskManagers, separate JVMs, two
slots each) started by scripts/cluster.sh; FlinkRunner with Beam's Flink job server, SDK
workers from an EXTERNAL worker pool (`python -m pipeline.worker_pool`), parallelism 2.

The second test kills one TaskManager (kill -9) while samples are being exported: the job
restarts on the slots left (the cluster's fixed-delay restart strategy) and the export is
the same, byte for byte, with no temporary file left. It runs last: the cluster then has
one TaskManager until the module's fixture stops it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request

import pytest

from tests.engines.conftest import (
    ROOT,
    check_counters,
    check_export,
    differences,
    engine_fixture,
)

flink = engine_fixture("flink")


def _rest(engine, path: str):
    url = f"http://localhost:{engine.env['FLINK_REST_PORT']}{path}"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def _jobs(engine) -> list[dict]:
    """Flink's jobs, oldest first."""
    return sorted(_rest(engine, "/jobs/overview")["jobs"], key=lambda j: j["start-time"])


@pytest.mark.timeout(1500)  # the first `up` downloads Flink and the job server's jars
def test_flink_writes_the_direct_runners_bytes(site, flink, tmp_path):
    out = tmp_path / "out"
    record = check_export(site, out, site.export(out, *flink.flags))
    assert differences(out, site.reference) == []
    assert record["runner"].startswith("FlinkRunner (localhost:")
    check_counters(record)  # Flink reports Beam's counters (committed)
    (job,) = _jobs(flink)
    assert job["state"] == "FINISHED"
    assert job["tasks"]["total"] > 1  # a real graph of tasks, spread over the TaskManagers


@pytest.mark.timeout(1500)
def test_flink_survives_a_taskmanager_killed_mid_export(site, flink, tmp_path):
    out = tmp_path / "out"
    site.reset()
    # The second bitmap request waits until the TaskManager is gone: samples are being
    # exported on both TaskManagers (their slots are spread evenly) at that moment.
    hold = site.server.hold("/labels/", nth=2)
    proc = subprocess.Popen(site.command(out, *flink.flags), cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert hold.reached.wait(600), "the export never fetched a second bitmap"
        os.kill(flink.pids()["taskmanager-2"], signal.SIGKILL)
        hold.release()
        stdout, stderr = proc.communicate(timeout=1200)
    finally:
        hold.release()
        if proc.poll() is None:  # the launcher and the job server it started
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    check_export(site, out, subprocess.CompletedProcess(proc.args, proc.returncode, stdout,
                                                        stderr))
    assert differences(out, site.reference) == []
    job = _jobs(flink)[-1]
    assert job["state"] == "FINISHED"
    # It did fail over: the lost TaskManager is in the job's exception history.
    history = _rest(flink, f"/jobs/{job['jid']}/exceptions")["exceptionHistory"]["entries"]
    assert history, "the job never restarted"
    assert _rest(flink, "/overview")["taskmanagers"] == 1
