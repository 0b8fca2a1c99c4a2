"""The job graph (wiring only; every step's logic lives in `transforms`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import apache_beam as beam

from pipeline.config import ExportConfig
from transforms import (
    AssignStems,
    ExportSamples,
    ReadRelease,
    WriteCocoDocument,
    WriteFailures,
    WriteManifest,
    storage,
)
from transforms.coco import WriteCocoFragments
from transforms.export import ExportJob
from transforms.formats import coco, yolo
from transforms.formats.sample_export import ExportSettings
from transforms.model import paths
from transforms.model.taxonomy import Taxonomy
from transforms.model.types import (
    KEYPOINT_TASKS,
    SEPARATE_KEYPOINT_TASKS,
    SHAPE_TASKS,
    SHARD_FORMATS,
)
from transforms.read import ReadChunk
from transforms.release import ReleaseInfo
from transforms.report import WritePreview, WritePreviewPart, WriteReport, WriteReportPart
from transforms.state import chunking, ledger, shards
from transforms.storage import pickles
from transforms.write import (
    BeginExport,
    FinishExport,
    WriteLedger,
    WriteManifestParts,
    WriteOnce,
)


def split_names(info: ReleaseInfo) -> tuple[str, ...]:
    """The requested splits, () without --split."""
    return info.splits.spec.names if info.splits is not None else ()


def report_header(cfg: ExportConfig, info: ReleaseInfo, formats: tuple[str, ...]) -> dict:
    """What report.json says about the release and the options (no secrets: URLs redacted)."""
    header = {
        "release": {"name": info.name, "dataset": info.dataset_name, "owner": info.owner,
                    "task_type": info.task_type, "layout": info.layout,
                    "labelset": info.labelset, "uri": storage.redact(cfg.release)},
        "options": {"formats": list(formats), "images": cfg.images,
                    "filter_by": list(cfg.filter_by) if cfg.filter_by is not None else None,
                    "filter_by_metadata": [[k, v] for k, v in cfg.filter_by_metadata],
                    "id_increment": cfg.id_increment, "instance_png": cfg.instance_png,
                    "coco_segmentation": cfg.coco_segmentation,
                    "stuff_as_instances": cfg.stuff_as_instances},
        "category_names": {c.id: c.name for c in info.categories},
    }
    if info.splits is not None:  # nothing changes without --split
        spec = info.splits.spec
        header["options"].update(split={n: r for n, r in zip(spec.names, spec.ratios)},
                                 split_salt=spec.salt, split_by_metadata=spec.by_metadata,
                                 split_missing=spec.missing)
        header["splits"] = list(spec.names)
    if set(formats) & set(SHARD_FORMATS):
        header["options"]["shard_mb"] = cfg.shard_mb
    return header


def ledger_outputs(cfg: ExportConfig, info: ReleaseInfo, formats: tuple[str, ...],
                   ledger_dir: str) -> shards.LedgerOutputs:
    """The outputs written from the finished ledger (split lists, shards)."""
    return shards.LedgerOutputs(
        output=cfg.output, ledger=ledger_dir, formats=formats, split_names=split_names(info),
        shard_bytes=max(1, int(cfg.shard_mb * (1 << 20))), taxonomy=taxonomy_for(cfg, info),
        dataset_name=info.dataset_name, release_name=info.name, task_type=info.task_type)


@dataclasses.dataclass(frozen=True)
class ChunkRun:
    """One chunk of a chunked run (`chunking`): what to read, where its parts go."""

    chunk: chunking.Chunk
    stems_path: str
    id_base: dict  # {numbered COCO document: annotations of the chunks before this one}
    ledger_only: bool = False  # --only_failed: the samples' files and ledger entries only


def build(root: beam.Pipeline, cfg: ExportConfig, info: ReleaseInfo,
          formats: tuple[str, ...], progress_dir: str | None = None,
          chunk: ChunkRun | None = None, ledger_dir: str | None = None,
          token: str | None = None, fp: ledger.Fingerprint | None = None) -> dict[str, Any]:
    """The export's steps. With `chunk`, only that chunk's samples, and the global files
    (COCO, manifest, failures, report, preview) as parts for `chunking.Merge`. Every
    sample's result also goes to the ledger in `ledger_dir` (default: the output's first
    generation, `ledger`; a chunk's parts go to the temporary folder).

    With `token` (a full export in one pipeline), the job begins and ends the export
    itself: its first step replaces the previous export in the output folder (once per
    run: `token` names the run) and its last step, after every write, removes the
    temporary folder and publishes the ledger's state (with the fingerprint `fp`). The
    export is then complete whether or not the launcher waits for the job."""
    taxonomy = taxonomy_for(cfg, info)
    settings = ExportSettings(formats=formats, labelset=info.labelset, taxonomy=taxonomy,
                              instance_png=cfg.instance_png,
                              coco_segmentation=cfg.coco_segmentation,
                              vector=info.task_type in SHAPE_TASKS,
                              separate_keypoints=info.task_type in SEPARATE_KEYPOINT_TASKS)
    job = ExportJob(release_uri=cfg.release, output=cfg.output, settings=settings,
                    copy_images=cfg.images == "copy", http_timeout=cfg.http_timeout,
                    http_attempts=cfg.http_attempts, allow_local_files=cfg.allow_local_files,
                    progress_dir=progress_dir)
    temp = storage.join(cfg.output, paths.TEMP_DIR)

    # Where every step that writes without reading first starts: the replaced output.
    start = root if token is None else root | "BeginExport" >> BeginExport(
        cfg.output, paths.OWNED, token)
    if chunk is None:
        read = start | "ReadRelease" >> ReadRelease(cfg.release, info, cfg.selection,
                                                    progress_dir)
        # samples: Sample (selected, labelled); rows: ManifestRow (filtered, skipped, malformed)
        named = read.samples | "AssignStems" >> AssignStems()
    else:
        read = root | "ReadChunk" >> ReadChunk(chunk.chunk.path, chunk.stems_path, progress_dir)
        # Stems are final already; without a shuffle, fusion would keep every sample on the
        # reader's worker. (A GroupByKey on the index: beam.Reshuffle measured ~40% slower
        # end to end on the local runner.)
        named = (read.samples
                 | "KeyByIndex" >> beam.Map(lambda s: (s.index, pickles.pack(s)))
                 | "Spread" >> beam.GroupByKey()
                 | "Unpack" >> beam.FlatMap(lambda kv: map(pickles.unpack, kv[1])))
    exported = named | "ExportSamples" >> ExportSamples(job)
    # parts: (index, image JSON, (annotation JSON, ...), panoptic JSON, split); rows: ManifestRow
    rows = (read.rows, exported.rows) | "AllRows" >> beam.Flatten()
    entries = (read.rows | "LedgerEntries" >> beam.Map(ledger.entry),
               exported.ledger) | "AllLedgerEntries" >> beam.Flatten()
    written = entries | "WriteLedger" >> WriteLedger(
        ledger_dir or (ledger.generation_dir(cfg.output, 0) if chunk is None
                       else storage.join(cfg.output, paths.TEMP_DIR, "ledger")),
        chunk.chunk.number if chunk else None)
    if chunk is not None and chunk.ledger_only:
        return {"ledger": written}
    if chunk is not None:
        return {"ledger": written,
                **_chunk_outputs(root, cfg, info, formats, chunk, exported, rows)}
    outputs: dict[str, Any] = {
        "ledger": written,
        "manifest": rows | "WriteManifest" >> WriteManifest(
            cfg.output, info.sample_count, cfg.manifest_rows_per_shard,
            splits=info.splits is not None),
        "failures": rows | "WriteFailures" >> WriteFailures(cfg.output),
        "report": rows | "WriteReport" >> WriteReport(cfg.output, report_header(cfg, info, formats)),
        "preview": exported.preview | "WritePreview" >> WritePreview(cfg.output, taxonomy),
    }
    for doc, header in coco_headers(info, taxonomy, formats).items():
        fmt, _ = paths.coco_document_parts(doc)
        outputs[doc] = _document_parts(exported.parts, doc) | f"Write{_step(doc)}" >> (
            WriteCocoDocument(storage.join(cfg.output, paths.coco_json(doc)), header,
                              storage.join(temp, doc), assign_ids=fmt in coco.NUMBERED,
                              shard_size=cfg.coco_shard_size))
    if "yolo" in formats or "yolo-seg" in formats:  # one class list for both
        outputs["yolo"] = start | "WriteYoloDataYaml" >> WriteOnce(
            storage.join(cfg.output, paths.YOLO_DATA_YAML),
            yolo.data_yaml(taxonomy, split_names(info), cfg.images == "copy"))
    done = ledger_outputs(cfg, info, formats, ledger.generation_dir(cfg.output, 0))
    if done.wanted:  # split lists and shards: once every ledger file is written
        outputs["from_ledger"] = (
            written
            | "LedgerWritten" >> beam.combiners.Count.Globally()
            | "LedgerTasks" >> beam.FlatMap(lambda _, job: job.tasks(), done)
            # (kind, split or Shard): one split list, shard or card each
            | "SpreadLedgerTasks" >> beam.Reshuffle()
            | "WriteFromLedger" >> beam.Map(lambda task, job: job.run(task), done))
    if token is not None:
        outputs["finish"] = outputs | "FinishExport" >> FinishExport(cfg.output, 0, fp)
    return outputs


_STEP = {"coco-instance": "CocoInstance", "coco-keypoints": "CocoKeypoints",
         "coco-panoptic": "CocoPanoptic"}


def _step(doc: str) -> str:
    """Step label of a COCO document: CocoInstance, or CocoInstanceTrain with --split."""
    fmt, split = paths.coco_document_parts(doc)
    return _STEP[fmt] + ("" if split is None else split.capitalize())


def _document_parts(parts, doc: str):
    """The COCO parts of document `doc` (`coco-instance`, `coco-panoptic-val`, ...): its
    format's part of each sample, only the samples of its split if it has one."""
    fmt, split = paths.coco_document_parts(doc)
    step = _step(doc)
    if split is not None:
        parts = parts | f"{step}Only" >> beam.Filter(_in_split, split)
    return parts | f"{step}Parts" >> beam.Map(_coco_part, fmt)


def _in_split(part, split: str) -> bool:
    return part[5] == split


def _coco_part(part, fmt: str):
    """The export step's part (index, image, annotations, panoptic, keypoints, split) ->
    the packed part of one COCO file (fused into the export step, so only the packed form
    is buffered or shuffled)."""
    image, bodies = coco.format_part(part, fmt)
    return coco.pack_part(part[0], image, bodies)


def taxonomy_for(cfg: ExportConfig, info: ReleaseInfo) -> Taxonomy:
    """The export's category tables. Shape releases keep every category in the instance
    formats (each shape is an object); bitmap releases leave stuff out of them unless
    --stuff_as_instances."""
    return Taxonomy(info.categories, cfg.id_increment,
                    instances_keep_stuff=cfg.stuff_as_instances or info.task_type in SHAPE_TASKS)


def coco_headers(info: ReleaseInfo, taxonomy: Taxonomy, formats: tuple[str, ...]) -> dict:
    """{COCO document: header} for the COCO formats being exported: one document per
    format, or with --split one per format and split (`paths.coco_document`)."""
    out = {}
    for fmt in paths.COCO_FORMATS:
        if fmt not in formats:
            continue
        if fmt == "coco-instance":
            header = coco.instance_header(info.name, info.dataset_name, taxonomy,
                                          keypoints=info.task_type in KEYPOINT_TASKS)
        elif fmt == "coco-keypoints":
            header = coco.keypoints_header(info.name, info.dataset_name, taxonomy)
        else:
            header = coco.panoptic_header(info.name, info.dataset_name, taxonomy)
        for split in split_names(info) or (None,):
            out[paths.coco_document(fmt, split)] = header
    return out


def _chunk_outputs(root, cfg: ExportConfig, info: ReleaseInfo, formats, chunk: ChunkRun,
                   exported, rows) -> dict:
    temp = storage.join(cfg.output, paths.TEMP_DIR)
    parts = chunking.PartPaths(temp, chunk.chunk.number)
    outputs: dict[str, Any] = {
        "manifest": rows | "WriteManifestParts" >> WriteManifestParts(
            parts, cfg.manifest_rows_per_shard),
        "failures": rows | "WriteFailures" >> WriteFailures(cfg.output, parts.failures),
        "report": rows | "WriteReportPart" >> WriteReportPart(parts.report),
        "preview": exported.preview | "WritePreviewPart" >> WritePreviewPart(parts.preview),
    }
    for doc in coco_documents(formats, split_names(info)):
        numbered = paths.coco_document_parts(doc)[0] in coco.NUMBERED
        outputs[doc] = _document_parts(exported.parts, doc) | f"Write{_step(doc)}Fragments" >> (
            WriteCocoFragments(
                parts.coco_dir(doc), assign_ids=numbered, shard_size=cfg.coco_shard_size,
                chunk=chunk.chunk.number, id_base=chunk.id_base.get(doc, 0),
                total_path=parts.coco_total(doc) if numbered else None))
    return outputs


def coco_documents(formats: tuple[str, ...], splits: tuple[str, ...]) -> list[str]:
    """The COCO documents of an export, in order (see `coco_headers`)."""
    return [paths.coco_document(fmt, split) for fmt in paths.COCO_FORMATS if fmt in formats
            for split in splits or (None,)]


@dataclasses.dataclass(frozen=True)
class _Jobs:
    """Several task lists (`chunking.Merge`, `ledger.Rebuild`, `shards.LedgerOutputs`) as one."""

    jobs: tuple

    def tasks(self) -> list[tuple]:
        return [(i, t) for i, job in enumerate(self.jobs) for t in job.tasks()]

    def run(self, task: tuple) -> str:
        return self.jobs[task[0]].run(task[1])


def build_merge(root: beam.Pipeline, *jobs, output: str,
                generation: int | None = None, fp: ledger.Fingerprint | None = None):
    """The last pipeline of a chunked run (or of --only_failed, --since): the independent
    tasks of `jobs` (merge or rebuild, then what is written from the ledger), spread over
    workers, then the export's last step (`FinishExport`: the temporary folder removed
    and, with `fp`, ledger generation `generation` published)."""
    job = _Jobs(tuple(jobs))
    merged = (root
              | "MergeTasks" >> beam.Create(job.tasks())
              | "Merge" >> beam.Map(job.run))
    return {"merged": merged,
            "finish": {"merged": merged} | "FinishExport" >> FinishExport(output, generation, fp)}
