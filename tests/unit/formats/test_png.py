"""The PNG writer: standard files that Pillow decodes to exactly the input pixels."""

import io

import numpy as np
import pytest
from PIL import Image

from transforms.formats import bitmap
from transforms.formats.png import RowChanges, encode_lut_png, encode_png


def _pillow(data: bytes) -> tuple[str, np.ndarray]:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.mode, np.asarray(img)


SHAPES = [(1, 1), (1, 7), (9, 1), (33, 65)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind,mode", [("u8", "L"), ("u16", "I;16"), ("rgb", "RGB")])
def test_pillow_decodes_the_exact_pixels(shape, kind, mode):
    rng = np.random.default_rng(sum(shape))
    if kind == "u8":
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    elif kind == "u16":
        pixels = rng.integers(0, 65536, shape, dtype=np.uint16)
    else:
        pixels = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    got_mode, got = _pillow(encode_png(pixels))
    assert got_mode == mode
    assert np.array_equal(got, pixels)


@pytest.mark.parametrize("seed", range(6))
def test_lut_path_is_byte_identical_to_rendering_first(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 50, 2)
    labels = rng.integers(0, 5, (h, w)).astype(np.uint16)
    if seed % 2:  # blocky, like real label maps
        labels = np.repeat(np.repeat(labels[: max(1, h // 5), : max(1, w // 5)], 5, 0), 5, 1)[:h, :w]
    changes = RowChanges(labels)
    for lut in (rng.integers(0, 256, 5).astype(np.uint8), rng.integers(0, 65536, 5).astype(np.uint16),
                rng.integers(0, 256, (5, 3)).astype(np.uint8)):
        direct = encode_png(np.take(lut, labels, axis=0))
        assert encode_lut_png(changes, lut) == direct
        assert np.array_equal(_pillow(direct)[1], np.take(lut, labels, axis=0))


def test_unsupported_layouts_are_refused():
    for bad in (np.zeros((2, 2), np.int32), np.zeros((2, 2, 4), np.uint8), np.zeros((0, 3), np.uint8)):
        with pytest.raises(ValueError):
            encode_png(bad)


def test_fast_decoder_and_pillow_agree_on_bitmaps():
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (31, 47, 4), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG")
    data = buf.getvalue()
    assert bitmap._spng is not None  # the fast path is installed and used
    assert np.array_equal(bitmap.decode_id_map(data), bitmap._decode_with_pillow(data))
