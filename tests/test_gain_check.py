"""A page whose gain is assumed is vouched for only where its traces are as tall as a heart's at that gain:
read at 10 mm/mV, a page printed at 20 mm/mV comes out twice too tall (every lead at 0 dB)."""

from __future__ import annotations

import numpy as np

from ecgml.gain_check import HALF_OCTAVE, LOG_SPAN, gain_offset, log_span, supports_gain, trace_log_spans
from ecgml.layout import make_layout
from ecgml.records import LEADS
from ecgml.trace.types import CellTrace
from ecgml.verdict import CONFIDENT, HELD_AT, lead_confidence, lead_report


def _beats(span_mv: float, seconds: float, fs: float = 500.0) -> np.ndarray:
    """QRS-like spikes (80 ms triangles) every 0.8 s, on a slow wander the span must not see."""
    t = np.arange(0, seconds, 1 / fs)
    phase = np.mod(t, 0.8)
    qrs = np.clip(1 - np.abs(phase - 0.4) / 0.04, 0, None)
    return span_mv * qrs + 0.3 * np.sin(2 * np.pi * 0.2 * t)


def test_the_span_scales_with_the_trace_and_ignores_baseline_wander():
    a, b = log_span(_beats(1.0, 10), 500), log_span(_beats(2.0, 10), 500)
    assert a is not None and b is not None
    assert abs((b - a) - np.log(2)) < 0.01  # the wander (not scaled here) is taken off
    assert abs(a) < 0.2  # a 1 mV spike spans about 1 mV whatever the wander
    assert log_span(np.zeros(5000), 500) is None  # a flat lead says nothing of the gain
    assert log_span(np.ones(100), 500) is None  # nor does a fragment


def test_heights_nearer_twice_the_gain_do_not_support_it():
    ref = dict(LOG_SPAN)
    assert supports_gain(gain_offset(ref))
    assert not supports_gain(gain_offset({k: v + np.log(2) for k, v in ref.items()}))  # printed at 20
    assert not supports_gain(gain_offset({k: v + 1.1 * HALF_OCTAVE for k, v in ref.items()}))
    assert supports_gain(gain_offset({k: v + 0.9 * HALF_OCTAVE for k, v in ref.items()}))
    # the short side is not looked at: peaks traced short on small copies look like it
    assert supports_gain(gain_offset({k: v - np.log(2) for k, v in ref.items()}))
    assert gain_offset({"I": 0.0, "II": 0.0}) is None and not supports_gain(None)  # too few leads


def test_traces_drawn_at_twice_the_gain_read_twice_as_tall():
    lay = make_layout()  # 10 mm/mV

    def traces(drawn_gain: float) -> list[CellTrace]:
        out = []
        for c in lay.cells:
            x = np.arange(c.x0_mm, c.x1_mm, 0.1)
            v = _beats(float(np.exp(LOG_SPAN.get(c.lead, 0.0))), x.size / 250.0, 250.0)[: x.size]
            out.append(CellTrace(c.lead, c.row, c.col, x, c.baseline_mm - drawn_gain * v, np.ones(x.size)))
        return out

    at10 = gain_offset(trace_log_spans(traces(10.0), lay))
    at20 = gain_offset(trace_log_spans(traces(20.0), lay))
    assert at10 is not None and at20 is not None
    assert abs((at20 - at10) - np.log(2)) < 0.05


def test_a_lead_whose_assumed_gain_is_unsupported_is_held_even_when_vouched_for():
    eager = {"features": ["trace", "geometry"], "transform": "log", "bias": 6.0, "weights": [0.1, 0.1]}
    conf = {lead: 0.99 for lead in LEADS}
    rep = lead_report(conf, conf, set(LEADS), 1.0, {}, calibration=eager, gain_fit=dict.fromkeys(LEADS, 0.0))
    assert all(rep.confidence[lead] == HELD_AT for lead in LEADS)
    assert lead_confidence(rep.parts["V2"], eager) == HELD_AT  # a re-score holds it as the digitizer did
    rep = lead_report(conf, conf, set(LEADS), 1.0, {}, calibration=eager, gain_fit=dict.fromkeys(LEADS, 1.0))
    assert all(rep.confidence[lead] >= CONFIDENT for lead in LEADS)
    rep = lead_report(conf, conf, set(LEADS), 1.0, {}, calibration=eager)  # gain read: nothing held
    assert all(rep.confidence[lead] >= CONFIDENT for lead in LEADS)
