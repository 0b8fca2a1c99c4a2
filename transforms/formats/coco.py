"""COCO documents assembled from per-sample parts without holding the whole document.

Contract:
  * A document is `{"info", "categories", "images": [...], "annotations": [...]}`, written
    compact (no spaces), UTF-8, keys in a fixed order.
  * `images` are in image-id order (release order). coco-instance and coco-keypoints
    annotation ids (`NUMBERED`) are dense, start at 1 and follow (image id, annotation-list
    order): the id of an annotation is its shard's offset (sum of the annotation counts of
    all earlier shards) plus its rank inside the shard. Nothing depends on processing
    order, so every runner gives the same bytes.
  * Every document lists the same category object for a category (`category_object`): id,
    name, color (the colour of the semantic-color and panoptic pictures: the category's own,
    the palette's when it has none, a stuff category's unique segment colour), isthing
    (panoptic's: `has_instances`, missing -> 0), attributes (or null), then every other key
    of the release's category in its original order. coco-instance lists the categories of
    the instance formats (`Taxonomy.instance_categories`); a document of points adds
    `keypoints: [its name]` and `skeleton: []` to each.
  * A sample's part is `(index, image JSON, instance annotation JSONs, panoptic annotation
    JSON, keypoint annotation JSONs, split or None)`; `format_part` says what each document
    takes of it
    (a sample whose panoptic picture was left out is not in coco-panoptic).
  * Per-sample parts cross the shuffle packed (`pack_part`: zlib of the JSON texts).
  * Shards are consecutive ranges of `shard_size` sample indexes. Each shard is written as two
    fragments (comma-joined image objects and annotation objects); the final document is the
    header, then the fragments streamed in shard order.
"""

from __future__ import annotations

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


NUMBERED = ("coco-instance", "coco-keypoints")  # documents whose annotation ids are assigned


def category_object(category: Category, taxonomy: Taxonomy) -> dict:
    """The category as every COCO document of the export lists it (see the contract)."""
    raw = category.raw_dict()
    out = {
        "id": category.id,
        "name": category.name,
        "color": list(taxonomy.panoptic_color(category.id)),
        "isthing": int(category.has_instances),
        "attributes": raw.get("attributes"),
    }
    out.update((k, v) for k, v in raw.items() if k not in out)
    return out


def _keypoint_categories(cats: list[dict]) -> list[dict]:
    return [{**c, "keypoints": [c["name"]], "skeleton": []} for c in cats]


def instance_header(release_name: str, dataset_name: str, taxonomy: Taxonomy,
                    keypoints: bool = False) -> dict:
    """With `keypoints` (keypoints releases, whose points are coco-instance's annotations),
    every category also gets `keypoints: [its name]` and `skeleton: []`: a point is one
    keypoint of its category (see `vector`)."""
    cats = [category_object(c, taxonomy) for c in taxonomy.instance_categories]
    if keypoints:
        cats = _keypoint_categories(cats)
    return {"info": info(release_name, dataset_name), "categories": cats}


def keypoints_header(release_name: str, dataset_name: str, taxonomy: Taxonomy) -> dict:
    """coco-keypoints: the points of vector and sequence releases, every category a
    one-keypoint category."""
    cats = [category_object(c, taxonomy) for c in taxonomy.categories]
    return {"info": info(release_name, dataset_name), "categories": _keypoint_categories(cats)}


def panoptic_header(release_name: str, dataset_name: str, taxonomy: Taxonomy) -> dict:
    return {"info": info(release_name, dataset_name),
            "categories": [category_object(c, taxonomy) for c in taxonomy.categories]}


def format_part(part: tuple, fmt: str) -> tuple[str | None, tuple[str, ...]]:
    """(image JSON or None, annotation JSONs) that the document `fmt` takes of one sample's
    part (see the contract)."""
    _, image, instances, panoptic, keypoints = part[:5]
    if fmt == "coco-instance":
        return image, tuple(instances)
    if fmt == "coco-keypoints":
        return image, tuple(keypoints)
    return (image, (panoptic,)) if panoptic is not None else (None, ())


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
