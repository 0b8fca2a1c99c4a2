"""Train/val/test splits: parsing, the hash rule, stability, the non-empty rule, metadata."""

import hashlib

import pytest

from transforms.model import errors
from transforms.release import splits

SPEC = splits.SplitSpec(("train", "val", "test"), (0.8, 0.1, 0.1))


def _point(key: str, salt: str = splits.DEFAULT_SALT) -> float:
    """The documented formula, computed here independently of the module."""
    digest = hashlib.blake2b(f"{salt}\n{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2 ** 64


def _expected_split(key: str, salt: str = splits.DEFAULT_SALT) -> str:
    u = _point(key, salt)
    return "train" if u < 0.8 else "val" if u < 0.9 else "test"


def _samples(n: int, start: int = 0, metadata=None):
    return [(start + i, f"uuid-{start + i}", f"s{start + i}.jpg", metadata) for i in range(n)]


def _splits_of(plan, samples):
    return {p: plan.assign(p, u, n, m) for p, u, n, m in samples}


@pytest.mark.parametrize("text, message", [
    ("train=0.8,val=0.1", "sum to 0.9"),
    ("train=0.5,dev=0.5", "unknown split 'dev'"),
    ("train=0.5,train=0.5", "given twice"),
    ("train=a,val=0.5", "not a number"),
    ("train=1,val=0", "not in (0, 1]"),
    ("train", "NAME=RATIO"),
    ("", "no split"),
])
def test_bad_ratios_are_refused(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("]", r"\]")):
        splits.parse_ratios(text)


def test_ratios_parse_in_order_and_from_a_mapping():
    assert splits.parse_ratios("val=0.25, train=0.75") == (("val", "train"), (0.25, 0.75))
    assert splits.parse_ratios({"train": 0.9, "test": 0.1}) == (("train", "test"), (0.9, 0.1))


def test_each_sample_goes_where_the_documented_hash_says():
    samples = _samples(2000)
    plan = splits.plan(iter(samples), SPEC)
    assert plan.moved == ()
    got = _splits_of(plan, samples)
    assert got == {p: _expected_split(u) for p, u, _, _ in samples}
    share = sum(v == "train" for v in got.values()) / len(got)
    assert 0.77 < share < 0.83  # the ratios, within sampling noise (2000 draws)


def test_appending_20_percent_new_samples_moves_no_old_sample():
    old = _samples(1000)
    new = old + _samples(200, start=1000)
    before = _splits_of(splits.plan(iter(old), SPEC), old)
    after = _splits_of(splits.plan(iter(new), SPEC), new)
    assert all(after[p] == before[p] for p in before)


def test_removing_or_reordering_samples_moves_no_other_sample():
    samples = _samples(500)
    before = _splits_of(splits.plan(iter(samples), SPEC), samples)
    kept = [(p + 7, u, n, m) for p, u, n, m in samples[::-3]]  # reordered, new positions
    after = splits.plan(iter(kept), SPEC)
    assert all(after.assign(p, u, n, m) == before[p - 7] for p, u, n, m in kept)


def test_another_salt_gives_another_split():
    samples = _samples(200)
    salted = splits.SplitSpec(SPEC.names, SPEC.ratios, salt="other")
    a = _splits_of(splits.plan(iter(samples), SPEC), samples)
    b = _splits_of(splits.plan(iter(samples), salted), samples)
    assert a != b
    assert b == {p: _expected_split(u, "other") for p, u, _, _ in samples}


def test_a_sample_without_uuid_is_split_by_its_name():
    plan = splits.plan(iter([(0, "", "cat.jpg", None), (1, "", "dog.jpg", None)]),
                       splits.SplitSpec(("train", "val"), (0.5, 0.5)))
    u = _point("cat.jpg")
    assert plan.assign(0, "", "cat.jpg", None) == ("train" if u < 0.5 else "val")


def test_no_split_is_empty_when_there_are_enough_samples():
    # With 1 % val and 1 % test, hashing leaves both empty for these three samples.
    spec = splits.SplitSpec(("train", "val", "test"), (0.98, 0.01, 0.01))
    samples = _samples(3)
    assert {_expected_split(u) for _, u, _, _ in samples} == {"train"}
    plan = splits.plan(iter(samples), spec)
    got = _splits_of(plan, samples)
    assert sorted(got.values()) == ["test", "train", "val"]
    # The sample moved to val is the one whose hash point lies nearest to val's share.
    moved_val = min(samples, key=lambda s: abs(_point(s[1]) - 0.98))
    assert got[moved_val[0]] == "val"
    assert dict(plan.counts) == {"train": 1, "val": 1, "test": 1}


def test_fewer_samples_than_splits_are_left_where_they_hash():
    spec = splits.SplitSpec(("train", "val", "test"), (0.98, 0.01, 0.01))
    plan = splits.plan(iter(_samples(2)), spec)
    assert plan.moved == ()


def test_a_moved_sample_returns_once_its_split_has_a_member_of_its_own():
    spec = splits.SplitSpec(("train", "val"), (0.9, 0.1))
    samples = _samples(3)
    while {_expected_split(u) for _, u, _, _ in samples} != {"train"} or any(
            _point(u) >= 0.9 for _, u, _, _ in samples):
        samples = samples[1:] + _samples(1, start=samples[-1][0] + 1)
    small = splits.plan(iter(samples), spec)
    assert len(small.moved) == 1
    # Add samples until one hashes into val: then nothing is moved any more.
    grown = list(samples)
    while all(_point(u) < 0.9 for _, u, _, _ in grown):
        grown += _samples(1, start=grown[-1][0] + 1)
    big = splits.plan(iter(grown), spec)
    assert big.moved == ()
    assert all(big.assign(p, u, n, m) == ("train" if _point(u) < 0.9 else "val")
               for p, u, n, m in grown)


def test_metadata_split_with_and_without_fallback():
    spec = splits.SplitSpec(("train", "val"), (0.5, 0.5), by_metadata="split", missing="error")
    samples = [(0, "a", "a.jpg", {"split": "val"}), (1, "b", "b.jpg", {"split": "train"})]
    plan = splits.plan(iter(samples), spec)
    assert plan.assign(0, "a", "a.jpg", {"split": "val"}) == "val"
    with pytest.raises(errors.ReleaseError, match="--split_by_metadata.*'c.jpg'.*--split_missing"):
        splits.plan(iter(samples + [(2, "c", "c.jpg", {})]), spec)
    hashed = splits.SplitSpec(("train", "val"), (0.5, 0.5), by_metadata="split", missing="hash")
    plan = splits.plan(iter(samples + [(2, "c", "c.jpg", None)]), hashed)
    assert plan.assign(2, "c", "c.jpg", None) == ("train" if _point("c") < 0.5 else "val")


def test_a_metadata_value_that_is_no_requested_split_is_an_error():
    spec = splits.SplitSpec(("train", "val"), (0.5, 0.5), by_metadata="split", missing="hash")
    with pytest.raises(errors.ReleaseError, match="split='validation'"):
        splits.plan(iter([(0, "a", "a.jpg", {"split": "validation"})]), spec)


def test_metadata_splits_are_never_moved():
    spec = splits.SplitSpec(("train", "val"), (0.5, 0.5), by_metadata="split", missing="error")
    samples = [(i, f"u{i}", f"{i}.jpg", {"split": "train"}) for i in range(3)]
    with pytest.raises(errors.ReleaseError, match="no sample can go to split 'val'"):
        splits.plan(iter(samples), spec)
