"""The ledger: every sample's result, kept in the output folder so a later run can reuse it.

A full export writes, besides its outputs, one ledger entry per release sample. A run with
`--only_failed` re-exports only the samples the ledger records as failed, merges their new
entries in, and rebuilds every global output (COCO documents, manifest, failures, report,
preview) from the merged ledger: the result is byte-identical to a full export in which
those samples succeeded the first time.

Contract:
  * `OUT/.export-state/state.json` names the current generation and what the export was
    made from (`Fingerprint`: release content hash, options that change per-sample results,
    ledger version); it is written last, so a folder without it has no reusable state.
  * The generation folder `gen-{g:06d}/` holds `ledger-{shard:07d}.pickle` files, shard =
    position // `LEDGER_POSITIONS`, whatever the runner or chunking (a chunk of a chunked
    run writes `ledger-{shard:07d}-{chunk:06d}.pickle` parts, which `merge_parts`
    concatenates). Each file is a pickle stream of `(position, status, packed, key)` sorted
    by position, with
    `packed = zlib(pickle((ManifestRow, coco part or None, preview thumbnail or None)))`;
    the coco part is the export step's `(index, image JSON, annotation JSONs, panoptic
    JSON, keypoint annotation JSONs, split)` (`coco.format_part`); `key` identifies an exported sample's content and output name for `--since`
    (`incremental.sample_key`), None for rows that never reached the export step. Files
    sorted by name give the entries in release order.
  * `combine` writes a new generation: the old entries with the re-exported positions
    replaced, streamed (neither ledger is held in memory).
  * `Rebuild` writes the global outputs from a generation with the same functions as the
    run's own writers; its tasks are independent (a runner spreads them over workers).
  * Nothing here imports Beam.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from transforms import storage
from transforms.formats import coco
from transforms.model import paths
from transforms.model.taxonomy import Taxonomy
from transforms.model.types import EXPORTED, FAILED, ManifestRow
from transforms.storage import pickles
from transforms.summary import manifest, preview, report
from transforms.summary.report import ReportAccumulator

VERSION = 3  # bump when an entry's meaning changes: older states are then refused
LEDGER_POSITIONS = 10_000  # release positions per ledger shard
STATE_JSON = "state.json"
_COPY = 1 << 20


# --------------------------------------------------------------------------- entries


def entry(row: ManifestRow, part: tuple | None = None, thumb: tuple | None = None,
          key: bytes | None = None) -> tuple:
    """One sample's ledger entry: (position, status, packed result, reuse key)."""
    return row.position, row.status, pickles.pack((row, part, thumb)), key


def shard_of(position: int) -> int:
    return position // LEDGER_POSITIONS


def file_name(shard: int, part: int | None = None) -> str:
    return f"ledger-{shard:07d}.pickle" if part is None else f"ledger-{shard:07d}-{part:06d}.pickle"


def write_shard(shard: int, items: Iterable[tuple], folder: str, part: int | None) -> str:
    """Writes one ledger file (entries sorted by position); returns its path."""
    path = storage.join(folder, file_name(shard, part))
    with storage.open_atomic(path) as out:
        for e in sorted(items, key=lambda e: e[0]):
            pickles.dump(out, e)
    return path


def files(folder: str) -> list[str]:
    return [storage.join(folder, n) for n in storage.list_names(folder)
            if n.startswith("ledger-") and n.endswith(".pickle")]


def _base_name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _shard_of_file(path: str) -> int:
    return int(_base_name(path).split(".")[0].split("-")[1])


def merge_parts(parts: str, target: str) -> None:
    """Concatenates the chunk parts of each shard (pickle streams, chunks in release order)
    into the shard's ledger file in `target`."""
    by_shard: dict[int, list[str]] = {}
    for path in files(parts):
        by_shard.setdefault(_shard_of_file(path), []).append(path)
    for shard, members in sorted(by_shard.items()):
        with storage.open_atomic(storage.join(target, file_name(shard))) as out:
            for path in members:
                with storage.open_read(path) as f:
                    while block := f.read(_COPY):
                        out.write(block)


def entries(folder: str, shards: range | None = None) -> Iterator[tuple]:
    """(position, status, packed, key) of a ledger folder in release order (only `shards`)."""
    for path in files(folder):
        if shards is None or _shard_of_file(path) in shards:
            yield from pickles.read_pickles(path)


def results(folder: str, shards: range | None = None
            ) -> Iterator[tuple[ManifestRow, tuple | None, tuple | None]]:
    for e in entries(folder, shards):
        yield pickles.unpack(e[2])


def status_counts(folder: str) -> dict[str, int]:
    """{"samples_exported", "samples_failed", "samples_skipped": n} of the entries in a
    ledger folder (only statuses are read): what a run did, exact on every runner (Beam's
    counters are approximate on some, e.g. Spark counts failed attempts)."""
    counts = {"samples_exported": 0, "samples_failed": 0, "samples_skipped": 0}
    names = {EXPORTED: "samples_exported", FAILED: "samples_failed"}
    for e in entries(folder):
        counts[names.get(e[1], "samples_skipped")] += 1
    return counts


def failed_positions(folder: str) -> list[int]:
    """Release positions of the failed samples (only statuses are read, not results)."""
    return [e[0] for e in entries(folder) if e[1] == FAILED]


def combine(old: str, new: str, target: str) -> int:
    """Writes generation `target`: `old`'s entries, those at positions present in `new`
    replaced by `new`'s (both folders in release order). Returns the entries written."""
    replacements = entries(new)
    pending = next(replacements, None)
    written = 0
    for path in files(old):
        with storage.open_atomic(storage.join(target, _base_name(path))) as out:
            for e in pickles.read_pickles(path):
                if pending is not None and pending[0] < e[0]:
                    raise ValueError(f"re-exported position {pending[0]} is not in the ledger")
                if pending is not None and pending[0] == e[0]:
                    e, pending = pending, next(replacements, None)
                pickles.dump(out, e)
                written += 1
    if pending is not None:
        raise ValueError(f"re-exported position {pending[0]} is not in the ledger")
    return written


# --------------------------------------------------------------------------- state


@dataclasses.dataclass(frozen=True)
class Fingerprint:
    """What a ledger's results depend on. A run may reuse a ledger only with an equal one."""

    release_sha256: str
    settings: tuple[tuple[str, Any], ...]  # options that change per-sample results
    version: int = VERSION

    def to_json(self) -> dict:
        return {"version": self.version, "release_sha256": self.release_sha256,
                "settings": {k: v for k, v in self.settings}}

    def differences(self, other: Fingerprint) -> list[str]:
        """What differs, in words, naming the options (empty when equal)."""
        out = []
        if self.version != other.version:
            out.append(f"made by ledger version {other.version}, this exporter writes {self.version}")
        if self.release_sha256 != other.release_sha256:
            out.append("the release file's content changed")
        mine, theirs = dict(self.settings), dict(other.settings)
        for key in sorted(set(mine) | set(theirs)):
            if mine.get(key) != theirs.get(key):
                out.append(f"{key} was {theirs.get(key)!r}, now {mine.get(key)!r}")
        return out


def _canonical(value: Any) -> Any:
    """JSON-stable form (tuples become lists) so a fingerprint survives state.json."""
    return json.loads(json.dumps(value))


def fingerprint(release_sha256: str, settings: Mapping[str, Any]) -> Fingerprint:
    return Fingerprint(release_sha256,
                       tuple(sorted((k, _canonical(v)) for k, v in settings.items())))


class HashingReader(io.RawIOBase):
    """A read-through stream that hashes what is read (`sha256()` reads the rest first)."""

    def __init__(self, raw: IO[bytes]):
        self._raw, self._hash = raw, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._hash.update(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def sha256(self) -> str:
        while self.read(_COPY):
            pass
        return self._hash.hexdigest()


def state_dir(output: str) -> str:
    return storage.join(output, paths.STATE_DIR)


def generation_dir(output: str, generation: int) -> str:
    return storage.join(state_dir(output), f"gen-{generation:06d}")


def write_state(output: str, generation: int, fp: Fingerprint) -> None:
    """Publishes generation `generation` as the current ledger (atomic: the last write)."""
    body = {"generation": generation, **fp.to_json()}
    storage.write_bytes(storage.join(state_dir(output), STATE_JSON),
                        (json.dumps(body, indent=1, sort_keys=True) + "\n").encode("utf-8"))


def read_state(output: str) -> tuple[int, Fingerprint] | None:
    """(generation, fingerprint) of the export in `output`, or None without a state."""
    try:
        body = json.loads(storage.read_bytes(storage.join(state_dir(output), STATE_JSON)))
        fp = Fingerprint(body["release_sha256"],
                         tuple(sorted((k, v) for k, v in body["settings"].items())),
                         int(body["version"]))
        return int(body["generation"]), fp
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


# --------------------------------------------------------------------------- rebuilding


def global_tasks(samples: int, rows_per_shard: int, coco_documents: Iterable[str],
                 small_files: Iterable[str]) -> list[tuple]:
    """The independent tasks that write an export's global files (`Rebuild`, and the merge
    of a chunked run): one per COCO document, per manifest shard, the failures, the report,
    the preview, and one per small file."""
    shards = manifest.shard_count(samples, rows_per_shard)
    return ([("coco", doc) for doc in coco_documents]
            + [("manifest", shard) for shard in range(shards)]
            + [("failures",), ("report",), ("preview",)]
            + [("file", path) for path in small_files])


@dataclasses.dataclass(frozen=True)
class Rebuild:
    """Every global output of an export, written from a ledger generation.

    Same tasks and byte-identical results as the writers of a run (`WriteCocoDocument`,
    `WriteManifest`, `WriteFailures`, `WriteReport`, `WritePreview`) fed the same results.
    """

    output: str
    ledger: str  # generation folder
    samples: int  # in the release
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
        kind = task[0]
        if kind == "coco":
            return self._coco(task[1])
        if kind == "manifest":
            shard, shards = task[1], manifest.shard_count(self.samples, self.rows_per_shard)
            first, end = shard * self.rows_per_shard, (shard + 1) * self.rows_per_shard
            ledger_shards = range(shard_of(first), shard_of(end - 1) + 1)
            rows = (r for r, _, _ in results(self.ledger, ledger_shards)
                    if first <= r.position < end)
            path = storage.join(self.output, paths.MANIFEST_DIR,
                                manifest.shard_name(shard, shards))
            with storage.open_atomic(path) as out:
                manifest.write_parquet(out, rows, self.splits)
            return path
        if kind == "failures":
            path = storage.join(self.output, paths.FAILURES)
            with storage.open_atomic(path) as out:
                for e in entries(self.ledger):
                    if e[1] == FAILED:
                        out.write(manifest.failure_lines([pickles.unpack(e[2])[0]]))
            return path
        if kind == "report":
            acc = ReportAccumulator()
            summary = acc.create()
            for row, _, _ in results(self.ledger):
                summary = acc.add(summary, row)
            path = storage.join(self.output, paths.REPORT)
            storage.write_bytes(path, report.report_bytes(acc.finalize(summary, self.report_header)))
            return path
        if kind == "preview":
            thumbs = [thumb for _, _, thumb in results(self.ledger) if thumb is not None]
            path = storage.join(self.output, paths.PREVIEW)
            storage.write_bytes(path, preview.sheet_bytes(thumbs, self.taxonomy))
            return path
        if kind == "file":
            storage.write_bytes(task[1], self.small_files[task[1]])
            return task[1]
        raise ValueError(f"unknown rebuild task {task!r}")

    def _coco(self, doc: str) -> str:
        """One pass over the ledger: images and annotations go to two local spool files,
        then into the document (ids numbered in release order, as the run's writer does).
        With --split, only the document's split."""
        fmt, split = paths.coco_document_parts(doc)
        numbered = fmt in coco.NUMBERED
        path = storage.join(self.output, paths.coco_json(doc))
        with tempfile.TemporaryFile() as images, tempfile.TemporaryFile() as anns:
            next_id, sep_image, sep_ann = 1, b"", b""
            for row, part, _ in results(self.ledger):
                if part is None or (split is not None and row.split != split):
                    continue
                image, bodies = coco.format_part(part, fmt)
                if image is not None:
                    images.write(sep_image + image.encode("utf-8"))
                    sep_image = b","
                for body in bodies:
                    anns.write(sep_ann + (coco.with_id(body, next_id) if numbered
                                          else body).encode("utf-8"))
                    next_id += 1
                    sep_ann = b","
            images.seek(0)
            anns.seek(0)
            with storage.open_atomic(path) as out:
                coco.write_document(out, self.coco_headers[doc], [images], [anns])
        return path

    def run_all(self) -> None:
        for task in self.tasks():
            self.run(task)
