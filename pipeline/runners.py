"""Which runner executes a job, and what the launcher reads back from it.

Local runs (no --runner, DirectRunner, FnApiRunner) are pinned to Beam's FnApiRunner with
one SDK worker process per core (`local_runner`); DataflowRunner jobs that this process
does not run (--dry_run, a Flex Template launch) are built by `build_job`. Beam's portable
runners (FlinkRunner, SparkRunner, PrismRunner, PortableRunner) are described by `engine`
and checked before any work by `check_engine`: where the Python SDK workers run (never a
Docker container Beam would pick by itself), and that the cluster, the job server and its
jar can be reached.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import (
    DirectOptions,
    FlinkRunnerOptions,
    JobServerOptions,
    PipelineOptions,
    PortableOptions,
    SparkRunnerOptions,
    StandardOptions,
    TestOptions,
)
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.transforms import environments

from pipeline import graph
from pipeline.config import ConfigError
from transforms import release, storage

_LOGGER = logging.getLogger("pipeline")
LOCAL_RUNNERS = (None, "DirectRunner", "direct", "FnApiRunner")
# Beam's portable runners, by the short name of --runner (case-insensitive, "Runner" off).
PORTABLE = {"flink": "FlinkRunner", "spark": "SparkRunner", "prism": "PrismRunner",
            "portable": "PortableRunner"}
_JAVA_VERSIONS = ("11", "17", "21")  # what Beam 2.70's Flink 1.19 / Spark 3 job servers run on

def is_dry_run(options: PipelineOptions) -> bool:
    """--dry_run[=True]: print the plan; local runners stop there, DataflowRunner then builds
    the job graph without submitting it (Beam's meaning of the same flag)."""
    return str(options.view_as(TestOptions).dry_run).lower() in ("true", "1", "yes")


# Up to this many samples to export, a local run is one process: starting a worker process
# per core costs more than it saves (benchmarks/startup.py).
SMALL_RUN_SAMPLES = 100


def local_runner(options: PipelineOptions, argv: Sequence[str], samples: int | None = None):
    """(runner to pass to beam.Pipeline or None, description) for local runs.

    Beam 2.77's DirectRunner first tries to download the Prism runner (a Go binary) and falls
    back to the FnApiRunner when that fails; pinning the FnApiRunner makes local runs behave
    the same online and offline. By default it runs one SDK worker process per core
    (`pipeline.worker`, Beam's worker with quiet logging), or, for a pipeline of at most
    SMALL_RUN_SAMPLES `samples`, all in this process. Explicit --direct_* flags win. Outputs
    are the same either way.
    """
    std = options.view_as(StandardOptions)
    if std.runner not in LOCAL_RUNNERS:
        return None, std.runner
    std.runner = None
    direct = options.view_as(DirectOptions)
    given = " ".join(argv)
    if "--direct_num_workers" not in given:
        in_memory = "--direct_running_mode" in given and direct.direct_running_mode == "in_memory"
        small = (samples is not None and samples <= SMALL_RUN_SAMPLES
                 and "--direct_running_mode" not in given)
        direct.direct_num_workers = 1 if in_memory or small else (os.cpu_count() or 1)
    if "--direct_running_mode" in given or direct.direct_num_workers == 1:
        runner = FnApiRunner()
        mode = direct.direct_running_mode
    else:
        # FnApiRunner's own multi_processing mode hard-codes Beam's worker command; the
        # same subprocess environment with our quiet worker gives identical execution.
        direct.direct_running_mode = "in_memory"
        logging.getLogger("apache_beam.runners.portability.fn_api_runner.fn_runner").setLevel(
            logging.ERROR)  # it warns that in_memory ignores direct_num_workers; not so here
        # exec: the worker replaces the shell Beam starts it with, so that it is the
        # launcher's own child (and ends with it); -P: the current folder is not on its path.
        command = f"exec {shlex.quote(sys.executable)} -P -m pipeline.worker"
        runner = FnApiRunner(
            default_environment=environments.SubprocessSDKEnvironment.from_command_string(
                command_string=command))
        mode = "multi_processing"
    return runner, f"DirectRunner (FnApiRunner, {mode} x{direct.direct_num_workers})"


def on_dataflow(options: PipelineOptions) -> bool:
    name = (options.view_as(StandardOptions).runner or "").rsplit(".", 1)[-1].lower()
    return name in ("dataflowrunner", "dataflow")


def build_job(options: PipelineOptions, cfg, info: release.ReleaseInfo,
              formats: tuple[str, ...], fp):
    """DataflowRunner, the job not run by this process: with --dry_run the job (graph,
    options, the package staged from --setup_file) is built and not submitted; with
    --template_location (a Flex Template launch) it is written there, and Dataflow starts it
    once this process has exited. Writes nothing to the output and waits for nothing: the
    job itself replaces the previous export and marks the new one complete (ledger state
    `fp`, temporary folder removed), as every full export does (docs/dataflow.md).
    Returns the job (`apiclient.Job`: `.proto_pipeline` is the graph)."""
    import uuid

    pipeline = beam.Pipeline(options=options)
    graph.build(pipeline, cfg, info, formats, token=uuid.uuid4().hex, fp=fp)
    pipeline.run()
    job = pipeline.runner.job
    _LOGGER.info("Dataflow job %s: %d transforms; %s", job.proto.name,
                 len(job.proto_pipeline.components.transforms),
                 "not submitted (--dry_run)" if is_dry_run(options)
                 else "handed to Dataflow through --template_location")
    return job


def counts_of(result) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        metrics = result.metrics().query(MetricsFilter().with_namespace("export"))
    except (NotImplementedError, AttributeError):
        return out
    for c in metrics["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return out


# --------------------------------------------------------------------------- portable runners


def runner_kind(options: PipelineOptions) -> str:
    """The runner's short name: "direct" (also FnApiRunner and no --runner), "dataflow",
    "flink", "spark", "prism", "portable", or another runner's name in lower case."""
    runner = options.view_as(StandardOptions).runner
    if runner in LOCAL_RUNNERS:
        return "direct"
    name = runner.rsplit(".", 1)[-1].lower()
    return name[:-len("runner")] if name.endswith("runner") and name != "runner" else name


@dataclasses.dataclass(frozen=True)
class Engine:
    """What the launcher needs to know about the runner of an export.

    `kind`: `runner_kind`. `chunks`: the runner holds a whole job's data in one process on
    this machine (the FnApiRunner, Prism), so that a large release is exported in chunks
    (`--chunk_samples auto`); Flink, Spark and Dataflow keep it in the cluster. `progress`:
    the SDK workers run on this machine (local runs, Prism, LOOPBACK, or an EXTERNAL worker
    pool of a cluster on this machine), so they can report progress through local files
    (`transforms.summary.progress`). `name`: for the log and run.json.
    """

    kind: str
    chunks: bool
    progress: bool
    name: str


_HERE = ("localhost", "127.0.0.1", "::1", "[::1]")


def _host_port(address: str) -> tuple[str, int | None]:
    """("host", port) of `host:port`, `http://host:port/...` or `spark://host:port`."""
    rest = re.sub(r"^[a-z][a-z0-9+.-]*://", "", address.strip(), flags=re.IGNORECASE)
    rest = rest.split("/", 1)[0]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return rest, None
    return host, int(port)


def _local_master(kind: str, options: PipelineOptions) -> bool:
    """FlinkRunner's `[local]`/`[auto]` master, SparkRunner's `local[N]`: an embedded
    engine that Beam starts inside its job server."""
    if kind == "flink":
        return options.view_as(FlinkRunnerOptions).flink_master in ("[local]", "[auto]")
    if kind == "spark":
        return bool(re.match(r"^local(\[.+\])?$",
                             options.view_as(SparkRunnerOptions).spark_master_url or ""))
    return False


def _engine_address(kind: str, options: PipelineOptions) -> str | None:
    """The address the launcher talks to: the job endpoint, else the cluster's master."""
    endpoint = options.view_as(PortableOptions).job_endpoint
    if endpoint and endpoint != "embed":
        return endpoint
    if kind == "flink":
        return options.view_as(FlinkRunnerOptions).flink_master
    if kind == "spark":
        return options.view_as(SparkRunnerOptions).spark_master_url
    return None


def _environment(kind: str, options: PipelineOptions) -> str:
    """The SDK workers' environment type as Beam will use it ("" when Beam would pick
    DOCKER: no --environment_type, and not a runner or master with a LOOPBACK default)."""
    env = (options.view_as(PortableOptions).environment_type or "").upper()
    if env:
        return env
    return "LOOPBACK" if kind == "prism" or _local_master(kind, options) else ""


def engine(options: PipelineOptions) -> Engine:
    kind = runner_kind(options)
    runner = options.view_as(StandardOptions).runner
    if kind == "direct":
        return Engine(kind, chunks=True, progress=True, name="DirectRunner")
    if kind not in PORTABLE:
        return Engine(kind, chunks=False, progress=False, name=str(runner))
    env = _environment(kind, options)
    address = _engine_address(kind, options)
    on_this_machine = (_local_master(kind, options) or address is None
                       or _host_port(address)[0].lower() in _HERE)
    workers_here = env == "LOOPBACK" or (
        env == "EXTERNAL" and on_this_machine
        and _host_port(options.view_as(PortableOptions).environment_config or "")[0].lower()
        in _HERE)
    where = address if address else "a job server started by Beam"
    name = f"{PORTABLE[kind]} ({where}; SDK workers: {env or 'DOCKER'}"
    if env == "EXTERNAL":
        name += f" {options.view_as(PortableOptions).environment_config}"
    return Engine(kind, chunks=kind == "prism", progress=workers_here, name=name + ")")


def check_engine(options: PipelineOptions) -> None:
    """Before any work, for the portable runners: the SDK workers' environment is explicit
    where Beam would otherwise start Docker containers of its own image (which lack this
    package), and what the launcher needs can be reached: the job endpoint or the cluster's
    master, Java and the job server's jar (downloaded now, into Beam's cache, if it is a
    URL). Raises ConfigError with one line naming what is missing and how to get it."""
    kind = runner_kind(options)
    if kind not in PORTABLE:
        return
    runner, portable = PORTABLE[kind], options.view_as(PortableOptions)
    env = _environment(kind, options)
    if not env:
        raise ConfigError(
            f"--environment_type: say where {runner} runs the Python SDK workers: EXTERNAL "
            "with --environment_config HOST:PORT of a worker pool of this package (python -m "
            "pipeline.worker_pool, beside each task manager or executor), LOOPBACK (a cluster "
            "on this machine), or DOCKER with --environment_config IMAGE (an image with this "
            "package installed); Beam's default, Docker with Beam's own image, lacks it")
    if env == "EXTERNAL" and not portable.environment_config:
        raise ConfigError("--environment_config: EXTERNAL needs the worker pool's HOST:PORT "
                          "(python -m pipeline.worker_pool --service_port PORT starts one)")
    local_master = _local_master(kind, options)
    endpoint = portable.job_endpoint
    if endpoint and endpoint != "embed":
        _reachable(endpoint, "--job_endpoint", f"no job server answers at {endpoint}",
                   "start it (scripts/cluster.sh prism up starts Prism on this machine) or "
                   "give the address of a running one")
    elif kind == "portable":
        raise ConfigError("--job_endpoint: PortableRunner needs the HOST:PORT of a running "
                          "job server (or use FlinkRunner, SparkRunner or PrismRunner)")
    elif kind in ("flink", "spark"):
        if kind == "flink" and not local_master:
            master = options.view_as(FlinkRunnerOptions).flink_master
            _reachable(master, "--flink_master", f"no Flink JobManager answers at {master}",
                       "start the cluster (scripts/cluster.sh flink up starts one on this "
                       "machine) or give its JobManager's REST address HOST:PORT")
        if kind == "spark":
            spark = options.view_as(SparkRunnerOptions)
            if spark.spark_submit_uber_jar:
                _reachable(spark.spark_rest_url or "", "--spark_rest_url",
                           f"no Spark REST server answers at {spark.spark_rest_url}",
                           "give the master's REST URL (http://HOST:6066)")
                return  # no local job server: the pipeline is submitted as a jar
            if not local_master:
                _reachable(spark.spark_master_url, "--spark_master_url",
                           f"no Spark master answers at {spark.spark_master_url}",
                           "start the cluster (scripts/cluster.sh spark up starts one on this "
                           "machine) or give its spark://HOST:PORT")
        if kind == "flink" and options.view_as(FlinkRunnerOptions).flink_submit_uber_jar:
            return
        _java(options, runner)
        _job_server_jar(options, kind)
    if env == "EXTERNAL":
        config = portable.environment_config
        address = _engine_address(kind, options)
        if (local_master or (address and _host_port(address)[0].lower() in _HERE)) and (
                _host_port(config)[0].lower() in _HERE):
            _reachable(config, "--environment_config", f"no SDK worker pool answers at {config}",
                       "start one: python -P -m pipeline.worker_pool --service_port "
                       f"{_host_port(config)[1]}")


def _reachable(address: str, flag: str, what: str, how: str) -> None:
    host, port = _host_port(address)
    if not host or port is None:
        raise ConfigError(f"{flag}: expected HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=5):
            pass
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise ConfigError(f"{flag}: {what} ({reason.lower()}); {how}") from None


def _java(options: PipelineOptions, runner: str) -> None:
    """The `java` that will start the job server exists and is a version it runs on."""
    launcher = options.view_as(JobServerOptions).job_server_java_launcher or "java"
    engine_name = runner[:-len("Runner")]
    found = shutil.which(launcher)
    if found is None:
        raise ConfigError(
            f"{launcher} not found: {runner} starts Beam's {engine_name} job server, a Java "
            "program; install a Java 11 or 17 runtime (e.g. apt-get install "
            "openjdk-17-jre-headless), or give one with --job_server_java_launcher PATH")
    try:
        out = subprocess.run([found, "-XshowSettings:properties", "-version"],
                             capture_output=True, text=True, timeout=60, check=False).stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"{found} does not run ({e}); {runner} needs Java 11 or 17") from None
    version = re.search(r"java\.specification\.version = (\S+)", out)
    if version is None or version.group(1) not in _JAVA_VERSIONS:
        raise ConfigError(
            f"{found} is Java {version.group(1) if version else '(unknown version)'}: Beam's "
            f"{engine_name} job server needs Java {', '.join(_JAVA_VERSIONS)}; put one first "
            "on PATH or give it with --job_server_java_launcher PATH")


def _job_server_jar(options: PipelineOptions, kind: str) -> None:
    """The job server's jar is a local file, or is downloaded now (Beam caches it in
    ~/.apache_beam/cache/jars, where the run will find it)."""
    if kind == "flink":
        from apache_beam.runners.portability.flink_runner import FlinkJarJobServer as Server
        flag = "--flink_job_server_jar"
    else:
        from apache_beam.runners.portability.spark_runner import SparkJarJobServer as Server
        flag = "--spark_job_server_jar"
    server = Server(options)
    url = None
    try:
        url = server.path_to_jar()
        server.local_jar(url, options.view_as(JobServerOptions).jar_cache_dir)
    except (RuntimeError, ValueError, OSError) as e:
        reason = re.sub(r"\s+", " ", str(e)).strip()
        reason = reason.split(". ", 1)[0] if reason.startswith("Unable to") else reason
        what = "Flink" if kind == "flink" else "Spark"
        raise ConfigError(
            f"{flag}: Beam's {what} job server jar {storage.redact(url or '')} cannot be "
            f"had ({storage.redact(reason)}); build one with scripts/cluster.sh {kind} up "
            f"and pass {flag} PATH, or start a job server and use --runner PortableRunner "
            "--job_endpoint HOST:PORT") from None


# --------------------------------------------------------------------------- starting a job

# Beam relays each line a job server it started prints as an INFO record of these loggers.
_JOB_SERVER_LOGGERS = ("FlinkJarJobServer", "SparkJarJobServer")
_START_FAILED = "Service failed to start up"


class _Tail(logging.Handler):
    """The last lines the job servers printed, kept for an error message."""

    def __init__(self, lines: int = 50):
        super().__init__(logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=lines)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def reason(self) -> str:
        """The last line that reports a problem (else the last line), shortened."""
        found = [line for line in self.lines
                 if re.search(r"exception|error|cannot|failed|address already in use", line,
                              re.IGNORECASE)]
        line = (found or list(self.lines) or ["no output"])[-1].strip()
        return storage.redact(line if len(line) <= 300 else line[:297] + "...")


_TAIL = _Tail()


def _no_start_up_traceback(record: logging.LogRecord) -> bool:
    """Beam's own report of a job server that did not start (the command, a traceback):
    `run_job` says it in one line instead."""
    return not record.getMessage().startswith(("Started job service with",
                                               "Error bringing up service"))


def _capture_job_server_output() -> None:
    """Keeps the job servers' last lines (quietly, unless --log_level shows them)."""
    for name in _JOB_SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if _TAIL not in logger.handlers:
            logger.addHandler(_TAIL)
        if logger.getEffectiveLevel() > logging.INFO:  # quiet terminal: keep, do not show
            logger.setLevel(logging.INFO)
            logger.propagate = False
    beam = logging.getLogger("apache_beam.utils.subprocess_server")
    if beam.getEffectiveLevel() > logging.INFO and _no_start_up_traceback not in beam.filters:
        beam.addFilter(_no_start_up_traceback)


def run_job(pipeline: beam.Pipeline):
    """`pipeline.run()`. For FlinkRunner and SparkRunner, Beam first starts their job server
    (a Java program) on this machine; its driver ends quietly (exit code 0) on any start-up
    error, such as the port Beam chose for it being taken meanwhile. So a job server that
    exits at start-up is started once more; if it exits again, ConfigError with one line:
    its last message and how to see all of its output. The job wrote nothing yet (a full
    export's first step is in the job; --only_failed and --since keep what earlier jobs
    did in the ledger, and running the command again goes on from there)."""
    _capture_job_server_output()
    for attempt in (1, 2):
        try:
            return pipeline.run()
        except RuntimeError as e:
            if not str(e).startswith(_START_FAILED):
                raise
            if attempt == 1:
                _LOGGER.warning("the job server exited at start-up (%s); starting it again",
                                _TAIL.reason())
                continue
            raise ConfigError(
                f"Beam's job server exited at start-up, twice (its last message: "
                f"{_TAIL.reason()}); run with --log_level INFO to see its output") from None
    raise AssertionError("unreachable")
