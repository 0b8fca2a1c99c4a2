"""The internal model every layout of release file is normalised to.

Contract:
  * `Sample.index` is the 0-based position among *selected* samples (after the status and
    metadata filters), in release-file order; `image_id = index + 1` (the SDK's numbering,
    gaps included where selected samples are skipped).
  * `Sample.position` is the 0-based position in the release file, before filtering.
  * Instance ids are 24-bit (0..16,777,215); 0 is background.
  * Sequences (`image-vector-sequence`): a sample's frames are COCO images of their own;
    frame j of a sample has the COCO image id `frame_base + j + 1`, where `frame_base` is
    the number of frames of the samples to export before it in the release (so frame ids
    are dense from 1 and fixed when the release is read). `image_id` (index + 1) stays the
    sample's number in the manifest, the failure report and generated names.
  * With `--split`, every sample to export has a `split` (train, val or test), fixed on the
    launcher before any work (`release.splits`); its manifest row keeps it.
  * Everything here is immutable and picklable: these objects cross Beam stages.
"""

from __future__ import annotations

import dataclasses
from typing import Any

SEGMENTATION_TASKS = ("segmentation-bitmap", "segmentation-bitmap-highres")

# Export formats, in the order they are listed everywhere (CLI help, report, manifest).
FORMATS = (
    "coco-instance",
    "coco-keypoints",
    "coco-panoptic",
    "yolo",
    "yolo-seg",
    "instance",
    "semantic",
    "instance-color",
    "semantic-color",
    "hf-parquet",
    "webdataset",
)

# Sharded datasets, written after the per-sample files from them and the ledger
# (`state.shards`): Hugging Face Parquet and WebDataset tars, split by split.
SHARD_FORMATS = ("hf-parquet", "webdataset")

# Image vector labels: boxes, polygons and points (polylines are counted, not exported).
VECTOR_TASKS = ("bboxes", "vector")
KEYPOINT_TASKS = ("keypoints",)  # points only: COCO keypoints
SEQUENCE_TASKS = ("image-vector-sequence",)  # vector labels per frame of an image sequence
# Every task type whose labels are shapes with points (no bitmap).
SHAPE_TASKS = VECTOR_TASKS + KEYPOINT_TASKS + SEQUENCE_TASKS

# Formats exported only when --formats names them: tracing polygons costs ~40 ms a 1080p
# sample, several times a box format, and few trainers need them.
OPT_IN_FORMATS = ("yolo-seg",) + SHARD_FORMATS

FORMATS_BY_TASK = {task: tuple(f for f in FORMATS if f not in SHARD_FORMATS + ("coco-keypoints",))
                   for task in SEGMENTATION_TASKS}
# Points of vector and sequence releases go to coco-keypoints, so that coco-instance holds
# only boxes and polygons (a point is no detection: as a 0x0 box it costs AP).
FORMATS_BY_TASK.update({"bboxes": ("coco-instance", "yolo", "yolo-seg"),
                        "vector": ("coco-instance", "coco-keypoints", "yolo", "yolo-seg")})
# A lone point has no box: YOLO (detection or pose) has nothing to hold it.
FORMATS_BY_TASK.update({task: ("coco-instance",) for task in KEYPOINT_TASKS})
FORMATS_BY_TASK.update({task: ("coco-instance", "coco-keypoints", "yolo")
                        for task in SEQUENCE_TASKS})
# Task types whose points go to coco-keypoints (keypoints releases: points only, in
# coco-instance).
SEPARATE_KEYPOINT_TASKS = ("vector",) + SEQUENCE_TASKS
# One record per sample with one image: not for sequences (a sample is many images) nor
# keypoints (no picture or box to train on).
SHARD_TASKS = SEGMENTATION_TASKS + VECTOR_TASKS


def available_formats(task_type: str) -> tuple[str, ...]:
    """Every format a task type can be exported to, shard formats included."""
    return FORMATS_BY_TASK[task_type] + (SHARD_FORMATS if task_type in SHARD_TASKS else ())


@dataclasses.dataclass(frozen=True)
class Category:
    id: int
    name: str
    color: tuple[int, int, int] | None  # RGB; alpha (if given) dropped, floats rounded
    has_instances: bool  # missing or null -> False (stuff), as the SDK reads it
    raw: tuple[tuple[str, Any], ...]  # the release's dict, key order kept (COCO pass-through)

    def raw_dict(self) -> dict[str, Any]:
        return dict(self.raw)

    @property
    def stuff(self) -> bool:
        """Marked `has_instances: false`: a stuff category by the release's own word. (A
        category without the key is stuff for panoptic, as the SDK reads it, but not left
        out of the instance formats: old releases never set it.)"""
        return dict(self.raw).get("has_instances") is False


@dataclasses.dataclass(frozen=True)
class Annotation:
    id: int
    category_id: int
    attributes: tuple[tuple[str, Any], ...] | None = None  # object attributes, key order kept
    type: str | None = None  # vector tasks: bbox | polygon | polyline | point | ...
    points: tuple[tuple[float, float], ...] = ()  # vector tasks: pixel coordinates


@dataclasses.dataclass(frozen=True)
class Frame:
    """One frame of an image sequence: its image and the label's annotations on it."""

    image_url: str | None
    name: str | None  # the release's frame name (kept in COCO; never used for file names)
    annotations: tuple[Annotation, ...] = ()


@dataclasses.dataclass(frozen=True)
class Sample:
    """One selected sample, ready to export."""

    index: int
    position: int
    uuid: str
    name: str
    image_url: str | None
    label_status: str
    annotations: tuple[Annotation, ...]
    bitmap_url: str | None
    stem: str = ""  # unique, safe relative output stem; assigned after collision resolution
    frames: tuple[Frame, ...] | None = None  # sequences only (see the contract)
    frame_base: int = 0  # sequences: frames of the samples to export before this one
    extra_label_frames: int = 0  # sequences: label frames without a sample frame (left out)
    metadata: str | None = None  # the sample's metadata as JSON text (sorted keys), if any
    split: str | None = None  # train | val | test with --split (`release.splits`), else None

    @property
    def image_id(self) -> int:
        return self.index + 1

    def frame_image_id(self, j: int) -> int:
        """The COCO image id of frame j (0-based) of a sequence."""
        return self.frame_base + j + 1


@dataclasses.dataclass(frozen=True)
class ManifestRow:
    """One row of the manifest: the fate of one sample of the release."""

    position: int
    uuid: str
    name: str
    status: str  # exported | failed | skipped
    image_id: int | None = None
    reason: str | None = None  # why failed / skipped
    stage: str | None = None  # where it failed
    num_instances: int = 0
    artifacts: tuple[tuple[str, str], ...] = ()  # (format, path relative to OUT)
    warnings: tuple[str, ...] = ()
    category_stats: tuple[tuple[int, int, int], ...] = ()  # (category, instances, pixels)
    file_sizes: tuple[tuple[str, int], ...] = ()  # (format, bytes) of per-sample files
    left_out: tuple[str, ...] = ()  # formats whose file could not hold this sample's data
    image_url: str | None = None  # the image's URL, secrets removed (`storage.public_url`)
    metadata: str | None = None  # the sample's metadata, as JSON text
    split: str | None = None  # with --split: the split of a sample that reached the export


EXPORTED, FAILED, SKIPPED = "exported", "failed", "skipped"
