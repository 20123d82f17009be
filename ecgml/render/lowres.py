"""Low-resolution copies: the small images people paste into slides, forums and messages.

The page is drawn directly at the copy's density (long side 600-1400 px, i.e. about 2.2-5 px/mm,
72-100 DPI on Letter), sometimes cropped to the plot area, then JPEG-compressed (quality 50-90).
Cropping is by whole pixels, so the PageMap stays an exact scale-and-shift.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ecgml.layout import PageLayout
from ecgml.page import PageMap
from ecgml.records import Record
from ecgml.render import capture as cap
from ecgml.render.page import FlatPage, draw_page
from ecgml.render.style import PageStyle


def plot_area_mm(layout: PageLayout, margin_mm: float) -> tuple[float, float, float, float]:
    """The box holding every cell and pulse, one row pitch above the first baseline, grown by `margin_mm`."""
    base = layout.row_baselines()
    pitch = float(np.median(np.diff(base))) if len(base) > 1 else 20.0
    x0 = min([c.x0_mm for c in layout.cells] + [p.x0_mm for p in layout.pulses])
    x1 = max([c.x1_mm for c in layout.cells] + [p.x1_mm for p in layout.pulses])
    y0, y1 = base[0] - pitch, base[-1] + 0.6 * pitch
    w, h = layout.paper_mm
    return max(0.0, x0 - margin_mm), max(0.0, y0 - margin_mm), min(w, x1 + margin_mm), min(h, y1 + margin_mm)


def lowres(
    record: Record, layout: PageLayout, style: PageStyle, rng: np.random.Generator, params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, PageMap, FlatPage]:
    """A small JPEG copy of the page (or of its plot area): image, masks, rows, centre, map, flat page."""
    long_px = int(rng.integers(600, 1401))
    crop = bool(rng.random() < 0.3)
    box = plot_area_mm(layout, float(rng.uniform(1, 8))) if crop else (0.0, 0.0, *layout.paper_mm)
    ppm = long_px / max(box[2] - box[0], box[3] - box[1])
    flat = draw_page(record, layout, style, ppm, supersample=4)
    h, w = flat.image.shape[:2]
    i0, j0 = int(np.floor(box[0] * ppm)), int(np.floor(box[1] * ppm))
    i1, j1 = min(w, int(np.ceil(box[2] * ppm))), min(h, int(np.ceil(box[3] * ppm)))
    sl = (slice(j0, j1), slice(i0, i1))
    quality = int(rng.integers(50, 91))
    image = cap.jpeg(np.ascontiguousarray(flat.image[sl]), quality)
    hmg = np.array([[ppm, 0, -i0], [0, ppm, -j0], [0, 0, 1.0]])
    page_map = PageMap(hmg, (i1 - i0, j1 - j0), layout.paper_mm)
    params["lowres"] = {
        "long_side_px": long_px,
        "px_per_mm": ppm,
        "crop_px": [i0, j0, i1, j1],
        "jpeg_quality": quality,
    }
    masks, rows, centre = (np.ascontiguousarray(a[sl]) for a in (flat.masks, flat.rows, flat.centre))
    return image, masks, rows, centre, page_map, flat
