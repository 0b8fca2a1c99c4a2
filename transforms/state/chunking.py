"""Chunked runs: a large release exported as consecutive slices, merged into one export.

Contract:
  * `split` streams the release once (`release.decide`, the reader's own rules) and writes
    each chunk's decisions, in release order, to `chunk-{k:06d}.pickle` under the chunk
    folder. A chunk is a run of consecutive release positions; it closes after
    `chunk_samples` samples to export, or `ROWS_PER_CHUNK_FACTOR * chunk_samples` samples
    of any kind (so a mostly-filtered release still makes few chunks). What needs the
    whole release (duplicate uuids, oversized samples) comes with the header scan's
    `ReleaseInfo`, so chunk boundaries change no decision.
  * Output names are decided over the whole release, exactly as `AssignStems` does:
    only samples whose collision key is shared get `paths.unique_stems`; the others keep
    `paths.sample_stem(name)`. The launcher holds one 8-byte hash per sample for this, and
    the names of colliding samples only.
  * Every chunk writes its share of the global outputs as parts in the temporary folder
    (`PartPaths`); `Merge` streams them into the final files with the same functions a
    single run uses, in release order, so the export is byte-identical to a one-chunk run.
  * COCO annotation ids (coco-instance, coco-keypoints) continue across chunks: chunk k's
    ids start after the annotations of chunks 0..k-1 (`id_base`, from each chunk's total),
    per COCO document (one per split with --split).
  * Nothing here imports Beam; the pickles are private temporary files of one run.
"""

from __future__ import annotations

import array
import dataclasses
import hashlib
import json
import pickle
from collections.abc import Container, Iterator, Mapping
from typing import IO, Any

import numpy as np

from transforms import release, storage
from transforms.formats import coco
from transforms.model import paths
from transforms.model.taxonomy import Taxonomy
from transforms.model.types import FAILED, SKIPPED, ManifestRow, Sample
from transforms.state.ledger import global_tasks
from transforms.storage import pickles
from transforms.summary import manifest, preview, report
from transforms.summary.report import Report, ReportAccumulator

ROWS_PER_CHUNK_FACTOR = 20
AUTO_CHUNK_SAMPLES = 2000  # `chunk_samples: auto` on local runners (benchmarks/memory.py)


@dataclasses.dataclass(frozen=True)
class Chunk:
    number: int
    path: str  # pickle stream of ("sample", Sample) / ("row", ManifestRow, selected)
    first_position: int
    positions: int  # release samples in the chunk
    samples: int  # samples to export in the chunk


@dataclasses.dataclass(frozen=True)
class PartPaths:
    """Where chunk `number` writes its share of the global outputs (under `temp`)."""

    temp: str
    number: int

    def _name(self, folder: str, stem: str, ext: str) -> str:
        return storage.join(self.temp, folder, f"{stem}-{self.number:06d}.{ext}")

    def coco_dir(self, fmt: str) -> str:
        return storage.join(self.temp, fmt)

    def coco_total(self, fmt: str) -> str:
        return self._name(fmt, "total", "json")

    def manifest_part(self, shard: int) -> str:
        return storage.join(self.temp, "manifest", f"part-{shard:05d}-{self.number:06d}.pickle")

    @property
    def failures(self) -> str:
        return self._name("failures", "failures", "jsonl")

    @property
    def report(self) -> str:
        return self._name("report", "report", "pickle")

    @property
    def preview(self) -> str:
        return self._name("preview", "preview", "pickle")


# --------------------------------------------------------------------------- splitting


def decision_row(d: release.Decision) -> ManifestRow | None:
    """The manifest row of a sample that never reaches the export step (None if it does)."""
    if d.sample is not None:
        return None
    source = {"image_url": storage.public_url(d.image_url), "metadata": d.metadata}
    if d.failed is not None:
        return ManifestRow(d.position, d.uuid, d.name, FAILED, image_id=d.image_id,
                           reason=d.failed.reason, stage=d.failed.stage, **source)
    return ManifestRow(d.position, d.uuid, d.name, SKIPPED, image_id=d.image_id,
                       reason=d.skipped, **source)


def _stem_hash(stem: str) -> int:
    key = paths.collision_key(stem).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def split(stream: IO[bytes], info: release.ReleaseInfo, selection: release.Selection,
          folder: str, chunk_samples: int, only: Container[int] | None = None) -> list[Chunk]:
    """Writes the chunk files and the stem files (see module contract); returns the chunks.

    With `only` (release positions), the chunks hold those positions alone; the output
    names are still decided over the whole release (`--only_failed`).
    """
    if chunk_samples < 1:
        raise ValueError("chunk_samples must be positive")
    chunks: list[Chunk] = []
    ends: list[int] = []  # chunk k's samples have indices below ends[k] (and above ends[k-1])
    index_end = 0  # 1 + the selected index of the last selected sample read
    hashes = array.array("Q")  # collision-key hash per exported sample, in index order
    names_path = storage.join(folder, "names.tsv")
    decisions = release.decide(stream, info, selection)
    d = next(decisions, None)
    with storage.open_atomic(names_path) as names_out:
        while d is not None:  # one chunk per turn
            path = storage.join(folder, f"chunk-{len(chunks):06d}.pickle")
            first, count, samples = d.position, 0, 0
            with storage.open_atomic(path) as out:
                while d is not None and samples < chunk_samples and (
                        count < ROWS_PER_CHUNK_FACTOR * chunk_samples):
                    kept = only is None or d.position in only
                    if d.image_id is not None:
                        index_end = d.image_id  # = index + 1
                    if kept:
                        count += 1
                    if d.sample is not None:
                        h, line = name_line(d.sample.index, paths.sample_stem(d.sample.name))
                        hashes.append(h)
                        names_out.write(line)
                        if kept:
                            samples += 1
                            pickles.dump(out, ("sample", d.sample))
                    elif kept:
                        pickles.dump(out, ("row", decision_row(d), d.selected))
                    d = next(decisions, None)
            if count == 0 and only is not None:
                storage.remove_tree(path)  # nothing kept since the previous chunk
                continue
            chunks.append(Chunk(len(chunks), path, first, count, samples))
            # Selected samples that are skipped have an index but no stem: a chunk's index
            # range is bounded by the indexes read, not by the stems counted.
            ends.append(index_end)
    if not chunks:  # a release without samples: one empty chunk
        path = storage.join(folder, "chunk-000000.pickle")
        storage.write_bytes(path, b"")
        chunks.append(Chunk(0, path, 0, 0, 0))
        ends.append(0)
    _write_stem_overrides(folder, names_path, hashes, chunks, ends)
    return chunks


def stems_path(folder: str, number: int) -> str:
    return storage.join(folder, f"stems-{number:06d}.pickle")


def name_line(index: int, stem: str) -> tuple[int, bytes]:
    """(collision-key hash, line of the names file) of an exported sample's default stem."""
    h = _stem_hash(stem)
    return h, f"{h:016x}\t{index}\t{stem}\n".encode("utf-8", "surrogatepass")


def stem_overrides(names_path: str, hashes: array.array) -> dict[int, str]:
    """{sample index: stem} of the samples whose name collides with another's (`AssignStems`'s
    rule), from the names file and the hashes of every exported sample."""
    values, counts = np.unique(np.frombuffer(hashes, dtype=np.uint64), return_counts=True)
    shared = set(values[counts > 1].tolist())
    groups: dict[str, list[tuple[int, str]]] = {}
    if shared:
        with storage.open_read(names_path) as f:
            for line in f:
                h, index, stem = line.decode("utf-8", "surrogatepass").rstrip("\n").split("\t", 2)
                if int(h, 16) in shared:
                    groups.setdefault(paths.collision_key(stem), []).append((int(index), stem))
    overrides: dict[int, str] = {}
    for members in groups.values():
        overrides.update(paths.unique_stems(members))
    return overrides


def _write_stem_overrides(folder: str, names_path: str, hashes: array.array,
                          chunks: list[Chunk], ends: list[int]) -> None:
    """stems-{k}.pickle: {sample index: stem} for chunk k's samples whose name collides."""
    overrides = stem_overrides(names_path, hashes)
    start = 0
    for c, end in zip(chunks, ends):
        mine = {i: s for i, s in overrides.items() if start <= i < end}
        storage.write_bytes(stems_path(folder, c.number), pickle.dumps(mine))
        start = end


def chunk_items(chunk_path: str, stems: Mapping[int, str]) -> Iterator[tuple[str, Any, bool]]:
    """("sample", Sample with its final stem, True) / ("row", ManifestRow, selected)."""
    for item in pickles.read_pickles(chunk_path):
        if item[0] == "sample":
            s: Sample = item[1]
            stem = stems.get(s.index) or paths.sample_stem(s.name)
            yield "sample", dataclasses.replace(s, stem=stem), True
        else:
            yield item


# --------------------------------------------------------------------------- merging


def _listing(folder: str, prefix: str) -> list[str]:
    """Sorted paths of the files in `folder` whose name starts with `prefix`."""
    return [storage.join(folder, n) for n in storage.list_names(folder) if n.startswith(prefix)]


def read_total(path: str) -> int:
    return int(json.loads(storage.read_bytes(path)))


@dataclasses.dataclass(frozen=True)
class Merge:
    """The final step of a chunked run: every chunk's parts streamed into the final files.

    `tasks()` are independent (one per COCO document, per manifest shard, ...), so a runner
    can spread them over workers; `run(task)` does one. `small_files` ({path: bytes}, e.g.
    YOLO's data.yaml) are written as they are.
    """

    output: str
    temp: str
    chunks: tuple[int, ...]  # chunk numbers
    samples: int
    rows_per_shard: int
    coco_headers: Mapping[str, dict]
    report_header: Mapping
    taxonomy: Taxonomy
    small_files: Mapping[str, bytes] = dataclasses.field(default_factory=dict)
    splits: bool = False  # --split: the manifest has a split column

    def tasks(self) -> list[tuple]:
        return global_tasks(self.samples, self.rows_per_shard, self.coco_headers,
                            self.small_files)

    def run(self, task: tuple) -> str:
        """Does one task; returns the path it wrote."""
        kind = task[0]
        if kind == "coco":
            folder = storage.join(self.temp, task[1])
            images, anns = _listing(folder, "images-"), _listing(folder, "annotations-")
            path = storage.join(self.output, paths.coco_json(task[1]))
            with storage.open_atomic(path) as out:
                coco.write_document(out, self.coco_headers[task[1]],
                                    (storage.open_read(p) for p in images),
                                    (storage.open_read(p) for p in anns))
        elif kind == "manifest":
            shard, shards = task[1], manifest.shard_count(self.samples, self.rows_per_shard)
            mine = _listing(storage.join(self.temp, "manifest"), f"part-{shard:05d}-")
            path = storage.join(self.output, paths.MANIFEST_DIR, manifest.shard_name(shard, shards))
            with storage.open_atomic(path) as out:
                manifest.write_parquet(out, (r for p in mine for r in pickles.read_pickles(p)),
                                       self.splits)
        elif kind == "failures":
            path = storage.join(self.output, paths.FAILURES)
            with storage.open_atomic(path) as out:
                for p in _listing(storage.join(self.temp, "failures"), "failures-"):
                    out.write(storage.read_bytes(p))
        elif kind == "report":
            acc = ReportAccumulator()
            partials: list[Report] = [
                pickle.loads(storage.read_bytes(PartPaths(self.temp, c).report))
                for c in self.chunks]
            path = storage.join(self.output, paths.REPORT)
            storage.write_bytes(path, report.report_bytes(
                acc.finalize(acc.merge(partials), self.report_header)))
        elif kind == "preview":
            thumbs = [t for c in self.chunks for t in pickle.loads(
                storage.read_bytes(PartPaths(self.temp, c).preview))]
            path = storage.join(self.output, paths.PREVIEW)
            storage.write_bytes(path, preview.sheet_bytes(thumbs, self.taxonomy))
        elif kind == "file":
            path = task[1]
            storage.write_bytes(path, self.small_files[path])
        else:
            raise ValueError(f"unknown merge task {task!r}")
        return path

    def run_all(self) -> None:
        for task in self.tasks():
            self.run(task)
