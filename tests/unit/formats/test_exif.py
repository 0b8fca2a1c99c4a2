"""EXIF orientation: an embedded image stays aligned with its masks."""

import io

import numpy as np
from PIL import Image, ImageOps

from transforms.formats import exif


def _jpeg(orientation: int | None, size=(40, 24)) -> bytes:
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[:, : size[0] // 4] = 255  # a white band on the left, to see the rotation
    buf = io.BytesIO()
    ex = Image.Exif()
    if orientation is not None:
        ex[0x0112] = orientation
    Image.fromarray(pixels).save(buf, "JPEG", exif=ex.tobytes(), quality=95)
    return buf.getvalue()


def _decoded(data: bytes) -> np.ndarray:
    """As Hugging Face datasets decodes an Image: EXIF orientation applied."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


def test_masks_at_the_stored_size_keep_the_stored_pixels():
    data = _jpeg(6)  # stored 40x24, displayed 24x40
    assert _decoded(data).shape[:2] == (40, 24)
    fixed = exif.aligned_image(data, 40, 24)  # masks were drawn on the stored pixels
    assert len(fixed) == len(data) and sum(a != b for a, b in zip(fixed, data)) == 1
    assert _decoded(fixed).shape[:2] == (24, 40)
    with Image.open(io.BytesIO(fixed)) as a, Image.open(io.BytesIO(data)) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))  # no pixel re-encoded
        assert a.getexif()[0x0112] == 1


def test_masks_in_the_displayed_orientation_keep_the_original_bytes():
    data = _jpeg(6)
    assert exif.aligned_image(data, 24, 40) == data
    for plain in (_jpeg(None), _jpeg(1), _jpeg(3)):
        assert exif.aligned_image(plain, 40, 24) == plain
    square = _jpeg(6, size=(32, 32))
    assert exif.aligned_image(square, 32, 32) == square  # nothing tells the two apart
    png = io.BytesIO()
    Image.new("RGB", (40, 24)).save(png, "PNG")
    assert exif.aligned_image(png.getvalue(), 40, 24) == png.getvalue()


def test_the_orientation_entry_points_at_its_value():
    data = _jpeg(8)
    offset, value, order = exif.orientation_entry(data)
    assert value == 8 and data[offset:offset + 2] == (8).to_bytes(2, order)
    assert exif.orientation_entry(b"not a jpeg") is None
