"""Assembly math: cell traces in paper mm come back as the right mV at the right times."""

from __future__ import annotations

import numpy as np

from ecgml.assemble import assemble, competition_segments, fallback_segments, fill_gaps
from ecgml.layout import lead_window, make_layout
from ecgml.records import LEADS
from ecgml.trace.types import CellTrace


def _sine(t: np.ndarray, lead_index: int) -> np.ndarray:
    """Sines that obey Einthoven's and Goldberger's relations (limb leads from I and II), and slow
    enough that the 100 Hz smoothing leaves them alone."""
    i = 0.8 * np.sin(2 * np.pi * 1.3 * t)
    ii = 0.6 * np.sin(2 * np.pi * 1.1 * t + 0.7) + 0.1
    limb = [i, ii, ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2]
    if lead_index < 6:
        return limb[lead_index]
    return 0.8 * np.sin(2 * np.pi * 1.3 * t + 0.4 * lead_index) + 0.1 * lead_index / 12


def _traces(ppx: float = 16.0, gap: tuple[float, float] | None = None) -> list[CellTrace]:
    """Every cell of the 0001 layout drawn from a known sine per lead, sampled at column centres."""
    lay = make_layout()
    out = []
    for c in lay.cells:
        c0, c1 = int(np.ceil(c.x0_mm * ppx - 0.5)), int(np.ceil(c.x1_mm * ppx - 0.5))
        x = (np.arange(c0, c1) + 0.5) / ppx
        t = c.t0_s + (x - c.x0_mm) / lay.speed_mm_s
        y = c.baseline_mm - _sine(t, LEADS.index(c.lead)) * lay.gain_mm_mv
        conf = np.ones(x.size)
        if gap is not None:
            sel = (t >= gap[0]) & (t < gap[1])
            y[sel] = np.nan
            conf[sel] = 0.0
        out.append(CellTrace(c.lead, c.row, c.col, x, y, conf))
    return out


def test_sine_comes_back_in_mv_at_the_right_times():
    lay = make_layout()
    for fs in (250, 500, 1025):
        asm = assemble(_traces(), lay, fs)
        rec = asm.record
        assert rec.n_samples == 10 * fs and rec.fs == fs
        for j, lead in enumerate(LEADS):
            start, n = lead_window(lead, fs)
            got = rec.signal[start : start + n, j]
            assert np.all(np.isfinite(got)), lead
            want = _sine(np.arange(start, start + n) / fs, j)
            assert np.max(np.abs(got - want)) < 0.015, (fs, lead)
            # NaN outside the plotted window, as the competition CSV.
            outside = np.ones(rec.n_samples, bool)
            outside[start : start + n] = False
            assert np.all(np.isnan(rec.signal[outside, j])), lead
        assert min(asm.confidence.values()) > 0.99


def test_a_time_shift_would_be_caught():
    """Guard the check above: a sine read three samples late must fail the same tolerance."""
    fs = 500
    asm = assemble(_traces(), make_layout(), fs)
    got = asm.record.signal[: fs * 10, LEADS.index("II")]
    want_late = _sine((np.arange(fs * 10) - 3) / fs, LEADS.index("II"))
    assert np.max(np.abs(got - want_late)) > 0.015


def test_gaps_are_interpolated_and_flagged():
    fs = 500
    asm = assemble(_traces(gap=(1.0, 1.1)), make_layout(), fs)
    j = LEADS.index("I")
    sl = slice(int(1.02 * fs), int(1.08 * fs))
    assert np.all(np.isfinite(asm.record.signal[sl, j]))
    assert np.all(asm.sample_confidence[sl, j] <= 0.1)
    assert asm.sample_confidence[int(0.5 * fs), j] > 0.9
    assert asm.confidence["I"] < asm.confidence["aVR"]


def test_fill_gaps_all_nan_is_zero_with_zero_confidence():
    y, c = fill_gaps(np.full(5, np.nan), np.ones(5))
    assert np.all(y == 0) and np.all(c == 0)


def test_competition_segments_are_finite_with_the_requested_lengths():
    fs = 500
    traces = [t for t in _traces() if t.lead != "V3"]  # a lead the page did not show
    asm = assemble(traces, make_layout(), fs)
    n_rows = {lead: lead_window(lead, fs)[1] for lead in LEADS}
    segs = competition_segments(asm.record, n_rows)
    for lead in LEADS:
        assert segs[lead].shape == (n_rows[lead],) and np.all(np.isfinite(segs[lead]))
    assert np.all(segs["V3"] == 0)
    zeros = fallback_segments(fs, n_rows)
    assert all(zeros[lead].shape == (n_rows[lead],) for lead in LEADS)


def test_ii_fusion_keeps_the_rhythm_strip_when_segments_agree():
    fs = 500
    lay = make_layout()
    plain = assemble(_traces(), lay, fs).record
    fused = assemble(_traces(), lay, fs, fuse_ii=True).record
    j = LEADS.index("II")
    assert np.max(np.abs(plain.signal[:, j] - fused.signal[:, j])) < 0.01


def test_einthoven_pulls_a_disturbed_limb_lead_back():
    fs = 500
    lay = make_layout()
    traces = _traces()
    rng = np.random.default_rng(0)
    for tr in traces:
        if tr.lead == "III":
            tr.y_mm = tr.y_mm + rng.normal(0, 1.0, tr.y_mm.size)  # 0.1 mV noise on III only
    j = LEADS.index("III")
    start, n = lead_window("III", fs)
    want = _sine(np.arange(start, start + n) / fs, j)
    err = {}
    for on in (False, True):
        got = assemble(traces, lay, fs, einthoven=on, smooth_hz=0.0).record.signal[start : start + n, j]
        err[on] = float(np.sqrt(np.mean((got - want) ** 2)))
    assert err[True] < 0.75 * err[False]


def test_unevenly_spaced_columns_keep_their_own_times():
    """A trace whose columns were moved (a local x correction) is read at each column's own time, not as if
    the columns were evenly spaced between the first and the last."""
    lay = make_layout()
    fs = 500
    warped = []
    for tr in _traces():
        cell = next(c for c in lay.cells if (c.row, c.col) == (tr.row, tr.col))
        # the same drawn samples, each now said to lie up to 0.3 mm further right (a smooth bend)
        u = (tr.x_mm - cell.x0_mm) / (cell.x1_mm - cell.x0_mm)
        x = tr.x_mm + 0.3 * np.sin(np.pi * u) ** 2
        t = cell.t0_s + (x - cell.x0_mm) / lay.speed_mm_s
        y = cell.baseline_mm - _sine(t, LEADS.index(tr.lead)) * lay.gain_mm_mv  # drawn where it now is
        warped.append(CellTrace(tr.lead, tr.row, tr.col, x, y, tr.confidence))
    rec = assemble(warped, lay, fs).record
    for j, lead in enumerate(LEADS):
        start, n = lead_window(lead, fs)
        got = rec.signal[start + 10 : start + n - 10, j]  # the bend leaves the first 0.3 mm unread
        want = _sine(np.arange(start + 10, start + n - 10) / fs, j)
        assert np.max(np.abs(got - want)) < 0.015, lead


def test_limb_leads_off_the_plane_before_a_repair_are_not_projected_after_it():
    """Before the repair lead III was another row's trace (the six limb leads off Einthoven's plane); the
    repaired III is right but coarse. The five well-read limb leads keep their own reads (no projection
    spreads III's noise over them) and the page keeps the doubt it had."""
    from ecgml.assemble import assemble_repaired

    fs = 500
    lay = make_layout()
    rng = np.random.default_rng(0)
    after = _traces()
    for tr in after:
        if tr.lead == "III":
            tr.y_mm = tr.y_mm + rng.normal(0, 1.0, tr.y_mm.size)  # right but coarse
    wrong = [CellTrace(t.lead, t.row, t.col, t.x_mm, t.y_mm.copy(), t.confidence) for t in after]
    for tr in wrong:
        if tr.lead == "III":
            tr.y_mm = tr.y_mm[::-1].copy()  # another trace entirely
    plain = assemble(after, lay, fs)
    assert not plain.limbs_off  # alone, the repaired page's limb leads agree and are projected
    got = assemble_repaired(after, wrong, lay, fs, "p", "the repair")
    assert got.limbs_off and min(got.agreement.values()) < 1.0  # the doubt of the wrong reading stays
    unprojected = assemble(after, lay, fs, einthoven=False).record.signal
    np.testing.assert_allclose(got.record.signal, unprojected, equal_nan=True)
    assert not np.allclose(plain.record.signal, unprojected, equal_nan=True)
