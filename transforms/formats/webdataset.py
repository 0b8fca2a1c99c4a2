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
  * Deterministic tar bytes: POSIX (pax) format, every member a regular file with mode 0644,
    uid/gid 0, empty owner names, mtime 0.
"""

from __future__ import annotations

import io
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


def record_json(info: dict) -> bytes:
    return json.dumps(info, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def write_records(out: IO[bytes], records: Iterable[list[tuple[str, bytes]]]) -> int:
    """Streams records (each a list of (member name, bytes)) into a tar; returns the count."""
    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for members in records:
            count += 1
            for name, data in sorted(members):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = 0
                info.mode = 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    return count
