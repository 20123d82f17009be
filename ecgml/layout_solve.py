"""What the traced cells themselves say about the layout: which lead a rhythm strip carries, and which
seconds the right column of a 6x2 page shows.

Every lead of a page is recorded at once, so the beats fall at the same record times in every cell.
A rhythm strip shows one lead for the whole record: over each grid cell's seconds it matches the cell
of its own lead sample by sample, and no other as well (II, V1 and V5 strips all exist; the strip is
not always II). The right column of a 6x2 page shows either the same 0-5 s as the left column
(simultaneous, ECG-Image-Kit) or the next 5 s (sequential, many carts): its beats line up with the strip
(or with the left column) at one of the two offsets. Without a strip, beats that line up with the
left column are consistent with the simultaneous reading; beats that clearly do not, refute it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ecgml.assemble import fill_gaps
from ecgml.layout import Cell, PageLayout
from ecgml.layout_family import choose_family
from ecgml.trace.types import CellTrace

DT_S = 0.01  # common time grid of the comparisons (100 Hz)
STRIP_MIN_CORR = 0.6  # a strip matches its own lead's cell at least this well (else: unknown lead)
# ... and its distance to that cell, sqrt(2 (1 - r)) (the rms of the normalised difference), is this
# many times smaller than to the next lead's (neighbouring leads such as II and aVF correlate at 0.9)
STRIP_MIN_RATIO = 2.0
PAGE_DOUBT = 0.6  # layout factor of every lead when a rhythm strip matches no cell of the grid
# a strip that matches its template lead's cell best, this well, leaves the layout in no doubt even when a
# neighbouring lead matches nearly as well (validation page 3x4+3R_000: V5 0.99, V4/V6 0.97); a strip of
# a page read in the wrong layout matches its template lead's cell at chance
STRIP_OWN_CORR = 0.9
BEATS_MIN_CORR = 0.35  # beat envelopes that line up
BEATS_MARGIN = 0.15
# simultaneous columns share their beats about as well as the rows of one column do: a right column whose
# beats line up with the left's less than half as well as the left column's own rows line up with each
# other shows other seconds (validation, no strip: simultaneous pages 0.86-1.06 of their left column's
# line-up, sequential ones 0.32 at most; 6x2-seq_006 and _008 at r = 0.26 and 0.31 were "assumed"
# simultaneous under the absolute bound alone, six leads wrong each)
SHARED_SHARE = 0.5


@dataclass
class Solved:
    """The layout after the cells were read, the traces relabelled to it, and the evidence per lead."""

    layout: PageLayout
    traces: list[CellTrace]
    lead_factor: dict[str, float] = field(default_factory=dict)  # layout evidence per lead, in [0, 1]
    evidence: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def rhythm_rows(layout: PageLayout) -> list[int]:
    """Rows holding a single cell under a grid of several columns (rhythm strips)."""
    per_row: dict[int, int] = {}
    for c in layout.cells:
        per_row[c.row] = per_row.get(c.row, 0) + 1
    most = max(per_row.values()) if per_row else 0
    return sorted(r for r, n in per_row.items() if n == 1 and most > 1)


def series(trace: CellTrace, cell: Cell, layout: PageLayout) -> tuple[np.ndarray, np.ndarray]:
    """(times on the DT_S grid, mV) of one traced cell; NaN where the trace was not read."""
    x = np.asarray(trace.x_mm, np.float64)
    if x.size < 4:
        return np.zeros(0), np.zeros(0)
    y, _ = fill_gaps(trace.y_mm, trace.confidence)
    ok = np.isfinite(np.asarray(trace.y_mm, np.float64))
    t = cell.t0_s + (x - cell.x0_mm) / layout.speed_mm_s
    grid = np.arange(np.ceil(t[0] / DT_S), np.floor(t[-1] / DT_S) + 1) * DT_S
    mv = np.interp(grid, t, cell.sign * (cell.baseline_mm - y) / layout.cell_gain(cell))
    read = np.interp(grid, t, ok.astype(float)) > 0.5
    return grid, np.where(read, mv, np.nan)


def _finite_mean(st: np.ndarray) -> np.ndarray:
    """Per column of stacked envelopes, the mean of the finite ones (NaN where none is; no warning)."""
    n = np.isfinite(st).sum(axis=0)
    return np.where(n > 0, np.nansum(st, axis=0) / np.maximum(n, 1), np.nan)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 50:
        return float("nan")
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = float(np.sqrt(np.sum(a * a) * np.sum(b * b)))
    return float(np.sum(a * b) / den) if den > 0 else float("nan")


def _detrend(v: np.ndarray) -> np.ndarray:
    """The trace minus a 0.6 s running median (baseline wander would correlate anything)."""
    from scipy.ndimage import median_filter

    ok = np.isfinite(v)
    if ok.sum() < 10:
        return v
    filled = np.interp(np.arange(v.size), np.flatnonzero(ok), v[ok])
    out = filled - median_filter(filled, size=int(0.6 / DT_S) | 1, mode="nearest")
    return np.where(ok, out, np.nan)


def _envelope(v: np.ndarray) -> np.ndarray:
    """Beat activity: |slope| smoothed over 40 ms (QRS complexes stand out in every lead)."""
    from scipy.ndimage import uniform_filter1d

    if v.size < 2:  # a cell cut to one sample at the page's edge (test 6x2-seq_001): no slope to take
        return np.full(v.shape, np.nan)
    d = np.abs(np.gradient(np.nan_to_num(v)))
    d[~np.isfinite(v)] = np.nan
    filled = np.nan_to_num(d)
    return np.where(np.isfinite(d), uniform_filter1d(filled, 5), np.nan)


def _on_grid(t: np.ndarray, v: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """Values at the DT_S grid points of [t0, t1); NaN where `t` does not cover them."""
    grid = np.arange(int(round(t0 / DT_S)), int(round(t1 / DT_S)))
    out = np.full(grid.size, np.nan)
    if t.size == 0:
        return out
    idx = np.round(t / DT_S).astype(int)
    pos = np.searchsorted(grid, idx)
    ok = (pos < grid.size) & (pos >= 0)
    ok[ok] &= grid[pos[ok]] == idx[ok]
    out[pos[ok]] = v[ok]
    return out


def solve(
    traces: list[CellTrace],
    layout: PageLayout,
    retrace: Callable[[PageLayout], list[CellTrace]] | None = None,
    ticks: Callable[[float, float], float] | None = None,
    names: Callable[[list[PageLayout]], list[dict[tuple[int, int], tuple[str, float]]]] | None = None,
) -> Solved:
    """The page's layout family (`layout_family.choose_family`), then rhythm strips relabelled by what
    they match and the 6x2 time convention fixed; evidence per lead.

    `retrace(layout)` traces the page again when the chosen family cuts the rows elsewhere than
    `layout` did; without it, geometry's template is kept (and the family evidence still recorded).
    `ticks(x_mm, baseline_mm)`: how strongly a separator tick stands there (`layout_family.tick_strength`);
    `names(layouts)`: the printed names beside each candidate's cells (`page_reader.names_beside`)."""
    fam = choose_family(traces, layout, ticks, names)
    if fam.layout is not layout:
        if fam.same_cuts(layout):
            lead_at = {(c.row, c.col): c.lead for c in fam.layout.cells}
            traces = [replace(t, lead=lead_at[(t.row, t.col)]) for t in traces]
            layout = fam.layout
        elif retrace is not None:
            traces = retrace(fam.layout)
            layout = fam.layout
        else:
            fam.notes.append(f"kept {layout.name}: no tracer given to read the page as {fam.layout.name}")
            fam.lead_factor = fam.margin_factor = {c.lead: 0.35 for c in layout.cells}
    cells = {(c.row, c.col): c for c in layout.cells}
    ser = {(tr.row, tr.col): series(tr, cells[(tr.row, tr.col)], layout) for tr in traces}
    out = Solved(layout, list(traces), evidence={"family": fam.evidence}, notes=list(fam.notes))
    out.lead_factor.update({f"family:{lead}": f for lead, f in fam.margin_factor.items()})
    if fam.limb_factor < 1.0:
        out.lead_factor["limb"] = fam.limb_factor
    strips = rhythm_rows(layout)
    if two_columns(layout, strips):
        _six_by_two(out, ser, strips)
        cells = {(c.row, c.col): c for c in out.layout.cells}
        ser = {(tr.row, tr.col): series(tr, cells[(tr.row, tr.col)], out.layout) for tr in out.traces}
    for r in strips:
        _strip_lead(out, ser, r)
    _beat_timing(out, ser, strips)
    return out


def two_columns(layout: PageLayout, strips: list[int]) -> bool:
    """A 6x2 page (standard or Cabrera, with or without strips): every grid row has two cells."""
    per_row: dict[int, int] = {}
    for c in layout.cells:
        if c.row not in strips:
            per_row[c.row] = per_row.get(c.row, 0) + 1
    return bool(per_row) and set(per_row.values()) == {2}


TIMING_LAG_S = 0.04  # beats may differ this much between leads (onset differs by lead)


def _beat_timing(
    out: Solved, ser: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]], strips: list[int]
) -> None:
    """Each grid cell's beats against the reference at its own seconds (the rhythm strip, else the mean
    of the other cells showing the same seconds): a cell whose beats fall elsewhere is in the wrong time
    window or not a trace at all. Sets `timing{row},{col}` factors in [0.3, 1] and their evidence."""
    lay = out.layout
    ref_t = ref_v = None
    if strips:
        st = next(c for c in lay.cells if c.row == strips[0])
        if (st.row, st.col) in ser:
            ref_t, ref_v = ser[(st.row, st.col)]
    env = {k: (t, _envelope(v)) for k, (t, v) in ser.items()}
    lags = range(-int(TIMING_LAG_S / DT_S), int(TIMING_LAG_S / DT_S) + 1)
    checks: dict[str, float] = {}
    for c in lay.cells:
        if c.row in strips or (c.row, c.col) not in env:
            continue
        t, e = env[(c.row, c.col)]
        mine = _on_grid(t, e, c.t0_s, c.t1_s)
        if ref_t is not None and ref_v is not None:
            ref = _on_grid(ref_t, _envelope(ref_v), c.t0_s - TIMING_LAG_S, c.t1_s + TIMING_LAG_S)
        else:
            same = [
                _on_grid(*env[(o.row, o.col)], c.t0_s - TIMING_LAG_S, c.t1_s + TIMING_LAG_S)
                for o in lay.cells
                if (o.row, o.col) in env and o.row not in strips and o.row != c.row
                and abs(o.t0_s - c.t0_s) < 1e-6 and abs(o.t1_s - c.t1_s) < 1e-6
            ]  # fmt: skip
            if not same:
                continue
            ref = _finite_mean(np.stack(same))
        pad = len(lags) // 2
        r = max(
            (
                _corr(mine, ref[pad + g : pad + g + mine.size])
                for g in lags
                if ref[pad + g :].size >= mine.size
            ),
            default=float("nan"),
        )
        if not np.isfinite(r):
            continue
        checks[f"{c.lead}@{c.row},{c.col}"] = round(r, 3)
        out.lead_factor[f"timing{c.row},{c.col}"] = float(np.clip((r - 0.1) / 0.4, 0.3, 1.0))
    if checks:
        out.evidence["beat_timing"] = checks
        late = [k for k, r in checks.items() if r < 0.3]
        if late:
            out.notes.append(
                f"beats do not line up with the page's other leads in {late}: time window doubtful"
            )


def _strip_lead(out: Solved, ser: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]], row: int) -> None:
    """Which lead the strip in `row` carries: the grid lead its trace matches best over that lead's cell."""
    lay = out.layout
    strip = next(c for c in lay.cells if c.row == row)
    if (row, strip.col) not in ser:
        return
    ts, vs = ser[(row, strip.col)]
    vs = _detrend(vs)
    strip_rows = set(rhythm_rows(lay))
    scores: dict[str, float] = {}
    for c in lay.cells:
        if c.row in strip_rows or (c.row, c.col) not in ser:
            continue
        tc, vc = ser[(c.row, c.col)]
        a = _on_grid(ts, vs, c.t0_s, c.t1_s)
        b = _on_grid(tc, _detrend(vc), c.t0_s, c.t1_s)
        r = _corr(a, b)
        if np.isfinite(r):
            scores[c.lead] = max(scores.get(c.lead, -1.0), r)
    if not scores:
        out.lead_factor[f"strip{row}"] = 0.5
        return
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    best, r1 = ranked[0]
    r2 = ranked[1][1] if len(ranked) > 1 else -1.0
    out.evidence[f"strip_row{row}"] = {"lead": best, "corr": round(r1, 3), "next": round(r2, 3),
                                       "printed_as": strip.lead,
                                       "by_lead": {k: round(v, 3) for k, v in ranked}}  # fmt: skip
    d1, d2 = np.sqrt(2 * max(1 - r1, 1e-6)), np.sqrt(2 * max(1 - r2, 1e-6))
    ratio = float(d2 / d1)
    out.evidence[f"strip_row{row}"]["distance_ratio"] = round(ratio, 2)
    sure = r1 >= STRIP_MIN_CORR and ratio >= STRIP_MIN_RATIO
    factor = float(np.clip((r1 - 0.3) / 0.5, 0, 1) * np.clip((ratio - 1.2) / 1.8, 0, 1))
    if sure and best != strip.lead:
        out.notes.append(f"rhythm strip (row {row + 1}) matches lead {best} (r = {r1:.2f}), not {strip.lead}")
        _relabel(out, row, strip.col, best)
    elif not sure and best == strip.lead and r1 >= STRIP_OWN_CORR:
        # the strip is the template's lead, only a neighbouring lead (V4 beside V5) matches nearly as
        # well: its identity is not sure, the layout is not in doubt
        out.notes.append(
            f"rhythm strip (row {row + 1}): matches its template lead {best} (r = {r1:.2f}), the next "
            f"nearly as well ({r2:.2f})"
        )
    elif not sure:
        # kept as the template says: a strip that matches no cell clearly means the layout itself is
        # in doubt (a 6x2 page read as 3x4+3R has three such "strips"), so every lead is
        out.notes.append(
            f"rhythm strip (row {row + 1}): lead not certain ({best} r = {r1:.2f}, next {r2:.2f}); "
            f"kept as {strip.lead}; the layout is in doubt"
        )
        out.lead_factor["page"] = min(out.lead_factor.get("page", 1.0), PAGE_DOUBT)
    out.lead_factor[f"strip{row}"] = factor if sure else min(factor, 0.4)


def _relabel(out: Solved, row: int, col: int, lead: str) -> None:
    lay = out.layout
    cells = [replace(c, lead=lead) if (c.row, c.col) == (row, col) else c for c in lay.cells]
    out.layout = replace(lay, cells=cells)
    out.traces = [replace(t, lead=lead) if (t.row, t.col) == (row, col) else t for t in out.traces]


def _six_by_two(
    out: Solved, ser: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]], strips: list[int]
) -> None:
    """Decide simultaneous (both columns 0-5 s) vs sequential (right column 5-10 s) from the beats (a
    shorter row's columns hold fewer seconds each: `geometry.gaps.short_rows`)."""
    lay = out.layout
    grid = [c for c in lay.cells if c.row not in strips]
    left = [c for c in grid if c.col == 0]
    right = [c for c in grid if c.col == 1]
    if not left or not right:
        return
    half = left[0].t1_s - left[0].t0_s

    def mean_env(cs: list[Cell], shift: float) -> np.ndarray:
        envs = []
        for c in cs:
            t, v = ser.get((c.row, c.col), (np.zeros(0), np.zeros(0)))
            local = t - c.t0_s + shift  # the cell's own seconds, then moved
            envs.append(_on_grid(local, _envelope(v), 0.0, 2 * half))
        if not envs:
            return np.zeros(0)
        return _finite_mean(np.stack(envs))

    ref = mean_env(left, 0.0)
    own = _column_line_up(left, ser, half)
    if strips:
        st = next(c for c in lay.cells if c.row == strips[0])
        t, v = ser.get((st.row, st.col), (np.zeros(0), np.zeros(0)))
        ref = _on_grid(t - st.t0_s, _envelope(v), 0.0, 2 * half)
    r_sim = _corr(ref, mean_env(right, 0.0))
    r_seq = _corr(ref, mean_env(right, half)) if strips else float("nan")
    ev: dict[str, Any] = {"corr_simultaneous": round(r_sim, 3), "corr_sequential": round(r_seq, 3)}
    ev["left_line_up"] = round(own, 3)
    if strips and np.isfinite(r_seq) and np.isfinite(r_sim):
        sequential = r_seq > r_sim
        margin = abs(r_seq - r_sim)
        ev["decided_by"] = "rhythm strip"
        factor = float(np.clip(margin / BEATS_MARGIN, 0, 1))
    elif np.isfinite(r_sim) and r_sim < BEATS_MIN_CORR - BEATS_MARGIN:
        # simultaneous columns share their beats; these do not, so the right column shows later seconds
        sequential, factor = True, 0.85
        ev["decided_by"] = "beats of the two columns do not line up"
    elif np.isfinite(r_sim) and own >= BEATS_MIN_CORR + BEATS_MARGIN and r_sim < SHARED_SHARE * own:
        # the left column's rows line up with each other (the traces show their beats), the right
        # column's beats far less: they are not the same seconds
        sequential, factor = True, 0.85
        ev["decided_by"] = "beats of the two columns line up far less than those of the left column's rows"
    elif np.isfinite(r_sim) and r_sim >= BEATS_MIN_CORR + BEATS_MARGIN:
        # consistent with simultaneous, but a regular rhythm can line up by chance 5 s later
        sequential, factor = False, 0.6
        ev["decided_by"] = "beats of the two columns line up (assumed simultaneous; no strip to confirm)"
    else:
        sequential, factor = False, 0.45
        ev["decided_by"] = "assumed (nothing on the page decides)"
    ev["convention"] = "sequential" if sequential else "simultaneous"
    out.evidence["six_by_two"] = ev
    out.lead_factor["right_column"] = factor
    t_right = half if sequential else 0.0
    cells = [
        replace(c, t0_s=t_right, t1_s=t_right + half) if (c.row not in strips and c.col == 1) else c
        for c in lay.cells
    ]
    out.layout = replace(lay, cells=cells, columns="sequential" if sequential else "simultaneous")
    out.notes.append(
        f"6x2: right column read as {t_right:.3g}-{t_right + half:.3g} s "
        f"({'sequential' if sequential else 'simultaneous'}), "
        f"{ev['decided_by']}"
    )


def _column_line_up(
    cells: list[Cell], ser: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]], half: float
) -> float:
    """How well the beats of one column's rows line up with each other: the median over its cells of the
    correlation of a cell's beat envelope with the mean envelope of the others (NaN: fewer than two)."""
    envs = []
    for c in cells:
        if (c.row, c.col) in ser:
            t, v = ser[(c.row, c.col)]
            envs.append(_on_grid(t - c.t0_s, _envelope(v), 0.0, 2 * half))
    if len(envs) < 2:
        return float("nan")
    st = np.stack(envs)
    rs = [_corr(st[i], _finite_mean(np.delete(st, i, axis=0))) for i in range(len(envs))]
    ok = [r for r in rs if np.isfinite(r)]
    return float(np.median(ok)) if ok else float("nan")


LAYOUT_PARTS = ("family", "limb", "page", "timing", "strip", "column")  # kinds of layout evidence per lead


def lead_layout_parts(solved: Solved, lead: str) -> dict[str, float]:
    """Layout evidence for a lead by kind (each the weakest of its cells'): `family` (the family choice's
    margin), `limb` (the chosen layout's limb cells off the plane), `page` (a strip that matched no
    cell), `timing` (beats against the page's), `strip` (a strip's identity), `column` (a 6x2 right
    column's seconds). They say different things about whether the lead is right, so the confidence
    calibration weighs each (`ecgml.verdict`)."""
    out = {k: 1.0 for k in LAYOUT_PARTS}
    out["family"] = solved.lead_factor.get(f"family:{lead}", 1.0)
    out["limb"] = solved.lead_factor.get("limb", 1.0)
    out["page"] = solved.lead_factor.get("page", 1.0)
    strips = set(rhythm_rows(solved.layout))
    six_by_two = two_columns(solved.layout, sorted(strips))
    for c in solved.layout.cells:
        if c.lead != lead:
            continue
        out["timing"] = min(out["timing"], solved.lead_factor.get(f"timing{c.row},{c.col}", 1.0))
        if c.row in strips:
            out["strip"] = min(out["strip"], solved.lead_factor.get(f"strip{c.row}", 1.0))
        elif c.col == 1 and six_by_two:
            out["column"] = min(out["column"], solved.lead_factor.get("right_column", 1.0))
    return out


def lead_layout_factor(solved: Solved, lead: str) -> float:
    """Layout evidence for a lead: the weakest of its kinds (`lead_layout_parts`)."""
    return min(lead_layout_parts(solved, lead).values())
