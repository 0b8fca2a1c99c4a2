"""WriteManifest, WriteFailures, WriteOnce, WriteLedger: the run's result files; BeginExport
and FinishExport: the first and the last step of an export."""

from __future__ import annotations

import re

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.pvalue import AsList

from transforms import storage
from transforms.model import paths
from transforms.state import chunking, ledger, lifecycle
from transforms.storage import pickles
from transforms.summary import manifest


def _packed_by_shard(row, rows_per_shard: int):
    return row.position // rows_per_shard, pickles.pack(row)


def _rows(packed) -> list:
    return sorted((pickles.unpack(p) for p in packed if p is not None), key=lambda r: r.position)


def _write_shard(element, output: str, shards: int, splits: bool) -> str:
    shard, packed = element
    path = storage.join(output, paths.MANIFEST_DIR, manifest.shard_name(shard, shards))
    with storage.open_atomic(path) as out:
        manifest.write_parquet(out, _rows(packed), splits)
    return path


class WriteManifest(beam.PTransform):
    """ManifestRow -> Parquet shards by release position (fixed layout, sorted rows)."""

    def __init__(self, output: str, samples: int, rows_per_shard: int, splits: bool = False):
        super().__init__()
        self._output, self._rows_per_shard = output, rows_per_shard
        self._shards = manifest.shard_count(samples, rows_per_shard)
        self._splits = splits  # --split: with the split column

    def expand(self, rows):
        keyed = rows | "KeyByShard" >> beam.Map(_packed_by_shard, self._rows_per_shard)
        # Every documented shard exists, even an empty one (e.g. a release with no samples).
        every_shard = (rows.pipeline | "Shards" >> beam.Create(range(self._shards))
                       | "NoRow" >> beam.Map(lambda shard: (shard, None)))
        return (
            (keyed, every_shard)
            | "AllShards" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            # (shard, [packed ManifestRow])
            | "WriteShard" >> beam.Map(_write_shard, self._output, self._shards, self._splits)
        )


def _write_part(element, parts: chunking.PartPaths) -> str:
    shard, packed = element
    path = parts.manifest_part(shard)
    storage.write_bytes(path, pickles.pickles_bytes(_rows(packed)))
    return path


class WriteManifestParts(beam.PTransform):
    """ManifestRow -> one chunk's rows per manifest shard (sorted pickle streams); the
    launcher streams them into the Parquet files (`chunking.Merge`)."""

    def __init__(self, parts: chunking.PartPaths, rows_per_shard: int):
        super().__init__()
        self._parts, self._rows_per_shard = parts, rows_per_shard

    def expand(self, rows):
        return (
            rows
            | "KeyByShard" >> beam.Map(_packed_by_shard, self._rows_per_shard)
            | "GroupByShard" >> beam.GroupByKey()
            # (shard, [packed ManifestRow])
            | "WritePart" >> beam.Map(_write_part, self._parts)
        )


def _write_failures(path: str, rows) -> str:
    storage.write_bytes(path, manifest.failure_lines(rows))
    return path


class WriteFailures(beam.PTransform):
    """ManifestRow -> failures.jsonl (failed rows only, sorted; written even when empty).

    `path` defaults to OUT/failures.jsonl; a chunk of a chunked run writes its own part.
    """

    def __init__(self, output: str, path: str | None = None):
        super().__init__()
        self._path = path or storage.join(output, paths.FAILURES)

    def expand(self, rows):
        failed = rows | "OnlyFailed" >> beam.Filter(lambda r: r.status == "failed")
        return (
            rows.pipeline
            | "Path" >> beam.Create([self._path])
            | "Write" >> beam.Map(_write_failures, rows=AsList(failed))
        )


def _write_once(path: str, data: bytes) -> str:
    storage.write_bytes(path, data)
    return path


def _constant(_token, value):
    return value


def start_with(start, label: str, value):
    """A PCollection of one element, `value`: at once from a PBegin, or once `start` (the
    token of `BeginExport`) has its element, so that the step starts after the previous
    export is replaced."""
    if isinstance(start, pvalue.PBegin):
        return start | label >> beam.Create([value])
    return start | label >> beam.Map(_constant, value)


class WriteOnce(beam.PTransform):
    """PBegin, or the token of `BeginExport` (written once the previous export is
    replaced) -> writes one small file with known content (e.g. YOLO data.yaml)."""

    def __init__(self, path: str, data: bytes):
        super().__init__()
        self._path, self._data = path, data

    def expand(self, start):
        return start_with(start, "Path", self._path) | "Write" >> beam.Map(_write_once,
                                                                           self._data)


def _begin(token: str, output: str, owned: tuple[str, ...]) -> str:
    return lifecycle.begin(output, owned, token)


def _finish(_count: int, output: str, generation: int | None, fp) -> str:
    return lifecycle.finish(output, generation, fp)


class BeginExport(beam.PTransform):
    """PBegin -> the run's token, once the previous export in `output` is replaced
    (`lifecycle.begin`, idempotent within the run). The release reader and every other
    step that writes without reading start from it."""

    def __init__(self, output: str, owned: tuple[str, ...], token: str):
        super().__init__()
        self._output, self._owned, self._token = output, owned, token

    def expand(self, pbegin):
        return (pbegin
                | "Token" >> beam.Create([self._token])
                | "ReplacePrevious" >> beam.Map(_begin, self._output, self._owned))


def _nothing(_element) -> None:
    return None


def _label(name: str) -> str:
    """CamelCase step label of an output's name (`coco-instance-train` -> CocoInstanceTrain)."""
    return "".join(w[:1].upper() + w[1:] for w in re.split(r"[^A-Za-z0-9]+", name) if w)


class FinishExport(beam.PTransform):
    """{name: PCollection of a writing step} -> the export's last step, once every one of
    them is done (whether or not the launcher waits for the job): the temporary folder and
    stray temporary files removed, then, with `fp`, ledger generation `generation`
    published in state.json (`lifecycle.finish`). Each output goes through a Map of its
    own before the Flatten: a PCollection consumed by both a Flatten and a GroupByKey
    fails on Flink and Spark (apache/beam#34647)."""

    def __init__(self, output: str, generation: int | None = None,
                 fp: ledger.Fingerprint | None = None):
        super().__init__()
        self._output, self._generation, self._fp = output, generation, fp

    def expand(self, written: dict):
        done = [written[name] | f"Done{_label(name)}" >> beam.Map(_nothing)
                for name in sorted(written)]
        return (done
                | "AllWritten" >> beam.Flatten()
                | "CountWritten" >> beam.combiners.Count.Globally()
                # one element: the number of files and folders written
                | "Finish" >> beam.Map(_finish, self._output, self._generation, self._fp))


def _by_ledger_shard(entry):
    return ledger.shard_of(entry[0]), entry


def _write_ledger_shard(element, folder: str, part: int | None) -> str:
    shard, items = element
    return ledger.write_shard(shard, items, folder, part)


class WriteLedger(beam.PTransform):
    """`ledger.entry` (position, status, packed result, key) -> ledger files in `folder`, one per
    shard of `ledger.LEDGER_POSITIONS` positions (`part`: the chunk of a chunked run, whose
    files are parts for `ledger.merge_parts`)."""

    def __init__(self, folder: str, part: int | None = None):
        super().__init__()
        self._folder, self._part = folder, part

    def expand(self, entries):
        return (entries
                | "KeyByShard" >> beam.Map(_by_ledger_shard)
                | "GroupByShard" >> beam.GroupByKey()
                | "Write" >> beam.Map(_write_ledger_shard, self._folder, self._part))
