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
            rows.append(ManifestRow(p, f"u{p}", f"s{p}", "failed", p + 1, "HTTP 404", "fetch"))
        elif p % 7 == 0:
            rows.append(ManifestRow(p, f"u{p}", f"s{p}", "skipped", None, "no label in this labelset"))
        else:
            rows.append(ManifestRow(p, f"u{p}", f"s{p}", "exported", p + 1, num_instances=2,
                                    category_stats=((1, 1, 10), (2, 1, p)),
                                    file_sizes=(("semantic", 100), ("yolo", 7))))
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
    assert forward["samples"] == {"in_release": 120, "selected": 120, "exported": len(exported),
                                  "failed": 12, "skipped": 120 - 12 - len(exported), "with_warnings": 0}
    assert forward["categories"] == [
        {"id": 1, "name": "a", "instances": len(exported), "pixels": 10 * len(exported)},
        {"id": 2, "name": "b", "instances": len(exported), "pixels": sum(r.position for r in exported)}]
    assert forward["formats"]["semantic"] == {"files": len(exported), "bytes": 100 * len(exported)}
    assert [f["position"] for f in forward["failures"]] == list(range(0, 120, 10))
    assert forward["failed_by_stage"] == {"fetch": 12}


def test_report_lists_the_lowest_failures_and_points_to_the_rest():
    acc = ReportAccumulator()
    a = acc.create()
    for p in range(3 * MAX_LISTED, 0, -1):
        acc.add(a, ManifestRow(p, "u", f"s{p}", "failed", None, "corrupt", "decode"))
    report = acc.finalize(a, HEADER)
    assert [f["position"] for f in report["failures"]] == list(range(1, MAX_LISTED + 1))
    text = format_table(report)
    assert "FAILED #1 s1 [decode]: corrupt" in text
    assert f"... {2 * MAX_LISTED} more failures in failures.jsonl" in text


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
