"""Checks an export against the ground truth that `synth` drew (tests and benchmarks).

Every check compares exported files with the drawn id maps and annotations, decoding the
outputs with the libraries users load them with (pycocotools, Pillow); nothing is compared
with the exporter's own intermediate results.
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

# The SDK's colour map as printed in the spec (§4.0.3), written out independently of the code.
SPEC_COLORMAP = [
    (0, 113, 188), (216, 82, 24), (236, 176, 31), (125, 46, 141), (118, 171, 47),
    (76, 189, 237), (161, 19, 46), (255, 0, 0), (255, 127, 0), (190, 190, 0), (0, 255, 0),
    (0, 0, 255), (170, 0, 255), (84, 84, 0), (84, 170, 0), (84, 255, 0), (170, 84, 0),
    (170, 170, 0), (170, 255, 0), (255, 84, 0), (255, 170, 0), (255, 255, 0), (0, 84, 127),
    (0, 170, 127), (0, 255, 127), (84, 0, 127), (84, 84, 127), (84, 170, 127),
    (84, 255, 127), (170, 0, 127), (170, 84, 127), (170, 170, 127), (170, 255, 127),
    (255, 0, 127), (255, 84, 127), (255, 170, 127),
]


def read_png(path: str) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def _bbox(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


class Problems(list):
    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.append(what)


def verify_export(out: str, truth, categories: list[dict], labelset: str = "ground-truth",
                  image_sources: str | None = None, stuff_as_instances: bool = False) -> list[str]:
    """Returns every mismatch found (empty = every artifact is exactly right).

    `truth`: the exported samples (synth.TruthSample) whose annotation ids all have known
    categories; `image_sources`: folder the image files came from (compared byte for byte).
    The instance formats (coco-instance, YOLO) hold the categories not marked
    `has_instances: false` (all of them with `stuff_as_instances`), YOLO classes numbered
    over those; a sample with an id above 65535 has no (16-bit) instance PNG.
    """
    p = Problems()
    cats = {c["id"]: c for c in categories}
    position = {c["id"]: i for i, c in enumerate(categories)}
    objects = [c for c in categories if stuff_as_instances or c.get("has_instances") is not False]
    yolo_class = {c["id"]: i for i, c in enumerate(objects)}

    def color(cat_id):
        c = cats[cat_id]
        return tuple(c["color"][:3]) if c.get("color") else SPEC_COLORMAP[position[cat_id] % 36]

    coco = COCO(os.path.join(out, "coco-instance.json"))
    ann_ids = sorted(coco.anns)
    p.check(ann_ids == list(range(1, len(ann_ids) + 1)), "coco-instance: ids not dense from 1")
    images = {img["file_name"]: img for img in coco.dataset["images"]}
    pan = json.load(open(os.path.join(out, "coco-panoptic.json"), encoding="utf-8"))
    pan_by_image = {a["image_id"]: a for a in pan["annotations"]}
    p.check({c["id"]: c["isthing"] for c in pan["categories"]}
            == {c["id"]: int(bool(c.get("has_instances"))) for c in categories},
            "coco-panoptic: isthing differs from has_instances")
    names = open(os.path.join(out, "data.yaml"), encoding="utf-8").read()
    p.check(f"nc: {len(objects)}\n" in names, "data.yaml: class count")
    for i, c in enumerate(objects):
        p.check(f"  {i}: {json.dumps(c['name'])}" in names, f"data.yaml: class {i} is not {c['name']}")

    for t in truth:
        stem = os.path.splitext(t.name)[0]
        where = f"{t.name}:"
        annotated = {a["id"]: a["category_id"] for a in t.annotations}
        present = [a for a in t.annotations if (t.id_map == a["id"]).any()
                   and a["category_id"] in yolo_class]  # in the instance formats
        h, w = t.id_map.shape

        # coco-instance
        img = images.get(stem + ".jpg")
        if img is None:
            p.append(f"{where} no COCO image entry")
            continue
        p.check((img["height"], img["width"]) == (h, w), f"{where} COCO size")
        anns = sorted(coco.imgToAnns[img["id"]], key=lambda a: a["id"])
        p.check(len(anns) == len(present), f"{where} {len(anns)} COCO annotations, want {len(present)}")
        for got, want in zip(anns, present):
            mask = t.id_map == want["id"]
            p.check(got["category_id"] == want["category_id"], f"{where} category of {want['id']}")
            p.check(np.array_equal(coco.annToMask(got).astype(bool), mask), f"{where} mask of {want['id']}")
            p.check(got["bbox"] == _bbox(mask), f"{where} bbox of {want['id']}")
            p.check(got["area"] == int(mask.sum()) and got["iscrowd"] == 0, f"{where} area of {want['id']}")
            ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()
            p.check(got["segmentation"]["counts"] == ref, f"{where} RLE of {want['id']} differs from pycocotools")

        # coco-panoptic
        ann = pan_by_image.get(img["id"])
        if ann is None:
            p.append(f"{where} no panoptic annotation")
        else:
            rgb = read_png(os.path.join(out, "coco-panoptic", ann["file_name"])).astype(np.uint32)
            seg_ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
            ids = [s["id"] for s in ann["segments_info"]]
            p.check(len(ids) == len(set(ids)) and 0 not in ids, f"{where} panoptic ids not unique/non-zero")
            covered = np.zeros((h, w), bool)
            stuff_seen = set()
            for s in ann["segments_info"]:
                cat = s["category_id"]
                seg_mask = seg_ids == s["id"]
                if cats[cat].get("has_instances"):
                    # The instance under the segment's first pixel must fill exactly the segment.
                    first = np.flatnonzero(seg_mask.ravel())
                    members = [int(t.id_map.ravel()[first[0]])] if first.size else []
                    p.check(bool(members) and annotated.get(members[0]) == cat,
                            f"{where} panoptic thing {s['id']} matches no instance of its category")
                else:
                    p.check(cat not in stuff_seen, f"{where} stuff {cat} not merged")
                    stuff_seen.add(cat)
                    members = [m for m, c in annotated.items() if c == cat]
                truth_mask = np.isin(t.id_map, members)
                p.check(np.array_equal(seg_mask, truth_mask), f"{where} panoptic mask {s['id']}")
                if truth_mask.any():
                    p.check(s["area"] == int(truth_mask.sum()) and s["iscrowd"] == 0
                            and s["bbox"] == _bbox(truth_mask), f"{where} panoptic area/bbox {s['id']}")
                covered |= truth_mask
            p.check(not seg_ids[~covered].any(), f"{where} panoptic pixels outside segments")
            p.check(covered.sum() == np.isin(t.id_map, list(annotated)).sum(), f"{where} panoptic misses pixels")

        # PNG formats
        inst_path = os.path.join(out, "instance", f"{stem}_label_{labelset}_instance.png")
        expect_inst = np.where(np.isin(t.id_map, list(annotated)), t.id_map, 0)
        if expect_inst.max() > 0xFFFF:  # left out: 16 bits cannot hold its ids
            p.check(not os.path.exists(inst_path), f"{where} an instance PNG of ids above 65535")
        else:
            inst = read_png(inst_path)
            p.check(inst.dtype == np.uint16 and np.array_equal(inst, expect_inst),
                    f"{where} instance PNG")
        sem = read_png(os.path.join(out, "semantic", f"{stem}_label_{labelset}_semantic.png"))
        expect_sem = np.zeros((h, w), np.uint16)
        for iid, cat in annotated.items():
            expect_sem[t.id_map == iid] = cat
        p.check(np.array_equal(sem, expect_sem), f"{where} semantic PNG")
        sem_c = read_png(os.path.join(out, "semantic-color", f"{stem}_label_{labelset}_semantic_colored.png"))
        inst_c = read_png(os.path.join(out, "instance-color", f"{stem}_label_{labelset}_instance_colored.png"))
        expect_sem_c = np.zeros((h, w, 3), np.uint8)
        expect_inst_c = np.zeros((h, w, 3), np.uint8)
        for iid, cat in annotated.items():
            m = t.id_map == iid
            expect_sem_c[m] = color(cat)
            expect_inst_c[m] = SPEC_COLORMAP[(iid - 1) % 36]
        p.check(np.array_equal(sem_c, expect_sem_c), f"{where} semantic-color PNG")
        p.check(np.array_equal(inst_c, expect_inst_c), f"{where} instance-color PNG")

        # yolo
        lines = open(os.path.join(out, "labels", stem + ".txt"), encoding="ascii").read().splitlines()
        p.check(len(lines) == len(present), f"{where} {len(lines)} YOLO lines, want {len(present)}")
        for line, a in zip(lines, present):
            cls, xc, yc, bw, bh = line.split()
            x0, y0, bw_px, bh_px = _bbox(t.id_map == a["id"])
            p.check(int(cls) == yolo_class[a["category_id"]], f"{where} YOLO class of {a['id']}")
            want = ((x0 + bw_px / 2) / w, (y0 + bh_px / 2) / h, bw_px / w, bh_px / h)
            got = tuple(float(v) for v in (xc, yc, bw, bh))
            # Six decimals: a half-way value (e.g. 0.0578125) rounds off by exactly 5e-7.
            p.check(all(abs(g - x) <= 5e-7 + 1e-12 for g, x in zip(got, want)),
                    f"{where} YOLO box of {a['id']}")

        # images: the original bytes under the COCO file_name
        if image_sources is not None:
            copied = open(os.path.join(out, "images", img["file_name"]), "rb").read()
            p.check(copied == open(os.path.join(image_sources, t.image_file), "rb").read(),
                    f"{where} image bytes differ from the source")
    return list(p)
