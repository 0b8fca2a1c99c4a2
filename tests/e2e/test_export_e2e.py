"""End to end: a generated release, assets over HTTP on 127.0.0.1, every artifact checked
against the ground truth the test drew (not against the exporter's own output)."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from benchmarks import synth
from pipeline.run import run
from tests.conftest import SPEC_COLORMAP, png_bytes, read_png, tree

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
CATS = {c["id"]: c for c in synth.CATEGORIES}
POSITION = {c["id"]: i for i, c in enumerate(synth.CATEGORIES)}


def _color(cat_id):
    c = CATS[cat_id]
    return tuple(c["color"]) if "color" in c else SPEC_COLORMAP[POSITION[cat_id]]


@pytest.fixture
def release(http_root):
    """8 good samples (ids up to 70 000 in two of them), plus broken ones."""
    root, url = http_root
    truth = synth.make_release(root, samples=6, height=40, width=56, instances=6, seed=1,
                               base_url=url)
    rng = np.random.default_rng(7)
    extra = []
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
    """Samples expected to be exported with gray16 (no id > 65535)."""
    return [t for t in truth if t.id_map.max() <= 0xFFFF]


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
        "big_7.png", "missing.jpg", "corrupt.jpg", "gray.jpg"}
    assert {n for n, s in status.items() if s == "skipped"} == {"unlabeled.jpg"}
    assert counts["samples_exported"] == len(good) and counts["samples_failed"] == 4
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    reasons = {f["name"]: (f["stage"], f["reason"]) for f in failures}
    assert reasons["missing.jpg"][0] == "fetch" and "HTTP 404" in reasons["missing.jpg"][1]
    assert reasons["corrupt.jpg"][0] == "decode"
    assert reasons["gray.jpg"][0] == "decode" and "mode L" in reasons["gray.jpg"][1]
    assert "65535" in reasons["big_7.png"][1] and "--instance_png rgb24" in reasons["big_7.png"][1]
    orphan_row = next(r for r in manifest if r["name"] == "orphan.jpg")
    assert any("without pixels: 4" in w for w in orphan_row["warnings"])
    assert any("not in the taxonomy" in w for w in orphan_row["warnings"]) is False  # id 5 has no pixels
    assert any("without an annotation (left out): 9" in w for w in orphan_row["warnings"])

    # --- coco-instance, loaded with pycocotools; every mask decodes to the drawn mask
    coco = COCO(str(out / "coco-instance.json"))
    ann_ids = sorted(coco.anns)
    assert ann_ids == list(range(1, len(ann_ids) + 1))
    images = {img["file_name"]: img for img in coco.dataset["images"]}
    expected_total = 0
    for t in good:
        img = images[os.path.splitext(t.name)[0] + ".jpg"]
        assert (img["height"], img["width"]) == t.id_map.shape
        anns = sorted(coco.imgToAnns[img["id"]], key=lambda a: a["id"])
        expected = [a for a in t.annotations if (t.id_map == a["id"]).any()]
        assert len(anns) == len(expected)
        expected_total += len(expected)
        for got, want in zip(anns, expected):
            mask = t.id_map == want["id"]
            assert got["category_id"] == want["category_id"]
            assert np.array_equal(coco.annToMask(got).astype(bool), mask)
            ys, xs = np.nonzero(mask)
            assert got["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert got["area"] == int(mask.sum()) and got["iscrowd"] == 0
            ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            assert got["segmentation"]["counts"] == ref["counts"].decode()
    assert len(ann_ids) == expected_total
    # image ids follow release order among selected samples (SDK numbering)
    assert [i["id"] for i in coco.dataset["images"]] == [1, 2, 3, 4, 5, 6, 7, 13]

    # --- coco-panoptic: PNG colours <-> segments_info <-> drawn masks
    pan = json.loads((out / "coco-panoptic.json").read_text())
    assert {c["id"]: c["isthing"] for c in pan["categories"]} == {1: 1, 2: 1, 3: 1, 5: 0, 7: 0}
    pan_by_image = {a["image_id"]: a for a in pan["annotations"]}
    for t in good:
        img = images[os.path.splitext(t.name)[0] + ".jpg"]
        ann = pan_by_image[img["id"]]
        rgb = read_png(str(out / "coco-panoptic" / ann["file_name"])).astype(np.uint32)
        seg_ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        ids = [s["id"] for s in ann["segments_info"]]
        assert len(ids) == len(set(ids)) and 0 not in ids
        covered = np.zeros(t.id_map.shape, bool)
        for s in ann["segments_info"]:
            members = [a["id"] for a in t.annotations if a["category_id"] == s["category_id"]]
            if CATS[s["category_id"]]["has_instances"]:
                members = [m for m in members if np.array_equal(seg_ids == s["id"], t.id_map == m)]
                assert len(members) == 1
            truth_mask = np.isin(t.id_map, members)
            assert np.array_equal(seg_ids == s["id"], truth_mask)
            ys, xs = np.nonzero(truth_mask)
            assert s["area"] == int(truth_mask.sum()) and s["iscrowd"] == 0
            assert s["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            covered |= truth_mask
        assert (seg_ids[~covered] == 0).all()
        stuff = {s["category_id"] for s in ann["segments_info"] if not CATS[s["category_id"]]["has_instances"]}
        assert len(stuff) == sum(1 for s in ann["segments_info"] if not CATS[s["category_id"]]["has_instances"])

    # --- PNG formats: decoded pixels equal the drawn ids / categories / colours
    for t in good:
        stem = os.path.splitext(t.name)[0]
        annotated = {a["id"]: a["category_id"] for a in t.annotations}
        inst = read_png(str(out / "instance" / f"{stem}_label_ground-truth_instance.png"))
        assert inst.dtype == np.uint16
        expect_inst = np.where(np.isin(t.id_map, list(annotated)), t.id_map, 0)
        assert np.array_equal(inst, expect_inst)
        sem = read_png(str(out / "semantic" / f"{stem}_label_ground-truth_semantic.png"))
        assert sem.dtype == np.uint8
        expect_sem = np.zeros(t.id_map.shape, np.uint8)
        for iid, cat in annotated.items():
            expect_sem[t.id_map == iid] = cat
        assert np.array_equal(sem, expect_sem)
        sem_c = read_png(str(out / "semantic-color" / f"{stem}_label_ground-truth_semantic_colored.png"))
        inst_c = read_png(str(out / "instance-color" / f"{stem}_label_ground-truth_instance_colored.png"))
        for iid, cat in annotated.items():
            m = t.id_map == iid
            if m.any():
                assert (sem_c[m] == _color(cat)).all()
                assert (inst_c[m] == SPEC_COLORMAP[(iid - 1) % 36]).all()
        assert (sem_c[expect_sem == 0] == 0).all() and (inst_c[expect_inst == 0] == 0).all()

    # --- yolo: Ultralytics layout, 0-based classes in category order, boxes = drawn extents
    data_yaml = (out / "data.yaml").read_text()
    assert "names:" in data_yaml and '  0: "person"' in data_yaml and '  4: "road"' in data_yaml
    for t in good:
        stem = os.path.splitext(t.name)[0]
        lines = (out / "labels" / f"{stem}.txt").read_text().splitlines()
        expected = [a for a in t.annotations if (t.id_map == a["id"]).any()]
        assert len(lines) == len(expected)
        h, w = t.id_map.shape
        for line, a in zip(lines, expected):
            cls, xc, yc, bw, bh = line.split()
            ys, xs = np.nonzero(t.id_map == a["id"])
            assert int(cls) == POSITION[a["category_id"]]
            assert abs(float(xc) - (xs.min() + xs.max() + 1) / 2 / w) < 1e-6
            assert abs(float(yc) - (ys.min() + ys.max() + 1) / 2 / h) < 1e-6
            assert abs(float(bw) - (xs.max() - xs.min() + 1) / w) < 1e-6
            assert abs(float(bh) - (ys.max() - ys.min() + 1) / h) < 1e-6

    # --- images: the original bytes, under the COCO file_name
    for t in good:
        copied = (out / "images" / (os.path.splitext(t.name)[0] + ".jpg")).read_bytes()
        assert copied == open(os.path.join(root, t.image_file), "rb").read()
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
    run(["--release", path, "--output", str(b), "--coco_shard_size", "3"])  # default: one process per core
    ta, tb = tree(str(a)), tree(str(b))
    assert ta.keys() == tb.keys()
    assert [k for k in ta if ta[k] != tb[k]] == []


def test_shard_size_does_not_change_the_documents(release, tmp_path):
    path, _, _ = release
    _export(release[0], tmp_path / "one", "--coco_shard_size", "1000", "--formats", "coco-instance,coco-panoptic")
    _export(release[0], tmp_path / "many", "--coco_shard_size", "2", "--formats", "coco-instance,coco-panoptic")
    for doc in ("coco-instance.json", "coco-panoptic.json"):
        assert (tmp_path / "one" / doc).read_bytes() == (tmp_path / "many" / doc).read_bytes()
