"""The shard rule, deterministic tars and the webdataset key escaping."""

import io
import math
import random
import tarfile

from transforms.formats import webdataset
from transforms.state.shards import shard_bounds


def test_shards_hold_consecutive_records_of_about_the_target_size():
    rng = random.Random(7)
    sizes = [rng.randint(1, 5000) for _ in range(1000)]
    target = 100_000
    numbers = shard_bounds(sizes, target)
    assert numbers == sorted(numbers)  # consecutive runs, release order
    assert sorted(set(numbers)) == list(range(max(numbers) + 1))  # dense from 0
    assert max(numbers) + 1 == math.ceil(sum(sizes) / target)
    per: dict[int, int] = {}
    for n, s in zip(numbers, sizes):
        per[n] = per.get(n, 0) + s
    assert max(per.values()) <= target + max(sizes)


def test_a_record_bigger_than_a_shard_leaves_no_empty_shard():
    numbers = shard_bounds([10, 1000, 10, 10], 100)  # 11 raw shards, 3 of them used
    assert numbers == sorted(numbers)
    assert sorted(set(numbers)) == list(range(max(numbers) + 1))


def test_the_rule_depends_only_on_the_sizes():
    sizes = [3, 1, 4, 1, 5, 9, 2, 6]
    assert shard_bounds(sizes, 7) == shard_bounds(list(sizes), 7)
    assert shard_bounds([], 7) == []
    assert shard_bounds([5], 1000) == [0]


def test_tar_bytes_are_deterministic_and_members_sorted():
    records = [[("a.json", b"{}"), ("a.jpg", b"x" * 10)], [("b.jpg", b"y"), ("b.json", b"[]")]]
    one, two = io.BytesIO(), io.BytesIO()
    assert webdataset.write_records(one, iter(records)) == 2
    webdataset.write_records(two, iter(records))
    assert one.getvalue() == two.getvalue()
    with tarfile.open(fileobj=io.BytesIO(one.getvalue())) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a.jpg", "a.json", "b.jpg", "b.json"]
    assert {(m.mtime, m.uid, m.gid, m.mode, m.uname, m.gname) for m in members} == {
        (0, 0, 0, 0o644, "", "")}


def test_keys_have_no_dots_and_stay_unique():
    assert webdataset.record_key("a/b.c") == "a/b%2Ec"
    assert webdataset.record_key("a%2Eb") == "a%252Eb"
    assert webdataset.record_key("a.b") != webdataset.record_key("a%2Eb")


def test_16_bit_pngs_get_their_own_extension():
    header = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00\x00\x00\x01" * 2
    assert webdataset.picture_member("k", "instance", header + b"\x10\x00") == "k.instance.png16"
    assert webdataset.picture_member("k", "semantic", header + b"\x08\x00") == "k.semantic.png"
