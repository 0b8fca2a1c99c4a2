"""The manifest (Parquet) and the failure report (JSON lines).

Contract:
  * One manifest row per sample of the release, whatever happened to it:
    `status` is exported | failed | skipped, with `reason` (and `stage` for failures).
    exported + failed + skipped = samples in the release.
  * Rows are sharded by release position: shard k holds positions
    [k * rows_per_shard, (k + 1) * rows_per_shard), sorted; files are
    `manifest/manifest-{k:05d}-of-{n:05d}.parquet`, n = ceil(samples / rows_per_shard).
  * Each file is written in row groups of `ROW_GROUP_ROWS` rows (streamed: a writer holds one
    row group, not the shard).
  * With --split, a last column `split`: the sample's split (null when it never reached the
    export step: filtered, skipped or malformed).
  * Artifact columns hold paths relative to the output folder, null when not produced; a
    sequence's row names its first frame's files (the others follow `sequence.frame_stem`).
  * `image_url`: the image's URL as the release gives it (a relative one is relative to the
    release file; a sequence's first frame's), secrets removed (`storage.public_url`): with
    `--images none`, where to fetch it (COCO's `coco_url` holds remote URLs resolved). `metadata`: the
    sample's metadata as JSON text (keys sorted), null when it has none, to join or filter
    on (`json.loads`, or DuckDB's `metadata->>'split'`). `left_out`: formats whose file
    could not hold the sample's data (see the warnings).
  * failures.jsonl: one JSON object per failed sample, sorted by position:
    {"position", "uuid", "name", "image_id", "stage", "reason"}. URLs in reasons are redacted.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from transforms.formats.sample_export import dumps
from transforms.model.types import FAILED, ManifestRow

DEFAULT_ROWS_PER_SHARD = 100_000
ROW_GROUP_ROWS = 1000  # measured: 10k-row groups cost ~6 KB of transient memory per row

ARTIFACT_COLUMNS = (
    "image",
    "coco-panoptic",
    "yolo",
    "yolo-seg",
    "instance",
    "semantic",
    "instance-color",
    "semantic-color",
)


def _column(key: str) -> str:
    return key.replace("-", "_") + "_path"


SCHEMA = pa.schema(
    [
        ("position", pa.int64()),
        ("image_id", pa.int64()),
        ("uuid", pa.string()),
        ("name", pa.string()),
        ("status", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("num_instances", pa.int32()),
        ("warnings", pa.list_(pa.string())),
        ("left_out", pa.list_(pa.string())),
        ("image_url", pa.string()),
        ("metadata", pa.string()),
    ]
    + [(_column(k), pa.string()) for k in ARTIFACT_COLUMNS]
)
# With --split: the same columns and `split` (train | val | test; null for samples that never
# reached the export step).
SPLIT_SCHEMA = SCHEMA.append(pa.field("split", pa.string()))


def schema(splits: bool) -> pa.Schema:
    return SPLIT_SCHEMA if splits else SCHEMA


def shard_count(samples: int, rows_per_shard: int) -> int:
    return max(1, -(-samples // rows_per_shard))


def shard_name(shard: int, shards: int) -> str:
    return f"manifest-{shard:05d}-of-{shards:05d}.parquet"


def table(rows: Iterable[ManifestRow], splits: bool = False) -> pa.Table:
    """The rows as an Arrow table, in the given order (`splits`: with the split column)."""
    cols: dict[str, list] = {name: [] for name in schema(splits).names}
    for r in rows:
        cols["position"].append(r.position)
        cols["image_id"].append(r.image_id)
        cols["uuid"].append(r.uuid)
        cols["name"].append(r.name)
        cols["status"].append(r.status)
        cols["stage"].append(r.stage)
        cols["reason"].append(r.reason)
        cols["num_instances"].append(r.num_instances)
        cols["warnings"].append(list(r.warnings))
        cols["left_out"].append(list(r.left_out))
        cols["image_url"].append(r.image_url)
        cols["metadata"].append(r.metadata)
        arts: dict[str, str] = {}
        for k, path in r.artifacts:  # a sequence's first frame stands for its frames
            arts.setdefault(k, path)
        for k in ARTIFACT_COLUMNS:
            cols[_column(k)].append(arts.get(k))
        if splits:
            cols["split"].append(r.split)
    return pa.table(cols, schema=schema(splits))


def write_parquet(out: IO[bytes], rows: Iterable[ManifestRow], splits: bool = False) -> None:
    """Streams rows, already sorted by position, into one Parquet file (zstd), one row group
    per `ROW_GROUP_ROWS` rows. The bytes depend only on the rows."""
    with pq.ParquetWriter(out, schema(splits), compression="zstd") as writer:
        it = iter(rows)
        wrote = False
        while batch := list(itertools.islice(it, ROW_GROUP_ROWS)):
            writer.write_table(table(batch, splits))
            wrote = True
        if not wrote:
            writer.write_table(table([], splits))


def failure_lines(rows: Iterable[ManifestRow]) -> bytes:
    """failures.jsonl content for these rows (failed ones only, sorted by position)."""
    lines = []
    for r in sorted((r for r in rows if r.status == FAILED), key=lambda r: r.position):
        lines.append(dumps({"position": r.position, "uuid": r.uuid, "name": r.name,
                            "image_id": r.image_id, "stage": r.stage, "reason": r.reason}))
    return "".join(line + "\n" for line in lines).encode("utf-8")
