"""The ledger's files: entries in release order, generations combined, fingerprints compared."""

from __future__ import annotations

import gzip
import hashlib
import io

import pytest

from transforms.model.types import EXPORTED, FAILED, SKIPPED, ManifestRow
from transforms.state import ledger
from transforms.storage import pickles


def _row(position, status, reason=None):
    return ManifestRow(position, f"u{position}", f"s{position}.jpg", status, reason=reason)


def _write(folder, rows, part=None):
    by_shard = {}
    for r in rows:
        by_shard.setdefault(ledger.shard_of(r.position), []).append(ledger.entry(r))
    for shard, items in by_shard.items():
        ledger.write_shard(shard, reversed(items), str(folder), part)  # any order in


def test_entries_come_back_in_release_order_across_shards(tmp_path):
    far = ledger.LEDGER_POSITIONS + 3
    _write(tmp_path, [_row(far, EXPORTED), _row(2, FAILED, "x"), _row(0, SKIPPED)])
    assert [r.position for r, _, _ in ledger.results(str(tmp_path))] == [0, 2, far]
    assert ledger.failed_positions(str(tmp_path)) == [2]
    # Only the shards asked for are read.
    assert [r.position for r, _, _ in ledger.results(str(tmp_path), range(1, 2))] == [far]


def test_combine_replaces_only_the_re_exported_positions(tmp_path):
    old, new, target = tmp_path / "old", tmp_path / "new", tmp_path / "target"
    _write(old, [_row(i, FAILED if i in (1, 4) else EXPORTED, "404") for i in range(6)])
    _write(new, [_row(1, EXPORTED), _row(4, FAILED, "corrupt")], part=0)
    assert ledger.combine(str(old), str(new), str(target)) == 6
    rows = [r for r, _, _ in ledger.results(str(target))]
    assert [(r.position, r.status, r.reason) for r in rows] == [
        (0, EXPORTED, "404"), (1, EXPORTED, None), (2, EXPORTED, "404"), (3, EXPORTED, "404"),
        (4, FAILED, "corrupt"), (5, EXPORTED, "404")]


def test_combine_refuses_a_position_the_ledger_does_not_have(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    _write(old, [_row(0, FAILED, "x"), _row(2, FAILED, "x")])
    _write(new, [_row(1, EXPORTED)], part=0)
    with pytest.raises(ValueError, match="position 1 is not in the ledger"):
        ledger.combine(str(old), str(new), str(tmp_path / "t1"))
    _write(tmp_path / "late", [_row(7, EXPORTED)], part=0)
    with pytest.raises(ValueError, match="position 7 is not in the ledger"):
        ledger.combine(str(old), str(tmp_path / "late"), str(tmp_path / "t2"))


def test_merge_parts_concatenates_chunks_per_shard(tmp_path):
    parts, target = tmp_path / "parts", tmp_path / "target"
    _write(parts, [_row(0, EXPORTED), _row(1, EXPORTED)], part=0)
    _write(parts, [_row(2, SKIPPED), _row(ledger.LEDGER_POSITIONS, EXPORTED)], part=1)
    ledger.merge_parts(str(parts), str(target))
    assert sorted(p.name for p in target.iterdir()) == [ledger.file_name(0), ledger.file_name(1)]
    whole = tmp_path / "whole"
    _write(whole, [_row(0, EXPORTED), _row(1, EXPORTED), _row(2, SKIPPED),
                   _row(ledger.LEDGER_POSITIONS, EXPORTED)])
    for name in (ledger.file_name(0), ledger.file_name(1)):
        assert (target / name).read_bytes() == (whole / name).read_bytes()


def test_hashing_reader_hashes_the_whole_stream_even_if_not_all_read():
    data = b'{"samples": []}' * 1000
    reader = ledger.HashingReader(io.BytesIO(data))
    assert reader.read(10) == data[:10]
    assert reader.sha256() == hashlib.sha256(data).hexdigest()
    # A .gz release is fingerprinted by its content, as it is read.
    gz = gzip.GzipFile(fileobj=io.BytesIO(gzip.compress(data)))
    assert ledger.HashingReader(gz).sha256() == hashlib.sha256(data).hexdigest()


def test_fingerprint_survives_state_json_and_names_differences(tmp_path):
    settings = {"formats": ("coco-instance",), "filter_by_metadata": (("k", 1),), "images": "copy"}
    fp = ledger.fingerprint("abc", settings)
    ledger.write_state(str(tmp_path), 3, fp)
    generation, back = ledger.read_state(str(tmp_path))
    assert generation == 3 and back == fp and fp.differences(back) == []
    other = ledger.fingerprint("abd", {**settings, "images": "none"})
    assert other.differences(fp) == ["the release file's content changed",
                                     "images was 'copy', now 'none'"]
    (tmp_path / ".export-state" / "state.json").write_text("{not json")
    assert ledger.read_state(str(tmp_path)) is None


def test_entry_round_trip():
    row = _row(5, EXPORTED)
    part = (4, '{"id":5}', ('{"a":1}',), '{"p":1}')
    position, status, packed, key = ledger.entry(row, part)
    assert (position, status, key) == (5, EXPORTED, None)
    assert pickles.unpack(packed) == (row, part, None)
