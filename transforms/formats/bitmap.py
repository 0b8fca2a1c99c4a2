"""Segmentation bitmaps: PNG bytes -> 24-bit instance id map; image headers.

Contract:
  * The bitmap is a PNG, RGBA or RGB, 8 bits per channel (palette PNGs are expanded).
    Per pixel id = R + 256*G + 65536*B; alpha is ignored. Byte order is explicit, so the
    result is right on any host (the SDK reinterprets memory and assumes little-endian).
  * The id map is a C-contiguous `uint32` array of shape (height, width). 0 = background.
  * Grayscale or 16-bit PNGs are not Segments bitmaps and are rejected (BitmapError).
  * Image sizes are read from the header only; EXIF orientations 5-8 swap width and height.
"""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from transforms.model import errors

try:
    import pyspng as _spng
except ImportError:  # pragma: no cover - Pillow is the fallback decoder
    _spng = None

# Decoding refuses pictures larger than this many pixels (decompression bombs).
MAX_PIXELS = 200_000_000

_EXIF_ORIENTATION = 0x0112


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3|4) uint8 -> (H, W) uint32 ids; alpha ignored."""
    if rgb.shape[-1] == 4 and rgb.flags.c_contiguous:
        return rgb.view("<u4")[..., 0] & np.uint32(0x00FFFFFF)
    r = rgb[..., 0].astype(np.uint32)
    r |= rgb[..., 1].astype(np.uint32) << np.uint32(8)
    r |= rgb[..., 2].astype(np.uint32) << np.uint32(16)
    return r


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """(...,) integer ids -> (..., 3) uint8 RGB, the inverse of `rgb_to_id`."""
    ids = np.asarray(ids, dtype=np.uint32)
    out = np.empty(ids.shape + (3,), np.uint8)
    out[..., 0] = ids & 0xFF
    out[..., 1] = (ids >> 8) & 0xFF
    out[..., 2] = (ids >> 16) & 0xFF
    return out


def _ihdr(data: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) of a PNG, or None if it is not one."""
    if len(data) < 29 or not data.startswith(b"\x89PNG\r\n\x1a\n") or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height, data[24], data[25]


def decode_id_map(data: bytes) -> np.ndarray:
    """PNG bytes -> (H, W) uint32 id map. Raises BitmapError with a readable reason.

    8-bit RGB, RGBA and palette PNGs are decoded with libspng (pyspng), 4x faster than
    Pillow; anything else, or anything libspng rejects, goes through Pillow, which also
    words the error for a broken file.
    """
    header = _ihdr(data)
    if header is not None and _spng is not None and header[2] == 8 and header[3] in (2, 3, 6):
        width, height = header[:2]
        if width * height > MAX_PIXELS:
            raise errors.BitmapError(f"bitmap too large: {width}x{height} pixels")
        try:
            arr = _spng.load(data)
        except RuntimeError:
            pass  # let Pillow decode or explain
        else:
            if arr.ndim == 3 and arr.shape[2] in (3, 4) and arr.dtype == np.uint8:
                return np.ascontiguousarray(rgb_to_id(arr))
    return _decode_with_pillow(data)


def _decode_with_pillow(data: bytes) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format != "PNG":
                raise errors.BitmapError(f"bitmap is not a PNG (found {img.format or 'unknown data'})")
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise errors.BitmapError(f"bitmap too large: {w}x{h} pixels")
            mode = img.mode
            if mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
                mode = img.mode
            if mode not in ("RGBA", "RGB"):
                raise errors.BitmapError(
                    f"bitmap PNG has mode {mode}; Segments bitmaps are RGBA (or RGB), 8 bits per channel"
                )
            arr = np.asarray(img)
    except errors.BitmapError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise errors.BitmapError(f"bitmap refused: {e}") from None
    except UnidentifiedImageError:
        raise errors.BitmapError("bitmap is not an image (unrecognised data)") from None
    except (OSError, ValueError, SyntaxError) as e:  # PIL raises these for corrupt data
        raise errors.BitmapError(f"bitmap cannot be decoded: {type(e).__name__}: {e}") from None
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise errors.BitmapError(f"bitmap has unexpected shape {arr.shape}")
    return np.ascontiguousarray(rgb_to_id(arr))


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) as displayed (EXIF orientation applied), from the header only.

    Pillow refuses to open a picture of more than 2 * Image.MAX_IMAGE_PIXELS pixels
    (decompression bombs); below that, nothing is decoded here, so its warning is silenced.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except UnidentifiedImageError:
        raise errors.BitmapError("image is not an image (unrecognised data)") from None
    except Image.DecompressionBombError as e:
        raise errors.BitmapError(f"image refused (decompression bomb): {e}") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise errors.BitmapError(f"image cannot be read: {type(e).__name__}: {e}") from None
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    return w, h


def image_extension(data: bytes) -> str:
    """The file extension matching the image's actual format ('' when unknown)."""
    head = data[:12]
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if head.startswith(b"BM"):
        return ".bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return ".tif"
    return ""
