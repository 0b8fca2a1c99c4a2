"""WriteCocoDocument: one COCO JSON from per-sample parts, no worker holding it whole."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.pvalue import AsDict, AsList

from transforms import storage
from transforms.formats import coco


def _shard_key(part, shard_size: int):
    return part[0] // shard_size, part


class _WriteFragmentsFn(beam.DoFn):
    """(shard, [(index, image, bodies)]) -> (shard, images path, annotations path)."""

    def __init__(self, temp_dir: str, chunk: int | None = None, id_base: int = 0):
        self._temp_dir, self._id_base = temp_dir, id_base
        self._suffix = "" if chunk is None else f"-{chunk:06d}"

    def process(self, element, totals=None):
        shard, parts = element
        first_id = (None if totals is None
                    else self._id_base + coco.shard_offsets(totals)[shard] + 1)
        images, anns = coco.shard_fragments(parts, first_id)
        img_path = storage.join(self._temp_dir, f"images-{shard:09d}{self._suffix}.json")
        ann_path = storage.join(self._temp_dir, f"annotations-{shard:09d}{self._suffix}.json")
        storage.write_bytes(img_path, images)
        storage.write_bytes(ann_path, anns)
        yield shard, img_path, ann_path


def _concatenate(path: str, header: dict, fragments) -> str:
    # The fragments stay until the run ends (the launcher removes the temporary folder):
    # a retried bundle of this step must find them again.
    fragments = sorted(fragments)
    with storage.open_atomic(path) as out:
        coco.write_document(
            out,
            header,
            (storage.open_read(f[1]) for f in fragments),
            (storage.open_read(f[2]) for f in fragments),
        )
    return path


class WriteCocoFragments(beam.PTransform):
    """`coco.pack_part` (index, annotations, packed JSON) -> (shard, images path,
    annotations path).

    Only per-shard annotation counts go through a combiner; they become id offsets (a side
    input). Each shard's fragment is written by the worker that holds the shard. In a chunk
    of a chunked run (`chunk`), fragment names carry the chunk number, ids start after
    `id_base`, and `total_path` receives the chunk's annotation count.
    """

    def __init__(self, temp_dir: str, assign_ids: bool,
                 shard_size: int = coco.DEFAULT_SHARD_SIZE, chunk: int | None = None,
                 id_base: int = 0, total_path: str | None = None):
        super().__init__()
        self._temp_dir, self._assign_ids, self._shard_size = temp_dir, assign_ids, shard_size
        self._chunk, self._id_base, self._total_path = chunk, id_base, total_path

    def expand(self, parts):
        keyed = parts | "KeyByShard" >> beam.Map(_shard_key, self._shard_size)
        # (shard, (index, number of annotations, packed JSON))
        grouped = keyed | "GroupByShard" >> beam.GroupByKey()
        write = _WriteFragmentsFn(self._temp_dir, self._chunk, self._id_base)
        if not self._assign_ids:
            return grouped | "WriteFragments" >> beam.ParDo(write)
        totals = (
            keyed
            | "CountPerShard" >> beam.MapTuple(lambda shard, part: (shard, part[1]))
            | "SumPerShard" >> beam.CombinePerKey(sum)
        )
        if self._total_path:
            _ = (totals
                 | "Counts" >> beam.Values()
                 | "Total" >> beam.CombineGlobally(sum)
                 | "WriteTotal" >> beam.Map(_write_total, self._total_path))
        return grouped | "WriteFragments" >> beam.ParDo(write, totals=AsDict(totals))


def _write_total(total: int, path: str) -> str:
    storage.write_bytes(path, b"%d\n" % total)
    return path


class WriteCocoDocument(beam.PTransform):
    """`coco.pack_part` (index, annotations, packed JSON) -> path of the written document.

    `WriteCocoFragments`, then one step streams the fragments into the document.
    """

    def __init__(self, path: str, header: dict, temp_dir: str, assign_ids: bool,
                 shard_size: int = coco.DEFAULT_SHARD_SIZE):
        super().__init__()
        self._path, self._header = path, header
        self._fragments = WriteCocoFragments(temp_dir, assign_ids, shard_size)

    def expand(self, parts):
        fragments = parts | "Fragments" >> self._fragments
        # (shard, images fragment path, annotations fragment path)
        return (
            parts.pipeline
            | "DocumentPath" >> beam.Create([self._path])
            | "Concatenate" >> beam.Map(_concatenate, self._header, fragments=AsList(fragments))
        )
