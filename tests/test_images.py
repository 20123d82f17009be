"""Image loading: size limits read from the header before decoding, transparency flattened onto white."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from ecgml.errors import EcgmlError
from ecgml.images import MAX_PIXELS, MIN_SIDE_PX, load_image


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims `width` x `height` (one empty IDAT): decoding it would need the pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize("side", [40_000, 11_000])  # above OpenCV's 2^30 pixels; just above our limit
def test_huge_image_refused_from_its_header(tmp_path: Path, side: int) -> None:
    assert side * side > MAX_PIXELS
    path = _png_header_only(tmp_path / "huge.png", side, side)
    with pytest.raises(EcgmlError, match="image too large") as exc:
        load_image(path)
    assert str(path) in str(exc.value)


def test_transparent_background_becomes_white_paper(tmp_path: Path) -> None:
    """An RGBA page whose paper is transparent (RGB 0 under alpha 0) must not read as black paper."""
    bgra = np.zeros((500, 600, 4), np.uint8)  # transparent black everywhere
    bgra[200, :, 3] = 255  # one opaque black trace line
    bgra[100:110, 50:60] = (60, 60, 230, 128)  # a half-transparent red patch
    cv2.imwrite(str(tmp_path / "page.png"), bgra)
    rgb = load_image(tmp_path / "page.png")
    assert rgb.shape == (500, 600, 3) and rgb.dtype == np.uint8
    assert (rgb[0, 0] == 255).all() and (rgb[499, 599] == 255).all()
    assert (rgb[200, 300] == 0).all()
    assert np.allclose(rgb[105, 55], [(230 + 255) / 2, (60 + 255) / 2, (60 + 255) / 2], atol=2)


def test_grey_alpha_and_16_bit_images_load_as_rgb(tmp_path: Path) -> None:
    side = max(MIN_SIDE_PX + 20, 200)
    grey16 = np.full((side, side), 65535, np.uint16)
    grey16[160] = 0
    cv2.imwrite(str(tmp_path / "g16.png"), grey16)
    rgb = load_image(tmp_path / "g16.png")
    assert (
        rgb.shape == (side, side, 3) and rgb[0, 0].tolist() == [255] * 3 and rgb[160, 0].tolist() == [0] * 3
    )
