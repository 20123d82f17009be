"""A trace that runs off the paper's edge is held: its values beyond the edge are not on the page."""

from __future__ import annotations

import numpy as np

from ecgml.digitize import off_paper
from ecgml.records import LEADS
from ecgml.trace.types import CellTrace
from ecgml.verdict import CONFIDENT, HELD_AT, OFF_PAPER_MM, lead_confidence, lead_report


def _trace(lead: str, row: int, y: np.ndarray) -> CellTrace:
    x = np.linspace(10.0, 60.0, y.size)
    return CellTrace(lead, row, 0, x, y.astype(float), np.ones(y.size))


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
    assert off_paper(traces, h) == {"II", "I"}


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
