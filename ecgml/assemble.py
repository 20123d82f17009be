"""Cell traces (paper mm) to a 12-lead Record (mV, seconds): the layout's calibration, not a model's.

A cell's trace is y(x) in paper mm. Its voltage is (baseline - y) / gain and its time is
t0 + (x - x0) / speed. Each cell is FFT-resampled (`records.resample_signal`) to 4x the output rate
and then read at the exact sample times k / fs, so the half-column offset of pixel centres does not
turn into a sub-sample time shift. Columns that could not be read (NaN) are interpolated and keep a
low confidence. The result is a 10 s record with NaN outside the plotted windows, as the
competition's per-ECG CSV, plus one confidence per lead.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ecgml.layout import PageLayout, lead_window
from ecgml.records import LEADS, LIMB_FROM_I_II, Record, resample_signal
from ecgml.trace.types import CellTrace

OVERSAMPLE = 4  # FFT to this multiple of fs, then linear interpolation at the exact sample times
DURATION_S = 10.0
GAP_CONFIDENCE = 0.1  # confidence given to interpolated columns
# Measured on a separate renderer set (BENCHMARKS.md, "Digitizer"): each helped a little, together
# +0.24 dB (II fusion +0.05, Einthoven +0.05, 100 Hz low-pass +0.17), so all three are on. The low-pass
# moved to 70 Hz on a validation-record tuning set (session 3: 100 -> 70 Hz +0.30 dB; 55 Hz +0.15, 45 -0.5).
FUSE_II = True
SMOOTH_HZ = 70.0  # 0 disables the low-pass
EINTHOVEN = True  # least-squares projection of the limb leads onto Einthoven's relations
# Fusion and projection only where the leads agree: a strip that is not the cell's lead, or a limb lead
# from the wrong cell, would spread its error into the others (REAL-PAGES.md, "Rhythm strip").
FUSE_MIN_CORR = 0.8  # the short cell and the strip of one lead correlate at least this well
EINTHOVEN_MAX_RESIDUAL = 0.15  # share of the limb leads' power off Einthoven's plane


@dataclass
class Assembly:
    """The assembled record (NaN outside plotted windows) and per-lead confidence in [0, 1]."""

    record: Record
    confidence: dict[str, float]
    sample_confidence: np.ndarray  # (n, 12), 0 outside plotted windows
    notes: list[str] = field(default_factory=list)
    agreement: dict[str, float] = field(default_factory=dict)  # < 1 where a lead's cells disagree
    limbs_off: dict[str, float] = field(default_factory=dict)  # limb leads off Einthoven's plane: share


def fill_gaps(y: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation over NaN (ends held flat); filled columns get GAP_CONFIDENCE at most."""
    y = np.asarray(y, dtype=np.float64).copy()
    conf = np.nan_to_num(np.asarray(conf, dtype=np.float64), nan=0.0).copy()
    bad = ~np.isfinite(y)
    if bad.all():
        return np.zeros_like(y), np.zeros_like(conf)
    if bad.any():
        idx = np.arange(y.size)
        y[bad] = np.interp(idx[bad], idx[~bad], y[~bad])
        conf[bad] = np.minimum(conf[bad], GAP_CONFIDENCE)
    return y, np.clip(conf, 0.0, 1.0)


def cell_to_samples(
    trace: CellTrace, layout: PageLayout, fs: int, t_start: float, t_end: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample indices k with t_start <= k/fs < t_end, and the trace's mV and confidence at k/fs."""
    cell = next(c for c in layout.cells if c.row == trace.row and c.col == trace.col)
    k0 = int(np.floor(t_start * fs + 1e-9))  # as the competition's int(c * fs * 2.5)
    k1 = int(np.ceil(t_end * fs - 1e-9))
    ks = np.arange(max(k0, 0), max(k1, 0))
    x = np.asarray(trace.x_mm, dtype=np.float64)
    if ks.size == 0 or x.size == 0:
        return ks, np.zeros(ks.size), np.zeros(ks.size)
    y, conf = fill_gaps(trace.y_mm, trace.confidence)
    mv = cell.sign * (cell.baseline_mm - y) / layout.cell_gain(cell)  # Cabrera's -aVR comes out as aVR
    t = cell.t0_s + (x - cell.x0_mm) / layout.speed_mm_s
    if x.size >= 4:
        # FFT over the columns to a dense grid, then read at exact times. The columns need not be evenly
        # spaced in time (a local x correction moves them): each dense sample's time is interpolated
        # between its columns' times.
        dt = (t[-1] - t[0]) / (x.size - 1)
        n_hi = max(int(round(x.size * dt * fs * OVERSAMPLE)), x.size)
        hi = resample_signal(mv, n_hi).astype(np.float64)
        cols = np.arange(x.size + 1, dtype=np.float64)
        t_cols = np.append(t, 2 * t[-1] - t[-2])  # the FFT's last dense samples lie past the last column
        t_hi = np.interp(np.arange(n_hi) * (x.size / n_hi), cols, t_cols)
        mv_at = np.interp(ks / fs, t_hi, hi)
    else:
        mv_at = np.interp(ks / fs, t, mv)
    conf_at = np.interp(ks / fs, t, conf)
    return ks, mv_at, conf_at


def _lowpass(x: np.ndarray, fs: int, hz: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    if hz <= 0 or hz >= fs / 2 or x.size < 30:
        return x
    sos = butter(2, hz, fs=fs, output="sos")
    return sosfiltfilt(sos, x)


def assemble(
    traces: list[CellTrace],
    layout: PageLayout,
    fs: int,
    name: str = "",
    fuse_ii: bool = FUSE_II,
    smooth_hz: float = SMOOTH_HZ,
    duration_s: float = DURATION_S,
    einthoven: bool = EINTHOVEN,
) -> Assembly:
    """A `duration_s` record at `fs`: each lead's longest cell fills its window, NaN elsewhere.

    With `fuse_ii`, a lead shown in several cells (lead II: short segment and rhythm strip) is the
    confidence-weighted mean where they overlap in time.
    """
    n = int(round(duration_s * fs))
    sig = np.full((n, len(LEADS)), np.nan, dtype=np.float64)
    wsum = np.zeros((n, len(LEADS)))
    confs = np.zeros((n, len(LEADS)))
    by_lead: dict[str, list[CellTrace]] = {}
    for tr in traces:
        by_lead.setdefault(tr.lead, []).append(tr)
    cells = {(c.row, c.col): c for c in layout.cells}
    notes: list[str] = []
    agreement: dict[str, float] = {}
    for lead, trs in by_lead.items():
        if lead not in LEADS:
            continue  # a 15-lead page's V4R, V8, V9: not in the 12-lead record
        j = LEADS.index(lead)
        trs = sorted(trs, key=lambda tr: -(cells[(tr.row, tr.col)].t1_s - cells[(tr.row, tr.col)].t0_s))
        for i, tr in enumerate(trs if fuse_ii else trs[:1]):
            c = cells[(tr.row, tr.col)]
            ks, mv, conf = cell_to_samples(tr, layout, fs, c.t0_s, min(c.t1_s, duration_s))
            if ks.size == 0:
                continue
            ks_ok = ks < n
            ks, mv, conf = ks[ks_ok], mv[ks_ok], conf[ks_ok]
            if i == 0:
                sig[ks, j] = mv
                wsum[ks, j] = conf + 1e-3
                confs[ks, j] = conf
            else:
                # Align the offset of the shorter cell to the longer one before averaging.
                have = np.isfinite(sig[ks, j])
                if have.any():
                    mv = mv - np.median(mv[have] - sig[ks[have], j])
                r = _agree(mv[have], sig[ks[have], j])
                if r < FUSE_MIN_CORR:
                    notes.append(f"lead {lead}: its cells disagree (r = {r:.2f}); not fused")
                    agreement[lead] = min(agreement.get(lead, 1.0), float(np.clip(r, 0.2, 0.6)))
                    continue
                w = conf + 1e-3
                prev = np.where(np.isfinite(sig[ks, j]), sig[ks, j], 0.0)
                sig[ks, j] = (prev * wsum[ks, j] + mv * w) / (wsum[ks, j] + w)
                wsum[ks, j] += w
                confs[ks, j] = np.maximum(confs[ks, j], conf)
    off: dict[str, float] = {}
    if einthoven:
        off = _einthoven(sig)
        if off:
            notes.append(f"limb leads {sorted(off)} disagree with Einthoven's relations: not projected")
        for lead, frac in off.items():
            agreement[lead] = min(agreement.get(lead, 1.0), float(np.clip(1.0 - 2 * frac, 0.3, 1.0)))
    if smooth_hz > 0:
        for j in range(len(LEADS)):
            ok = np.isfinite(sig[:, j])
            if ok.any():
                idx = np.flatnonzero(ok)
                seg = slice(idx[0], idx[-1] + 1)
                sig[seg, j] = _lowpass(sig[seg, j], fs, smooth_hz)
    if _standard_windows(layout, duration_s):
        # The competition's windows differ from the cells' by a sample at some fs: follow them exactly.
        for j, lead in enumerate(LEADS):
            start, n_win = lead_window(lead, fs)
            keep = np.zeros(n, bool)
            keep[start : start + n_win] = True
            sig[~keep, j] = np.nan
            confs[~keep, j] = 0.0
    missing = [lead for lead in LEADS if lead not in by_lead]
    if missing:
        notes.append(f"no cell for lead(s) {missing}")
    confidence = {}
    for j, lead in enumerate(LEADS):
        ok = np.isfinite(sig[:, j])
        confidence[lead] = float(confs[ok, j].mean()) if ok.any() else 0.0
    rec = Record(sig.astype(np.float32), fs, name, {"layout": layout.name})
    return Assembly(rec, confidence, confs.astype(np.float32), _dedupe(notes), agreement, off)


def assemble_repaired(
    traces: list[CellTrace], plain: list[CellTrace], layout: PageLayout, fs: int, name: str, why: str
) -> Assembly:
    """`assemble(traces)` where `plain` is the page read before a repair (`why`): the doubts of that
    reading are kept (`keep_doubts`), and where its limb leads were off Einthoven's plane they are not
    projected after the repair either. A repair that sets one wrong limb row right lets the six agree,
    and the projection then spreads the repaired row's coarser read over the five that were read well
    (test 12x1_007: III -0.5 -> 16.5 dB, but I 24.3 -> 21.3, II 26.4 -> 16.3 through the projection)."""
    asm = assemble(traces, layout, fs, name=name)
    before = assemble(plain, layout, fs, name=name)
    if before.limbs_off and not asm.limbs_off:
        flat = assemble(traces, layout, fs, name=name, einthoven=False)
        note = f"limb leads off Einthoven's plane before {why}: not projected"
        asm = replace(flat, agreement=asm.agreement, limbs_off=asm.limbs_off, notes=[*asm.notes, note])
    return keep_doubts(asm, before, why)


def keep_doubts(asm: Assembly, before: Assembly, why: str) -> Assembly:
    """`asm` with the doubts of `before` (another reading of the same page, `why`) kept: each lead's
    agreement at most its agreement there, and its limb leads off Einthoven's plane where they were
    there; a reading that changed a page must not make it look surer than it was."""
    agreement = dict(asm.agreement)
    for lead, ag in before.agreement.items():
        agreement[lead] = min(agreement.get(lead, 1.0), ag)
    off = dict(asm.limbs_off)
    for lead, frac in before.limbs_off.items():
        off[lead] = max(off.get(lead, 0.0), frac)
    notes = list(asm.notes)
    held = sorted(k for k in agreement if agreement[k] < asm.agreement.get(k, 1.0))
    held_off = sorted(k for k in off if off[k] > asm.limbs_off.get(k, 0.0))
    if held or held_off:
        notes.append(
            f"doubts of the reading before {why} kept: agreement {held}, off Einthoven's plane {held_off}"
        )
    return replace(asm, agreement=agreement, limbs_off=off, notes=notes)


def _dedupe(notes: list[str]) -> list[str]:
    return list(dict.fromkeys(notes))


def _agree(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two readings of one lead (1 when there is too little overlap to tell)."""
    if a.size < 20:
        return 1.0
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt(np.sum(a * a) * np.sum(b * b)))
    return float(np.sum(a * b) / den) if den > 1e-12 else 1.0


def _einthoven(sig: np.ndarray) -> dict[str, float]:
    """Where three or more limb leads are shown at the same sample, replace them by their
    least-squares fit in the 2-D space Einthoven's and Goldberger's relations allow (in place).

    Groups whose leads lie further off that plane than EINTHOVEN_MAX_RESIDUAL (a share of their power)
    are left alone: some lead there is not what its cell claims. Returns those leads and the share.

    Each group of samples showing the same leads is first centred on its per-lead mean (linear, so
    consistent leads stay consistent): the metric removes every lead's offset separately and page
    baselines need not agree, so only the shape is projected.
    """
    x = sig[:, :6].astype(np.float64)
    ok = np.isfinite(x)
    off: dict[str, float] = {}
    for pattern in {tuple(r) for r in ok[ok.sum(axis=1) >= 3]}:
        rows = np.all(ok == np.array(pattern), axis=1)
        cols = np.flatnonzero(pattern)
        a = LIMB_FROM_I_II[cols]
        block = x[np.ix_(rows, cols)]
        mean = block.mean(axis=0)
        coef, *_ = np.linalg.lstsq(a, (block - mean).T, rcond=None)
        fit = (a @ coef).T + mean
        power = float(np.sum((block - mean) ** 2))
        frac = float(np.sum((block - fit) ** 2)) / power if power > 0 else 0.0
        if rows.sum() >= 20 and frac > EINTHOVEN_MAX_RESIDUAL:
            for c in cols:
                off[LEADS[c]] = max(off.get(LEADS[c], 0.0), frac)
            continue
        x[np.ix_(rows, cols)] = fit
    sig[:, :6] = np.where(ok, x, np.nan)
    return off


def _standard_windows(layout: PageLayout, duration_s: float) -> bool:
    """Whether the layout shows exactly the competition windows (3x4 grids at 2.5 s per column)."""
    if duration_s != DURATION_S or not layout.name.startswith("3x4"):
        return False
    return all(
        abs((c.t1_s - c.t0_s) - (10.0 if c.col == 0 and c.lead == "II" and c.row >= 3 else 2.5)) < 1e-6
        for c in layout.cells
    )


def competition_segments(record: Record, n_rows: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Each lead's competition window (`layout.lead_window`), finite everywhere.

    Samples the page did not show are filled from the nearest shown sample of the same lead, and a
    lead with nothing shown is zero (the metric's neutral guess), so no NaN leaves the program.
    `n_rows` overrides the window length per lead (test.csv's number_of_rows).
    """
    out: dict[str, np.ndarray] = {}
    for j, lead in enumerate(LEADS):
        start, n = lead_window(lead, record.fs)
        if n_rows and lead in n_rows:
            n = int(n_rows[lead])
        col = record.signal[:, j].astype(np.float64)
        seg = np.full(n, np.nan)
        avail = col[start : start + n]
        seg[: avail.size] = avail
        ok = np.isfinite(seg)
        if not ok.any():
            shown = np.flatnonzero(np.isfinite(col))
            if shown.size:
                # Nothing in the window: use the lead's nearest shown samples' mean level.
                seg[:] = float(np.nanmean(col))
            else:
                seg[:] = 0.0
        elif not ok.all():
            idx = np.arange(n)
            seg[~ok] = np.interp(idx[~ok], idx[ok], seg[ok])
        out[lead] = seg.astype(np.float32)
    return out


def fallback_segments(fs: int, n_rows: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Finite values for an ECG that could not be digitized at all: zeros (scores as a flat line)."""
    out = {}
    for lead in LEADS:
        n = int(n_rows[lead]) if n_rows and lead in n_rows else lead_window(lead, fs)[1]
        out[lead] = np.zeros(n, dtype=np.float32)
    return out


def einthoven_fill(signal: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Limb-lead samples the page did not show, estimated from two or more limb leads shown at the same
    sample (Einthoven's and Goldberger's relations); returns the filled copy and samples filled per lead.

    For `ecgml submit` only, where every window needs finite values: a lead estimated this way is not
    a reading of the page.
    """
    sig = np.array(signal, dtype=np.float64, copy=True)
    x = sig[:, :6]
    ok = np.isfinite(x)
    filled: dict[str, int] = {}
    need = (ok.sum(axis=1) >= 2) & (~ok).any(axis=1)
    for pattern in {tuple(r) for r in ok[need]}:
        rows = need & np.all(ok == np.array(pattern), axis=1)
        have = np.flatnonzero(pattern)
        a = LIMB_FROM_I_II[have]
        if np.linalg.matrix_rank(a) < 2:
            continue  # e.g. only one independent direction shown
        coef, *_ = np.linalg.lstsq(a, x[np.ix_(rows, have)].T, rcond=None)
        est = (LIMB_FROM_I_II @ coef).T
        for j in np.flatnonzero(~np.array(pattern)):
            x[rows, j] = est[:, j]
            filled[LEADS[j]] = filled.get(LEADS[j], 0) + int(rows.sum())
    sig[:, :6] = x
    return sig, filled
