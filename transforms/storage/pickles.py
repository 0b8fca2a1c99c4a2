"""Pickle streams and packed elements: how temporary state is kept between steps and runs.

Contract:
  * A pickle stream is objects pickled one after another (`dump`), read back one at a time
    (`load_all`, `read_pickles`): a file never has to be held whole.
  * `pack` / `unpack`: an element as compact bytes (zlib of its pickle) for a shuffle or a
    ledger entry. Only this run's own files are unpickled: they are private temporary files
    or the ledger the exporter wrote itself.
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Iterable, Iterator
from typing import IO, Any

from transforms.storage.files import open_read


def dump(out: IO[bytes], obj: Any) -> None:
    out.write(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def load_all(stream: IO[bytes]) -> Iterator[Any]:
    """The objects of a pickle stream written with `dump`, one at a time."""
    while True:
        try:
            yield pickle.load(stream)
        except EOFError:
            return


def read_pickles(path: str) -> Iterator[Any]:
    with open_read(path) as f:
        yield from load_all(f)


def pickles_bytes(objs: Iterable[Any]) -> bytes:
    return b"".join(pickle.dumps(o, protocol=pickle.HIGHEST_PROTOCOL) for o in objs)


def pack(obj: Any) -> bytes:
    """An element as compact bytes for a shuffle: the local runner holds grouped values as
    Python objects, and a packed dataclass is several times smaller than the live one."""
    return zlib.compress(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), 1)


def unpack(data: bytes) -> Any:
    return pickle.loads(zlib.decompress(data))
