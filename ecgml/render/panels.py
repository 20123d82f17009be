"""Panel pages: each lead in its own gridded box, the way plotting software and several carts draw them.

`panel_page` re-places a layout's cells (same leads, same seconds) into boxes: columns apart by a gap
instead of separator ticks, every row's boxes as tall as the page's tallest lead needs (or a fixed
height), the rhythm strip's box only as wide as its seconds (no gaps inside it, so narrower than the
grid's columns together), the paper sized to what it holds. What varies, as it does between exporters:
gap and row spacing, box height and where the baseline sits in it, the grid only inside the boxes (each
box's lattice starting at its own edge) or over the whole page, a frame around each box, the pulse
outside the first box or none, the lead name above the box or inside its corner, time tick labels
under each box, and a one-line footer. The drawing itself is `ecgml.render.page.draw_page`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from ecgml.layout import Cell, PageLayout, Pulse
from ecgml.records import Record
from ecgml.render.layouts import pulse_width_mm
from ecgml.render.page import lead_signal
from ecgml.render.style import PageStyle

SHEET_H_MM = (200.0, 300.0)  # pages of more than four rows keep to an ordinary sheet's height
MIN_BOX_H_MM = 12.0
PREFIX = "panels:"  # a layout name "panels:3x4+1R" draws that layout as a panel page


def split_name(name: str | None) -> tuple[str | None, bool]:
    """('3x4+1R', True) for 'panels:3x4+1R'; (name, False) for any other name."""
    if name is not None and name.startswith(PREFIX):
        return name[len(PREFIX) :] or None, True
    return name, False


def _extent_mv(record: Record, lay: PageLayout) -> tuple[float, float]:
    """Highest and lowest mV any cell draws (0 included), at the page's gain."""
    hi, lo = 0.0, 0.0
    for c in lay.cells:
        v = lead_signal(record, c.lead)
        i0, i1 = int(c.t0_s * record.fs), int(math.ceil(c.t1_s * record.fs))
        seg = c.sign * np.asarray(v[i0:i1], np.float64) * lay.cell_gain(c) / lay.gain_mm_mv
        if seg.size and np.isfinite(seg).any():
            hi, lo = max(hi, float(np.nanmax(seg))), min(lo, float(np.nanmin(seg)))
    return hi, lo


def panel_page(
    rng: np.random.Generator, lay: PageLayout, record: Record, style: PageStyle, header_mm: float = 0.0
) -> tuple[PageLayout, dict[str, Any]]:
    """`lay` drawn as boxes (cells keep their leads and seconds); `style` is set for it. Returns the
    new layout and the drawn parameters."""
    g = lay.gain_mm_mv
    gap = float(rng.uniform(2.0, 10.0))
    pad = float(rng.uniform(1.0, 5.0))
    if rng.random() < 0.6:  # as tall as the tallest lead needs, in whole 5 mm
        hi, lo = _extent_mv(record, lay)
        box_h = 5.0 * math.ceil((2 * pad + (hi - lo) * g) / 5.0)
        above = pad + hi * g + 0.5 * (box_h - 2 * pad - (hi - lo) * g)
    else:
        box_h = float(rng.uniform(20.0, 45.0))
        above = box_h * float(rng.uniform(0.4, 0.6))
    box_h = float(np.clip(box_h, 15.0, 80.0))
    above = float(np.clip(above, 2.0, box_h - 2.0))
    label_pt = float(rng.uniform(7.0, 12.0))
    label_inside = bool(rng.random() < 0.3)
    ticks = bool(rng.random() < 0.6)
    row_gap = float(rng.uniform(3.0, 10.0)) + (0.0 if label_inside else label_pt * 0.35 + 1.5)
    row_gap += 4.0 if ticks else 0.0
    pulse = bool(rng.random() < 0.6)
    pw = pulse_width_mm(lay.speed_mm_s)
    left = float(rng.uniform(6.0, 15.0)) + (pw + 3.0 if pulse else 0.0)
    right = float(rng.uniform(5.0, 12.0))
    top = header_mm + float(rng.uniform(5.0, 12.0)) + (0.0 if label_inside else label_pt * 0.35 + 1.5)
    footer = float(rng.uniform(8.0, 16.0))
    # many rows (12x1, 3 strips) on a sheet of ordinary height: the boxes shrink (traces may leave them)
    sheet_h = float(rng.uniform(*SHEET_H_MM)) if lay.n_rows > 4 else float("inf")
    fit_h = (sheet_h - top - footer - (lay.n_rows - 1) * row_gap) / lay.n_rows
    if box_h > fit_h:
        shrink = max(fit_h, MIN_BOX_H_MM) / box_h
        box_h, above = box_h * shrink, above * shrink
    cells: list[Cell] = []
    width = 0.0
    for r in range(lay.n_rows):
        box_top = top + r * (box_h + row_gap)
        x = left
        for c in sorted((c for c in lay.cells if c.row == r), key=lambda c: c.col):
            w = (c.t1_s - c.t0_s) * lay.speed_mm_s
            cells.append(replace(c, baseline_mm=box_top + above, x0_mm=x, x1_mm=x + w, box_top_mm=box_top,
                                 box_bottom_mm=box_top + box_h))  # fmt: skip
            x += w + gap
        width = max(width, x - gap)
    paper = (width + right, top + lay.n_rows * box_h + (lay.n_rows - 1) * row_gap + footer)
    pulses = [
        Pulse(r, left - pw - 2.0, left - 2.0, top + r * (box_h + row_gap) + above) for r in range(lay.n_rows)
    ]
    out = replace(lay, paper_mm=paper, cells=cells, pulses=pulses if pulse else [])
    style.grid_panels = bool(rng.random() < 0.8)
    style.panel_frame = bool(rng.random() < 0.4)
    style.separators = False
    style.label_place = "above"
    style.label_pt = label_pt
    style.label_dx_mm = float(rng.uniform(0.0, 2.0)) if label_inside else 0.0
    off = (above - (label_pt * 0.35 + 1.0)) if label_inside else (above + 1.5)  # mm above the baseline
    style.label_offset_mv = style.rhythm_label_offset_mv = off / g
    style.footer_lines = []
    if ticks:
        step = 1.0 if lay.speed_mm_s >= 25.0 else 2.0
        for c in cells:
            first = math.ceil(c.t0_s / step - 1e-9) * step
            for t in np.arange(first, c.t1_s + 1e-9, step):
                x = c.x0_mm + (t - c.t0_s) * lay.speed_mm_s
                style.footer_lines.append((x - 0.6, c.box_bottom_mm + 3.5, f"{t:g}"))
    if rng.random() < 0.7:
        text = f"{lay.speed_mm_s:g} mm/s  {g:g} mm/mV"
        style.footer_lines.append((left, paper[1] - footer / 2, text))
    style.footer = bool(style.footer_lines)
    style.footer_pt = float(rng.uniform(6.0, 9.0))
    params = {"gap_mm": gap, "box_h_mm": box_h, "above_mm": above, "row_gap_mm": row_gap, "pulse": pulse}
    params.update(
        grid_panels=style.grid_panels, frame=style.panel_frame, ticks=ticks, label_inside=label_inside
    )
    return out, params
