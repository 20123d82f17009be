"""A light-grey trace on a darker grid (GE-style prints): geometry finds the rows by shape, not darkness.

Before `trace_ink`, nothing on such a page was darker than its 5 mm lines, so geometry found the grid
and no trace row on it ("no ECG trace found on the grid"), and the page was refused as not an ECG.
"""

from __future__ import annotations

import numpy as np

from ecgml.geometry import estimate_page
from ecgml.geometry.trace_ink import line_free_mask
from ecgml.layout import make_layout
from ecgml.records import LEADS, Record
from ecgml.render.page import draw_page
from ecgml.render.style import PageStyle
from tests.geometry_pages import fake_ecg

PPM = 4.0  # a small copy: 4 px/mm


def _record() -> Record:
    t = np.arange(5000) / 500
    sig = np.stack([fake_ecg(t, 7 + i) for i in range(len(LEADS))], axis=1)
    return Record(sig.astype(np.float32), 500, "light")


def _page(trace_grey: int, grid_rgb: tuple[int, int, int]) -> np.ndarray:
    style = PageStyle(
        grid_major_rgb=grid_rgb,
        grid_minor=False,
        grid_major_pt=1.0,
        trace_rgb=(trace_grey, trace_grey, trace_grey),
        trace_pt=0.6,
        labels=False,
    )
    return draw_page(_record(), make_layout("3x4+1R"), style, PPM).image


def test_line_free_mask_keeps_the_trace_and_drops_the_grid() -> None:
    ink = np.zeros((200, 400), np.float32)
    ink[::20, :] = 0.6  # grid lines every 5 mm at 4 px/mm, darker than the trace
    ink[:, ::20] = 0.6
    x = np.arange(400)
    y = (100 + 12 * np.sin(x / 9.0)).astype(int)
    ink[y, x] = np.maximum(ink[y, x], 0.4)  # a light wavy trace (where it crosses a line, the line)
    valid = np.ones(ink.shape, bool)
    m = line_free_mask(ink, valid, PPM)
    assert m[y, x].mean() > 0.6  # most of the trace (lost only where it crosses a line)
    on_lines = np.concatenate([m[::20, :].ravel(), m[:, ::20].ravel()])
    assert on_lines.mean() < 0.03  # the grid lines are gone (but for short bridges where the trace is)


def test_light_trace_on_a_dark_grid_is_found() -> None:
    img = _page(150, (100, 96, 115))
    est = estimate_page(img, "light.png")
    assert est.diagnostics["trace_ink"]  # found by shape
    assert est.diagnostics["rows"] == 4
    assert est.orientation == 0
    assert est.layout.name == "3x4+1R"


def test_dark_trace_does_not_need_it() -> None:
    est = estimate_page(_page(20, (255, 120, 120)), "dark.png")
    assert "trace_ink" not in est.diagnostics
    assert est.diagnostics["rows"] == 4
