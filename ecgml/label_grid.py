"""The page's rows and columns read from its printed lead names, over the whole page.

A cart prints each cell's name at one offset from the cell's start, so the names of a layout stand on a
lattice: one x per column, one y per row, rows one pitch apart, in the order of the cart's family (I II
III down the first column of a 3x4 page, I..aVF beside V1..V6 on a 6x2 page, aVL I -aVR ... on a Cabrera
page). Read over the whole page, not only where geometry's rows put the cells, the names on such a
lattice say how many rows the page has, where they stand and which family prints them in that order:
where geometry lost a light row, took a header or a tall complex for a row, or found a row count no
template has, the page's own names decide (`layout_from_names`).

The label reader (`page_reader`) fires on more than names over a whole page (a thin stroke passes for
"I", text for anything), so a lattice must be seeded by two names that only a lead label shows (not
I, II or III) in one column at one pitch, and it is taken only when enough distinct names fit it and
few confidently read names at its positions contradict it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ecgml.layout import PageLayout, grid_layout, parse_lead

PEAK_AT = 0.9  # a name read at least this surely (a local maximum of the reader's map) is a peak
SYMMETRIC = ("I", "II", "III")  # strokes pass for these: they never seed a lattice
COL_TOL_MM = 3.0  # a column's names stand within this of its x
ROW_TOL_MM = 2.5  # ... and within this (or ROW_TOL_SHARE of the pitch, if more) of their row's y
ROW_TOL_SHARE = 0.12
PITCH_MM = (7.0, 70.0)  # row pitches a page prints
MIN_DISTINCT = 4  # distinct leads a lattice must explain (at least MIN_SEED_NAMES of them not I/II/III)
MIN_SEED_NAMES = 3
MIN_SHARE = 1 / 3  # ... and at least this share of its places
MAX_CONTRA = 0.25  # contradicting names (another lead at a lattice place) at most this share of the fit
COL_GAP_MM = 25.0  # columns of a grid stand at least this far apart
STRIP_ROWS = 3  # rhythm strips looked for below the grid (one pitch apart)
STRIP_STEP = 1.6  # a strip stands at most this many grid pitches below the row above it
EDGE_MM = 5.0  # every row's baseline stands at least this far inside the paper
OFFSET_SPREAD_MM = 3.0  # the label-to-baseline offsets of the rows geometry also found agree this well
SNAP_SHARE = 0.25  # a row's baseline from its name is moved onto a geometry row this close (of the pitch)
# a name's centre (the reader's peak, 2 mm steps) stands this far right of its cell's start: the label is
# printed from about the start (-1 .. 3 mm) and is 1 .. 8 mm wide
NAME_DX_MM = (-2.0, 8.0)
NAME_DX_TYPICAL_MM = 3.0  # ... where geometry's cuts do not say it: the middle of that range
COL_FIT_MM = 3.0  # the lattice's columns stand one column pitch apart within this
PITCH_SHARE = 0.1  # ... and that pitch is the page's seconds per column (10 s / columns) within this share
# the grids carts print (ecgml.render.layouts.BASES; 6x2-seq and 12x1-top print the same names as 6x2
# and 6x1-limb, the solver's timing and the trace tell those apart)
BASES = ("3x4", "cabrera-3x4", "3x5", "6x2", "cabrera-6x2", "12x1", "cabrera-12x1", "6x1-limb", "6x1-chest")


@dataclass(frozen=True)
class Peak:
    name: str  # the record lead of the printed name ("-aVR" -> "aVR")
    p: float
    x_mm: float
    y_mm: float


@dataclass
class NameGrid:
    """A lattice of printed names: the family grid they fit, where its rows and columns stand."""

    base: str  # the grid's family (BASES)
    rows_y: list[float]  # label y (paper mm) of each grid row, then of each rhythm strip found below
    cols_x: list[float]  # label x of each grid column
    pitch: float
    strips: list[str] = field(default_factory=list)  # names read beside the strips ("" where unread)
    fit: float = 0.0  # summed probability of the names that fit
    contra: float = 0.0  # ... of the names at its places that are other leads
    distinct: int = 0
    reads: dict[tuple[int, int], tuple[str, float]] = field(default_factory=dict)  # (row, col) -> name read

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base, "rows_y": [round(y, 1) for y in self.rows_y],
            "cols_x": [round(x, 1) for x in self.cols_x], "pitch": round(self.pitch, 2),
            "strips": self.strips, "fit": round(self.fit, 2), "contra": round(self.contra, 2),
            "distinct": self.distinct,
        }  # fmt: skip


def peaks(
    prob: np.ndarray, names: tuple[str, ...], stride_mm: float, centre_mm: tuple[float, float]
) -> list[Peak]:
    """Local maxima of the reader's name map (`page_reader`'s class maps: names first, "none" last) read
    at >= PEAK_AT; `centre_mm`: (x, y) of map cell (0, 0)'s centre."""
    from scipy.ndimage import maximum_filter

    best = prob[: len(names)].max(axis=0)
    kind = prob[: len(names)].argmax(axis=0)
    top = (best == maximum_filter(best, size=3)) & (best >= PEAK_AT)
    out = []
    for i, j in zip(*np.nonzero(top), strict=True):
        lead = parse_lead(names[int(kind[i, j])])[0]
        out.append(Peak(lead, float(best[i, j]), centre_mm[0] + j * stride_mm, centre_mm[1] + i * stride_mm))
    return out


def _base_grid(base: str) -> list[list[str]]:
    from ecgml.render.layouts import BASES as GRIDS

    return [[parse_lead(t)[0] for t in row] for row in GRIDS[base][0]]


def _fit(
    grid: list[list[str]], xs: list[float], y0: float, pitch: float, pk: list[Peak]
) -> tuple[float, float, set[str]]:
    """(fit, contra, distinct leads fitted) of the lattice with columns at `xs` (NaN: not placed)."""
    tol = max(ROW_TOL_MM, ROW_TOL_SHARE * pitch)
    fit = contra = 0.0
    seen: set[str] = set()
    for r, row in enumerate(grid):
        y = y0 + r * pitch
        for c, lead in enumerate(row):
            if not np.isfinite(xs[c]):
                continue
            near = [q for q in pk if abs(q.x_mm - xs[c]) <= COL_TOL_MM and abs(q.y_mm - y) <= tol]
            right = [q.p for q in near if q.name == lead]
            if right:
                fit += max(right)
                seen.add(lead)
            else:
                wrong = [q.p for q in near if q.name not in SYMMETRIC]
                contra += max(wrong, default=0.0)
    return fit, contra, seen


def _columns(
    grid: list[list[str]], c0: int, x0: float, y0: float, pitch: float, pk: list[Peak]
) -> list[float]:
    """The x of every column once column `c0` stands at `x0`: for each other column, the x of a peak of
    one of its leads at one of its rows that fits the most names, in column order (NaN where none)."""
    tol = max(ROW_TOL_MM, ROW_TOL_SHARE * pitch)
    xs = [float("nan")] * len(grid[0])
    xs[c0] = x0
    for c in range(len(grid[0])):
        if c == c0:
            continue
        cands = {
            round(q.x_mm, 1)
            for q in pk
            for r, row in enumerate(grid)
            if q.name == row[c] and abs(q.y_mm - (y0 + r * pitch)) <= tol
        }
        lo = max([x for i, x in enumerate(xs) if i < c and np.isfinite(x)], default=-np.inf) + COL_GAP_MM
        hi = min([x for i, x in enumerate(xs) if i > c and np.isfinite(x)], default=np.inf) - COL_GAP_MM
        best, best_fit = float("nan"), 0.0
        for x in sorted(cands):
            if not lo <= x <= hi:
                continue
            only = [float("nan")] * len(xs)
            only[c] = x
            f, k, _ = _fit(grid, only, y0, pitch, pk)
            if f - k > best_fit:
                best, best_fit = x, f - k
        xs[c] = best
    return xs


def find_grid(pk: list[Peak]) -> NameGrid | None:
    """The family lattice the peaks fit best, seeded by every pair of non-I/II/III names in one column
    (their rows in a family give the pitch); None when none fits MIN_DISTINCT names or more, or when
    contradicting names reach MAX_CONTRA of the fit."""
    seeds = [q for q in pk if q.name not in SYMMETRIC]
    best: NameGrid | None = None
    best_score: tuple[float, int] | None = None
    tried: set[tuple[str, float, float, int, float]] = set()
    for base in BASES:
        grid = _base_grid(base)
        where: dict[str, list[tuple[int, int]]] = {}
        for r, row in enumerate(grid):
            for c, lead in enumerate(row):
                where.setdefault(lead, []).append((r, c))
        for a in seeds:
            for b in seeds:
                if b.y_mm <= a.y_mm + PITCH_MM[0] or abs(a.x_mm - b.x_mm) > COL_TOL_MM or a.name == b.name:
                    continue
                for ra, ca in where.get(a.name, []):
                    for rb, cb in where.get(b.name, []):
                        if ca != cb or rb <= ra:
                            continue
                        pitch = (b.y_mm - a.y_mm) / (rb - ra)
                        if not PITCH_MM[0] <= pitch <= PITCH_MM[1]:
                            continue
                        y0 = a.y_mm - ra * pitch
                        x0 = 0.5 * (a.x_mm + b.x_mm)
                        key = (base, round(y0, 0), round(pitch, 0), ca, round(x0, 0))
                        if key in tried:
                            continue
                        tried.add(key)
                        xs = _columns(grid, ca, x0, y0, pitch, pk)
                        fit, contra, seen = _fit(grid, xs, y0, pitch, pk)
                        if len(seen) < MIN_DISTINCT or len(seen - set(SYMMETRIC)) < MIN_SEED_NAMES:
                            continue
                        if contra > MAX_CONTRA * fit:
                            continue
                        size = sum(len(row) for row in grid)
                        if len(seen) < MIN_SHARE * size:
                            continue
                        # the most names explained; of equals, the family with the fewest places (a
                        # limb column alone is a 6x1 page, not a 6x2 page whose chest names were lost)
                        score = (round(fit - contra, 6), -size)
                        if best_score is None or score > best_score:
                            best_score = score
                            rows_y = [y0 + r * pitch for r in range(len(grid))]
                            best = NameGrid(base, rows_y, xs, pitch, [], fit, contra, len(seen))
    if best is not None:
        best.reads = _reads(_base_grid(best.base), best, pk)
        best.strips = _strips(best, pk)
        best.rows_y += [best.rows_y[-1] + (k + 1) * best.pitch for k in range(len(best.strips))]
    return best


def _reads(grid: list[list[str]], g: NameGrid, pk: list[Peak]) -> dict[tuple[int, int], tuple[str, float]]:
    """The name read at each placed place of the lattice: its own lead's when read there, else the
    likeliest other name that is not I, II or III (strokes pass for those)."""
    tol = max(ROW_TOL_MM, ROW_TOL_SHARE * g.pitch)
    out: dict[tuple[int, int], tuple[str, float]] = {}
    for r, row in enumerate(grid):
        for c, lead in enumerate(row):
            if not np.isfinite(g.cols_x[c]):
                continue
            near = [
                q for q in pk if abs(q.x_mm - g.cols_x[c]) <= COL_TOL_MM and abs(q.y_mm - g.rows_y[r]) <= tol
            ]
            right = [q for q in near if q.name == lead]
            wrong = [q for q in near if q.name not in SYMMETRIC]
            got = max(right or wrong, key=lambda q: q.p, default=None)
            if got is not None:
                out[(r, c)] = (got.name, got.p)
    return out


def lattice_names(g: NameGrid, names: Any) -> Any:
    """`names` (a reader of the names beside candidate layouts' cells, `page_reader.names_beside`, or
    None) with the lattice's reads added for every candidate whose grid rows have as many cells as the
    lattice's columns (the lattice's place (r, c) is then that candidate's cell (r, c))."""
    cols = len(g.cols_x)
    n_grid = len(g.rows_y) - len(g.strips)

    def read(layouts: list[PageLayout]) -> list[dict[tuple[int, int], tuple[str, float]]]:
        base = names(layouts) if names is not None else [{} for _ in layouts]
        out = []
        for lay, got in zip(layouts, base, strict=True):
            per_row: dict[int, int] = {}
            for c in lay.cells:
                per_row[c.row] = per_row.get(c.row, 0) + 1
            if all(per_row.get(r) == cols for r in range(n_grid)):
                got = {**got, **g.reads}
            out.append(got)
        return out

    return read


def _strips(g: NameGrid, pk: list[Peak]) -> list[str]:
    """Names read at the first column's x one, two, three pitches below the grid (rhythm strips print
    their lead's name there), up to the first place without one."""
    tol = max(ROW_TOL_MM, ROW_TOL_SHARE * g.pitch)
    x = g.cols_x[0] if np.isfinite(g.cols_x[0]) else next((v for v in g.cols_x if np.isfinite(v)), np.nan)
    out = []
    for k in range(1, STRIP_ROWS + 1):
        y = g.rows_y[-1] + k * g.pitch
        near = [q for q in pk if abs(q.x_mm - x) <= COL_TOL_MM and abs(q.y_mm - y) <= tol]
        if not near:
            break
        out.append(max(near, key=lambda q: q.p).name)
    return out


def family_name(g: NameGrid, strip_rows: int) -> str:
    """The catalogue family of the grid with `strip_rows` rhythm strips below it (their leads are read
    from their traces by the solver; the name read beside a lone strip names it when it is one)."""
    if strip_rows == 0:
        return g.base
    if g.base not in ("3x4", "cabrera-3x4", "6x2", "cabrera-6x2"):
        return g.base
    if strip_rows == 1:
        lead = g.strips[0] if g.strips else "II"
        return f"{g.base}+{lead}" if lead in ("V1", "V5") and g.base == "3x4" else f"{g.base}+1R"
    if g.base == "3x4":
        return "3x4+2R" if strip_rows == 2 else "3x4+3R"
    return f"{g.base}+1R"


def label_offsets(rows_y: list[float], base: np.ndarray, pitch: float) -> list[float]:
    """The offsets from the names' rows to the baselines of the rows geometry found that put the most
    name rows on a geometry row (within OFFSET_SPREAD_MM; each the median of its rows), of the offsets
    any name row and geometry row within 3/4 pitch suggest, the smaller first; empty under two rows.
    Evenly spaced rows fit a name printed above its trace and one printed below the trace above it
    alike: more than one offset is then left, for the names read beside the cells to choose."""
    y = np.asarray(rows_y, np.float64)
    found: dict[int, list[float]] = {}
    for d in sorted(
        {round(float(d), 2) for d in (base[None, :] - y[:, None]).ravel() if abs(d) <= 0.75 * pitch}, key=abs
    ):
        hits = [float(b - v - d) for v in y for b in base if abs(b - v - d) <= OFFSET_SPREAD_MM]
        off = d + float(np.median(hits))
        if len(hits) >= 2 and all(abs(off - o) > OFFSET_SPREAD_MM for o in found.get(len(hits), [])):
            found.setdefault(len(hits), []).append(off)
    return found[max(found)] if found else []


def layout_from_names(
    g: NameGrid,
    like: PageLayout,
    row_baselines: list[float],
    x_frame: tuple[float, float],
    offset: float | None = None,
) -> PageLayout | None:
    """The layout the names give, its rows on the page: each row's baseline is its name's y plus the one
    label-to-baseline offset of the page (`offset`, else the first of `label_offsets`, measured on the
    rows geometry found, `row_baselines`, paper mm); rhythm strips are the rows geometry found below
    the grid (or where names were read there). None when fewer than two name rows meet a geometry
    row with one offset, or most name rows none (the names alone do not say where the traces run)."""
    from ecgml.render.layouts import parse_layout

    n_grid = len(g.rows_y) - len(g.strips)
    base = np.asarray(row_baselines, np.float64)
    if base.size < 2:
        return None
    if offset is None:
        offs = label_offsets(g.rows_y[:n_grid], base, g.pitch)
        if not offs:
            return None
        offset = offs[0]
    off = offset
    ys = [y + off for y in g.rows_y[:n_grid]]
    on_rows = sum(bool(np.abs(base - y).min() <= OFFSET_SPREAD_MM) for y in ys)
    # rows within the paper, or at most a pitch past the rows geometry found (a page cut off at an edge)
    lo = min(EDGE_MM, float(base.min()) - g.pitch)
    hi = max(like.paper_mm[1] - EDGE_MM, float(base.max()) + g.pitch)
    if on_rows < max(2, n_grid / 2) or min(ys) < lo or max(ys) > hi:
        return None  # most name rows with no trace row found, or rows off the paper: not this page's lattice
    # rhythm strips: the rows below the grid, each within STRIP_STEP pitches of the one above it (a
    # strip may stand farther from the grid than the grid's pitch), or where a strip's name was read
    last = ys[-1]
    below = sorted(b for b in base if b > last + 0.5 * g.pitch)
    strip_y: list[float] = []
    for b in below:
        if len(strip_y) == STRIP_ROWS or b - (strip_y[-1] if strip_y else last) > STRIP_STEP * g.pitch:
            break
        strip_y.append(float(b))
    for k in range(len(strip_y), len(g.strips)):  # named, not found by geometry
        strip_y.append(g.rows_y[n_grid - 1] + off + (k + 1) * g.pitch)
    strips = len(strip_y)
    ys += strip_y
    name = family_name(g, strips)
    try:
        spec = parse_layout(name)
    except Exception:
        return None
    if spec.n_rows != len(ys):
        return None
    snapped = []
    for y in ys:
        j = int(np.argmin(np.abs(base - y)))
        snapped.append(float(base[j]) if abs(base[j] - y) <= SNAP_SHARE * g.pitch else float(y))
    x0, x1 = x_frame
    pulse_w = float(np.median([q.x1_mm - q.x0_mm for q in like.pulses])) if like.pulses else 5.0
    at_end = bool(like.pulses) and all(q.x0_mm >= x1 - 1.0 for q in like.pulses)
    return grid_layout(
        name, spec.grid, spec.rhythm, like.paper_mm, like.speed_mm_s, like.gain_mm_mv, x0, snapped,
        10.0, spec.simultaneous, pulse_w, None if like.pulses else [], at_end, like.paper_mm[0] - x1,
        like.chest_gain_mm_mv,
    )  # fmt: skip


def name_maps(ink: np.ndarray, net: Any) -> np.ndarray:
    """The reader's class maps over the whole of a page's ink (`page_reader.page_ink` at its READ_PPM)."""
    from ecgml.patch_net import class_maps

    return np.asarray(class_maps(net, ink))


def read_grid(
    ink: np.ndarray, net: Any, prob: np.ndarray | None = None
) -> tuple[NameGrid | None, list[Peak]]:
    """The name lattice of a rectified page's ink (`page_reader.page_ink` at READ_PPM, origin at paper
    0, 0) and the peaks it was fitted to, the reader run once over the whole page (or its maps `prob`)."""
    from ecgml.page_reader import NAMES, PATCH_MM, STRIDE_MM

    prob = prob if prob is not None else name_maps(ink, net)
    pk = peaks(prob, NAMES, STRIDE_MM, (PATCH_MM[0] / 2, PATCH_MM[1] / 2))
    return find_grid(pk), pk


def lost_rows(names: PageLayout, geometry: PageLayout, pitch: float) -> int:
    """How many rows of the layout the names give stand where geometry's layout has none (within
    SNAP_SHARE of the pitch): rows geometry lost or a template moved. Rows geometry has that the names'
    layout lacks (a strip whose name went unread, a header) do not count: the names do not show them
    to be wrong."""
    have = np.asarray(geometry.row_baselines(), np.float64)
    return sum(bool(np.abs(have - y).min() > SNAP_SHARE * pitch) for y in names.row_baselines())


def column_starts(g: NameGrid) -> tuple[float, float] | None:
    """(x where the first column's name would stand at its cell's start, column pitch) of the lattice: a
    line through its placed columns after the first (names stand one column pitch apart, a cart's columns
    being equally long; the first column's names may stand left of the rows' pulses instead); None with
    fewer than two such columns or when one stands off that line by more than COL_FIT_MM."""
    xs = np.asarray(g.cols_x, np.float64)
    ok = np.isfinite(xs)
    ok[0] = False
    if ok.sum() < 2:
        return None
    c = np.flatnonzero(ok).astype(np.float64)
    pitch, first = np.polyfit(c, xs[ok], 1)
    if np.abs(xs[ok] - (first + c * pitch)).max() > COL_FIT_MM or pitch <= COL_GAP_MM:
        return None
    return float(first), float(pitch)


def cuts_from_names(
    g: NameGrid, x_frame: tuple[float, float], speed_mm_s: float, duration_s: float = 10.0
) -> tuple[bool, tuple[float, float] | None]:
    """(whether the names' columns agree with geometry's row extent `x_frame` cut evenly into the lattice's
    columns, where the rows' cells start and end as the names say). They agree when every name after the first
    column's stands within NAME_DX_MM right of its cell's start; or when the lattice gives no column pitch
    (`column_starts`, or on two columns the names' distance: no evidence either way). Where they do not, the
    cells start NAME_DX_TYPICAL_MM before their names, unless one end of geometry's extent fits the names (a
    row cut off at one edge of the photo or scan keeps its other end): the cells then start where that end
    puts them. No extent (None) when the names' pitch is not `duration_s` / columns at the page's speed within
    PITCH_SHARE (the scale or speed is then off, not only the cuts)."""
    n = len(g.cols_x)
    got = column_starts(g)
    if got is None and n == 2 and bool(np.isfinite(g.cols_x).all()):
        # two columns give no line through the columns after the first: the two names' distance is the
        # pitch, trusted only where it is the page's (10 s / 2 at its speed) within COL_FIT_MM, since a
        # first name left of its pulse moves the cut by as much as it is off
        pitch = float(g.cols_x[1] - g.cols_x[0])
        if abs(pitch - duration_s / n * speed_mm_s) <= COL_FIT_MM:
            got = float(g.cols_x[0]), pitch
    if got is None:
        return True, None
    first, pitch = got
    x0, x1 = x_frame
    seg = (x1 - x0) / n
    if all(NAME_DX_MM[0] <= first + c * pitch - (x0 + c * seg) <= NAME_DX_MM[1] for c in range(1, n)):
        return True, None
    if abs(n * pitch / speed_mm_s - duration_s) > PITCH_SHARE * duration_s:
        return False, None
    from_left, from_right = first - x0, first + n * pitch - x1
    left_ok = NAME_DX_MM[0] <= from_left <= NAME_DX_MM[1]
    right_ok = NAME_DX_MM[0] <= from_right <= NAME_DX_MM[1]
    dx = NAME_DX_TYPICAL_MM
    if left_ok != right_ok:  # one end of geometry's extent fits the names: the row is cut off at the other
        dx = from_left if left_ok else from_right
    return False, (first - dx, first - dx + n * pitch)


def recut(layout: PageLayout, x_frame: tuple[float, float], duration_s: float = 10.0) -> PageLayout:
    """`layout` with every row's cells spread evenly over `x_frame` (paper mm), as `layout.grid_layout`
    cuts them: a row of n cells shows min(width / speed, `duration_s`) seconds, its cells one after the
    other (or all from 0 on a simultaneous page). Rows, leads, gains and pulses are kept."""
    from dataclasses import replace

    x0, x1 = x_frame
    shown = min((x1 - x0) / layout.speed_mm_s, duration_s)
    per_row: dict[int, int] = {}
    for c in layout.cells:
        per_row[c.row] = per_row.get(c.row, 0) + 1
    cells = []
    for c in layout.cells:
        n = per_row[c.row]
        seg = (x1 - x0) / n
        t0 = 0.0 if layout.columns == "simultaneous" else c.col * shown / n
        x = x0 + c.col * seg
        cells.append(replace(c, x0_mm=x, x1_mm=x + seg, t0_s=t0, t1_s=t0 + shown / n))
    return replace(layout, cells=cells)


def names_off_cells(g: NameGrid, starts: list[float]) -> bool:
    """Whether a placed column of the lattice after the first (the first's names may stand left of the
    pulses) stands where no cell of a layout starts NAME_DX_MM before it (`starts`: its grid cells' x0):
    the names show a column the layout does not cut there."""
    return any(
        not any(NAME_DX_MM[0] <= x - s <= NAME_DX_MM[1] for s in starts)
        for x in g.cols_x[1:]
        if np.isfinite(x)
    )
