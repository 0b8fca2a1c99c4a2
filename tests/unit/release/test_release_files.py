"""Bad release files (issue 6 item 8): a matrix of broken files against the release reader.

Whole-file problems (truncated or invalid JSON, a broken header field, a single token too
large to hold) are one-line `ReleaseError`s from the header scan, before any sample is
read. Sample-level problems (a field of the wrong type, nesting too deep, a sample too
large, a duplicate uuid) fail that sample alone, naming the field, while every other sample
is exported; `decide` (the reader), `plan` (--dry_run) and `chunking.split` (chunked runs)
agree on every sample. Memory stays bounded and nothing recurses, whatever the file holds.

Expectations come from the contracts of transforms/release/, never from running it.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import pickle
import tracemalloc

import pytest

from transforms import release
from transforms.model import errors
from transforms.release import jsonstream
from transforms.release.decisions import _capped_items
from transforms.state import chunking

SEL = release.Selection()
DEEP = 100_000  # nested `[`: the C parser's per-level prefixes would need ~25 GB
MiB = 2**20


# --------------------------------------------------------------------------- helpers


def good(i: int, uuid: str | None = ...) -> dict:
    return {
        "uuid": f"uuid-{i}" if uuid is ... else uuid,
        "name": f"s{i}.jpg",
        "metadata": {"split": "train"},
        "attributes": {"image": {"url": f"https://h/img/s{i}.jpg"}},
        "labels": {"ground-truth": {
            "label_status": "LABELED",
            "attributes": {"format_version": "0.1",
                           "annotations": [{"id": 1, "category_id": 1,
                                            "attributes": {"occluded": False}}],
                           "segmentation_bitmap": {"url": f"https://h/lab/s{i}.png"}}}},
    }


def release_dict(samples: list) -> dict:
    return {"name": "v1.0", "description": "", "dataset": {
        "name": "flowers", "owner": "jane", "task_type": "segmentation-bitmap",
        "task_attributes": {"format_version": "0.1",
                            "categories": [{"id": 1, "name": "petal", "has_instances": True}]},
        "labelsets": [{"name": "ground-truth", "description": ""}],
        "samples": samples}}


def text_of(samples: list) -> bytes:
    """The release on one line, as Segments.ai writes it."""
    return json.dumps(release_dict(samples), separators=(",", ":")).encode()


def with_samples_text(sample_texts: list[bytes]) -> bytes:
    """A release whose samples are given as raw JSON text (for junk no dict can hold)."""
    head = text_of([])
    assert head.endswith(b'"samples":[]}}')
    return head[: -len(b"]}}")] + b",".join(sample_texts) + b"]}}"


def info_of(data: bytes, selection: release.Selection = SEL) -> release.ReleaseInfo:
    return release.release_info(release.scan_header(io.BytesIO(data)), selection)


def decisions(data: bytes, selection: release.Selection = SEL) -> list[release.Decision]:
    info = info_of(data, selection)
    return list(release.decide(io.BytesIO(data), info, selection))


def release_error(data: bytes) -> str:
    with pytest.raises(errors.ReleaseError) as exc:
        info_of(data)
    message = str(exc.value)
    assert "\n" not in message and len(message) < 400, message
    return message


def fates(ds: list[release.Decision]) -> list[tuple[int, str]]:
    """(position, 'exported' | 'skipped' | 'failed: reason') per decision."""
    out = []
    for d in ds:
        if d.failed is not None:
            out.append((d.position, f"failed: {d.failed.reason}"))
        elif d.skipped is not None:
            out.append((d.position, "skipped"))
        else:
            out.append((d.position, "exported"))
    return out


def assert_only_failed(ds: list[release.Decision], position: int, field: str) -> str:
    """Sample `position` failed at stage "read" naming `field`; every other one exported."""
    assert len(ds) == 4
    bad = ds[position]
    assert bad.failed is not None, fates(ds)
    reason = bad.failed.reason
    assert reason.startswith(f"{field}: "), reason
    assert bad.failed.stage == "read"
    assert "\n" not in reason and len(reason) < 200, reason
    exported = [d.position for d in ds if d.sample is not None]
    assert exported == [p for p in range(4) if p != position]
    return reason


# --------------------------------------------------------------------------- truncated JSON

FOUR = text_of([good(i) for i in range(4)])


def _cut_points() -> dict[str, int]:
    second = FOUR.index(b'{"uuid":"uuid-1"')
    last = FOUR.index(b'{"uuid":"uuid-3"')
    end_of_last = FOUR.rindex(b"]}}")
    return {
        "inside the header": FOUR.index(b'"task_attributes"') + 10,
        "at the start of the samples": FOUR.index(b'"samples":[') + len(b'"samples":['),
        "between two samples": second - 1,  # right after the comma
        "after a sample's closing brace": second - 1 - 1,
        "in the middle of a sample": second + 60,
        "in the middle of a string": FOUR.index(b"lab/s2.png") + 3,
        "in the last sample": last + 40,
        "right after the last sample": end_of_last,
        "before the final brace": len(FOUR) - 1,
        "one byte in": 1,
    }


@pytest.mark.parametrize("where", list(_cut_points()))
def test_truncated_file_is_one_error_before_any_sample(where):
    cut = _cut_points()[where]
    message = release_error(FOUR[:cut])
    assert message.startswith("release file is not valid JSON (error at or before byte ")
    offset = int(message.split("byte ")[1].split(")")[0])
    assert 0 < offset <= cut


@pytest.mark.parametrize("data,words", [
    (FOUR + b" x", "trailing garbage"),
    (FOUR[:-1] + b',"x":1e999}', "overflow"),
    (FOUR[:-1] + b',"x":123456789012345678901234567890}', "integer overflow"),
    (FOUR.replace(b"s2.jpg", b"s2\xff.jpg"), "invalid bytes in UTF8 string"),
    (FOUR.replace(b'"LABELED"', b"LABELED", 1), "invalid"),
])
def test_invalid_json_is_one_readable_line(data, words):
    message = release_error(data)
    assert message.startswith("release file is not valid JSON"), message
    assert words in message
    assert "b'" not in message  # yajl's bytes messages are decoded


def test_a_lone_surrogate_escape_is_read_not_fatal():
    data = FOUR.replace(b"s2.jpg", b"s2\\ud800.jpg")
    assert [f for _, f in fates(decisions(data))] == ["exported"] * 4


# --------------------------------------------------------------------------- wrong types


def _set(path: str, value):
    """A mutation setting `path` (dot-separated, digits index lists) in sample 1."""
    def mutate(sample: dict) -> dict:
        *parents, last = path.split(".")
        obj = sample
        for k in parents:
            obj = obj[int(k)] if k.isdigit() else obj[k]
        if value is _DELETE:
            del obj[last]
        elif last.isdigit():
            obj[int(last)] = value
        else:
            obj[last] = value
        return sample
    return mutate


def _replace_with(value):
    """A mutation replacing the whole sample."""
    return lambda sample: value


_DELETE = object()
LABEL = "labels.ground-truth"
ATTRS = f"{LABEL}.attributes"
ANN = f"{ATTRS}.annotations.0"
JUNK = [5, 2.5, True, "x", [], [1], {}, {"a": 1}, None]


def _bad_cases():
    """(mutation, field named) for every sample-level field a user could break."""
    def not_(kinds, values=JUNK):
        return [v for v in values if not isinstance(v, kinds) and v is not None]

    cases = []
    cases += [(f"sample={v!r}", _replace_with(v), "sample") for v in not_(dict) + [None]]
    for key in ("name", "uuid"):
        cases += [(f"{key}={v!r}", _set(key, v), key) for v in not_(str)]
    cases += [(f"labels={v!r}", _set("labels", v), "labels") for v in not_(dict)]
    cases += [(f"label={v!r}", _set(LABEL, v), LABEL) for v in not_(dict)]
    cases += [(f"label_status={v!r}", _set(f"{LABEL}.label_status", v), f"{LABEL}.label_status")
              for v in not_(str) + [None]]
    cases.append(("label_status missing", _set(f"{LABEL}.label_status", _DELETE),
                  f"{LABEL}.label_status"))
    cases += [(f"label attributes={v!r}", _set(ATTRS, v), ATTRS) for v in not_(dict)]
    cases += [(f"annotations={v!r}", _set(f"{ATTRS}.annotations", v), f"{ATTRS}.annotations")
              for v in not_(list)]
    cases += [(f"annotation={v!r}", _set(ANN, v), f"{ATTRS}.annotations[0]") for v in not_(dict)]
    cases += [(f"annotation id={v!r}", _set(f"{ANN}.id", v), f"{ATTRS}.annotations[0].id")
              for v in ["1", 2.5, True, [1], {}, None, 0, -1, 2**24]]
    cases += [(f"category_id={v!r}", _set(f"{ANN}.category_id", v),
               f"{ATTRS}.annotations[0].category_id") for v in ["1", 2.5, True, [1], {}, None]]
    cases += [(f"annotation attributes={v!r}", _set(f"{ANN}.attributes", v),
               f"{ATTRS}.annotations[0].attributes") for v in not_(dict)]
    cases += [(f"segmentation_bitmap={v!r}", _set(f"{ATTRS}.segmentation_bitmap", v),
               f"{ATTRS}.segmentation_bitmap") for v in not_(dict)]
    cases += [(f"bitmap url={v!r}", _set(f"{ATTRS}.segmentation_bitmap.url", v),
               f"{ATTRS}.segmentation_bitmap.url") for v in not_(str)]
    cases += [(f"attributes={v!r}", _set("attributes", v), "attributes") for v in not_(dict)]
    cases += [(f"image={v!r}", _set("attributes.image", v), "attributes.image")
              for v in not_(dict)]
    cases += [(f"image url={v!r}", _set("attributes.image.url", v), "attributes.image.url")
              for v in not_(str)]
    return cases


BAD = _bad_cases()


@pytest.mark.parametrize("mutate,field", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_field_of_the_wrong_type_fails_its_sample_alone(mutate, field):
    samples = [good(i) for i in range(4)]
    samples[1] = mutate(samples[1])
    ds = decisions(text_of(samples))
    assert_only_failed(ds, 1, field)
    assert [d.uuid for d in ds][2:] == ["uuid-2", "uuid-3"]  # the others keep their identity


def test_every_failure_keeps_the_others_numbered_as_before():
    samples = [good(i) for i in range(4)]
    samples[1]["name"] = 7
    ds = decisions(text_of(samples))
    # A selected sample that fails keeps its number (as a skipped one does).
    assert [d.image_id for d in ds] == [1, 2, 3, 4]
    assert [d.sample.image_id for d in ds if d.sample] == [1, 3, 4]


OK_CASES = [
    ("name missing", _set("name", _DELETE), lambda s: s.name == "uuid-1"),
    ("name null", _set("name", None), lambda s: s.name == "uuid-1"),
    ("uuid missing", _set("uuid", _DELETE), lambda s: s.uuid == "" and s.name == "s1.jpg"),
    ("uuid null", _set("uuid", None), lambda s: s.uuid == ""),
    ("attributes missing", _set("attributes", _DELETE), lambda s: s.image_url is None),
    ("attributes null", _set("attributes", None), lambda s: s.image_url is None),
    ("image null", _set("attributes.image", None), lambda s: s.image_url is None),
    ("image url null", _set("attributes.image.url", None), lambda s: s.image_url is None),
    ("image url empty", _set("attributes.image.url", ""), lambda s: s.image_url is None),
    ("bitmap null", _set(f"{ATTRS}.segmentation_bitmap", None), lambda s: s.bitmap_url is None),
    ("bitmap url null", _set(f"{ATTRS}.segmentation_bitmap.url", None),
     lambda s: s.bitmap_url is None),
    ("annotations null", _set(f"{ATTRS}.annotations", None), lambda s: s.annotations == ()),
    ("annotation attributes null", _set(f"{ANN}.attributes", None),
     lambda s: s.annotations[0].attributes is None),
    ("metadata an array", _set("metadata", [1, 2]), lambda s: True),
    ("metadata a string", _set("metadata", "junk"), lambda s: True),
    ("metadata null", _set("metadata", None), lambda s: True),
    ("unknown label status", _set(f"{LABEL}.label_status", "FROBNICATED"),
     lambda s: s.label_status == "FROBNICATED"),
    ("extra fields", _set("frobnicate", {"deep": [[1]]}), lambda s: True),
]


@pytest.mark.parametrize("mutate,check", [c[1:] for c in OK_CASES], ids=[c[0] for c in OK_CASES])
def test_missing_or_null_fields_keep_their_fallback(mutate, check):
    samples = [good(i) for i in range(4)]
    samples[1] = mutate(samples[1])
    ds = decisions(text_of(samples))
    assert [f for _, f in fates(ds)] == ["exported"] * 4
    assert check(ds[1].sample)


@pytest.mark.parametrize("metadata", [[1], "junk", 5, None])
def test_non_object_metadata_matches_no_metadata_filter(metadata):
    samples = [good(i) for i in range(4)]
    samples[1]["metadata"] = metadata
    sel = release.Selection(filter_by_metadata=(("split", "train"),))
    ds = decisions(text_of(samples), sel)
    assert fates(ds)[1] == (1, "skipped")
    assert ds[1].skipped == "filtered out by --filter_by_metadata (no metadata)"


def test_a_filtered_out_sample_is_skipped_even_with_a_bad_name():
    samples = [good(i) for i in range(4)]
    samples[1]["name"] = ["junk"]
    samples[1]["labels"]["ground-truth"]["label_status"] = "REVIEWED"
    ds = decisions(text_of(samples), release.Selection(filter_by=("LABELED",)))
    assert fates(ds)[1] == (1, "skipped")


def test_vector_samples_ignore_a_bitmap_they_do_not_have():
    samples = [good(i) for i in range(2)]
    for s in samples:
        s["labels"]["ground-truth"]["attributes"] = {
            "annotations": [{"id": 1, "category_id": 1, "type": "bbox",
                             "points": [[0, 0], [2, 2]]}],
            "segmentation_bitmap": "whatever"}
    data = json.dumps(dict(release_dict(samples), dataset=dict(
        release_dict(samples)["dataset"], task_type="bboxes"))).encode()
    assert [f for _, f in fates(decisions(data))] == ["exported"] * 2


def test_messages_never_echo_a_huge_value():
    samples = [good(i) for i in range(4)]
    samples[1]["labels"]["ground-truth"]["attributes"]["annotations"][0]["id"] = ["x" * 10**6]
    reason = assert_only_failed(decisions(text_of(samples)), 1, f"{ATTRS}.annotations[0].id")
    assert len(reason) < 200


@pytest.mark.parametrize("path,value,field", [
    ("dataset.task_type", 5, "dataset.task_type"),
    ("dataset.name", ["x"], "dataset.name"),
    ("dataset.labelsets", "ground-truth", "dataset.labelsets"),
    ("dataset.task_attributes", [], "dataset.task_attributes"),
    ("dataset.task_attributes.categories", {"id": 1}, "dataset.task_attributes.categories"),
    ("dataset.samples", {"0": good(0)}, "dataset.samples"),
    ("dataset", [1], "dataset"),
    ("name", None, "name"),
])
def test_header_breakage_is_an_error_naming_the_field(path, value, field):
    rel = release_dict([good(i) for i in range(4)])
    *parents, last = path.split(".")
    obj = rel
    for k in parents:
        obj = obj[k]
    obj[last] = value
    assert release_error(json.dumps(rel).encode()).startswith(f"{field}: ")


# --------------------------------------------------------------------------- deep nesting


def _deep(n: int = DEEP) -> bytes:
    return b"[" * n + b"]" * n


def _sample_text(i: int, **raw_members: bytes) -> bytes:
    """good(i) as JSON text, with members given as raw JSON text added or replaced."""
    s = good(i)
    for k in raw_members:
        s[k] = f"@@{k}@@"
    text = json.dumps(s, separators=(",", ":")).encode()
    for k, v in raw_members.items():
        text = text.replace(json.dumps(f"@@{k}@@").encode(), v)
    return text


def _bounded(fn):
    """Runs fn(); returns its result and the peak of Python allocations, in bytes."""
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("member", ["metadata", "attributes", "labels", "frobnicate"])
def test_deep_junk_in_a_sample_fails_that_sample_alone(member):
    data = with_samples_text([_sample_text(0), _sample_text(1, **{member: _deep()}),
                              _sample_text(2), _sample_text(3)])
    ds, peak = _bounded(lambda: decisions(data))
    reason = assert_only_failed(ds, 1, member)
    assert reason == f"{member}: nested more than {release.MAX_DEPTH} levels deep"
    assert (ds[1].uuid, ds[1].name) == ("uuid-1", "s1.jpg")  # still named in the report
    assert peak < 30 * MiB  # ijson.items alone would need ~25 GB here
    pickle.dumps(ds)  # no RecursionError when a decision travels to a worker


def test_a_sample_that_is_itself_deep_junk_fails_alone():
    data = with_samples_text([_sample_text(0), _deep(), _sample_text(2), _sample_text(3)])
    ds = decisions(data)
    assert_only_failed(ds, 1, "sample[0]")
    assert ds[1].name == "#1"


def test_deep_junk_in_an_annotation_names_the_top_member():
    ann = b'[{"id":1,"category_id":1,"attributes":{"x":' + _deep() + b"}}]"
    label = b'{"ground-truth":{"label_status":"LABELED","attributes":{"annotations":' + ann + b"}}}"
    data = with_samples_text([_sample_text(0), _sample_text(1, labels=label), _sample_text(2),
                              _sample_text(3)])
    assert_only_failed(decisions(data), 1, "labels")


@pytest.mark.parametrize("where", ["before", "between", "after"])
def test_deep_junk_outside_the_samples_is_ignored(where):
    body = text_of([good(i) for i in range(4)])
    junk = b'"junk":' + _deep()
    if where == "before":
        data = b"{" + junk + b"," + body[1:]
    elif where == "after":
        data = body[:-1] + b"," + junk + b"}"
    else:  # inside `dataset`, next to the samples
        data = body.replace(b'"samples":', junk + b',"samples":')
    (info, ds), peak = _bounded(lambda: (info_of(data), decisions(data)))
    assert info.sample_count == 4 and info.max_depth > release.MAX_DEPTH
    assert [f for _, f in fates(ds)] == ["exported"] * 4
    assert peak < 30 * MiB


@pytest.mark.parametrize("path", ["dataset.task_attributes", "dataset.labelsets", "name", "tasks"])
def test_deep_junk_in_a_header_field_is_an_error_naming_it(path):
    rel = release_dict([good(0)])
    if path == "dataset.task_attributes":
        rel["dataset"]["task_attributes"]["x"] = "@@deep@@"
    elif path == "dataset.labelsets":
        rel["dataset"]["labelsets"].append("@@deep@@")
    elif path == "tasks":
        rel["tasks"] = "@@deep@@"
    else:
        rel["name"] = "@@deep@@"
    data = json.dumps(rel).encode().replace(b'"@@deep@@"', _deep())
    message, peak = _bounded(lambda: release_error(data))
    assert message.startswith(f"{path}: nested more than {release.MAX_DEPTH} levels deep")
    assert peak < 30 * MiB


def test_an_unclosed_deep_file_is_invalid_json():
    data = with_samples_text([_sample_text(0)])[:-3] + b',{"metadata":' + b"[" * DEEP
    assert "premature EOF" in release_error(data)


@pytest.mark.parametrize("depth,fails", [(release.MAX_DEPTH - 1, False), (release.MAX_DEPTH, True)])
def test_the_depth_limit_counts_levels_inside_the_sample(depth, fails):
    # The sample object is level 1; its metadata adds `depth` levels below it.
    data = with_samples_text([_sample_text(0), _sample_text(1, metadata=_deep(depth)),
                              _sample_text(2), _sample_text(3)])
    ds = decisions(data)
    if fails:
        assert_only_failed(ds, 1, "metadata")
    else:
        assert [f for _, f in fates(ds)] == ["exported"] * 4


def test_the_capped_reader_decides_exactly_like_the_fast_one():
    samples = [good(i) for i in range(6)]
    samples[1]["name"] = 5
    samples[2]["labels"] = None
    samples[3]["uuid"] = "uuid-0"
    samples[4]["metadata"] = {"a": [[{"b": [1.5, -2, True, None, "\u00e9"]}]]}
    data = text_of(samples)
    info = info_of(data)
    assert info.max_depth <= release.MAX_DEPTH and not info.oversized  # the fast path
    slow = dataclasses.replace(info, max_depth=release.MAX_DEPTH + 1)
    fast_ds = list(release.decide(io.BytesIO(data), info, SEL))
    slow_ds = list(release.decide(io.BytesIO(data), slow, SEL))
    assert [(d.position, d.image_id, d.status, d.sample, d.skipped,
             d.failed and d.failed.reason) for d in fast_ds] == [
        (d.position, d.image_id, d.status, d.sample, d.skipped,
         d.failed and d.failed.reason) for d in slow_ds]
    assert list(_capped_items(io.BytesIO(data), info)) == samples


# --------------------------------------------------------------------------- long values


def test_a_few_mb_single_line_release_is_read_in_full():
    n = 10_000
    data = text_of([good(i) for i in range(n)])
    assert len(data) > 3 * MiB and b"\n" not in data
    info = info_of(data)
    assert info.sample_count == n
    ds = decisions(data)
    assert sum(d.sample is not None for d in ds) == n
    assert ds[-1].sample.name == f"s{n - 1}.jpg" and ds[-1].sample.image_id == n


@pytest.mark.parametrize("member", ["name", "metadata"])
def test_a_string_over_the_token_limit_refuses_the_file_naming_the_sample(member):
    samples = [good(i) for i in range(4)]
    samples[2][member] = "x" * (release.MAX_TOKEN_BYTES + 4 * MiB)
    message, peak = _bounded(lambda: release_error(text_of(samples)))
    assert message.startswith("release file: a JSON string or number of more than 16 MiB")
    assert "(in dataset.samples[2])" in message
    assert "refused to keep memory bounded" in message
    # The parser stops at the limit; the file itself (built here) is the rest of the peak.
    assert peak < 2.5 * len(samples[2][member])


def test_a_number_over_the_token_limit_outside_the_samples_is_named():
    data = FOUR[:-1] + b',"x":' + b"1" * (release.MAX_TOKEN_BYTES + MiB) + b"}"
    message = release_error(data)
    assert message.startswith("release file: a JSON string or number of more than")
    assert "(in x)" in message


def test_a_long_name_under_the_limit_is_read():
    samples = [good(i) for i in range(4)]
    samples[1]["name"] = "n" * (4 * MiB) + ".jpg"
    ds = decisions(text_of(samples))
    assert [f for _, f in fates(ds)] == ["exported"] * 4
    assert len(ds[1].sample.name) == 4 * MiB + 4


def test_an_oversized_sample_fails_alone_and_is_never_built(monkeypatch):
    monkeypatch.setattr(jsonstream, "MAX_VALUE_BYTES", 2 * MiB)
    samples = [good(i) for i in range(4)]
    samples[1]["metadata"] = {"values": list(range(1_000_000))}  # ~7 MB of small numbers
    data = text_of(samples)
    info = info_of(data)
    assert info.oversized == (1,)
    ds, peak = _bounded(lambda: list(release.decide(io.BytesIO(data), info, SEL)))
    reason = assert_only_failed(ds, 1, "sample")
    assert reason == "sample: more than 2 MiB of JSON (the limit that keeps memory bounded)"
    assert (ds[1].uuid, ds[1].name) == ("uuid-1", "s1.jpg")
    assert peak < 10 * MiB  # a built list of a million ints alone takes ~36 MB


def test_an_oversized_header_field_refuses_the_file(monkeypatch):
    monkeypatch.setattr(jsonstream, "MAX_VALUE_BYTES", MiB)
    rel = release_dict([good(0)])
    rel["dataset"]["task_attributes"]["categories"] = [
        {"id": i, "name": f"c{i}"} for i in range(1, 100_000)]
    message = release_error(json.dumps(rel).encode())
    assert message.startswith("release file: a JSON value of more than 1 MiB")
    assert "(in dataset.task_attributes)" in message


# --------------------------------------------------------------------------- duplicate uuids

UUIDS = ["a", "b", "a", "c", "b", "a", None, None, "", ""]


def _dup_release(uuids=UUIDS) -> bytes:
    return text_of([good(i, uuid=u) for i, u in enumerate(uuids)])


def test_later_occurrences_of_a_uuid_fail_naming_the_first():
    ds = decisions(_dup_release())
    assert fates(ds) == [
        (0, "exported"), (1, "exported"),
        (2, "failed: uuid: duplicate uuid (first at position 0)"),
        (3, "exported"),
        (4, "failed: uuid: duplicate uuid (first at position 1)"),
        (5, "failed: uuid: duplicate uuid (first at position 0)"),
        # no uuid (null or empty) is never a duplicate
        (6, "exported"), (7, "exported"), (8, "exported"), (9, "exported"),
    ]
    assert all(d.failed.stage == "read" for d in ds if d.failed)
    assert [d.image_id for d in ds] == list(range(1, 11))  # failed ones keep their number


def test_duplicates_are_found_by_the_header_scan_and_carried_small():
    info = info_of(_dup_release())
    assert list(info.duplicates.pairs()) == [(2, 0), (4, 1), (5, 0)]
    assert len(info.duplicates) == 3
    assert pickle.loads(pickle.dumps(info)) == info
    clean = info_of(FOUR)
    assert len(clean.duplicates) == 0 and len(pickle.dumps(clean)) < 2000


def test_a_release_of_one_uuid_repeated_stays_compact():
    n = 20_000
    data = text_of([good(i, uuid="same") for i in range(n)])
    info = info_of(data)
    assert len(info.duplicates) == n - 1
    assert len(pickle.dumps(info.duplicates)) < 16 * n + 1000  # 16 bytes a duplicate
    ds = decisions(data)
    assert sum(d.sample is not None for d in ds) == 1
    assert ds[-1].failed.reason == "uuid: duplicate uuid (first at position 0)"


def test_the_header_scan_holds_no_uuid_strings():
    peaks = {}
    for n in (5_000, 20_000):
        data = text_of([good(i, uuid=f"{i:036d}") for i in range(n)])
        header, peaks[n] = _bounded(lambda data=data: release.scan_header(io.BytesIO(data)))
        assert len(repr(header)) < 5000
    # A hash, its sorted copy and a mask: ~25 bytes a sample, where a set of the uuid
    # strings would take over 100 (the rest of the peak is one chunk's events).
    assert peaks[20_000] - peaks[5_000] < 40 * 15_000


def test_a_later_duplicate_that_is_filtered_out_is_only_skipped():
    samples = [good(i, uuid=u) for i, u in enumerate(["a", "b", "a", "a"])]
    samples[2]["labels"]["ground-truth"]["label_status"] = "REVIEWED"
    ds = decisions(text_of(samples), release.Selection(filter_by=("LABELED",)))
    assert fates(ds) == [(0, "exported"), (1, "exported"), (2, "skipped"),
                         (3, "failed: uuid: duplicate uuid (first at position 0)")]


def test_the_first_occurrence_wins_whatever_its_fate():
    # Policy: "first" is the first in the file, even when that one is filtered out or fails.
    samples = [good(i, uuid=u) for i, u in enumerate(["a", "a", "b", "b"])]
    samples[0]["labels"]["ground-truth"]["label_status"] = "REVIEWED"
    samples[2]["name"] = 5
    ds = decisions(text_of(samples), release.Selection(filter_by=("LABELED",)))
    assert fates(ds) == [(0, "skipped"),
                         (1, "failed: uuid: duplicate uuid (first at position 0)"),
                         (2, "failed: name: expected a string, got a number"),
                         (3, "failed: uuid: duplicate uuid (first at position 2)")]


def test_duplicates_in_a_v1_release_with_top_level_samples():
    v1 = {"name": "old", "tasks": [{"name": "segmentation", "task_type": "segmentation-bitmap",
                                    "attributes": {"categories": [{"id": 1, "name": "a"}]}}],
          "samples": []}
    for i, u in enumerate(["x", "y", "x"]):
        s = good(i, uuid=u)
        s["labels"] = {"segmentation": s["labels"]["ground-truth"]}
        v1["samples"].append(s)
    ds = decisions(json.dumps(v1).encode())
    assert fates(ds)[2] == (2, "failed: uuid: duplicate uuid (first at position 0)")


def test_dry_run_plan_counts_duplicates_and_bad_samples():
    samples = [good(i, uuid=u) for i, u in enumerate(["a", "b", "a", "c"])]
    samples[3]["attributes"] = {"image": "nope"}
    data = text_of(samples)
    plan = release.plan(io.BytesIO(data), info_of(data), SEL)
    assert plan["to_export"] == 2 and plan["malformed"] == 2
    assert plan["malformed_examples"] == [
        "#2: uuid: duplicate uuid (first at position 0)",
        "#3: attributes.image: expected an object, got a string"]


@pytest.mark.parametrize("chunk_samples", [1, 2, 100])
def test_chunked_split_decides_like_the_reader(tmp_path, chunk_samples):
    samples = [good(i, uuid=u) for i, u in enumerate(UUIDS)]
    samples[7]["labels"] = "junk"
    data = with_samples_text([json.dumps(s, separators=(",", ":")).encode() for s in samples]
                             + [_sample_text(10, metadata=_deep())])
    info = info_of(data)
    chunks = chunking.split(io.BytesIO(data), info, SEL, str(tmp_path), chunk_samples)
    split_fates = []
    for c in chunks:
        for kind, item, _ in chunking.chunk_items(c.path, {}):
            if kind == "sample":
                split_fates.append((item.position, "exported"))
            else:
                split_fates.append((item.position, f"{item.status}: {item.reason}"))
    reader_fates = []
    for d in release.decide(io.BytesIO(data), info, SEL):
        row = chunking.decision_row(d)
        reader_fates.append((d.position, "exported") if row is None
                            else (d.position, f"{row.status}: {row.reason}"))
    assert split_fates == reader_fates
    assert (2, "failed: uuid: duplicate uuid (first at position 0)") in split_fates
    deep = f"failed: metadata: nested more than {release.MAX_DEPTH} levels deep"
    assert (10, deep) in split_fates
    assert sum(c.samples for c in chunks) == 6


def test_release_info_without_scan_fields_has_no_duplicates():
    # ReleaseInfo built by hand (tests, older pickles) reads samples as before.
    info = info_of(FOUR)
    bare = release.ReleaseInfo(info.name, info.dataset_name, info.owner, info.task_type,
                               info.layout, info.labelsets, info.labelset, info.categories,
                               info.samples_prefix, info.sample_count)
    assert [f for _, f in fates(list(release.decide(io.BytesIO(FOUR), bare, SEL)))] == [
        "exported"] * 4
    assert copy.deepcopy(bare) == bare
