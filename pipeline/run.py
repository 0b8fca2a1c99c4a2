"""Entry point: `python -m pipeline ...` and the `segments-export` console script."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Sequence

from apache_beam.options.pipeline_options import GoogleCloudOptions, TestOptions

from pipeline import cli
from pipeline import config as config_mod
from pipeline.modes import run_full, run_only_failed, run_since
from pipeline.options import ExportOptions
from pipeline.prepare import dry_run, prepare
from pipeline.runners import build_job, engine, is_dry_run, local_runner, on_dataflow
from transforms import storage
from transforms.model import errors, paths
from transforms.report import REPORT
from transforms.summary import progress
from transforms.summary.report import format_table

_LOGGER = logging.getLogger("pipeline")


def run(argv: Sequence[str] | None = None) -> dict[str, int]:
    """Runs the export; returns the sample counts. Raises ValueError before any work."""
    options, cfg, info, formats, argv, fp = prepare(argv)
    eng = engine(options)
    only_failed = options.view_as(ExportOptions).only_failed
    since = options.view_as(ExportOptions).since
    dry = options.view_as(TestOptions).dry_run = is_dry_run(options)  # Beam: "False" is true
    if dry:
        plan = dry_run(cfg, info, formats, fp, eng.chunks, only_failed, since)
        if on_dataflow(options):
            plan["job"] = build_job(options, cfg, info, formats, fp)
        return plan
    if on_dataflow(options) and options.view_as(GoogleCloudOptions).template_location:
        if only_failed or since:
            raise config_mod.ConfigError(
                f"--{'only_failed' if only_failed else 'since'}: not available in a template "
                "launch (it runs several pipelines); run it from the command line with "
                "--runner DataflowRunner")
        return {"job": build_job(options, cfg, info, formats, fp)}
    chunk_size = cfg.chunk_size(eng.chunks)
    chunked = bool(chunk_size) and info.sample_count > chunk_size
    runner, runner_name = local_runner(options, argv, None if chunked else info.sample_count)
    if eng.kind != "direct":
        runner_name = eng.name
    mode = "only_failed" if only_failed else "since" if since else "full"
    _LOGGER.info(
        "release %r (%s, %s layout): %d samples, labelset %r -> %s; formats: %s; runner: %s%s",
        info.name, info.task_type, info.layout, info.sample_count, info.labelset,
        storage.redact(cfg.output), ", ".join(formats), runner_name,
        "; only the samples that failed before" if only_failed
        else "; only what changed since the previous export" if since
        else f"; chunks of {chunk_size} samples" if chunked else "")
    started = time.monotonic()
    _STATE.update(mode=mode, output=storage.redact(cfg.output))
    if only_failed:
        counts = run_only_failed(options, argv, cfg, info, formats, fp, eng)
    elif since:
        counts = run_since(options, argv, cfg, info, formats, fp, eng)
    else:
        counts = {"counters": run_full(options, argv, cfg, info, formats, fp, eng, runner,
                                       chunk_size)}
    elapsed = time.monotonic() - started
    report_path = storage.join(cfg.output, REPORT)
    summary = None
    try:
        summary = json.loads(storage.read_bytes(report_path))
    except (OSError, ValueError):
        _LOGGER.warning("no run report at %s", storage.redact(report_path))
    if mode == "full" and summary is not None:
        # From the report the job wrote: exact on every runner (Beam's counters are not on
        # Spark, which counts failed task attempts too).
        counts.update(samples_exported=summary["samples"]["exported"],
                      samples_failed=summary["samples"]["failed"],
                      samples_skipped=summary["samples"]["skipped"])
    counts["samples"] = info.sample_count
    rate = counts.get("samples_exported", 0) / elapsed if elapsed > 0 else 0.0
    _write_run_record(cfg, runner_name, mode, elapsed, rate, counts)
    _LOGGER.info(
        "done in %.1f s: %d samples, %d %sexported, %d failed, %d skipped (%.1f samples/s); "
        "output in %s%s",
        elapsed, info.sample_count, counts.get("samples_exported", 0),
        "re-" if only_failed or since else "", counts.get("samples_failed", 0),
        counts.get("samples_skipped", 0), rate, storage.redact(cfg.output),
        f"; failures listed in {paths.FAILURES}" if counts.get("samples_failed") else "")
    if summary is not None:
        print(format_table(summary), file=sys.stderr)
    counts["budget_exceeded"] = _over_budget(cfg, summary)
    if options.view_as(ExportOptions).validate:
        from pipeline import validate

        report = validate.validate(cfg.output)
        validate.print_report(report)
        counts["validation_problems"] = sum(len(p) for p in report.problems.values())
    return counts


def _write_run_record(cfg, runner_name: str, mode: str, elapsed: float, rate: float,
                      counts: dict[str, int]) -> None:
    """OUT/run.json: how this run went (wall time, rate, runner). Unlike every other file of
    an export it differs from run to run, so it is kept apart from report.json."""
    from importlib import metadata

    try:
        version = metadata.version("segments-beam-export")
    except metadata.PackageNotFoundError:
        version = "unknown"
    record = {
        "mode": mode, "runner": runner_name, "exporter": version,
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_s": round(elapsed, 3), "samples_per_s": round(rate, 3),
        "samples": {"in_release": counts.get("samples", 0),
                    "exported_by_this_run": counts.get("samples_exported", 0),
                    "failed_in_this_run": counts.get("samples_failed", 0),
                    "skipped_in_this_run": counts.get("samples_skipped", 0),
                    "kept_from_previous_export": counts.get("samples_reused", 0)},
        # Beam's `export` counters as the runner reported them (committed values, else
        # attempted ones: Spark reports only those, failed task attempts included); the
        # counts above come from the export's own files, exact on every runner.
        "counters": dict(sorted(counts.get("counters", {}).items())),
    }
    storage.write_bytes(storage.join(cfg.output, paths.RUN),
                        (json.dumps(record, indent=1) + "\n").encode("utf-8"))


def _over_budget(cfg, report: dict | None) -> str:
    """Why the failure budget is exceeded, or "" (from the run report's counts)."""
    if report is None or (cfg.max_failures is None and cfg.max_failure_ratio is None):
        return ""
    failed, selected = report["samples"]["failed"], report["samples"]["selected"]
    if cfg.max_failures is not None and failed > cfg.max_failures:
        return f"{failed} samples failed, more than --max_failures {cfg.max_failures}"
    if cfg.max_failure_ratio is not None and selected and failed / selected > cfg.max_failure_ratio:
        return (f"{failed} of {selected} selected samples failed ({failed / selected:.1%}), more "
                f"than --max_failure_ratio {cfg.max_failure_ratio}")
    return ""


_NOISY = ("apache_beam", "urllib3", "fsspec", "gcsfs", "s3fs", "botocore", "aiobotocore",
          "google", "grpc",
          # Beam relays every line of the Flink / Spark job server (a Java process it starts)
          # under these names; a failed job's error reaches the launcher as the job's state.
          "FlinkJarJobServer", "SparkJarJobServer", "PrismJobServer")


def _configure_logging(level: str | None = None) -> None:
    """The exporter's own lines at INFO; everything else (Beam's chatter, HTTP and cloud
    clients) at ERROR unless `--log_level` asks for more. A worker's message relayed by the
    local job service is one plain line, not a protobuf dump."""
    handler = progress.BarAwareHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):  # Beam installs a root handler on import
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level or logging.INFO)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(level or logging.ERROR)
    # The steps' own notes (e.g. the reader's count) when the job runs in this process.
    logging.getLogger("transforms").setLevel(level or logging.WARNING)
    logging.getLogger(_RELAY).addFilter(_plain_worker_message)
    if level is None:
        root.addFilter(_no_job_chatter)


def _no_job_chatter(record: logging.LogRecord) -> bool:
    """A portable runner's job service reports each state change ("starting job-001", ...)
    as an INFO message of the root logger; warnings and errors still show."""
    return not (record.levelno < logging.WARNING and record.name == "root"
                and record.module == "portable_runner")


# Beam's local job service relays each log record of a worker process as `Worker: <LogEntry
# protobuf in text format>`; the message alone is what a person needs.
_RELAY = "apache_beam.runners.portability.local_job_service"
_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')


def _plain_worker_message(record: logging.LogRecord) -> bool:
    if record.msg == "Worker: %s" and record.args:
        found = _MESSAGE.search(str(record.args[0]))
        if found:
            text = found.group(1).encode("latin-1", "backslashreplace").decode("unicode_escape")
            record.msg, record.args = "worker: %s", (
                text.encode("latin-1", "replace").decode("utf-8", "replace"),)
    return True


_HELP_EPILOG = """\
Beam options pass through, for example:
  --runner RUNNER            default DirectRunner, run as Beam's FnApiRunner with one SDK
                             worker process per core (same behaviour online and offline);
                             DataflowRunner for Google Cloud Dataflow
  --dry_run                  print what would be exported (label statuses, samples, skip
                             reasons) without fetching or writing anything; with
                             DataflowRunner, also build the job without submitting it
  --direct_num_workers N     local worker processes (default: every core)
  --direct_running_mode M    in_memory (one process) | multi_threading | multi_processing
  --project, --region, --temp_location, --setup_file ./setup.py   for Dataflow

Examples:
  python -m pipeline --output out                      # the bundled example release
  python -m pipeline --release flowers-v1.0.json --output out --formats coco-instance,yolo
  python -m pipeline --release rel.json --output out --filter_by labeled,reviewed --dry_run
  python -m pipeline --release rel-v2.json --output out --since out   # update it to v2
  python -m pipeline --release rel.json --output out --split train=0.8,val=0.1,test=0.1 \
      --formats coco-instance,yolo,semantic,hf-parquet,webdataset    # splits and shards
  python -m pipeline.validate out                      # re-check an export
"""


def _print_help() -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog=cli.program(),
        description="Export a Segments.ai release to COCO instance, COCO panoptic, YOLO and "
                    "PNG label formats with Apache Beam.",
        epilog=_HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ExportOptions._add_argparse_args(parser)
    parser.print_help()


# What a run is doing, for the line printed when it is interrupted (set by `run`).
_STATE: dict[str, str] = {}


def _interrupt(prog: str, args: list[str]) -> None:
    """Ctrl-C: one line saying what was kept and how to go on, then the end of the process
    right away (Beam's runner threads would otherwise print a traceback each, or keep it
    alive); local worker processes end with it (`pipeline.worker`)."""
    clear = "\r\033[K" if sys.stderr.isatty() else ""  # the progress bar, if one is drawn
    sys.stderr.write(f"{clear}{prog}: interrupted: {_interrupted(args)}\n")
    sys.stderr.flush()
    os._exit(130)


def _interrupted(args: list[str]) -> str:
    """What an interrupted run kept, and the command that goes on from there."""
    command = " ".join([cli.program(), *map(shlex.quote, args)])
    mode, out = _STATE.get("mode"), _STATE.get("output", "")
    if mode is None:
        return "nothing was written"
    if mode == "full":
        return (f"{out} holds an unfinished export (no ledger state: nothing there is reused); "
                f"running the same command again replaces it: {command}")
    return f"the update of {out} is not finished; run the same command again to finish it: {command}"


def _log_level(args: list[str]) -> str | None:
    """--log_level's value, read before the full parse so the parse itself logs at it."""
    for i, a in enumerate(args):
        value = (a.split("=", 1)[1] if a.startswith("--log_level=")
                 else args[i + 1] if a == "--log_level" and i + 1 < len(args) else None)
        if value and value.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"):
            return value.upper()
    return None


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        _print_help()
        return
    _configure_logging(_log_level(args))
    prog = cli.program()
    signal.signal(signal.SIGINT, lambda *_: _interrupt(prog, args))
    try:
        counts = run(argv)
    except (errors.ReleaseError, config_mod.ConfigError, cli.UsageError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)  # bad input: nothing was written
        sys.exit(2)
    if counts.get("budget_exceeded"):
        print(f"{prog}: error: failure budget exceeded: {counts['budget_exceeded']} (every "
              f"other sample was exported; see {paths.FAILURES})", file=sys.stderr)
        sys.exit(3)
    if counts.get("validation_problems"):
        sys.exit(1)


if __name__ == "__main__":
    main()
