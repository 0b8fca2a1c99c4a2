"""chunking.split and the streaming manifest writer, without Beam."""

from __future__ import annotations

import io
import json
import pickle

import pyarrow.parquet as pq
import pytest

from transforms import release
from transforms.model import paths
from transforms.model.types import ManifestRow
from transforms.state import chunking
from transforms.summary import manifest


def _release(names: list[str | None]) -> bytes:
    """A v2 release; None = a sample without a label (skipped)."""
    samples = []
    for i, name in enumerate(names):
        label = None if name is None else {
            "label_status": "LABELED",
            "attributes": {"format_version": "0.1", "annotations": [{"id": 1, "category_id": 1}],
                           "segmentation_bitmap": {"url": f"l{i}.png"}}}
        samples.append({"uuid": f"u{i}", "name": name or f"skip{i}.jpg",
                        "attributes": {"image": {"url": f"i{i}.jpg"}},
                        "labels": {"ground-truth": label}})
    doc = {"name": "r", "dataset": {"name": "d", "task_type": "segmentation-bitmap",
                                    "task_attributes": {"categories": [{"id": 1, "name": "c"}]},
                                    "labelsets": [{"name": "ground-truth"}], "samples": samples}}
    return json.dumps(doc).encode()


def _split(tmp_path, data: bytes, chunk: int):
    info = release.release_info(release.scan_header(io.BytesIO(data)), release.Selection())
    folder = str(tmp_path / "chunks")
    chunks = chunking.split(io.BytesIO(data), info, release.Selection(), folder, chunk)
    items = []
    for c in chunks:
        with open(chunking.stems_path(folder, c.number), "rb") as f:
            stems = pickle.load(f)
        items.append(list(chunking.chunk_items(c.path, stems)))
    return chunks, items


def _whole_release_stems(names: list[str]) -> dict[int, str]:
    """The one-pipeline rule (AssignStems): unique_stems per collision group."""
    groups: dict[str, list] = {}
    for i, n in enumerate(names):
        stem = paths.sample_stem(n)
        groups.setdefault(paths.collision_key(stem), []).append((i, stem))
    out = {}
    for members in groups.values():
        out.update(paths.unique_stems(members))
    return out


NAMES = ["a.jpg", "b.jpg", "A.JPG", "c/d.png", "a__4.jpg", "c\\d.jpg", "e.jpg", "a.png",
         "../../etc/passwd", "etc/passwd", "x" * 300 + ".jpg", "x" * 300 + ".png"]


def test_chunks_are_consecutive_and_stems_match_the_whole_release_rule(tmp_path):
    chunks, items = _split(tmp_path, _release(NAMES), chunk=5)
    assert [(c.first_position, c.positions, c.samples) for c in chunks] == [
        (0, 5, 5), (5, 5, 5), (10, 2, 2)]
    got = {item.index: item.stem for chunk in items for kind, item, _ in chunk if kind == "sample"}
    assert got == _whole_release_stems(NAMES)
    assert got[2] == "A__3" and got[4] == "a__4" and got[7] == "a__8"  # across chunks
    assert len({s.casefold() for s in got.values()}) == len(NAMES)


def test_skipped_samples_before_a_collision_do_not_lose_its_new_name(tmp_path):
    # Unlabeled samples are selected (they keep their image id) but have no stem: the last
    # chunk's index range must still reach the colliding sample (it used to get "a" again,
    # and overwrite the first "a.jpg"'s files).
    names = ["a.jpg", None, None, "b.jpg", "a.jpg"]
    chunks, items = _split(tmp_path, _release(names), chunk=2)
    assert len(chunks) == 2
    got = {item.index: item.stem for chunk in items for kind, item, _ in chunk if kind == "sample"}
    assert got == {0: "a", 3: "b", 4: "a__5"}


def test_hash_collisions_between_different_names_do_not_rename(tmp_path, monkeypatch):
    # Force every name into one hash bucket: grouping must still use the real key.
    monkeypatch.setattr(chunking, "_stem_hash", lambda stem: 7)
    _, items = _split(tmp_path, _release(NAMES), chunk=4)
    got = {item.index: item.stem for chunk in items for kind, item, _ in chunk if kind == "sample"}
    assert got == _whole_release_stems(NAMES)


def test_rows_close_a_chunk_when_few_samples_are_selected(tmp_path):
    names = [None] * 45 + ["a.jpg"]
    chunks, items = _split(tmp_path, _release(names), chunk=2)
    # At most ROWS_PER_CHUNK_FACTOR * 2 = 40 release samples per chunk.
    assert [c.positions for c in chunks] == [40, 6]
    kinds = [kind for chunk in items for kind, _, _ in chunk]
    assert kinds.count("row") == 45 and kinds.count("sample") == 1
    row = next(item for chunk in items for kind, item, _ in chunk if kind == "row")
    assert row.status == "skipped" and row.reason == "no label in this labelset"


def test_a_release_without_samples_is_one_empty_chunk(tmp_path):
    chunks, items = _split(tmp_path, _release([]), chunk=3)
    assert len(chunks) == 1 and items == [[]]


def _rows(n: int) -> list[ManifestRow]:
    return [ManifestRow(i, f"u{i}", f"n{i}", "exported", image_id=i + 1, num_instances=i % 3,
                        artifacts=(("image", f"images/n{i}.jpg"),), warnings=("w",) * (i % 2))
            for i in range(n)]


def test_manifest_is_streamed_in_row_groups_and_bytes_depend_only_on_rows(tmp_path):
    rows = _rows(manifest.ROW_GROUP_ROWS * 2 + 5)
    a, b = io.BytesIO(), io.BytesIO()
    manifest.write_parquet(a, rows)
    manifest.write_parquet(b, iter(rows))  # a generator: streamed, same bytes
    assert a.getvalue() == b.getvalue()
    f = pq.ParquetFile(io.BytesIO(a.getvalue()))
    assert f.metadata.num_row_groups == 3
    back = f.read().to_pylist()
    assert [r["position"] for r in back] == list(range(len(rows)))
    assert back[3]["image_path"] == "images/n3.jpg" and back[3]["warnings"] == ["w"]


def test_an_empty_manifest_shard_is_a_valid_parquet_file():
    out = io.BytesIO()
    manifest.write_parquet(out, [])
    table = pq.read_table(io.BytesIO(out.getvalue()))
    assert table.num_rows == 0 and table.schema.names == manifest.SCHEMA.names


def test_chunk_size_must_be_positive(tmp_path):
    with pytest.raises(ValueError):
        _split(tmp_path, _release(["a.jpg"]), chunk=0)
