"""Which runner executes a job, and what the launcher reads back from it.

Local runs (no --runner, DirectRunner, FnApiRunner) are pinned to Beam's FnApiRunner with
one SDK worker process per core (`local_runner`); DataflowRunner jobs that this process
does not run (--dry_run, a Flex Template launch) are built by `build_job`.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    StandardOptions,
    TestOptions,
)
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.transforms import environments

from pipeline import graph
from transforms import release

_LOGGER = logging.getLogger("pipeline")
LOCAL_RUNNERS = (None, "DirectRunner", "direct", "FnApiRunner")

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
              formats: tuple[str, ...]):
    """DataflowRunner, the job not run by this process: with --dry_run the job (graph,
    options, the package staged from --setup_file) is built and not submitted; with
    --template_location (a Flex Template launch) it is written there, and Dataflow starts it
    once this process has exited. Writes nothing to the output and waits for nothing, so the
    bookkeeping after a job (ledger state, temporary folder) is left undone (docs/dataflow.md).
    Returns the job (`apiclient.Job`: `.proto_pipeline` is the graph)."""
    pipeline = beam.Pipeline(options=options)
    graph.build(pipeline, cfg, info, formats)
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
