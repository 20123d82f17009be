"""What a page reader learns from, beside each image: every printed label, pulse, row and cell as boxes
in paper mm and in image px (through the image's PageMap, so exact for every capture type), and the
layout as data. Stored in the truth JSON under `annotations`.

An image box is the axis-aligned bounding box of the paper box's outline (sampled 9 points per edge)
mapped into the image: on warped photos it contains the whole warped box. `quad_px` gives the four
mapped corners (top-left, top-right, bottom-right, bottom-left).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ecgml.layout import PageLayout
from ecgml.page import PageMap
from ecgml.render.layouts import layout_dict
from ecgml.render.page import cell_windows, pulse_polyline
from ecgml.render.text import TextItem

Box = tuple[float, float, float, float]


def image_box(page_map: PageMap, box: Box) -> tuple[list[float], list[list[float]]]:
    """(x0, y0, x1, y1) image px bounding the mapped outline of a paper-mm box, and its 4 mapped corners."""
    x0, y0, x1, y1 = box
    t = np.linspace(0, 1, 9)
    outline = np.concatenate([
        np.stack([x0 + (x1 - x0) * t, np.full(9, y0)], 1), np.stack([np.full(9, x1), y0 + (y1 - y0) * t], 1),
        np.stack([x1 - (x1 - x0) * t, np.full(9, y1)], 1), np.stack([np.full(9, x0), y1 - (y1 - y0) * t], 1),
    ])  # fmt: skip
    px = page_map.mm_to_px(outline)
    corners = px[[0, 9, 18, 27]]
    return [float(v) for v in (*px.min(0), *px.max(0))], corners.round(3).tolist()


def _entry(page_map: PageMap, box: Box, **kw: Any) -> dict[str, Any]:
    bpx, quad = image_box(page_map, box)
    return {**kw, "box_mm": [round(v, 4) for v in box], "box_px": [round(v, 3) for v in bpx], "quad_px": quad}


def page_annotations(
    layout: PageLayout,
    items: list[TextItem],
    boxes: list[Box],
    page_map: PageMap,
    fs: int,
) -> dict[str, Any]:
    """Labels, other text, pulses, rows (baseline and cells) and cells, in mm and image px."""
    out: dict[str, Any] = {"layout": layout_dict(layout), "labels": [], "texts": []}
    for it, b in zip(items, boxes, strict=True):
        if it.kind == "label":
            out["labels"].append(_entry(page_map, b, text=it.text, cell=it.cell))
        else:
            out["texts"].append(_entry(page_map, b, kind=it.kind, text=it.text))
    pulses = []
    for p in layout.pulses:
        poly = pulse_polyline(p, layout.gain_mm_mv)
        box = (
            float(poly[:, 0].min()),
            float(poly[:, 1].min()),
            float(poly[:, 0].max()),
            float(poly[:, 1].max()),
        )
        pulses.append(
            _entry(
                page_map,
                box,
                row=p.row,
                at_end=p.x0_mm > min(c.x1_mm for c in layout.cells if c.row == p.row) - 1e-6,
            )
        )
    out["pulses"] = pulses
    n_grid = layout.n_rows - len(layout.rhythm_leads)
    pitch = np.diff(layout.row_baselines()) if layout.n_rows > 1 else np.array([20.0])
    half = float(np.median(pitch)) / 2 if pitch.size else 10.0
    cells = []
    for k, (c, (start, n)) in enumerate(zip(layout.cells, cell_windows(layout, fs), strict=True)):
        box = (c.x0_mm, c.baseline_mm - half, c.x1_mm, c.baseline_mm + half)
        if c.box_bottom_mm > c.box_top_mm:  # a panel page: the cell's own gridded box
            box = (c.x0_mm, c.box_top_mm, c.x1_mm, c.box_bottom_mm)
        cells.append(_entry(
            page_map, box, cell=k, lead=c.lead, text=c.text, sign=c.sign, row=c.row, col=c.col,
            gain_mm_mv=layout.cell_gain(c), t0_s=c.t0_s, t1_s=c.t1_s, first_sample=start, n_samples=n,
            truth=not c.derived, derived=c.derived,
        ))  # fmt: skip
    out["cells"] = cells
    rows = []
    for r, base in enumerate(layout.row_baselines()):
        rc = [c for c in layout.cells if c.row == r]
        x0, x1 = min(c.x0_mm for c in rc), max(c.x1_mm for c in rc)
        ends = page_map.mm_to_px(np.array([[x0, base], [x1, base]]))
        rows.append(_entry(
            page_map, (x0, base - half, x1, base + half), row=r, kind="grid" if r < n_grid else "rhythm",
            baseline_mm=base, baseline_px=ends.round(3).tolist(),
            cells=[k for k, c in enumerate(layout.cells) if c.row == r],
        ))  # fmt: skip
    out["rows"] = rows
    return out
