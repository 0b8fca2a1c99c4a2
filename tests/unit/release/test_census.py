"""The census of the header scan: filters that select nothing are refused before any work.

The census counts, during the one streaming scan, what the reader's rules would select
(`selection.sample_status`, `filter_reason`): it must agree with `release.decide` on every
kind of sample, well-formed or not, and its refusal names the filter and what the release
has.
"""

from __future__ import annotations

import io
import json

import pytest

from transforms import release
from transforms.model import errors

LS = "ground-truth"


def sample(i: int, status="LABELED", labels=..., metadata=...) -> dict:
    s = {"uuid": f"u{i}", "name": f"s{i}.jpg",
         "attributes": {"image": {"url": f"https://h/{i}.jpg"}}}
    if labels is ...:
        labels = {LS: {"label_status": status, "attributes": {
            "annotations": [], "segmentation_bitmap": {"url": f"https://h/{i}.png"}}}}
    if labels is not None or i % 2:  # a missing `labels` and a null one alike
        s["labels"] = labels
    if metadata is not ...:
        s["metadata"] = metadata
    return s


SAMPLES = [
    sample(0, "LABELED", metadata={"split": "val", "n": 1}),
    sample(1, "REVIEWED", metadata={"split": "train", "n": 1.0}),
    sample(2, "reviewed", metadata={"split": "val", "nested": {"a": [1, {"b": None}]}}),
    sample(3, labels=None, metadata={"split": "val"}),  # UNLABELED (labels null)
    sample(4, labels=None),  # UNLABELED (labels missing), no metadata
    sample(5, labels={LS: None}, metadata=None),  # UNLABELED (label null)
    sample(6, labels={"other": {"label_status": "LABELED"}}, metadata={"split": "val"}),
    sample(7, labels={LS: {"label_status": 3}}, metadata={"split": "val"}),  # malformed
    sample(8, labels={LS: []}, metadata={"split": "val"}),  # malformed
    sample(9, labels=[1, 2], metadata={"split": "val"}),  # malformed labels
    sample(10, labels={LS: {"attributes": None}}),  # no label_status: malformed
    sample(11, "SKIPPED", metadata=["split", "val"]),  # metadata not an object
    sample(12, "LABELED", metadata={"split": ["val"]}),
    sample(13, "LABELED", metadata={"split": "val", "split2": {"x": 1}}),
    "not a sample",
    sample(15, "REJECTED", metadata={"split": "val"}),
]


def release_bytes(samples) -> bytes:
    return json.dumps({"name": "v1", "dataset": {
        "name": "d", "task_type": "segmentation-bitmap",
        "task_attributes": {"categories": [{"id": 1, "name": "a"}]},
        "labelsets": [{"name": LS}, {"name": "other"}], "samples": samples}}).encode()


def info_for(data: bytes, selection: release.Selection) -> release.ReleaseInfo:
    return release.release_info(release.scan_header(io.BytesIO(data), selection), selection)


SELECTIONS = [
    release.Selection(filter_by=("LABELED",)),
    release.Selection(filter_by=("REVIEWED",)),
    release.Selection(filter_by=("UNLABELED",)),
    release.Selection(filter_by=("LABELED", "UNLABELED", "SKIPPED")),
    release.Selection(filter_by_metadata=(("split", "val"),)),
    release.Selection(filter_by_metadata=(("n", 1),)),  # 1 == 1.0 in Python
    release.Selection(filter_by_metadata=(("split", ["val"]),)),
    release.Selection(filter_by_metadata=(("nested", {"a": [1, {"b": None}]}),)),
    release.Selection(filter_by_metadata=(("split2", {"x": 1}), ("split", "val"))),
    release.Selection(filter_by=("REJECTED", "LABELED"), filter_by_metadata=(("split", "val"),)),
    release.Selection(labelset="other", filter_by=("LABELED",)),
    release.Selection(labelset="other", filter_by=("UNLABELED",)),
]


@pytest.mark.parametrize("selection", SELECTIONS, ids=lambda s: repr(s)[9:70])
def test_the_census_selects_exactly_what_the_reader_selects(selection):
    data = release_bytes(SAMPLES)
    info = info_for(data, selection)
    decided = sum(d.selected for d in release.decide(io.BytesIO(data), info, selection))
    assert info.census.selected(info.labelset, selection.filter_by) == decided


def test_no_census_without_a_filter():
    assert info_for(release_bytes(SAMPLES), release.Selection()).census is None


def test_a_status_filter_that_selects_nothing_is_refused_naming_what_there_is():
    selection = release.Selection(filter_by=("VERIFIED",))
    info = info_for(release_bytes(SAMPLES), selection)
    with pytest.raises(errors.ReleaseError) as e:
        release.check_selection(info.census, info.sample_count, info.labelset, selection)
    # 16 samples; in ground-truth: LABELED 0, 12, 13 (11's metadata is not read without a
    # metadata filter: it is SKIPPED); REVIEWED 1, 2; REJECTED 15; UNLABELED 3, 4, 5, 6.
    assert str(e.value) == (
        "--filter_by VERIFIED: selects none of the 16 samples (label statuses in labelset "
        "'ground-truth': LABELED 3, REJECTED 1, REVIEWED 2, SKIPPED 1, UNLABELED 4)")


def test_a_metadata_filter_that_selects_nothing_names_the_keys_seen():
    selection = release.Selection(filter_by_metadata=(("splt", "val"),))
    info = info_for(release_bytes(SAMPLES), selection)
    with pytest.raises(errors.ReleaseError) as e:
        release.check_selection(info.census, info.sample_count, info.labelset, selection)
    assert str(e.value) == ("--filter_by_metadata splt='val': selects none of the 16 samples "
                            "(metadata keys seen: n, nested, split, split2)")


def test_both_filters_blame_the_status_among_what_the_metadata_keeps():
    selection = release.Selection(filter_by=("REVIEWED",), filter_by_metadata=(("n", 1),))
    info = info_for(release_bytes(SAMPLES), selection)
    assert info.census.selected(LS, ("REVIEWED",)) == 1  # sample 1 (n = 1.0)
    selection = release.Selection(filter_by=("SKIPPED",), filter_by_metadata=(("n", 1),))
    info = info_for(release_bytes(SAMPLES), selection)
    with pytest.raises(errors.ReleaseError, match=r"^--filter_by SKIPPED: selects none of the 16 "
                       r"samples \(label statuses in labelset 'ground-truth' among those "
                       r"--filter_by_metadata keeps: LABELED 1, REVIEWED 1\)$"):
        release.check_selection(info.census, info.sample_count, info.labelset, selection)


def test_an_empty_release_is_never_refused():
    selection = release.Selection(filter_by=("LABELED",))
    info = info_for(release_bytes([]), selection)
    release.check_selection(info.census, info.sample_count, info.labelset, selection)
