"""Seeded synthetic Segments.ai releases with known ground truth.

`make_release(root, ...)` draws each sample's instances (ellipses and rectangles painted in
order, later ones occluding earlier ones) into an id map, writes the RGBA bitmap PNG and a
JPEG image, and writes `release.json` (v2 layout). It returns the ground truth: per sample,
the id map as drawn and the annotations, so tests can compare every exported pixel, box and
mask with what was drawn — never with what the exporter produced.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import sys
import time

import numpy as np
from PIL import Image

CATEGORIES = [
    {"id": 1, "name": "person", "color": [220, 20, 60], "has_instances": True},
    {"id": 2, "name": "car", "color": [0, 0, 142], "has_instances": True},
    {"id": 3, "name": "bicycle", "has_instances": True},  # no colour: palette fallback
    {"id": 5, "name": "sky", "color": [70, 130, 180], "has_instances": False},
    {"id": 7, "name": "road", "has_instances": False},
]
THINGS = [1, 2, 3]
STUFF = [5, 7]


@dataclasses.dataclass
class TruthSample:
    name: str
    uuid: str
    id_map: np.ndarray  # (H, W) uint32 as drawn
    annotations: list[dict]  # {"id", "category_id"} as written to the release
    bitmap_file: str | None
    image_file: str


def id_map_to_png(id_map: np.ndarray) -> bytes:
    rgba = np.empty(id_map.shape + (4,), np.uint8)
    rgba[..., 0] = id_map & 0xFF
    rgba[..., 1] = (id_map >> 8) & 0xFF
    rgba[..., 2] = (id_map >> 16) & 0xFF
    rgba[..., 3] = 255
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def draw(rng: np.random.Generator, height: int, width: int, instances: int,
         first_id: int = 1, id_step: int = 1) -> tuple[np.ndarray, list[dict]]:
    """An id map with `instances` things over two stuff regions, and its annotations."""
    id_map = np.zeros((height, width), np.uint32)
    annotations = []
    # Stuff: sky on top, road at the bottom; two sky annotations (merged in panoptic).
    stuff_ids = [first_id + 100_000 + k for k in range(3)] if first_id > 1000 else [900, 901, 902]
    id_map[: height // 4, : width // 2] = stuff_ids[0]
    id_map[: height // 4, width // 2:] = stuff_ids[1]
    id_map[height - height // 5:, :] = stuff_ids[2]
    annotations += [{"id": stuff_ids[0], "category_id": 5}, {"id": stuff_ids[1], "category_id": 5},
                    {"id": stuff_ids[2], "category_id": 7}]
    yy, xx = np.ogrid[:height, :width]
    for k in range(instances):
        iid = first_id + k * id_step
        h = int(rng.integers(max(2, height // 20), max(3, height // 4)))
        w = int(rng.integers(max(2, width // 20), max(3, width // 4)))
        y0 = int(rng.integers(0, max(1, height - h)))
        x0 = int(rng.integers(0, max(1, width - w)))
        if k % 2:
            id_map[y0:y0 + h, x0:x0 + w] = iid
        else:
            cy, cx, ry, rx = y0 + h / 2, x0 + w / 2, h / 2, w / 2
            mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
            id_map[mask] = iid
        annotations.append({"id": iid, "category_id": THINGS[k % len(THINGS)]})
    return id_map, annotations


def make_release(root: str, samples: int = 4, height: int = 48, width: int = 64,
                 instances: int = 5, seed: int = 0, base_url: str = "",
                 jpeg_quality: int = 80, name: str = "synthetic",
                 keep_truth: bool = True) -> list[TruthSample]:
    """Writes root/release.json, root/images/*, root/labels/*; returns the ground truth.

    `base_url` prefixes asset URLs (e.g. "http://127.0.0.1:PORT/"); empty = relative paths.
    `keep_truth=False` returns nothing and holds one sample at a time (large benchmarks).
    """
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "labels"), exist_ok=True)
    truth, entries = [], []
    for i in range(samples):
        name_i = f"sample_{i:05d}.jpg"
        id_map, anns = draw(rng, height, width, instances)
        bitmap_file = f"labels/sample_{i:05d}.png"
        image_file = f"images/sample_{i:05d}.jpg"
        with open(os.path.join(root, bitmap_file), "wb") as f:
            f.write(id_map_to_png(id_map))
        img = np.empty((height, width, 3), np.uint8)
        img[...] = (np.asarray(id_map, np.uint64) * 2654435761 % 251)[..., None].astype(np.uint8)
        Image.fromarray(img).save(os.path.join(root, image_file), quality=jpeg_quality)
        uuid = f"00000000-0000-4000-8000-{i:012d}"
        if keep_truth:
            truth.append(TruthSample(name_i, uuid, id_map, anns, bitmap_file, image_file))
        entries.append(sample_entry(name_i, uuid, base_url + image_file, base_url + bitmap_file,
                                    anns))
    write_release(root, entries, name=name)
    return truth


def cached_release(workdir: str, samples: int, height: int, width: int, instances: int,
                   seed: int = 0) -> str:
    """The folder of a generated release (`make_release`, no ground truth kept) in `workdir`,
    made once and reused by later benchmark runs with the same parameters."""
    key = f"s{samples}-{width}x{height}-i{instances}-seed{seed}"
    root = os.path.join(workdir, key)
    if not os.path.exists(os.path.join(root, "release.json")):
        tmp = root + ".partial"
        shutil.rmtree(tmp, ignore_errors=True)
        t0 = time.monotonic()
        make_release(tmp, samples=samples, height=height, width=width, instances=instances,
                     seed=seed, keep_truth=False)
        os.replace(tmp, root)
        print(f"generated {key} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return root


def sample_entry(name: str, uuid: str, image_url: str | None, bitmap_url: str | None,
                 annotations: list[dict] | None, status: str = "LABELED",
                 metadata: dict | None = None) -> dict:
    label = None
    if annotations is not None:
        label = {"label_status": status, "attributes": {
            "format_version": "0.1", "annotations": annotations,
            "segmentation_bitmap": {"url": bitmap_url}}}
    return {"uuid": uuid, "name": name, "metadata": metadata or {},
            "attributes": {"image": {"url": image_url}},
            "labels": {"ground-truth": label}}


def write_release(root: str, samples: list[dict], name: str = "synthetic",
                  categories: list[dict] | None = None,
                  task_type: str = "segmentation-bitmap") -> str:
    release = {
        "name": name, "description": "synthetic release", "created_at": "2026-01-01 00:00:00+00:00",
        "dataset": {
            "name": "synth", "owner": "bench", "task_type": task_type,
            "task_attributes": {"format_version": "0.1",
                                "categories": categories if categories is not None else CATEGORIES},
            "labelsets": [{"name": "ground-truth", "description": ""}],
            "samples": samples,
        },
    }
    path = os.path.join(root, "release.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(release, f)
    return path


def make_vector_release(root: str, samples: int = 4, seed: int = 0, base_url: str = "",
                        task_type: str = "bboxes", sizes: tuple[tuple[int, int], ...] = ((64, 48), (80, 40)),
                        boxes: int = 3, distinct_images: int | None = None,
                        keep_truth: bool = True) -> list[dict]:
    """Writes root/release.json and root/images/*; returns each sample's entry (the truth).

    Boxes are drawn inside the image with integer corners, every other one written with its
    corners reversed; `vector` releases add one polygon per sample. `distinct_images` reuses
    that many image files (URLs still differ per sample, by query string) for big releases.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    n_images = samples if distinct_images is None else min(samples, distinct_images)
    for i in range(n_images):
        w, h = sizes[i % len(sizes)]
        img = np.full((h, w, 3), 40 + (i * 37) % 200, np.uint8)
        Image.fromarray(img).save(os.path.join(root, f"images/v_{i:06d}.jpg"), quality=80)
    entries = []
    for i in range(samples):
        w, h = sizes[(i % n_images) % len(sizes)]
        anns = []
        for k in range(boxes):
            x0, x1 = sorted(int(v) for v in rng.integers(0, w + 1, 2))
            y0, y1 = sorted(int(v) for v in rng.integers(0, h + 1, 2))
            x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
            pts = [[x0, y0], [x1, y1]] if k % 2 == 0 else [[x1, y1], [x0, y0]]
            anns.append({"id": k + 1, "category_id": THINGS[k % len(THINGS)], "type": "bbox",
                         "points": pts})
        if task_type == "vector":
            cx, cy = w / 2, h / 2
            anns.append({"id": boxes + 1, "category_id": THINGS[0], "type": "polygon",
                         "points": [[cx - 4, cy - 3], [cx + 4, cy - 3], [cx + 4, cy + 3]]})
        image = f"images/v_{i % n_images:06d}.jpg" + (f"?s={i}" if n_images < samples else "")
        label = {"label_status": "LABELED", "attributes": {"format_version": "0.1",
                                                           "annotations": anns}}
        entries.append({"uuid": f"00000000-0000-4000-9000-{i:012d}", "name": f"v_{i:06d}.jpg",
                        "attributes": {"image": {"url": base_url + image}},
                        "labels": {"ground-truth": label}})
    write_release(root, entries, task_type=task_type)
    return entries if keep_truth else []
