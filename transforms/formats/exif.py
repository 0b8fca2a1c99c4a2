"""The EXIF orientation of a JPEG, and keeping an embedded image aligned with its masks.

Contract:
  * Masks are in the image's displayed orientation (EXIF applied), the way Segments.ai shows
    images and this exporter sizes them; Hugging Face `datasets` applies the orientation when
    it decodes an image, so image and masks line up.
  * A sample whose masks have the *stored* size of a JPEG whose orientation (5 to 8) swaps
    width and height was labelled on the unrotated pixels; applying the orientation would
    turn the image away from its masks. For such an image `aligned_image` returns the bytes
    with the EXIF Orientation value set to 1 (normal): two bytes changed in place in the
    EXIF block, nothing re-encoded, every pixel as stored. Every other image is returned as
    it is, byte for byte (orientations 2 to 4 keep the size, so nothing tells them apart:
    they are taken as displayed, like everything else).
  * Only baseline EXIF in a JPEG's APP1 segment is read (where cameras write it); anything
    unexpected leaves the bytes unchanged.
"""

from __future__ import annotations

import io

_ORIENTATION = 0x0112
_SWAPS = (5, 6, 7, 8)  # orientations that swap width and height


def orientation_entry(data: bytes) -> tuple[int, int, str] | None:
    """(offset of the Orientation value, value, byte order) in a JPEG, or None."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no EXIF before the pixels
            return None
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xE1 and data[i + 4:i + 10] == b"Exif\0\0":
            return _tiff_orientation(data, i + 10, min(len(data), i + 2 + length))
        i += 2 + length
    return None


def _tiff_orientation(data: bytes, tiff: int, end: int) -> tuple[int, int, str] | None:
    order = {b"II": "little", b"MM": "big"}.get(data[tiff:tiff + 2])
    if order is None:
        return None
    ifd = tiff + int.from_bytes(data[tiff + 4:tiff + 8], order)
    if ifd + 2 > end:
        return None
    for k in range(int.from_bytes(data[ifd:ifd + 2], order)):
        entry = ifd + 2 + 12 * k
        if entry + 12 > end:
            return None
        if int.from_bytes(data[entry:entry + 2], order) == _ORIENTATION:
            if int.from_bytes(data[entry + 2:entry + 4], order) != 3:  # SHORT
                return None
            return entry + 8, int.from_bytes(data[entry + 8:entry + 10], order), order
    return None


def aligned_image(data: bytes, mask_width: int | None, mask_height: int | None) -> bytes:
    """The image bytes to embed next to masks of this size (see the contract)."""
    found = orientation_entry(data)
    if found is None or found[1] not in _SWAPS or not mask_width or not mask_height:
        return data
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            stored = img.size  # from the header: the pixels are not decoded
    except (OSError, ValueError):
        return data
    if stored != (mask_width, mask_height) or stored[0] == stored[1]:
        return data
    offset, _, order = found
    return data[:offset] + (1).to_bytes(2, order) + data[offset + 2:]
