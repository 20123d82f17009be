"""Image files in: checked before decoding (size), decoded to RGB, transparency flattened onto white.

Every refusal is an `EcgmlError` naming the file, so a batch reports it and goes on. The pixel limit is
checked from the file header before any decoding: a 30000 x 30000 page would need ~6.5 GB, and OpenCV
refuses anything above 2^30 pixels with an exception of its own.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np

from ecgml.errors import EcgmlError, ImageTooSmall
from ecgml.layout import LETTER_MM

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
# One minimum for every step, in what the grid fit measures: paper px per mm. Below it the 1 mm lines lie
# under 2 px apart and merge with the trace; a Letter page 700 px wide (2.5 px/mm) is read. The rule is
# a density, not a size: a strip or a cut-out part of a page (871x333 px) is as readable as a whole page
# at the same px/mm. Geometry refuses an image whose grid measures less (`ImageTooSmall`).
MIN_PX_PER_MM = 2.0
# ... and the loader's floor follows from it: an image must hold one lead's row (25 mm of paper: a
# baseline with +-1 mV at 10 mm/mV and room for the label) at that density
MIN_ROW_MM = 25.0
MIN_SIDE_PX = int(np.ceil(MIN_PX_PER_MM * MIN_ROW_MM))
MAX_PIXELS = 120_000_000  # ~ a 600 DPI A3 scan or a 108 MP photo; peak memory stays near 1 GB


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file header without decoding the pixels; None if the header is unknown."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's DecompressionBombWarning: the limit is ours
            with Image.open(path) as im:
                return int(im.size[0]), int(im.size[1])
    except Image.DecompressionBombError as exc:  # above 2x PIL's own limit; size is in the message
        raise EcgmlError(path, f"image too large ({exc}); limit {MAX_PIXELS:,} pixels") from exc
    except Exception:  # noqa: BLE001 - not a format PIL knows; OpenCV may still read it
        return None


def check_size(path: Path, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise EcgmlError(
            path,
            f"image too large ({width}x{height} px = {width * height / 1e6:.0f} MP; limit "
            f"{MAX_PIXELS / 1e6:.0f} MP): scale it down first",
        )
    if min(width, height) < MIN_SIDE_PX:
        raise ImageTooSmall(path, too_small_reason(f"{width}x{height} px"))


def too_small_reason(what: str) -> str:
    """The one wording of the minimum-size refusal (loader and geometry)."""
    page_px = int(np.ceil(MIN_PX_PER_MM * LETTER_MM[0]))
    return (
        f"image too small ({what}): an ECG needs at least {MIN_PX_PER_MM:g} px per mm of paper "
        f"(a Letter page {page_px} px wide, one lead row {MIN_SIDE_PX} px tall)"
    )


def flatten_alpha(img: np.ndarray) -> np.ndarray:
    """BGR(A) or grey decoded by OpenCV → BGR uint8, transparent pixels composited over white paper."""
    if img.dtype != np.uint8:  # 16-bit PNG
        img = (img.astype(np.float32) * (255.0 / np.iinfo(img.dtype).max)).round().astype(np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] in (1, 2):  # grey, grey + alpha
        grey = np.repeat(img[:, :, :1], 3, axis=2)
        img = np.concatenate([grey, img[:, :, 1:]], axis=2) if img.shape[2] == 2 else grey
    if img.shape[2] == 4:
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        img = (img[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    return img


def load_image(path: str | Path) -> np.ndarray:
    """The image as (H, W, 3) uint8 RGB; EcgmlError naming the file if missing, not an image, tiny or huge."""
    path = Path(path)
    if not path.exists():
        raise EcgmlError(path, "file not found")
    if path.is_dir():
        raise EcgmlError(path, "is a folder, not an image")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise EcgmlError(path, f"cannot read: {exc.strerror or exc}") from exc
    if data.size == 0:
        raise EcgmlError(path, "empty file, not an image")
    size = header_size(path)
    if size is not None:
        check_size(path, *size)
    # PNG and WebP may carry alpha, which IMREAD_COLOR would drop (transparent paper turns black);
    # JPEG keeps IMREAD_COLOR, which applies its EXIF orientation.
    alpha_capable = data[:8].tobytes() == b"\x89PNG\r\n\x1a\n" or data[8:12].tobytes() == b"WEBP"
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED if alpha_capable else cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise EcgmlError(path, f"cannot decode: {str(exc).strip().splitlines()[-1]}") from exc
    if img is None or img.size == 0:
        raise EcgmlError(path, "not an image, or a corrupt one (cannot decode)")
    h, w = img.shape[:2]
    check_size(path, w, h)
    return cv2.cvtColor(flatten_alpha(img), cv2.COLOR_BGR2RGB)
