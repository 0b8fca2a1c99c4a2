"""What is written from the finished ledger: the split lists of YOLO and the sharded datasets
(hf-parquet, webdataset), built from the files the export already wrote.

Contract:
  * Runs once every sample's files and ledger entry are written, in every run mode (one
    pipeline, chunks, --only_failed, --since), from the current ledger generation alone,
    so it gives the same bytes in all of them. Image and mask bytes are never shuffled:
    each shard task reads its samples' files back from the export folder.
  * `plan` reads the ledger once (small records only) and gives each exported sample, per
    split (every sample is in `train` without --split), in release order: its position,
    its record size and the coco-instance id of its first annotation in its split's
    document (ids dense from 1 per document, in release order, as the COCO writers number
    them).
  * Shard rule, per split: a record's size `b` is the bytes of the files it embeds (image
    and exported PNGs) plus its annotations' JSON text, plus 1; `B` the split's total;
    `n = max(1, ceil(B / shard_bytes))`; the record whose split records before it hold
    `C` bytes goes to shard `floor(n * C / B)`; shards left empty by a record bigger than
    `B / n` are dropped and the rest renumbered from 0. So shards are consecutive runs of
    the split's records of about `B / n <= shard_bytes` bytes, and depend only on the
    ledger (release positions and options). hf-parquet and webdataset shards of the same
    split and number hold the same samples.
  * Embedded images are the original bytes, except a JPEG whose EXIF orientation would turn
    it away from its masks (`exif.aligned_image`: two bytes of its EXIF set to "normal").
  * A task holds one shard's records at a time (a Parquet row group, a tar member); one
    task writes a shard of both formats, reading each file once.
  * YOLO split lists `{split}.txt`: one line `./images/...` per image of the split's
    exported samples (every frame of a sequence), release order; Ultralytics reads a
    `./` line relative to the list's folder.
  * Nothing here imports Beam.
"""

from __future__ import annotations

import array
import contextlib
import dataclasses
import json
import math
from collections.abc import Iterator, Sequence

from transforms import storage
from transforms.formats import coco, exif, hf_parquet, webdataset, yolo
from transforms.model import paths
from transforms.model.taxonomy import Taxonomy
from transforms.model.types import EXPORTED
from transforms.state import ledger
from transforms.storage import pickles

DEFAULT_SPLIT = "train"  # the one split of shards without --split


@dataclasses.dataclass(frozen=True)
class Shard:
    """One shard: its split, number, shard count, and its records' (position, first
    annotation id), ascending."""

    split: str
    number: int
    shards: int
    positions: tuple[int, ...]
    first_ids: tuple[int, ...]
    size: int = 0  # the records' sizes (see the contract), summed


def shard_bounds(sizes: Sequence[int], shard_bytes: int) -> list[int]:
    """The shard number of each record (see the contract)."""
    total = sum(sizes)
    if not sizes:
        return []
    n = max(1, math.ceil(total / shard_bytes))
    raw, before = [], 0
    for size in sizes:
        raw.append(n * before // total)
        before += size
    renumber = {s: k for k, s in enumerate(sorted(set(raw)))}
    return [renumber[s] for s in raw]


@dataclasses.dataclass(frozen=True)
class LedgerOutputs:
    """The outputs written from a finished ledger generation (see the contract)."""

    output: str
    ledger: str  # generation folder
    formats: tuple[str, ...]
    split_names: tuple[str, ...]  # () without --split
    shard_bytes: int
    taxonomy: Taxonomy
    dataset_name: str = ""
    release_name: str = ""
    task_type: str = ""

    @property
    def shard_formats(self) -> tuple[str, ...]:
        return tuple(f for f in ("hf-parquet", "webdataset") if f in self.formats)

    @property
    def wanted(self) -> bool:
        return bool(self.shard_formats) or bool(self.split_names and self.lists)

    @property
    def lists(self) -> bool:
        return "yolo" in self.formats or "yolo-seg" in self.formats

    def _embedded(self) -> set[str]:
        return {"image"} | {f for f, _ in hf_parquet.PICTURE_COLUMNS if f in self.formats}

    def plan(self) -> list[Shard]:
        """Every shard of every split, from one pass over the ledger."""
        embedded = self._embedded()
        order = self.split_names or (DEFAULT_SPLIT,)
        per: dict[str, tuple[array.array, array.array, array.array]] = {
            s: (array.array("q"), array.array("q"), array.array("q")) for s in order}
        next_id = {s: 1 for s in order}
        for _, status, packed, _ in ledger.entries(self.ledger):
            if status != EXPORTED:
                continue
            row, part, _ = pickles.unpack(packed)
            split = row.split or DEFAULT_SPLIT
            bodies = part[2] if part is not None else ()
            first_id = next_id[split]  # the COCO document numbers every exported sample's
            next_id[split] += len(bodies)
            if not any(f == "image" for f, _ in row.artifacts):
                continue  # a sample exported without an image (no image URL) is no record
            size = 1 + sum(n for fmt, n in row.file_sizes if fmt in embedded) + sum(
                len(b) for b in bodies)
            positions, sizes, ids = per[split]
            positions.append(row.position)
            sizes.append(size)
            ids.append(first_id)
        out = []
        for split in order:
            positions, sizes, ids = per[split]
            numbers = shard_bounds(sizes, self.shard_bytes)
            shards = (numbers[-1] + 1) if numbers else 0
            start = 0
            for k in range(shards):
                end = start
                while end < len(numbers) and numbers[end] == k:
                    end += 1
                out.append(Shard(split, k, shards, tuple(positions[start:end]),
                                 tuple(ids[start:end]), sum(sizes[start:end])))
                start = end
        return out

    def tasks(self) -> list[tuple]:
        """("lists",) writes every split list; ("shard", Shard) one shard of each shard
        format (its samples' files read once for both); ("hf-card", ...) hf/'s card."""
        tasks: list[tuple] = []
        if self.split_names and self.lists:
            tasks.append(("lists",))
        if not self.shard_formats:
            return tasks
        shards = self.plan()
        tasks += [("shard", s) for s in shards]
        if "hf-parquet" in self.formats:
            summary: dict[str, list[int]] = {}
            for s in shards:
                entry = summary.setdefault(s.split, [s.shards, 0, 0])
                entry[1] += len(s.positions)
                entry[2] += s.size
            tasks.append(("hf-card", tuple((k, tuple(v)) for k, v in summary.items())))
        return tasks

    def run(self, task: tuple) -> str:
        kind = task[0]
        if kind == "lists":
            return self._split_lists()
        if kind == "shard":
            return self._shard(task[1])
        if kind == "hf-card":
            return self._hf_card(dict((k, tuple(v)) for k, v in task[1]))
        raise ValueError(f"unknown ledger task {task!r}")

    def run_all(self) -> None:
        for task in self.tasks():
            self.run(task)

    # ------------------------------------------------------------------ tasks

    def _split_lists(self) -> str:
        """Every split's list, from one pass over the ledger."""
        folder = self.output
        with contextlib.ExitStack() as stack:
            outs = {s: stack.enter_context(storage.open_atomic(
                storage.join(folder, yolo.split_list(s)))) for s in self.split_names}
            for position, status, packed, _ in ledger.entries(self.ledger):
                if status != EXPORTED:
                    continue
                row = pickles.unpack(packed)[0]
                for fmt, rel in row.artifacts:
                    if fmt == "image" and row.split in outs:
                        outs[row.split].write(f"./{rel}\n".encode("utf-8", "surrogatepass"))
        return folder

    def _members(self, shard: Shard) -> Iterator[tuple[object, tuple, int]]:
        """(row, coco part, first annotation id) of the shard's records, in order."""
        if not shard.positions:
            return
        wanted = dict(zip(shard.positions, shard.first_ids))
        shards = range(ledger.shard_of(shard.positions[0]), ledger.shard_of(shard.positions[-1]) + 1)
        for position, _, packed, _ in ledger.entries(self.ledger, shards):
            if position in wanted:
                row, part, _ = pickles.unpack(packed)
                yield row, part, wanted[position]

    def _read(self, rel: str) -> bytes:
        return storage.read_bytes(storage.join(self.output, rel))

    def _shard(self, shard: Shard) -> str:
        """Shard `shard` of every shard format: each record's files read once."""
        hf = "hf-parquet" in self.formats
        wds = "webdataset" in self.formats
        paths_out = []
        with contextlib.ExitStack() as stack:
            if hf:
                rel = hf_parquet.shard_name(shard.split, shard.number, shard.shards)
                paths_out.append(storage.join(self.output, paths.HF_DIR, rel))
                hf_writer = hf_parquet.ShardWriter(
                    stack.enter_context(storage.open_atomic(paths_out[-1])), self.formats)
            if wds:
                paths_out.append(storage.join(self.output, webdataset.shard_name(
                    shard.split, shard.number)))
                tar = webdataset.TarWriter(stack.enter_context(storage.open_atomic(paths_out[-1])))
            for row, part, first_id in self._members(shard):
                arts = dict(row.artifacts)
                image = json.loads(part[1]) if part and part[1] else {}
                bodies = part[2] if part else ()
                data = exif.aligned_image(self._read(arts["image"]), image.get("width"),
                                          image.get("height"))
                pictures = {fmt: (arts[fmt], self._read(arts[fmt]))
                            for fmt, _ in hf_parquet.PICTURE_COLUMNS
                            if fmt in self.formats and fmt in arts}
                segments = (json.loads(part[3])["segments_info"]
                            if "coco-panoptic" in self.formats and part and part[3] else None)
                if hf:
                    hf_writer.add(self._hf_record(row, arts["image"], data, pictures, bodies,
                                                  first_id, image, segments))
                if wds:
                    tar.add(self._wds_record(row, arts["image"], data, pictures, bodies,
                                             first_id, image, segments))
            if hf:
                hf_writer.close()
            if wds:
                tar.close()
        return ",".join(paths_out)

    def _hf_record(self, row, image_rel, data, pictures, bodies, first_id, image,
                   segments) -> dict:
        record = {"image": {"bytes": data, "path": image_rel}}
        for fmt, col in hf_parquet.PICTURE_COLUMNS:
            if fmt in self.formats:
                rel_png, png = pictures.get(fmt, (None, None))
                record[col] = None if png is None else {"bytes": png, "path": rel_png}
        record["objects"] = hf_parquet.objects(bodies, first_id)
        if "coco-panoptic" in self.formats:
            record["segments_info"] = (None if segments is None
                                       else json.dumps(segments, separators=(",", ":")))
        record.update(name=row.name, uuid=row.uuid, image_id=row.image_id,
                      width=image.get("width"), height=image.get("height"),
                      metadata=row.metadata)
        return record

    def _wds_record(self, row, image_rel, data, pictures, bodies, first_id, image,
                    segments) -> list[tuple[str, bytes]]:
        key = webdataset.record_key(_stem_of(image_rel))
        ext = image_rel.rsplit(".", 1)[-1].lower()
        info = {"name": row.name, "uuid": row.uuid, "image_id": row.image_id,
                "split": row.split or DEFAULT_SPLIT, "file_name": image.get("file_name"),
                "width": image.get("width"), "height": image.get("height"),
                "metadata": None if row.metadata is None else json.loads(row.metadata)}
        if segments is not None:
            info["segments_info"] = segments
        annotations = (coco.with_id(b, first_id + k) for k, b in enumerate(bodies))
        members = [(f"{key}.{ext}", data),
                   (f"{key}.json", webdataset.record_json(info, annotations))]
        for fmt, name in webdataset.PICTURE_MEMBERS:
            if fmt in pictures:
                png = pictures[fmt][1]
                members.append((webdataset.picture_member(key, name, png), png))
        return members

    def _hf_card(self, summary: dict[str, tuple]) -> str:
        task = "object-detection" if not any(
            f in self.formats for f, _ in hf_parquet.PICTURE_COLUMNS) else "image-segmentation"
        splits = {s: (v[0], v[1], v[2]) for s, v in summary.items()}
        storage.write_bytes(storage.join(self.output, "hf", hf_parquet.ID2LABEL),
                            (json.dumps(hf_parquet.id2label(self.taxonomy), indent=1,
                                        ensure_ascii=False) + "\n").encode("utf-8"))
        path = storage.join(self.output, "hf", hf_parquet.CARD)
        storage.write_bytes(path, hf_parquet.card(self.dataset_name, self.release_name,
                                                  self.taxonomy, self.formats, splits, task))
        return path


def _stem_of(image_rel: str) -> str:
    """The stem of `images/{stem}{ext}`."""
    name = image_rel.split("/", 1)[1]
    return name.rsplit(".", 1)[0]
