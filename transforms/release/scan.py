"""The header scan: one streaming pass over the whole file before any work starts.

Contract:
  * The header (everything but the samples) is read with a streaming scan of the whole file:
    memory stays flat, a truncated or invalid file is caught before any work starts, and the
    number of samples is known up front. Samples are counted, never built.
  * Duplicate uuids: the first sample carrying a uuid (in file order, whatever its fate)
    keeps it; every later *selected* sample with the same uuid fails with "uuid: duplicate
    uuid (first at position P)". The scan finds them from 8-byte hashes (8 bytes a
    sample; a false duplicate needs a 64-bit collision, odds about n^2/2^65: 3e-8 for a
    million samples) and `ReleaseInfo.duplicates` carries them, so the reader, the chunked
    split and `--dry_run` decide alike. Samples without a uuid are never duplicates.
  * The scan also notes samples over MAX_VALUE_BYTES of JSON and the deepest nesting, so
    that the samples are later read by the builder that is safe for them (`decisions`).
"""

from __future__ import annotations

import array
import dataclasses
import hashlib
from collections.abc import Iterator
from typing import IO, Any

import ijson
import numpy as np

from transforms.model import errors
from transforms.release import jsonstream
from transforms.release.census import Census
from transforms.release.jsonstream import (
    ENDS,
    MAX_DEPTH,
    MAX_TOKEN_BYTES,
    STARTS,
    Events,
    TooDeep,
    ValueTooLong,
    build,
    depth_of,
    mib,
    short_error,
    skip,
    walk,
)
from transforms.release.selection import Selection

# Header fields collected by the scan (ijson prefixes). Samples are never built here.
_HEADER_PREFIXES = frozenset(
    {
        "name",
        "description",
        "dataset",  # only to detect a non-object `dataset`
        "dataset.name",
        "dataset.owner",
        "dataset.description",
        "dataset.task_type",
        "dataset.task_attributes",
        "dataset.labelsets",
        "dataset.tasks",
        "tasks",
    }
)
SAMPLE_ARRAYS = ("dataset.samples", "samples")
_DUPLICATE_BLOCK = 1 << 20  # hashes compared at a time when looking for duplicates


@dataclasses.dataclass(frozen=True)
class Duplicates:
    """The later occurrences of sample uuids in a samples array.

    `positions` (ascending) and `firsts` (the position of the first sample with the same
    uuid) are little-endian uint64 arrays as bytes: 16 bytes a duplicate, cheap to pickle.
    """

    positions: bytes = b""
    firsts: bytes = b""

    def __len__(self) -> int:
        return len(self.positions) // 8

    def pairs(self) -> Iterator[tuple[int, int]]:
        """(position, first position), by position."""
        for p, f in zip(np.frombuffer(self.positions, "<u8"), np.frombuffer(self.firsts, "<u8")):
            yield int(p), int(f)


def _uuid_hash(uuid: str) -> int:
    """8 bytes of blake2b; 0 is kept for "no uuid"."""
    digest = hashlib.blake2b(uuid.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


def _duplicates(hashes: array.array) -> Duplicates:
    """Duplicates from one uuid hash per position (0 = no uuid). Memory: a sorted copy of
    the hashes (8 bytes a sample), then a few arrays the size of the duplicated samples."""
    h = np.frombuffer(hashes, dtype=np.uint64)
    s = np.sort(h)
    shared = np.unique(s[1:][s[1:] == s[:-1]])
    del s
    shared = shared[shared != 0]
    if not len(shared):
        return Duplicates()
    parts = []  # positions whose hash is shared, found a block at a time
    for start in range(0, len(h), _DUPLICATE_BLOCK):
        block = h[start:start + _DUPLICATE_BLOCK]
        found = np.minimum(np.searchsorted(shared, block), len(shared) - 1)
        parts.append(np.flatnonzero(shared[found] == block) + start)
    positions = np.concatenate(parts)  # ascending
    grouped = h[positions]
    order = np.argsort(grouped, kind="stable")  # by hash, then position
    grouped, positions = grouped[order], positions[order]
    del order
    first = np.ones(len(grouped), dtype=bool)
    first[1:] = grouped[1:] != grouped[:-1]
    del grouped
    firsts = positions[first][np.cumsum(first) - 1]  # each one's group's first position
    later = ~first
    positions, firsts = positions[later], firsts[later]
    order = np.argsort(positions)
    return Duplicates(positions[order].astype("<u8").tobytes(),
                      firsts[order].astype("<u8").tobytes())


@dataclasses.dataclass
class _SampleStats:
    """What the header scan learns about one samples array, one sample at a time."""

    count: int = 0
    hashes: array.array = dataclasses.field(default_factory=lambda: array.array("Q"))
    oversized: list[int] = dataclasses.field(default_factory=list)
    census: Census | None = None


def _scan_samples(events: Iterator[tuple[str, Any]], source: Events, stats: _SampleStats,
                  where: list[Any], limit: int) -> int:
    """Consumes a samples array (after its start_array): counts the samples, hashes their
    uuids and notes those over `limit` bytes, building none of them; feeds `stats.census`
    when there is one. Returns the deepest level seen (the array is level 1)."""
    count, hashes, oversized = stats.count, stats.hashes, stats.oversized
    feed = stats.census.feed if stats.census is not None else None
    depth, deepest, start, h, want_uuid = 0, 0, 0, 0, False
    where[1] = count
    for event, value in events:
        if event == "map_key":
            if depth == 1:
                want_uuid = value == "uuid"
        elif event in STARTS:
            depth += 1
            if depth == 1:
                start, h = source.offset, 0
            deepest = max(deepest, depth)
            want_uuid = False  # a container is no uuid
        elif event in ENDS:
            if feed is not None and depth > 0:
                feed(event, value, depth)
            depth -= 1
            if depth == 0:
                hashes.append(h)
                if source.offset - start > limit:
                    oversized.append(count)
                count += 1
                where[1] = count
            elif depth < 0:
                break
            continue
        elif depth == 0:  # a sample that is not a container
            hashes.append(0)
            count += 1
            where[1] = count
            continue
        elif want_uuid:
            h = _uuid_hash(value) if event == "string" and value else 0
            want_uuid = False
        if feed is not None:
            feed(event, value, depth)
    stats.count = count
    where[1] = None
    return deepest + 1


def _census(selection: Selection | None) -> Census | None:
    """A census when the selection filters (it costs the scan about a third more time)."""
    if selection is None or (selection.filter_by is None and not selection.filter_by_metadata):
        return None
    return Census(selection.filter_by_metadata)


def scan_header(stream: IO[bytes], selection: Selection | None = None) -> dict[str, Any]:
    """Streams the whole file once; returns header values keyed by ijson prefix.

    Adds, for each samples array found, `"<array>.count"`, `"<array>.oversized"` (positions
    of samples over MAX_VALUE_BYTES of JSON) and `"<array>.duplicates"` (`Duplicates`),
    and `"max_depth"`, the deepest nesting in the file (the top level is 1); with a
    `selection` that filters, `"<array>.census"` too (`census.Census`). Samples are
    never built. Raises `ReleaseError` for invalid or truncated JSON (naming the byte
    offset the parser had read up to), a non-object top level, a header field nested more
    than MAX_DEPTH levels or over MAX_VALUE_BYTES, or a single token (string, number,
    key) over MAX_TOKEN_BYTES anywhere (the parser holds a token whole, and re-reads it
    at every chunk boundary).
    """
    max_value_bytes = jsonstream.MAX_VALUE_BYTES  # read per call (tests lower it)
    source = Events(stream, MAX_TOKEN_BYTES)
    events = iter(source)
    header: dict[str, Any] = {}
    stats: dict[str, _SampleStats] = {}
    where: list[Any] = ["the top level", None]  # field, sample position: for messages
    deepest = 0
    try:
        for prefix, event, value, depth in walk(events, where):
            deepest = max(deepest, depth + (event in STARTS))
            if prefix in SAMPLE_ARRAYS:
                header[prefix] = event  # "start_array" expected; anything else is reported
                array_stats = stats.setdefault(prefix, _SampleStats(census=_census(selection)))
                if event == "start_array":
                    deepest = max(deepest, depth + _scan_samples(
                        events, source, array_stats, where, max_value_bytes))
                elif event in STARTS:
                    deepest = max(deepest, depth + skip(events))
            elif prefix == "dataset":
                header[prefix] = event
                if event == "start_array":
                    deepest = max(deepest, depth + skip(events))
            elif prefix in _HEADER_PREFIXES:
                built = build(event, value, events, source=source, limit=max_value_bytes)
                if isinstance(built, TooDeep):
                    raise errors.ReleaseError(
                        f"{prefix}: nested more than {MAX_DEPTH} levels deep (in {built.member})")
                header[prefix] = built
                deepest = max(deepest, depth + depth_of(built))
            elif event in STARTS:  # not part of the release model: skipped, never built
                deepest = max(deepest, depth + skip(events))
        for _ in events:  # to the end of the file: trailing garbage is an error too
            pass
    except ijson.JSONError as e:
        raise errors.ReleaseError(
            f"release file is not valid JSON (error at or before byte {source.offset}):"
            f" {short_error(e)}") from None
    except ValueTooLong as e:
        at = where[0] if where[1] is None else f"{where[0]}[{where[1]}]"
        raise errors.ReleaseError(
            f"release file: {e.what} of more than {mib(e.limit)}, starting after byte "
            f"{e.start} (in {at}); refused to keep memory bounded") from None
    for prefix, s in stats.items():
        header[prefix + ".count"] = s.count
        header[prefix + ".oversized"] = tuple(s.oversized)
        header[prefix + ".duplicates"] = _duplicates(s.hashes)
        if s.census is not None:
            header[prefix + ".census"] = s.census
    header["max_depth"] = deepest
    return header
