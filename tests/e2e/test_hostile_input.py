"""Hostile input end to end, through the real pipeline.

Sample names: every output file lands inside OUT, belongs to its own sample (checked pixel for
pixel and byte for byte against what the test drew) and no sample's file replaces another's,
whatever the runner or chunking. Decompression bombs (a few KB of PNG declaring billions of
pixels): the sample fails or warns with the size named, the others export, and the process's
peak memory stays far below what decoding would take.
"""

from __future__ import annotations

import io
import json
import os
import struct
import unicodedata
import zlib

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from benchmarks import synth
from benchmarks.verify import SPEC_COLORMAP, read_png
from pipeline.run import run
from tests.conftest import tree

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
H, W = 8, 12
PERSON, SKY = 1, 5  # synth.CATEGORIES: a thing and a stuff category
CLASS = {c["id"]: i for i, c in enumerate(synth.CATEGORIES)}  # YOLO class positions
COLOR = {c["id"]: tuple(c["color"]) for c in synth.CATEGORIES if c.get("color")}

CAFE = "café.jpg"
NAMES = [
    "../../x.jpg", "../x.jpg", "/etc/passwd", "/tmp/evil.jpg", "C:\\x.jpg", "C:/x.jpg",
    "\\\\server\\share\\x.jpg", "x__2.jpg",  # looks like the name "../x.jpg" is given below
    "a\x00b.jpg", "new\nline.jpg", "car\rriage.jpg", "tab\t.jpg", "esc\x1b[31m.jpg", "del\x7f.jpg",
    "c1\x85\x9b.jpg", "L" * 296 + ".jpg", "F" * 300 + "/f.jpg", "é" * 200 + ".jpg",
    "..", ".", "", "   ", " x.jpg. ",
    unicodedata.normalize("NFC", CAFE), unicodedata.normalize("NFD", CAFE), "CAFÉ.jpg",
    "CON.jpg", "nul.jpg", "COM1.txt.jpg", "stream.jpg:ads",
    "X.jpg", "x.jpg", "x.png",
    "a/b.jpg", "a\\b.jpg", "a_b.jpg",
    "d.jpg", "d.jpg/e.jpg", "D.JPG/f.jpg", "t.txt/g.jpg",
    "q?.jpg", "q*.jpg", "q_.jpg", "q|.jpg", "q<.jpg",
    # images of an unknown format (copied without a recognised extension)
    "u", "u/v", "a.jpg", "a.jpg.q",
]
UNKNOWN_FORMAT = {"u", "u/v", "a.jpg.q"}
# Absolute targets the names point at: an export must never touch them.
ABSOLUTE = ("/etc/passwd", "/tmp/evil.jpg", "/tmp/evil.png", "/tmp/x.jpg", "/tmp/x.png")


def _id_map(k: int) -> np.ndarray:
    """Sample k's own layout: person (id 1) on the first k+1 pixels, sky (id k+2) on the
    next two, in raster order; no two samples have the same map."""
    ids = np.zeros((H, W), np.uint32)
    ids.flat[: k + 1] = 1
    ids.flat[k + 1: k + 3] = k + 2
    return ids


def _image(k: int) -> bytes:
    """Sample k's own image bytes: a PNG of its own colour, or unknown data."""
    if NAMES[k] in UNKNOWN_FORMAT:
        return f"sample {k}: a picture in a format nobody knows".encode()
    buf = io.BytesIO()
    Image.fromarray(np.full((H, W, 3), (k, 255 - k, 7), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _annotations(k: int) -> list[dict]:
    return [{"id": 1, "category_id": PERSON}, {"id": k + 2, "category_id": SKY}]


def _write_release(root) -> str:
    """Assets as relative files without an extension (the name's extension is used)."""
    (root / "assets").mkdir(parents=True)
    entries = []
    for k, name in enumerate(NAMES):
        (root / "assets" / f"bitmap{k}.png").write_bytes(synth.id_map_to_png(_id_map(k)))
        (root / "assets" / f"image{k}").write_bytes(_image(k))
        entries.append(synth.sample_entry(name, f"u{k}", f"assets/image{k}",
                                          f"assets/bitmap{k}.png", _annotations(k)))
    return synth.write_release(str(root), entries)


def _outside(tmp, out) -> dict[str, bytes]:
    """Every file under tmp except those in OUT, and the absolute targets' state."""
    files = {p: b for p, b in tree(str(tmp)).items() if not p.startswith(os.path.relpath(out, tmp))}
    for p in ABSOLUTE:
        files[p] = os.stat(p).st_mtime_ns if os.path.lexists(p) else None
    return files


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(release path, OUT, files outside OUT before, after): OUT nested four levels deep, so a
    name climbing out with ../ would land in the test's own folder."""
    tmp = tmp_path_factory.mktemp("hostile")
    path = _write_release(tmp / "release")
    out = tmp / "a" / "b" / "c" / "out"
    before = _outside(tmp, out)
    # --stuff_as_instances: the sky region (its id differs per sample) is an object in COCO
    # and YOLO too, so that every format shows which sample's files these are.
    run(["--release", path, "--output", str(out), "--chunk_samples", "0",
         "--stuff_as_instances", *IN_MEMORY])
    return path, out, before, _outside(tmp, out)


def _manifest(out) -> list[dict]:
    return pq.read_table(out / "manifest" / "manifest-00000-of-00001.parquet").to_pylist()


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def test_every_hostile_name_exports_its_own_files_inside_out(exported):
    _, out, before, after = exported
    assert after == before  # nothing created, changed or removed outside OUT
    real_out = os.path.realpath(out)
    rows = _manifest(out)
    assert [r["position"] for r in rows] == list(range(len(NAMES)))
    assert [r["status"] for r in rows] == ["exported"] * len(NAMES)
    assert (out / "failures.jsonl").read_text() == ""
    coco = json.loads((out / "coco-instance.json").read_text())
    coco_images = {im["id"]: im for im in coco["images"]}
    coco_anns: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        coco_anns.setdefault(a["image_id"], []).append(a)
    panoptic = {a["image_id"]: a for a in json.loads((out / "coco-panoptic.json").read_text())["annotations"]}

    # Every format exported (yolo-seg is opt-in, its column stays null): the same for all rows.
    columns = [c for c in rows[0] if c.endswith("_path") and rows[0][c] is not None]
    assert all([c for c in r if c.endswith("_path") and r[c] is not None] == columns
               for r in rows)
    assert len(columns) == 7  # the image and the six default per-sample formats
    seen: dict[str, str] = {}
    for row in rows:
        k = int(row["uuid"][1:])
        assert row["name"] == (NAMES[k] or row["uuid"])  # an empty name is reported by uuid
        assert row["image_id"] == k + 1 and row["num_instances"] == 2
        ids = _id_map(k)
        for column in columns:
            rel = row[column]
            # Inside OUT once every symlink is resolved, a regular file, and nobody else's
            # (case-insensitively: the export must also be safe on macOS and Windows).
            full = os.path.realpath(os.path.join(real_out, rel))
            assert full.startswith(real_out + os.sep) and os.path.isfile(full), (row["name"], rel)
            assert os.path.relpath(full, real_out) == rel, rel
            assert seen.setdefault(rel.casefold(), row["name"]) == row["name"], rel

        # every artifact holds this sample's content, not another's
        assert (out / row["image_path"]).read_bytes() == _image(k), row["name"]
        instance = read_png(str(out / row["instance_path"]))
        assert instance.dtype == np.uint16 and np.array_equal(instance, ids), row["name"]
        semantic = np.where(ids == 1, PERSON, np.where(ids > 1, SKY, 0))
        assert np.array_equal(read_png(str(out / row["semantic_path"])), semantic), row["name"]
        sem_color = np.zeros((H, W, 3), np.uint8)
        sem_color[ids == 1], sem_color[ids > 1] = COLOR[PERSON], COLOR[SKY]
        assert np.array_equal(read_png(str(out / row["semantic_color_path"])), sem_color)
        inst_color = np.zeros((H, W, 3), np.uint8)
        inst_color[ids == 1], inst_color[ids > 1] = SPEC_COLORMAP[0], SPEC_COLORMAP[(k + 1) % 36]
        assert np.array_equal(read_png(str(out / row["instance_color_path"])), inst_color)
        lines = []
        for a in _annotations(k):
            x, y, w, h = _box(ids == a["id"])
            lines.append(f"{CLASS[a['category_id']]} {(x + w / 2) / W:.6f} {(y + h / 2) / H:.6f} "
                         f"{w / W:.6f} {h / H:.6f}")
        assert (out / row["yolo_path"]).read_text().splitlines() == lines, row["name"]

        # COCO: the image entry names this sample's copied file; its masks are this sample's
        image = coco_images[row["image_id"]]
        assert image == {"id": k + 1, "file_name": row["image_path"][len("images/"):],
                         "height": H, "width": W}
        anns = sorted(coco_anns[row["image_id"]], key=lambda a: a["id"])
        assert [a["category_id"] for a in anns] == [PERSON, SKY]
        for a, iid in zip(anns, (1, k + 2)):
            assert np.array_equal(mask_utils.decode(a["segmentation"]).astype(bool), ids == iid)
        pan = panoptic[row["image_id"]]
        assert "coco-panoptic/" + pan["file_name"] == row["coco_panoptic_path"]
        rgb = read_png(str(out / row["coco_panoptic_path"])).astype(np.uint32)
        segments = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        by_category = {s["category_id"]: s["id"] for s in pan["segments_info"]}
        assert sorted(by_category) == [PERSON, SKY]
        assert np.array_equal(segments == by_category[PERSON], ids == 1)
        assert np.array_equal(segments == by_category[SKY], ids > 1)
        assert not segments[ids == 0].any()

    # Nothing else in the per-sample folders: no leftovers of an overwritten or failed sample.
    written = [r[c] for r in rows for c in columns]
    folders = {rel.split("/")[0] for rel in written}
    assert sorted(p.replace(os.sep, "/") for p in tree(str(out)) if p.split(os.sep)[0] in folders) \
        == sorted(written)


def _id(name: str) -> int:
    return NAMES.index(name) + 1


def test_names_get_the_documented_safe_stems(exported):
    _, out, _, _ = exported
    image = {r["name"]: r["image_path"] for r in _manifest(out)}
    assert image["../../x.jpg"] == "images/x.jpg"  # first in release order keeps the name
    assert image["x__2.jpg"] == "images/x__2.jpg"  # a literal name wins over a generated one
    assert image["../x.jpg"] == "images/x__2_2.jpg"
    assert image["/etc/passwd"] == "images/etc/passwd.png"  # format read from the bytes
    assert image["/tmp/evil.jpg"] == "images/tmp/evil.jpg"
    assert image["\\\\server\\share\\x.jpg"] == "images/server/share/x.jpg"
    assert image["a\x00b.jpg"] == "images/a_b.jpg"
    assert image["a_b.jpg"] == f"images/a_b__{_id('a_b.jpg')}.jpg"
    backslash = "a\\b.jpg"
    assert image["a/b.jpg"] == "images/a/b.jpg" and image[backslash] == f"images/a/b__{_id(backslash)}.jpg"
    assert image["CON.jpg"] == "images/_CON.jpg" and image["nul.jpg"] == "images/_nul.jpg"
    nfd = unicodedata.normalize("NFD", CAFE)
    assert image[CAFE] == "images/café.jpg" and image[nfd] == f"images/café__{_id(nfd)}.jpg"
    # A folder never has a file's name: images/d.jpg is sample d.jpg's image, so sample
    # d.jpg/e.jpg gets the folder d.jpg_ (both export, whatever order they are written in).
    assert image["d.jpg"] == "images/d.jpg" and image["d.jpg/e.jpg"] == "images/d.jpg_/e.jpg"
    assert image["D.JPG/f.jpg"] == "images/D.JPG_/f.jpg" and image["t.txt/g.jpg"] == "images/t.txt_/g.jpg"
    # An image of unknown format is copied as .bin: "u" cannot block the folder of "u/v", and
    # "a.jpg.q" (stem a.jpg) cannot replace the image of "a.jpg".
    assert image["u"] == "images/u.bin" and image["u/v"] == "images/u/v.bin"
    assert image["a.jpg"] == "images/a.jpg" and image["a.jpg.q"] == "images/a.jpg.bin"
    for name in ("L" * 296 + ".jpg", "F" * 300 + "/f.jpg", "é" * 200 + ".jpg"):
        assert all(len(part.encode()) <= 121 + len(".jpg") for part in image[name].split("/")), name


def test_chunked_export_of_hostile_names_is_byte_identical(exported, tmp_path):
    path, out, _, _ = exported
    chunked = tmp_path / "chunked"
    run(["--release", path, "--output", str(chunked), "--chunk_samples", "3",
         "--stuff_as_instances", *IN_MEMORY])
    a, b = tree(str(out)), tree(str(chunked))
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []


def test_a_name_too_deep_for_the_file_system_fails_alone_and_leaves_none_of_its_files(tmp_path):
    """Components are cut to 120 bytes, not their number. A name whose image path just fits in
    Linux's PATH_MAX (4096 bytes with the NUL) but whose longer per-format paths do not fails
    at the write stage after its image was written; that image is removed again."""
    out = tmp_path / "out"
    room = 4095 - len(f"{out}/images/.jpg")  # bytes left for the stem
    folders = (room - 20) // 100
    stem = "/".join(["F" * 99] * folders + ["f" * (room - 100 * folders)])
    assert len(f"{out}/images/{stem}.jpg") == 4095
    ids = _id_map(0)
    (tmp_path / "bitmap.png").write_bytes(synth.id_map_to_png(ids))
    (tmp_path / "image").write_bytes(_image(0))
    path = synth.write_release(str(tmp_path), [
        synth.sample_entry(stem + ".jpg", "deep", "image", "bitmap.png", _annotations(0)),
        synth.sample_entry("ok.jpg", "ok", "image", "bitmap.png", _annotations(0))])
    counts = run(["--release", path, "--output", str(out), *IN_MEMORY])
    assert counts["samples_exported"] == 1 and counts["samples_failed"] == 1
    failure = json.loads((out / "failures.jsonl").read_text())
    assert failure["uuid"] == "deep" and failure["stage"] == "write"
    # the file that could not be written is named (not the image written before it)
    too_long = failure["reason"].removeprefix("cannot write ").removesuffix(": File name too long")
    assert not too_long.startswith("images/") and too_long.endswith(".png")
    assert len(f"{out}/{too_long}") > 4095
    files = tree(str(out))
    assert not [p for p in files if "FFFF" in p]
    assert files[os.path.join("images", "ok.jpg")] == _image(0)


# --------------------------------------------------------------------- decompression bombs


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, depth: int, color: int, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)
            + _chunk(b"IEND", b""))


def _declared_png(width: int, height: int) -> bytes:
    """An 8-bit RGBA PNG whose header declares width x height pixels: 80 bytes in all."""
    return _png(width, height, 8, 6, zlib.compress(bytes(64)))


def _blank_png(width: int, height: int) -> bytes:
    """A complete, valid black 1-bit PNG: some 20 KB that Pillow decodes to width x height
    bytes (and three times that as RGB)."""
    return _png(width, height, 1, 0, zlib.compress(bytes(1 + (width + 7) // 8) * height, 9))


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


def _peak_growth(argv: list[str]) -> int:
    """Runs the export in this process; how far its peak RSS rose above the RSS before (bytes)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak (VmHWM) to the current RSS
    before = _status("VmRSS")
    run(argv)
    return _status("VmHWM") - before


# Decoding any one of the bombs below would take more than this (the preview decoding the
# 13 000 x 13 000 image took 1 GB; the vector preview map 1.8 GB); the whole export of these
# tiny samples takes about 150 MB.
MAX_GROWTH = 500 << 20


def test_bitmap_and_image_bombs_are_refused_without_decoding(tmp_path):
    """All six samples are among the first (the preview's), so their images are opened."""
    assets = tmp_path / "release" / "assets"
    assets.mkdir(parents=True)
    ids = _id_map(3)
    files = {"bitmap.png": synth.id_map_to_png(ids), "image": _image(3),
             "declared.png": _declared_png(100_000, 100_000),
             "blank20k.png": _blank_png(20_000, 20_000), "blank13k.png": _blank_png(13_000, 13_000)}
    for name, data in files.items():
        (assets / name).write_bytes(data)
    assert max(len(d) for d in files.values()) < 60_000
    samples = [  # (name, image, bitmap)
        ("bitmap_declared.jpg", "image", "declared.png"),  # libspng path: refused from the header
        ("bitmap_blank.jpg", "image", "blank20k.png"),  # Pillow path: a real 400 M pixel PNG
        ("image_declared.jpg", "declared.png", "bitmap.png"),  # above Pillow's limit
        ("image_blank.jpg", "blank13k.png", "bitmap.png"),  # 169 M pixels: below Pillow's limit
        ("ok.jpg", "image", "bitmap.png"),
    ]
    path = synth.write_release(str(tmp_path / "release"), [
        synth.sample_entry(name, name, f"assets/{image}", f"assets/{bitmap}", _annotations(3))
        for name, image, bitmap in samples])
    out = tmp_path / "out"
    assert _peak_growth(["--release", path, "--output", str(out), *IN_MEMORY]) < MAX_GROWTH

    rows = {r["name"]: r for r in _manifest(out)}
    failures = {f["name"]: f for f in map(json.loads, (out / "failures.jsonl").read_text().splitlines())}
    assert sorted(failures) == ["bitmap_blank.jpg", "bitmap_declared.jpg"]
    assert {f["stage"] for f in failures.values()} == {"decode"}
    assert failures["bitmap_declared.jpg"]["reason"] == "bitmap too large: 100000x100000 pixels"
    assert "400000000 pixels" in failures["bitmap_blank.jpg"]["reason"]
    assert "decompression bomb" in failures["bitmap_blank.jpg"]["reason"]
    # The image is only read for its size (and the preview): a bomb image is still copied as it
    # is, and the sample is exported with a warning naming the size.
    for name in ("image_declared.jpg", "image_blank.jpg", "ok.jpg"):
        row = rows[name]
        assert row["status"] == "exported"
        assert np.array_equal(read_png(str(out / row["instance_path"])), ids)
        image = samples[[s[0] for s in samples].index(name)][1]
        assert (out / row["image_path"]).read_bytes() == files[image]
    (declared,) = rows["image_declared.jpg"]["warnings"]
    assert declared.startswith("image size not checked: image refused (decompression bomb)")
    assert "10000000000 pixels" in declared
    assert rows["image_blank.jpg"]["warnings"] == [f"image and bitmap sizes differ: image 13000x13000, bitmap {W}x{H}"]
    assert rows["ok.jpg"]["warnings"] == []
    assert read_png(str(out / "preview.png")).ndim == 3


def test_vector_image_bombs_fail_or_export_without_decoding(tmp_path):
    """A vector sample needs its image's size: above Pillow's limit the sample fails; below it
    the sample exports at that size, and its preview is drawn small, without decoding."""
    (tmp_path / "assets").mkdir()
    files = {"declared.png": _declared_png(100_000, 100_000),
             "blank13k.png": _blank_png(13_000, 13_000), "image": _image(0)}
    for name, data in files.items():
        (tmp_path / "assets" / name).write_bytes(data)
    box = {"id": 1, "category_id": PERSON, "type": "bbox", "points": [[2, 3], [9, 7]]}
    entries = [{"uuid": name, "name": name, "attributes": {"image": {"url": f"assets/{image}"}},
                "labels": {"ground-truth": {"label_status": "LABELED", "attributes": {
                    "format_version": "0.1", "annotations": [box]}}}}
               for name, image in (("declared.png", "declared.png"),
                                   ("blank.png", "blank13k.png"), ("ok.png", "image"))]
    path = synth.write_release(str(tmp_path), entries, task_type="bboxes")
    out = tmp_path / "out"
    assert _peak_growth(["--release", path, "--output", str(out), *IN_MEMORY]) < MAX_GROWTH

    failure = json.loads((out / "failures.jsonl").read_text())
    assert failure["name"] == "declared.png" and failure["stage"] == "decode"
    assert failure["reason"].startswith("image refused (decompression bomb)")
    assert "10000000000 pixels" in failure["reason"]
    coco = json.loads((out / "coco-instance.json").read_text())
    assert [(im["file_name"], im["width"], im["height"]) for im in coco["images"]] == [
        ("blank.png", 13_000, 13_000), ("ok.png", W, H)]
    assert [a["bbox"] for a in coco["annotations"]] == [[2, 3, 7, 4], [2, 3, 7, 4]]
    assert (out / "images" / "blank.png").read_bytes() == files["blank13k.png"]
    assert read_png(str(out / "preview.png")).ndim == 3
