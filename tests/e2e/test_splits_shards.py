"""--split, hf-parquet and webdataset end to end: what the consumer libraries read back.

A generated release (bitmaps and images served on 127.0.0.1) is exported with three splits
and both shard formats, shards small enough that a split has several. Each test reads the
output with the library users load it with: Hugging Face `datasets` (both ways), webdataset,
Ultralytics' own dataset checker, pycocotools-style JSON, and compares with the drawn
ground truth or the per-sample files the same export wrote.
"""

from __future__ import annotations

import glob
import io
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from benchmarks import synth
from pipeline.run import main, run
from tests.conftest import tree

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # datasets: never the network (loopback only)
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
FORMATS = "coco-instance,coco-panoptic,yolo,instance,semantic,semantic-color,hf-parquet,webdataset"
SPLIT = ["--split", "train=0.6,val=0.2,test=0.2"]
SAMPLES = 14


@pytest.fixture
def served(http_root):
    root, url = http_root
    truth = synth.make_release(root, samples=SAMPLES, height=36, width=48, instances=4, seed=5,
                               base_url=url)
    return root, url, truth


def _write(root, url, truth, n=SAMPLES, failing=(), metadata=None, no_image=()):
    entries = []
    for i, t in enumerate(truth[:n]):
        bitmap = url + ("labels/missing.png" if i in failing else t.bitmap_file)
        image = None if i in no_image else url + t.image_file
        entries.append(synth.sample_entry(t.name, t.uuid, image, bitmap,
                                          t.annotations, metadata=(metadata or {}).get(i)))
    return synth.write_release(root, entries)


def _export(release, out, *extra):
    return run(["--release", release, "--output", str(out), "--formats", FORMATS,
                "--shard_mb", "0.02", *SPLIT, *extra])


def _outputs(folder) -> dict[str, bytes]:
    """Every output file; the ledger (.export-state) is bookkeeping, compared by content
    in tests/e2e/test_since.py and test_only_failed.py."""
    return {k: v for k, v in tree(str(folder)).items() if not k.startswith(".export-state")}


def _cache(out) -> str:
    """A datasets cache of this test's own: the default one can serve a dataset prepared by
    an earlier run from files of the same names, sizes and times (stale, as seen)."""
    return os.path.join(os.path.dirname(str(out)), "hf-cache")


def _manifest(out):
    rows = []
    for f in sorted(glob.glob(os.path.join(out, "manifest", "*.parquet"))):
        rows += pq.read_table(f).to_pylist()
    return rows


@pytest.fixture
def exported(served, tmp_path):
    root, url, truth = served
    release = _write(root, url, truth, metadata={2: {"camera": "front", "n": 1}})
    out = tmp_path / "out"
    _export(release, out, *IN_MEMORY)
    return str(out), root, truth


def test_every_exported_sample_is_in_exactly_one_split(exported):
    out, _, _ = exported
    rows = _manifest(out)
    assert len(rows) == SAMPLES and all(r["status"] == "exported" for r in rows)
    by_split = {s: {r["image_id"] for r in rows if r["split"] == s} for s in ("train", "val", "test")}
    assert all(by_split.values())  # no split is empty
    assert sum(map(len, by_split.values())) == SAMPLES
    report = json.load(open(os.path.join(out, "report.json")))
    assert {s: v["exported"] for s, v in report["splits"].items()} == {
        s: len(ids) for s, ids in by_split.items()}
    for fmt in ("coco-instance", "coco-panoptic"):
        assert not os.path.exists(os.path.join(out, f"{fmt}.json"))
        for split, ids in by_split.items():
            doc = json.load(open(os.path.join(out, f"{fmt}-{split}.json")))
            assert {im["id"] for im in doc["images"]} == ids
            assert {a["image_id"] for a in doc["annotations"]} <= ids
            if fmt == "coco-instance":  # ids dense from 1 in each document
                assert [a["id"] for a in doc["annotations"]] == list(
                    range(1, len(doc["annotations"]) + 1))


def test_hugging_face_datasets_loads_every_sample_in_its_split(exported):
    import datasets

    out, root, truth = exported
    rows = {r["uuid"]: r for r in _manifest(out)}
    shards = sorted(os.listdir(os.path.join(out, "hf", "data")))
    assert sum(s.startswith("train-") for s in shards) > 1  # several shards, named -of-
    train = [s for s in shards if s.startswith("train-")]
    assert train == [f"train-{k:05d}-of-{len(train):05d}.parquet" for k in range(len(train))]
    ds = datasets.load_dataset(os.path.join(out, "hf"), cache_dir=_cache(out))
    plain = datasets.load_dataset("parquet", data_dir=os.path.join(out, "hf", "data"),
                                  cache_dir=_cache(out))
    names = {"train": "train", "val": "validation", "test": "test"}
    truth_by_uuid = {t.uuid: t for t in truth}
    for split, hf_split in names.items():
        want = sorted(u for u, r in rows.items() if r["split"] == split)
        assert sorted(ds[hf_split]["uuid"]) == want
        assert sorted(plain[hf_split]["uuid"]) == want
        coco = json.load(open(os.path.join(out, f"coco-instance-{split}.json")))
        raw = ds[hf_split].cast_column("image", datasets.Image(decode=False))
        for record, undecoded in zip(ds[hf_split], raw):
            t = truth_by_uuid[record["uuid"]]
            row = rows[record["uuid"]]
            original = open(os.path.join(root, t.image_file), "rb").read()
            assert undecoded["image"]["bytes"] == original  # the original bytes
            assert np.array_equal(np.asarray(record["image"]),
                                  np.asarray(Image.open(io.BytesIO(original)).convert("RGB")))
            for column, path_column in (("label", "semantic_path"),
                                        ("instance", "instance_path"),
                                        ("semantic_color", "semantic_color_path")):
                exported_png = np.asarray(Image.open(os.path.join(out, row[path_column])))
                assert np.array_equal(np.asarray(record[column]), exported_png), column
            assert np.asarray(record["instance"]).dtype == np.uint16  # 16-bit ids, lossless
            instance = np.asarray(record["instance"]).astype(np.uint32)
            drawn = {a["id"] for a in t.annotations} & set(np.unique(t.id_map).tolist())
            assert set(np.unique(instance).tolist()) - {0} == drawn
            anns = [a for a in coco["annotations"] if a["image_id"] == record["image_id"]]
            assert [(o["id"], o["category_id"], o["bbox"], o["area"], json.loads(o["segmentation"]))
                    for o in record["objects"]] == [
                (a["id"], a["category_id"], [float(v) for v in a["bbox"]], float(a["area"]),
                 a["segmentation"]) for a in anns]
    front = [r for r in ds["train"].to_list() + ds["validation"].to_list() + ds["test"].to_list()
             if r["metadata"] and json.loads(r["metadata"]).get("camera") == "front"]
    assert len(front) == 1
    card = open(os.path.join(out, "hf", "README.md")).read()
    assert "data/validation-*" in card and "task_categories" in card
    id2label = json.load(open(os.path.join(out, "hf", "id2label.json")))
    values = sorted(int(v) for v in id2label)
    assert values == list(range(max(c["id"] for c in synth.CATEGORIES) + 1))
    assert {id2label[str(c["id"])] for c in synth.CATEGORIES} == {c["name"] for c in synth.CATEGORIES}


def test_webdataset_iterates_every_record_with_the_same_content(exported):
    import webdataset as wds

    out, root, truth = exported
    rows = {r["uuid"]: r for r in _manifest(out)}
    truth_by_uuid = {t.uuid: t for t in truth}
    seen = {}
    for split in ("train", "val", "test"):
        urls = sorted(glob.glob(os.path.join(out, "webdataset", f"{split}-*.tar")))
        assert urls
        coco = json.load(open(os.path.join(out, f"coco-instance-{split}.json")))
        raw = {r["__key__"]: r for r in wds.WebDataset(urls, shardshuffle=False)}  # undecoded
        pipeline = wds.WebDataset(urls, shardshuffle=False).decode(
            wds.handle_extension("png16", lambda b: np.asarray(Image.open(io.BytesIO(b)))), "pil")
        for s in pipeline:
            info = s["json"]
            row = rows[info["uuid"]]
            assert row["split"] == split and info["split"] == split
            assert "." not in s["__key__"]
            t = truth_by_uuid[info["uuid"]]
            assert raw[s["__key__"]]["jpg"] == open(os.path.join(root, t.image_file), "rb").read()
            assert np.array_equal(s["instance.png16"],
                                  np.asarray(Image.open(os.path.join(out, row["instance_path"]))))
            assert s["instance.png16"].dtype == np.uint16
            for member, column in (("semantic.png", "semantic_path"),
                                   ("panoptic.png", "coco_panoptic_path"),
                                   ("semantic_color.png", "semantic_color_path"),
                                   ("instance.png16", "instance_path")):
                assert raw[s["__key__"]][member] == open(
                    os.path.join(out, row[column]), "rb").read(), member  # the exported file
            assert s["jpg"].size == (t.id_map.shape[1], t.id_map.shape[0])
            anns = [a for a in coco["annotations"] if a["image_id"] == info["image_id"]]
            assert info["annotations"] == anns
            seen[info["uuid"]] = split
    assert seen == {u: r["split"] for u, r in rows.items()}


# Ultralytics patches PIL.Image.open process-wide when imported (and tries to pip-install a
# HEIF plugin on the first unidentified image), so it runs in a child process of its own.
_ULTRALYTICS = """
import json, os, sys
from ultralytics.data.dataset import YOLODataset
from ultralytics.data.utils import check_det_dataset

data = check_det_dataset(sys.argv[1], autodownload=False)
out = {"nc": data["nc"], "lists": {s: data[s] for s in ("train", "val", "test")}}
val = YOLODataset(img_path=data["val"], data=data, task="detect", imgsz=64, augment=False)
out["val_images"] = len(val)
out["val_boxes"] = sum(len(lab["bboxes"]) for lab in val.labels)
print(json.dumps(out))
"""


def _ultralytics(data_yaml: str, tmp_path) -> dict:
    """check_det_dataset and the validation YOLODataset of `yolo train`, offline: YOLO_OFFLINE
    skips its DNS probe; it looks for a font for its plots and downloads it when missing, so
    a file of that name in its config folder (YOLO_CONFIG_DIR) keeps it offline; the working
    directory is elsewhere, as data.yaml must resolve against its own folder."""
    import subprocess
    import sys

    config = tmp_path / "yolo-config"
    config.mkdir()
    (config / "Arial.ttf").write_bytes(b"")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {**os.environ, "YOLO_CONFIG_DIR": str(config), "YOLO_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", _ULTRALYTICS, data_yaml], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_ultralytics_accepts_data_yaml(exported, tmp_path):
    out, _, _ = exported
    data = _ultralytics(os.path.join(out, "data.yaml"), tmp_path)
    # YOLO's classes: the thing categories (stuff, has_instances: false, is no object).
    assert data["nc"] == sum(c["has_instances"] for c in synth.CATEGORIES)
    rows = _manifest(out)
    for split in ("train", "val", "test"):
        listed = open(data["lists"][split]).read().splitlines()
        assert len(listed) == sum(r["split"] == split for r in rows)
        for line in listed:
            assert os.path.exists(os.path.join(out, line))
    # The dataset `yolo train` builds for validation finds every image and label line.
    lines = sum(len(open(os.path.join(out, r["yolo_path"])).read().splitlines())
                for r in rows if r["split"] == "val")
    assert data["val_images"] == sum(r["split"] == "val" for r in rows)
    assert data["val_boxes"] == lines > 0


def test_readme_training_recipes_load_the_export(exported):
    """The data-loading half of the README's Hugging Face and torchvision recipes
    ("Training on the export"), as written there, on a real export: the Transformers
    semantic-segmentation script's preprocessing on hf/, torchvision's CocoDetection on the
    per-split COCO files (the Ultralytics one: test_ultralytics_accepts_data_yaml)."""
    out, _, truth = exported
    rows = _manifest(out)
    import datasets

    ds = datasets.load_dataset(os.path.join(out, "hf"), cache_dir=_cache(out))
    id2label = {int(k): v for k, v in json.load(open(os.path.join(out, "hf", "id2label.json"))).items()}
    for example in ds["train"]:
        image, target = np.array(example["image"].convert("RGB")), np.array(example["label"])
        assert image.shape[:2] == target.shape
        assert set(np.unique(target).tolist()) <= set(id2label)  # every value has a label

    from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2

    coco = CocoDetection(os.path.join(out, "images"), os.path.join(out, "coco-instance-train.json"))
    wrapped = wrap_dataset_for_transforms_v2(coco, target_keys=("boxes", "labels", "masks"))
    image, target = wrapped[0]
    assert len(coco) == sum(r["split"] == "train" for r in rows)
    assert target["masks"].shape[1:] == (image.height, image.width)
    assert len(target["boxes"]) == len(target["labels"]) == len(target["masks"]) > 0


def test_validate_checks_splits_and_reads_the_shards_back(exported):
    from pipeline.validate import validate

    out, _, _ = exported
    report = validate(out)
    assert report.ok, report.problems
    assert {"splits", "hf-parquet", "webdataset", "coco-instance-val"} <= set(report.summary)
    assert "load_dataset ok" in report.summary["hf-parquet"]
    assert "WebDataset iteration ok" in report.summary["webdataset"]
    # A sample listed in two splits, and report counts that disagree, are both caught.
    with open(os.path.join(out, "val.txt"), "a") as f:
        f.write(open(os.path.join(out, "train.txt")).readline())
    summary = json.load(open(os.path.join(out, "report.json")))
    summary["splits"]["train"]["exported"] += 1
    json.dump(summary, open(os.path.join(out, "report.json"), "w"))
    problems = validate(out).problems["splits"]
    assert any("report.json" in p for p in problems) and any("val.txt" in p for p in problems)


def test_byte_identical_across_runners_and_chunks(served, tmp_path):
    root, url, truth = served
    release = _write(root, url, truth)
    one, multi, chunked = tmp_path / "one", tmp_path / "multi", tmp_path / "chunked"
    _export(release, one, *IN_MEMORY)
    _export(release, multi, "--direct_running_mode=multi_processing", "--direct_num_workers=2")
    _export(release, chunked, "--chunk_samples", "4", *IN_MEMORY)
    a, b, c = tree(str(one)), tree(str(multi)), tree(str(chunked))
    assert sorted(a) == sorted(b) == sorted(c)
    assert [k for k in a if a[k] != b[k]] == [] and [k for k in a if a[k] != c[k]] == []
    assert any(k.startswith("hf/data/") for k in a) and any(k.startswith("webdataset/") for k in a)


def test_since_with_20_percent_more_samples_equals_a_full_export(served, tmp_path):
    root, url, truth = served
    first = 11  # then 3 more: about 20 % appended
    out, full = tmp_path / "out", tmp_path / "full"
    _export(_write(root, url, truth, n=first), out, *IN_MEMORY)
    before = {r["uuid"]: r["split"] for r in _manifest(str(out))}
    release = _write(root, url, truth)
    _export(release, out, "--since", str(out), *IN_MEMORY)
    _export(release, full, *IN_MEMORY)
    a, b = _outputs(out), _outputs(full)
    assert sorted(a) == sorted(b) and [k for k in a if a[k] != b[k]] == []
    assert any(k.startswith("hf/data/") for k in a) and "train.txt" in a
    after = {r["uuid"]: r["split"] for r in _manifest(str(out))}
    assert all(after[u] == s for u, s in before.items())  # no old sample moved


def test_only_failed_completes_splits_and_shards(served, tmp_path):
    root, url, truth = served
    out, full = tmp_path / "out", tmp_path / "full"
    release = _write(root, url, truth, failing=(4,))
    _export(release, out, *IN_MEMORY)
    os.rename(os.path.join(root, truth[4].bitmap_file), os.path.join(root, "labels", "missing.png"))
    _export(release, out, "--only_failed", *IN_MEMORY)
    _export(release, full, *IN_MEMORY)
    a, b = _outputs(out), _outputs(full)
    assert sorted(a) == sorted(b) and [k for k in a if a[k] != b[k]] == []
    assert sum(1 for r in _manifest(str(out)) if r["status"] == "exported") == SAMPLES


def test_vector_release_shards_carry_the_coco_boxes(tmp_path):
    import datasets

    from pipeline.validate import validate

    root = tmp_path / "vec"
    synth.make_vector_release(str(root), samples=10, seed=2, task_type="vector",
                              sizes=((64, 48), (48, 64)), keep_truth=False)
    out = tmp_path / "out"
    run(["--release", str(root / "release.json"), "--output", str(out), "--allow_local_files",
         "--formats", "coco-instance,yolo,hf-parquet,webdataset", "--split", "train=0.5,val=0.5",
         *IN_MEMORY])
    assert validate(str(out)).ok
    ds = datasets.load_dataset(str(out / "hf"), cache_dir=_cache(out))
    for split, hf_split in (("train", "train"), ("val", "validation")):
        coco = json.load(open(out / f"coco-instance-{split}.json"))
        got = sorted((o["id"], o["category_id"], tuple(o["bbox"]))
                     for r in ds[hf_split] for o in r["objects"])
        assert got == sorted((a["id"], a["category_id"], tuple(float(v) for v in a["bbox"]))
                             for a in coco["annotations"])
        assert len(ds[hf_split]) == len(coco["images"])


def test_a_sample_without_image_has_no_record_and_moves_no_annotation_id(served, tmp_path):
    import datasets

    root, url, truth = served
    out = tmp_path / "out"
    _export(_write(root, url, truth, no_image=(0, 5)), out, *IN_MEMORY)
    rows = _manifest(str(out))
    assert all(r["status"] == "exported" for r in rows)
    ds = datasets.load_dataset(str(out / "hf"), cache_dir=_cache(out))
    for split, hf_split in (("train", "train"), ("val", "validation"), ("test", "test")):
        coco = json.load(open(out / f"coco-instance-{split}.json"))
        want = {r["uuid"] for r in rows if r["split"] == split and r["image_path"]}
        if not want:  # every sample of the split lacks an image: the split has no shard
            assert hf_split not in ds
            continue
        assert set(ds[hf_split]["uuid"]) == want
        for record in ds[hf_split]:
            anns = [a["id"] for a in coco["annotations"] if a["image_id"] == record["image_id"]]
            assert [o["id"] for o in record["objects"]] == anns


def test_dry_run_prints_the_split_counts(served, tmp_path, capsys):
    root, url, truth = served
    plan = run(["--release", _write(root, url, truth), "--output", str(tmp_path / "out"),
                *SPLIT, "--dry_run"])
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.startswith("splits: "))
    counts = dict(part.split() for part in line[len("splits: "):].split(" samples")[0].split(", "))
    assert sum(map(int, counts.values())) == plan["to_export"] == SAMPLES
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, message", [
    (["--split", "train=0.8,val=0.1"], "--split: ratios sum to 0.9, not 1"),
    (["--split", "train=0.5,valid=0.5"], "--split: unknown split 'valid'"),
    (["--split", "train=0.5,val=0.5", "--split_by_metadata", "fold"],
     "--split_by_metadata: sample 'sample_00000.jpg' (position 0) has no metadata 'fold'"),
    (["--shard_mb", "0"], "--shard_mb: expected"),
    (["--formats", "hf-parquet", "--images", "none"], "--formats: hf-parquet embeds"),
])
def test_bad_split_and_shard_options_exit_2_before_any_work(served, tmp_path, capsys, flags,
                                                            message):
    root, url, truth = served
    release = _write(root, url, truth)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["--release", release, "--output", str(out), *flags])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].split(": error: ", 1)[1].startswith(message), err[-1]
    assert not out.exists()
