"""Checks of an assembled record's leads against each other: evidence for the confidence.

The layout and trace evidence (`ecgml.verdict`) says how sure the digitizer is of the page; it cannot
tell which one lead of a page went wrong, nor see a page read wrong all alike. The leads can:
simultaneous leads show the same heartbeats at the same moments (a lead from the wrong time window, a
cell traced off its row, noise or a neighbouring row's ink do not line up), and the leads named aVR and
V6 point the way a heart's do (a page whose layout or row order was read wrong names other leads so).
Both are computed from the signals alone, so a benchmark can recompute them from saved records.
(Session 13 also stored a limb lead's Einthoven fit and its trace against its row's baseline; neither
told right leads from wrong on validation, in the calibration or alone, and session 14 removed them.)
"""

from __future__ import annotations

import numpy as np

from ecgml.records import LEADS

ENVELOPE_S = 0.04  # the |slope| envelope's smoothing: QRS complexes stand out, P/T waves much less
MIN_OVERLAP_S = 1.0  # leads that share less than this much time say nothing about each other's beats
BEAT_SHIFT_S = 0.08  # a small time offset between rows is a tracing detail, not a different window
NO_EVIDENCE = 1.0  # a lead no other lead can check: no evidence against it
FLOOR = 0.01


def _envelope(x: np.ndarray, fs: int) -> np.ndarray:
    """Smoothed |slope| of one lead (NaN kept where the lead is not shown), scaled to its 98th percentile."""
    ok = np.isfinite(x)
    out = np.full(x.size, np.nan)
    if ok.sum() < fs * MIN_OVERLAP_S:
        return out
    idx = np.flatnonzero(ok)
    seg = slice(idx[0], idx[-1] + 1)
    y = np.interp(np.arange(idx[0], idx[-1] + 1), idx, x[ok])
    n = max(1, int(round(ENVELOPE_S * fs)))
    env = np.convolve(np.abs(np.gradient(y)), np.ones(n) / n, mode="same")
    out[seg] = env / max(float(np.percentile(env, 98)), 1e-9)
    out[~ok] = np.nan
    return out


def _best_corr(a: np.ndarray, b: np.ndarray, shift: int) -> float:
    """Largest Pearson correlation of a and b over shifts of up to `shift` samples (-1 if none)."""
    best = -1.0
    for s in range(-shift, shift + 1, max(1, shift // 4)):
        aa, bb = a[max(0, s) : a.size + min(0, s)], b[max(0, -s) : b.size - max(0, s)]
        if aa.size > 10 and aa.std() > 0 and bb.std() > 0:
            best = max(best, float(np.corrcoef(aa, bb)[0, 1]))
    return best


def beat_witnesses(signal: np.ndarray, fs: int) -> dict[str, float]:
    """Per lead shown: how many other leads share at least MIN_OVERLAP_S of its time (0: its beats are
    checked by none, so its `beat_agreement` is no evidence for it)."""
    ok = np.isfinite(np.asarray(signal, dtype=np.float64))
    shown = [j for j in range(ok.shape[1]) if ok[:, j].sum() >= fs * MIN_OVERLAP_S]
    return {
        LEADS[j]: float(sum((ok[:, j] & ok[:, k]).sum() >= fs * MIN_OVERLAP_S for k in shown if k != j))
        for j in shown
    }


def beat_agreement(signal: np.ndarray, fs: int) -> dict[str, float]:
    """Per lead: how well its beats fall where the simultaneous other leads' do (the correlation of its
    |slope| envelope with the mean of theirs, over the time they share, best over small shifts), in
    [FLOOR, 1]; NO_EVIDENCE where no other lead shares MIN_OVERLAP_S with it (`beat_witnesses`)."""
    sig = np.asarray(signal, dtype=np.float64)
    envs = np.stack([_envelope(sig[:, j], fs) for j in range(sig.shape[1])], axis=1)
    have = np.isfinite(envs)
    total, count = np.nansum(envs, axis=1), have.sum(axis=1)
    shift = int(round(BEAT_SHIFT_S * fs))
    out: dict[str, float] = {}
    for j, lead in enumerate(LEADS[: sig.shape[1]]):
        if not have[:, j].any():
            continue
        both = have[:, j] & (count > 1)
        if both.sum() < fs * MIN_OVERLAP_S:
            out[lead] = NO_EVIDENCE
            continue
        others = (total[both] - envs[both, j]) / (count[both] - 1)
        out[lead] = float(np.clip(_best_corr(envs[both, j], others, shift), FLOOR, 1.0))
    return out


# the two leads whose QRS direction nearly every heart fixes: aVR looks at it from the right shoulder (its
# complexes point down), V6 from the left side (they point up); a page whose layout, row order or lead
# names were read wrong all alike still beats together and fits Einthoven's relations, but puts other
# leads under these names (validation, session 14: aVR polarity > 0 on none of 93 right aVR and 13 of 26
# wrong ones; V6 < 0 on none of 87 right V6 and 11 of 27 wrong ones)
SHAPE_SIGN = {"aVR": -1.0, "V6": 1.0}
SHAPE_SLACK = 0.1  # polarity this far the wrong way is a flat complex, not another lead
SHAPE_SPAN = 0.5  # ... and this much further the evidence falls to FLOOR
SHAPE_PCT = 0.5  # the percentile of the lead's samples (each tail) taken as its complexes' extremes


def polarity(x: np.ndarray) -> float | None:
    """(up - down) / (up + down) of a lead's largest excursions about its median, in [-1, 1] (QRS
    complexes make them): > 0 where its complexes point up; None where fewer than a second is shown."""
    v = np.asarray(x, np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2 * SHAPE_PCT * 100 or v.size < 100:
        return None
    v = v - np.median(v)
    up, down = float(np.percentile(v, 100 - SHAPE_PCT)), -float(np.percentile(v, SHAPE_PCT))
    return (up - down) / (up + down) if up + down > 0 else None


def page_shape(signal: np.ndarray, fs: int) -> float:
    """How far the leads named aVR and V6 point the way a heart's do (SHAPE_SIGN), in [FLOOR, 1]: the
    worse of the two, 1 where both do or neither is shown for a second (no evidence). A page's evidence,
    not a lead's: a page read wrong all alike names every lead wrong, the anchors too."""
    sig = np.asarray(signal, np.float64)
    out = 1.0
    for lead, sign in SHAPE_SIGN.items():
        j = LEADS.index(lead)
        if j >= sig.shape[1] or np.isfinite(sig[:, j]).sum() < fs * MIN_OVERLAP_S:
            continue
        pol = polarity(sig[:, j])
        if pol is None:
            continue
        against = -sign * pol - SHAPE_SLACK
        out = min(out, float(np.clip(1.0 - max(0.0, against) / SHAPE_SPAN, FLOOR, 1.0)))
    return out
