"""webdataset: tar shards of samples, one record per exported sample.

Contract:
  * Layout: `webdataset/{split}-{k:06d}.tar` (splits train, val, test; `train` without
    --split), shards numbered from 0 in release order; the same samples as the hf-parquet
    shard of the same split and number.
  * A record is the tar members `{key}.{suffix}` of one sample, next to each other, sorted
    by name; records in release order. `key` is the sample's output stem with `%` written
    `%25` and `.` written `%2E` (webdataset splits a member name at the first dot of its
    last path component, so a key has none; folders stay, as `/`).
  * Members: `{key}.{ext}` the image bytes (the original file, or with its EXIF
    orientation set to normal where applying it would turn the image away from its masks:
    `exif.aligned_image`) (`ext` the copied image's extension
    without the dot, lower case: jpg, png, ..., bin for an unknown format);
    `{key}.json` the sample's annotations in COCO form: `{"name", "uuid", "image_id",
    "split", "file_name", "width", "height", "metadata", "annotations": [...], and
    "segments_info": [...] with coco-panoptic}` (annotation ids as in the split's
    coco-instance document); and the exported PNGs: `semantic`, `instance`, `panoptic`,
    `instance_color`, `semantic_color`, each `{key}.{name}.png` with the exported file's
    bytes, except that a 16-bit PNG (gray16 instance ids; semantic values above 255) is
    `{key}.{name}.png16`: webdataset's image decoders convert every image to 8 bits, so
    such a member is left to `wds.handle_extension("png16", ...)`, which reads it losslessly
    (`numpy.asarray(PIL.Image.open(io.BytesIO(data)))` is uint16).
  * Deterministic tar bytes, those Python's tarfile writes in pax format (ustar headers, a
    pax header before a name longer than 100 bytes or not ASCII; padded to 10240-byte
    records): every member a regular file with mode 0644, uid/gid 0, empty owner names,
    mtime 0. Short ASCII headers are built here (tarfile spends ~0.2 ms on each).
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterable
from typing import IO

# Picture format -> member name, in record order.
PICTURE_MEMBERS = (
    ("semantic", "semantic"),
    ("instance", "instance"),
    ("coco-panoptic", "panoptic"),
    ("instance-color", "instance_color"),
    ("semantic-color", "semantic_color"),
)
DIR = "webdataset"


def shard_name(split: str, shard: int) -> str:
    return f"{DIR}/{split}-{shard:06d}.tar"


def record_key(stem: str) -> str:
    return stem.replace("%", "%25").replace(".", "%2E")


def is_16bit_png(data: bytes) -> bool:
    """A PNG whose IHDR says 16 bits per channel."""
    return len(data) > 24 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[24] == 16


def picture_member(key: str, name: str, data: bytes) -> str:
    return f"{key}.{name}.png16" if is_16bit_png(data) else f"{key}.{name}.png"


def record_json(info: dict, annotations: Iterable[str] = ()) -> bytes:
    """`{key}.json`: `info` with sorted keys, and `annotations`, JSON object texts (already
    compact, spliced in as they are: first, as sorted keys put them)."""
    text = json.dumps(info, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    head = '{"annotations":[' + ",".join(annotations) + "]"
    return (head + ("," + text[1:] if len(text) > 2 else "}")).encode("utf-8")


_BLOCK = 512
_RECORD = 20 * _BLOCK  # tar pads the archive to whole records, as tarfile does


def _header(name: str, size: int) -> bytes:
    """The tar header of a regular file, as tarfile's pax format writes it."""
    raw = name.encode("ascii", "ignore")
    if len(raw) == len(name) and len(raw) <= 100:
        fields = [raw.ljust(100, b"\0"), b"0000644\0", b"0000000\0", b"0000000\0",
                  b"%011o\0" % size, b"00000000000\0", b" " * 8, b"0", b"\0" * 100,
                  b"ustar\x0000", b"\0" * 32, b"\0" * 32, b"\0" * 8, b"\0" * 8,
                  b"\0" * 155]
        head = b"".join(fields).ljust(_BLOCK, b"\0")
        checksum = b"%06o\0 " % sum(head)
        return head[:148] + checksum + head[156:]
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid = size, 0, 0o644, 0, 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class TarWriter:
    """Streams records (each a list of (member name, bytes)) into a tar."""

    def __init__(self, out: IO[bytes]):
        self._out, self._written, self.records = out, 0, 0

    def add(self, members: Iterable[tuple[str, bytes]]) -> None:
        self.records += 1
        for name, data in sorted(members):
            head = _header(name, len(data))
            pad = -len(data) % _BLOCK
            self._out.write(head)
            self._out.write(data)
            self._out.write(b"\0" * pad)
            self._written += len(head) + len(data) + pad

    def close(self) -> None:
        end = 2 * _BLOCK
        end += -(self._written + end) % _RECORD
        self._out.write(b"\0" * end)


def write_records(out: IO[bytes], records: Iterable[list[tuple[str, bytes]]]) -> int:
    """Streams records into a tar; returns how many."""
    writer = TarWriter(out)
    for members in records:
        writer.add(members)
    writer.close()
    return writer.records
