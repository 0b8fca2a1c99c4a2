#!/usr/bin/env python3
"""Generate the embedded example release in ``pipeline/example/``.

The example is built from a real photograph, ``skimage.data.coins()`` (Greek
coins from Pompeii, Brooklyn Museum collection, no known copyright
restrictions).  The coins are segmented automatically into one instance per
coin; everything else (the tray) becomes a single "stuff" annotation.

Output (all paths relative to ``pipeline/example/``)::

    release.json           Segments.ai release, "v2" layout, relative URLs
    images/coins_0N.jpg    6 RGB JPEG variants of the photo (quality 85)
    labels/coins_0N.png    RGBA segmentation bitmaps for samples 1-4

Bitmap encoding: id = R + 256 * G + 65536 * B, alpha = 255 everywhere.
Coins get ids 1..N in raster order of their first pixel, the tray gets id
``TRAY_ID`` (300, > 255 so the 16-bit path is exercised) and a 2-pixel band
around every coin is left unlabeled (id 0).

The script is deterministic: running it twice produces byte-identical files
(no timestamps are embedded; Pillow's JPEG/PNG encoders are deterministic for
fixed parameters).  Byte-identical output across *different* versions of
scikit-image / SciPy / Pillow is not guaranteed.

Dev-only dependency (the pipeline itself never imports it)::

    pip install scikit-image
    python scripts/make_example.py
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi
from skimage import data, filters, measure, morphology, segmentation

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "pipeline" / "example"

COIN_CATEGORY_ID = 1
TRAY_CATEGORY_ID = 2
TRAY_ID = 300  # > 255: exercises the G channel of the id encoding
BAND_PX = 2  # unlabeled (id 0) band around each coin
JPEG_QUALITY = 85
UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://segments.ai/example/coins")


# --------------------------------------------------------------------------
# Segmentation of the source photo
# --------------------------------------------------------------------------


def segment_coins(img: np.ndarray) -> np.ndarray:
    """Return an int32 instance map of ``img``: 0 = not a coin, 1..N = coins.

    Region-based watershed on the Sobel elevation map with intensity markers
    (the classic approach for this image: a global threshold fails because the
    tray is unevenly lit), then clean-up.
    """
    elevation = filters.sobel(img)
    markers = np.zeros(img.shape, dtype=np.int32)
    markers[img < 30] = 1  # surely tray
    markers[img > 150] = 2  # surely coin
    fg = segmentation.watershed(elevation, markers) == 2
    fg = ndi.binary_fill_holes(fg)
    # Remove thin spurs of shadow attached to a few coins.
    fg = ndi.binary_opening(fg, structure=morphology.disk(3))
    fg = ndi.binary_fill_holes(fg)

    labels, n = ndi.label(fg, structure=np.ones((3, 3), dtype=bool))
    # Remove small objects (dust, specular highlights on the tray).
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    small = areas < 300
    small[0] = False
    labels[small[labels]] = 0
    labels, n = ndi.label(labels > 0, structure=np.ones((3, 3), dtype=bool))

    # Smooth each coin outline separately (closing fills notches where the
    # coin edge is as dark as the tray); per instance so coins never merge.
    radius = 5
    pad = radius + 2
    padded = np.pad(labels, pad)
    out = np.zeros_like(padded)
    for idx, (ys, xs) in enumerate(ndi.find_objects(padded), start=1):
        sl = (slice(ys.start - pad, ys.stop + pad), slice(xs.start - pad, xs.stop + pad))
        mask = ndi.binary_closing(padded[sl] == idx, structure=morphology.disk(radius))
        mask = ndi.binary_fill_holes(mask)
        view = out[sl]
        view[mask & (view == 0)] = idx
    out = out[pad:-pad, pad:-pad].astype(np.int32)

    # The coins in this photo do not touch.  If a future scikit-image version
    # merged two of them, the merged blob would be clearly non-convex: fail
    # loudly instead of silently producing a wrong example.
    for region in measure.regionprops(out):
        if region.solidity < 0.9:
            raise RuntimeError(
                f"instance {region.label} looks like merged coins "
                f"(solidity {region.solidity:.3f}); add a watershed split"
            )
    return out


# --------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------


def _crop(img, inst, x0, y0, x1, y1):
    return img[y0:y1, x0:x1], inst[y0:y1, x0:x1]


def _downscale(img, inst, factor):
    h, w = img.shape
    size = (round(w * factor), round(h * factor))
    small_img = np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))
    # Resample every instance mask with area averaging and keep pixels that
    # are at least half covered; this keeps outlines aligned with the image.
    small_inst = np.zeros((size[1], size[0]), dtype=np.int32)
    for idx in range(1, int(inst.max()) + 1):
        mask = Image.fromarray((inst == idx).astype(np.float32))
        cov = np.asarray(mask.resize(size, Image.Resampling.BOX))
        small_inst[(cov >= 0.5) & (small_inst == 0)] = idx
    return small_img, small_inst


VARIANTS = [
    # (variant tag, transform)
    ("original", lambda im, la: (im, la)),
    ("crop-hflip", lambda im, la: tuple(a[:, ::-1] for a in _crop(im, la, 50, 0, 330, 220))),
    ("rot90-ccw", lambda im, la: (np.rot90(im), np.rot90(la))),
    ("downscale-0.75", lambda im, la: _downscale(im, la, 0.75)),
    ("crop-center", lambda im, la: _crop(im, la, 64, 24, 320, 280)),
    ("rot180", lambda im, la: (np.rot90(im, 2), np.rot90(la, 2))),
]

# (split, ground-truth label status); None = unlabeled sample
SAMPLE_LABELS = [
    ("train", "REVIEWED"),
    ("train", "LABELED"),
    ("val", "REVIEWED"),
    ("val", "LABELED"),
    ("train", None),
    ("val", "SKIPPED"),
]


# --------------------------------------------------------------------------
# Bitmap encoding
# --------------------------------------------------------------------------


def build_id_map(inst: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Renumber coins 1..N in raster order, add tray + unlabeled band.

    Returns the uint32 id map and the list of coin ids.
    """
    flat = inst.ravel()
    old_ids, first = np.unique(flat, return_index=True)
    keep = old_ids != 0
    old_ids, first = old_ids[keep], first[keep]
    order = old_ids[np.argsort(first, kind="stable")]
    lut = np.zeros(int(inst.max()) + 1, dtype=np.uint32)
    lut[order] = np.arange(1, len(order) + 1, dtype=np.uint32)
    ids = lut[inst]

    coins = ids > 0
    near_coin = ndi.binary_dilation(coins, structure=morphology.disk(BAND_PX))
    ids[~near_coin] = TRAY_ID
    # pixels in near_coin & ~coins stay 0 (unlabeled band)
    return ids, list(range(1, len(order) + 1))


def encode_bitmap(ids: np.ndarray) -> Image.Image:
    assert ids.max() <= 0xFFFF
    rgba = np.empty(ids.shape + (4,), dtype=np.uint8)
    rgba[..., 0] = ids & 0xFF
    rgba[..., 1] = (ids >> 8) & 0xFF
    rgba[..., 2] = (ids >> 16) & 0xFF
    rgba[..., 3] = 255
    return Image.fromarray(rgba)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main() -> None:
    photo = data.coins()
    instances = segment_coins(photo)

    (OUT_DIR / "images").mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "labels").mkdir(parents=True, exist_ok=True)

    samples = []
    for i, ((variant, transform), (split, status)) in enumerate(zip(VARIANTS, SAMPLE_LABELS), start=1):
        stem = f"coins_{i:02d}"
        name = f"{stem}.jpg"
        img, inst = transform(photo, instances)
        img = np.ascontiguousarray(img)
        inst = np.ascontiguousarray(inst)

        Image.fromarray(img).convert("RGB").save(
            OUT_DIR / "images" / name, format="JPEG", quality=JPEG_QUALITY
        )

        if status is None:
            label = None
        elif status == "SKIPPED":
            label = {"label_status": "SKIPPED", "attributes": None}
        else:
            ids, coin_ids = build_id_map(inst)
            encode_bitmap(ids).save(OUT_DIR / "labels" / f"{stem}.png", format="PNG", optimize=True)
            annotations = [{"id": cid, "category_id": COIN_CATEGORY_ID} for cid in coin_ids]
            annotations.append({"id": TRAY_ID, "category_id": TRAY_CATEGORY_ID})
            label = {
                "label_status": status,
                "attributes": {
                    "format_version": "0.1",
                    "annotations": annotations,
                    "segmentation_bitmap": {"url": f"labels/{stem}.png"},
                },
            }

        samples.append(
            {
                "uuid": str(uuid.uuid5(UUID_NAMESPACE, name)),
                "name": name,
                "metadata": {"split": split, "variant": variant},
                "attributes": {"image": {"url": f"images/{name}"}},
                "labels": {"ground-truth": label, "predictions": None},
            }
        )

    release = {
        "name": "v1.0",
        "description": "Coins example release",
        "created_at": "2026-11-22 00:00:00+00:00",
        "dataset": {
            "name": "coins",
            "owner": "example",
            "description": (
                "Greek coins from Pompeii (skimage.data.coins, Brooklyn Museum "
                "collection, no known copyright restrictions); one instance per "
                "coin, the tray as a single stuff segment."
            ),
            "task_type": "segmentation-bitmap",
            "task_attributes": {
                "format_version": "0.1",
                "categories": [
                    {"id": COIN_CATEGORY_ID, "name": "coin", "color": [230, 160, 40], "has_instances": True},
                    {"id": TRAY_CATEGORY_ID, "name": "tray", "color": [70, 90, 160], "has_instances": False},
                ],
            },
            "labelsets": [
                {"name": "ground-truth", "description": ""},
                {"name": "predictions", "description": "none yet"},
            ],
            "samples": samples,
        },
    }
    text = json.dumps(release, indent=1, ensure_ascii=False) + "\n"
    (OUT_DIR / "release.json").write_bytes(text.encode("utf-8"))
    print(f"wrote {len(samples)} samples to {OUT_DIR}")


if __name__ == "__main__":
    main()
