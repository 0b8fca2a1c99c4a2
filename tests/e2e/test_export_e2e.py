"""End to end: a generated release, assets over HTTP on 127.0.0.1, every artifact checked
against the ground truth the test drew (not against the exporter's own output)."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from benchmarks import synth
from benchmarks.verify import SPEC_COLORMAP, read_png, verify_export
from pipeline.run import run
from tests.conftest import png_bytes, tree

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


@pytest.fixture
def release(http_root):
    """8 good samples (ids up to 70 000 in two of them), plus broken ones."""
    root, url = http_root
    truth = synth.make_release(root, samples=6, height=40, width=56, instances=6, seed=1,
                               base_url=url)
    rng = np.random.default_rng(7)
    # Large ids: 300..., and one sample with an id above 65535.
    for i, first_id in ((6, 300), (7, 65_530)):
        id_map, anns = synth.draw(rng, 40, 56, 5, first_id=first_id, id_step=3)
        with open(os.path.join(root, f"labels/big_{i}.png"), "wb") as f:
            f.write(synth.id_map_to_png(id_map))
        truth.append(synth.TruthSample(f"big_{i}.png", f"big-{i}", id_map, anns,
                                       f"labels/big_{i}.png", "images/sample_00000.jpg"))
    entries = [synth.sample_entry(t.name, t.uuid, url + t.image_file, url + t.bitmap_file,
                                  t.annotations) for t in truth]
    # Broken samples: 404 bitmap, corrupt PNG, grayscale PNG, null label, orphan + empty ids.
    with open(os.path.join(root, "labels/corrupt.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\nthis is not a png")
    with open(os.path.join(root, "labels/gray.png"), "wb") as f:
        f.write(png_bytes(np.zeros((40, 56), np.uint8)))
    orphan_map = np.zeros((40, 56), np.uint32)
    orphan_map[5:10, 5:10] = 1
    orphan_map[20:30, 20:30] = 9  # not annotated
    with open(os.path.join(root, "labels/orphan.png"), "wb") as f:
        f.write(synth.id_map_to_png(orphan_map))
    img = url + "images/sample_00000.jpg"
    entries += [
        synth.sample_entry("missing.jpg", "u-404", img, url + "labels/nope.png", [{"id": 1, "category_id": 1}]),
        synth.sample_entry("corrupt.jpg", "u-corrupt", img, url + "labels/corrupt.png", [{"id": 1, "category_id": 1}]),
        synth.sample_entry("gray.jpg", "u-gray", img, url + "labels/gray.png", [{"id": 1, "category_id": 1}]),
        synth.sample_entry("unlabeled.jpg", "u-null", img, None, None),
        synth.sample_entry("orphan.jpg", "u-orphan", img, url + "labels/orphan.png",
                           [{"id": 1, "category_id": 1}, {"id": 4, "category_id": 2},
                            {"id": 5, "category_id": 99}]),
    ]
    truth.append(synth.TruthSample("orphan.jpg", "u-orphan", np.where(orphan_map == 1, 1, 0).astype(np.uint32),
                                   [{"id": 1, "category_id": 1}], "labels/orphan.png", "images/sample_00000.jpg"))
    path = synth.write_release(root, entries)
    return path, root, truth


def _export(path, out, *extra):
    return run(["--release", path, "--output", str(out), *IN_MEMORY, *extra])


def _good(truth):
    """Samples expected to be exported (with gray16, big_7's ids above 65535 leave out only
    its instance PNG)."""
    return list(truth)


def test_every_artifact_matches_the_drawn_ground_truth(release, tmp_path):
    path, root, truth = release
    out = tmp_path / "out"
    counts = _export(path, out)
    good = _good(truth)
    by_name = {t.name: t for t in good}

    # --- accounting: every sample of the release has exactly one fate
    manifest = pq.read_table(out / "manifest" / "manifest-00000-of-00001.parquet").to_pylist()
    assert [r["position"] for r in manifest] == list(range(13))
    status = {r["name"]: r["status"] for r in manifest}
    assert {n for n, s in status.items() if s == "exported"} == set(by_name)
    assert {n for n, s in status.items() if s == "failed"} == {
        "missing.jpg", "corrupt.jpg", "gray.jpg"}
    assert {n for n, s in status.items() if s == "skipped"} == {"unlabeled.jpg"}
    assert counts["samples_exported"] == len(good) and counts["samples_failed"] == 3
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    reasons = {f["name"]: (f["stage"], f["reason"]) for f in failures}
    assert reasons["missing.jpg"][0] == "fetch" and "HTTP 404" in reasons["missing.jpg"][1]
    assert reasons["corrupt.jpg"][0] == "decode"
    assert reasons["gray.jpg"][0] == "decode" and "mode L" in reasons["gray.jpg"][1]
    big_row = next(r for r in manifest if r["name"] == "big_7.png")
    assert big_row["left_out"] == ["instance"] and big_row["instance_path"] is None
    assert any("above 65535 need --instance_png rgb24" in w for w in big_row["warnings"])
    assert big_row["semantic_path"] and big_row["coco_panoptic_path"] and big_row["yolo_path"]
    orphan_row = next(r for r in manifest if r["name"] == "orphan.jpg")
    assert any("without pixels: 4" in w for w in orphan_row["warnings"])
    assert not any("not in the taxonomy" in w for w in orphan_row["warnings"])  # id 5 has no pixels
    assert any("without an annotation (left out): 9" in w for w in orphan_row["warnings"])

    # --- every artifact of every exported sample equals what was drawn
    assert verify_export(str(out), good, synth.CATEGORIES, image_sources=root) == []
    coco = json.loads((out / "coco-instance.json").read_text())
    # image ids follow release order among selected samples (SDK numbering, gaps kept)
    assert [i["id"] for i in coco["images"]] == [1, 2, 3, 4, 5, 6, 7, 8, 13]
    # One category object per category in both documents: id, name, color (the pictures'),
    # isthing, attributes (or null), then the release's other keys; coco-instance lists the
    # categories of objects (stuff, has_instances: false, is in panoptic only).
    palette = {3: list(SPEC_COLORMAP[2]), 7: list(SPEC_COLORMAP[4])}  # positions 2 and 4
    expected = [{"id": c["id"], "name": c["name"], "color": c.get("color") or palette[c["id"]],
                 "isthing": int(c["has_instances"]), "attributes": None,
                 "has_instances": c["has_instances"]} for c in synth.CATEGORIES]
    panoptic = json.loads((out / "coco-panoptic.json").read_text())
    assert panoptic["categories"] == expected
    assert coco["categories"] == [c for c in expected if c["has_instances"]]
    stem = "sample_00000_label_ground-truth"
    assert read_png(str(out / "instance" / f"{stem}_instance.png")).dtype == np.uint16
    assert read_png(str(out / "semantic" / f"{stem}_semantic.png")).dtype == np.uint8
    # --- run report: the same numbers as the manifest, every failure explained
    report = json.loads((out / "report.json").read_text())
    assert report["samples"] == {"in_release": 13, "selected": 13, "exported": len(good),
                                 "failed": 3, "skipped": 1, "with_warnings": 2}
    assert report["formats"]["instance"]["left_out"] == 1
    assert {f["name"]: f["reason"] for f in report["failures"]} == {
        name: reason for name, (_, reason) in reasons.items()}
    assert report["skipped_by_reason"] == {"no label in this labelset": 1}
    drawn = {}
    for t in good:
        for a in t.annotations:
            px = int((t.id_map == a["id"]).sum())
            if px:
                d = drawn.setdefault(a["category_id"], [0, 0])
                d[0] += 1
                d[1] += px
    assert {c["id"]: [c["instances"], c["pixels"]] for c in report["categories"]} == drawn
    assert report["formats"]["semantic"]["files"] == len(good)
    sheet = read_png(str(out / "preview.png"))
    assert sheet.ndim == 3 and sheet.shape[2] == 3
    # nothing left behind
    assert not [p for p in tree(str(out)) if ".tmp" in p]


def test_rgb24_instance_png_keeps_ids_above_65535(release, tmp_path):
    path, _, truth = release
    out = tmp_path / "out"
    _export(path, out, "--formats", "instance", "--instance_png", "rgb24", "--images", "none")
    big = next(t for t in truth if t.name == "big_7.png")
    rgb = read_png(str(out / "instance" / "big_7_label_ground-truth_instance.png")).astype(np.uint32)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    assert big.id_map.max() > 65535
    assert np.array_equal(ids, big.id_map)
    assert not (out / "images").exists() and not (out / "coco-instance.json").exists()


def test_multi_process_run_is_byte_identical_to_single_process(release, tmp_path):
    path, _, _ = release
    a, b = tmp_path / "a", tmp_path / "b"
    _export(path, a, "--coco_shard_size", "3")
    run(["--release", path, "--output", str(b), "--coco_shard_size", "3",
         "--direct_num_workers=2"])  # worker processes
    ta, tb = tree(str(a)), tree(str(b))
    assert ta.keys() == tb.keys()
    assert [k for k in ta if ta[k] != tb[k]] == []


def test_shard_size_does_not_change_the_documents(release, tmp_path):
    path, _, _ = release
    _export(release[0], tmp_path / "one", "--coco_shard_size", "1000", "--formats", "coco-instance,coco-panoptic")
    _export(release[0], tmp_path / "many", "--coco_shard_size", "2", "--formats", "coco-instance,coco-panoptic")
    for doc in ("coco-instance.json", "coco-panoptic.json"):
        assert (tmp_path / "one" / doc).read_bytes() == (tmp_path / "many" / doc).read_bytes()


def test_the_ground_truth_check_catches_a_wrong_pixel_and_a_wrong_box(release, tmp_path):
    """The oracle used above is not vacuous: it reports a one-pixel and a one-box error."""
    path, root, truth = release
    out = tmp_path / "out"
    _export(path, out, "--images", "none")
    good = _good(truth)
    sem_path = out / "semantic" / "sample_00001_label_ground-truth_semantic.png"
    sem = read_png(str(sem_path)).copy()
    sem[0, 0] = 3 if sem[0, 0] != 3 else 1
    sem_path.write_bytes(png_bytes(sem))
    doc = json.loads((out / "coco-instance.json").read_text())
    doc["annotations"][0]["bbox"][2] += 1
    (out / "coco-instance.json").write_text(json.dumps(doc))
    problems = verify_export(str(out), good, synth.CATEGORIES)
    assert problems == ["sample_00000.jpg: bbox of 1", "sample_00001.jpg: semantic PNG"]


def test_label_without_bitmap_url(tmp_path):
    """Differences table, "empty label without bitmap": the SDK crashes on a null bitmap URL.
    An empty label is exported at the image's size; one with annotations fails clearly."""
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "images" / "a.jpg")
    entries = [
        synth.sample_entry("empty.jpg", "u1", "images/a.jpg", None, []),
        synth.sample_entry("drawn.jpg", "u2", "images/a.jpg", "", [{"id": 1, "category_id": 1}]),
    ]
    path = synth.write_release(str(tmp_path), entries)
    out = tmp_path / "out"
    counts = _export(path, out)
    assert counts["samples_exported"] == 1 and counts["samples_failed"] == 1
    coco = json.loads((out / "coco-instance.json").read_text())
    assert coco["images"] == [{"id": 1, "file_name": "empty.jpg", "height": 20, "width": 30}]
    assert coco["annotations"] == []
    sem = read_png(str(out / "semantic" / "empty_label_ground-truth_semantic.png"))
    assert sem.shape == (20, 30) and not sem.any()
    failure = json.loads((out / "failures.jsonl").read_text())
    assert failure["name"] == "drawn.jpg" and "no segmentation bitmap URL" in failure["reason"]


def test_an_unreadable_image_is_copied_with_a_warning_not_a_failure(tmp_path):
    """The image is only read to compare its size with the bitmap (and for the preview)."""
    id_map = np.zeros((6, 8), np.uint32)
    id_map[1:4, 2:5] = 1
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "labels" / "a.png").write_bytes(synth.id_map_to_png(id_map))
    (tmp_path / "images" / "a.heic").write_bytes(b"\x00\x00\x00\x18ftypheic not decodable here")
    path = synth.write_release(str(tmp_path), [synth.sample_entry(
        "a.heic", "u", "images/a.heic", "labels/a.png", [{"id": 1, "category_id": 1}])])
    out = tmp_path / "out"
    counts = _export(path, out)
    assert counts["samples_exported"] == 1 and counts.get("samples_failed", 0) == 0
    row = pq.read_table(out / "manifest" / "manifest-00000-of-00001.parquet").to_pylist()[0]
    assert any(w.startswith("image size not checked") for w in row["warnings"])
    assert (out / "images" / "a.heic").read_bytes() == (tmp_path / "images" / "a.heic").read_bytes()


def test_a_release_without_samples_gives_complete_empty_outputs(tmp_path):
    path = synth.write_release(str(tmp_path), [])
    out = tmp_path / "out"
    counts = _export(path, out, "--validate")
    assert counts.get("validation_problems", 0) == 0
    assert pq.read_table(out / "manifest" / "manifest-00000-of-00001.parquet").num_rows == 0
    coco = json.loads((out / "coco-instance.json").read_text())
    assert coco["images"] == [] and coco["annotations"] == []
    assert (out / "failures.jsonl").read_text() == ""


def test_a_file_and_a_folder_of_the_same_name_both_export(tmp_path):
    """Sample "a" (an image of unknown format, no extension) and sample "a/b": the image of "a"
    is copied as images/a.bin, so images/a is free to be the folder of "a/b". (It was copied as
    images/a, and whichever of the two the runner happened to write second failed.)"""
    id_map = np.ones((4, 4), np.uint32)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "x.png").write_bytes(synth.id_map_to_png(id_map))
    (tmp_path / "blob").write_bytes(b"not an image")
    ann = [{"id": 1, "category_id": 1}]
    path = synth.write_release(str(tmp_path), [
        synth.sample_entry("a", "u1", "blob", "labels/x.png", ann),
        synth.sample_entry("a/b", "u2", "blob", "labels/x.png", ann)])
    out = tmp_path / "out"
    counts = _export(path, out)
    assert counts["samples_exported"] == 2 and counts.get("samples_failed", 0) == 0
    assert (out / "images" / "a.bin").read_bytes() == (out / "images" / "a" / "b.bin").read_bytes() \
        == b"not an image"
    coco = json.loads((out / "coco-instance.json").read_text())
    assert [im["file_name"] for im in coco["images"]] == ["a.bin", "a/b.bin"]
    assert (out / "labels" / "a.txt").is_file() and (out / "labels" / "a" / "b.txt").is_file()


def test_stuff_as_instances_restores_the_sdks_objects(release, tmp_path):
    """The SDK exports stuff regions (road, sky) as objects; --stuff_as_instances keeps that
    behaviour one flag away: every instance format then holds them, YOLO classes are the
    positions in the release's full category list."""
    path, root, truth = release
    out = tmp_path / "out"
    _export(path, out, "--stuff_as_instances")
    assert verify_export(str(out), _good(truth), synth.CATEGORIES, image_sources=root,
                         stuff_as_instances=True) == []
    coco = json.loads((out / "coco-instance.json").read_text())
    assert [c["id"] for c in coco["categories"]] == [c["id"] for c in synth.CATEGORIES]
    stuff = [a for a in coco["annotations"] if a["category_id"] in synth.STUFF]
    assert stuff and all(a["category_id"] in synth.STUFF for a in stuff)


def test_the_manifest_carries_each_samples_metadata(tmp_path):
    """Users join or filter on the release's metadata: each row keeps it as JSON text."""
    truth = synth.make_release(str(tmp_path), samples=3, seed=2)
    entries = [synth.sample_entry(t.name, t.uuid, t.image_file, t.bitmap_file, t.annotations,
                                  metadata=meta)
               for t, meta in zip(truth, ({"split": "val", "n": 1}, None, {"b": [1, {"c": "é"}]}))]
    del entries[1]["metadata"]  # none at all
    path = synth.write_release(str(tmp_path), entries)
    out = tmp_path / "out"
    _export(path, out, "--formats", "semantic")
    rows = pq.read_table(out / "manifest").to_pylist()
    assert [None if r["metadata"] is None else json.loads(r["metadata"]) for r in rows] == [
        {"split": "val", "n": 1}, None, {"b": [1, {"c": "é"}]}]
