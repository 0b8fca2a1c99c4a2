"""The four ways an export runs: one pipeline, consecutive chunks (`chunking`), the failed
samples only (`--only_failed`) and the changed samples only (`--since`).

Each mode writes the samples' files and ledger entries with the export graph
(`graph.build`) and the global files (COCO documents, manifest, failures, report, preview)
either in the same graph or, for chunks and updates, from the parts or the ledger
(`graph.build_merge`). Each step can be interrupted: state.json names the current ledger
generation and is switched only once the new one is complete.

The last pipeline of every mode ends the export itself (`FinishExport`: the temporary
folder removed, state.json written where the mode publishes a generation), and a full
export in one pipeline also begins it (`BeginExport`), so that a job the launcher does not
wait for (a Flex Template launch) leaves a complete export. The other modes run several
pipelines and work on the ledger between them: the launcher runs them one after the other
and waits for each, on any runner.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
import uuid

import apache_beam as beam

from pipeline import graph
from pipeline.prepare import check_resumable, check_since
from pipeline.runners import Engine, counts_of, local_runner, run_job
from transforms import storage
from transforms.formats import coco, yolo
from transforms.model import paths
from transforms.model.taxonomy import Taxonomy
from transforms.state import chunking, incremental, ledger, lifecycle
from transforms.summary import progress

_LOGGER = logging.getLogger("pipeline")


def global_files(cfg, info, formats) -> tuple[Taxonomy, dict, dict]:
    """(taxonomy, COCO headers, small files) of the files a merge or rebuild writes."""
    taxonomy = graph.taxonomy_for(cfg, info)
    small = {}
    if "yolo" in formats or "yolo-seg" in formats:
        small[storage.join(cfg.output, paths.YOLO_DATA_YAML)] = yolo.data_yaml(
            taxonomy, graph.split_names(info), cfg.images == "copy")
    return taxonomy, graph.coco_headers(info, taxonomy, formats), small


def run_only_failed(options, argv, cfg, info, formats, fp, eng: Engine) -> dict[str, int]:
    """--only_failed: re-export the samples the ledger records as failed, merge their new
    results into a new ledger generation, and rebuild every global file from it (`ledger`).

    Each step can be interrupted: state.json switches to the new generation only once it is
    complete, and the global files are rebuilt from whichever generation is current.
    """
    generation = check_resumable(cfg, fp)
    temp, current = prepare_update(cfg, generation)
    failed = ledger.failed_positions(current)
    _LOGGER.info("re-exporting the %d samples that failed in the previous export", len(failed))
    counts: dict[str, int] = {}
    if failed:
        fresh = storage.join(temp, "ledger")
        counts = export_positions(options, argv, cfg, info, formats, eng, set(failed), fresh)
        target = ledger.generation_dir(cfg.output, generation + 1)
        ledger.combine(current, fresh, target)
        ledger.write_state(cfg.output, generation + 1, fp)  # the new ledger is current
        storage.remove_tree(current)
        current = target
    rebuild(options, argv, cfg, info, formats, current)
    return counts


def prepare_update(cfg, generation: int) -> tuple[str, str]:
    """(temporary folder, current ledger generation) of an update in place, after removing
    what a killed update left."""
    temp = storage.join(cfg.output, paths.TEMP_DIR)
    storage.remove_tree(temp)
    for stale in (generation - 1, generation + 1):  # a killed run's other generation
        storage.remove_tree(ledger.generation_dir(cfg.output, stale))
    return temp, ledger.generation_dir(cfg.output, generation)


def export_positions(options, argv, cfg, info, formats, eng: Engine, only, fresh: str
                      ) -> dict[str, int]:
    """Exports the samples at release positions `only` (their files, and their ledger
    entries into `fresh`), in chunks of local pipelines (one pipeline on a cluster);
    returns the counts of this run's samples, from their ledger entries (exact on every
    runner), and the runner's counters under "counters"."""
    temp = storage.join(cfg.output, paths.TEMP_DIR)
    folder = storage.join(temp, "chunks")
    counts: dict[str, int] = {}
    with storage.open_release(cfg.release) as stream:
        chunks = chunking.split(stream, info, cfg.selection, folder,
                                cfg.chunk_size(eng.chunks) or max(len(only), 1), only=only)
    with tempfile.TemporaryDirectory(prefix="segments-progress-") as ticks, (
            progress.Monitor(ticks, len(only)) if eng.progress else contextlib.nullcontext()):
        for c in chunks:
            if not c.positions:
                continue  # a release without samples
            runner, _ = local_runner(options, argv, c.samples)
            pipeline = beam.Pipeline(runner=runner, options=options)
            graph.build(pipeline, cfg, info, formats,
                        progress_dir=ticks if eng.progress else None,
                        chunk=graph.ChunkRun(c, chunking.stems_path(folder, c.number), {},
                                             ledger_only=True),
                        ledger_dir=fresh)
            result = run_job(pipeline)
            result.wait_until_finish()
            for name, value in counts_of(result).items():
                counts[name] = counts.get(name, 0) + value
            storage.remove_tree(c.path)
    return {**ledger.status_counts(fresh), "counters": counts}


def run_since(options, argv, cfg, info, formats, fp, eng: Engine) -> dict[str, int]:
    """--since: export the new release into the previous export's folder, exporting only
    the samples whose content or output name changed (`incremental`), deleting the files of
    samples that are gone, and rebuilding every global file from the combined ledger.

    Each step can be interrupted: the plan depends only on the previous generation, which
    stays current until the new one is complete and the stale files are gone.
    """
    generation = check_since(cfg, cfg.output, fp)
    temp, current = prepare_update(cfg, generation)
    with storage.open_release(cfg.release) as stream:
        p = incremental.plan(stream, info, cfg.selection, current, storage.join(temp, "plan"))
    _LOGGER.info("%d of %d samples unchanged since the previous export (%d samples); "
                 "exporting %d", p.reused, p.samples, p.previous, len(p.redo))
    fresh = storage.join(temp, "ledger")
    counts = (export_positions(options, argv, cfg, info, formats, eng, p.redo, fresh)
              if p.redo else {})
    target = ledger.generation_dir(cfg.output, generation + 1)
    incremental.combine(current, fresh, target, p)
    stale = incremental.stale_files(current, fresh, p)
    for rel in stale:
        storage.remove_file(cfg.output, rel)
    _LOGGER.info("%d files of removed or renamed samples deleted", len(stale))
    ledger.write_state(cfg.output, generation + 1, fp)  # the new ledger is current
    storage.remove_tree(current)
    rebuild(options, argv, cfg, info, formats, target)
    counts["samples_reused"] = p.reused
    return counts


def rebuild(options, argv, cfg, info, formats, current: str) -> None:
    """Every global file rebuilt from the ledger generation `current` (one pipeline)."""
    taxonomy, headers, small = global_files(cfg, info, formats)
    rebuild = ledger.Rebuild(cfg.output, current, info.sample_count, cfg.manifest_rows_per_shard,
                             headers, graph.report_header(cfg, info, formats), taxonomy, small,
                             splits=info.splits is not None)
    # The shards are all written again (their number may change): none of the previous stays.
    for folder in (paths.HF_DIR, paths.WEBDATASET_DIR):
        storage.remove_tree(storage.join(cfg.output, folder))
    runner, _ = local_runner(options, argv)
    pipeline = beam.Pipeline(runner=runner, options=options)
    # Ends with the temporary folder removed (state.json names `current` already).
    graph.build_merge(pipeline, rebuild, graph.ledger_outputs(cfg, info, formats, current),
                      output=cfg.output)
    run_job(pipeline).wait_until_finish()


def run_chunked(options, argv, cfg, info, formats, fp, chunk_size: int, ticks: str
                ) -> dict[str, int]:
    """The release as consecutive chunks, one local pipeline each, merged (`chunking`)."""
    # A rerun replaces the previous export (and a killed run's leftovers) in full, so
    # no stale shard or per-sample file can mix with the new one; then the marker that
    # makes a killed run's folder recognisable, before the chunks are written there.
    lifecycle.begin(cfg.output, paths.OWNED, new_token())
    temp = storage.join(cfg.output, paths.TEMP_DIR)
    folder = storage.join(temp, "chunks")
    t0 = time.monotonic()
    with storage.open_release(cfg.release) as stream:
        chunks = chunking.split(stream, info, cfg.selection, folder, chunk_size)
    _LOGGER.info("release split into %d chunks in %.1f s", len(chunks), time.monotonic() - t0)
    counts: dict[str, int] = {}
    id_base: dict[str, int] = {}  # per numbered COCO document (coco.NUMBERED, per split)
    with progress.Monitor(ticks, info.sample_count):
        for c in chunks:
            runner, _ = local_runner(options, argv, c.samples)
            pipeline = beam.Pipeline(runner=runner, options=options)
            chunk_run = graph.ChunkRun(c, chunking.stems_path(folder, c.number), dict(id_base))
            graph.build(pipeline, cfg, info, formats, progress_dir=ticks, chunk=chunk_run)
            result = run_job(pipeline)
            result.wait_until_finish()
            for name, value in counts_of(result).items():
                counts[name] = counts.get(name, 0) + value
            for doc in graph.coco_documents(formats, graph.split_names(info)):
                if paths.coco_document_parts(doc)[0] in coco.NUMBERED:  # next chunk follows
                    id_base[doc] = id_base.get(doc, 0) + chunking.read_total(
                        chunking.PartPaths(temp, c.number).coco_total(doc))
            storage.remove_tree(c.path)  # its samples are exported; free the disk space
        taxonomy, headers, small = global_files(cfg, info, formats)
        merge = chunking.Merge(
            cfg.output, temp, tuple(c.number for c in chunks), info.sample_count,
            cfg.manifest_rows_per_shard, headers, graph.report_header(cfg, info, formats),
            taxonomy, small, splits=info.splits is not None)
        # The ledger first: the split lists and shards are written from it.
        generation = ledger.generation_dir(cfg.output, 0)
        ledger.merge_parts(storage.join(temp, "ledger"), generation)
        # The merge is a pipeline too: its tasks run on the workers, in parallel, and the
        # launcher's memory stays that of the chunk runs.
        runner, _ = local_runner(options, argv)
        pipeline = beam.Pipeline(runner=runner, options=options)
        graph.build_merge(pipeline, merge, graph.ledger_outputs(cfg, info, formats, generation),
                          output=cfg.output, generation=0, fp=fp)  # state.json last
        run_job(pipeline).wait_until_finish()
    return counts


def run_full(options, argv, cfg, info, formats, fp, eng: Engine, runner,
             chunk_size: int) -> dict[str, int]:
    """A full export: the previous export in --output replaced, then the release in one
    pipeline, or in chunks when it has more than `chunk_size` samples; state.json last.
    Returns the runner's counters (the launcher reads the counts from report.json)."""
    with tempfile.TemporaryDirectory(prefix="segments-progress-") as ticks:
        if chunk_size and info.sample_count > chunk_size:
            return run_chunked(options, argv, cfg, info, formats, fp, chunk_size, ticks)
        pipeline = beam.Pipeline(runner=runner, options=options)
        # The job replaces the previous export and marks the new one complete itself.
        graph.build(pipeline, cfg, info, formats, progress_dir=ticks if eng.progress else None,
                    token=new_token(), fp=fp)
        with (progress.Monitor(ticks, info.sample_count) if eng.progress
              else contextlib.nullcontext()):
            result = run_job(pipeline)
            result.wait_until_finish()
        return counts_of(result)


def new_token() -> str:
    """A value naming one run of a full export (`lifecycle.begin`)."""
    return uuid.uuid4().hex
