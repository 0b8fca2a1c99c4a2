"""Incremental exports (`--since`): a new release exported into the previous export's folder,
re-exporting only the samples that changed.

Contract:
  * A sample's reuse key (`sample_key`, stored in its ledger entry) is 24 bytes: a digest of
    everything the export step reads from the sample (name, uuid, label status, URLs,
    annotations, vector shapes, ...) except its release position and selected index, then a
    digest of its output stem. URLs enter without their signing parameters
    (`stable_url`: AWS, GCS, Azure and CloudFront signatures, expiry and credential
    parameters), so a release downloaded again, with every URL re-signed, keeps its keys;
    Segments.ai stores a changed label under a new URL path, so a changed label changes its
    key. An asset replaced behind the same URL path is not seen: run a full export then.
  * A sample whose previous ledger entry has no key is always exported again.
  * A sample of the new release is **reused** when the previous export exported a sample
    with the same key (same content, same output name), wherever it was in the release.
    Reused samples are not fetched: their files stay, and their ledger entry is carried
    over with its position, image id and COCO ids rewritten (`rewrite`). Every other sample
    (changed, new, failed or skipped before, or newly among the first `PREVIEW_SAMPLES`
    selected, whose thumbnails preview.png shows) is exported again.
  * Sequences: a frame's COCO image id depends on the frames before its sample
    (`Sample.frame_base`, part of the reuse key), so a reused sequence keeps its frames' ids
    and annotations as they are; only its position, sample number and shard move. A change
    in the number of frames before a sequence re-exports it.
  * Files of the previous export that no sample of the new export owns (removed or renamed
    samples, changed image extensions) are deleted (`stale_files`).
  * The result equals a full export of the new release: same files, same bytes (tested).
  * Nothing here imports Beam.
"""

from __future__ import annotations

import array
import dataclasses
import hashlib
import re
import tempfile
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from transforms import release, storage
from transforms.model import paths
from transforms.model.types import EXPORTED, SEQUENCE_TASKS, Sample
from transforms.state import chunking, ledger
from transforms.storage import pickles
from transforms.storage.urls import stable_url
from transforms.summary.preview import PREVIEW_SAMPLES

KEY_BYTES = 24
_KEY_DTYPE = f"S{KEY_BYTES}"

def _stable(value: Any) -> Any:
    """A hashable, position-free, signature-free form of a sample's content."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__,
                tuple((f.name, _stable(getattr(value, f.name))) for f in dataclasses.fields(value)))
    if isinstance(value, (tuple, list)):
        return tuple(_stable(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _stable(v)) for k, v in value.items())
    if isinstance(value, str) and "?" in value:  # absolute or relative URLs (and names:
        return stable_url(value)  # harmless, the stem's own digest tells names apart)
    return value


def _digest(text: str, size: int) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=size).digest()


def content_digest(sample: Sample) -> bytes:
    """16 bytes identifying what the export step reads from `sample`, position-free."""
    free = dataclasses.replace(sample, index=0, position=0, stem="")
    return _digest(repr(_stable(free)), 16)


def stem_digest(stem: str) -> bytes:
    return _digest(stem, KEY_BYTES - 16)


def sample_key(sample: Sample) -> bytes:
    """The reuse key of an exported sample (with its final stem). A sequence's includes its
    `frame_base`: its frames' COCO image ids count the frames of every sample before it, so
    it is reused only where they are unchanged (see the contract)."""
    return content_digest(sample) + stem_digest(sample.stem)


# --------------------------------------------------------------------------- planning


@dataclasses.dataclass(frozen=True)
class Plan:
    """Which samples of the new release reuse which entries of the previous ledger."""

    samples: int  # in the new release
    old_positions: np.ndarray  # reused entries' positions in the previous ledger, ascending
    new_positions: np.ndarray  # their positions in the new release
    new_indexes: np.ndarray  # their selected index in the new release
    redo: frozenset[int]  # new release positions to export
    previous: int  # samples in the previous export
    sequence: bool = False  # image sequences: COCO ids are frame ids (see the contract)

    @property
    def reused(self) -> int:
        return len(self.old_positions)


def previous_keys(ledger_dir: str) -> tuple[np.ndarray, np.ndarray, set[int], int]:
    """(keys sorted, their positions, positions with a preview thumbnail, entries) of the
    exported samples of a ledger. Only the entries up to the preview's last sample are
    unpacked (selected indexes grow with the position)."""
    keys, positions, thumbs, count = [], array.array("q"), set(), 0
    preview_done = False
    for position, status, packed, key in ledger.entries(ledger_dir):
        count += 1
        if not preview_done:
            row, _, thumb = pickles.unpack(packed)
            if thumb is not None:
                thumbs.add(position)
            preview_done = row.image_id is not None and row.image_id >= PREVIEW_SAMPLES
        if status == EXPORTED and key is not None:
            keys.append(key)
            positions.append(position)
    k = np.array(keys, dtype=_KEY_DTYPE)
    p = np.frombuffer(positions, dtype=np.int64) if positions else np.zeros(0, np.int64)
    order = np.argsort(k, kind="stable")
    return k[order], p[order], thumbs, count


def plan(stream: IO[bytes], info: release.ReleaseInfo, selection: release.Selection,
         ledger_dir: str, work: str) -> Plan:
    """Streams the new release once (the reader's own decisions and output names) and matches
    each exported sample's key against the previous ledger. `work`: a folder for scratch."""
    old_keys, old_positions, thumbs, previous = previous_keys(ledger_dir)
    positions, indexes = array.array("q"), array.array("q")
    digests, hashes = bytearray(), array.array("Q")
    stems: list[bytes] = []
    names_path = storage.join(work, "names.tsv")
    samples = 0
    with storage.open_atomic(names_path) as names_out:
        for d in release.decide(stream, info, selection):
            samples += 1
            if d.sample is None:
                continue
            stem = paths.sample_stem(d.sample.name)
            h, line = chunking.name_line(d.sample.index, stem)
            hashes.append(h)
            names_out.write(line)
            positions.append(d.position)
            indexes.append(d.sample.index)
            digests += content_digest(d.sample)
            stems.append(stem_digest(stem))
    for index, stem in chunking.stem_overrides(names_path, hashes).items():
        stems[int(np.searchsorted(np.frombuffer(indexes, np.int64), index))] = stem_digest(stem)
    new_positions = np.frombuffer(positions, np.int64) if positions else np.zeros(0, np.int64)
    new_indexes = np.frombuffer(indexes, np.int64) if indexes else np.zeros(0, np.int64)
    keys = np.array([bytes(digests[16 * i:16 * i + 16]) + s for i, s in enumerate(stems)],
                    dtype=_KEY_DTYPE)
    found = np.searchsorted(old_keys, keys)
    found_ok = found < len(old_keys)
    match = np.zeros(len(keys), bool)
    match[found_ok] = old_keys[found[found_ok]] == keys[found_ok]
    # A sample the preview shows needs its thumbnail: reused only if it had one.
    preview = np.flatnonzero(match & (new_indexes < PREVIEW_SAMPLES))
    for i in preview.tolist():
        match[i] = int(old_positions[found[i]]) in thumbs
    old = old_positions[found[match]]
    order = np.argsort(old, kind="stable")
    reused_new = set(new_positions[match].tolist())
    return Plan(samples, old[order], new_positions[match][order], new_indexes[match][order],
                frozenset(p for p in range(samples) if p not in reused_new), previous,
                info.task_type in SEQUENCE_TASKS)


# --------------------------------------------------------------------------- the new ledger


def _swap(text: str, prefix: str, new: int, suffix: str = "") -> str:
    """`text` = prefix + old number + rest (or rest + prefix + number + suffix with `suffix`),
    the number replaced by `new`."""
    if suffix:
        at = text.rfind(prefix)
        if at < 0 or not text.endswith(suffix) or not text[at + len(prefix):-len(suffix)].isdigit():
            raise ValueError(f"not a reusable COCO part: {text[-80:]!r}")
        return f"{text[:at]}{prefix}{new}{suffix}"
    m = re.match(re.escape(prefix) + r"\d+", text)
    if m is None:
        raise ValueError(f"not a reusable COCO part: {text[:80]!r}")
    return f"{prefix}{new}{text[m.end():]}"


def rewrite(e: tuple, position: int, index: int, sequence: bool = False) -> tuple:
    """A reused ledger entry at its new release position and selected index. A sequence's
    COCO part keeps its frame ids (`Plan.sequence`)."""
    _, status, packed, key = e
    row, part, thumb = pickles.unpack(packed)
    image_id = index + 1
    row = dataclasses.replace(row, position=position, image_id=image_id)
    if part is not None and sequence:
        part = (index, *part[1:])
    elif part is not None:
        _, image, bodies, panoptic, keypoints, *split = part  # (split: with --split)
        part = (index,
                None if image is None else _swap(image, '{"id":', image_id),
                tuple(_swap(b, '{"image_id":', image_id) for b in bodies),
                None if panoptic is None else _swap(panoptic, ',"image_id":', image_id, "}"),
                tuple(_swap(b, '{"image_id":', image_id) for b in keypoints),
                *split)
    if thumb is not None:
        thumb = (index, thumb[1], thumb[2]) if index < PREVIEW_SAMPLES else None
    return position, status, pickles.pack((row, part, thumb)), key


def _spool_reused(old_dir: str, p: Plan, spool: IO[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Writes the reused entries, rewritten, to `spool`; (new positions, offsets) ascending."""
    new_pos, offsets = array.array("q"), array.array("q")
    i, n = 0, p.reused
    for e in ledger.entries(old_dir):
        if i < n and e[0] == p.old_positions[i]:
            new_pos.append(int(p.new_positions[i]))
            offsets.append(spool.tell())
            pickles.dump(spool, rewrite(e, int(p.new_positions[i]), int(p.new_indexes[i]),
                                         p.sequence))
            i += 1
    if i != n:
        raise ValueError(f"{n - i} reused entries are missing from the previous ledger")
    np_pos = np.frombuffer(new_pos, np.int64) if new_pos else np.zeros(0, np.int64)
    np_off = np.frombuffer(offsets, np.int64) if offsets else np.zeros(0, np.int64)
    order = np.argsort(np_pos, kind="stable")
    return np_pos[order], np_off[order]


def _reused_entries(spool: IO[bytes], offsets: np.ndarray) -> Iterator[tuple]:
    import pickle

    for offset in offsets.tolist():
        spool.seek(offset)
        yield pickle.load(spool)


def combine(old_dir: str, fresh_dir: str, target: str, p: Plan) -> int:
    """Writes generation `target`: the fresh entries (positions `p.redo`) and the reused
    ones, rewritten, one file per ledger shard in release order. Returns the entries."""
    with tempfile.TemporaryFile() as spool:
        positions, offsets = _spool_reused(old_dir, p, spool)
        reused = _reused_entries(spool, offsets)
        fresh = ledger.entries(fresh_dir)
        r, f = next(reused, None), next(fresh, None)
        written = 0
        for shard in range(ledger.shard_of(p.samples - 1) + 1 if p.samples else 0):
            end = (shard + 1) * ledger.LEDGER_POSITIONS
            with storage.open_atomic(storage.join(target, ledger.file_name(shard))) as out:
                while (r is not None and r[0] < end) or (f is not None and f[0] < end):
                    if f is None or (r is not None and r[0] < f[0]):
                        e, r = r, next(reused, None)
                    else:
                        e, f = f, next(fresh, None)
                    if e[0] != written:
                        raise ValueError(f"ledger position {written} is missing (got {e[0]})")
                    pickles.dump(out, e)
                    written += 1
        if r is not None or f is not None or written != p.samples:
            raise ValueError(f"the new ledger has {written} entries for {p.samples} samples")
    return written


def stale_files(old_dir: str, fresh_dir: str, p: Plan) -> list[str]:
    """Paths (relative to the output) of the previous export's per-sample files that no
    sample of the new export owns, sorted."""
    reused = set(p.old_positions.tolist())
    owned = {path for row, _, _ in ledger.results(fresh_dir) for _, path in row.artifacts}
    gone = set()
    for e in ledger.entries(old_dir):
        if e[1] == EXPORTED and e[0] not in reused:
            gone.update(path for _, path in pickles.unpack(e[2])[0].artifacts)
    return sorted(gone - owned)
