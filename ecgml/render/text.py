"""Fonts and text: TrueType text drawn as coverage (0..255) with PIL, positioned in page millimetres."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_SYSTEM_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype"))

# Families we can always find: matplotlib ships the DejaVu and STIX fonts.
FONT_FILES: tuple[str, ...] = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "cmss10.ttf",
    "cmr10.ttf",
    "cmb10.ttf",
    "cmtt10.ttf",
)  # 9 families: DejaVu Sans / Serif / Sans Mono, STIX, Computer Modern Sans / Roman / Bold / Typewriter
DEFAULT_FONT = "DejaVuSans.ttf"  # matplotlib's default, hence ECG-Image-Kit's


@functools.cache
def font_path(name: str) -> str:
    """Absolute path of a font file by file name (matplotlib's bundled fonts first, then the system's)."""
    import matplotlib

    dirs = [Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf", *_SYSTEM_DIRS]
    for d in dirs:
        p = d / name
        if p.exists():
            return str(p)
    return str(dirs[0] / DEFAULT_FONT)


@functools.cache
def load_font(name: str, size_px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(name), max(4, int(size_px)))


@dataclass(frozen=True)
class TextItem:
    """One string: `x_mm, y_mm` is the left end of its baseline (or its anchor, PIL's anchor codes)."""

    text: str
    x_mm: float
    y_mm: float
    size_pt: float = 11.0
    font: str = DEFAULT_FONT
    anchor: str = "ls"
    kind: str = "text"  # label, footer, header, qr
    cell: int = -1  # the layout cell a label names


def pt_to_px(pt: float, px_per_mm: float) -> float:
    return pt * 25.4 / 72.0 * px_per_mm


def draw_text_coverage(
    items: list[TextItem], size: tuple[int, int], px_per_mm: float
) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """Coverage (H, W) uint8 of all items and each item's box (x0, y0, x1, y1) in page mm."""
    w, h = size
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    boxes = []
    for it in items:
        font = load_font(it.font, round(pt_to_px(it.size_pt, px_per_mm)))
        # PIL puts the anchor at the pixel corner grid: continuous px = mm * px_per_mm.
        xy = (it.x_mm * px_per_mm, it.y_mm * px_per_mm)
        draw.text(xy, it.text, fill=255, font=font, anchor=it.anchor)
        b = draw.textbbox(xy, it.text, font=font, anchor=it.anchor)
        boxes.append(tuple(float(v) / px_per_mm for v in b))
    return np.asarray(canvas), boxes  # type: ignore[return-value]


def text_width_mm(text: str, font: str, size_pt: float) -> float:
    """Advance width of `text` in mm at `size_pt` (measured at 100 px and scaled)."""
    return float(load_font(font, 100).getlength(text)) / 100 * size_pt * 25.4 / 72
