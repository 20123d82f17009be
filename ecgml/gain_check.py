"""Whether a page's traces are not too tall for a heart's at the gain the page is read at.

Without a calibration pulse or a printed gain the digitizer assumes 10 mm/mV. A page printed at 20 mm/mV
is then read twice too tall (every lead at 0 dB), and nothing else on the page tells: beats and Einthoven's
relations hold at any gain, so the page's leads vouch for each other at 0.9+ (gain-20 pages without a pulse,
validation seed 14035: 20 leads confidently wrong). The one witness left is the heart itself: QRS spans have
a known spread across people, so a page whose leads, read at the assumed gain, are on average nearer to what
20 mm/mV would show than to what 10 mm/mV shows does not support the assumption. The spread is wide
(log-sd 0.30 of the 12-lead mean on training records), so this is a weak witness: about 1 in 9 pages
printed at twice the gain pass (numbers at LOG_SPAN), among them pages of small complexes, which is what
20 mm/mV is for (lowres validation panels-12x1_002 reads as an average heart, and stays wrong at 0.9+).

Only the tall side is looked at. A page printed at 5 mm/mV and read at 10 comes out half as tall (6 dB,
right by the benchmark's 3 dB, wrong for a diagnosis), but the short side also catches pages read right
whose peaks the tracer cut short (small, blurred copies): on validation it held 17 full-height confident
right leads to catch 12 half-height ones (BENCHMARKS.md, session 29 gain35).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.ndimage import median_filter

from ecgml.layout import PageLayout
from ecgml.trace.types import CellTrace

# per lead, the mean log (mV) of its QRS span (`log_span`) over the 150 training-split records' first 10 s
# (`benchmarks/gain_reference.py`); the page mean of (log span - this) has sd 0.30 over those records
# (limb or chest leads alone 0.35): 89 % of them lie at most HALF_OCTAVE above 0, 11 % of them read at twice
# their gain (12 leads; 85 % and 14-17 % with the six limb or chest leads)
LOG_SPAN = {
    "I": -0.514, "II": -0.198, "III": -0.542, "aVR": -0.391, "aVL": -0.795, "aVF": -0.492,
    "V1": 0.032, "V2": 0.552, "V3": 0.552, "V4": 0.584, "V5": 0.491, "V6": 0.296,
}  # fmt: skip
HALF_OCTAVE = float(np.log(2.0) / 2)  # the midpoint between a gain and twice (or half) of it, in log
BASELINE_S = 0.6  # the moving median taken off first (baseline wander), longer than a QRS
SPAN_Q = 0.01  # the span is between these quantiles: a stray pixel or two does not make it
MIN_SPAN_MV = 0.02  # a flatter lead (or a cell traced flat) says nothing of the gain
MIN_LEADS = 3  # fewer leads with a span: no verdict (too wide a spread)
STEP_S = 0.004  # the traces are looked at on this time grid (250 Hz)


def log_span(v: np.ndarray, fs: float) -> float | None:
    """log (mV) of a lead's QRS span: the 1-99 % quantile range once a BASELINE_S moving median is taken
    off (None when too few samples or flatter than MIN_SPAN_MV)."""
    v = np.asarray(v, np.float64)
    v = v[np.isfinite(v)]
    if v.size < fs:
        return None
    y = v - median_filter(v, size=max(3, int(BASELINE_S * fs)), mode="nearest")
    span = float(np.quantile(y, 1 - SPAN_Q) - np.quantile(y, SPAN_Q))
    return float(np.log(span)) if span >= MIN_SPAN_MV else None


def trace_log_spans(traces: Iterable[CellTrace], layout: PageLayout) -> dict[str, float]:
    """Per lead of LOG_SPAN on the page, `log_span` of its cells' traces read at each cell's gain."""
    cells = {(c.row, c.col): c for c in layout.cells}
    by_lead: dict[str, list[np.ndarray]] = {}
    for t in traces:
        c = cells.get((t.row, t.col))
        if c is None or t.lead not in LOG_SPAN or t.x_mm.size < 2:
            continue
        ok = np.isfinite(t.y_mm)
        if ok.sum() < 2:
            continue
        step = STEP_S * layout.speed_mm_s
        x = np.arange(t.x_mm[ok].min(), t.x_mm[ok].max(), step)
        by_lead.setdefault(t.lead, []).append(np.interp(x, t.x_mm[ok], t.y_mm[ok]) / layout.cell_gain(c))
    out = {}
    for lead, parts in by_lead.items():
        s = log_span(np.concatenate([p - np.median(p) for p in parts]), 1 / STEP_S)
        if s is not None:
            out[lead] = s
    return out


def gain_offset(spans: dict[str, float]) -> float | None:
    """The page's mean log span above the reference (0: as tall as the average heart at the gain read;
    +log 2: twice as tall, as a page printed at twice that gain), None with fewer than MIN_LEADS leads."""
    z = [s - LOG_SPAN[k] for k, s in spans.items() if k in LOG_SPAN]
    return float(np.mean(z)) if len(z) >= MIN_LEADS else None


def supports_gain(offset: float | None) -> bool:
    """Whether the traces' heights are nearer to a heart's at the gain read than at twice it (the short
    side is not looked at: see the module docstring)."""
    return offset is not None and offset <= HALF_OCTAVE
