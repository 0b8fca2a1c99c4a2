"""Run report combiner (order-independent) and the preview contact sheet."""

import io
import pickle

import numpy as np
import pytest
from PIL import Image

from transforms import release
from transforms.model.taxonomy import Taxonomy
from transforms.model.types import ManifestRow
from transforms.summary.preview import THUMB, contact_sheet, thumbnail
from transforms.summary.report import MAX_LISTED, ReportAccumulator, format_table

HEADER = {"release": {"name": "r", "task_type": "segmentation-bitmap"}, "options": {},
          "category_names": {1: "a", 2: "b"}}


def _rows():
    rows = []
    for p in range(120):
        if p % 10 == 0:
            rows.append(ManifestRow(p, f"u{p}", f"s{p}", "failed", p + 1,
                                    f"bitmap: HTTP 404 for https://h/{p}.png?<redacted>", "fetch"))
        elif p % 11 == 0:
            rows.append(ManifestRow(p, f"u{p}", f"s{p}", "failed", p + 1,
                                    f"labels.gt.attributes.annotations[{p}].id: expected an "
                                    f"integer in 1..16777215, got '{p}'", "read"))
        elif p % 7 == 0:
            rows.append(ManifestRow(p, f"u{p}", f"s{p}", "skipped", None, "no label in this labelset"))
        else:
            rows.append(ManifestRow(p, f"u{p}", f"s{p}", "exported", p + 1, num_instances=2,
                                    category_stats=((1, 1, 10), (2, 1, p)),
                                    file_sizes=(("semantic", 100), ("yolo", 7)),
                                    left_out=("instance",) if p % 3 == 0 else (),
                                    warnings=(f"annotations without pixels: {p}",
                                              f"frame 2: annotations without pixels: {p}")
                                    if p % 2 else ()))
    return rows


@pytest.mark.parametrize("parts", [1, 2, 5, 13])
def test_report_is_identical_for_any_partition_and_order(parts):
    acc = pickle.loads(pickle.dumps(ReportAccumulator()))
    rows = _rows()
    chunks = [rows[i::parts] for i in range(parts)]

    def fold(chunk):
        a = acc.create()
        for r in chunk:
            acc.add(a, r)
        return a

    forward = acc.finalize(acc.merge([fold(c) for c in chunks]), HEADER)
    backward = acc.finalize(acc.merge([fold(c) for c in reversed(chunks)]), HEADER)
    assert forward == backward
    exported = [r for r in rows if r.status == "exported"]
    failed = [p for p in range(120) if p % 10 == 0 or p % 11 == 0]
    warned = [r.name for r in exported if r.position % 2]
    assert forward["samples"] == {"in_release": 120, "selected": 120, "exported": len(exported),
                                  "failed": len(failed), "skipped": 120 - len(failed) - len(exported),
                                  "with_warnings": len(warned)}
    assert forward["categories"] == [
        {"id": 1, "name": "a", "instances": len(exported), "pixels": 10 * len(exported)},
        {"id": 2, "name": "b", "instances": len(exported), "pixels": sum(r.position for r in exported)}]
    assert forward["formats"]["semantic"] == {"files": len(exported), "bytes": 100 * len(exported),
                                              "left_out": 0}
    assert forward["formats"]["instance"] == {
        "files": 0, "bytes": 0, "left_out": sum(r.position % 3 == 0 for r in exported)}
    assert [f["position"] for f in forward["failures"]] == failed
    assert forward["failed_by_stage"] == {"fetch": 12, "read": len(failed) - 12}
    # Grouped by what the reasons share: URLs, indexes and numbers taken out.
    assert forward["failures_by_reason"] == [
        {"stage": "fetch", "reason": "bitmap: HTTP 404", "samples": 12,
         "examples": ["s0", "s10", "s20"]},
        {"stage": "read", "reason": "labels.gt.attributes.annotations[N].id: expected an "
                                    "integer in 1..N", "samples": len(failed) - 12,
         "examples": ["s11", "s22", "s33"]}]
    assert forward["warnings_by_reason"] == [  # a sample counts once per kind
        {"warning": "annotations without pixels", "samples": len(warned),
         "examples": warned[:3]}]


def test_report_lists_the_lowest_failures_and_the_terminal_groups_them():
    acc = ReportAccumulator()
    a = acc.create()
    for p in range(3 * MAX_LISTED, 0, -1):
        acc.add(a, ManifestRow(p, "u", f"s{p}", "failed", None,
                               "bitmap: file not found: labels/x.png" if p % 2 else "corrupt",
                               "decode"))
    acc.add(a, ManifestRow(0, "u", "ok", "exported", 1, warnings=("image size not checked: "
                                                                   "image: HTTP 403 for h://x",)))
    report = acc.finalize(a, HEADER)
    assert [f["position"] for f in report["failures"]] == list(range(1, MAX_LISTED + 1))
    lines = format_table(report).splitlines()
    assert lines[-4:] == [
        "  failed       75 x bitmap: file not found at decode  (e.g. s1, s3, s5, ...)",
        "  failed       75 x corrupt at decode  (e.g. s2, s4, s6, ...)",
        "  warning       1 x image size not checked  (e.g. ok)",
        "  every failed sample, with its reason: failures.jsonl"]


def _taxonomy():
    cats = [{"id": 1, "name": "a", "color": [200, 0, 0]}, {"id": 2, "name": "b", "color": [0, 0, 200]}]
    return Taxonomy(release.parse_categories(cats, "c"))


def test_thumbnail_tints_exported_instances_and_outlines_them():
    id_map = np.zeros((120, 160), np.uint32)
    id_map[20:80, 20:80] = 5      # exported, category 1
    id_map[90:110, 100:150] = 9   # not exported: stays the plain image
    img = io.BytesIO()
    Image.fromarray(np.full((120, 160, 3), 100, np.uint8)).save(img, format="PNG")
    thumb = thumbnail(id_map, {5: 1}, _taxonomy(), img.getvalue())
    assert thumb.shape == (240, 320, 3)  # scaled to fit THUMB
    assert THUMB == (320, 240)
    assert tuple(thumb[100, 100]) == (150, 50, 50)   # 50 % image + 50 % category colour
    assert tuple(thumb[200, 250]) == (100, 100, 100)  # orphan id: not tinted
    assert tuple(thumb[10, 10]) == (100, 100, 100)    # background
    assert (thumb[40, 40:160] == 255).all(axis=-1).any()  # a white outline on the top edge


def test_thumbnail_does_not_decode_a_picture_above_the_limit(monkeypatch):
    from transforms.summary import preview

    id_map = np.zeros((120, 160), np.uint32)
    img = io.BytesIO()
    Image.fromarray(np.full((120, 160, 3), 100, np.uint8)).save(img, format="PNG")
    assert tuple(thumbnail(id_map, {}, _taxonomy(), img.getvalue())[10, 10]) == (100, 100, 100)
    monkeypatch.setattr(preview, "MAX_DECODE_PIXELS", 120 * 160 - 1)
    assert tuple(thumbnail(id_map, {}, _taxonomy(), img.getvalue())[10, 10]) == (96, 96, 96)  # gray


def test_contact_sheet_is_deterministic_and_has_every_thumbnail():
    thumbs = [(f"s{i}", np.full((240, 320, 3), 40 * i, np.uint8)) for i in range(4)]
    a, b = contact_sheet(thumbs, _taxonomy()), contact_sheet(thumbs, _taxonomy())
    assert a == b
    sheet = np.asarray(Image.open(io.BytesIO(a)))
    assert sheet.shape[1] >= 3 * 320 and sheet.shape[0] >= 2 * 240
    assert tuple(sheet[8 + 100, 8 + 100]) == (0, 0, 0)            # thumbnail 0
    assert tuple(sheet[8 + 100, 8 + 328 + 100]) == (40, 40, 40)   # thumbnail 1, next column
