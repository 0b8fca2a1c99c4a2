"""--since's pure parts: reuse keys, signature-free URLs, rewritten ledger entries."""

from __future__ import annotations

import dataclasses

import pytest

from transforms.model.types import EXPORTED, Annotation, ManifestRow, Sample
from transforms.state import incremental, ledger
from transforms.storage import pickles

SAMPLE = Sample(3, 7, "u-1", "a.jpg", "https://s3.test/img/a.jpg?X-Amz-Signature=1&v=2",
                "LABELED", (Annotation(1, 2, (("occluded", True),)),),
                "https://s3.test/lbl/a.png?X-Amz-Signature=1&X-Amz-Date=2026", stem="a")


@pytest.mark.parametrize("url, stable", [
    ("https://b.s3.amazonaws.com/k.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=A"
     "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
     "&X-Amz-Signature=ab&X-Amz-Security-Token=t", "https://b.s3.amazonaws.com/k.png"),
    ("https://b.s3.amazonaws.com/k.png?AWSAccessKeyId=A&Signature=s&Expires=1",
     "https://b.s3.amazonaws.com/k.png"),
    ("https://storage.googleapis.com/b/k.png?X-Goog-Algorithm=G&X-Goog-Signature=s&version=3",
     "https://storage.googleapis.com/b/k.png?version=3"),
    ("https://a.blob.core.windows.net/c/k.png?sv=2022&se=2026&sp=r&sig=s",
     "https://a.blob.core.windows.net/c/k.png"),
    ("https://cdn.test/k.png?Policy=p&Signature=s&Key-Pair-Id=k&w=2", "https://cdn.test/k.png?w=2"),
    ("https://h.test/k.png?sp=1&se=2", "https://h.test/k.png?sp=1&se=2"),  # not Azure: kept
    ("https://h.test/k.png", "https://h.test/k.png"),
    ("labels/k.png?X-Amz-Signature=s&v=1", "labels/k.png?v=1"),  # relative to the release
])
def test_stable_url_drops_only_signing_parameters(url, stable):
    assert incremental.stable_url(url) == stable


def test_the_key_ignores_position_index_and_signatures_and_sees_everything_else():
    key = incremental.sample_key(SAMPLE)
    assert len(key) == incremental.KEY_BYTES
    moved = dataclasses.replace(SAMPLE, index=0, position=100)
    relative = dataclasses.replace(SAMPLE, bitmap_url="lbl/a.png?X-Amz-Signature=1")
    assert incremental.sample_key(relative) == incremental.sample_key(
        dataclasses.replace(relative, bitmap_url="lbl/a.png?X-Amz-Signature=2"))
    resigned = dataclasses.replace(
        SAMPLE, image_url="https://s3.test/img/a.jpg?X-Amz-Signature=9&v=2",
        bitmap_url="https://s3.test/lbl/a.png?X-Amz-Signature=9&X-Amz-Date=2027")
    assert incremental.sample_key(moved) == incremental.sample_key(resigned) == key
    for changed in (
            dataclasses.replace(SAMPLE, bitmap_url="https://s3.test/lbl/b.png"),  # new label
            dataclasses.replace(SAMPLE, image_url="https://s3.test/img/a.jpg?v=3"),
            dataclasses.replace(SAMPLE, annotations=(Annotation(1, 3),)),
            dataclasses.replace(SAMPLE, annotations=(Annotation(1, 2, (("occluded", False),)),)),
            dataclasses.replace(SAMPLE, label_status="REVIEWED"),
            dataclasses.replace(SAMPLE, name="b.jpg"),
            dataclasses.replace(SAMPLE, uuid="u-2"),
            dataclasses.replace(SAMPLE, stem="a__8")):  # same content, another output name
        assert incremental.sample_key(changed) != key, changed


def test_rewrite_moves_an_entry_to_its_new_position_and_image_id():
    row = ManifestRow(7, "u-1", "a.jpg", EXPORTED, image_id=4, artifacts=(("yolo", "labels/a.txt"),))
    part = (3, '{"id":4,"file_name":"a.jpg","height":2,"width":3}',
            ('{"image_id":4,"category_id":2,"bbox":[0,0,1,1]}',),
            '{"segments_info":[],"file_name":"a.png","image_id":4}',
            ('{"image_id":4,"category_id":3,"bbox":[1,1,0,0],"keypoints":[1,1,2]}',))
    e = ledger.entry(row, part, (3, "a.jpg", "thumb"), b"k" * 24)
    position, status, packed, key = incremental.rewrite(e, 12, 10)
    assert (position, status, key) == (12, EXPORTED, b"k" * 24)
    new_row, new_part, thumb = pickles.unpack(packed)
    assert new_row == dataclasses.replace(row, position=12, image_id=11)
    assert new_part == (10, '{"id":11,"file_name":"a.jpg","height":2,"width":3}',
                        ('{"image_id":11,"category_id":2,"bbox":[0,0,1,1]}',),
                        '{"segments_info":[],"file_name":"a.png","image_id":11}',
                        ('{"image_id":11,"category_id":3,"bbox":[1,1,0,0],"keypoints":[1,1,2]}',))
    assert thumb is None  # index 10 is not among the preview's samples
    _, _, packed, _ = incremental.rewrite(e, 1, 1)
    assert pickles.unpack(packed)[2] == (1, "a.jpg", "thumb")


def test_rewrite_refuses_a_part_it_does_not_understand():
    row = ManifestRow(0, "u", "a.jpg", EXPORTED, image_id=1)
    e = ledger.entry(row, (0, '{"file_name":"a.jpg"}', (), None, ()), None, b"k" * 24)
    with pytest.raises(ValueError, match="not a reusable COCO part"):
        incremental.rewrite(e, 1, 1)
