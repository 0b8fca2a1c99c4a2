"""Parity with the reference exporter, the `segments-ai` SDK (`segments.utils.export_dataset`).

tests/data/sdk/ holds a tiny release and what SDK 1.30.0 exported from it (made by
scripts/make_sdk_goldens.py in a separate venv; see tests/data/sdk/README.md). This test never
imports `segments`: it exports the same release with our pipeline, in-process and offline (the
release's asset URLs are relative paths), and compares every format with the SDK's files.

Where the SDK is right, ours must equal it. Every deliberate difference this release hits is
asserted explicitly, with a comment naming its row in README.md's "Differences from the SDK"
table; nothing is skipped silently.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pycocotools.coco import COCO

from benchmarks.verify import SPEC_COLORMAP
from pipeline.run import run

DATA = Path(__file__).resolve().parents[1] / "data" / "sdk"
LABELSET = "ground-truth"
# Our per-format folders and file suffixes (README "Output"); the suffixes are the SDK's.
SUFFIX = {"coco-panoptic": "coco-panoptic", "instance": "instance", "semantic": "semantic",
          "instance-color": "instance_colored", "semantic-color": "semantic_colored"}


# --------------------------------------------------------------------------- fixtures, helpers

@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sdk-parity") / "out"
    # README differences, row "stuff categories": the SDK exports stuff regions as objects;
    # --stuff_as_instances is that behaviour, one flag away (the default leaves them out of
    # the instance formats; tests/e2e/test_export_e2e.py checks both).
    counts = run(["--release", str(DATA / "release.json"), "--output", str(out),
                  "--stuff_as_instances",
                  "--direct_running_mode=in_memory", "--direct_num_workers=1"])
    # 4 labelled samples exported, the unlabeled one skipped (the SDK skips it too).
    assert counts["samples_exported"] == 4 and counts["samples_skipped"] == 1
    assert counts.get("samples_failed", 0) == 0
    return out


@pytest.fixture(scope="module")
def release() -> dict:
    return _json(DATA / "release.json")


@pytest.fixture(scope="module")
def sdk_meta() -> dict:
    return _json(DATA / "sdk.json")


def _json(path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _png(path) -> tuple[str, np.ndarray]:
    with Image.open(path) as img:
        return img.mode, np.asarray(img)


def _rgb_id(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def _stems(release: dict) -> list[str]:
    """Stems of the labelled samples (the ones both exporters write files for)."""
    return [os.path.splitext(os.path.basename(s["name"]))[0]
            for s in release["dataset"]["samples"] if s["labels"][LABELSET]]


def _ours(out: Path, fmt: str, stem: str) -> Path:
    return out / fmt / f"{stem}_label_{LABELSET}_{SUFFIX[fmt]}.png"


def _sdk(fmt: str, stem: str) -> Path:
    return DATA / fmt / f"{stem}.png"


def _release_annotations(release: dict) -> dict[str, list[dict]]:
    return {os.path.splitext(os.path.basename(s["name"]))[0]:
            s["labels"][LABELSET]["attributes"]["annotations"]
            for s in release["dataset"]["samples"] if s["labels"][LABELSET]}


def _panoptic_colors(sdk_panoptic: dict) -> dict[int, tuple[int, int, int]]:
    """Category id -> colour: the release colour, else COLORMAP[position] (spec §4.0.3)."""
    return {c["id"]: tuple(c["color"]) for c in sdk_panoptic["categories"]}


def test_the_goldens_exercise_what_they_claim(release, sdk_meta):
    assert sdk_meta["versions"]["segments-ai"] == "1.30.0"
    assert sdk_meta["versions"]["Pillow"].split(".")[0] in ("10", "11")  # warm cache works
    for s in release["dataset"]["samples"]:  # relative asset URLs: no network
        assert "://" not in s["attributes"]["image"]["url"]
    _, ids = _png(_sdk("instance", "wide_ids"))
    assert 255 < ids.max() <= 0xFFFF


# --------------------------------------------------------------------------- coco-instance

def test_coco_instance_matches_sdk(out, release):
    sdk_doc, ours_doc = _json(DATA / "coco-instance.json"), _json(out / "coco-instance.json")
    assert ours_doc["info"] == sdk_doc["info"]
    # Image ids are i + 1 over the selected samples: the unlabeled sample uses up id 3 in both.
    # file_name takes the URL's extension (sample "wide_ids.png", image URL ".jpg").
    assert ours_doc["images"] == sdk_doc["images"]
    assert [im["id"] for im in sdk_doc["images"]] == [1, 2, 4, 5]
    assert sdk_doc["images"][-1]["file_name"] == "wide_ids.jpg"

    sdk_coco, ours_coco = COCO(str(DATA / "coco-instance.json")), COCO(str(out / "coco-instance.json"))
    stem_of = {im["id"]: os.path.splitext(im["file_name"])[0] for im in sdk_doc["images"]}
    ours_by_stem = defaultdict(list)  # stem -> [(mask, annotation)]
    for ann in ours_doc["annotations"]:
        ours_by_stem[stem_of[ann["image_id"]]].append((ours_coco.annToMask(ann), ann))
    matched = set()
    for ann in sdk_doc["annotations"]:
        stem, mask = stem_of[ann["image_id"]], sdk_coco.annToMask(ann)
        assert mask.any()
        hits = [a for m, a in ours_by_stem[stem] if np.array_equal(m, mask)]
        assert len(hits) == 1, f"{stem}: SDK annotation {ann['id']} has {len(hits)} matches"
        mine = hits[0]
        for key in ("image_id", "category_id", "bbox", "area", "iscrowd"):
            assert mine[key] == ann[key], (stem, ann["id"], key)
        # Both number annotations densely from 1 in (image, annotation-list) order, and an
        # annotation without pixels (id 999 in sample_00000) uses up no id.
        assert mine["id"] == ann["id"]
        # Our RLE is byte-identical to pycocotools.mask.encode, as the SDK's is.
        assert mine["segmentation"] == ann["segmentation"]
        matched.add(mine["id"])
    assert len(matched) == len(ours_doc["annotations"]) == len(sdk_doc["annotations"]) == 36


def test_coco_instance_object_attributes_are_kept(out, release):
    # README differences, row "coco-instance": the SDK drops object attributes [23]; we keep
    # them under `attributes` when present.
    sdk_doc, ours_doc = _json(DATA / "coco-instance.json"), _json(out / "coco-instance.json")
    assert not any("attributes" in a for a in sdk_doc["annotations"])
    with_attrs = [a for anns in _release_annotations(release).values() for a in anns
                  if "attributes" in a]
    assert len(with_attrs) == 1
    ours = [a for a in ours_doc["annotations"] if "attributes" in a]
    assert [a["attributes"] for a in ours] == [with_attrs[0]["attributes"]]
    sdk_twin = next(a for a in sdk_doc["annotations"] if a["id"] == ours[0]["id"])
    assert {k: v for k, v in ours[0].items() if k != "attributes"} == sdk_twin


@pytest.mark.parametrize("fmt", ["coco-instance", "coco-panoptic"])
def test_category_lists_match_sdk(out, release, fmt):
    # README differences, row "COCO categories": the SDK writes coco-instance categories as
    # `{id, name, color (or null), attributes (or null), extra keys...}` and coco-panoptic
    # ones as `{id, name, color, attributes: null, isthing}` (its pydantic model): a category
    # differs between the two files, and panoptic loses the release's attributes. Ours: the
    # same object in both, `{id, name, color, isthing, attributes, extra keys...}`, with the
    # colour of the pictures (never null) - the SDK's values for every key it writes.
    sdk_doc, ours_doc = _json(DATA / f"{fmt}.json"), _json(out / f"{fmt}.json")
    panoptic = {c["id"]: c for c in _json(DATA / "coco-panoptic.json")["categories"]}
    for ours, sdk in zip(ours_doc["categories"], sdk_doc["categories"], strict=True):
        assert list(ours)[:5] == ["id", "name", "color", "isthing", "attributes"]
        assert ours["color"] == panoptic[ours["id"]]["color"]  # the pictures' colour
        assert ours["isthing"] == panoptic[ours["id"]]["isthing"]
        assert {k: v for k, v in ours.items() if k not in ("color", "isthing")} == {
            k: v for k, v in sdk.items() if k not in ("color", "isthing")} | (
            {"has_instances": ours.get("has_instances")} if "has_instances" in ours else {})
    # With every category in the instance formats (--stuff_as_instances), the two lists
    # are one and the same.
    assert (_json(out / "coco-instance.json")["categories"]
            == _json(out / "coco-panoptic.json")["categories"])


def test_coco_panoptic_category_values_match_sdk(out):
    # id, name, colour (release colour, else COLORMAP[position]) and isthing (= has_instances).
    sdk_doc, ours_doc = _json(DATA / "coco-panoptic.json"), _json(out / "coco-panoptic.json")
    keys = ("id", "name", "color", "isthing")
    assert ([{k: c.get(k) for k in keys} for c in ours_doc["categories"]]
            == [{k: c.get(k) for k in keys} for c in sdk_doc["categories"]])


# --------------------------------------------------------------------------- coco-panoptic

def test_coco_panoptic_matches_sdk_by_mask(out, release):
    sdk_doc, ours_doc = _json(DATA / "coco-panoptic.json"), _json(out / "coco-panoptic.json")
    assert ours_doc["info"] == sdk_doc["info"]
    assert ours_doc["images"] == sdk_doc["images"]
    isthing = {c["id"]: c["isthing"] for c in sdk_doc["categories"]}
    ours_by_image = {a["image_id"]: a for a in ours_doc["annotations"]}
    assert sorted(ours_by_image) == [a["image_id"] for a in sdk_doc["annotations"]]
    duplicated_stuff_ids = 0
    for sdk_ann in sdk_doc["annotations"]:
        ours_ann = ours_by_image[sdk_ann["image_id"]]
        # Same per-image PNG name; ours sits in OUT/coco-panoptic/ (see test_output_locations).
        assert ours_ann["file_name"] == sdk_ann["file_name"]
        stem = sdk_ann["file_name"].removesuffix(f"_label_{LABELSET}_coco-panoptic.png")
        sdk_mode, sdk_rgb = _png(_sdk("coco-panoptic", stem))
        our_mode, our_rgb = _png(_ours(out, "coco-panoptic", stem))
        assert sdk_mode == our_mode == "RGB"
        sdk_ids, our_ids = _rgb_id(sdk_rgb), _rgb_id(our_rgb)
        ours_segments = {s["id"]: s for s in ours_ann["segments_info"]}
        # Our ids are unique per image and never 0 (VOID).
        assert len(ours_segments) == len(ours_ann["segments_info"]) and 0 not in ours_segments

        # The SDK's entries grouped by id: a thing has its own id; every stuff annotation of
        # a category shares the category colour's id (spec §4.2, §5 #6).
        groups = defaultdict(list)
        for seg in sdk_ann["segments_info"]:
            groups[seg["id"]].append(seg)
        remap = {0: 0}
        for sdk_id, segs in groups.items():
            categories = {s["category_id"] for s in segs}
            assert len(categories) == 1
            category = categories.pop()
            mask = sdk_ids == sdk_id
            hits = [i for i in ours_segments if np.array_equal(our_ids == i, mask)]
            assert len(hits) == 1, f"{stem}: SDK segment {sdk_id} has {len(hits)} matches"
            mine = ours_segments[hits[0]]
            remap[sdk_id] = mine["id"]
            assert mine["category_id"] == category and mine["iscrowd"] == 0
            if isthing[category]:
                assert len(segs) == 1
                assert (mine["area"], mine["bbox"]) == (segs[0]["area"], segs[0]["bbox"])
                continue
            # README differences, row "panoptic ids": the SDK emits one entry per stuff
            # annotation, all with the same id; we merge them into ONE segment per stuff
            # category per image (areas summed, boxes united). Compared by category union.
            duplicated_stuff_ids += len(segs) > 1
            assert mine["area"] == sum(s["area"] for s in segs) == int(mask.sum())
            x0 = min(s["bbox"][0] for s in segs)
            y0 = min(s["bbox"][1] for s in segs)
            x1 = max(s["bbox"][0] + s["bbox"][2] for s in segs)
            y1 = max(s["bbox"][1] + s["bbox"][3] for s in segs)
            assert mine["bbox"] == [x0, y0, x1 - x0, y1 - y0]
            # Stuff ids are the category colour in both exporters.
            assert mine["id"] == sdk_id
        # Every pixel agrees up to the renaming of ids (VOID stays VOID), and every one of
        # our segments is some SDK segment.
        assert sorted(remap.values()) == sorted([0, *ours_segments])
        lut = np.vectorize(remap.get, otypes=[np.int64])
        assert np.array_equal(lut(sdk_ids), our_ids), stem
    # The merging difference was actually hit (two "sky" annotations per image).
    assert duplicated_stuff_ids >= 4


def test_coco_panoptic_thing_ids_are_deterministic_not_random(out):
    # README differences, row "panoptic ids": the SDK draws thing ids from NumPy's global RNG
    # (the goldens seeded it with 0; another seed gives other ids) [4-7]; ours are a function
    # of the image alone. Both give the first thing instance of a category in the export the
    # category colour; after that the ids differ, which is why the test above matches by mask.
    sdk_doc, ours_doc = _json(DATA / "coco-panoptic.json"), _json(out / "coco-panoptic.json")
    colors = _panoptic_colors(sdk_doc)
    base = {cid: c[0] + 256 * c[1] + 65536 * c[2] for cid, c in colors.items()}
    first_sdk = sdk_doc["annotations"][0]["segments_info"]
    first_ours = ours_doc["annotations"][0]["segments_info"]
    for cid in (1, 2, 3):
        assert next(s["id"] for s in first_sdk if s["category_id"] == cid) == base[cid]
        assert next(s["id"] for s in first_ours if s["category_id"] == cid) == base[cid]
    sdk_things = [s["id"] for a in sdk_doc["annotations"] for s in a["segments_info"]
                  if s["category_id"] in (1, 2, 3)]
    ours_things = [s["id"] for a in ours_doc["annotations"] for s in a["segments_info"]
                   if s["category_id"] in (1, 2, 3)]
    assert len(sdk_things) == len(ours_things) and sdk_things != ours_things


# --------------------------------------------------------------------------- image formats

def test_instance_png_matches_sdk(out, release):
    # Ids <= 65535 only (the release has none above), no orphan ids: identical pixels, both
    # 16-bit grayscale.
    for stem in _stems(release):
        sdk_mode, sdk_px = _png(_sdk("instance", stem))
        our_mode, our_px = _png(_ours(out, "instance", stem))
        assert sdk_mode.startswith("I") and our_mode.startswith("I"), (sdk_mode, our_mode)
        assert np.array_equal(sdk_px.astype(np.int64), our_px.astype(np.int64)), stem


def test_semantic_png_matches_sdk(out, release):
    for stem in _stems(release):
        sdk_mode, sdk_px = _png(_sdk("semantic", stem))
        our_mode, our_px = _png(_ours(out, "semantic", stem))
        assert sdk_mode == our_mode == "L"
        assert np.array_equal(sdk_px, our_px), stem


def test_instance_color_differs_only_by_the_uint8_wrap(out, release):
    # README differences, row "instance-color": the SDK casts ids to uint8 before colouring
    # (300 is coloured as 44) [11]; we colour the full id: COLORMAP[(id - 1) mod 36].
    wrapped_pixels = 0
    for stem in _stems(release):
        _, ids = _png(_sdk("instance", stem))
        ids = ids.astype(np.int64)
        sdk_mode, sdk_px = _png(_sdk("instance-color", stem))
        our_mode, our_px = _png(_ours(out, "instance-color", stem))
        assert sdk_mode == our_mode == "RGB"
        cmap = np.array([(0, 0, 0), *SPEC_COLORMAP], np.uint8)  # row 0 = background
        wrapped = ids % 256
        sdk_expected = cmap[np.where(wrapped == 0, 0, (wrapped - 1) % 36 + 1)]
        our_expected = cmap[np.where(ids == 0, 0, (ids - 1) % 36 + 1)]
        assert np.array_equal(sdk_px, sdk_expected), stem  # the golden is what the spec says
        assert np.array_equal(our_px, our_expected), stem
        small = ids <= 255
        assert np.array_equal(our_px[small], sdk_px[small]), stem  # no difference below 256
        wrapped_pixels += int(np.any(our_px != sdk_px, axis=-1).sum())
    assert wrapped_pixels > 0  # the difference was hit (ids 300..485 and 900..902)


def test_semantic_color_where_the_sdk_crashes(out, release, sdk_meta):
    # README differences, row "semantic-color": the SDK indexes colours by list position
    # (`colors[value - 1]`), so this taxonomy (ids 1, 2, 3, 5, 7) raises IndexError [12]; we
    # key colours by category id: the release colour, else COLORMAP[position], exactly the
    # colours of the SDK's panoptic categories.
    assert sdk_meta["errors"]["semantic-color"]["type"] == "IndexError"
    assert not (DATA / "semantic-color").exists()
    colors = _panoptic_colors(_json(DATA / "coco-panoptic.json"))
    for stem in _stems(release):
        _, semantic = _png(_sdk("semantic", stem))
        our_mode, our_px = _png(_ours(out, "semantic-color", stem))
        assert our_mode == "RGB"
        expected = np.zeros(semantic.shape + (3,), np.uint8)
        for cid, color in colors.items():
            expected[semantic == cid] = color
        assert np.array_equal(our_px, expected), stem


def test_yolo_where_the_sdk_refuses(out, release):
    # README differences, row "yolo": the SDK exports YOLO only for vector/bbox releases
    # (ValueError here) [16]; we write boxes of the bitmap instances with 0-based classes in
    # release order and data.yaml. Checked against the SDK's coco-instance boxes.
    sdk_meta = _json(DATA / "sdk.json")
    assert sdk_meta["errors"]["yolo"]["type"] == "ValueError"
    categories = release["dataset"]["task_attributes"]["categories"]
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {k: c["name"] for k, c in enumerate(categories)}
    klass = {c["id"]: k for k, c in enumerate(categories)}
    sdk_doc = _json(DATA / "coco-instance.json")
    expected = defaultdict(list)
    for ann in sdk_doc["annotations"]:
        im = next(i for i in sdk_doc["images"] if i["id"] == ann["image_id"])
        x, y, w, h = ann["bbox"]
        W, H = im["width"], im["height"]
        expected[os.path.splitext(im["file_name"])[0]].append(
            f"{klass[ann['category_id']]} {(x + w / 2) / W:.6f} {(y + h / 2) / H:.6f} "
            f"{w / W:.6f} {h / H:.6f}")
    for stem in _stems(release):
        lines = (out / "labels" / f"{stem}.txt").read_text().splitlines()
        assert sorted(lines) == sorted(expected[stem]), stem


# --------------------------------------------------------------------------- layout, images

def test_output_names_and_locations(out, release, sdk_meta):
    # README differences, row "output location" [27]: the SDK names its JSON files
    # export_{format}_{owner}_{dataset}_{release}.json and writes the panoptic PNGs into its
    # cache dir; we write fixed names and everything under --output, one folder per format.
    files = sdk_meta["sdk_files"]
    assert os.path.basename(files["coco-instance"]) == (
        "export_coco-instance_bench_synth_sdk-parity.json")
    assert os.path.basename(files["coco-panoptic"]) == (
        "export_coco-panoptic_bench_synth_sdk-parity.json")
    assert files["coco-panoptic-png"].startswith("cache/")
    assert (out / "coco-instance.json").is_file() and (out / "coco-panoptic.json").is_file()
    assert not list(out.glob("export_*"))
    # Per-sample file names are the SDK's, in one folder per format.
    for fmt in ("coco-panoptic", "instance", "semantic", "instance-color"):
        sdk_name = os.path.basename(files[fmt if fmt != "coco-panoptic" else "coco-panoptic-png"])
        for stem in _stems(release):
            assert _ours(out, fmt, stem).name == sdk_name.format(stem=stem)
            assert _ours(out, fmt, stem).is_file()
    for stem in _stems(release):
        assert _ours(out, "semantic-color", stem).is_file()


def test_images_are_the_original_bytes(out, release):
    # README differences, row "images" [41]: the SDK's COCO file_name points to its cached
    # copy, re-encoded by Pillow; we copy the original bytes, under the same file_name.
    sdk_doc = _json(DATA / "coco-instance.json")
    url_of = {os.path.splitext(os.path.basename(s["name"]))[0]: s["attributes"]["image"]["url"]
              for s in release["dataset"]["samples"] if s["labels"][LABELSET]}
    for im in sdk_doc["images"]:
        original = (DATA / url_of[os.path.splitext(im["file_name"])[0]]).read_bytes()
        assert (out / "images" / im["file_name"]).read_bytes() == original
        assert (DATA / "sdk-images" / im["file_name"]).read_bytes() != original
