"""COCO documents assembled from per-sample parts without holding the whole document.

Contract:
  * A document is `{"info", "categories", "images": [...], "annotations": [...]}`, written
    compact (no spaces), UTF-8, keys in a fixed order.
  * `images` are in image-id order (release order). coco-instance annotation ids are dense,
    start at 1 and follow (image id, annotation-list order): the id of an annotation is its
    shard's offset (sum of the annotation counts of all earlier shards) plus its rank inside
    the shard. Nothing depends on processing order, so every runner gives the same bytes.
  * Per-sample parts cross the shuffle packed (`pack_part`: zlib of the JSON texts).
  * Shards are consecutive ranges of `shard_size` sample indexes. Each shard is written as two
    fragments (comma-joined image objects and annotation objects); the final document is the
    header, then the fragments streamed in shard order.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import IO

from transforms.formats.sample_export import dumps
from transforms.model.taxonomy import Taxonomy
from transforms.model.types import Category

DEFAULT_SHARD_SIZE = 1000
_BUFFER = 1 << 20


def info(release_name: str, dataset_name: str) -> dict:
    return {"description": dataset_name, "version": release_name}


def instance_category(category: Category) -> dict:
    """The SDK's category object: id, name, color (ints, or null), attributes (or null),
    then every other key of the release's category in its original order."""
    raw = category.raw_dict()
    color = raw.get("color")
    out = {
        "id": category.id,
        "name": category.name,
        "color": None if color is None else [int(math.floor(v + 0.5)) for v in color],
        "attributes": raw.get("attributes"),
    }
    out.update((k, v) for k, v in raw.items() if k not in out)
    return out


def instance_header(release_name: str, dataset_name: str, taxonomy: Taxonomy,
                    keypoints: bool = False) -> dict:
    """With `keypoints` (task types whose labels can hold points), every category also gets
    `keypoints: [its name]` and `skeleton: []`: a point is one keypoint of its category
    (see `vector`)."""
    cats = [instance_category(c) for c in taxonomy.categories]
    if keypoints:
        cats = [{**c, "keypoints": [c["name"]], "skeleton": []} for c in cats]
    return {"info": info(release_name, dataset_name), "categories": cats}


def panoptic_header(release_name: str, dataset_name: str, taxonomy: Taxonomy) -> dict:
    return {"info": info(release_name, dataset_name),
            "categories": taxonomy.panoptic_categories()}


def with_id(body: str, ann_id: int) -> str:
    """Prefixes `"id":N` to a JSON object text (annotation ids are known only per shard)."""
    return '{"id":%d,%s' % (ann_id, body[1:]) if body != "{}" else '{"id":%d}' % ann_id


def shard_offsets(totals: Mapping[int, int]) -> dict[int, int]:
    """Annotations before each shard (prefix sums in shard order)."""
    out, running = {}, 0
    for shard in sorted(totals):
        out[shard] = running
        running += totals[shard]
    return out


def pack_part(index: int, image: str | None, bodies: Sequence[str]) -> tuple[int, int, bytes]:
    """One sample's share of a COCO document as it crosses the shuffle: (sample index,
    number of annotations, zlib of the JSON texts). RLE-heavy JSON shrinks about 5x, which
    is what a runner buffers or a Dataflow shuffle moves. JSON texts hold no raw newline."""
    text = "\n".join([image or "", *bodies])
    return index, len(bodies), zlib.compress(text.encode("utf-8"), 1)


def unpack_part(part: tuple[int, int, bytes]) -> tuple[int, str | None, list[str]]:
    index, _, blob = part
    image, *bodies = zlib.decompress(blob).decode("utf-8").split("\n")
    return index, image or None, bodies


def shard_fragments(
    parts: Iterable[tuple[int, int, bytes]], first_id: int | None
) -> tuple[bytes, bytes]:
    """(images fragment, annotations fragment) of one shard, in sample-index order.

    `parts` are `pack_part` tuples. With `first_id`, annotations get ids from it
    (coco-instance); with None they are complete already (coco-panoptic).
    """
    images, anns = [], []
    next_id = first_id
    for part in sorted(parts, key=lambda p: p[0]):
        _, image, bodies = unpack_part(part)
        if image is not None:
            images.append(image)
        for body in bodies:
            if next_id is None:
                anns.append(body)
            else:
                anns.append(with_id(body, next_id))
                next_id += 1
    return ",".join(images).encode("utf-8"), ",".join(anns).encode("utf-8")


def write_document(
    out: IO[bytes],
    header: Mapping,
    image_fragments: Iterable[IO[bytes]],
    annotation_fragments: Iterable[IO[bytes]],
) -> None:
    """Streams header + fragments into `out` with a 1 MiB buffer."""
    head = dumps(dict(header))
    out.write(head[:-1].encode("utf-8"))
    out.write(b',"images":[' if len(header) else b'"images":[')
    _concat(out, image_fragments)
    out.write(b'],"annotations":[')
    _concat(out, annotation_fragments)
    out.write(b"]}")


def _concat(out: IO[bytes], fragments: Iterable[IO[bytes]]) -> None:
    first = True
    for frag in fragments:
        chunk = frag.read(_BUFFER)
        if not chunk:
            continue
        if not first:
            out.write(b",")
        first = False
        while chunk:
            out.write(chunk)
            chunk = frag.read(_BUFFER)
