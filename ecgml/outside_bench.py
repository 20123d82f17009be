"""Scoring pages from a generator we did not write (ECG-Image-Kit's reference pages): per-page dB with the
project's metric, and each lead's sub-sample time offset, so a fraction-of-a-sample bias shows up.

Why the offset: the metric aligns leads by whole samples only, so a map that reads every lead 0.5 px
(2.5 ms) early costs dBs on steep QRS complexes while no integer lag can remove it. The truth CSV of a
page is NaN where the page plots nothing; a lead is scored on its plotted samples only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ecgml.metric import MAX_TIME_SHIFT, PERFECT_SCORE, capped_ratio, lead_powers
from ecgml.records import LEADS


@dataclass
class PageScore:
    name: str
    layout: str
    db: float
    lead_db: dict[str, float] = field(default_factory=dict)
    lead_offset_ms: dict[str, float] = field(default_factory=dict)  # negative: the reading is early

    @property
    def median_offset_ms(self) -> float:
        v = [x for x in self.lead_offset_ms.values() if np.isfinite(x)]
        return float(np.median(v)) if v else float("nan")


def read_truth(path: str | Path) -> np.ndarray:
    """(n, 12) mV in LEADS order, NaN where the page does not plot the sample."""
    df = pd.read_csv(path)
    return df[list(LEADS)].to_numpy(np.float64)


def subsample_lag(label: np.ndarray, pred: np.ndarray, fs: int, max_shift_s: float = MAX_TIME_SHIFT) -> float:
    """The lag (samples, fractional) that best aligns `pred` on `label`, as the metric's integer lag
    refined by a parabola through the cross-correlation peak; positive when `pred` is early."""
    a, b = label - label.mean(), pred - pred.mean()
    n = a.size
    m = int(fs * max_shift_s)
    lags = np.arange(-m, m + 1)
    corr = np.array([np.dot(a[max(0, k) : n + min(0, k)], b[max(0, -k) : n - max(0, k)]) for k in lags])
    i = int(np.argmax(corr))
    if i == 0 or i == lags.size - 1:
        return float(lags[i])
    y0, y1, y2 = corr[i - 1], corr[i], corr[i + 1]
    den = y0 - 2 * y1 + y2
    frac = 0.5 * (y0 - y2) / den if den < 0 else 0.0
    return float(lags[i] + frac)


def score_page(name: str, layout: str, truth: np.ndarray, pred: np.ndarray, fs: int) -> PageScore:
    """The metric's capped SNR over the leads the page plots (`pred` NaN counts as 0, as a missing
    reading would), plus each lead's dB and sub-sample offset in ms."""
    if truth.shape != pred.shape:
        raise ValueError(f"{name}: prediction {pred.shape} against truth {truth.shape}")
    ps = pn = 0.0
    lead_db: dict[str, float] = {}
    off: dict[str, float] = {}
    for j, lead in enumerate(LEADS):
        keep = np.isfinite(truth[:, j])
        if not keep.any():
            continue
        x = truth[keep, j]
        y = np.nan_to_num(pred[keep, j], nan=0.0)
        s, e = lead_powers(x, y, fs)
        ps, pn = ps + s, pn + e
        lead_db[lead] = 10 * math.log10(capped_ratio(s, e)) if capped_ratio(s, e) > 0 else -PERFECT_SCORE
        off[lead] = -1000.0 * subsample_lag(x, y, fs) / fs if np.any(y != 0) else float("nan")
    ratio = capped_ratio(ps, pn)
    db = 10 * math.log10(ratio) if ratio > 0 else -PERFECT_SCORE
    return PageScore(name, layout, db, lead_db, off)


def summary_db(scores: list[PageScore]) -> float:
    """The competition's aggregate: 10 log10 of the mean capped ratio."""
    if not scores:
        return float("nan")
    return 10 * math.log10(float(np.mean([10 ** (s.db / 10) for s in scores])))
