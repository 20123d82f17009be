"""A refused page says why in words that fit it (issue 14, bad input): "no trace" only when there is none.

A page whose trace is there but whose leads were looked for in the wrong places says so; a page on which
geometry found the grid and no trace row does not say "no ECG grid".
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ecgml.digitize import Geometry, flat_page_estimate, load_digitizer
from ecgml.ecg_page import PageEvidence, unread_ecg_reason
from ecgml.errors import GRID_NO_ROWS, EcgmlError
from ecgml.layout import make_layout
from ecgml.trace.types import CellTrace

RECORDS = Path(__file__).resolve().parents[1] / "data" / "records" / "cpsc2018_challenge2020"


def _flat_traces() -> list[CellTrace]:
    out = []
    for c in make_layout().cells:
        x = np.arange(c.x0_mm, c.x1_mm, 1 / 16)
        out.append(CellTrace(c.lead, c.row, c.col, x, np.full(x.size, c.baseline_mm), np.full(x.size, 0.05)))
    return out


def test_grid_without_trace_rows_is_not_called_gridless() -> None:
    blank = np.full((900, 1200, 3), 255, np.uint8)
    geo = flat_page_estimate(blank, GRID_NO_ROWS)
    with pytest.raises(EcgmlError) as exc:
        load_digitizer(None).check_ecg_page(blank, _flat_traces(), geo, "page.png")
    assert exc.value.reason.startswith("not an ECG page: an ECG-like grid with no trace rows found on it")
    assert "no ECG grid" not in exc.value.reason


@pytest.mark.slow  # one page digitized by the shipped model
def test_trace_there_but_leads_looked_for_elsewhere_says_so() -> None:
    from ecgml.records import read_wfdb, resample
    from ecgml.render.presets import render

    rec = resample(read_wfdb(RECORDS / "A0010").window(0, 10), 500, 5000)
    page = render(rec, "0001", 5)
    pm = page.page_map
    # the page's map moved 120 mm down: every cell is looked for below the trace, on bare paper
    moved = replace(pm, homography=pm.homography @ np.array([[1, 0, 0], [0, 1, 120.0], [0, 0, 1]]))
    geo = Geometry(moved, page.layout, 0.9, "estimated", {"rows": 4})  # geometry saw the 4 trace rows
    with pytest.raises(EcgmlError) as exc:
        load_digitizer(None).digitize_image(page.image, 500, "page.png", geometry=geo)
    reason = exc.value.reason
    assert reason.startswith("ECG trace seen"), reason
    assert "could not be placed" in reason and "not an ECG page" not in reason


def test_curves_alone_do_not_say_trace_seen() -> None:
    """Bare graph paper photographed bent shows long wavy curves that line up (its lines); without trace
    rows darker than the grid (rows found only by shape do not count) it stays "not an ECG page"."""
    ev = PageEvidence(True, 0.1, 0.3, 14.9, curves=13, curve_beats=0.73)  # graph-24 of the non-ECG set
    assert unread_ecg_reason(ev, "no trace", trace_rows=0) == ""
    assert unread_ecg_reason(ev, "no trace", trace_rows=4).startswith("ECG trace seen")
