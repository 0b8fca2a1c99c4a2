"""PNG encoding of rendered label pictures.

Contract:
  * (H, W) uint8 -> 8-bit grayscale; (H, W) uint16 -> 16-bit grayscale;
    (H, W, 3) uint8 -> 8-bit RGB. Anything else is a programming error.
  * Encoding is deterministic for a given Pillow/zlib version: same pixels, same bytes.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

COMPRESS_LEVEL = 6  # zlib level; Pillow's default


def encode_png(pixels: np.ndarray, compress_level: int = COMPRESS_LEVEL) -> bytes:
    if pixels.ndim == 2 and pixels.dtype == np.uint8:
        img = Image.fromarray(pixels)
    elif pixels.ndim == 2 and pixels.dtype == np.uint16:
        img = Image.fromarray(pixels)
    elif pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8:
        img = Image.fromarray(pixels)
    else:
        raise ValueError(f"cannot encode {pixels.dtype} array of shape {pixels.shape} as PNG")
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """Inverse of `encode_png` (used by tests and validation)."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img)
