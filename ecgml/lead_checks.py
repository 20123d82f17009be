"""Per-lead checks of an assembled record against the page's other leads: evidence for the confidence.

The layout and trace evidence (`ecgml.verdict`) says how sure the digitizer is of the page; it cannot
tell which one lead of a page went wrong. The other leads can: simultaneous leads show the same
heartbeats at the same moments (a lead from the wrong time window, a cell traced off its row, noise or
a neighbouring row's ink do not line up), and the six limb leads lie in the plane Einthoven's and
Goldberger's relations allow (a limb lead from the wrong cell does not). Both are computed from the
signals alone, so a benchmark can recompute them from saved records.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ecgml.records import LEADS, LIMB_FROM_I_II

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


def limb_fit(sig: np.ndarray, min_samples: int = 20) -> dict[str, float]:
    """Per limb lead: 1 minus the share of its power (about its mean) that its prediction from the other
    limb leads shown at the same samples misses (Einthoven/Goldberger: any two of the six give the rest),
    in [FLOOR, 1]; the worst over the groups of samples it is checked in. Leads shown with fewer than two
    other limb leads are not checked (absent from the result). Take it before any projection."""
    x = np.asarray(sig, dtype=np.float64)[:, :6]
    ok = np.isfinite(x)
    out: dict[str, float] = {}
    for pattern in {tuple(r) for r in ok[ok.sum(axis=1) >= 3]}:
        rows = np.all(ok == np.array(pattern), axis=1)
        if rows.sum() < min_samples:
            continue
        cols = np.flatnonzero(pattern)
        block = x[np.ix_(rows, cols)]
        block = block - block.mean(axis=0)
        for i, c in enumerate(cols):
            rest = [k for k in range(cols.size) if k != i]
            a = LIMB_FROM_I_II[cols[rest]]
            if np.linalg.matrix_rank(a) < 2:
                continue
            coef, *_ = np.linalg.lstsq(a, block[:, rest].T, rcond=None)
            pred = LIMB_FROM_I_II[c] @ coef
            power = float(np.sum(block[:, i] ** 2))
            miss = float(np.sum((block[:, i] - pred) ** 2)) / power if power > 0 else 0.0
            out[LEADS[c]] = min(out.get(LEADS[c], 1.0), float(np.clip(1.0 - miss, FLOOR, 1.0)))
    return out


END_MM = 5.0  # the stretch at each end of a cell whose reading says whether the cell's x span is right


def row_checks(traces: list[Any], cells: list[Any]) -> dict[str, dict[str, float]]:
    """Per lead, from its cells' traces (`CellTrace`) against the layout's cells (`Cell`), each in
    [FLOOR, 1] and the worst over the lead's cells:
    - `row_stay`: 1 minus the share of read columns nearer another row's baseline than its own (a trace
      running along a neighbouring row's ink; QRS peaks cross the half-way line only briefly);
    - `base_fit`: 1 minus the median offset of the trace from its baseline, as a share of half the row
      pitch (a trace of the wrong row, or a row the layout misplaced, sits off its baseline throughout);
    - `ends_read`: the share read of the END_MM at the cell's worse end (a cell whose x span the layout
      misplaced starts or ends in blank paper or in a neighbour's ink the tracer drops)."""
    where = {(c.row, c.col): c for c in cells}
    bases = sorted({round(float(c.baseline_mm), 1) for c in cells})
    out: dict[str, dict[str, float]] = {"row_stay": {}, "base_fit": {}, "ends_read": {}}
    for tr in traces:
        cell = where.get((tr.row, tr.col))
        y, x = np.asarray(tr.y_mm, np.float64), np.asarray(tr.x_mm, np.float64)
        if cell is None or y.size < 8:
            continue
        ok = np.isfinite(y)
        others = [abs(b - cell.baseline_mm) for b in bases if abs(b - cell.baseline_mm) > 1.0]
        half = 0.5 * min(others) if others else np.inf
        stay = base = 1.0
        if ok.sum() >= 8 and np.isfinite(half):
            off = y[ok] - cell.baseline_mm
            stay = 1.0 - float(np.mean(np.abs(off) > half))
            base = 1.0 - abs(float(np.median(off))) / half
        head, tail = x <= x[0] + END_MM, x >= x[-1] - END_MM
        ends = min(float(ok[head].mean()), float(ok[tail].mean()))
        for kind, v in (("row_stay", stay), ("base_fit", base), ("ends_read", ends)):
            v = float(np.clip(v, FLOOR, 1.0))
            out[kind][tr.lead] = min(out[kind].get(tr.lead, 1.0), v)
    return out
