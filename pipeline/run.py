"""Entry point: `python -m pipeline ...` and the `segments-export` console script."""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    StandardOptions,
)
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.transforms import environments

from pipeline import config as config_mod
from pipeline import graph
from pipeline.options import ExportOptions
from transforms.formats import errors, paths, release, storage
from transforms.formats.report import format_table
from transforms.report import REPORT

_LOGGER = logging.getLogger("pipeline")
_LOCAL_RUNNERS = (None, "DirectRunner", "direct", "FnApiRunner")


def _local_runner(options: PipelineOptions, argv: Sequence[str]):
    """(runner to pass to beam.Pipeline or None, description) for local runs.

    Beam 2.77's DirectRunner first tries to download the Prism runner (a Go binary) and falls
    back to the FnApiRunner when that fails; pinning the FnApiRunner makes local runs behave
    the same online and offline. By default it runs one SDK worker process per core
    (`pipeline.worker`, Beam's worker with quiet logging). Explicit --direct_* flags win.
    """
    std = options.view_as(StandardOptions)
    if std.runner not in _LOCAL_RUNNERS:
        return None, std.runner
    std.runner = None
    direct = options.view_as(DirectOptions)
    given = " ".join(argv)
    if "--direct_num_workers" not in given:
        in_memory = "--direct_running_mode" in given and direct.direct_running_mode == "in_memory"
        direct.direct_num_workers = 1 if in_memory else (os.cpu_count() or 1)
    if "--direct_running_mode" in given or direct.direct_num_workers == 1:
        runner = FnApiRunner()
        mode = direct.direct_running_mode
    else:
        # FnApiRunner's own multi_processing mode hard-codes Beam's worker command; the
        # same subprocess environment with our quiet worker gives identical execution.
        direct.direct_running_mode = "in_memory"
        logging.getLogger("apache_beam.runners.portability.fn_api_runner.fn_runner").setLevel(
            logging.ERROR)  # it warns that in_memory ignores direct_num_workers; not so here
        command = f"{shlex.quote(sys.executable)} -m pipeline.worker"
        runner = FnApiRunner(
            default_environment=environments.SubprocessSDKEnvironment.from_command_string(
                command_string=command))
        mode = "multi_processing"
    return runner, f"DirectRunner (FnApiRunner, {mode} x{direct.direct_num_workers})"


def prepare(argv: Sequence[str] | None = None):
    """Parses flags, loads the config and reads the release header. No output is written.

    Raises `errors.ReleaseError` / `config.ConfigError` (ValueError) with a one-line message.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    options = PipelineOptions(argv)
    flags = options.view_as(ExportOptions).get_all_options(retain_unknown_options=False)
    export_flags = {k: flags.get(k) for k in (
        "release", "output", "config", "formats", "labelset", "filter_by",
        "filter_by_metadata", "images", "id_increment", "instance_png", "coco_shard_size",
        "manifest_rows_per_shard", "http_timeout", "http_attempts")}
    cfg = config_mod.load(export_flags)
    with storage.open_release(cfg.release) as stream:
        header = release.scan_header(stream)
    info = release.release_info(header, cfg.selection)
    formats = cfg.formats or info.formats
    unsupported = [f for f in formats if f not in info.formats]
    if unsupported:
        raise errors.ReleaseError(
            f"--formats: {', '.join(unsupported)} not available for task type {info.task_type} "
            f"(available: {', '.join(info.formats)})")
    if flags.get("validate") and storage.scheme(cfg.output):
        raise config_mod.ConfigError("--validate: only local output folders can be validated")
    return options, cfg, info, tuple(formats), argv


def run(argv: Sequence[str] | None = None) -> dict[str, int]:
    """Runs the export; returns the sample counts. Raises ValueError before any work."""
    options, cfg, info, formats, argv = prepare(argv)
    runner, runner_name = _local_runner(options, argv)
    _LOGGER.info(
        "release %r (%s, %s layout): %d samples, labelset %r -> %s; formats: %s; runner: %s",
        info.name, info.task_type, info.layout, info.sample_count, info.labelset,
        storage.redact(cfg.output), ", ".join(formats), runner_name)
    storage.remove_tree(storage.join(cfg.output, paths.TEMP_DIR))  # leftovers of a killed run
    started = time.monotonic()
    pipeline = beam.Pipeline(runner=runner, options=options)
    graph.build(pipeline, cfg, info, formats)
    result = pipeline.run()
    result.wait_until_finish()
    storage.remove_tree(storage.join(cfg.output, paths.TEMP_DIR))
    elapsed = time.monotonic() - started
    counts = _counts(result)
    counts["samples"] = info.sample_count
    rate = counts.get("samples_exported", 0) / elapsed if elapsed > 0 else 0.0
    _LOGGER.info(
        "done in %.1f s: %d samples, %d exported, %d failed, %d skipped (%.1f samples/s); "
        "output in %s%s",
        elapsed, info.sample_count, counts.get("samples_exported", 0),
        counts.get("samples_failed", 0), counts.get("samples_skipped", 0), rate,
        storage.redact(cfg.output),
        f"; failures listed in {paths.FAILURES}" if counts.get("samples_failed") else "")
    report_path = storage.join(cfg.output, REPORT)
    try:
        summary = json.loads(storage.read_bytes(report_path))
        print(format_table(summary), file=sys.stderr)
    except (OSError, ValueError):
        _LOGGER.warning("no run report at %s", storage.redact(report_path))
    if options.view_as(ExportOptions).validate:
        from pipeline import validate

        report = validate.validate(cfg.output)
        validate.print_report(report)
        counts["validation_problems"] = sum(len(p) for p in report.problems.values())
    return counts


def _counts(result) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        metrics = result.metrics().query(MetricsFilter().with_namespace("export"))
    except (NotImplementedError, AttributeError):
        return out
    for c in metrics["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return out


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        force=True)  # Beam installs a root handler on import
    for noisy in ("apache_beam", "urllib3", "fsspec", "gcsfs"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> None:
    _configure_logging()
    try:
        counts = run(argv)
    except ValueError as e:  # ReleaseError, ConfigError: bad input, nothing was written
        if isinstance(e, (errors.ReleaseError, config_mod.ConfigError)):
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        raise
    if counts.get("validation_problems"):
        sys.exit(1)


if __name__ == "__main__":
    main()
