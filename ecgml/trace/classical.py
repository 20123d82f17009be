"""The classical trace extractor: no learning, the fallback when no trained model is available.

Per cell of the canonical page: an ink map (dark and unsaturated: coloured grids drop out by their
chroma, grey grids by subtracting a low quantile of each pixel row and column, since grid lines run the
whole cell and the trace does not), Otsu binarisation, vertical runs of ink per column, and a
dynamic programme over columns that picks one run per column. The programme pays for vertical gaps
between consecutive runs and for distance from the cell's own baseline, so a tall QRS that crosses
into the neighbouring band is followed while the neighbouring trace and label text are not. The
chosen run's darkness-weighted centroid gives y at sub-pixel precision. Columns at the calibration
pulse and the separator ticks, and short excursions that jump away and back (text, specks), become
NaN for assembly to interpolate.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ecgml.geometry.canonical import CanonicalPage
from ecgml.layout import Cell, PageLayout
from ecgml.trace.types import CellTrace

CHROMA_WEIGHT = 2.0  # ink = (255 - max) - CHROMA_WEIGHT * (max - min): coloured pixels are not trace
GRID_QUANTILE = 10.0  # percentile of a pixel row/column taken as its grid-line ink
FLAT_GUARD_MM = 2.0  # rows this close to the baseline keep their ink (a flat trace is not a grid line)
MIN_OTSU = 25.0  # never binarise below this ink level (blank cells would otherwise pick up paper noise)
EDGE_EXCLUDE_MM = 0.6  # columns this close to a pulse edge or separator tick lose the ink near the baseline
GAP_COST_PER_MM = 4.0  # DP: cost of a vertical gap between consecutive runs, per mm
MOVE_COST_PER_MM = 0.05  # DP: cost of centroid movement between consecutive runs, per mm (tie-breaker)
BASELINE_COST = 1.0  # DP: cost per mm of columns at one row pitch from the own baseline (quadratic)
OTHER_ROW_COST = 2.0  # DP: cost per mm of columns on a run nearer another row's baseline
NULL_COST = 8.0  # DP: cost per mm of columns of "no trace here"
REENTER_COST = 2.0  # DP: cost of picking up the trace again after the null state
LABEL_BOX_MM = (7.0, 2.5, 8.5)  # label region: x from the cell start, y from .. to below the baseline
LABEL_COST = 4.0  # DP: cost per mm of columns on a run inside the label region
NULL_FREE_MM = 0.3  # breaks this short (a grid line crossing the trace) re-enter for free
EXCURSION_MM = 1.5  # path pieces shorter than this, cut off by jumps on both sides, are dropped
JUMP_MM = 1.0  # a vertical gap larger than this between consecutive runs is a jump
DROP_EXCURSIONS = True
TICK_HALF_MM = 3.5  # separator ticks reach this far above and below the baseline (0.315 mV, margin)
PEAK_TALL = 1.0  # where opening and closing differ by more than this many line widths, pick one
ISO_WINDOW_MM = 8.0  # window of the median that stands for the isoelectric level
SMEAR = 1.0  # horizontal half-smear of the pen, in half line widths
REFINE_PEAKS = True


@dataclass
class ClassicalExtractor:
    """Implements `TraceExtractor` with image processing only."""

    name: str = "classical"
    clahe: bool = False
    chroma_weight: float = CHROMA_WEIGHT

    def extract(self, page: CanonicalPage, layout: PageLayout) -> list[CellTrace]:
        ink = ink_map(page.image, self.chroma_weight, self.clahe)
        baselines = layout.row_baselines()
        out: list[CellTrace] = []
        for cell in layout.cells:
            out.append(extract_cell(ink, page, layout, cell, baselines))
        return out

    def read_tall(self, page: CanonicalPage, layout: PageLayout, traces: list[CellTrace]) -> list[CellTrace]:
        """Unchanged: the ink is searched over the whole row band, with no strip edge to clip at."""
        return traces

    def forget(self) -> None:
        """Nothing to drop: every read starts from the page."""


def channel_range(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each px's darkest and brightest channel of an (H, W, 3+) uint8 image (OpenCV's: 7x numpy's)."""
    r, g, b = cv2.split(np.ascontiguousarray(image[..., :3]))
    return cv2.min(cv2.min(r, g), b), cv2.max(cv2.max(r, g), b)


def ink_map(image: np.ndarray, chroma_weight: float = CHROMA_WEIGHT, clahe: bool = False) -> np.ndarray:
    """How much each pixel looks like trace ink, 0..255 float32: dark and grey."""
    if image.ndim == 2:
        gray = image
        ink = 255.0 - gray.astype(np.float32)
    else:
        low, gray = channel_range(image)
        mx = gray.astype(np.float32)
        ink = (255.0 - mx) - chroma_weight * (mx - low.astype(np.float32))
    if clahe:
        eq = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(np.ascontiguousarray(gray))
        ink = ink * (255.0 - eq.astype(np.float32)) / np.maximum(255.0 - gray.astype(np.float32), 1.0)
    return np.clip(ink, 0, 255).astype(np.float32)


def _band(baselines: list[float], row: int, paper_h: float) -> tuple[float, float]:
    """The y range (mm) searched for a row: from the previous baseline to the next one."""
    b = baselines[row]
    pitch = (
        min(abs(baselines[i + 1] - baselines[i]) for i in range(len(baselines) - 1))
        if len(baselines) > 1
        else 40.0
    )
    lo = baselines[row - 1] if row > 0 else b - 1.5 * pitch
    hi = baselines[row + 1] if row + 1 < len(baselines) else b + 1.5 * pitch
    return max(lo, 0.0), min(hi, paper_h)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertical runs of True per column: (column, start row, end row exclusive), sorted by column then row."""
    h, w = mask.shape
    pad = np.zeros((w, h + 2), dtype=np.int8)
    pad[:, 1:-1] = mask.T
    d = np.diff(pad, axis=1)
    sc, sy = np.nonzero(d == 1)
    _, ey = np.nonzero(d == -1)
    return sc, sy, ey


def _remove_specks(mask: np.ndarray, min_px: int) -> np.ndarray:
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_px
    keep[0] = False
    return keep[lab]


def extract_cell(
    ink: np.ndarray, page: CanonicalPage, layout: PageLayout, cell: Cell, baselines: list[float]
) -> CellTrace:
    """One cell's trace: DP over per-column ink runs inside the row's band."""
    ppx, ppy = page.px_per_mm
    lo_mm, hi_mm = _band(baselines, cell.row, page.paper_mm[1])
    y0 = int(np.floor(lo_mm * ppy))
    y1 = int(np.ceil(hi_mm * ppy))
    # Columns whose centres lie in [x0, x1).
    c0 = int(np.ceil(cell.x0_mm * ppx - 0.5))
    c1 = int(np.ceil(cell.x1_mm * ppx - 0.5))
    c1 = min(c1, ink.shape[1])
    y1 = min(y1, ink.shape[0])
    x_mm = (np.arange(c0, c1) + 0.5) / ppx
    nan = np.full(x_mm.size, np.nan)
    if c1 <= c0 or y1 <= y0:
        return CellTrace(cell.lead, cell.row, cell.col, x_mm, nan, np.zeros(x_mm.size))
    sub = ink[y0:y1, c0:c1]
    # Grid lines span the whole cell: remove each row's and column's typical ink.
    # A low quantile, not the median: a flat trace can fill most of its pixel row, a grid line fills all.
    q_rows = np.percentile(sub, GRID_QUANTILE, axis=1, keepdims=True)
    # ...but a flat trace can also fill its own pixel rows: near the baseline use the band's typical level.
    yy = (np.arange(y0, y1) + 0.5) / ppy
    near = np.abs(yy - cell.baseline_mm) < FLAT_GUARD_MM
    if near.any():
        # Grid lines repeat every 5 mm (major and minor alike): near the baseline take the level the
        # rows 5 mm above and below show, which a flat trace does not share.
        q = q_rows[:, 0]
        k = int(round(5.0 * ppy))
        padded = np.pad(q, k + 1, mode="edge")

        def shifted(d: int) -> np.ndarray:
            return np.max([padded[k + 1 + d + e : k + 1 + d + e + q.size] for e in (-1, 0, 1)], axis=0)

        periodic = np.minimum(shifted(-k), shifted(k))
        q_rows[near, 0] = np.minimum(q[near], periodic[near])
    q_cols = np.percentile(sub, GRID_QUANTILE, axis=0, keepdims=True)
    sub = sub - np.maximum(q_rows, q_cols)
    sub = np.clip(sub, 0, 255)
    u8 = sub.astype(np.uint8)
    if u8.max() < MIN_OTSU:
        return CellTrace(cell.lead, cell.row, cell.col, x_mm, nan, np.zeros(x_mm.size))
    otsu, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    thr = max(float(otsu), MIN_OTSU)
    mask = sub > thr
    mask = _remove_specks(mask, max(3, int(round(0.15 * ppx * 0.15 * ppy * 4))))
    # Weights: the ink of the run and one pixel either side (the anti-aliased edges).
    w = np.where(cv2.dilate(mask.astype(np.uint8), np.ones((3, 1), np.uint8)) > 0, sub, 0.0)
    cs0 = np.vstack([np.zeros((1, w.shape[1])), np.cumsum(w, axis=0)])
    ys = np.arange(w.shape[0], dtype=np.float64)[:, None] + 0.5
    cs1 = np.vstack([np.zeros((1, w.shape[1])), np.cumsum(w * ys, axis=0)])
    _block_edges(mask, x_mm, y0 / ppy, ppy, layout, cell)
    rc, rs, re = _runs(mask)
    if rc.size == 0:
        return CellTrace(cell.lead, cell.row, cell.col, x_mm, nan, np.zeros(x_mm.size))
    s_ext = np.maximum(rs - 1, 0)
    e_ext = np.minimum(re + 1, w.shape[0])
    mass = cs0[e_ext, rc] - cs0[s_ext, rc]
    cen = np.where(mass > 0, (cs1[e_ext, rc] - cs1[s_ext, rc]) / np.maximum(mass, 1e-9), (rs + re) / 2.0)
    # Everything below in mm relative to the band top.
    top = rs / ppy
    bot = re / ppy
    cen_mm = cen / ppy
    base = cell.baseline_mm - y0 / ppy
    pitch = max(hi_mm - lo_mm, 1.0) / 2.0
    others = [b - y0 / ppy for i, b in enumerate(baselines) if i != cell.row]
    unary = BASELINE_COST * ((cen_mm - base) / pitch) ** 2
    for ob in others:
        # A run nearer another row's baseline than to its own is probably that row's trace.
        unary += np.where(np.abs(cen_mm - ob) < np.abs(cen_mm - base), OTHER_ROW_COST, 0.0)
    # The lead label sits just after the cell start, a few mm below the baseline (ECG-Image-Kit):
    # runs there are more likely text than trace.
    in_label = (x_mm[rc] - cell.x0_mm < LABEL_BOX_MM[0]) & (cen_mm - base > LABEL_BOX_MM[1])
    in_label &= cen_mm - base < LABEL_BOX_MM[2]
    unary += np.where(in_label, LABEL_COST, 0.0)
    unary /= ppx  # costs are per mm of columns
    path = _dp(rc, top, bot, cen_mm, unary, c1 - c0, ppx)
    y = np.full(x_mm.size, np.nan)
    conf = np.zeros(x_mm.size)
    chosen = path >= 0
    y[chosen] = cen_mm[path[chosen]] + y0 / ppy
    conf[chosen] = 1.0
    if DROP_EXCURSIONS:
        _drop_excursions(path, top, bot, y, conf, ppx)
    if REFINE_PEAKS:
        _refine_extrema(path, top, bot, y, y0 / ppy, ppx)
    return CellTrace(cell.lead, cell.row, cell.col, x_mm, y, conf)


def _dp(
    rc: np.ndarray,
    top: np.ndarray,
    bot: np.ndarray,
    cen: np.ndarray,
    unary: np.ndarray,
    n_cols: int,
    ppx: float,
) -> np.ndarray:
    """Viterbi over columns: one run per column, or one of three "no trace here" states.

    `pre` (not started yet) and `post` (already ended) cost NULL_COST per mm, so the trace may begin
    after a separator tick or end before one, anywhere. `null` (a break) keeps the position of its
    best predecessor and costs REENTER_COST to leave unless the break is short, so the path can
    cross a gap without jumping to the neighbouring trace but does not skip the tip of a real QRS.
    """
    bounds = np.searchsorted(rc, np.arange(n_cols + 1))
    path = np.full(n_cols, -1, dtype=np.int64)
    null_cost = NULL_COST / ppx
    free = max(1, int(round(NULL_FREE_MM * ppx)))
    inf = np.inf
    # Previous column's real runs, then the null state (position inherited).
    p_top, p_bot, p_cen = np.array([0.0]), np.array([0.0]), np.array([0.0])
    p_real = np.array([False])
    p_nlen = np.array([0])
    cost = np.array([inf])  # real runs + null
    pre, post = null_cost, inf
    backs: list[np.ndarray] = []  # per column: predecessor of each run and of null (-1 = pre)
    post_back: list[int] = []  # per column: predecessor of post (-2 = post, -1 = pre, k = state)
    for c in range(n_cols):
        cur = slice(bounds[c], bounds[c + 1])
        t, b_, m = top[cur], bot[cur], cen[cur]
        if t.size:
            gap = np.maximum(0.0, np.maximum(t[None, :] - p_bot[:, None], p_top[:, None] - b_[None, :]))
            move = np.abs(m[None, :] - p_cen[:, None])
            total = cost[:, None] + GAP_COST_PER_MM * gap + MOVE_COST_PER_MM * move
            total += np.where(p_real | (p_nlen <= free), 0.0, REENTER_COST)[:, None]
            best = np.argmin(total, axis=0)
            new_cost = total[best, np.arange(t.size)]
            from_pre = pre < new_cost
            new_cost = np.where(from_pre, pre, new_cost) + unary[cur]
            best = np.where(from_pre, -1, best)
        else:
            best = np.zeros(0, dtype=np.int64)
            new_cost = np.zeros(0)
        k_null = int(np.argmin(cost))
        k_end = int(np.argmin(cost))
        if post <= cost[k_end]:
            post_back.append(-2)
            post = post + null_cost
        else:
            post_back.append(k_end)
            post = float(cost[k_end]) + null_cost
        backs.append(np.concatenate([best, [k_null]]))
        cost = np.concatenate([new_cost, [cost[k_null] + null_cost]])
        p_top = np.concatenate([t, [p_top[k_null]]])
        p_bot = np.concatenate([b_, [p_bot[k_null]]])
        p_cen = np.concatenate([m, [p_cen[k_null]]])
        p_nlen = np.concatenate([np.zeros(t.size, np.int64), [p_nlen[k_null] + 1]])
        p_real = np.concatenate([np.ones(t.size, bool), [False]])
        pre = pre + null_cost
    # Backtrack from the cheapest final state.
    k = int(np.argmin(cost))
    state = "post" if post < cost[k] else "run"
    if state == "run" and pre < cost[k]:
        return path
    for c in range(n_cols - 1, -1, -1):
        if state == "post":
            pb = post_back[c]
            if pb == -2:
                continue
            state, k = "run", pb
            continue  # post at column c came from state k at column c - 1
        n_real = bounds[c + 1] - bounds[c]
        if k < n_real:
            path[c] = bounds[c] + k
        k = int(backs[c][k])
        if k == -1:
            break
    return path


def _drop_excursions(
    path: np.ndarray, top: np.ndarray, bot: np.ndarray, y: np.ndarray, conf: np.ndarray, ppx: float
) -> None:
    """NaN out short path pieces bounded by jumps on both sides (text, specks, the other trace)."""
    idx = np.flatnonzero(path >= 0)
    if idx.size < 3:
        return
    r = path[idx]
    gap = np.maximum(0.0, np.maximum(top[r[1:]] - bot[r[:-1]], top[r[:-1]] - bot[r[1:]]))
    cols_gap = np.diff(idx)
    breaks = np.flatnonzero((gap > JUMP_MM) | (cols_gap > EXCURSION_MM * ppx))
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks + 1, [idx.size]])
    lengths = idx[ends - 1] - idx[starts] + 1
    if len(starts) < 2:
        return
    longest = int(np.argmax(lengths))
    for k, (s, e) in enumerate(zip(starts, ends, strict=True)):
        if k != longest and lengths[k] < EXCURSION_MM * ppx:
            y[idx[s:e]] = np.nan
            conf[idx[s:e]] = 0.0


def _edges(layout: PageLayout, cell: Cell) -> list[tuple[float, float, float]]:
    """(x mm, y from, y to) of the calibration pulse's edge and separator ticks bordering the cell."""
    b = cell.baseline_mm
    tick = TICK_HALF_MM
    row_cells = [c for c in layout.cells if c.row == cell.row]
    out = []
    if cell.col == 0:
        for p in layout.pulses:
            if p.row == cell.row and abs(p.x1_mm - cell.x0_mm) < 1.0:
                out.append((p.x1_mm, b - layout.gain_mm_mv - 0.5, b + 0.5))
    else:
        out.append((cell.x0_mm, b - tick, b + tick))
    if cell.col < max(c.col for c in row_cells):
        out.append((cell.x1_mm, b - tick, b + tick))
    return out


def _block_edges(
    mask: np.ndarray, x_mm: np.ndarray, top_mm: float, ppy: float, layout: PageLayout, cell: Cell
) -> None:
    """Erase the pulse edge and the separator ticks; any ink left in those columns is trace."""
    for x, ya, yb in _edges(layout, cell):
        cols = np.flatnonzero(np.abs(x_mm - x) < EDGE_EXCLUDE_MM)
        if cols.size == 0:
            continue
        r0 = max(int(np.floor((ya - top_mm) * ppy)), 0)
        r1 = min(int(np.ceil((yb - top_mm) * ppy)), mask.shape[0])
        if r1 > r0:
            mask[r0:r1, cols[0] : cols[-1] + 1] = False


def _refine_extrema(
    path: np.ndarray, top: np.ndarray, bot: np.ndarray, y: np.ndarray, top_mm: float, ppx: float
) -> None:
    """Undo the collapse of sharp peaks, where up- and downstroke merge into one tall run.

    A pen of width w draws, in column x, ink from min(y) - w/2 to max(y) + w/2 over x +- w/2: the
    run's top and bottom are an erosion and a dilation of the centreline. Their morphological
    opening and closing bound the centreline much more tightly: the opening is exact at an upward
    peak, the closing at a downward one. Where the two bounds disagree, the one farther from the
    local isoelectric level (a wide median) is taken.
    """
    from scipy.ndimage import maximum_filter1d, median_filter, minimum_filter1d  # noqa: I001

    idx = np.flatnonzero((path >= 0) & np.isfinite(y))
    if idx.size < 9:
        return
    r = path[idx]
    t, b = top[r], bot[r]
    lw = float(np.median(b - t))
    k = 2 * max(1, int(round(SMEAR * 0.5 * lw * ppx))) + 1
    ero = t + lw / 2
    dil = b - lw / 2
    # The pen already eroded (top) and dilated (bottom); one more filter completes opening and closing.
    opening = maximum_filter1d(ero, k, mode="nearest")
    closing = minimum_filter1d(dil, k, mode="nearest")
    level = median_filter(y[idx] - top_mm, size=max(3, int(ISO_WINDOW_MM * ppx)) | 1, mode="nearest")
    loose = closing - opening > PEAK_TALL * lw
    pick = np.where(np.abs(opening - level) > np.abs(closing - level), opening, closing)
    y[idx[loose]] = pick[loose] + top_mm
