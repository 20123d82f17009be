"""How a page looks (colours, widths, text), separate from where things are (ecgml.layout).

`kaggle_style` is ECG-Image-Kit's default page (RENDERER.md section 1.3); `random_style` samples the
real-world ranges of RENDERER.md sections 5.3-5.5. Every field is plain data so it goes into metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ecgml.render.text import DEFAULT_FONT, FONT_FILES

RGB = tuple[int, int, int]

# ECG-Image-Kit palettes (major, minor) and a few real-world families, 0..255.
GRID_PALETTES: dict[str, tuple[RGB, RGB]] = {
    "red": ((255, 0, 0), (254, 223, 219)),
    "pink": ((255, 203, 221), (254, 237, 248)),
    "brown": ((109, 50, 47), (150, 107, 101)),
    "blue": ((0, 0, 102), (0, 0, 179)),
    "lightblue": ((90, 140, 210), (190, 215, 240)),
    "green": ((0, 77, 0), (0, 204, 77)),
    "lightgreen": ((60, 170, 90), (190, 235, 200)),
    "orange": ((240, 110, 60), (252, 215, 195)),
    "grey": ((150, 150, 150), (215, 215, 215)),
    "bw": ((102, 102, 102), (191, 191, 191)),
}
GRID_FAMILIES = ("red", "pink", "green", "blue", "grey", "bw", "none")


@dataclass
class PageStyle:
    paper_rgb: RGB = (255, 255, 255)
    grid: bool = True
    grid_name: str = "red"
    grid_major_rgb: RGB = (255, 0, 0)
    grid_minor_rgb: RGB = (254, 223, 219)
    grid_major_pt: float = 0.5
    grid_minor_pt: float = 0.5
    grid_minor: bool = True
    grid_dots: bool = False  # thermal/GE style: dots at the intersections instead of lines
    grid_offset_mm: tuple[float, float] = (0.0, 0.0)  # pre-printed grid misaligned with the trace
    grid_panels: bool = False  # panel pages: the grid only inside each cell's box, from the box's own edge
    panel_frame: bool = False  # panel pages: a frame line around each box
    snap_grid: bool = False  # put grid lines on pixel centres (matplotlib's snapping; 0001 mode)
    snap_px_per_mm: float | None = None  # the raster the grid was snapped on (None: the drawing's own)
    # (a scan or photo of a page is drawn at its own density: near an integer px/mm, snapping there moves
    # all lines half a pixel the same way, and near 8 px/mm slowly along the page)
    trace_rgb: RGB = (0, 0, 0)
    trace_pt: float = 0.75
    pulse_pt: float = 1.125
    separators: bool = True
    separator_half_mv: float = 0.315
    separator_pt: float = 2.25
    labels: bool = True
    label_font: str = DEFAULT_FONT
    label_pt: float = 11.0
    label_offset_mv: float = 0.7  # label baseline below the trace baseline (negative: above)
    rhythm_label_offset_mv: float = 0.8
    label_dx_mm: float = 0.0
    label_place: str = ""  # "" (below/above by the offset's sign), "above", "below" or "left" of the trace
    text_rgb: RGB = (0, 0, 0)
    footer: bool = True
    footer_extra: str = ""
    footer_lines: list[tuple[float, float, str]] = field(default_factory=list)  # replaces the Kaggle footer
    footer_pt: float = 9.0
    redactions: list[tuple[float, float, float, float, bool]] = field(default_factory=list)  # mm box, oval
    redaction_grey: int = 150
    header_font: str = DEFAULT_FONT
    header_pt: float = 11.0
    header_lines: list[tuple[float, float, str]] = field(default_factory=list)  # (x_mm, y_mm, text)
    qr: bool = False
    qr_mm: float = 18.4  # 145 px at 200 DPI
    qr_seed: int = 0
    pen_strokes: list[list[tuple[float, float]]] = field(default_factory=list)  # handwritten marks, mm
    pen_rgb: RGB = (20, 40, 150)
    pen_mm: float = 0.8

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def kaggle_style(rng: np.random.Generator | None = None) -> PageStyle:
    """ECG-Image-Kit defaults: red grid, DejaVu 11 pt labels, trace grey U(0, 0.2)."""
    g = 0 if rng is None else int(round(rng.uniform(0, 0.2) * 255))
    # the grid is snapped on the 200 DPI raster ECG-Image-Kit draws, whatever density a capture is drawn at
    return PageStyle(trace_rgb=(g, g, g), text_rgb=(0, 0, 0), snap_grid=True, snap_px_per_mm=200 / 25.4)


def _jitter(rgb: RGB, rng: np.random.Generator, amount: int) -> RGB:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)  # type: ignore[return-value]


def random_style(rng: np.random.Generator) -> PageStyle:
    """Real-world variation: grid family and widths, trace colour and width, fonts, label placement."""
    s = PageStyle()
    family = str(rng.choice(GRID_FAMILIES, p=[0.42, 0.14, 0.1, 0.1, 0.1, 0.07, 0.07]))
    if family == "red":
        family = str(rng.choice(["red", "orange", "brown"], p=[0.8, 0.12, 0.08]))
    elif family == "green":
        family = str(rng.choice(["green", "lightgreen"]))
    elif family == "blue":
        family = str(rng.choice(["blue", "lightblue"]))
    s.grid_name = family
    if family == "none":
        s.grid = False
    else:
        major, minor = GRID_PALETTES[family]
        s.grid_major_rgb, s.grid_minor_rgb = _jitter(major, rng, 20), _jitter(minor, rng, 12)
    s.grid_major_pt = float(rng.uniform(0.3, 1.2))
    s.grid_minor_pt = float(rng.uniform(0.15, min(0.6, s.grid_major_pt)))
    s.grid_minor = bool(rng.random() < 0.9)
    s.grid_dots = bool(rng.random() < 0.08)
    if rng.random() < 0.2:
        s.grid_offset_mm = (float(rng.uniform(0, 5)), float(rng.uniform(0, 5)))
    grey = int(rng.uniform(0, 0.5) * 255)
    s.trace_rgb = (grey, grey, grey)
    if rng.random() < 0.1:  # blue or brown ink tint
        s.trace_rgb = _jitter((20, 40, 140) if rng.random() < 0.5 else (90, 50, 20), rng, 20)
    s.trace_pt = float(rng.uniform(0.4, 2.0))
    s.pulse_pt = s.trace_pt * float(rng.uniform(1.0, 1.5))
    s.separators = bool(rng.random() < 0.5)
    s.separator_pt = float(rng.uniform(0.75, 2.5))
    s.separator_half_mv = float(rng.uniform(0.2, 0.6))
    s.labels = bool(rng.random() < 0.95)
    s.label_font = str(rng.choice(FONT_FILES))
    s.label_pt = float(rng.uniform(7, 16))
    # below-left (Kaggle, GE), above-left (Mortara, often bold sans) or left of the trace
    s.label_place = str(rng.choice(["below", "above", "left"], p=[0.55, 0.35, 0.1]))
    s.label_offset_mv = float(rng.uniform(0.4, 1.0) if s.label_place == "below" else rng.uniform(0.3, 1.2))
    s.rhythm_label_offset_mv = s.label_offset_mv + float(rng.uniform(0.0, 0.2))
    s.label_dx_mm = float(rng.uniform(-1.0, 3.0))
    if s.label_place == "above" and rng.random() < 0.5:
        s.label_font = str(rng.choice(["DejaVuSans-Bold.ttf", "DejaVuSansMono-Bold.ttf", "cmb10.ttf"]))
    s.text_rgb = s.trace_rgb if rng.random() < 0.5 else (0, 0, 0)
    s.header_font = str(rng.choice(FONT_FILES))
    s.header_pt = float(rng.uniform(7, 12))
    s.qr = bool(rng.random() < 0.3)
    s.qr_mm = float(rng.uniform(15, 35))
    s.qr_seed = int(rng.integers(0, 2**31))
    s.snap_grid, s.snap_px_per_mm = grid_snap(s.qr_seed)
    return s


def grid_snap(seed: int) -> tuple[bool, float | None]:
    """How a real-world page's grid lines snap: half like ECG-Image-Kit (matplotlib on a 200 DPI raster,
    lines on average half its pixel right/down), a quarter on the raster the page is drawn at, a quarter
    not at all. Drawn from its own stream (`seed`) so the other style draws stay as they were."""
    u = float(np.random.default_rng(seed).random())
    if u < 0.5:
        return True, 200 / 25.4
    return (True, None) if u < 0.75 else (False, None)


def pen_marks(rng: np.random.Generator, paper_mm: tuple[float, float]) -> list[list[tuple[float, float]]]:
    """2-8 pen marks (ticks, circles, scribbled words, arrows) as smooth polylines in page mm."""
    out = []
    for _ in range(int(rng.integers(2, 9))):
        cx, cy = rng.uniform(10, paper_mm[0] - 10), rng.uniform(10, paper_mm[1] - 10)
        kind = int(rng.integers(3))
        if kind == 0:  # circle / loop around something
            r = rng.uniform(4, 15)
            t = np.linspace(0, 2 * np.pi * rng.uniform(0.9, 1.15), 60)
            pts = np.stack([cx + r * 1.4 * np.cos(t), cy + r * np.sin(t)], 1)
        elif kind == 1:  # tick or arrow
            s = rng.uniform(3, 10)
            pts = np.array([[cx - s, cy], [cx - s / 3, cy + s / 2], [cx + s, cy - s]])
        else:  # a scribbled word: a cursive-like wave
            n = int(rng.integers(20, 60))
            x = cx + np.linspace(0, rng.uniform(15, 40), n)
            y = cy + 1.5 * np.sin(np.linspace(0, rng.uniform(8, 20), n)) + rng.normal(0, 0.3, n)
            pts = np.stack([x, y], 1)
        out.append([(float(a), float(b)) for a, b in pts + rng.normal(0, 0.2, pts.shape)])
    return out
