"""The job graph (wiring only; every step's logic lives in `transforms`)."""

from __future__ import annotations

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
)
from transforms.export import ExportJob
from transforms.formats import coco, paths, storage, yolo
from transforms.formats.release import ReleaseInfo
from transforms.formats.sample_export import ExportSettings
from transforms.formats.taxonomy import Taxonomy
from transforms.report import WritePreview, WriteReport
from transforms.write import WriteOnce


def report_header(cfg: ExportConfig, info: ReleaseInfo, formats: tuple[str, ...]) -> dict:
    """What report.json says about the release and the options (no secrets: URLs redacted)."""
    return {
        "release": {"name": info.name, "dataset": info.dataset_name, "owner": info.owner,
                    "task_type": info.task_type, "layout": info.layout,
                    "labelset": info.labelset, "uri": storage.redact(cfg.release)},
        "options": {"formats": list(formats), "images": cfg.images,
                    "filter_by": list(cfg.filter_by) if cfg.filter_by is not None else None,
                    "filter_by_metadata": [[k, v] for k, v in cfg.filter_by_metadata],
                    "id_increment": cfg.id_increment, "instance_png": cfg.instance_png},
        "category_names": {c.id: c.name for c in info.categories},
    }


def build(root: beam.Pipeline, cfg: ExportConfig, info: ReleaseInfo,
          formats: tuple[str, ...], progress_dir: str | None = None) -> dict[str, Any]:
    taxonomy = Taxonomy(info.categories, cfg.id_increment)
    settings = ExportSettings(formats=formats, labelset=info.labelset, taxonomy=taxonomy,
                              instance_png=cfg.instance_png)
    job = ExportJob(release_uri=cfg.release, output=cfg.output, settings=settings,
                    copy_images=cfg.images == "copy", http_timeout=cfg.http_timeout,
                    http_attempts=cfg.http_attempts, progress_dir=progress_dir)
    temp = storage.join(cfg.output, paths.TEMP_DIR)

    read = root | "ReadRelease" >> ReadRelease(cfg.release, info, cfg.selection, progress_dir)
    # samples: Sample (selected, labelled); rows: ManifestRow (filtered, skipped, malformed)
    named = read.samples | "AssignStems" >> AssignStems()
    exported = named | "ExportSamples" >> ExportSamples(job)
    # parts: (index, image JSON, (annotation JSON, ...), panoptic JSON); rows: ManifestRow
    rows = (read.rows, exported.rows) | "AllRows" >> beam.Flatten()
    outputs: dict[str, Any] = {
        "manifest": rows | "WriteManifest" >> WriteManifest(
            cfg.output, info.sample_count, cfg.manifest_rows_per_shard),
        "failures": rows | "WriteFailures" >> WriteFailures(cfg.output),
        "report": rows | "WriteReport" >> WriteReport(cfg.output, report_header(cfg, info, formats)),
        "preview": exported.preview | "WritePreview" >> WritePreview(cfg.output, taxonomy),
    }
    if "coco-instance" in formats:
        outputs["coco-instance"] = (
            exported.parts
            | "CocoInstanceParts" >> beam.MapTuple(lambda i, img, anns, pan: (i, img, anns))
            | "WriteCocoInstance" >> WriteCocoDocument(
                storage.join(cfg.output, paths.COCO_INSTANCE_JSON),
                coco.instance_header(info.name, info.dataset_name, taxonomy),
                storage.join(temp, "coco-instance"), assign_ids=True,
                shard_size=cfg.coco_shard_size)
        )
    if "coco-panoptic" in formats:
        outputs["coco-panoptic"] = (
            exported.parts
            | "CocoPanopticParts" >> beam.MapTuple(lambda i, img, anns, pan: (i, img, (pan,)))
            | "WriteCocoPanoptic" >> WriteCocoDocument(
                storage.join(cfg.output, paths.COCO_PANOPTIC_JSON),
                coco.panoptic_header(info.name, info.dataset_name, taxonomy),
                storage.join(temp, "coco-panoptic"), assign_ids=False,
                shard_size=cfg.coco_shard_size)
        )
    if "yolo" in formats:
        outputs["yolo"] = root | "WriteYoloDataYaml" >> WriteOnce(
            storage.join(cfg.output, paths.YOLO_DATA_YAML), yolo.data_yaml(taxonomy))
    return outputs
