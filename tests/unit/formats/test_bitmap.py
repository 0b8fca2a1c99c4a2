"""Bitmap decoding: id = R + 256*G + 65536*B, alpha ignored, RGB/RGBA/palette accepted."""

import io

import numpy as np
import pytest
from PIL import Image

from transforms.formats import bitmap
from transforms.model import errors


def _png(array, mode=None, **save):
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG", **save) if mode else \
        Image.fromarray(array).save(buf, format="PNG", **save)
    return buf.getvalue()


def test_rgba_decodes_to_24_bit_ids_ignoring_alpha():
    rgba = np.array([[[4, 1, 0, 255], [0, 0, 0, 255]], [[255, 255, 255, 0], [44, 1, 0, 7]]], np.uint8)
    ids = bitmap.decode_id_map(_png(rgba))
    # Spec §2: (4, 1, 0, 255) is 4 + 256 = 260; black is background.
    assert ids.dtype == np.uint32 and ids.tolist() == [[260, 0], [16_777_215, 300]]


def test_rgb_and_palette_pngs_decode_like_rgba():
    rgb = np.array([[[1, 2, 3], [0, 0, 0]]], np.uint8)
    expect = [[1 + 2 * 256 + 3 * 65536, 0]]
    assert bitmap.decode_id_map(_png(rgb)).tolist() == expect
    pal = Image.new("P", (2, 1))
    pal.putpalette([1, 2, 3, 0, 0, 0])
    pal.putdata([0, 1])
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    assert bitmap.decode_id_map(buf.getvalue()).tolist() == expect


@pytest.mark.parametrize("data,reason", [
    (b"", "not an image"),
    (b"\x89PNG\r\n\x1a\n garbage", "bitmap cannot be decoded"),
    (_png(np.zeros((3, 3), np.uint8)), "mode L"),
    (_png(np.zeros((3, 3), np.uint16)), "mode I;16"),
])
def test_bad_bitmaps_raise_bitmap_error_with_reason(data, reason):
    with pytest.raises(errors.BitmapError, match=reason):
        bitmap.decode_id_map(data)


def test_jpeg_is_not_a_bitmap():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buf, format="JPEG")
    with pytest.raises(errors.BitmapError, match="not a PNG"):
        bitmap.decode_id_map(buf.getvalue())


def test_truncated_png_is_a_bitmap_error():
    data = _png(np.random.default_rng(0).integers(0, 255, (64, 64, 4), dtype=np.uint8))
    with pytest.raises(errors.BitmapError):
        bitmap.decode_id_map(data[: len(data) // 2])


@pytest.mark.parametrize("orientation,size", [(1, (40, 30)), (2, (40, 30)), (3, (40, 30)),
                                              (4, (40, 30)), (5, (30, 40)), (6, (30, 40)),
                                              (7, (30, 40)), (8, (30, 40))])
def test_image_size_applies_exif_orientation(orientation, size):
    img = Image.fromarray(np.zeros((30, 40, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    assert bitmap.image_size(buf.getvalue()) == size


def test_id_to_rgb_inverts_rgb_to_id():
    ids = np.array([0, 1, 256, 65536, 16_777_215, 70000], np.uint32)
    assert bitmap.rgb_to_id(bitmap.id_to_rgb(ids)).tolist() == ids.tolist()
