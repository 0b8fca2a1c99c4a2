"""Segments.ai release files: layout detection, validation, selection, sample parsing.

Contract:
  * Three layouts are read and normalised to one model (`ReleaseInfo` + `Sample`):
    - "v2" (current): `dataset.{task_type, task_attributes.categories, labelsets[], samples[]}`;
    - "transitional" (late 2020): `dataset.labelsets` is a dict keyed by labelset name whose
      values carry `attributes.categories`;
    - "v1" (2020, seed 002): `tasks` (list, or dict keyed by task name; top level or under
      `dataset`) and `samples` (top level or under `dataset`); labels are keyed by task name,
      so each task is a labelset.
  * The header (everything but the samples) is read with a streaming scan of the whole file:
    memory stays flat, a truncated or invalid file is caught before any work starts, and the
    number of samples is known up front. Samples are then streamed one at a time.
  * Selection follows the SDK (`SegmentsDataset`): a sample's status is
    `labels[labelset].label_status`, or "UNLABELED" when the label is null **or missing**
    (the SDK raises KeyError there); `filter_by` matches case-insensitively; each
    `filter_by_metadata` pair must be present and equal (Python `==`, so "1" != 1) in the
    sample's metadata (a null metadata matches nothing instead of crashing). Status filter
    first, then metadata. The index among selected samples gives `image_id = index + 1`.
  * A selected sample whose label or label attributes are null is *skipped* (it keeps its
    index, as in the SDK). A sample whose JSON is malformed *fails* with the field named
    (stage "read"): a field present with the wrong type (`name`, `uuid`, `labels`, the
    label, `label_status`, label `attributes`, `annotations` and their items,
    `segmentation_bitmap` and its `url`, sample `attributes`, `attributes.image` and its
    `url`) fails the sample; a missing or null one keeps its fallback (name -> uuid ->
    `#position`, no URL). `metadata` is only read by `filter_by_metadata`: any non-object
    value there matches nothing, like null.
  * Shape task types (`bboxes`, `vector`, `keypoints`, `image-vector-sequence`) have no
    bitmap. A sequence sample's frames come from `attributes.frames` (image URL, optional
    name) with the label's `attributes.frames` at the same positions; the samples to
    export number their frames in release order (`Sample.frame_base`), so frame image ids
    are dense and every reader (the run's, the chunked split's) gives the same.
  * Duplicate uuids: the first sample carrying a uuid (in file order, whatever its fate)
    keeps it; every later *selected* sample with the same uuid fails with "uuid: duplicate
    uuid (first at position P)". The header scan finds them from 8-byte hashes (8 bytes a
    sample; a false duplicate needs a 64-bit collision, odds about n^2/2^65: 3e-8 for a
    million samples) and `ReleaseInfo.duplicates` carries them, so the reader, the chunked
    split and `--dry_run` decide alike. Samples without a uuid are never duplicates.
  * Memory is bounded whatever the file holds; nothing recurses:
    - a string, number or key over MAX_TOKEN_BYTES anywhere refuses the file (the parser
      holds a token whole), naming the sample position;
    - a sample over MAX_VALUE_BYTES of JSON, or nested more than MAX_DEPTH levels, fails
      alone and is never built; a header field like that refuses the file; deep values
      outside the release model (unknown top-level keys) are skipped unbuilt;
    - ijson's C builder (fast; its per-level prefixes make memory quadratic in depth) reads
      the samples only when the scan found nothing deeper than MAX_DEPTH and no oversized
      sample; otherwise `_build` (iterative, capped) does, with the same results.
"""

from __future__ import annotations

import array
import dataclasses
import hashlib
import itertools
import math
from collections.abc import Iterator, Mapping
from typing import IO, Any

import ijson
import numpy as np

from transforms.formats import errors
from transforms.formats.types import (
    FORMATS_BY_TASK,
    SEQUENCE_TASKS,
    SHAPE_TASKS,
    Annotation,
    Category,
    Frame,
    Sample,
)

MAX_INSTANCE_ID = (1 << 24) - 1
UNLABELED = "UNLABELED"
DEFAULT_LABELSET = "ground-truth"
DEFAULT_OWNER = "unknown"

# Known task types that this exporter cannot export, with the reason shown to the user.
_UNSUPPORTED_TASKS = {
    "pointcloud-segmentation": "point-cloud releases have no image export format",
    "pointcloud-cuboid": "point-cloud releases have no image export format",
    "pointcloud-vector": "point-cloud releases have no image export format",
    "pointcloud-segmentation-sequence": "point-cloud releases have no image export format",
    "pointcloud-cuboid-sequence": "point-cloud releases have no image export format",
    "pointcloud-vector-sequence": "point-cloud releases have no image export format",
    "multisensor-sequence": "multi-sensor releases have no image export format",
    "image-segmentation-sequence": "sequence bitmaps have no export format yet",
}
# What a user can do instead, by the kind of task type refused.
_INSTEAD = ("export it with the segments-ai SDK or from the Segments.ai web app; this "
            "exporter writes image formats only")

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
_SAMPLE_ARRAYS = ("dataset.samples", "samples")
_STARTS = frozenset({"start_map", "start_array"})
_ENDS = frozenset({"end_map", "end_array"})
_KEPT = frozenset({"uuid", "name"})  # what names a sample that is not built
_CHUNK_BYTES = 256 * 1024  # per read; yajl re-reads a token cut by a chunk boundary
_DUPLICATE_BLOCK = 1 << 20  # hashes compared at a time when looking for duplicates

# Limits that keep memory bounded whatever the file holds (see the contract).
MAX_DEPTH = 128  # levels of arrays/objects in one sample or header field (itself level 1)
MAX_VALUE_BYTES = 64 * 2**20  # JSON bytes of one sample or header field
MAX_TOKEN_BYTES = 16 * 2**20  # one string, number or key, anywhere in the file


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which samples to export (CLI `--labelset`, `--filter_by`, `--filter_by_metadata`)."""

    labelset: str | None = None  # None: "ground-truth" (v2) or the first task (v1)
    filter_by: tuple[str, ...] | None = None  # upper-cased statuses; None keeps all
    filter_by_metadata: tuple[tuple[str, Any], ...] = ()


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


@dataclasses.dataclass(frozen=True)
class ReleaseInfo:
    """Everything about a release except its samples; small, built on the launcher."""

    name: str
    dataset_name: str
    owner: str
    task_type: str
    layout: str  # v2 | transitional | v1
    labelsets: tuple[str, ...]
    labelset: str
    categories: tuple[Category, ...]
    samples_prefix: str  # ijson prefix of sample items, e.g. "dataset.samples.item"
    sample_count: int
    # From the header scan, so that every reader decides alike (see the contract):
    duplicates: Duplicates = Duplicates()
    oversized: tuple[int, ...] = ()  # positions of samples over MAX_VALUE_BYTES of JSON
    max_depth: int = 0  # deepest nesting of arrays/objects in the file (the top level is 1)

    @property
    def formats(self) -> tuple[str, ...]:
        return FORMATS_BY_TASK[self.task_type]


# --------------------------------------------------------------------------- streaming JSON


class _ValueTooLong(Exception):
    """A token (`_Events`) or a value being built (`_build`) went past its byte limit."""

    def __init__(self, start: int, limit: int, what: str):
        super().__init__(start, limit, what)
        self.start, self.limit, self.what = start, limit, what


class _Events:
    """The basic ijson events of a binary stream (C backend, no prefixes), read in chunks.

    `offset` is the number of bytes handed to the parser so far. The parser holds a token
    (string, number, key) in memory until it ends, so when `limit` bytes go by without a
    single event, `_ValueTooLong` is raised instead of reading on.
    """

    def __init__(self, stream: IO[bytes], limit: int | None = None):
        self._stream = stream
        self._limit = limit
        self.offset = 0

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return itertools.chain.from_iterable(self._batches())

    def _batches(self) -> Iterator[list[tuple[str, Any]]]:
        events = ijson.sendable_list()
        parser = ijson.basic_parse_coro(events, use_float=True)
        mark = 0  # where the last chunk that produced an event starts
        while True:
            chunk = self._stream.read(_CHUNK_BYTES)
            if not chunk:
                break
            self.offset += len(chunk)
            parser.send(chunk)
            if events:
                mark = self.offset - len(chunk)
                yield events  # consumed before the next chunk is read, then emptied
                del events[:]
            elif self._limit is not None and self.offset - mark > self._limit + _CHUNK_BYTES:
                raise _ValueTooLong(mark, self._limit, "a JSON string or number")
        parser.close()
        yield events


def _walk(events: Iterator[tuple[str, Any]],
          where: list[Any] | None = None) -> Iterator[tuple[str, str, Any, int]]:
    """(ijson prefix, event, value, depth) of each member of the top-level object and of
    a `dataset` object in it; `depth` = containers open around the member (1 or 2).

    The walker descends into `dataset` when it is an object; every other container it
    yields must be consumed by the caller (`_build` or `_skip`) before the next member.
    `where[0]` is kept at the prefix of the member being read (for messages).
    """
    first = next(events, None)
    if first is None:
        return
    if first[0] != "start_map":
        raise errors.ReleaseError("release file: the top level must be a JSON object")
    path: list[str] = []  # [] in the top-level object, ["dataset"] in the dataset object
    key = ""
    for event, value in events:
        if event == "map_key":
            key = value
            if where is not None:
                where[0] = f"{path[0]}.{key}" if path else key
        elif event == "end_map":
            if not path:
                return
            path.pop()
        else:
            prefix = f"{path[0]}.{key}" if path else key
            yield prefix, event, value, len(path) + 1
            if prefix == "dataset" and event == "start_map":
                path.append("dataset")


def _skip(events: Iterator[tuple[str, Any]], depth: int = 1,
          keep: dict[str, Any] | None = None) -> int:
    """Consumes the rest of a container whose innermost open level is `depth` (the
    container itself is level 1); returns the deepest level seen. `keep` receives the
    container's top-level string members `uuid` and `name` (to name a sample not built)."""
    deepest = depth
    key = None
    for event, value in events:
        if event in _STARTS:
            depth += 1
            deepest = max(deepest, depth)
        elif event in _ENDS:
            depth -= 1
            if depth == 0:
                break
        elif depth == 1 and keep is not None:
            if event == "map_key":
                key = value
            elif event == "string" and key in _KEPT:
                keep[key] = value
    return deepest


@dataclasses.dataclass(frozen=True)
class _TooDeep:
    """What `_build` returns for a value nested more than MAX_DEPTH levels deep."""

    member: str  # the member (key, or [index]) of the value in which it got too deep


def _build(first: str, first_value: Any, events: Iterator[tuple[str, Any]],
           keep: dict[str, Any] | None = None, source: _Events | None = None,
           limit: int = 0) -> Any:
    """The JSON value whose first event is (first, first_value), the rest read from
    `events`, built without recursion (what ijson.items builds, with `use_float`). A value
    nested more than MAX_DEPTH levels is consumed to its end and returned as `_TooDeep`:
    nobody ever holds, prints or pickles it. `keep` as in `_skip`, for a value returned as
    `_TooDeep`. With `source`, a value over `limit` bytes raises `_ValueTooLong` as soon as
    it is."""
    if first not in _STARTS:
        return first_value
    start = source.offset if source is not None else 0
    root: Any = {} if first == "start_map" else []
    stack: list[Any] = []  # the open containers above `current`
    current, key, member = root, None, ""
    for event, value in events:
        if source is not None and source.offset - start > limit:
            raise _ValueTooLong(start, limit, "a JSON value")
        if event == "map_key":
            key = value
        elif event in _STARTS:
            if not stack:
                member = key if type(root) is dict else f"[{len(root)}]"
            if len(stack) + 1 >= MAX_DEPTH:  # this container would be level MAX_DEPTH + 1
                if keep is not None and type(root) is dict:
                    keep.update((k, v) for k, v in root.items()
                                if k in _KEPT and isinstance(v, str))
                _skip(events, len(stack) + 2, keep)
                return _TooDeep(str(member))
            child: Any = {} if event == "start_map" else []
            if type(current) is dict:
                current[key] = child
            else:
                current.append(child)
            stack.append(current)
            current = child
        elif event in _ENDS:
            if not stack:
                return root
            current = stack.pop()
        elif type(current) is dict:
            current[key] = value
        else:
            current.append(value)
    return root


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


def _scan_samples(events: Iterator[tuple[str, Any]], source: _Events, stats: _SampleStats,
                  where: list[Any], limit: int) -> int:
    """Consumes a samples array (after its start_array): counts the samples, hashes their
    uuids and notes those over `limit` bytes, building none of them. Returns the deepest
    level seen (the array is level 1)."""
    count, hashes, oversized = stats.count, stats.hashes, stats.oversized
    depth, deepest, start, h, want_uuid = 0, 0, 0, 0, False
    where[1] = count
    for event, value in events:
        if event == "map_key":
            if depth == 1:
                want_uuid = value == "uuid"
        elif event in _STARTS:
            depth += 1
            if depth == 1:
                start, h = source.offset, 0
            deepest = max(deepest, depth)
            want_uuid = False  # a container is no uuid
        elif event in _ENDS:
            depth -= 1
            if depth == 0:
                hashes.append(h)
                if source.offset - start > limit:
                    oversized.append(count)
                count += 1
                where[1] = count
            elif depth < 0:
                break
        elif depth == 0:  # a sample that is not a container
            hashes.append(0)
            count += 1
            where[1] = count
        elif want_uuid:
            h = _uuid_hash(value) if event == "string" and value else 0
            want_uuid = False
    stats.count = count
    where[1] = None
    return deepest + 1


def _depth(value: Any) -> int:
    """Nesting depth of a built value (a scalar is 0), without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            todo.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def scan_header(stream: IO[bytes]) -> dict[str, Any]:
    """Streams the whole file once; returns header values keyed by ijson prefix.

    Adds, for each samples array found, `"<array>.count"`, `"<array>.oversized"` (positions
    of samples over MAX_VALUE_BYTES of JSON) and `"<array>.duplicates"` (`Duplicates`),
    and `"max_depth"`, the deepest nesting in the file (the top level is 1). Samples are
    never built. Raises `ReleaseError` for invalid or truncated JSON (naming the byte
    offset the parser had read up to), a non-object top level, a header field nested more
    than MAX_DEPTH levels or over MAX_VALUE_BYTES, or a single token (string, number,
    key) over MAX_TOKEN_BYTES anywhere (the parser holds a token whole, and re-reads it
    at every chunk boundary).
    """
    max_value_bytes = MAX_VALUE_BYTES
    source = _Events(stream, MAX_TOKEN_BYTES)
    events = iter(source)
    header: dict[str, Any] = {}
    stats: dict[str, _SampleStats] = {}
    where: list[Any] = ["the top level", None]  # field, sample position: for messages
    deepest = 0
    try:
        for prefix, event, value, depth in _walk(events, where):
            deepest = max(deepest, depth + (event in _STARTS))
            if prefix in _SAMPLE_ARRAYS:
                header[prefix] = event  # "start_array" expected; anything else is reported
                array_stats = stats.setdefault(prefix, _SampleStats())
                if event == "start_array":
                    deepest = max(deepest, depth + _scan_samples(
                        events, source, array_stats, where, max_value_bytes))
                elif event in _STARTS:
                    deepest = max(deepest, depth + _skip(events))
            elif prefix == "dataset":
                header[prefix] = event
                if event == "start_array":
                    deepest = max(deepest, depth + _skip(events))
            elif prefix in _HEADER_PREFIXES:
                built = _build(event, value, events, source=source, limit=max_value_bytes)
                if isinstance(built, _TooDeep):
                    raise errors.ReleaseError(
                        f"{prefix}: nested more than {MAX_DEPTH} levels deep (in {built.member})")
                header[prefix] = built
                deepest = max(deepest, depth + _depth(built))
            elif event in _STARTS:  # not part of the release model: skipped, never built
                deepest = max(deepest, depth + _skip(events))
        for _ in events:  # to the end of the file: trailing garbage is an error too
            pass
    except ijson.JSONError as e:
        raise errors.ReleaseError(
            f"release file is not valid JSON (error at or before byte {source.offset}):"
            f" {_short(e)}") from None
    except _ValueTooLong as e:
        at = where[0] if where[1] is None else f"{where[0]}[{where[1]}]"
        raise errors.ReleaseError(
            f"release file: {e.what} of more than {_mib(e.limit)}, starting after byte "
            f"{e.start} (in {at}); refused to keep memory bounded") from None
    for prefix, s in stats.items():
        header[prefix + ".count"] = s.count
        header[prefix + ".oversized"] = tuple(s.oversized)
        header[prefix + ".duplicates"] = _duplicates(s.hashes)
    header["max_depth"] = deepest
    return header


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB"


def _short(e: Exception, limit: int = 200) -> str:
    text = e.args[0] if len(e.args) == 1 else str(e)
    if isinstance(text, bytes):  # yajl's lexical errors come as bytes
        text = text.decode("utf-8", "backslashreplace")
    text = " ".join(str(text).split())  # yajl pads its message with a caret line
    text = text.replace("(right here) ------^", "").strip()
    return text if len(text) <= limit else text[:limit] + "..."


def release_info(header: Mapping[str, Any], selection: Selection) -> ReleaseInfo:
    """Detects the layout, validates the header and the selection; names the bad field."""
    if "dataset" in header and header["dataset"] != "start_map":
        raise errors.ReleaseError("dataset: expected an object")
    tasks = header.get("tasks", header.get("dataset.tasks"))
    labelsets_raw = header.get("dataset.labelsets")
    if tasks is not None and "dataset.task_type" not in header:
        layout = "v1"
    elif isinstance(labelsets_raw, Mapping):
        layout = "transitional"
    else:
        layout = "v2"

    if layout == "v1":
        tasks_field = "tasks" if "tasks" in header else "dataset.tasks"
        task_list = _v1_tasks(tasks, tasks_field)
        labelsets = tuple(name for name, _ in task_list)
        labelset = selection.labelset or labelsets[0]
        _check_labelset(labelset, labelsets)
        task = dict(task_list)[labelset]
        task_field = f"{tasks_field}[{labelsets.index(labelset)}]"
        task_type = _require_str(task, "task_type", task_field)
        cats_raw = _dig(task, ("attributes", "categories"), task_field)
        cats_field = f"{task_field}.attributes.categories"
        dataset_name = _opt_str(header, "dataset.name") or _opt_str(header, "name") or "dataset"
    else:
        task_type = _require_header_str(header, "dataset.task_type")
        dataset_name = _require_header_str(header, "dataset.name")
        if layout == "transitional":
            labelsets = tuple(str(k) for k in labelsets_raw)
            labelset = selection.labelset or DEFAULT_LABELSET
            _check_labelset(labelset, labelsets)
            cats_field = f"dataset.labelsets.{labelset}.attributes.categories"
            cats_raw = _dig(labelsets_raw[labelset], ("attributes", "categories"), cats_field)
        else:
            if labelsets_raw is None:
                raise errors.ReleaseError("dataset.labelsets: missing")
            if not isinstance(labelsets_raw, list):
                raise errors.ReleaseError("dataset.labelsets: expected a list")
            names = []
            for i, ls in enumerate(labelsets_raw):
                if not isinstance(ls, Mapping) or not isinstance(ls.get("name"), str):
                    raise errors.ReleaseError(f"dataset.labelsets[{i}].name: expected a string")
                names.append(ls["name"])
            labelsets = tuple(names)
            labelset = selection.labelset or DEFAULT_LABELSET
            _check_labelset(labelset, labelsets)
            attrs = header.get("dataset.task_attributes")
            if not isinstance(attrs, Mapping):
                raise errors.ReleaseError("dataset.task_attributes: expected an object")
            cats_raw = attrs.get("categories")
            cats_field = "dataset.task_attributes.categories"

    if task_type not in FORMATS_BY_TASK:
        supported = ", ".join(FORMATS_BY_TASK)
        why = _UNSUPPORTED_TASKS.get(task_type, "unknown task type")
        raise errors.ReleaseError(
            f"dataset.task_type: {_brief(task_type)} cannot be exported ({why});"
            f" supported: {supported}"
            + (f"; {_INSTEAD}" if task_type in _UNSUPPORTED_TASKS else "")
        )
    categories = parse_categories(cats_raw, cats_field)

    prefixes = [p for p in _SAMPLE_ARRAYS if p in header]
    preferred = "dataset.samples" if layout != "v1" else None
    array = preferred if preferred in prefixes else (prefixes[0] if prefixes else None)
    if array is None:
        raise errors.ReleaseError("dataset.samples: missing")
    if header[array] != "start_array":
        raise errors.ReleaseError(f"{array}: expected a list of samples")
    release_name = _opt_str(header, "name")
    if release_name is None and layout != "v1":
        raise errors.ReleaseError("name: missing (the release name)")
    return ReleaseInfo(
        name=release_name or "release",
        dataset_name=dataset_name,
        owner=_opt_str(header, "dataset.owner") or DEFAULT_OWNER,
        task_type=task_type,
        layout=layout,
        labelsets=labelsets,
        labelset=labelset,
        categories=categories,
        samples_prefix=array + ".item",
        sample_count=int(header[array + ".count"]),
        duplicates=header.get(array + ".duplicates", Duplicates()),
        oversized=tuple(header.get(array + ".oversized", ())),
        max_depth=int(header.get("max_depth", 0)),
    )


def _v1_tasks(tasks: Any, field: str) -> list[tuple[str, Mapping[str, Any]]]:
    if isinstance(tasks, Mapping):
        items = [(str(k), v) for k, v in tasks.items()]
    elif isinstance(tasks, list):
        items = []
        for i, t in enumerate(tasks):
            if not isinstance(t, Mapping) or not isinstance(t.get("name"), str):
                raise errors.ReleaseError(f"{field}[{i}].name: expected a string")
            items.append((t["name"], t))
    else:
        raise errors.ReleaseError(f"{field}: expected a list or an object")
    if not items:
        raise errors.ReleaseError(f"{field}: no tasks")
    for name, t in items:
        if not isinstance(t, Mapping):
            raise errors.ReleaseError(f"{field}.{name}: expected an object")
    return items


def _check_labelset(labelset: str, labelsets: tuple[str, ...]) -> None:
    if labelset not in labelsets:
        available = ", ".join(labelsets) or "none"
        raise errors.ReleaseError(
            f"--labelset: no labelset named {labelset!r} in this release (available: {available})"
        )


def _dig(obj: Any, keys: tuple[str, ...], field: str) -> Any:
    for k in keys:
        if not isinstance(obj, Mapping):
            raise errors.ReleaseError(f"{field}: expected an object")
        obj = obj.get(k)
    return obj


def _opt_str(header: Mapping[str, Any], key: str) -> str | None:
    v = header.get(key)
    return v if isinstance(v, str) and v else None


def _require_header_str(header: Mapping[str, Any], key: str) -> str:
    if key not in header:
        raise errors.ReleaseError(f"{key}: missing")
    v = header[key]
    if not isinstance(v, str):
        raise errors.ReleaseError(f"{key}: expected a string, got {type(v).__name__}")
    return v


def _require_str(obj: Mapping[str, Any], key: str, field: str) -> str:
    v = obj.get(key)
    if not isinstance(v, str):
        raise errors.ReleaseError(f"{field}.{key}: expected a string")
    return v


def parse_categories(raw: Any, field: str) -> tuple[Category, ...]:
    """Validates the taxonomy; every problem names `field[i].key`."""
    if raw is None:
        raise errors.ReleaseError(f"{field}: missing")
    if not isinstance(raw, list):
        raise errors.ReleaseError(f"{field}: expected a list")
    out, seen = [], set()
    for i, c in enumerate(raw):
        f = f"{field}[{i}]"
        if not isinstance(c, Mapping):
            raise errors.ReleaseError(f"{f}: expected an object")
        cid = c.get("id")
        if not _is_int(cid):
            raise errors.ReleaseError(f"{f}.id: expected an integer, got {_brief(cid)}")
        cid = int(cid)
        if cid in seen:
            raise errors.ReleaseError(f"{f}.id: duplicate category id {cid}")
        seen.add(cid)
        name = c.get("name")
        if not isinstance(name, str):
            raise errors.ReleaseError(f"{f}.name: expected a string")
        has_instances = c.get("has_instances")
        if has_instances is not None and not isinstance(has_instances, bool):
            raise errors.ReleaseError(f"{f}.has_instances: expected true, false or null")
        out.append(
            Category(
                id=cid,
                name=name,
                color=_parse_color(c.get("color"), f + ".color"),
                has_instances=bool(has_instances),
                raw=tuple(c.items()),
            )
        )
    return tuple(out)


def _parse_color(raw: Any, field: str) -> tuple[int, int, int] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) not in (3, 4):
        raise errors.ReleaseError(f"{field}: expected 3 or 4 numbers (RGB or RGBA)")
    rgb = []
    for v in raw[:3]:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 255:
            raise errors.ReleaseError(f"{field}: values must be numbers in [0, 255], got {raw}")
        rgb.append(int(math.floor(v + 0.5)))  # fractional colours are rounded, not rejected
    return (rgb[0], rgb[1], rgb[2])


def _is_int(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and v.is_integer())


# --------------------------------------------------------------------------- samples


def iter_raw_samples(stream: IO[bytes], prefix: str) -> Iterator[Any]:
    """Yields sample items one at a time (C backend; floats as float, not Decimal)."""
    return ijson.items(stream, prefix, use_float=True, buf_size=_CHUNK_BYTES)


@dataclasses.dataclass(frozen=True)
class _Unreadable:
    """A sample item that is not built (too deep or too large): why, and its name/uuid."""

    reason: str
    identity: Mapping[str, str]


def _capped_items(stream: IO[bytes], info: ReleaseInfo) -> Iterator[Any]:
    """The sample items `iter_raw_samples` yields, built by `_build` from basic events: a
    sample nested more than MAX_DEPTH levels deep, or listed in `info.oversized`, comes as
    `_Unreadable` and is never held in memory."""
    array_prefix = info.samples_prefix[: -len(".item")]
    oversized = frozenset(info.oversized)
    events = iter(_Events(stream))
    position = 0
    for prefix, event, value, _ in _walk(events):
        if prefix == array_prefix and event == "start_array":
            for event, value in events:
                if event == "end_array":
                    break
                keep: dict[str, str] = {}
                if position in oversized:
                    if event in _STARTS:
                        _skip(events, 1, keep)
                    yield _Unreadable(
                        f"sample: more than {_mib(MAX_VALUE_BYTES)} of JSON (the limit that "
                        "keeps memory bounded)", keep)
                else:
                    item = _build(event, value, events, keep)
                    if isinstance(item, _TooDeep):
                        field = item.member if event == "start_map" else f"sample{item.member}"
                        item = _Unreadable(f"{field}: nested more than {MAX_DEPTH} levels deep",
                                           keep)
                    yield item
                position += 1
        elif event in _STARTS and not (prefix == "dataset" and event == "start_map"):
            _skip(events)


def _sample_items(stream: IO[bytes], info: ReleaseInfo) -> Iterator[Any]:
    """The samples, from ijson's C builder when the header scan proved it safe (nothing
    nested deeper than MAX_DEPTH, no oversized sample; its per-level prefixes make memory
    quadratic in depth: 100,000 nested `[` would take 25 GB), else from `_capped_items`."""
    if info.max_depth <= MAX_DEPTH and not info.oversized:
        return iter_raw_samples(stream, info.samples_prefix)
    return _capped_items(stream, info)


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _brief(value: Any, limit: int = 60) -> str:
    """repr() cut to `limit` characters: a message stays one short line whatever the file."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def sample_status(raw: Any, labelset: str) -> str:
    """The SDK's status: label_status, or UNLABELED for a null or missing label."""
    if not isinstance(raw, Mapping):
        raise errors.SampleSchemaError(f"sample: expected an object, got {_kind(raw)}")
    labels = raw.get("labels")
    if labels is None:
        return UNLABELED
    if not isinstance(labels, Mapping):
        raise errors.SampleSchemaError(
            f"labels: expected an object keyed by labelset, got {_kind(labels)}")
    label = labels.get(labelset)
    if label is None:
        return UNLABELED
    if not isinstance(label, Mapping):
        raise errors.SampleSchemaError(
            f"labels.{labelset}: expected an object or null, got {_kind(label)}")
    status = label.get("label_status")
    if not isinstance(status, str):
        raise errors.SampleSchemaError(
            f"labels.{labelset}.label_status: expected a string, got {_kind(status)}")
    return status.upper()


def filter_reason(raw: Mapping[str, Any], status: str, selection: Selection) -> str | None:
    """Why the selection drops this sample, or None when it is selected."""
    if selection.filter_by is not None and status not in selection.filter_by:
        return f"filtered out by --filter_by (status {status})"
    if selection.filter_by_metadata:
        metadata = raw.get("metadata")
        if not isinstance(metadata, Mapping):
            return "filtered out by --filter_by_metadata (no metadata)"
        for key, value in selection.filter_by_metadata:
            if key not in metadata or metadata[key] != value:
                return f"filtered out by --filter_by_metadata ({key})"
    return None


def identity(raw: Any, position: int) -> tuple[str, str]:
    """(uuid, name) for reports, tolerant of any junk."""
    if not isinstance(raw, Mapping):
        return "", f"#{position}"
    uuid = raw.get("uuid")
    name = raw.get("name")
    uuid = uuid if isinstance(uuid, str) else ("" if uuid is None else str(uuid))
    name = name if isinstance(name, str) and name else (uuid or f"#{position}")
    return uuid, name


def check_identity(raw: Mapping[str, Any]) -> None:
    """`uuid` and `name` are strings when present (missing or null: `identity` falls back)."""
    for key in ("uuid", "name"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise errors.SampleSchemaError(f"{key}: expected a string, got {_kind(value)}")


def skip_reason(raw: Mapping[str, Any], labelset: str) -> str | None:
    """Why a selected sample has nothing to export (the SDK skips these too)."""
    label = (raw.get("labels") or {}).get(labelset)
    if label is None:
        return "no label in this labelset"
    if label.get("attributes") is None:
        return f"label attributes are null (status {label.get('label_status')})"
    return None


def parse_sample(raw: Mapping[str, Any], position: int, index: int, info: ReleaseInfo,
                 frame_base: int = 0) -> Sample:
    """A selected, labelled raw sample -> Sample. Raises SampleSchemaError naming the field.

    Sequences (`image-vector-sequence`): the sample's `attributes.frames[j].image.url` and
    `name`, with the label's `attributes.frames[j].annotations`; `frame_base` as in
    `types.Sample`.
    """
    uuid, name = identity(raw, position)
    ls = info.labelset
    label = raw["labels"][ls]
    attrs = label["attributes"]
    base = f"labels.{ls}.attributes"
    if not isinstance(attrs, Mapping):
        raise errors.SampleSchemaError(f"{base}: expected an object, got {_kind(attrs)}")
    vector = info.task_type in SHAPE_TASKS
    status = str(label.get("label_status", "")).upper()
    sample_attrs = _optional_object(raw, "attributes", "attributes")
    if info.task_type in SEQUENCE_TASKS:
        frames, extra = _frames(sample_attrs, attrs, base)
        return Sample(index=index, position=position, uuid=uuid, name=name, image_url=None,
                      label_status=status, annotations=(), bitmap_url=None, frames=frames,
                      frame_base=frame_base, extra_label_frames=extra)
    annotations = _annotations(attrs, base, vector)
    bitmap_url = None
    if not vector:  # vector labels have no bitmap: whatever is there is not read
        bitmap_url = _optional_url(attrs, "segmentation_bitmap", base)
    image_url = _optional_url(sample_attrs, "image", "attributes")
    return Sample(
        index=index,
        position=position,
        uuid=uuid,
        name=name,
        image_url=image_url,
        label_status=status,
        annotations=annotations,
        bitmap_url=bitmap_url,
    )


def _annotations(attrs: Mapping[str, Any], base: str, vector: bool) -> tuple[Annotation, ...]:
    """`attrs.annotations` (missing or null: none), each checked, naming the field."""
    anns_raw = attrs.get("annotations")
    if anns_raw is None:
        anns_raw = []
    if not isinstance(anns_raw, list):
        raise errors.SampleSchemaError(
            f"{base}.annotations: expected a list, got {_kind(anns_raw)}")
    annotations, seen = [], set()
    for i, a in enumerate(anns_raw):
        f = f"{base}.annotations[{i}]"
        if not isinstance(a, Mapping):
            raise errors.SampleSchemaError(f"{f}: expected an object, got {_kind(a)}")
        aid, cid = a.get("id"), a.get("category_id")
        if vector:  # ids only name objects here; they index no bitmap
            if aid is not None and not _is_int(aid):
                raise errors.SampleSchemaError(f"{f}.id: expected an integer, got {_brief(aid)}")
        elif not _is_int(aid) or not 1 <= aid <= MAX_INSTANCE_ID:
            raise errors.SampleSchemaError(
                f"{f}.id: expected an integer in 1..{MAX_INSTANCE_ID}, got {_brief(aid)}"
            )
        if not _is_int(cid):
            raise errors.SampleSchemaError(
                f"{f}.category_id: expected an integer, got {_brief(cid)}")
        aid = int(aid) if aid is not None else 0
        if not vector:
            if aid in seen:
                raise errors.SampleSchemaError(f"{f}.id: duplicate annotation id {aid}")
            seen.add(aid)
        obj_attrs = a.get("attributes")
        if obj_attrs is not None and not isinstance(obj_attrs, Mapping):
            raise errors.SampleSchemaError(
                f"{f}.attributes: expected an object or null, got {_kind(obj_attrs)}")
        kind, points = (_vector_shape(a, f) if vector else (None, ()))
        annotations.append(
            Annotation(
                id=aid,
                category_id=int(cid),
                attributes=tuple(obj_attrs.items()) if isinstance(obj_attrs, Mapping) else None,
                type=kind,
                points=points,
            )
        )
    return tuple(annotations)


def _frames(sample_attrs: Mapping[str, Any], attrs: Mapping[str, Any],
            base: str) -> tuple[tuple[Frame, ...], int]:
    """(frames, label frames without a sample frame) of a sequence: one frame per
    `attributes.frames` item of the sample, with the annotations of the label frame at the
    same position. Label frames beyond the sample's frames have no image: they are not
    read, only counted (the export reports them)."""
    raw_frames = sample_attrs.get("frames")
    if not isinstance(raw_frames, list):
        raise errors.SampleSchemaError(
            f"attributes.frames: expected a list of frames, got {_kind(raw_frames)}")
    label_frames = attrs.get("frames")
    if label_frames is None:
        label_frames = []
    if not isinstance(label_frames, list):
        raise errors.SampleSchemaError(
            f"{base}.frames: expected a list, got {_kind(label_frames)}")
    frames = []
    for j, fr in enumerate(raw_frames):
        field = f"attributes.frames[{j}]"
        if not isinstance(fr, Mapping):
            raise errors.SampleSchemaError(f"{field}: expected an object, got {_kind(fr)}")
        name = fr.get("name")
        if name is not None and not isinstance(name, str):
            raise errors.SampleSchemaError(f"{field}.name: expected a string, got {_kind(name)}")
        annotations: tuple[Annotation, ...] = ()
        if j < len(label_frames) and label_frames[j] is not None:
            lf = label_frames[j]
            if not isinstance(lf, Mapping):
                raise errors.SampleSchemaError(
                    f"{base}.frames[{j}]: expected an object, got {_kind(lf)}")
            annotations = _annotations(lf, f"{base}.frames[{j}]", True)
        frames.append(Frame(image_url=_optional_url(fr, "image", field),
                            name=name, annotations=annotations))
    return tuple(frames), len(label_frames) - len(frames) if len(label_frames) > len(frames) else 0


def _optional_object(obj: Mapping[str, Any], key: str, field: str) -> Mapping[str, Any]:
    """obj[key] when it is an object, {} when missing or null; anything else fails."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise errors.SampleSchemaError(f"{field}: expected an object, got {_kind(value)}")
    return value


def _optional_url(obj: Mapping[str, Any], key: str, field: str) -> str | None:
    """obj[key].url: None when the object or its url is missing, null or ""; a value of
    another type fails, naming the field."""
    url = _optional_object(obj, key, f"{field}.{key}").get("url")
    if url is not None and not isinstance(url, str):
        raise errors.SampleSchemaError(f"{field}.{key}.url: expected a string, got {_kind(url)}")
    return url or None


def _vector_shape(a: Mapping[str, Any], field: str) -> tuple[str, tuple[tuple[float, float], ...]]:
    """(type, points) of a vector annotation; every point a finite [x, y] pair."""
    kind = a.get("type")
    if not isinstance(kind, str):
        raise errors.SampleSchemaError(f"{field}.type: expected a string, got {_brief(kind)}")
    raw = a.get("points")
    if not isinstance(raw, list):
        raise errors.SampleSchemaError(f"{field}.points: expected a list of [x, y] points")
    points = []
    for k, p in enumerate(raw):
        if (not isinstance(p, list) or len(p) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           and math.isfinite(v) for v in p)):
            raise errors.SampleSchemaError(
                f"{field}.points[{k}]: expected [x, y] numbers, got {_brief(p)}")
        points.append((float(p[0]), float(p[1])))
    return kind, tuple(points)


@dataclasses.dataclass(frozen=True)
class Decision:
    """What happens to one sample of the release (the reader's and --dry_run's rules)."""

    position: int
    uuid: str
    name: str
    status: str | None  # label status; None when the sample is too malformed to tell
    sample: Sample | None = None  # set when the sample is to be exported
    skipped: str | None = None  # reason, when skipped (filtered out, no label, ...)
    failed: errors.SampleError | None = None  # when malformed
    image_id: int | None = None  # selected samples keep their number even when skipped

    @property
    def selected(self) -> bool:
        return self.image_id is not None


def decide(stream: IO[bytes], info: ReleaseInfo, selection: Selection) -> Iterator[Decision]:
    """Streams the samples and decides each one's fate, in release order."""
    later = info.duplicates.pairs()
    duplicate = next(later, None)
    index = 0
    frames = 0  # sequences: frames of the samples to export so far (`Sample.frame_base`)
    for position, raw in enumerate(_sample_items(stream, info)):
        first = None
        if duplicate is not None and duplicate[0] == position:
            first, duplicate = duplicate[1], next(later, None)
        if isinstance(raw, _Unreadable):
            uuid, name = identity(raw.identity, position)
            yield Decision(position, uuid, name, None,
                           failed=errors.SampleSchemaError(raw.reason))
            continue
        uuid, name = identity(raw, position)
        try:
            status = sample_status(raw, info.labelset)
        except errors.SampleError as e:
            yield Decision(position, uuid, name, None, failed=e)
            continue
        reason = filter_reason(raw, status, selection)
        if reason is not None:
            yield Decision(position, uuid, name, status, skipped=reason)
            continue
        image_id = index + 1
        index += 1
        try:
            check_identity(raw)
            if first is not None:
                raise errors.SampleSchemaError(f"uuid: duplicate uuid (first at position {first})")
            reason = skip_reason(raw, info.labelset)
            sample = (parse_sample(raw, position, image_id - 1, info, frames)
                      if reason is None else None)
        except errors.SampleError as e:
            yield Decision(position, uuid, name, status, failed=e, image_id=image_id)
        else:
            if sample is not None and sample.frames is not None:
                frames += len(sample.frames)
            yield Decision(position, uuid, name, status, sample=sample, skipped=reason,
                           image_id=image_id)


def plan(stream: IO[bytes], info: ReleaseInfo, selection: Selection) -> dict[str, Any]:
    """What an export would do, without fetching anything (`--dry_run`): `decide` counted."""
    statuses: dict[str, int] = {}
    skipped: dict[str, int] = {}
    malformed: list[str] = []
    to_export = failing = 0
    for d in decide(stream, info, selection):
        if d.status is not None:
            statuses[d.status] = statuses.get(d.status, 0) + 1
        if d.skipped is not None:
            skipped[d.skipped] = skipped.get(d.skipped, 0) + 1
        elif d.failed is not None:
            failing += 1
            malformed.append(f"#{d.position}: {d.failed.reason}")
        else:
            to_export += 1
    return {"samples": info.sample_count, "statuses": dict(sorted(statuses.items())),
            "to_export": to_export, "skipped": dict(sorted(skipped.items())),
            "malformed": failing, "malformed_examples": malformed[:10]}


def parse_metadata_filters(pairs: list[str]) -> tuple[tuple[str, Any], ...]:
    """CLI `key=value` pairs. The value is read as JSON when it parses (`n=1` is the number
    1, `ok=true` a boolean, `s="1"` the string "1"), else taken as a plain string."""
    import json

    out = []
    for pair in pairs:
        if "=" not in pair:
            raise errors.ReleaseError(f"--filter_by_metadata: expected key=value, got {pair!r}")
        key, text = pair.split("=", 1)
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        out.append((key, value))
    return tuple(out)
