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
)
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


_FIRST = ("Anna", "John", "Maria", "Lars", "Wei", "Fatima", "Ola", "Kari", "Jose", "Emma", "Ahmed", "Ingrid")
_LAST = ("Smith", "Hansen", "Garcia", "Olsen", "Chen", "Berg", "Khan", "Larsen", "Muller", "Silva", "Nguyen")
_STATEMENTS = (
    "Sinus rhythm", "Normal ECG", "Sinus bradycardia", "Sinus tachycardia", "Atrial fibrillation",
    "Left axis deviation", "Right bundle branch block", "Left ventricular hypertrophy",
    "Nonspecific T wave abnormality", "Borderline ECG", "Abnormal ECG", "Prolonged QT",
    "First degree AV block", "Possible anterior infarct - age undetermined", "Low voltage QRS",
)  # fmt: skip


def header_lines(
    rng: np.random.Generator,
    record_name: str,
    top_mm: float,
    bottom_mm: float,
    width_mm: float,
    size_pt: float,
) -> tuple[list[tuple[float, float, str]], str]:
    """Synthetic patient header text between `top_mm` and `bottom_mm`: (x_mm, y_mm, text) rows, template."""
    template = str(rng.choice(["imagekit", "muse", "philips"]))
    name = f"{rng.choice(_LAST)}, {rng.choice(_FIRST)}"
    date = f"{int(rng.integers(1, 29)):02d}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1995, 2025))}"
    time = f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}:{int(rng.integers(0, 60)):02d}"
    rate, pr, qrs = int(rng.integers(45, 130)), int(rng.integers(110, 240)), int(rng.integers(70, 140))
    qt = int(rng.integers(320, 470))
    axes = " ".join(str(int(v)) for v in rng.integers(-30, 90, 3))
    sex = str(rng.choice(["M", "F"]))
    if template == "imagekit":
        cols = [[f"ID: {record_name}", f"Name: {name}", f"Date: {date}, {time}"]]
    elif template == "muse":
        stm = [str(s) for s in rng.choice(_STATEMENTS, size=int(rng.integers(1, 5)), replace=False)]
        cols = [
            [name, f"ID:{int(rng.integers(10**6, 10**8))}", f"{date} {time}", f"Sex: {sex}"],
            [f"Vent. rate {rate} BPM", f"PR interval {pr} ms", f"QRS duration {qrs} ms",
             f"QT/QTc {qt}/{int(qt * 1.05)} ms", f"P-R-T axes {axes}"],
            stm + ["Technician: " + str(rng.choice(_FIRST)), "Referred by: Dr " + str(rng.choice(_LAST))],
        ]  # fmt: skip
    else:
        cols = [
            [f"{name}", f"Patient ID {int(rng.integers(10**5, 10**7))}", date],
            [f"Rate {rate}", f"PR {pr}", f"QRSD {qrs}", f"QT {qt}"],
            ["-- " + str(rng.choice(_STATEMENTS)) + " --", "Unconfirmed Diagnosis"],
        ]
    pitch = size_pt * 25.4 / 72 * 1.35
    out = []
    for c, lines in enumerate(cols):
        x = 1.25 + c * width_mm / max(3, len(cols))
        for r, text in enumerate(lines):
            y = top_mm + pitch * (r + 1)
            if y < bottom_mm:
                out.append((x, y, text))
    return out, template
