"""preview.png: a contact sheet of the first exported samples, to eyeball an export.

Contract:
  * The samples shown are the exported ones among the first `PREVIEW_SAMPLES` selected
    indexes (deterministic: release order, whatever the runner).
  * Each thumbnail fits THUMB (320 x 240): the image (gray when images are not fetched) with
    each exported instance tinted by its semantic colour (50 %) and outlined in white;
    captioned with the sample name. A legend lists every category with its colour.
  * Shape releases have no bitmap: `rasterize` draws their boxes, polygons and points into
    an id map for the thumbnail.
  * Pixels depend only on the inputs (Pillow's bundled bitmap font, nearest / bilinear
    resampling), so the PNG is byte-identical across runs.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from transforms.formats.png import encode_png
from transforms.formats.vector import clipped_shape, keypoint
from transforms.model.taxonomy import Taxonomy
from transforms.model.types import Sample

PREVIEW_SAMPLES = 6
THUMB = (320, 240)
# A picture with more pixels than this (after a JPEG's reduced-size decoding) is not decoded
# for its thumbnail, which then shows the labels on gray: a few KB of PNG can declare 170 M
# pixels, and decoding it would take GBs.
MAX_DECODE_PIXELS = 32_000_000
_CAPTION = 14
_COLUMNS = 3


def thumbnail(id_map: np.ndarray, instance_categories: dict[int, int], taxonomy: Taxonomy,
              image_bytes: bytes | None = None) -> np.ndarray:
    """(h, w, 3) uint8 overlay; `instance_categories` maps exported instance id -> category."""
    h, w = id_map.shape
    scale = min(THUMB[0] / w, THUMB[1] / h)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    small = id_map[(np.arange(th) * h // th)[:, None], (np.arange(tw) * w // tw)[None, :]]
    base = None
    if image_bytes is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # capped below
                with Image.open(io.BytesIO(image_bytes)) as img:
                    img.draft("RGB", (tw, th))  # JPEG: decode at reduced size
                    if img.width * img.height <= MAX_DECODE_PIXELS:
                        shown = ImageOps.exif_transpose(img).convert("RGB")  # as displayed
                        base = np.asarray(shown.resize((tw, th), Image.BILINEAR), np.float32)
        except (OSError, ValueError, Image.DecompressionBombError):
            base = None  # the preview then shows the labels on gray
    if base is None:
        base = np.full((th, tw, 3), 96, np.float32)
    ids, inverse = np.unique(small, return_inverse=True)
    colors = np.zeros((ids.size, 3), np.float32)
    tinted = np.zeros(ids.size, bool)
    for k, iid in enumerate(ids.tolist()):
        cat = instance_categories.get(iid)
        if cat is not None:
            colors[k] = taxonomy.color(cat)
            tinted[k] = True
    inverse = inverse.reshape(small.shape)
    mask = tinted[inverse]
    out = base.copy()
    out[mask] = 0.5 * base[mask] + 0.5 * colors[inverse][mask]
    edge = np.zeros(small.shape, bool)
    edge[:, 1:] |= small[:, 1:] != small[:, :-1]
    edge[1:, :] |= small[1:, :] != small[:-1, :]
    out[edge & (mask | np.roll(mask, 1, axis=1) | np.roll(mask, 1, axis=0))] = 255
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def contact_sheet(thumbs: Sequence[tuple[str, np.ndarray]], taxonomy: Taxonomy) -> bytes:
    """PNG of the thumbnails (in the given order) in a grid, captioned, with a legend."""
    font = ImageFont.load_default()
    cols = max(1, min(_COLUMNS, len(thumbs)))
    rows = -(-len(thumbs) // cols) if thumbs else 0
    cell_w, cell_h = THUMB[0] + 8, THUMB[1] + _CAPTION + 8
    legend_rows = -(-len(taxonomy.categories) // 3)
    width = cols * cell_w + 8
    height = rows * cell_h + 8 + legend_rows * 18 + 8
    sheet = Image.new("RGB", (max(width, 3 * 180), max(height, 40)), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    for i, (name, thumb) in enumerate(thumbs):
        x, y = 8 + (i % cols) * cell_w, 8 + (i // cols) * cell_h
        sheet.paste(Image.fromarray(thumb), (x, y))
        draw.text((x, y + thumb.shape[0] + 2), name[:48], fill=(230, 230, 230), font=font)
    y0 = 8 + rows * cell_h
    for k, c in enumerate(taxonomy.categories):
        x, y = 8 + (k % 3) * 180, y0 + (k // 3) * 18
        draw.rectangle((x, y + 2, x + 12, y + 14), fill=taxonomy.color(c.id), outline=(255, 255, 255))
        draw.text((x + 18, y + 2), f"{c.id} {c.name}"[:26], fill=(230, 230, 230), font=font)
    return encode_png(np.asarray(sheet))


def sheet_bytes(thumbs: Iterable[tuple[int, str, np.ndarray]], taxonomy: Taxonomy) -> bytes:
    """preview.png from (sample index, name, thumbnail) in any order (sorted by index)."""
    ordered = [(name, thumb) for _, name, thumb in sorted(thumbs, key=lambda t: t[0])]
    return contact_sheet(ordered, taxonomy)


def rasterize(sample: Sample, width: int, height: int,
              max_pixels: int = MAX_DECODE_PIXELS):
    """An id map of the sample's boxes and polygons (1-based annotation order; the preview).

    An image of more than `max_pixels` pixels is drawn at twice the thumbnail's size instead
    (a few KB of image header can declare 170 M pixels: 1.4 GB at full size).
    """
    import numpy as np
    from PIL import Image, ImageDraw

    scale = 1.0
    if width * height > max_pixels:
        scale = min(2 * THUMB[0] / width, 2 * THUMB[1] / height)
    canvas = Image.new("I", (max(1, round(width * scale)), max(1, round(height * scale))), 0)
    draw = ImageDraw.Draw(canvas)
    for k, ann in enumerate(sample.annotations, 1):
        if ann.type == "point":  # a dot of 1/100 of the image
            point = keypoint(ann, width, height)
            if not isinstance(point, str):
                r = max(1.0, min(width, height) * scale / 100)
                x, y = point[0] * scale, point[1] * scale
                draw.ellipse((x - r, y - r, x + r, y + r), fill=k)
            continue
        shape = clipped_shape(ann, width, height)
        if isinstance(shape, str):
            continue
        (x0, y0, x1, y1), _, poly = shape
        if scale < 1.0:
            x0, y0, x1, y1 = x0 * scale, y0 * scale, x1 * scale, y1 * scale
            if poly is not None:
                poly = [(x * scale, y * scale) for x, y in poly]
        if poly is None:
            draw.rectangle((x0, y0, x1, y1), fill=k)
        else:
            draw.polygon(poly, fill=k)
    return np.asarray(canvas, dtype=np.uint32)
