"""Everything before any work: flags, config, the release header, and the checks that a
run can go ahead (`prepare`), or what it would do (`dry_run`). Nothing here writes output.

Every problem raises `errors.ReleaseError` or `config.ConfigError` (ValueError) with a
one-line message naming the flag or field; the entry point turns it into exit code 2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import tempfile
from collections.abc import Sequence

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline import cli
from pipeline import config as config_mod
from pipeline.options import ExportOptions
from pipeline.runners import check_engine, engine, is_dry_run
from transforms import release, storage
from transforms.model import errors, paths
from transforms.model.types import OPT_IN_FORMATS, SHARD_FORMATS, available_formats
from transforms.state import incremental, ledger


def bare_dry_run(argv: list[str]) -> list[str]:
    """Beam's own --dry_run (TestOptions) needs a value; accept the bare flag too."""
    return [("--dry_run=True" if a == "--dry_run" and (i + 1 == len(argv) or argv[i + 1].startswith("-"))
             else a) for i, a in enumerate(argv)]


def prepare(argv: Sequence[str] | None = None):
    """Parses flags, loads the config and reads the release header. No output is written.

    Raises `errors.ReleaseError` / `config.ConfigError` (ValueError) with a one-line message.
    """
    argv = bare_dry_run(list(sys.argv[1:] if argv is None else argv))
    cli.check(argv)  # an argument Beam would drop with a warning is an error here
    options = PipelineOptions(argv)
    flags = options.view_as(ExportOptions).get_all_options(retain_unknown_options=False)
    export_flags = {k: flags.get(k) for k in (
        "release", "output", "config", "formats", "labelset", "filter_by",
        "filter_by_metadata", "images", "id_increment", "instance_png", "coco_segmentation", "coco_shard_size",
        "manifest_rows_per_shard", "http_timeout", "http_attempts", "max_failures",
        "max_failure_ratio", "chunk_samples", "allow_local_files", "stuff_as_instances",
        "split", "split_salt", "split_by_metadata", "split_missing", "shard_mb")}
    cfg = config_mod.load(export_flags)
    with storage.open_release(cfg.release) as stream:
        hashing = ledger.HashingReader(stream)
        header = release.scan_header(hashing, cfg.selection)
        release_sha256 = hashing.sha256()
    info = release.release_info(header, cfg.selection)
    release.check_selection(info.census, info.sample_count, info.labelset, cfg.selection)
    formats = cfg.formats or tuple(f for f in info.formats if f not in OPT_IN_FORMATS)
    available = available_formats(info.task_type)
    unsupported = [f for f in formats if f not in available]
    if unsupported:
        raise errors.ReleaseError(
            f"--formats: {', '.join(unsupported)} not available for task type {info.task_type} "
            f"(available: {', '.join(available)})")
    shards = [f for f in formats if f in SHARD_FORMATS]
    if shards and cfg.images != "copy":
        raise config_mod.ConfigError(
            f"--formats: {shards[0]} embeds each sample's image, which --images none leaves "
            "out; use --images copy")
    if cfg.split is not None and cfg.images != "copy" and ("yolo" in formats
                                                           or "yolo-seg" in formats):
        raise config_mod.ConfigError(
            "--split: the YOLO split lists (train.txt, ...) name the copied images, which "
            "--images none leaves out; use --images copy, or leave yolo out of --formats")
    if "semantic" in formats:
        for c in info.categories:
            value = c.id + cfg.id_increment
            if not 0 <= value <= 0xFFFF:
                raise errors.ReleaseError(
                    f"--id_increment: category {c.id} ({c.name}) + {cfg.id_increment} = {value} "
                    "does not fit a semantic PNG (0..65535)")
    if cfg.split is not None:
        info = dataclasses.replace(info, splits=plan_splits(cfg, info))
    runner_name = options.view_as(StandardOptions).runner
    if cfg.chunk_samples not in ("auto", 0) and not engine(options).chunks:
        raise config_mod.ConfigError(
            f"--chunk_samples: chunked runs are for local runners, not {runner_name} (it keeps "
            "nothing in the launcher's memory); use --chunk_samples 0 or auto")
    if not is_dry_run(options):
        check_engine(options)  # the cluster, the job server and its jar can be reached
    if not (is_dry_run(options) and storage.scheme(cfg.output)):  # a dry run reads no bucket
        storage.check_output(cfg.output, paths.OWNED)  # fails on a foreign non-empty folder
        storage.check_writable(cfg.output)
    fp = fingerprint(cfg, info, tuple(formats), release_sha256)
    if flags.get("only_failed") and flags.get("since"):
        raise config_mod.ConfigError("--only_failed and --since: choose one (--since also "
                                     "exports the samples that failed before)")
    if flags.get("only_failed"):
        check_resumable(cfg, fp)
    if flags.get("since"):
        check_since(cfg, flags["since"], fp)
    return options, cfg, info, tuple(formats), argv, fp


def plan_splits(cfg, info: release.ReleaseInfo) -> release.SplitPlan:
    """--split: one streaming pass over the release (the reader's own decisions) to find
    each sample's split and apply the rule that keeps every split non-empty
    (`release.splits`). Raises ReleaseError for metadata missing without a fallback."""
    import json

    spec = cfg.split_spec
    with storage.open_release(cfg.release) as stream:
        samples = ((d.position, d.uuid, d.name,
                    json.loads(d.sample.metadata) if spec.by_metadata and d.sample.metadata
                    else None)
                   for d in release.decide(stream, info, cfg.selection) if d.sample is not None)
        return release.splits.plan(samples, spec)


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
        "stuff_as_instances": cfg.stuff_as_instances,
        "exporter": version, **split_settings(cfg)})


def split_settings(cfg) -> dict:
    """The split options in the ledger's fingerprint (none without --split, so exports
    made before splits existed keep their fingerprint)."""
    if cfg.split is None:
        return {}
    spec = cfg.split_spec
    return {"split": [[n, r] for n, r in zip(spec.names, spec.ratios)], "split_salt": spec.salt,
            "split_by_metadata": spec.by_metadata, "split_missing": spec.missing}


def previous_export(cfg, fp: ledger.Fingerprint, flag: str, what: str,
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


def check_resumable(cfg, fp: ledger.Fingerprint) -> int:
    """--only_failed: the previous export's generation (same release, same options)."""
    return previous_export(cfg, fp, "--only_failed", "complete", same_release=True)


def check_since(cfg, previous_out: str, fp: ledger.Fingerprint) -> int:
    """--since: the previous export's generation (same options, any release); it must be in
    the --output folder, which is updated in place."""
    if previous_out.rstrip("/") != cfg.output.rstrip("/"):
        raise config_mod.ConfigError(
            f"--since: {storage.redact(previous_out)} is not the --output folder "
            f"({storage.redact(cfg.output)}); an incremental export updates the previous "
            "export in place: give the same folder to both")
    return previous_export(cfg, fp, "--since", "update", same_release=False)


def dry_run(cfg, info: release.ReleaseInfo, formats: tuple[str, ...],
            fp: ledger.Fingerprint, chunks: bool = True, only_failed: bool = False,
            since: str | None = None) -> dict:
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
    chunk = cfg.chunk_size(chunks)
    if chunk and info.sample_count > chunk:
        lines.append(f"in chunks of up to {chunk} samples (--chunk_samples), one local "
                     "pipeline each, merged into one export")
    if info.splits is not None:
        lines.append("splits: " + ", ".join(f"{n} {c}" for n, c in info.splits.counts)
                     + f" samples to export ({info.splits.spec.describe()})"
                     + (f"; {len(info.splits.moved)} moved to keep every split non-empty"
                        if info.splits.moved else ""))
    lines += [f"  skip {n:>7}  {reason}" for reason, n in plan["skipped"].items()]
    if plan["malformed"]:
        lines.append(f"  {plan['malformed']} malformed samples would fail, e.g.:")
        lines += [f"    {m}" for m in plan["malformed_examples"]]
    print("\n".join(lines))
    if only_failed:
        generation = check_resumable(cfg, fp)
        plan["only_failed"] = len(ledger.failed_positions(
            ledger.generation_dir(cfg.output, generation)))
        print(f"--only_failed: would re-export the {plan['only_failed']} samples that failed "
              f"in the previous export in {storage.redact(cfg.output)} and rebuild its "
              "global files")
    if since:
        generation = check_since(cfg, since, fp)
        with tempfile.TemporaryDirectory(prefix="segments-since-") as work, \
                storage.open_release(cfg.release) as stream:
            p = incremental.plan(stream, info, cfg.selection,
                                 ledger.generation_dir(cfg.output, generation), work)
        plan["since"] = {"reused": p.reused, "export": len(p.redo), "previous": p.previous}
        print(f"--since: {p.reused} samples unchanged since the previous export in "
              f"{storage.redact(cfg.output)} ({p.previous} samples) would keep their files; "
              f"{len(p.redo)} would be exported (changed, new, failed or skipped before, or "
              "shown in the preview)")
    return plan
