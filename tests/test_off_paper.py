"""A trace that runs off the paper's edge, or off the image where the image cuts the paper, is held: its
values beyond the edge are not on the page; where it then lies on another row's path it is unread."""

from __future__ import annotations

import numpy as np

from ecgml.page import PageMap, scale_map
from ecgml.records import LEADS
from ecgml.trace.edges import cut_leads, unread_borrowed
from ecgml.trace.types import CellTrace
from ecgml.verdict import CONFIDENT, HELD_AT, OFF_PAPER_MM, lead_confidence, lead_report


def _trace(lead: str, row: int, y: np.ndarray) -> CellTrace:
    x = np.linspace(10.0, 60.0, y.size)
    return CellTrace(lead, row, 0, x, y.astype(float), np.ones(y.size))


def _half_page(ppm: float = 8.0) -> PageMap:
    """The lower half of a Letter sheet pictured alone: the image shows paper y 108-216 mm (geometry
    places a half page on the whole sheet, so its top row ends inside the paper, at the image's top)."""
    h = np.array([[ppm, 0.0, 0.0], [0.0, ppm, -108.0 * ppm], [0.0, 0.0, 1.0]])
    return PageMap(h, (int(279.4 * ppm), int(108 * ppm)), (279.4, 215.9))


def test_leads_whose_trace_reaches_the_top_or_bottom_edge_ran_off_the_paper():
    h = 215.9
    y = np.full(200, 100.0)
    foot = y.copy()
    foot[120:126] = h - OFF_PAPER_MM / 2  # a few columns at the page's foot, then gone
    top = y.copy()
    top[50] = OFF_PAPER_MM / 2
    near = y.copy()
    near[60:70] = h - 3 * OFF_PAPER_MM  # close, not at the edge
    unread = np.full(200, np.nan)
    traces = [_trace("II", 3, foot), _trace("I", 0, top), _trace("V1", 1, near), _trace("V2", 2, unread)]
    assert cut_leads(traces, scale_map(8.0, (2235, 1727), (279.4, h))) == {"II", "I"}


def test_a_lead_the_image_cuts_is_cut_where_the_paper_goes_on():
    top = np.full(200, 116.0)
    top[80:90] = 108.0 + OFF_PAPER_MM / 2  # the top row's wave reaches the image's top, far inside the paper
    below = np.full(200, 131.0)
    near = below.copy()
    near[30:40] = 108.0 + 3 * OFF_PAPER_MM  # close to the image's top, not at it
    traces = [_trace("V1", 0, top), _trace("V2", 1, below), _trace("V3", 2, near + 15)]
    assert cut_leads(traces, _half_page()) == {"V1"}
    assert cut_leads([_trace("V1", 1, near)], _half_page()) == set()
    # an image that crops the paper's left side cuts the rows in time, not their waves
    h = np.array([[8.0, 0.0, -40.0 * 8.0], [0.0, 8.0, 0.0], [0.0, 0.0, 1.0]])
    side = PageMap(h, (int(239.4 * 8), int(215.9 * 8)), (279.4, 215.9))  # paper x 40 .. 279.4 mm pictured
    assert cut_leads(traces, side) == set()
    turned = PageMap(h[[1, 0, 2]], (int(215.9 * 8), int(239.4 * 8)), (279.4, 215.9))  # a quarter turn of it
    assert cut_leads(traces, turned) == set()
    assert cut_leads(traces, PageMap(_half_page().homography[[1, 0, 2]], (864, 2235), (279.4, 215.9))) == {
        "V1"
    }
    # the same traces on an image of the whole sheet: nothing runs off
    assert cut_leads(traces, scale_map(8.0, (2235, 1727), (279.4, 215.9))) == set()


def test_a_cut_lead_on_the_next_rows_path_is_unread_there_and_the_next_row_keeps_it():
    v1 = np.full(200, 116.0)
    v1[60:70] = 108.1  # up to the image's top ...
    v2 = np.full(200, 131.0)
    v2[70:100] = 124.0  # ... the next row swings up while V1 is beyond the edge: the decoder took V2's ink
    v1[70:100] = v2[70:100] + 0.1
    v2[84:86] -= 8  # the next row's QRS: on its steep strokes the two paths part
    v1[84:86] = v2[84:86] + 1.5
    v3 = np.full(200, 146.0)
    v3[150:160] = v2[150:160]  # a lead not cut keeps its columns even on another row's path
    traces = [_trace("V1", 0, v1), _trace("V2", 1, v2), _trace("V3", 2, v3)]
    cut = cut_leads(traces, _half_page())
    assert cut == {"V1"}
    out = unread_borrowed(traces, cut)
    assert np.isnan(out[0].y_mm[70:100]).all() and (out[0].confidence[70:100] < 0.1).all()
    assert np.isfinite(out[0].y_mm[:70]).all() and np.isfinite(out[0].y_mm[100:]).all()
    assert np.array_equal(out[1].y_mm, v2) and np.array_equal(out[2].y_mm, v3)


def test_a_lead_off_the_paper_is_held_and_said_so():
    eager = {"features": ["trace", "geometry"], "transform": "log", "bias": 6.0, "weights": [0.1, 0.1]}
    conf = {lead: 0.99 for lead in LEADS}
    rep = lead_report(conf, conf, set(LEADS), 1.0, {}, calibration=eager, off_paper={"II"})
    assert rep.confidence["II"] == HELD_AT and rep.status["II"] == "read"
    assert all(rep.confidence[lead] >= CONFIDENT for lead in LEADS if lead != "II")
    assert any("off the paper" in w and "II" in w for w in rep.warnings)
    # the hold is kept with the evidence: a re-score from the stored parts (`layout_bench.recalibrated`)
    # holds the lead as the digitizer did
    assert lead_confidence(rep.parts["II"], eager) == HELD_AT
    assert lead_confidence(rep.parts["I"], eager) >= CONFIDENT
    rep = lead_report(conf, conf, set(LEADS), 1.0, {}, calibration=eager)
    assert rep.confidence["II"] >= CONFIDENT
