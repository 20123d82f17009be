"""Which of the renderer's layout families a page is: the rows geometry found, and what the traces say.

Geometry finds the rows (baselines, where they start and end, pulses) and names a standard template by
their count. Several families share a row count: 3 rows are 3x4, Cabrera 3x4 or the 15-lead 3x5; 6 rows
are 3x4 with three strips, 6x2 (standard or Cabrera) or half a 12x1 page (limb or chest leads); 12 rows
are 12x1 or Cabrera 12x1. The six limb leads lie in a plane (Einthoven and Goldberger: each is a fixed
combination of I and II), so wherever three or more cells of a candidate claim limb leads at the same
record seconds, their traces must fit that plane with that candidate's coefficients. A candidate whose
cells are other leads (chest leads taken for limb leads, Cabrera's order for the standard one, columns
cut in the wrong places) leaves a large share of their power off it. A candidate with no limb cells to
test (six chest rows) wins only when every limb reading is refuted, and its confidence says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ecgml.geometry.canonical import CanonicalPage
from ecgml.layout import Cell, PageLayout, grid_layout, parse_lead
from ecgml.records import LEADS, LIMB_FROM_I_II
from ecgml.trace.types import CellTrace

DT_S = 0.01  # time grid of the comparison (100 Hz)
DURATION_S = 10.0
CHUNK_S = 0.5  # relations are judged per half second: a misfit over part of a cell is not diluted
LIMB = dict(zip(LEADS[:6], LIMB_FROM_I_II, strict=True))  # limb lead -> its (I, II) coefficients
# the catalogue's families by row count (ecgml.render.layouts; 12x1 halves draw the same leads as 6x1)
BY_ROWS: dict[int, tuple[str, ...]] = {
    3: ("3x4", "cabrera-3x4", "3x5"),
    4: ("3x4+1R", "cabrera-3x4+1R"),
    5: ("3x4+2R", "cabrera-3x4+2R"),
    6: ("3x4+3R", "cabrera-3x4+3R", "6x2", "cabrera-6x2", "6x1-limb", "6x1-chest"),
    7: ("6x2+1R", "cabrera-6x2+1R"),
    12: ("12x1", "cabrera-12x1"),
}
FIT_AT = 0.12  # off-plane share (of chance) below which a set of cells counts as the limb leads claimed
TEMPLATE_BONUS = 2.0  # score the template geometry named starts with (the common families are likelier)
MARGIN_SURE = 2.5  # a score margin this large (2 constraint-seconds that clearly fail) decides outright
STRUCTURE_ONLY = 0.7  # at most this layout factor when no lead relation confirmed the winner
MIN_TESTED = 1.0  # constraint-seconds below which a candidate's limb evidence decides nothing
PAGE_DOUBT = 0.4  # layout factor of every lead when the chosen layout's limb cells fail the plane
DOUBT_RHO = 0.2  # ... by this mean off-plane share (right leads, even on photos: <= 0.02; wrong: 0.7-1.1)
# cells this near the plane (mean share) fit it as traced on a photo: right limb cells 0.15-0.21 on
# realworld photos (validation 6x1-limb_006), wrong ones 0.7-1.1; a template's cells past it do not fit
FITS_RHO = 0.35
REFUTED_RHO = 0.7  # cells read as limb leads this far off the plane (mean share) are refuted as limb leads
# ... tested only where this many cells (two relations) stand at once: three chest cells fit one relation
# by chance (validation 12x1-bottom_001: its V1-V3 read as I, II, III at rho 0.09)
NOT_LIMB_CELLS = 4
TICK_AT = 0.75  # share of a 3.6 mm window on the baseline one ink column fills: a separator tick
TICK_MIN = 3  # the page prints separators when at least this many candidate cuts carry one
TICK_SHARE = 0.75  # ... and some candidate has at least this share of its cuts ticked
GAP_MM = 1.0  # neighbouring cells this far apart: the page's columns are apart by gaps, not cuts
MAJOR_MM = 5.0  # the grid's major line pitch: a line this far to both sides of a tick is the grid's
TICK_W = 0.4  # score per cut position a candidate gets right (tick where it cuts, none where it does not)
# printed names (`page_reader`): score per confidently read name (p >= NAME_AT) that is the candidate's
# lead there, minus per name that is another lead. 0.5: a family that explains six more names than
# another (a 6x2 page against 3x4+3R) wins by 3, past MARGIN_SURE; the template bonus needs 4 names
NAME_W = 0.5
NAME_AT = 0.8  # = page_reader.READ_AT (the reader misreads ~2 % of held-out names at this probability)


@dataclass
class FamilyChoice:
    layout: PageLayout  # the chosen layout (the input object itself when geometry's template won)
    lead_factor: dict[str, float] = field(default_factory=dict)  # per lead; leads not named: 1
    evidence: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # the two kinds `lead_factor` folds: the choice's own margin per lead, and the limb doubt of every lead
    # (PAGE_DOUBT when the chosen layout's limb cells are off the plane), kept apart for the calibration
    margin_factor: dict[str, float] = field(default_factory=dict)
    limb_factor: float = 1.0

    def same_cuts(self, other: PageLayout) -> bool:
        """Whether the chosen layout cuts the rows where `other` does (then no new tracing is needed)."""
        key = sorted((c.row, c.col, round(c.x0_mm, 3), round(c.x1_mm, 3)) for c in self.layout.cells)
        return key == sorted((c.row, c.col, round(c.x0_mm, 3), round(c.x1_mm, 3)) for c in other.cells)


def row_frame(layout: PageLayout) -> tuple[list[float], float, float]:
    """(row baselines, where the rows' cells start, where they end) of a layout, in paper mm."""
    rows = sorted({c.row for c in layout.cells})
    base = [next(c.baseline_mm for c in layout.cells if c.row == r) for r in rows]
    x0 = float(np.median([min(c.x0_mm for c in layout.cells if c.row == r) for r in rows]))
    x1 = float(np.median([max(c.x1_mm for c in layout.cells if c.row == r) for r in rows]))
    return base, x0, x1


def candidate(name: str, like: PageLayout) -> PageLayout:
    """The catalogue layout `name` on the rows of `like`: its baselines, row extent, pulses, speed, gain."""
    from ecgml.render.layouts import parse_layout

    spec = parse_layout(name)
    base, x0, x1 = row_frame(like)
    pulse_w = float(np.median([p.x1_mm - p.x0_mm for p in like.pulses])) if like.pulses else 5.0
    at_end = bool(like.pulses) and all(p.x0_mm >= x1 - 1.0 for p in like.pulses)
    lay = grid_layout(
        name, spec.grid, spec.rhythm, like.paper_mm, like.speed_mm_s, like.gain_mm_mv, x0, base,
        DURATION_S, spec.simultaneous, pulse_w, [p.row for p in like.pulses], at_end,
        like.paper_mm[0] - x1, like.chest_gain_mm_mv,
    )  # fmt: skip
    return on_boxes(lay, like)


def on_boxes(lay: PageLayout, like: PageLayout) -> PageLayout:
    """`lay` with its cells in the boxes of `like` when `like` is a page of boxed cells (panel pages:
    each box's left edge starts its window) or of columns apart by gaps (`geometry.gaps`), and every
    row has as many cells as `lay` has; else
    `lay` itself (the boxes fix where cells are, so a family with other cuts cannot sit on them)."""
    boxes = {(c.row, c.col): c for c in like.cells}
    boxed = _boxed(like)
    gapped = any(
        b.x0_mm - a.x1_mm > GAP_MM
        for a in like.cells
        for b in like.cells
        if b.row == a.row and b.col == a.col + 1
    )
    if not (boxed or gapped) or {(c.row, c.col) for c in lay.cells} != set(boxes):
        return lay
    cells = []
    for c in lay.cells:
        b = boxes[(c.row, c.col)]
        t0 = 0.0 if lay.columns == "simultaneous" else b.t0_s
        cells.append(replace(c, x0_mm=b.x0_mm, x1_mm=b.x1_mm, t0_s=t0, t1_s=t0 + b.t1_s - b.t0_s,
                             baseline_mm=b.baseline_mm, box_top_mm=b.box_top_mm,
                             box_bottom_mm=b.box_bottom_mm))  # fmt: skip
    return replace(lay, cells=cells)


def _boxed(layout: PageLayout) -> bool:
    """Whether the layout's cells are a panel page's boxes (`on_boxes`)."""
    return any(c.box_top_mm > 0 for c in layout.cells)


def row_series(traces: list[CellTrace]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each row's trace as one (x mm, y mm) run, its cells joined in x order (NaN where unread)."""
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for r in sorted({t.row for t in traces}):
        trs = sorted((t for t in traces if t.row == r and t.x_mm.size), key=lambda t: float(t.x_mm[0]))
        if trs:
            x = np.concatenate([np.asarray(t.x_mm, np.float64) for t in trs])
            y = np.concatenate([np.asarray(t.y_mm, np.float64) for t in trs])
            order = np.argsort(x, kind="stable")
            out[r] = (x[order], y[order])
    return out


def cell_mv(rows: dict[int, tuple[np.ndarray, np.ndarray]], cell: Cell, layout: PageLayout) -> np.ndarray:
    """The cell's lead in mV on the 0-10 s grid of DT_S (NaN outside its seconds or where unread),
    less its 0.6 s running mean (baseline wander is no evidence; a linear filter keeps the leads'
    linear relations, a running median would not)."""
    from scipy.ndimage import uniform_filter1d

    n = int(round(DURATION_S / DT_S))
    out = np.full(n, np.nan)
    if cell.row not in rows:
        return out
    x, y = rows[cell.row]
    sel = (x >= cell.x0_mm) & (x < cell.x1_mm)
    if sel.sum() < 10:
        return out
    t = cell.t0_s + (x[sel] - cell.x0_mm) / layout.speed_mm_s
    mv = cell.sign * (cell.baseline_mm - y[sel]) / layout.cell_gain(cell)
    k0, k1 = int(np.ceil(t[0] / DT_S)), min(int(np.floor(t[-1] / DT_S)) + 1, n)
    if k1 - k0 < 10:
        return out
    grid = np.arange(k0, k1) * DT_S
    ok = np.isfinite(mv)
    if ok.sum() < 10:
        return out
    v = np.interp(grid, t[ok], mv[ok])
    read = np.interp(grid, t, ok.astype(float)) > 0.5
    v = v - uniform_filter1d(v, size=int(0.6 / DT_S) | 1, mode="nearest")
    out[k0:k1] = np.where(read, v, np.nan)
    return out


def limb_evidence(
    rows: dict[int, tuple[np.ndarray, np.ndarray]], layout: PageLayout, min_cells: int = 3
) -> tuple[float, float]:
    """(score, constraint-seconds tested) of the layout's limb cells in its grid.

    Wherever k >= 3 cells claim limb leads at the same seconds, k - 2 relations must hold there. The
    share of the cells' power off the plane is compared with what unrelated traces leave off it
    ((k - 2) / k): rho ~ 0 for the right leads, ~ 1 for wrong ones. Each pattern of cells adds
    (k - 2) x seconds x (FIT_AT - rho): positive when it fits, negative when it does not, so the layout
    that puts the limb leads where the most relations hold scores highest; one without limb cells, 0.
    Only seconds where at least `min_cells` cells claim limb leads count."""
    strips = set(range(layout.n_rows - len(layout.rhythm_leads), layout.n_rows))
    cells = [c for c in layout.cells if c.lead in LIMB and c.row not in strips]  # a strip's lead is open
    if len(cells) < min_cells:
        return 0.0, 0.0
    v = np.stack([cell_mv(rows, c, layout) for c in cells])
    a = np.array([LIMB[c.lead] for c in cells])
    ok = np.isfinite(v)
    score = tested = 0.0
    chunk = np.arange(v.shape[1]) // int(round(CHUNK_S / DT_S))
    for pat in {tuple(p) for p in ok.T[ok.sum(axis=0) >= min_cells]}:
        idx = np.flatnonzero(pat)
        ai = a[idx]
        k = len(idx)
        on = np.all(np.array(pat) == ok.T, axis=1)
        for ch in np.unique(chunk[on]):
            sel = np.flatnonzero(on & (chunk == ch))
            if sel.size < 0.4 * CHUNK_S / DT_S:
                continue
            block = v[np.ix_(idx, sel)]
            block = block - block.mean(axis=1, keepdims=True)
            fit = ai @ np.linalg.lstsq(ai, block, rcond=None)[0]
            chance = float(np.sum(block**2)) * (k - 2) / k
            if chance <= 1e-12:
                continue
            rho = float(np.sum((block - fit) ** 2)) / chance
            w = (k - 2) * sel.size * DT_S
            score += w * (FIT_AT - min(rho, 1.5))
            tested += w
    return score, tested


def _clipped(cell: Cell, x0: float, x1: float, layout: PageLayout) -> Cell:
    """`cell` cut down to the paper span [x0, x1) mm (its record seconds cut with it)."""
    a, b = max(cell.x0_mm, x0), min(cell.x1_mm, x1)
    return replace(cell, x0_mm=a, x1_mm=b, t0_s=cell.t0_s + (a - cell.x0_mm) / layout.speed_mm_s)


def not_limb_evidence(
    rows: dict[int, tuple[np.ndarray, np.ndarray]], lay: PageLayout, cands: dict[str, PageLayout]
) -> float:
    """What the cells a candidate claims are other leads (chest leads; not its rhythm strips, whose lead
    is open) say against it: where another candidate in the standard order (Cabrera's aVL, I, -aVR, II,
    aVF, III turns by 30 degrees a row, as the chest leads V1-V6 turn across the chest: six chest rows
    read as Cabrera's fit the plane at rho ~0.2, validation 12x1-bottom_001) reads the same stretch of
    paper as limb leads (`limb_evidence` on just that stretch) and it fits the plane better than
    REFUTED_RHO, the claim loses tested * (REFUTED_RHO - rho); 0 when every such reading is refuted.
    Without it a candidate scores 0 for cells nothing tested: six limb rows traced a little off the plane
    on a photo (rho 0.15 over 30 s, validation realworld 6x1-limb_006) lost to six chest rows (0) and to
    6x2 (the same left column, the right one called chest leads), every lead missing or wrong."""
    strips = set(range(lay.n_rows - len(lay.rhythm_leads), lay.n_rows))
    other = [c for c in lay.cells if c.lead not in LIMB and c.row not in strips]
    out = 0.0
    for name, cand in cands.items():
        if cand is lay or name.startswith("cabrera"):
            continue
        open_rows = set(range(cand.n_rows - len(cand.rhythm_leads), cand.n_rows))
        part = [
            _clipped(c, o.x0_mm, o.x1_mm, cand)
            for c in cand.cells
            if c.lead in LIMB and c.row not in open_rows
            for o in other
            if o.row == c.row and min(c.x1_mm, o.x1_mm) - max(c.x0_mm, o.x0_mm) > 0
        ]
        if len(part) < NOT_LIMB_CELLS:
            continue
        score, tested = limb_evidence(rows, replace(cand, cells=part, rhythm_leads=[]), NOT_LIMB_CELLS)
        if tested >= MIN_TESTED:
            out = min(out, tested * (FIT_AT - score / tested - REFUTED_RHO))
    return out


def tick_strength(page: CanonicalPage, x_mm: float, baseline_mm: float) -> float:
    """How much a separator tick (a short vertical bar across the baseline) stands at `x_mm`: the share
    of a 3.6 mm window centred on the baseline that the darkest ink column within 0.6 mm fills."""
    img = page.image
    ppx, ppy = page.px_per_mm
    h, w = img.shape[:2]

    def ys(a: float, b: float) -> slice:
        return slice(int(np.clip((baseline_mm + a) * ppy, 0, h)), int(np.clip((baseline_mm + b) * ppy, 0, h)))

    def xs(a: float, b: float) -> slice:
        return slice(int(np.clip((x_mm + a) * ppx, 0, w)), int(np.clip((x_mm + b) * ppx, 0, w)))

    def grey(part: np.ndarray) -> np.ndarray:
        return part.max(axis=2) if part.ndim == 3 else part  # ink is dark in every channel, a red grid not

    band = grey(img[ys(-6.0, 6.0), xs(-15.0, 15.0)])
    win = grey(img[ys(-1.8, 1.8), xs(-0.6, 0.6)])
    if band.size < 100 or win.size == 0:
        return 0.0
    lo, mid = np.percentile(band, [1, 50])
    if mid - lo < 30:
        return 0.0  # no ink darker than the paper here
    return float((win < (lo + mid) / 2).mean(axis=0).max())


def _ticked(ticks: Callable[[float, float], float], x_mm: float, baseline_mm: float) -> bool:
    """A separator tick at `x_mm`, not a major grid line dark in every channel (a black, grey or brown
    grid): such a line stands as a tick at x and 5 mm to either side, where a separator has only the
    grid's lines (validation lowres 3x4_004, a brown grid: every cut of 3x5, on whole 5 mm, "ticked",
    none of 3x4's; 3x4 lost 8.4 to -8.4)."""
    if ticks(x_mm, baseline_mm) < TICK_AT:
        return False
    return min(ticks(x_mm - MAJOR_MM, baseline_mm), ticks(x_mm + MAJOR_MM, baseline_mm)) < TICK_AT


def cut_positions(layout: PageLayout) -> set[tuple[int, float]]:
    """(row, x mm) where the layout ends one cell and starts the next in a row."""
    last: dict[int, float] = {}
    for c in layout.cells:
        last[c.row] = max(last.get(c.row, 0.0), c.x1_mm)
    return {(c.row, round(c.x1_mm, 1)) for c in layout.cells if c.x1_mm < last[c.row] - 1.0}


def tick_scores(
    cands: dict[str, PageLayout], ticks: Callable[[float, float], float]
) -> tuple[dict[str, float], dict[str, Any]]:
    """Score per candidate from the separator ticks at every candidate's cuts: TICK_W for each position
    where the candidate is right (a tick where it cuts, none where it does not), -TICK_W where wrong;
    all 0 when the page prints no separators (fewer than TICK_MIN ticks seen, or no candidate with
    TICK_SHARE of its cuts ticked)."""
    cuts = {name: cut_positions(lay) for name, lay in cands.items()}
    every = sorted(set().union(*cuts.values()))
    base: dict[int, float] = {}
    for lay in cands.values():
        for c in lay.cells:
            base.setdefault(c.row, c.baseline_mm)
    seen = {u: _ticked(ticks, u[1], base[u[0]]) for u in every}
    ev: dict[str, Any] = {"positions": len(every), "ticks": int(sum(seen.values()))}
    # a cart prints a separator at every cut of its layout: some candidate must have most of its cuts
    # ticked, else the ticks seen are QRS strokes crossing the baseline at those x (an RS complex fills
    # the window as a tick does; with 12-21 positions a few are hit by chance)
    share = max((sum(seen[u] for u in cut) / len(cut) for cut in cuts.values() if cut), default=0.0)
    ev["best_share"] = round(share, 2)
    if ev["ticks"] < TICK_MIN or share < TICK_SHARE:
        return {name: 0.0 for name in cands}, ev
    out = {name: TICK_W * sum(1 if (u in cuts[name]) == seen[u] else -1 for u in every) for name in cands}
    return out, ev


Reads = dict[tuple[int, int], tuple[str, float]]  # (row, col) -> (printed name read there, probability)


def name_score(layout: PageLayout, reads: Reads) -> float:
    """How well the names printed beside a candidate's cells (read where that candidate puts them) fit it
    (`name_fit`); another lead's name beside a rhythm strip counts neither way (its lead is read from its
    trace)."""
    per_row: dict[int, int] = {}
    for c in layout.cells:
        per_row[c.row] = per_row.get(c.row, 0) + 1
    most = max(per_row.values(), default=0)
    strips = {r for r, k in per_row.items() if k == 1 and most > 1}
    return name_fit({(c.row, c.col): c.lead for c in layout.cells}, reads, strips)


def name_fit(
    lead_at: dict[tuple[int, int], str], reads: Reads, strip_rows: set[int] | None = None, at: float = NAME_AT
) -> float:
    """+p per name read with probability p >= `at` that is its cell's lead, -p per name that is another
    lead. A name that is the lead of the cell just above or below counts neither way (a label between two
    rows belongs to either), nor does a wrong name in `strip_rows`."""
    score = 0.0
    for (row, col), lead in lead_at.items():
        got = reads.get((row, col))
        if got is None or got[1] < at:
            continue
        name = parse_lead(got[0])[0]
        if name == lead:
            score += got[1]
        elif strip_rows and row in strip_rows:
            continue
        elif name not in (lead_at.get((row - 1, col)), lead_at.get((row + 1, col))):
            score -= got[1]
    return score


def mean_rho(score: float, tested: float) -> float:
    """The mean off-plane share of a candidate's limb cells (each chunk's capped at 1.5); NaN untested."""
    return FIT_AT - score / tested if tested >= MIN_TESTED else float("nan")


def _limb_doubt(score: float, tested: float) -> str:
    """A note when the limb cells of the chosen layout are, on average, far off the limb plane."""
    rho = mean_rho(score, tested)
    if not rho > DOUBT_RHO:  # untested (NaN) or near the plane
        return ""
    return f"the limb leads do not fit Einthoven's plane as placed (off-plane share {rho:.2f}): all in doubt"


def template_outfitted(template: str, limb: dict[str, float], tested: dict[str, float]) -> str:
    """The standard-order candidate whose limb cells fit the plane (mean share <= FITS_RHO) over at least
    as many constraint-seconds as geometry's template, whose own limb cells do not (> FITS_RHO); else "".
    Then the prior of a common family (TEMPLATE_BONUS) goes to that candidate: the page's leads say which
    standard family it is. The sum the candidates are scored by charges each tested second past FIT_AT,
    so six limb rows traced a little off the plane on a photo (validation realworld 6x1-limb_006: rho
    0.21 over 30 s) lost to 3x4+3R's bonus with half of its limb cells refuted, and without the bonus to
    Cabrera 3x4+3R, whose one relation per column the rows I, II, III fit by chance (its aVL + -aVR =
    1.5 I is near I + III = II). Cabrera's order is never the one that fits here: six chest rows fit it
    at rho ~0.2 (`not_limb_evidence`)."""
    own = mean_rho(limb[template], tested[template])
    if not own > FITS_RHO:
        return ""
    fits = [
        k
        for k in limb
        if k != template
        and not k.startswith("cabrera")
        and tested[k] >= tested[template]
        and mean_rho(limb[k], tested[k]) <= FITS_RHO
    ]
    return max(fits, key=lambda k: tested[k], default="")


def _placement(layout: PageLayout, lead: str) -> set[tuple[Any, ...]]:
    return {
        (c.row, c.col, round(c.x0_mm, 2), round(c.x1_mm, 2), round(c.t0_s, 3), c.sign)
        for c in layout.cells
        if c.lead == lead
    }


def choose_family(
    traces: list[CellTrace],
    layout: PageLayout,
    ticks: Callable[[float, float], float] | None = None,
    names: Callable[[list[PageLayout]], list[Reads]] | None = None,
) -> FamilyChoice:
    """The catalogue family with geometry's row count whose limb cells best fit the limb plane, whose
    cuts the page's separator ticks (`ticks(x_mm, baseline_mm)`, when given) confirm and whose leads the
    printed names (`names(layouts)`: the names read beside each layout's cells, when given) are.

    The layout factor of a lead is lowered only where the runner-up would place it differently, by how
    close the two came; a winner no lead relation confirmed (no limb cells) is capped at STRUCTURE_ONLY;
    a winner whose own limb cells are far off the plane puts every lead of the page at PAGE_DOUBT (the
    rows were traced or placed wrong, and the chest rows were traced by the same means).
    """
    rows = row_series(traces)
    cands: dict[str, PageLayout] = {layout.name: layout}
    boxed = _boxed(layout)
    for name in BY_ROWS.get(layout.n_rows, ()):
        if name != layout.name:
            cand = candidate(name, layout)
            if boxed and not _boxed(cand):
                # the page's boxes are its cells: a family of other cells is not printed in them (an
                # ecg-plot 3x4 page of boxes, its names misread, was read as 3x5 and every lead wrong)
                continue
            cands[name] = cand
    limb: dict[str, float] = {}
    tested: dict[str, float] = {}
    for name, lay in cands.items():
        limb[name], tested[name] = limb_evidence(rows, lay)
    # what the cells a candidate calls other leads say against it; its own limb cells (`limb`) alone
    # confirm or doubt it
    claims = {name: not_limb_evidence(rows, lay, cands) for name, lay in cands.items()}
    tick = {name: 0.0 for name in cands}
    ev: dict[str, Any] = {"limb": {k: round(limb[k] + claims[k], 2) for k in cands}}
    if any(claims.values()):
        ev["not_limb"] = {k: round(v, 2) for k, v in claims.items()}
    ev["tested"] = {k: round(v, 2) for k, v in tested.items()}
    if ticks is not None and len(cands) > 1:
        tick, ev["separators"] = tick_scores(cands, ticks)
    cuts_seen = ev.get("separators", {}).get("ticks", 0) >= TICK_MIN
    if cuts_seen:
        ev["separators"]["scores"] = {k: round(v, 2) for k, v in tick.items()}
    named = {name: 0.0 for name in cands}
    if names is not None and len(cands) > 1:
        reads = dict(zip(cands, names(list(cands.values())), strict=True))
        named = {name: NAME_W * name_score(lay, reads[name]) for name, lay in cands.items()}
        ev["names"] = {k: round(v, 2) for k, v in named.items()}
    names_seen = len({round(v, 6) for v in named.values()}) > 1
    outfitted = template_outfitted(layout.name, limb, tested)
    if outfitted:
        ev["template_outfitted_by"] = outfitted
    bonus = {k: TEMPLATE_BONUS if k == (outfitted or layout.name) else 0.0 for k in cands}
    scores = {k: limb[k] + claims[k] + tick[k] + named[k] + bonus[k] for k in cands}
    ev["scores"] = {k: round(v, 2) for k, v in scores.items()}
    best = max(scores, key=lambda k: scores[k])
    doubt = _limb_doubt(limb[best], tested[best])
    if doubt:
        ev["limb_doubt"] = doubt
    if len(cands) == 1 or (
        not cuts_seen and not names_seen and not any(w >= MIN_TESTED for w in tested.values())
    ):
        ev["decided_by"] = "geometry's row count (no other family has it, or nothing to test)"
        return FamilyChoice(
            layout, {c.lead: PAGE_DOUBT for c in layout.cells} if doubt else {}, ev, [doubt] * bool(doubt),
            {}, PAGE_DOUBT if doubt else 1.0,
        )  # fmt: skip
    ranked = sorted(scores, key=lambda k: -scores[k])
    best, second = ranked[0], ranked[1]
    # what other cells' readings say against a candidate may choose between families, never vouch for
    # the winner: the margin is at most the one the candidates' own evidence leaves (test realworld
    # cabrera-6x2_001/_009: wrong leads at 0.8-0.95 when three chest cells read as I, II, III, one
    # relation, had widened it)
    own_scores = {k: scores[k] - claims[k] for k in cands}
    margin = scores[best] - scores[second]
    margin = min(margin, own_scores[best] - max(v for k, v in own_scores.items() if k != best))
    ev.update(best=best, runner_up=second, margin=round(margin, 2))
    factor = float(np.clip(margin / MARGIN_SURE, 0.35, 1.0))
    by = []  # the evidence that sets the winner apart from the runner-up
    if tested[best] >= MIN_TESTED and limb[best] > 0 and limb[best] > limb[second]:
        by.append("limb-lead relations")
    if cuts_seen and tick[best] > 0 and tick[best] > tick[second]:
        by.append("separators")
    if named[best] > 0 and named[best] > named[second]:
        by.append("printed names")
    confirmed = bool(by)
    if not confirmed:
        factor = min(factor, STRUCTURE_ONLY)
    ev["decided_by"] = " and ".join(by) if by else "limb readings refuted (structure only)"
    chosen = cands[best]
    lead_factor = {
        lead: factor
        for lead in {c.lead for c in chosen.cells}
        if _placement(chosen, lead) != _placement(cands[second], lead) or not confirmed
    }
    notes = []
    margin_factor = dict(lead_factor)
    if doubt:
        lead_factor = {c.lead: min(lead_factor.get(c.lead, 1.0), PAGE_DOUBT) for c in chosen.cells}
        notes.append(doubt)
    if best != layout.name:
        notes.append(
            f"layout read as {best}, not {layout.name} ({ev['decided_by']}; score {scores[best]:.1f} vs "
            f"{scores[second]:.1f} for {second})"
        )
    return FamilyChoice(chosen, lead_factor, ev, notes, margin_factor, PAGE_DOUBT if doubt else 1.0)
