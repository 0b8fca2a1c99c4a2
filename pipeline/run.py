"""Entry point: `python -m pipeline ...` and the `segments-export` console script."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import (
    DirectOptions,
    GoogleCloudOptions,
    PipelineOptions,
    StandardOptions,
    TestOptions,
)
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.transforms import environments

from pipeline import config as config_mod
from pipeline import graph
from pipeline.options import ExportOptions
from transforms import progress
from transforms.formats import chunking, errors, incremental, ledger, paths, release, storage, yolo
from transforms.formats.report import format_table
from transforms.formats.taxonomy import Taxonomy
from transforms.formats.types import OPT_IN_FORMATS
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


def _bare_dry_run(argv: list[str]) -> list[str]:
    """Beam's own --dry_run (TestOptions) needs a value; accept the bare flag too."""
    return [("--dry_run=True" if a == "--dry_run" and (i + 1 == len(argv) or argv[i + 1].startswith("-"))
             else a) for i, a in enumerate(argv)]


def is_dry_run(options: PipelineOptions) -> bool:
    """--dry_run[=True]: print the plan; local runners stop there, DataflowRunner then builds
    the job graph without submitting it (Beam's meaning of the same flag)."""
    return str(options.view_as(TestOptions).dry_run).lower() in ("true", "1", "yes")


def prepare(argv: Sequence[str] | None = None):
    """Parses flags, loads the config and reads the release header. No output is written.

    Raises `errors.ReleaseError` / `config.ConfigError` (ValueError) with a one-line message.
    """
    argv = _bare_dry_run(list(sys.argv[1:] if argv is None else argv))
    options = PipelineOptions(argv)
    flags = options.view_as(ExportOptions).get_all_options(retain_unknown_options=False)
    export_flags = {k: flags.get(k) for k in (
        "release", "output", "config", "formats", "labelset", "filter_by",
        "filter_by_metadata", "images", "id_increment", "instance_png", "coco_segmentation", "coco_shard_size",
        "manifest_rows_per_shard", "http_timeout", "http_attempts", "max_failures",
        "max_failure_ratio", "chunk_samples", "allow_local_files")}
    cfg = config_mod.load(export_flags)
    with storage.open_release(cfg.release) as stream:
        hashing = ledger.HashingReader(stream)
        header = release.scan_header(hashing)
        release_sha256 = hashing.sha256()
    info = release.release_info(header, cfg.selection)
    formats = cfg.formats or tuple(f for f in info.formats if f not in OPT_IN_FORMATS)
    unsupported = [f for f in formats if f not in info.formats]
    if unsupported:
        raise errors.ReleaseError(
            f"--formats: {', '.join(unsupported)} not available for task type {info.task_type} "
            f"(available: {', '.join(info.formats)})")
    if "semantic" in formats:
        for c in info.categories:
            value = c.id + cfg.id_increment
            if not 0 <= value <= 0xFFFF:
                raise errors.ReleaseError(
                    f"--id_increment: category {c.id} ({c.name}) + {cfg.id_increment} = {value} "
                    "does not fit a semantic PNG (0..65535)")
    runner_name = options.view_as(StandardOptions).runner
    if cfg.chunk_samples not in ("auto", 0) and runner_name not in _LOCAL_RUNNERS:
        raise config_mod.ConfigError(
            f"--chunk_samples: chunked runs are for local runners, not {runner_name} (it keeps "
            "nothing in the launcher's memory); use --chunk_samples 0 or auto")
    if not (is_dry_run(options) and storage.scheme(cfg.output)):  # a dry run reads no bucket
        storage.check_output(cfg.output, paths.OWNED)  # fails on a foreign non-empty folder
    fp = fingerprint(cfg, info, tuple(formats), release_sha256)
    if flags.get("only_failed") and flags.get("since"):
        raise config_mod.ConfigError("--only_failed and --since: choose one (--since also "
                                     "exports the samples that failed before)")
    if flags.get("only_failed"):
        _check_resumable(cfg, fp)
    if flags.get("since"):
        _check_since(cfg, flags["since"], fp)
    return options, cfg, info, tuple(formats), argv, fp


def fingerprint(cfg, info: release.ReleaseInfo, formats: tuple[str, ...],
                release_sha256: str) -> ledger.Fingerprint:
    """What per-sample results depend on (release content and options), for the ledger."""
    from importlib import metadata

    try:
        version = metadata.version("segments-beam-export")
    except metadata.PackageNotFoundError:
        version = "unknown"
    categories = hashlib.sha256(repr(info.categories).encode("utf-8", "surrogatepass"))
    return ledger.fingerprint(release_sha256, {
        "task_type": info.task_type, "categories": categories.hexdigest()[:16],
        "formats": list(formats), "labelset": info.labelset,
        "filter_by": cfg.filter_by, "filter_by_metadata": cfg.filter_by_metadata,
        "images": cfg.images, "id_increment": cfg.id_increment,
        "instance_png": cfg.instance_png, "coco_segmentation": cfg.coco_segmentation,
        "exporter": version})


def _previous_export(cfg, fp: ledger.Fingerprint, flag: str, what: str,
                     same_release: bool) -> int:
    """The generation of the ledger of the previous export in --output, or a ConfigError
    naming `flag` and saying why that export cannot be `what` (completed, updated)."""
    state = ledger.read_state(cfg.output)
    if state is None:
        raise config_mod.ConfigError(
            f"{flag}: {storage.redact(cfg.output)} holds no finished export to {what} (no "
            f"ledger); run a full export without {flag} first")
    generation, previous = state
    if not same_release:  # a new release is what --since is for
        fp = dataclasses.replace(fp, release_sha256=previous.release_sha256)
    changed = fp.differences(previous)
    if changed:
        raise config_mod.ConfigError(
            f"{flag}: the previous export was made differently: " + "; ".join(changed)
            + f"; run a full export without {flag}")
    return generation


def _check_resumable(cfg, fp: ledger.Fingerprint) -> int:
    """--only_failed: the previous export's generation (same release, same options)."""
    return _previous_export(cfg, fp, "--only_failed", "complete", same_release=True)


def _check_since(cfg, previous_out: str, fp: ledger.Fingerprint) -> int:
    """--since: the previous export's generation (same options, any release); it must be in
    the --output folder, which is updated in place."""
    if previous_out.rstrip("/") != cfg.output.rstrip("/"):
        raise config_mod.ConfigError(
            f"--since: {storage.redact(previous_out)} is not the --output folder "
            f"({storage.redact(cfg.output)}); an incremental export updates the previous "
            "export in place: give the same folder to both")
    return _previous_export(cfg, fp, "--since", "update", same_release=False)


def dry_run(cfg, info: release.ReleaseInfo, formats: tuple[str, ...], local: bool = True) -> dict:
    """--dry_run: the export's plan, from one streaming pass over the release."""
    with storage.open_release(cfg.release) as stream:
        plan = release.plan(stream, info, cfg.selection)
    lines = [
        f"release {info.name!r}: dataset {info.dataset_name!r}, {info.task_type}, {info.layout} "
        f"layout, labelset {info.labelset!r} (of {', '.join(info.labelsets)}), "
        f"{len(info.categories)} categories",
        f"{plan['samples']} samples; label status: "
        + ", ".join(f"{s} {n}" for s, n in plan["statuses"].items()),
        f"would export {plan['to_export']} samples to {', '.join(formats)} "
        f"(images: {cfg.images}) in {storage.redact(cfg.output)}",
    ]
    chunk = cfg.chunk_size(local)
    if chunk and info.sample_count > chunk:
        lines.append(f"in chunks of up to {chunk} samples (--chunk_samples), one local "
                     "pipeline each, merged into one export")
    lines += [f"  skip {n:>7}  {reason}" for reason, n in plan["skipped"].items()]
    if plan["malformed"]:
        lines.append(f"  {plan['malformed']} malformed samples would fail, e.g.:")
        lines += [f"    {m}" for m in plan["malformed_examples"]]
    print("\n".join(lines))
    return plan


def _on_dataflow(options: PipelineOptions) -> bool:
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


def run(argv: Sequence[str] | None = None) -> dict[str, int]:
    """Runs the export; returns the sample counts. Raises ValueError before any work."""
    options, cfg, info, formats, argv, fp = prepare(argv)
    local = options.view_as(StandardOptions).runner in _LOCAL_RUNNERS
    only_failed = options.view_as(ExportOptions).only_failed
    since = options.view_as(ExportOptions).since
    dry = options.view_as(TestOptions).dry_run = is_dry_run(options)  # Beam: "False" is true
    if dry:
        plan = dry_run(cfg, info, formats, local)
        if only_failed:
            generation = _check_resumable(cfg, fp)
            plan["only_failed"] = len(ledger.failed_positions(
                ledger.generation_dir(cfg.output, generation)))
            print(f"--only_failed: would re-export the {plan['only_failed']} samples that failed "
                  f"in the previous export in {storage.redact(cfg.output)} and rebuild its "
                  "global files")
        if since:
            generation = _check_since(cfg, since, fp)
            with tempfile.TemporaryDirectory(prefix="segments-since-") as work, \
                    storage.open_release(cfg.release) as stream:
                p = incremental.plan(stream, info, cfg.selection,
                                     ledger.generation_dir(cfg.output, generation), work)
            plan["since"] = {"reused": p.reused, "export": len(p.redo), "previous": p.previous}
            print(f"--since: {p.reused} samples unchanged since the previous export in "
                  f"{storage.redact(cfg.output)} ({p.previous} samples) would keep their files; "
                  f"{len(p.redo)} would be exported (changed, new, failed or skipped before, or "
                  "shown in the preview)")
        if _on_dataflow(options):
            plan["job"] = build_job(options, cfg, info, formats)
        return plan
    if _on_dataflow(options) and options.view_as(GoogleCloudOptions).template_location:
        if only_failed or since:
            raise config_mod.ConfigError(
                f"--{'only_failed' if only_failed else 'since'}: not available in a template "
                "launch (it runs several pipelines); run it from the command line with "
                "--runner DataflowRunner")
        return {"job": build_job(options, cfg, info, formats)}
    chunk_size = cfg.chunk_size(local)
    chunked = bool(chunk_size) and info.sample_count > chunk_size
    runner, runner_name = _local_runner(options, argv)
    _LOGGER.info(
        "release %r (%s, %s layout): %d samples, labelset %r -> %s; formats: %s; runner: %s%s",
        info.name, info.task_type, info.layout, info.sample_count, info.labelset,
        storage.redact(cfg.output), ", ".join(formats), runner_name,
        "; only the samples that failed before" if only_failed
        else "; only what changed since the previous export" if since
        else f"; chunks of {chunk_size} samples" if chunked else "")
    started = time.monotonic()
    if only_failed:
        counts = _run_only_failed(options, argv, cfg, info, formats, fp, local)
    elif since:
        counts = _run_since(options, argv, cfg, info, formats, fp, local)
    else:
        # A rerun replaces the previous export (and a killed run's leftovers) in full, so
        # no stale shard or per-sample file can mix with the new one.
        for entry in storage.check_output(cfg.output, paths.OWNED):
            storage.remove_tree(storage.join(cfg.output, entry))
        # Before any output: marks the folder as an export, so that if this run is killed,
        # running the command again replaces what it left (`storage.check_output`).
        storage.write_bytes(storage.join(cfg.output, paths.TEMP_DIR, "started"), b"")
        with tempfile.TemporaryDirectory(prefix="segments-progress-") as ticks:
            if chunked:
                counts = _run_chunked(options, argv, cfg, info, formats, chunk_size, ticks)
            else:
                pipeline = beam.Pipeline(runner=runner, options=options)
                graph.build(pipeline, cfg, info, formats, progress_dir=ticks if local else None)
                with (progress.Monitor(ticks, info.sample_count) if local
                      else contextlib.nullcontext()):
                    result = pipeline.run()
                    result.wait_until_finish()
                counts = _counts(result)
        ledger.write_state(cfg.output, 0, fp)  # last: the export is complete
    elapsed = time.monotonic() - started
    counts["samples"] = info.sample_count
    rate = counts.get("samples_exported", 0) / elapsed if elapsed > 0 else 0.0
    _write_run_record(cfg, runner_name, "only_failed" if only_failed else "since" if since
                      else "full", elapsed, rate, counts)
    storage.remove_tree(storage.join(cfg.output, paths.TEMP_DIR))
    _LOGGER.info(
        "done in %.1f s: %d samples, %d %sexported, %d failed, %d skipped (%.1f samples/s); "
        "output in %s%s",
        elapsed, info.sample_count, counts.get("samples_exported", 0),
        "re-" if only_failed or since else "", counts.get("samples_failed", 0),
        counts.get("samples_skipped", 0), rate, storage.redact(cfg.output),
        f"; failures listed in {paths.FAILURES}" if counts.get("samples_failed") else "")
    report_path = storage.join(cfg.output, REPORT)
    summary = None
    try:
        summary = json.loads(storage.read_bytes(report_path))
        print(format_table(summary), file=sys.stderr)
    except (OSError, ValueError):
        _LOGGER.warning("no run report at %s", storage.redact(report_path))
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
    }
    storage.write_bytes(storage.join(cfg.output, paths.RUN),
                        (json.dumps(record, indent=1) + "\n").encode("utf-8"))


def _global_files(cfg, info, formats) -> tuple[Taxonomy, dict, dict]:
    """(taxonomy, COCO headers, small files) of the files a merge or rebuild writes."""
    taxonomy = Taxonomy(info.categories, cfg.id_increment)
    small = {}
    if "yolo" in formats or "yolo-seg" in formats:
        small[storage.join(cfg.output, paths.YOLO_DATA_YAML)] = yolo.data_yaml(taxonomy)
    return taxonomy, graph.coco_headers(info, taxonomy, formats), small


def _run_only_failed(options, argv, cfg, info, formats, fp, local: bool) -> dict[str, int]:
    """--only_failed: re-export the samples the ledger records as failed, merge their new
    results into a new ledger generation, and rebuild every global file from it (`ledger`).

    Each step can be interrupted: state.json switches to the new generation only once it is
    complete, and the global files are rebuilt from whichever generation is current.
    """
    generation = _check_resumable(cfg, fp)
    temp, current = _prepare_update(cfg, generation)
    failed = ledger.failed_positions(current)
    _LOGGER.info("re-exporting the %d samples that failed in the previous export", len(failed))
    counts: dict[str, int] = {}
    if failed:
        fresh = storage.join(temp, "ledger")
        counts = _export_positions(options, argv, cfg, info, formats, local, set(failed), fresh)
        target = ledger.generation_dir(cfg.output, generation + 1)
        ledger.combine(current, fresh, target)
        ledger.write_state(cfg.output, generation + 1, fp)  # the new ledger is current
        storage.remove_tree(current)
        current = target
    _rebuild(options, argv, cfg, info, formats, current)
    return counts


def _prepare_update(cfg, generation: int) -> tuple[str, str]:
    """(temporary folder, current ledger generation) of an update in place, after removing
    what a killed update left."""
    temp = storage.join(cfg.output, paths.TEMP_DIR)
    storage.remove_tree(temp)
    for stale in (generation - 1, generation + 1):  # a killed run's other generation
        storage.remove_tree(ledger.generation_dir(cfg.output, stale))
    return temp, ledger.generation_dir(cfg.output, generation)


def _export_positions(options, argv, cfg, info, formats, local: bool, only, fresh: str
                      ) -> dict[str, int]:
    """Exports the samples at release positions `only` (their files, and their ledger
    entries into `fresh`), in chunks of local pipelines; returns the counters."""
    temp = storage.join(cfg.output, paths.TEMP_DIR)
    folder = storage.join(temp, "chunks")
    counts: dict[str, int] = {}
    with storage.open_release(cfg.release) as stream:
        chunks = chunking.split(stream, info, cfg.selection, folder,
                                cfg.chunk_size(local) or max(len(only), 1), only=only)
    with tempfile.TemporaryDirectory(prefix="segments-progress-") as ticks, (
            progress.Monitor(ticks, len(only)) if local else contextlib.nullcontext()):
        for c in chunks:
            if not c.positions:
                continue  # a release without samples
            runner, _ = _local_runner(options, argv)
            pipeline = beam.Pipeline(runner=runner, options=options)
            graph.build(pipeline, cfg, info, formats, progress_dir=ticks if local else None,
                        chunk=graph.ChunkRun(c, chunking.stems_path(folder, c.number), 0,
                                             ledger_only=True),
                        ledger_dir=fresh)
            result = pipeline.run()
            result.wait_until_finish()
            for name, value in _counts(result).items():
                counts[name] = counts.get(name, 0) + value
            storage.remove_tree(c.path)
    return counts


def _run_since(options, argv, cfg, info, formats, fp, local: bool) -> dict[str, int]:
    """--since: export the new release into the previous export's folder, exporting only
    the samples whose content or output name changed (`incremental`), deleting the files of
    samples that are gone, and rebuilding every global file from the combined ledger.

    Each step can be interrupted: the plan depends only on the previous generation, which
    stays current until the new one is complete and the stale files are gone.
    """
    generation = _check_since(cfg, cfg.output, fp)
    temp, current = _prepare_update(cfg, generation)
    with storage.open_release(cfg.release) as stream:
        p = incremental.plan(stream, info, cfg.selection, current, storage.join(temp, "plan"))
    _LOGGER.info("%d of %d samples unchanged since the previous export (%d samples); "
                 "exporting %d", p.reused, p.samples, p.previous, len(p.redo))
    fresh = storage.join(temp, "ledger")
    counts = (_export_positions(options, argv, cfg, info, formats, local, p.redo, fresh)
              if p.redo else {})
    target = ledger.generation_dir(cfg.output, generation + 1)
    incremental.combine(current, fresh, target, p)
    stale = incremental.stale_files(current, fresh, p)
    for rel in stale:
        storage.remove_file(cfg.output, rel)
    _LOGGER.info("%d files of removed or renamed samples deleted", len(stale))
    ledger.write_state(cfg.output, generation + 1, fp)  # the new ledger is current
    storage.remove_tree(current)
    _rebuild(options, argv, cfg, info, formats, target)
    counts["samples_reused"] = p.reused
    return counts


def _rebuild(options, argv, cfg, info, formats, current: str) -> None:
    """Every global file rebuilt from the ledger generation `current` (one pipeline)."""
    taxonomy, headers, small = _global_files(cfg, info, formats)
    rebuild = ledger.Rebuild(cfg.output, current, info.sample_count, cfg.manifest_rows_per_shard,
                             headers, graph.report_header(cfg, info, formats), taxonomy, small)
    runner, _ = _local_runner(options, argv)
    pipeline = beam.Pipeline(runner=runner, options=options)
    graph.build_merge(pipeline, rebuild)
    pipeline.run().wait_until_finish()


def _run_chunked(options, argv, cfg, info, formats, chunk_size: int, ticks: str) -> dict[str, int]:
    """The release as consecutive chunks, one local pipeline each, merged (`chunking`)."""
    temp = storage.join(cfg.output, paths.TEMP_DIR)
    folder = storage.join(temp, "chunks")
    t0 = time.monotonic()
    with storage.open_release(cfg.release) as stream:
        chunks = chunking.split(stream, info, cfg.selection, folder, chunk_size)
    _LOGGER.info("release split into %d chunks in %.1f s", len(chunks), time.monotonic() - t0)
    counts: dict[str, int] = {}
    id_base = 0
    with progress.Monitor(ticks, info.sample_count):
        for c in chunks:
            runner, _ = _local_runner(options, argv)
            pipeline = beam.Pipeline(runner=runner, options=options)
            chunk_run = graph.ChunkRun(c, chunking.stems_path(folder, c.number), id_base)
            graph.build(pipeline, cfg, info, formats, progress_dir=ticks, chunk=chunk_run)
            result = pipeline.run()
            result.wait_until_finish()
            for name, value in _counts(result).items():
                counts[name] = counts.get(name, 0) + value
            if "coco-instance" in formats:
                id_base += chunking.read_total(
                    chunking.PartPaths(temp, c.number).coco_total("coco-instance"))
            storage.remove_tree(c.path)  # its samples are exported; free the disk space
        taxonomy, headers, small = _global_files(cfg, info, formats)
        merge = chunking.Merge(
            cfg.output, temp, tuple(c.number for c in chunks), info.sample_count,
            cfg.manifest_rows_per_shard, headers, graph.report_header(cfg, info, formats),
            taxonomy, small)
        # The merge is a pipeline too: its tasks run on the workers, in parallel, and the
        # launcher's memory stays that of the chunk runs.
        runner, _ = _local_runner(options, argv)
        pipeline = beam.Pipeline(runner=runner, options=options)
        graph.build_merge(pipeline, merge)
        pipeline.run().wait_until_finish()
    ledger.merge_parts(storage.join(temp, "ledger"), ledger.generation_dir(cfg.output, 0))
    return counts


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
    for noisy in ("apache_beam", "urllib3", "fsspec", "gcsfs", "s3fs", "botocore", "aiobotocore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


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
  python -m pipeline.validate out                      # re-check an export
"""


def _print_help() -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Export a Segments.ai release to COCO instance, COCO panoptic, YOLO and "
                    "PNG label formats with Apache Beam.",
        epilog=_HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ExportOptions._add_argparse_args(parser)
    parser.print_help()


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        _print_help()
        return
    _configure_logging()
    try:
        counts = run(argv)
    except ValueError as e:  # ReleaseError, ConfigError: bad input, nothing was written
        if isinstance(e, (errors.ReleaseError, config_mod.ConfigError)):
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        raise
    if counts.get("budget_exceeded"):
        print(f"error: failure budget exceeded: {counts['budget_exceeded']} (every other sample "
              f"was exported; see {paths.FAILURES})", file=sys.stderr)
        sys.exit(3)
    if counts.get("validation_problems"):
        sys.exit(1)


if __name__ == "__main__":
    main()
