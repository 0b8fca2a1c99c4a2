"""PNG encoding of rendered label pictures: a minimal standard PNG writer.

Contract:
  * (H, W) uint8 -> 8-bit grayscale; (H, W) uint16 -> 16-bit grayscale;
    (H, W, 3) uint8 -> 8-bit RGB. Anything else is a programming error (ValueError).
  * Standard, non-interlaced PNG: IHDR, one IDAT, IEND. Every row uses the "Up" filter
    (the byte-wise difference with the row above; the first row is stored as is), and the
    stream is deflated at level 1 with the Z_RLE strategy. Label pictures are long runs of
    equal values, so rows are mostly zeros after filtering and run-length deflate is both
    the fastest and nearly the smallest choice: 0.7 / 1.7 / 2.1 ms for a 1080p
    8-bit / 16-bit / RGB label picture, against 20 / 39 / 61 ms with Pillow's defaults and
    4 / 10 / 14 ms with OpenCV's (benchmarks in the README).
  * `encode_lut_png(labels, lut)` writes the picture `lut[labels]` (a small table looked up
    at every pixel of a label map) without materialising it: the Up-filtered rows are zero
    wherever a label equals the one above it, so only the first row and the pixels where
    the label changes (found once per label map, `RowChanges`, shared by every picture of a
    sample) are written. Same bytes as `encode_png(lut[labels])`, several times faster.
  * Deflate is zlib-ng's when the `zlib-ng` package is installed (a dependency; 5x faster
    than zlib), else the standard library's. Both give identical pixels; the bytes are
    deterministic for a given library.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

try:
    from zlib_ng import zlib_ng as _deflate
except ImportError:  # pragma: no cover - platforms without a zlib-ng wheel
    _deflate = zlib

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(tag)))


def _format(dtype: np.dtype, channels: int) -> tuple[int, int]:
    """(bit depth, colour type) of a supported pixel layout."""
    if channels == 1 and dtype == np.uint8:
        return 8, 0
    if channels == 1 and dtype == np.uint16:
        return 16, 0
    if channels == 3 and dtype == np.uint8:
        return 8, 2
    raise ValueError(f"cannot encode {dtype} pixels with {channels} channel(s) as PNG")


def _png(raw: np.ndarray, width: int, height: int, depth: int, color: int) -> bytes:
    compressor = _deflate.compressobj(1, _deflate.DEFLATED, 15, 9, _deflate.Z_RLE)
    idat = compressor.compress(raw) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return b"".join((_SIGNATURE, _chunk(b"IHDR", ihdr), _chunk(b"IDAT", idat), _IEND))


def _bytes_per_pixel(table: np.ndarray) -> np.ndarray:
    """(n, ...) pixel values -> (n, bytes) uint8, PNG byte order (big-endian samples)."""
    if table.dtype == np.uint16:
        table = table.astype(">u2")
    return np.ascontiguousarray(table).view(np.uint8).reshape(table.shape[0], -1)


def encode_png(pixels: np.ndarray) -> bytes:
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if pixels.ndim not in (2, 3):
        raise ValueError(f"cannot encode an array of shape {pixels.shape} as PNG")
    depth, color = _format(pixels.dtype, channels)
    height, width = pixels.shape[:2]
    if height == 0 or width == 0:
        raise ValueError("a PNG needs at least one pixel")
    if pixels.dtype == np.uint16:
        pixels = pixels.astype(">u2")  # PNG samples are big-endian
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(height, -1)
    raw = np.empty((height, rows.shape[1] + 1), np.uint8)
    raw[:, 0] = 2  # filter type Up; the row above the first is all zeros
    raw[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])
    return _png(raw, width, height, depth, color)


class RowChanges:
    """Where a label map differs from the row above: computed once, used by every picture."""

    def __init__(self, labels: np.ndarray):
        if labels.ndim != 2 or 0 in labels.shape:
            raise ValueError(f"label map must be 2-D and non-empty, got shape {labels.shape}")
        self.labels = labels
        height, width = labels.shape
        above = np.flatnonzero(labels[1:] != labels[:-1])  # row-major index of the pixel above
        flat = labels.reshape(-1)
        self.current = flat[above + width]
        self.above = flat[above]
        self.rows, self.cols = np.divmod(above, width)
        self.rows += 1


def encode_lut_png(changes: RowChanges, lut: np.ndarray) -> bytes:
    """PNG of `lut[labels]` for the label map of `changes`; `lut` is (n,) or (n, 3)."""
    labels = changes.labels
    height, width = labels.shape
    depth, color = _format(lut.dtype, 1 if lut.ndim == 1 else lut.shape[1])
    table = _bytes_per_pixel(lut)
    bpp = table.shape[1]
    raw = np.zeros((height, width * bpp + 1), np.uint8)
    raw[:, 0] = 2  # filter type Up
    raw[0, 1:] = np.take(table, labels[0], axis=0).reshape(-1)
    pixels = raw[:, 1:].reshape(height, width, bpp)  # a view: each raw row is contiguous
    # Up filter: byte - byte above (mod 256); zero wherever the label did not change.
    pixels[changes.rows, changes.cols] = np.take(table, changes.current, axis=0) - np.take(
        table, changes.above, axis=0)
    return _png(raw, width, height, depth, color)
