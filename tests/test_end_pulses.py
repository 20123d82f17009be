"""Calibration pulses at the row ends (Mortara-like pages) end the rows; they do not start them.

Taken for start pulses, they put the page's x origin at the right edge: every cell was looked for past
the trace, and the page was refused as "no trace found" (test page 6x2_006, seed 14014).
"""

from __future__ import annotations

import numpy as np

from ecgml.geometry import estimate_page
from ecgml.layout import grid_layout
from ecgml.render.page import draw_page
from ecgml.render.style import PageStyle
from tests.test_trace_ink import _record

GRID = [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]]


def _page(at_end: bool) -> tuple[np.ndarray, float]:
    ppm = 6.0
    lay = grid_layout("3x4+1R", GRID, ["II"], pulse_at_end=at_end, x0_mm=15.0 if not at_end else 10.0)
    img = draw_page(_record(), lay, PageStyle(labels=False), ppm).image
    return img, ppm


def test_pulses_at_the_row_ends_end_the_rows() -> None:
    img, ppm = _page(at_end=True)
    est = estimate_page(img, "end.png")
    assert est.diagnostics["pulse_at_end"] and est.diagnostics["pulse_rows"] == 4
    assert est.orientation == 0
    # the rows' last sample (x = 10 + 250 mm on the drawn page) where the layout's cells end
    x_end_px = (10.0 + 250.0) * ppm
    last = max(c.x1_mm for c in est.layout.cells)
    got = est.page_map.mm_to_px(np.array([[last, est.layout.row_baselines()[0]]]))[0, 0]
    assert abs(got - x_end_px) / ppm < 2.5  # within half a 5 mm period


def test_pulses_at_the_row_starts_still_start_them() -> None:
    img, ppm = _page(at_end=False)
    est = estimate_page(img, "start.png")
    assert not est.diagnostics["pulse_at_end"] and est.diagnostics["pulse_rows"] == 4
    first = min(c.x0_mm for c in est.layout.cells)
    got = est.page_map.mm_to_px(np.array([[first, est.layout.row_baselines()[0]]]))[0, 0]
    assert abs(got - 15.0 * ppm) / ppm < 2.5
