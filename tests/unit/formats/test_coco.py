"""COCO document assembly from shards: dense ids, image order, any shard partition."""

import io
import json

import pytest

from transforms.formats import coco


def _parts(n):
    return [coco.pack_part(i, json.dumps({"id": i + 1}),
                           [json.dumps({"image_id": i + 1, "k": k}) for k in range(i % 3)])
            for i in range(n)]


def _document(parts, shard_size):
    shards = {}
    for p in parts:
        shards.setdefault(p[0] // shard_size, []).append(p)
    totals = {s: sum(p[1] for p in ps) for s, ps in shards.items()}
    offsets = coco.shard_offsets(totals)
    frags = [coco.shard_fragments(reversed(shards[s]), offsets[s] + 1) for s in sorted(shards)]
    out = io.BytesIO()
    coco.write_document(out, {"info": {"v": 1}, "categories": []},
                        (io.BytesIO(f[0]) for f in frags), (io.BytesIO(f[1]) for f in frags))
    return out.getvalue()


@pytest.mark.parametrize("shard_size", [1, 2, 3, 7, 1000])
def test_document_is_identical_for_any_shard_size(shard_size):
    parts = _parts(10)
    doc = json.loads(_document(parts, shard_size))
    assert [im["id"] for im in doc["images"]] == list(range(1, 11))
    anns = doc["annotations"]
    assert [a["id"] for a in anns] == list(range(1, len(anns) + 1))
    assert [(a["image_id"], a["k"]) for a in anns] == [(i + 1, k) for i in range(10) for k in range(i % 3)]
    assert _document(parts, shard_size) == _document(parts, 1000)


def test_empty_document_is_valid_json():
    doc = json.loads(_document([], 5))
    assert doc == {"info": {"v": 1}, "categories": [], "images": [], "annotations": []}


def test_with_id_puts_the_id_first():
    assert coco.with_id('{"a":1}', 7) == '{"id":7,"a":1}'


@pytest.mark.parametrize("image, bodies", [
    ('{"id":1,"file_name":"caf\u00e9 \\n.jpg"}', ['{"a":"x\\ny"}', '{"b":[1,2]}']),
    ('{"id":2}', []),
    (None, ['{"segments_info":[]}']),
])
def test_packed_parts_round_trip(image, bodies):
    packed = coco.pack_part(4, image, bodies)
    assert packed[:2] == (4, len(bodies)) and isinstance(packed[2], bytes)
    assert coco.unpack_part(packed) == (4, image, bodies)
