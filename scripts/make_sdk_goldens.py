"""Regenerates tests/data/sdk/: a tiny release and what the `segments-ai` SDK exports from it.

The goldens are read by tests/e2e/test_sdk_parity.py, which runs in the project venv and never
imports `segments`. This script is the only place the SDK runs, and it needs its own venv
because the SDK wants Pillow < 12 (and other pins) that must not constrain ours:

    python3 -m venv /tmp/sdkvenv
    /tmp/sdkvenv/bin/pip install 'segments-ai==1.30.0' 'Pillow<12' scikit-image pycocotools \
        opencv-python-headless
    /tmp/sdkvenv/bin/python scripts/make_sdk_goldens.py          # from the repo root

What it does, deterministically (rerunning gives byte-identical files):

1. Builds the release with `benchmarks/synth.py` (numpy + Pillow only) into tests/data/sdk/:
   3 seeded samples, an unlabeled sample (it uses up an image id, as in the SDK), and a sample
   whose ids are 300..485 plus stuff ids 900..902 (ids 256..65535), named `*.png` with a `.jpg`
   image URL; one annotation with no pixels and one with object attributes. Asset URLs are
   RELATIVE paths, so the release exports offline with our pipeline.
2. Serves that folder on 127.0.0.1 and hands the SDK a temporary copy of release.json whose
   URLs are absolute (the SDK fetches with `requests`, which needs a scheme); names, URL
   paths and extensions are unchanged, so the export is that of the relative release.
3. Loads it with `SegmentsDataset(..., preload=True, segments_dir=<temp cache>)`: preloading
   fills the cache, so every export reads the cached bitmaps (PIL `I;16`), the only form the
   instance and panoptic exports work with (spec §3.4, §5 #3).
4. Runs `export_dataset` for coco-instance, coco-panoptic (after `np.random.seed(0)`: the SDK's
   panoptic ids come from NumPy's global RNG), instance, semantic, instance-color and
   semantic-color, and yolo. A format that raises is recorded in sdk.json with its exception.
5. Saves under stable names: coco-instance.json, coco-panoptic.json, {format}/{stem}.png,
   sdk-images/{file_name} (the SDK's cached, re-encoded images), sdk.json (library versions,
   the SDK's own output names, errors) and README.md.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import traceback

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks import synth  # after the sys.path line; needs only numpy + Pillow
from benchmarks.server import StaticServer  # stdlib only

OUT = os.path.join(REPO, "tests", "data", "sdk")
LABELSET = "ground-truth"
RELEASE_NAME = "sdk-parity"
IMAGE_FORMATS = ("instance", "semantic", "instance-color", "semantic-color")
# The SDK's file suffix per image format (spec §4.0.2).
SUFFIX = {"instance": "instance", "semantic": "semantic", "instance-color": "instance_colored",
          "semantic-color": "semantic_colored", "coco-panoptic": "coco-panoptic"}
VERSIONS = ("segments-ai", "Pillow", "numpy", "scikit-image", "pycocotools", "pydantic",
            "opencv-python-headless")


def build_release(root: str) -> str:
    """Writes root/release.json (relative URLs), root/images/*, root/labels/*."""
    truth = synth.make_release(root, samples=3, height=40, width=56, instances=6, seed=5,
                               name=RELEASE_NAME)
    entries = [synth.sample_entry(t.name, t.uuid, t.image_file, t.bitmap_file, t.annotations)
               for t in truth]
    # An annotation whose id has no pixels (skipped by every format, uses up no COCO id), and
    # object attributes on one annotation (the SDK drops them; we keep them).
    entries[0]["labels"][LABELSET]["attributes"]["annotations"].append(
        {"id": 999, "category_id": 1})
    entries[1]["labels"][LABELSET]["attributes"]["annotations"][3]["attributes"] = {
        "occluded": True, "score": 0.5}
    # A sample without a label in the middle: skipped, but it uses up image id 3.
    entries.insert(2, synth.sample_entry("unlabeled.jpg", "00000000-0000-4000-8000-000000000100",
                                         truth[0].image_file, None, None))
    # Ids 256..65535: things 300, 337, ..., 485 over stuff 900..902. The name is a .png while
    # the image URL is a .jpg: COCO file_name takes the URL's extension (spec §5 #28).
    rng = np.random.default_rng(11)
    id_map, anns = synth.draw(rng, 40, 56, 6, first_id=300, id_step=37)
    with open(os.path.join(root, "labels", "wide_ids.png"), "wb") as f:
        f.write(synth.id_map_to_png(id_map))
    from PIL import Image
    img = (np.asarray(id_map, np.uint64) * 2654435761 % 251).astype(np.uint8)
    Image.fromarray(np.repeat(img[..., None], 3, axis=2)).save(
        os.path.join(root, "images", "wide_ids.jpg"), quality=80)
    entries.append(synth.sample_entry("wide_ids.png", "00000000-0000-4000-8000-000000000200",
                                      "images/wide_ids.jpg", "labels/wide_ids.png", anns))
    return synth.write_release(root, entries, name=RELEASE_NAME)


def absolute_copy(release_path: str, base_url: str, dest: str) -> str:
    with open(release_path, encoding="utf-8") as f:
        release = json.load(f)
    for sample in release["dataset"]["samples"]:
        sample["attributes"]["image"]["url"] = base_url + sample["attributes"]["image"]["url"]
        label = sample["labels"][LABELSET]
        if label:
            bitmap = label["attributes"]["segmentation_bitmap"]
            bitmap["url"] = base_url + bitmap["url"]
    with open(dest, "w", encoding="utf-8") as f:
        json.dump(release, f)
    return dest


def stems(release_path: str) -> list[str]:
    with open(release_path, encoding="utf-8") as f:
        samples = json.load(f)["dataset"]["samples"]
    return [os.path.splitext(os.path.basename(s["name"]))[0] for s in samples
            if s["labels"][LABELSET]]


def readme(meta: dict) -> str:
    v = meta["versions"]
    errors = "".join(f"- `{fmt}`: the SDK raised `{e['type']}: {e['message']}` in `{e['where']}`"
                     " (no PNGs saved).\n" for fmt, e in sorted(meta["errors"].items()))
    return f"""# SDK goldens

What the reference exporter, the `segments-ai` SDK (`segments.utils.export_dataset`), writes for
the tiny release in this folder. Read by `tests/e2e/test_sdk_parity.py`; generated (do not edit)
by `scripts/make_sdk_goldens.py`, which is deterministic (a rerun gives identical files):

```bash
python3 -m venv /tmp/sdkvenv   # outside the repo: the SDK's pins must not touch .venv
/tmp/sdkvenv/bin/pip install 'segments-ai=={v['segments-ai']}' 'Pillow<12' scikit-image \\
    pycocotools opencv-python-headless
/tmp/sdkvenv/bin/python scripts/make_sdk_goldens.py
```

Versions used: segments-ai {v['segments-ai']}, Pillow {v['Pillow']}, NumPy {v['numpy']},
scikit-image {v['scikit-image']}, pycocotools {v['pycocotools']}, pydantic {v['pydantic']},
opencv-python-headless {v['opencv-python-headless']}, Python {meta['python']}.

- `release.json`, `images/`, `labels/`: the release (relative asset URLs), built with
  `benchmarks/synth.py`: three seeded samples, one unlabeled sample, one sample with ids
  256..65535 (`wide_ids.png`, image URL `.jpg`), one annotation without pixels, one with
  object attributes.
- The SDK loaded it with `SegmentsDataset(release, preload=True, segments_dir=<temp>)` (warm
  cache; assets served on 127.0.0.1 from this folder) and exported each format;
  `np.random.seed(0)` was called before coco-panoptic (its ids come from NumPy's global RNG).
- `coco-instance.json`, `coco-panoptic.json`: the SDK's JSON files, renamed (`sdk.json` has the
  SDK's own names).
- `coco-panoptic/`, `instance/`, `semantic/`, `instance-color/`: the SDK's PNGs as
  `{{stem}}.png`.
{errors}- `sdk-images/`: the images the SDK's COCO `file_name`s point to (its cache re-encodes them).
- `sdk.json`: versions, the SDK's output paths (relative to its temp dir), errors.
"""


def main() -> None:
    from segments import SegmentsDataset
    from segments.utils import export_dataset

    # Rerunnable: start from an empty folder.
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    release_path = build_release(OUT)
    labelled = stems(release_path)
    meta = {"versions": {p: importlib.metadata.version(p) for p in VERSIONS},
            "python": sys.version.split()[0],
            "command": "/tmp/sdkvenv/bin/python scripts/make_sdk_goldens.py",
            "sdk_files": {}, "errors": {}}

    with tempfile.TemporaryDirectory() as work, StaticServer(OUT) as server:
        sdk_release = absolute_copy(release_path, server.url, os.path.join(work, "release.json"))
        cache = os.path.join(work, "cache")
        export = os.path.join(work, "export")
        dataset = SegmentsDataset(sdk_release, labelset=LABELSET, preload=True,
                                  segments_dir=cache)

        def rel(path: str) -> str:  # the SDK's output path without our temp dirs
            return os.path.relpath(path, work)

        for fmt in ("coco-instance", "coco-panoptic"):
            if fmt == "coco-panoptic":
                np.random.seed(0)
            json_path, image_dir = export_dataset(dataset, export, fmt)
            shutil.copyfile(json_path, os.path.join(OUT, f"{fmt}.json"))
            meta["sdk_files"][fmt] = rel(json_path)
        os.makedirs(os.path.join(OUT, "coco-panoptic"))
        for stem in labelled:
            name = f"{stem}_label_{LABELSET}_{SUFFIX['coco-panoptic']}.png"
            shutil.copyfile(os.path.join(image_dir, name),
                            os.path.join(OUT, "coco-panoptic", f"{stem}.png"))
        meta["sdk_files"]["coco-panoptic-png"] = rel(os.path.join(image_dir, "{stem}_label_"
                                                                  f"{LABELSET}_coco-panoptic.png"))

        # The images the SDK serves as COCO file_name: its cache re-encodes them (spec §5 #41).
        with open(os.path.join(OUT, "coco-instance.json"), encoding="utf-8") as f:
            file_names = [im["file_name"] for im in json.load(f)["images"]]
        os.makedirs(os.path.join(OUT, "sdk-images"))
        for name in file_names:
            shutil.copyfile(os.path.join(image_dir, name), os.path.join(OUT, "sdk-images", name))
        meta["sdk_files"]["images"] = rel(os.path.join(image_dir, "{file_name}"))

        for fmt in IMAGE_FORMATS + ("yolo",):
            folder = os.path.join(export, fmt)
            try:
                export_dataset(dataset, folder, fmt)
            # The SDK's known failures (spec §4.9, §5) are part of the golden.
            except (IndexError, KeyError, TypeError, ValueError, AttributeError) as e:
                last = traceback.extract_tb(e.__traceback__)[-1]
                meta["errors"][fmt] = {"type": type(e).__name__, "message": str(e),
                                       "where": f"{os.path.basename(last.filename)}:{last.name}"}
                continue
            os.makedirs(os.path.join(OUT, fmt))
            for stem in labelled:
                name = f"{stem}_label_{LABELSET}_{SUFFIX[fmt]}.png"
                shutil.copyfile(os.path.join(folder, name), os.path.join(OUT, fmt, f"{stem}.png"))
            meta["sdk_files"][fmt] = rel(os.path.join(folder, "{stem}_label_"
                                                      f"{LABELSET}_{SUFFIX[fmt]}.png"))

    with open(os.path.join(OUT, "sdk.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    with open(os.path.join(OUT, "README.md"), "w", encoding="utf-8") as f:
        f.write(readme(meta))
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(OUT) for n in ns)
    print(f"wrote {OUT} ({total} bytes); SDK errors: {sorted(meta['errors']) or 'none'}")


if __name__ == "__main__":
    main()
