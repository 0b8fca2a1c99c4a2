"""JSON events of a release file with bounded memory, whatever the file holds.

Contract:
  * Nothing recurses, and memory is bounded:
    - a string, number or key over MAX_TOKEN_BYTES anywhere refuses the file (the parser
      holds a token whole), naming the sample position (`Events` raises `ValueTooLong`);
    - a value over MAX_VALUE_BYTES of JSON, or nested more than MAX_DEPTH levels, is never
      built (`build` returns `TooDeep` or raises `ValueTooLong`); deep values outside the
      release model are consumed unbuilt (`skip`).
  * ijson's C builder (fast; its per-level prefixes make memory quadratic in depth) is used
    by `iter_raw_samples`, only where the header scan proved it safe (see `decisions`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import IO, Any

import ijson

from transforms.model import errors

STARTS = frozenset({"start_map", "start_array"})
ENDS = frozenset({"end_map", "end_array"})
_KEPT = frozenset({"uuid", "name"})  # what names a sample that is not built
CHUNK_BYTES = 256 * 1024  # per read; yajl re-reads a token cut by a chunk boundary
# Limits that keep memory bounded whatever the file holds (see the contract).
MAX_DEPTH = 128  # levels of arrays/objects in one sample or header field (itself level 1)
MAX_VALUE_BYTES = 64 * 2**20  # JSON bytes of one sample or header field
MAX_TOKEN_BYTES = 16 * 2**20  # one string, number or key, anywhere in the file


class ValueTooLong(Exception):
    """A token (`Events`) or a value being built (`build`) went past its byte limit."""

    def __init__(self, start: int, limit: int, what: str):
        super().__init__(start, limit, what)
        self.start, self.limit, self.what = start, limit, what


class Events:
    """The basic ijson events of a binary stream (C backend, no prefixes), read in chunks.

    `offset` is the number of bytes handed to the parser so far. The parser holds a token
    (string, number, key) in memory until it ends, so when `limit` bytes go by without a
    single event, `ValueTooLong` is raised instead of reading on.
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
            chunk = self._stream.read(CHUNK_BYTES)
            if not chunk:
                break
            self.offset += len(chunk)
            parser.send(chunk)
            if events:
                mark = self.offset - len(chunk)
                yield events  # consumed before the next chunk is read, then emptied
                del events[:]
            elif self._limit is not None and self.offset - mark > self._limit + CHUNK_BYTES:
                raise ValueTooLong(mark, self._limit, "a JSON string or number")
        parser.close()
        yield events


def walk(events: Iterator[tuple[str, Any]],
          where: list[Any] | None = None) -> Iterator[tuple[str, str, Any, int]]:
    """(ijson prefix, event, value, depth) of each member of the top-level object and of
    a `dataset` object in it; `depth` = containers open around the member (1 or 2).

    The walker descends into `dataset` when it is an object; every other container it
    yields must be consumed by the caller (`build` or `skip`) before the next member.
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


def skip(events: Iterator[tuple[str, Any]], depth: int = 1,
          keep: dict[str, Any] | None = None) -> int:
    """Consumes the rest of a container whose innermost open level is `depth` (the
    container itself is level 1); returns the deepest level seen. `keep` receives the
    container's top-level string members `uuid` and `name` (to name a sample not built)."""
    deepest = depth
    key = None
    for event, value in events:
        if event in STARTS:
            depth += 1
            deepest = max(deepest, depth)
        elif event in ENDS:
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
class TooDeep:
    """What `build` returns for a value nested more than MAX_DEPTH levels deep."""

    member: str  # the member (key, or [index]) of the value in which it got too deep


def build(first: str, first_value: Any, events: Iterator[tuple[str, Any]],
           keep: dict[str, Any] | None = None, source: Events | None = None,
           limit: int = 0) -> Any:
    """The JSON value whose first event is (first, first_value), the rest read from
    `events`, built without recursion (what ijson.items builds, with `use_float`). A value
    nested more than MAX_DEPTH levels is consumed to its end and returned as `TooDeep`:
    nobody ever holds, prints or pickles it. `keep` as in `skip`, for a value returned as
    `TooDeep`. With `source`, a value over `limit` bytes raises `ValueTooLong` as soon as
    it is."""
    if first not in STARTS:
        return first_value
    start = source.offset if source is not None else 0
    root: Any = {} if first == "start_map" else []
    stack: list[Any] = []  # the open containers above `current`
    current, key, member = root, None, ""
    for event, value in events:
        if source is not None and source.offset - start > limit:
            raise ValueTooLong(start, limit, "a JSON value")
        if event == "map_key":
            key = value
        elif event in STARTS:
            if not stack:
                member = key if type(root) is dict else f"[{len(root)}]"
            if len(stack) + 1 >= MAX_DEPTH:  # this container would be level MAX_DEPTH + 1
                if keep is not None and type(root) is dict:
                    keep.update((k, v) for k, v in root.items()
                                if k in _KEPT and isinstance(v, str))
                skip(events, len(stack) + 2, keep)
                return TooDeep(str(member))
            child: Any = {} if event == "start_map" else []
            if type(current) is dict:
                current[key] = child
            else:
                current.append(child)
            stack.append(current)
            current = child
        elif event in ENDS:
            if not stack:
                return root
            current = stack.pop()
        elif type(current) is dict:
            current[key] = value
        else:
            current.append(value)
    return root


def depth_of(value: Any) -> int:
    """Nesting depth of a built value (a scalar is 0), without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            todo.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def mib(n: int) -> str:
    return f"{n / 2**20:g} MiB"


def short_error(e: Exception, limit: int = 200) -> str:
    text = e.args[0] if len(e.args) == 1 else str(e)
    if isinstance(text, bytes):  # yajl's lexical errors come as bytes
        text = text.decode("utf-8", "backslashreplace")
    text = " ".join(str(text).split())  # yajl pads its message with a caret line
    text = text.replace("(right here) ------^", "").strip()
    return text if len(text) <= limit else text[:limit] + "..."


def iter_raw_samples(stream: IO[bytes], prefix: str) -> Iterator[Any]:
    """Yields sample items one at a time (C backend; floats as float, not Decimal)."""
    return ijson.items(stream, prefix, use_float=True, buf_size=CHUNK_BYTES)
