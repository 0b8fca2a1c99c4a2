"""What a portable runner needs and does not have: one line, exit 2, before any output.

A Flink JobManager, Spark master or job endpoint that does not answer, no `java`, a job-server
jar that cannot be downloaded, an SDK environment Beam would fill with its own Docker image,
an EXTERNAL worker pool on this machine that does not answer, and the same for
`scripts/cluster.sh` (an unknown engine, a port in use). Everything on 127.0.0.1: closed
ports, a plain TCP listener standing in for a reachable master, an empty folder served over
HTTP (404 for the jar).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.path.join(ROOT, "scripts", "cluster.sh")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns


@contextlib.contextmanager
def _listener():
    """A TCP port that accepts connections (what a master's port looks like from outside)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def _one_line_exit_2(result, out, message: str) -> None:
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()  # one line, no traceback, no Beam chatter
    assert line.startswith("python -m pipeline: error: "), line
    assert message in line, line
    assert not os.path.exists(out)  # nothing written, not even the folder


def test_a_flink_master_that_does_not_answer(tmp_path):
    port = _closed_port()
    out = tmp_path / "out"
    result = _cli("--output", str(out), "--runner", "FlinkRunner", "--flink_master",
                  f"localhost:{port}", "--environment_type", "EXTERNAL",
                  "--environment_config", "localhost:1")
    _one_line_exit_2(result, out, f"--flink_master: no Flink JobManager answers at "
                                  f"localhost:{port} (connection refused); start the cluster "
                                  "(scripts/cluster.sh flink up")


def test_a_spark_master_that_does_not_answer(tmp_path):
    port = _closed_port()
    out = tmp_path / "out"
    result = _cli("--output", str(out), "--runner", "SparkRunner", "--spark_master_url",
                  f"spark://127.0.0.1:{port}", "--environment_type", "LOOPBACK")
    _one_line_exit_2(result, out, f"--spark_master_url: no Spark master answers at "
                                  f"spark://127.0.0.1:{port}")


def test_a_job_endpoint_that_does_not_answer(tmp_path):
    port = _closed_port()
    out = tmp_path / "out"
    result = _cli("--output", str(out), "--runner", "PrismRunner", "--job_endpoint",
                  f"localhost:{port}")
    _one_line_exit_2(result, out, f"--job_endpoint: no job server answers at localhost:{port}")


def test_portable_runner_without_a_job_endpoint(tmp_path):
    out = tmp_path / "out"
    result = _cli("--output", str(out), "--runner", "PortableRunner", "--environment_type",
                  "LOOPBACK")
    _one_line_exit_2(result, out, "--job_endpoint: PortableRunner needs the HOST:PORT")


def test_beams_default_docker_environment_is_refused(tmp_path):
    """Without --environment_type a cluster would start Beam's own SDK image, which lacks
    this package: every sample would fail on the cluster, after the job was submitted."""
    out = tmp_path / "out"
    with _listener() as port:
        result = _cli("--output", str(out), "--runner", "FlinkRunner", "--flink_master",
                      f"localhost:{port}")
    _one_line_exit_2(result, out, "--environment_type: say where FlinkRunner runs the Python "
                                  "SDK workers")


def test_no_java(tmp_path):
    out = tmp_path / "out"
    missing = str(tmp_path / "jdk" / "bin" / "java")
    with _listener() as port:
        result = _cli("--output", str(out), "--runner", "FlinkRunner", "--flink_master",
                      f"localhost:{port}", "--environment_type", "LOOPBACK",
                      "--job_server_java_launcher", missing)
    _one_line_exit_2(result, out, f"{missing} not found: FlinkRunner starts Beam's Flink job "
                                  "server, a Java program; install a Java 11 or 17 runtime")


def test_a_job_server_jar_that_cannot_be_downloaded(tmp_path, http_root):
    out = tmp_path / "out"
    _, url = http_root  # an empty folder served on 127.0.0.1: the jar answers 404
    with _listener() as port:
        jar = url + "beam-runners-flink-job-server.jar"
        result = _cli("--output", str(out), "--runner", "FlinkRunner", "--flink_master",
                      f"localhost:{port}", "--environment_type", "LOOPBACK",
                      "--flink_job_server_jar", jar, "--jar_cache_dir", str(tmp_path / "jars"))
    _one_line_exit_2(result, out, f"--flink_job_server_jar: Beam's Flink job server jar {jar} "
                                  "cannot be had")
    assert "404" in result.stderr


def test_an_external_worker_pool_here_that_does_not_answer(tmp_path):
    out = tmp_path / "out"
    pool = _closed_port()
    with _listener() as port:
        result = _cli("--output", str(out), "--runner", "PortableRunner", "--job_endpoint",
                      f"localhost:{port}", "--environment_type", "EXTERNAL",
                      "--environment_config", f"localhost:{pool}")
    _one_line_exit_2(result, out, f"--environment_config: no SDK worker pool answers at "
                                  f"localhost:{pool}")
    assert f"python -P -m pipeline.worker_pool --service_port {pool}" in result.stderr


@pytest.mark.parametrize("args,message", [
    (["hadoop", "up"], "usage: cluster.sh flink|spark|prism up|down|status"),
    (["flink", "restart"], "usage: cluster.sh flink|spark|prism up|down|status"),
])
def test_cluster_script_refuses_what_it_does_not_know(args, message, tmp_path):
    env = dict(os.environ, SEGEXPORT_ENGINES_STATE=str(tmp_path / "state"))
    result = subprocess.run(["bash", CLUSTER, *args], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [message]
    assert result.stdout == ""


def test_cluster_script_refuses_a_port_in_use_and_starts_nothing(tmp_path):
    state = tmp_path / "state"
    with _listener() as port:
        env = dict(os.environ, SEGEXPORT_ENGINES_STATE=str(state), BEAM_PYTHON=sys.executable,
                   PRISM_JOB_PORT=str(port))
        result = subprocess.run(["bash", CLUSTER, "prism", "up"], capture_output=True,
                                text=True, timeout=120, env=env)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("cluster.sh: ") and str(port) in line, line
    assert result.stdout == ""  # no flags line: nothing to run against
    pids = state / "prism" / "pids"
    assert not pids.exists() or pids.read_text().strip() == ""


def test_a_job_server_that_exits_at_start_up(tmp_path):
    """Beam's job-server driver ends with exit code 0 on any start-up error (its port taken,
    say), which Beam reports as a traceback. The export starts it once more, then stops
    with one line naming the server's last message. The stand-in is a real jar that prints
    what the driver prints on such an error and exits 0."""
    src = tmp_path / "src" / "Main.java"
    src.parent.mkdir()
    src.write_text('public class Main { public static void main(String[] a) { System.out.println('
                   '"WARN JobServerDriver - Exception during job server creation: '
                   'java.io.IOException: Failed to bind to address 0.0.0.0/0.0.0.0:8099"); } }')
    subprocess.run(["javac", "-d", str(src.parent), str(src)], check=True, timeout=120)
    (tmp_path / "manifest.txt").write_text("Main-Class: Main\n")
    jar = tmp_path / "job-server.jar"
    subprocess.run(["jar", "cfm", str(jar), str(tmp_path / "manifest.txt"), "-C",
                    str(src.parent), "Main.class"], check=True, timeout=120)
    out = tmp_path / "out"
    with _listener() as port:
        result = _cli("--output", str(out), "--runner", "FlinkRunner", "--flink_master",
                      f"localhost:{port}", "--environment_type", "LOOPBACK",
                      "--flink_job_server_jar", str(jar))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    reason = ("WARN JobServerDriver - Exception during job server creation: java.io.IOException: "
              "Failed to bind to address 0.0.0.0/0.0.0.0:8099")
    assert lines[-1] == ("python -m pipeline: error: Beam's job server exited at start-up, twice "
                         f"(its last message: {reason}); run with --log_level INFO to see its "
                         "output"), lines
    assert [line for line in lines[:-1] if "starting it again" in line] == [
        f"WARNING pipeline: the job server exited at start-up ({reason}); starting it again"]
    assert "Traceback" not in result.stderr
    assert not out.exists()  # the job never ran: nothing of the export was written
