"""Orientation, layout and absolute position from the trace ink on the grid-aligned frame.

The grid fixes millimetres only modulo 5 mm and up to a quarter turn. The traces settle both: rows of
trace ink are horizontal bands (so the time axis is the one whose ink profile is flat), the page is upright
when the calibration pulses rise from the baseline at the left end of the rows and the trace block sits
low on the page (the Kaggle header zone is on top), and the row baselines and row ends, compared with
the layout's, pick the 5 mm lattice offset (the Kaggle grid is anchored at the page's bottom-left corner).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from ecgml.layout import DEFAULT_LAYOUT, KAGGLE_X0_MM, LETTER_MM, PageLayout, make_layout

ORIENT_PPM = 4.0  # px/mm of the ink raster
COARSE_PPM = ORIENT_PPM  # an image holding the page at fewer px/mm is coarse: its raster is enlarged
GRID_Y_PHASE = LETTER_MM[1] % 5.0  # paper y of grid lines mod 5 (anchored at the bottom edge)
ROWS_TO_LAYOUT = {4: "3x4+1R", 3: "3x4", 7: "6x2+1R", 12: "12x1"}


@dataclass
class Orientation:
    k: int  # frame -> upright frame: rotate by k quarter turns (see `rot`)
    axis_score: float  # how much more row-like the chosen axis is (>1 good)
    upright_score: float  # signed evidence for upright vs turned 180 (bigger |.| = surer)


def rot(k: int) -> np.ndarray:
    """3x3 rotation of frame mm by k quarter turns about the origin: (x, y) -> (-y, x) per turn."""
    c = [np.eye(3), np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])]
    m = np.eye(3)
    for _ in range(k % 4):
        m = c[1] @ m
    return m


def _row_score(mask: np.ndarray, ppm: float) -> float:
    """Mean of the 3 highest peaks of the share of ink columns per raster row (+-0.5 mm).

    A trace rests on its baseline most of the time, so across the rows the share is high at each
    baseline (0.4-0.9); along the time axis only QRS strokes, pulses and separators stack up (< 0.3).
    """
    prof = gaussian_filter1d(mask.mean(axis=1).astype(float), 0.4 * ppm)
    peaks, _ = find_peaks(prof, distance=max(1, int(6 * ppm)))
    if len(peaks) == 0:
        return 0.0
    top = np.sort(prof[peaks])[::-1][:3]
    return float(top.mean())


OFF_LINE_DROP = 0.15  # away from the major lines the ink threshold drops by at most this (darkness)
INK_OVER_GRID = 0.2  # trace ink is at least this much darker than the major grid lines ...
INK_THR_MAX = 0.75  # ... or this dark (a black-and-white copy's lines can be nearly as dark as its ink)


# a grid's lines count as coloured when their chroma (brightest minus darkest channel, relative to the
# paper) is at least this: green, red, blue carts' lines 0.15-0.5; a black-and-white copy's JPEG noise < 0.05
MIN_LINE_CHROMA = 0.1
GREY_SHARE = 0.5  # a pixel with under this share of the lines' chroma is grey: ink over the line, not it


def grey_over_lines(
    ink: np.ndarray, chroma: np.ndarray, valid: np.ndarray, cols: np.ndarray, thr: float
) -> np.ndarray:
    """Pixels darker than `thr` and grey where the grid's lines are coloured (`chroma`: 0..1 per pixel):
    the trace on a coloured grid whose lines are as dark as it (`ink_mask`), which darkness
    alone cannot tell from them there (`cols`: the raster columns of the major lines). All False when the
    lines are not coloured."""
    on = chroma[:, cols][valid[:, cols]]
    line_chroma = float(np.median(on)) if on.size > 100 else 0.0
    if line_chroma < MIN_LINE_CHROMA:
        return np.zeros(ink.shape, bool)
    return np.asarray((ink > thr) & (chroma < GREY_SHARE * line_chroma) & valid)


def _major_lines(origin: float, n: int, ppm: float) -> np.ndarray:
    """Raster indices of the 5 mm grid lines (frame mm 5k) on a raster of n px starting at `origin` mm."""
    ks = np.arange(np.ceil(origin / 5), np.floor((origin + n / ppm) / 5) + 1)
    return np.clip(np.round((5 * ks - origin) * ppm - 0.5).astype(int), 0, n - 1)


def ink_mask(
    ink: np.ndarray,
    valid: np.ndarray,
    ppm: float = ORIENT_PPM,
    x0: float | None = None,
    y0: float | None = None,
    chroma: np.ndarray | None = None,
) -> np.ndarray:
    """Trace/text pixels: darker in every channel than the (possibly grey) grid, and thin.

    The grid's own level is read on the major grid lines (frame x = 5k mm, known after refinement) when
    `x0` (frame mm of the raster's left edge) is given. With `y0` too, pixels away from the major lines
    (rows and columns) are held only to the level found just beside them: on a black-and-white scan a
    light-grey trace is barely darker than the major lines (0.45-0.6 against 0.3-0.47 on this raster),
    and one threshold above the lines lost every row of it. Where the map is off by a line's width the
    lines spill beside themselves and the one threshold holds everywhere. Thick dark regions (lid
    shadows, background, mould, stains) are removed by an opening wider than any pen stroke. With
    `chroma` (0..1 per pixel) too, on a coloured grid whose lines are as dark as the trace, grey pixels as
    dark as the level beside the lines are ink on the lines as well (`grey_over_lines`).
    """
    extra: np.ndarray | None = None
    v = ink[valid]
    if v.size == 0:
        return np.zeros_like(ink, bool)
    thr_px: float | np.ndarray
    if x0 is not None:
        h, w = ink.shape
        cols = _major_lines(x0, w, ppm)
        on = ink[:, cols][valid[:, cols]]
        grid_level = float(np.percentile(on, 75)) if on.size > 100 else float(np.percentile(v, 97))
        thr = float(np.clip(grid_level + INK_OVER_GRID, 0.3, INK_THR_MAX))
        thr_px = thr
        if y0 is not None and on.size > 100:
            rows = _major_lines(y0, h, ppm)
            beside_c = np.clip(np.concatenate([cols - 2, cols + 2]), 0, w - 1)
            beside_r = np.clip(np.concatenate([rows - 2, rows + 2]), 0, h - 1)
            off = np.concatenate([ink[:, beside_c][valid[:, beside_c]], ink[beside_r][valid[beside_r]]])
            # a trace crosses a column once (< 1 % of its pixels); a line spilling over fills it
            thr_off = thr
            if off.size > 100:
                thr_off = float(np.clip(np.percentile(off, 90) + 0.2, max(0.3, thr - OFF_LINE_DROP), thr))
            near_c = np.zeros(w, bool)
            near_r = np.zeros(h, bool)
            for d in (-1, 0, 1):
                near_c[np.clip(cols + d, 0, w - 1)] = True
                near_r[np.clip(rows + d, 0, h - 1)] = True
            thr_px = np.where(near_r[:, None] | near_c[None, :], thr, thr_off).astype(np.float32)
            # lines so dark that the trace cannot be INK_OVER_GRID darker (the threshold is capped): a trace
            # lying on them (baselines, pulse tops and feet sit on 5 mm lines on most carts) is lost there. A
            # small JPEG copy blurs its thin trace to the lines' level (validation lowres cabrera-3x4+1R_004,
            # 5 px/mm, dark green 5 mm lines at 0.73: its rhythm strip and every pulse were lost)
            if chroma is not None and grid_level + INK_OVER_GRID > INK_THR_MAX:
                extra = grey_over_lines(ink, chroma, valid, cols, thr_off)
    else:
        grid_level = float(np.percentile(v, 97))  # dense grid lines dominate the upper tail below the ink
        thr_px = float(np.clip(grid_level + 0.12, 0.3, 0.8))
    mask = (ink > thr_px) & valid
    return thin_strokes(mask if extra is None else mask | extra, ppm)


def thin_strokes(mask: np.ndarray, ppm: float = ORIENT_PPM) -> np.ndarray:
    """`mask` without thick dark regions and long straight lines: what is left can be pen strokes."""
    m = mask.astype(np.uint8)
    k = max(3, int(round(2.5 * ppm)) | 1)  # strokes (even where pulse, QRS and ticks merge) are thinner
    thick = cv2.morphologyEx(m, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    thick = cv2.dilate(thick, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)))
    # long straight lines are paper edges, folds or ruled borders, never a trace
    lv = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((int(25 * ppm), 1), np.uint8))
    lh = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((1, int(40 * ppm)), np.uint8))
    lines = cv2.dilate(np.maximum(lv, lh), np.ones((3, 3), np.uint8))
    return (m > 0) & (thick == 0) & (lines == 0)


@dataclass
class Rows:
    centres: np.ndarray  # frame mm (upright frame), baseline estimates
    left: np.ndarray
    right: np.ndarray
    pulse: np.ndarray  # per row: pulse found at the left end
    left_cut: np.ndarray = field(default_factory=lambda: np.array([], bool))  # row runs off the paper/image
    right_cut: np.ndarray = field(default_factory=lambda: np.array([], bool))
    extras: dict = field(default_factory=dict)


EDGE_REACH_MM = 15.0  # a paper edge runs on this far above and below a row's baseline
EDGE_FILL = 0.8  # ... with ink in this share of its raster rows; a pulse's stroke fills ~0.35 of them
EDGE_FILL_ISOLATED = 0.4  # ... or in this share when it stands apart from the row's ink
EDGE_GAP_MM = 6.0  # apart: this much empty band between (a pulse's strokes are 5 mm apart)
EDGE_WIDTH_MM = 3.0  # an edge's ink at a row end is at most this wide
EDGE_HALF_MM = 1.0  # half width of the column window an edge is looked for in


def _paper_edges(
    mask: np.ndarray, cov: np.ndarray, b: int, left: int, right: int, ppm: float
) -> tuple[int | None, int | None]:
    """Columns of a paper edge at the row's ink ends (None: not an edge), so the row ends are read inside it.

    A photographed page's edge (curled, torn, or a screen's border) darkens a ragged or dashed line the
    ink mask keeps; it runs on across the rows, while a pulse stroke or a first QRS stops within ~10 mm of
    the baseline. Left unread, it put a 0010 photo's row starts 11 mm left of its pulses, and a screen
    photo's rows ended on the paper's right border (x 15 mm off both times). `cov`: the row band's ink
    columns.
    """
    h = mask.shape[0]
    reach, half = int(EDGE_REACH_MM * ppm), max(1, int(EDGE_HALF_MM * ppm))
    lo, hi = max(0, b - reach), min(h, b + reach)
    if hi - lo < reach:
        return None, None
    ink = np.flatnonzero(cov)

    def is_edge(c: int, side: int) -> bool:
        win = mask[lo:hi, max(0, c - half) : c + half + 1]
        fill = float(win.any(axis=1).mean()) if win.size else 0.0
        if fill >= EDGE_FILL:
            return True
        # the end's cluster of ink columns: narrow, and a clear gap before the rest of the row
        seq = ink[ink >= c] if side > 0 else ink[ink <= c][::-1]
        if fill < EDGE_FILL_ISOLATED or len(seq) < 2:
            return False
        big = np.flatnonzero(np.abs(np.diff(seq)) > EDGE_GAP_MM * ppm)
        return bool(len(big) and abs(int(seq[big[0]]) - c) <= EDGE_WIDTH_MM * ppm)

    return (left if is_edge(left, 1) else None), (right if is_edge(right, -1) else None)


MIN_ROW_STROKES = 3  # steep strokes (QRS, pulse) a trace row has; a ruled line or a paper edge has 0-1
STROKE_MM = 2.0  # a stroke leaves the baseline (+-1 mm) by at least this much in one raster column


def _strokes(mask: np.ndarray, b: int, ppm: float, bridge: bool = False) -> int:
    """Steep strokes leaving the baseline raster row `b`: groups of columns whose ink runs unbroken from
    within 1 mm of it to at least STROKE_MM beyond (within 8 mm). `bridge`: the raster is enlarged from
    a coarser image (`COARSE_PPM`), whose 1 px strokes come out faint: a stroke may then lean a column and
    lose a raster row where it crosses a grid line, and both are bridged.

    A trace row has one or more per beat (10-18 on a 3x4 row); a photographed page's dashed or wavy edge
    has none, yet the profile took such edges for rows (a screen photo's top and bottom edge made six rows
    of four and the page was read as 3x4+3R, 100 mm off).
    """
    h, w = mask.shape
    near_px, band_px = max(1, int(ppm)), int(8 * ppm)
    lo, hi = max(0, b - near_px), min(h, b + near_px + 1)
    if lo >= hi:
        return 0
    if bridge:
        m8 = cv2.dilate(mask.astype(np.uint8), np.ones((1, 3), np.uint8))
        mask = cv2.morphologyEx(m8, cv2.MORPH_CLOSE, np.ones((3, 1), np.uint8)) > 0
    near = mask[lo:hi].any(axis=0)
    run = np.zeros(w, np.int32)
    alive = near.copy()
    for r in range(lo - 1, max(0, b - band_px) - 1, -1):
        alive &= mask[r]
        run += alive
    alive = near.copy()
    for r in range(hi, min(h, b + band_px)):
        alive &= mask[r]
        run += alive
    cols = np.flatnonzero(run >= STROKE_MM * ppm)
    return 0 if not len(cols) else 1 + int((np.diff(cols) > ppm).sum())


# a trace row found on the mask: (baseline mm, left end mm, right end mm, pulse at its left, left cut,
# right cut)
RowFit = tuple[float, float, float, bool, bool, bool]
ROW_PEAK_MM = 9.0  # profile peaks closer than this are one row (its waves, its label beside it)
LATTICE_PEAK_MM = 6.0  # ... looked for this close again where the rows' pitch says one is missing
LATTICE_TOL = 0.25  # a gap of k pitches (within this share) between two rows holds k - 1 rows
LATTICE_NEAR = 0.3  # ... each within this share of a pitch of its place (baselines wander)
LATTICE_MIN_PITCH_MM = 8.0  # rows closer than this are not a page's rows
LATTICE_END_MM = 10.0  # a row past the block starts and ends this near where the others do


def _rows(
    mask: np.ndarray,
    x0: float,
    y0: float,
    ppm: float,
    valid: np.ndarray | None = None,
    lattice: bool = True,
    bridge: bool = False,
) -> Rows:
    """Trace rows of an upright ink mask: peaks of the horizontal projection that span most of the width.

    A row whose trace barely leaves its baseline (a low-voltage lead III or aVL; a 5 mm/mV page) has
    too few steep strokes to tell it from a paper edge, and a row closer than ROW_PEAK_MM to a taller
    neighbour's peak is lost in it; either is kept where the page's other rows leave a gap of whole row
    pitches around it (`_on_lattice`): a cart prints its rows at one pitch, and an edge lies outside them.
    `lattice` False: strong rows only (a mask full of grid-line bits has weak rows everywhere).
    `bridge`: strokes counted as on a coarse image's raster (`_strokes`).
    """
    prof = gaussian_filter1d(mask.mean(axis=1).astype(float), 1.0 * ppm)
    if prof.max() <= 0:
        return Rows(np.array([]), np.array([]), np.array([]), np.array([], bool))
    kw = {"height": 0.15 * prof.max(), "prominence": 0.08 * prof.max()}
    peaks, _ = find_peaks(prof, distance=int(ROW_PEAK_MM * ppm), **kw)
    close, _ = find_peaks(prof, distance=max(1, int(LATTICE_PEAK_MM * ppm)), **kw)
    width = _ink_width(mask)
    strong: list[RowFit] = []
    weak: list[RowFit] = []
    for p in peaks:
        got = _row_at(mask, p, 8.0, width, x0, y0, ppm, valid, bridge)
        if got is not None:
            (strong if got[1] else weak).append(got[0])
    for p in np.setdiff1d(close, peaks):
        d = float(np.min(np.abs(peaks - p))) / ppm if len(peaks) else 8.0 / 0.45
        got = _row_at(mask, p, min(8.0, 0.45 * d), width, x0, y0, ppm, valid, bridge)
        if got is not None:
            weak.append(got[0])
    filled = _on_lattice(strong, weak) if lattice else []
    found = sorted(strong + filled, key=lambda r: r[0])
    return Rows(
        np.array([r[0] for r in found]),
        np.array([r[1] for r in found]),
        np.array([r[2] for r in found]),
        np.array([r[3] for r in found], bool),
        np.array([r[4] for r in found], bool),
        np.array([r[5] for r in found], bool),
    )


def _on_lattice(strong: list[RowFit], weak: list[RowFit]) -> list[RowFit]:
    """The weak rows (centre mm, left, right, ...) a cart's one row pitch puts on the page: in gaps of
    whole pitches between two strong rows (the pitch is their smallest gap; a gap of k pitches, within
    LATTICE_TOL, holds k - 1 rows, each the weak row nearest its place within LATTICE_NEAR pitches),
    then one pitch on from either end of the block, row after row, where a weak row also starts and
    ends where the strong rows do (within LATTICE_END_MM): a header line, a footer or a paper edge does
    not (12x1 chest rows with small QRS and broad T waves have few steep strokes)."""
    c = np.sort(np.asarray([r[0] for r in strong], np.float64))
    if len(c) < 2 or not weak:
        return []
    gaps = np.diff(c)
    pitch = float(gaps.min())
    if pitch < LATTICE_MIN_PITCH_MM:
        return []
    out: list[RowFit] = []

    def nearest(want: float, step: float) -> RowFit | None:
        near = [r for r in weak if abs(r[0] - want) <= LATTICE_NEAR * step and r not in out]
        return min(near, key=lambda r: abs(r[0] - want)) if near else None

    for a, g in zip(c[:-1], gaps, strict=True):
        k = int(round(g / pitch))
        if k < 2 or abs(g / k - pitch) > LATTICE_TOL * pitch:
            continue
        for j in range(1, k):
            got = nearest(a + j * g / k, g / k)
            if got is not None:
                out.append(got)
    left = float(np.median([r[1] for r in strong]))
    right = float(np.median([r[2] for r in strong]))
    for sign, end in ((-1.0, float(c[0])), (1.0, float(c[-1]))):
        while True:
            got = nearest(end + sign * pitch, pitch)
            if got is None or abs(got[1] - left) > LATTICE_END_MM or abs(got[2] - right) > LATTICE_END_MM:
                break
            out.append(got)
            end = got[0]
    return out


# rows found on one pitch name their own count only from this many on: three rows of a 3x4+1R page whose
# strip was missed took 3x4 and lost it (Kaggle-type 0003 and 0010 pages, 22.20 -> 22.04 dB, session 17)
ONE_PITCH_MIN_ROWS = 6
ROW_COUNTS = (3, 4, 6, 7, 12)  # the row counts of the named layouts (ROWS_TO_LAYOUT, six rows)
PITCH_EVEN = 0.1  # a block of rows is on one pitch when every gap is within this share of their median
PITCH_OFF = 0.25  # an end row this far (share of the pitch) off the block's pitch is no row of it
MIN_PITCH_GAPS = 4  # a pitch is known from at least this many gaps of one block
COMPLETE_MAX = 2  # at most this many rows added to reach a named row count


def _even(c: np.ndarray) -> float | None:
    """The pitch of baselines `c` (sorted) when every gap is within PITCH_EVEN of it, else None."""
    if len(c) < 2:
        return None
    gaps = np.diff(c)
    pitch = float(np.median(gaps))
    if pitch < LATTICE_MIN_PITCH_MM or np.any(np.abs(gaps - pitch) > PITCH_EVEN * pitch):
        return None
    return pitch


def on_one_pitch(rows: Rows) -> bool:
    """Whether `rows` are three or more rows on one pitch (`_even`), as a cart prints them (two rows
    are always on their one gap's pitch)."""
    return len(rows.centres) >= 3 and _even(np.sort(rows.centres)) is not None


def _keep_rows(rows: Rows, idx: np.ndarray) -> Rows:
    """`rows` with only the rows at `idx` (its extras kept)."""

    def pick(a: np.ndarray) -> np.ndarray:
        return a[idx] if len(a) == len(rows.centres) else a

    return Rows(
        rows.centres[idx], rows.left[idx], rows.right[idx], rows.pulse[idx], pick(rows.left_cut),
        pick(rows.right_cut), dict(rows.extras),
    )  # fmt: skip


def _with_row(rows: Rows, row: RowFit) -> Rows:
    """`rows` with `row` added in baseline order."""
    n = len(rows.centres)

    def cut(a: np.ndarray) -> np.ndarray:
        return a if len(a) == n else np.zeros(n, bool)

    c = np.append(rows.centres, row[0])
    order = np.argsort(c, kind="stable")
    return Rows(
        c[order], np.append(rows.left, row[1])[order], np.append(rows.right, row[2])[order],
        np.append(rows.pulse, row[3])[order], np.append(cut(rows.left_cut), row[4])[order],
        np.append(cut(rows.right_cut), row[5])[order], dict(rows.extras),
    )  # fmt: skip


CUT_ROW_INK = 0.25  # share of the rows' columns a row cut by the image's border still shows ink in
BARE_INK = 0.05  # ... and at most this share at the other end's place (bare paper)


def _cut_row(
    rows: Rows,
    mask: np.ndarray,
    valid: np.ndarray | None,
    ext: tuple[float, float, float, float],
    ppm: float,
    pitch: float,
) -> RowFit | None:
    """The row one pitch past the end where the image's border cuts a row off (part of its band outside
    the image, ink in CUT_ROW_INK of the rows' columns: the tops of its waves) while the other end's place
    is bare paper; None otherwise. A text line inside the image is no such row."""
    if valid is None or len(rows.centres) < 2:
        return None
    h, w = mask.shape
    c = rows.centres
    left, right = float(np.median(rows.left)), float(np.median(rows.right))
    x0 = int(np.clip((left - ext[0]) * ppm, 0, w - 1))
    x1 = int(np.clip((right - ext[0]) * ppm, x0 + 1, w))
    ink, cut = [], []
    for end in (float(c[0]) - pitch, float(c[-1]) + pitch):
        lo, hi = int(round((end - 3.0 - ext[1]) * ppm)), int(round((end + 3.0 - ext[1]) * ppm))
        band = mask[max(0, lo) : max(0, min(h, hi)), x0:x1]
        ink.append(float(band.any(axis=0).mean()) if band.size else 0.0)
        half = int(0.5 * pitch * ppm)
        vb = valid[max(0, lo - half) : max(0, min(h, hi + half)), x0:x1]
        cut.append(lo - half < 0 or hi + half > h or not vb.size or float(vb.mean()) < 0.9)
    for i, end in ((0, float(c[0]) - pitch), (1, float(c[-1]) + pitch)):
        if ink[i] >= CUT_ROW_INK and cut[i] and ink[1 - i] < BARE_INK:
            return (end, left, right, False, False, True)
    return None


def _ink_width(mask: np.ndarray) -> int:
    """Columns from the mask's first inked column to its last (its width when none is inked)."""
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[-1] - cols[0] + 1) if len(cols) else mask.shape[1]


def on_pitch(
    rows: Rows,
    mask: np.ndarray,
    ext: tuple[float, float, float, float],
    ppm: float = ORIENT_PPM,
    valid: np.ndarray | None = None,
) -> Rows:
    """The rows a cart's one pitch says the page prints, when the rows found are no named count.

    A cart prints its rows at one pitch. An end row off the pitch of an even block of at least
    MIN_PITCH_GAPS gaps (a header or footer line, PITCH_OFF of a pitch or more off) is dropped; when the
    rows left are no named count (ROW_COUNTS) but fewer by at most COMPLETE_MAX, the trace row one
    pitch past an end is looked for on the mask (`_row_at`, without the strokes and ends the first
    search asks: a flat lead, a row cut by the photo's border) and added when exactly one end has it
    (both: which end the page lost is not known, and a row named after its neighbour is worse than a
    lost row). Otherwise `rows` unchanged. Without this, a 6x2 page with one row missed, or a 12x1 page
    with its top row cut, was read as the 3x4+1R default at its template's places (validation pages).
    Rows found that are no named count and stand off the lattice of a block of six or more rows on one
    pitch are dropped first (`_pitch_block`)."""
    c = rows.centres
    n = len(c)
    out = rows
    if n >= MIN_PITCH_GAPS + 2:
        for drop, keep in ((0, np.arange(1, n)), (n - 1, np.arange(n - 1))):
            pitch = _even(c[keep])
            gap = abs(c[drop] - c[keep[0] if drop == 0 else keep[-1]])
            if pitch is not None and abs(gap - pitch) > PITCH_OFF * pitch:
                out = _keep_rows(rows, keep)
                out.extras["rows_dropped"] = round(float(c[drop]), 1)
                break
    if len(out.centres) not in ROW_COUNTS:
        block = _pitch_block(out.centres)
        if block is not None:
            off = np.setdiff1d(np.arange(len(out.centres)), block)
            out.extras["rows_off_pitch"] = [round(float(v), 1) for v in out.centres[off]]
            out = _keep_rows(out, block)
    out = _gaps_filled(out, mask, ext, ppm, valid)
    c = out.centres
    pitch = _even(c) if len(c) > MIN_PITCH_GAPS else None
    need = min((k for k in ROW_COUNTS if k >= len(c)), default=0) - len(c)
    if pitch is None or not 0 < need <= COMPLETE_MAX:
        return out
    h = mask.shape[0]
    width = _ink_width(mask)
    for _ in range(need):
        found = []
        for end in (float(c[0]) - pitch, float(c[-1]) + pitch):
            p = int(round((end - ext[1]) * ppm))
            if not 0 <= p < h:
                continue
            got = _row_at(mask, p, LATTICE_NEAR * pitch, width, ext[0], ext[1], ppm, valid)
            if got is not None and abs(got[0][0] - end) <= LATTICE_NEAR * pitch:
                found.append(got[0])
        if not found:
            cut = _cut_row(out, mask, valid, ext, ppm, pitch)
            found = [cut] if cut is not None else []
        if len(found) != 1:
            return out
        out = _with_row(out, found[0])
        out.extras["rows_added"] = out.extras.get("rows_added", 0) + 1
        c = out.centres
    return out


def _pitch_block(c: np.ndarray) -> np.ndarray | None:
    """Indices of the baselines `c` (sorted) on the lattice of their longest block on one pitch (each
    row one pitch, within PITCH_EVEN, below the last), when that block holds ONE_PITCH_MIN_ROWS rows or
    more, most rows are on its lattice and some stand off it; else None. A cart prints its rows at one
    pitch: rows off it among and around them are text lines, a header or footer, or grid remnants taken
    for trace (a 6x1 photo, its trace found by shape: 10 rows, six of them 38.5 mm apart). Rows on the
    lattice past a gap in the block stay (`_gaps_filled` fills the gap)."""
    n = len(c)
    best: list[int] = []
    for i in range(n):
        for j in range(i + 1, n):
            pitch = float(c[j] - c[i])
            if pitch < LATTICE_MIN_PITCH_MM:
                continue
            block = [i, j]
            while True:
                near = np.abs(c - (c[block[-1]] + pitch))
                k = int(np.argmin(near))
                if near[k] > PITCH_EVEN * pitch or k in block:
                    break
                block.append(k)
            if len(block) > len(best):
                best = block
    if len(best) < ONE_PITCH_MIN_ROWS:
        return None
    even = _even(c[np.array(best)])
    if even is None:
        return None
    steps = (c - c[best[0]]) / even
    on = np.flatnonzero(np.abs(steps - np.round(steps)) <= PITCH_EVEN)
    # most rows found must be on it: among many stray rows (a crumpled photo's 16) six on one pitch
    # may be chance
    return on if n / 2 < len(on) < n else None


def _gaps_filled(
    rows: Rows, mask: np.ndarray, ext: tuple[float, float, float, float], ppm: float, valid: np.ndarray | None
) -> Rows:
    """`rows` with the rows missed inside their block: where the rows found are no named count and every
    gap is a whole number of one pitch (PITCH_EVEN; at least MIN_PITCH_GAPS gaps of one pitch), each
    place a row is missing from is looked for on the mask (`_row_at`, as at the ends) and added when a
    trace row is there. All or nothing: a gap whose rows are not all on the mask is a page's own gap
    (a 12x1 page with a flat aVL row and tall QRS around it: 9 of 12 rows found, read as 3x4+1R)."""
    c = rows.centres
    if len(c) in ROW_COUNTS or len(c) < MIN_PITCH_GAPS + 2:
        return rows
    gaps = np.diff(c)
    pitch = float(np.median(gaps))
    k = np.round(gaps / pitch) if pitch >= LATTICE_MIN_PITCH_MM else np.zeros_like(gaps)
    if (
        np.any(k < 1)
        or np.any(np.abs(gaps - k * pitch) > PITCH_EVEN * pitch)
        or int((k == 1).sum()) < MIN_PITCH_GAPS
        or not 0 < int((k - 1).sum()) <= COMPLETE_MAX
    ):
        return rows
    width = _ink_width(mask)
    out = rows
    for i in np.flatnonzero(k > 1):
        step = gaps[i] / k[i]
        for j in range(1, int(k[i])):
            want = float(c[i] + j * step)
            p = int(round((want - ext[1]) * ppm))
            got = _row_at(mask, p, LATTICE_NEAR * pitch, width, ext[0], ext[1], ppm, valid, flat=True)
            if got is None or abs(got[0][0] - want) > LATTICE_NEAR * pitch:
                return rows
            out = _with_row(out, got[0])
    out.extras["rows_filled"] = int((k - 1).sum())
    return out


def _row_at(
    mask: np.ndarray,
    p: int,
    half_mm: float,
    width: int,
    x0: float,
    y0: float,
    ppm: float,
    valid: np.ndarray | None,
    bridge: bool = False,
    flat: bool = False,
) -> tuple[RowFit, bool] | None:
    """The trace row at profile peak `p` (raster row): ((centre mm, left mm, right mm, pulse, left cut,
    right cut), whether it has MIN_ROW_STROKES steep strokes), or None when it is no trace row (a text
    line, a ruled line). The baseline is looked for within `half_mm` of the peak. `flat`: a row that
    stays at its baseline on almost every column (a low-voltage lead) is a trace row if it has steep
    strokes (a ruled line has none), where the rows around say a row stands there."""
    h, w = mask.shape
    band = mask[max(0, p - int(3 * ppm)) : p + int(3 * ppm)]
    cov = band.any(axis=0)
    xs = np.flatnonzero(cov)
    if len(xs) == 0:
        return None
    coverage = gaussian_filter1d(cov.astype(float), 2 * ppm)
    if (coverage > 0.5).sum() < 0.45 * width:
        return None  # a text line, not a trace row
    # baseline: the mode of the ink rows in a +-8 mm band (the trace rests on it between beats)
    lo, hi = max(0, p - int(half_mm * ppm)), min(h, p + int(half_mm * ppm))
    hist = gaussian_filter1d(mask[lo:hi].sum(axis=1).astype(float), 0.3 * ppm)
    b = lo + int(np.argmax(hist))
    # a trace leaves its baseline (QRS, T waves); a ruled line or a paper edge does not
    near = np.asarray(mask[max(0, b - int(0.5 * ppm)) : b + int(0.5 * ppm) + 1].any(axis=0))
    span_cols = near[xs[0] : xs[-1] + 1]
    ruled = bool(span_cols.size and span_cols.mean() > 0.97)
    if ruled and not flat:
        return None
    # a dashed or wavy line (a paper edge) has no steep strokes; nor has a low-voltage trace
    steep = _strokes(mask, b, ppm, bridge) >= MIN_ROW_STROKES
    if ruled and not steep:
        return None
    # robust ends: 0.5 % / 99.5 % of the ink columns in the band
    wts = band.sum(axis=0).astype(float)
    cdf = np.cumsum(wts) / max(wts.sum(), 1)
    left = int(np.searchsorted(cdf, 0.002))
    right = int(np.searchsorted(cdf, 0.998))
    edge_l: int | None = None
    edge_r: int | None = None
    for _ in range(3):  # a ragged edge is a few columns wide: look again just inside it
        el, er = _paper_edges(mask, np.asarray(cov), b, left, right, ppm)
        if el is None and er is None:
            break
        edge_l, edge_r = (el if el is not None else edge_l), (er if er is not None else edge_r)
        if el is not None:
            wts[: el + int(EDGE_HALF_MM * ppm) + 1] = 0
        if er is not None:
            wts[er - int(EDGE_HALF_MM * ppm) :] = 0
        if wts.sum() <= 0:
            break
        cdf = np.cumsum(wts) / wts.sum()
        left = int(np.searchsorted(cdf, 0.002))
        right = int(np.searchsorted(cdf, 0.998))
    # pulse: ink above the baseline over ~10 mm at the row's left end (two vertical strokes)
    win = mask[max(0, b - int(9 * ppm)) : max(0, b - int(2 * ppm)), left : left + int(7 * ppm)]
    if bridge and win.size:  # a pulse's 1 px sides lose raster rows as QRS strokes do (`_strokes`)
        win = cv2.morphologyEx(win.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 1), np.uint8)) > 0
    pulse = bool(win.size and (win.mean(axis=0) > 0.6).sum() >= 2)
    lcut = rcut = False
    if valid is not None:
        vb = np.asarray(valid[max(0, b - int(2 * ppm)) : b + int(2 * ppm)].all(axis=0))
        vx = np.flatnonzero(vb)
        margin = int(2.5 * ppm)
        lcut = bool(
            not len(vx) or left - vx[0] < margin or not vb[max(0, left - margin) : left].all()
            or (edge_l is not None and left - edge_l < margin)
        )  # fmt: skip
        rcut = bool(
            not len(vx) or vx[-1] - right < margin or not vb[right : right + margin].all()
            or (edge_r is not None and edge_r - right < margin)
        )  # fmt: skip
    row = (y0 + (b + 0.5) / ppm, x0 + (left + 0.5) / ppm, x0 + (right + 0.5) / ppm, pulse, lcut, rcut)
    return row, steep


WAVE_LO_MM, WAVE_HI_MM = 9.0, 16.0  # the band above and below a baseline where only tall waves reach
WAVE_MIN_SPAN_MM = 2.0  # narrower than this (rows closer than ~22 mm): the row casts no wave vote
# the wave votes count in full only where this many rows cast one: one or two rows' bands can hold text, a
# pen mark or a neighbour row the profile missed, and nothing outvotes them (validation cabrera-12x1_004, a
# 12-row page with one row voting, and a photo's boxes with one row each, panels-3x4+1R_001, read turned)
WAVE_FULL_ROWS = 3


def _upright_score(mask: np.ndarray, rows: Rows, ext: tuple[float, float, float, float], ppm: float) -> float:
    """Evidence (>0) that the raster (upright extent `ext` = x0, y0, x1, y1) is upright, not turned 180."""
    if len(rows.centres) == 0:
        return 0.0
    x0, y0, _x1, y1 = ext
    score = 0.0
    # waves point up: tall R (and T) waves rise further above the baseline than Q/S waves dip below.
    # Only excursions beyond 9 mm count: lead labels sit 3-8 mm below (Kaggle) and would vote too.
    # Each side looks at most halfway to the next row: closer rows (12x1, 6x1 pages at ~16 mm pitch)
    # put the neighbour's trace in the window, and the first and last rows then voted the page turned.
    cs = np.sort(rows.centres)
    votes: list[float] = []
    for b, lft, rgt in zip(rows.centres, rows.left, rows.right, strict=True):
        above, below = cs[cs < b], cs[cs > b]
        reach_up = min(WAVE_HI_MM, 0.5 * (b - above.max())) if above.size else WAVE_HI_MM
        reach_dn = min(WAVE_HI_MM, 0.5 * (below.min() - b)) if below.size else WAVE_HI_MM
        reach = min(reach_up, reach_dn)
        if reach - WAVE_LO_MM < WAVE_MIN_SPAN_MM:
            continue  # rows too close to tell a wave from the neighbour
        bi = int((b - y0) * ppm)
        li, ri = max(0, int((lft - x0) * ppm)), int((rgt - x0) * ppm)
        lo, hi = int(WAVE_LO_MM * ppm), int(reach * ppm)
        up = mask[max(0, bi - hi) : max(0, bi - lo), li:ri]
        dn = mask[bi + lo : bi + hi, li:ri]
        fu = float(up.any(axis=0).mean()) if up.size else 0.0
        fd = float(dn.any(axis=0).mean()) if dn.size else 0.0
        votes.append(1.5 * float(np.clip((fu - fd) / 0.01, -1, 1)))
    score += min(1.0, len(votes) / WAVE_FULL_ROWS) * sum(votes)
    # header zone: more empty grid above the first row than below the last
    top, bottom = rows.centres.min() - y0, y1 - rows.centres.max()
    score += 1.0 * np.clip((top - bottom) / max(top + bottom, 1.0), -1, 1)
    return float(score)


def turned_extent(k: int, ext: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = ext
    c = np.array([[x0, y0, 1], [x1, y0, 1], [x1, y1, 1], [x0, y1, 1]]) @ rot(k).T
    return float(c[:, 0].min()), float(c[:, 1].min()), float(c[:, 0].max()), float(c[:, 1].max())


PULSE_MM = (5.0, 10.0)  # standard calibration pulse: 0.2 s at 25 mm/s wide, 1 mV at 10 mm/mV tall
STANDARD_PULSE_MM = PULSE_MM[0]
PULSE_MIN_SCORE = 0.45
# heights looked for: 1 mV at 10, 20 and 5 mm/mV (a 20 mm pulse's top part passes for a 10 mm pulse 10 mm
# above the baseline, and a 10 mm pulse turned upside down for a 5 mm one: `taller` rejects both)
PULSE_HEIGHTS_MM = (10.0, 20.0, 5.0)
END_PULSE_RATIO = 3.0  # this much more trace ink before the pulses than after: they end the rows
END_PULSE_GAP_MM = 1.0  # the trace ends this far before an end pulse (the renderer's and Mortara's gap)
# votes for the image's own up (frame turn 0): photos and scans come upright far more often than not,
# so a page is turned 180 degrees only on more evidence than this (a small copy whose rows are too close
# for the wave votes had only the header vote, and ties went either way)
IMAGE_UP_PRIOR = 1.0
LONE_PULSE_WEIGHT = 2.0  # votes a single pulse-shaped mark adds to the upright score of its turn
# the ink piles up in rows along one axis this many times more than along the other: the page's rows run
# along it, and pulses stacked across it are not pulses (validation realworld 3x4_009: the wide QRS of
# two chest rows, read turned a quarter, stood as a 5 mm and a 10 mm pulse one above the other at one x,
# and the page was read turned; its ink's rows scored 0.32 along the image's x, 0.14 along its y)
AXIS_SURE = 1.5
TICK_ON, TICK_GAIN = 0.8, 0.3  # median tick strength that marks the cell boundaries; margin over the snap
TICK_REACH_MM, TICK_STEP_MM = 12.5, 0.5  # where else ticks are looked for around the snap, and how finely


FIND_FOOT = (-1, 3)  # `find_pulses`: the foot band below a pulse, in strokes from its baseline
FIND_RUN_MM = 3.0  # ... and the trace leaving its right foot it expects
TOP_RUN_MM, TOP_RUN_SHARE = 1.5, 0.8  # `top_runs_on`: ink at a match's top height on this share of columns
# over this length beside both its strokes: its top is a line running through, no pulse's top


def pulse_template(
    ppm: float,
    w_mm: float,
    h_mm: float,
    step_mm: float = 0.0,
    foot: tuple[int, int] = (1, 2),
    run_mm: float = 0.0,
) -> tuple[np.ndarray, int]:
    """Matched filter of a calibration pulse `w_mm` wide, `h_mm` tall (its right half `step_mm` tall on a
    step pulse): +1 on its strokes (up, across, down) and, `run_mm` > 0, on the trace leaving its right
    foot that far; -1 inside it, below its open foot (the rows `foot` strokes from its baseline: an
    upside-down pulse is closed there) and left of it.

    The page-wide search (`find_pulses`) looks for a box with the trace after it; the row-end reader
    (`pulses.find_row_pulses`) for the shape alone, of every width, height and step. Returns the
    template and the row of the baseline inside it."""
    w, h = int(round(w_mm * ppm)), int(round(h_mm * ppm))
    hs = int(round(step_mm * ppm)) if step_mm > 0 else h
    pad = int(round(1.0 * ppm))
    s = max(1, int(round(0.5 * ppm)))
    run = int(round(run_mm * ppm))
    t = np.zeros((h + 2 * pad + 2 * s, w + 2 * pad + run), np.float32)
    on = np.zeros_like(t, bool)
    inner = np.zeros_like(t, bool)
    xm = pad + (w // 2 if hs != h else w)  # where the top steps down
    on[pad - s // 2 : pad + h, pad - s // 2 : pad - s // 2 + s] = True  # left stroke
    on[pad - s // 2 : pad - s // 2 + s, pad - s // 2 : xm + s] = True  # top (left half on a step)
    if hs != h:
        top2 = pad + h - hs
        on[pad - s // 2 : top2 + s, xm - s // 2 : xm - s // 2 + s] = True  # the step down
        on[top2 - s // 2 : top2 - s // 2 + s, xm - s // 2 : pad + w + s] = True  # lower top
        inner[top2 + 2 * s : pad + h - s, xm + s : pad + w - 2 * s] = True
        inner[pad + 2 * s : pad + h - s, pad + 2 * s : xm - 2 * s] = True
    else:
        inner[pad + 2 * s : pad + h - s, pad + 2 * s : pad + w - 2 * s] = True
    on[pad + h - hs - s // 2 : pad + h, pad + w - s // 2 : pad + w - s // 2 + s] = True  # right stroke
    trace = np.zeros_like(t, bool)
    if run > 0:
        trace[pad + h - 2 * s : pad + h + 2 * s, pad + w + s : pad + w + run] = True
    outer = np.zeros_like(t, bool)  # left of the box: paper
    outer[pad + 2 * s : pad + h - s, : max(1, pad - 2 * s)] = True
    below = np.zeros_like(t, bool)  # open at the bottom
    below[pad + h + foot[0] * s : pad + h + foot[1] * s, pad + 2 * s : pad + w - 2 * s] = True
    t[on] = 1.0 / on.sum()
    if run > 0:  # the trace crosses its band once per column: about a quarter of the band's pixels
        t[trace] = 0.25 / max(trace.sum() / 4, 1)
    t[inner] = -1.0 / max(inner.sum(), 1)
    t[outer] = -0.5 / max(outer.sum(), 1)
    t[below] = -1.0 / max(below.sum(), 1)
    return t, pad + h


def find_pulses(
    mask: np.ndarray, ppm: float, heights: tuple[float, ...] = PULSE_HEIGHTS_MM
) -> list[tuple[float, float, float]]:
    """Calibration pulses in an upright ink mask: (score, left x px, baseline y px), strongest first.

    Candidates from the matched filter of each of `heights` (mm), each then checked part by
    part: both vertical strokes and the top present, the inside and the open foot empty (a straight line
    or a QRS alone cannot pass), and the strokes ending at the foot (else it is the top of a taller pulse).
    """
    f = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.6)
    np.minimum(f, 1.0, out=f)
    out = []
    for h_mm in heights:
        out += _pulses_of_height(f, ppm, h_mm)
    out.sort(key=lambda p: -p[0])
    return out


def _pulses_of_height(f: np.ndarray, ppm: float, h_mm: float) -> list[tuple[float, float, float]]:
    t, base = pulse_template(ppm, PULSE_MM[0], h_mm, foot=FIND_FOOT, run_mm=FIND_RUN_MM)
    if f.shape[0] < t.shape[0] or f.shape[1] < t.shape[1]:
        return []
    sc = cv2.matchTemplate(f, t, cv2.TM_CCORR)
    pad = int(round(1.0 * ppm))
    w, h = int(round(PULSE_MM[0] * ppm)), int(round(h_mm * ppm))
    s = max(1, int(round(0.5 * ppm)))
    k = max(3, int(6 * ppm) | 1)
    peaks = (sc == cv2.dilate(sc, np.ones((k, k), np.uint8))) & (sc > PULSE_MIN_SCORE)
    out = []
    for y, x in np.argwhere(peaks):
        top, left = y + pad, x + pad  # box corner in the mask
        c = f[top - s : top + h + 3 * s, left - s : left + w + s]
        if c.shape != (h + 4 * s, w + 2 * s):
            continue
        # each stroke: the share of its rows/columns that carry ink (tolerant to 1 px misalignment)
        lft = c[s : s + h, : 2 * s].max(axis=1).mean()
        rgt = c[s : s + h, w : w + 2 * s].max(axis=1).mean()
        tp = c[: 2 * s, 2 * s : w].max(axis=0).mean()
        inside = c[3 * s : h - s, 3 * s : w - s].mean()
        foot = c[h + s : h + 3 * s, 3 * s : w - s].mean()
        if min(lft, rgt, tp) < 0.6 or inside > 0.15 or foot > 0.25:
            continue
        if top_runs_on(f, left, top, w, ppm):
            continue  # a baseline between two spikes pointing down (a page turned 180), not a pulse's top
        if taller(f, left, top + h, w, ppm):
            continue  # the top part of a taller pulse (found by its own height): its foot is no baseline
        out.append((float((lft + rgt + tp) / 3 - inside - foot), float(left), float(y + base)))
    return out


def top_runs_on(f: np.ndarray, left: int, top: int, w: int, ppm: float) -> bool:
    """The top of a pulse-shaped match runs on as a line past both its strokes: the match is a stretch of
    baseline between two spikes pointing down (the R waves of a page turned 180 degrees; the rows' beats
    are simultaneous, so such pairs stack at one x like a column of pulses: validation realworld
    panels-3x4+1R_006, a fast heart at 12.5 mm/s, R waves 5 mm apart). A pulse's top ends at its corners:
    beside them, at its height, is paper (the trace comes in and leaves at its foot)."""
    s = max(1, int(round(0.5 * ppm)))
    n = max(2, int(round(TOP_RUN_MM * ppm)))
    band = f[max(0, top - 2 * s) : top + 2 * s + 1]
    shares = []
    for a in (left - 2 * s - n, left + w + 2 * s):
        if a < 0 or a + n > f.shape[1]:
            return False
        shares.append(float((band[:, a : a + n] > 0.5).any(axis=0).mean()))
    return min(shares) >= TOP_RUN_SHARE


def stroke_ends(f: np.ndarray, left: int, foot: int, w: int, ppm: float) -> tuple[int, int]:
    """How far (px) below `foot` the left and right strokes of a pulse-shaped match go on (1 px gaps
    bridged): a pulse's strokes end in its baseline (about half a stroke below), those of a taller
    pulse's top part go on to its foot."""
    s = max(1, int(round(0.5 * ppm)))
    out = []
    for c0 in (left, left + w):
        col = f[:, max(0, c0 - s) : c0 + s + 1].max(axis=1) if 0 <= c0 < f.shape[1] else np.zeros(0)
        y, gap = foot, 0
        while y + 1 < len(col) and gap <= 1:
            y += 1
            gap = 0 if col[y] > 0.5 else gap + 1
        out.append(max(0, y - gap - foot))
    return out[0], out[1]


def taller(f: np.ndarray, left: int, foot: int, w: int, ppm: float) -> bool:
    """Both strokes of a pulse-shaped match go on more than 2 mm below its foot: the match is the top
    part of a taller (20 mm/mV) pulse, and its foot is not the row's baseline."""
    return min(stroke_ends(f, left, foot, w, ppm)) > 2.0 * ppm


PULSE_ROW_MM = 12.0  # pulses of one stack closer than this are one row's (and a false match beside it)
PULSE_DENSE_MM = 7.0  # ... unless the closer ones stand at one pitch (12 rows on a page: ~10 mm apart)
PULSE_PITCH_TOL = 0.15  # every gap of a stack a whole number of its pitch, within this share
# the stack's pitch: the median of its gaps under this many times its smallest (one pitch each). A bent
# photo's map stretches one part of a stack and squeezes another: validation cabrera-12x1_001's twelve
# pulses stood 9.0 to 10.6 mm apart (10.6 is 1.18 of the smallest gap, 1.09 of their median 9.7), and
# measured by the smallest gap every other pulse and row was lost (read as six rows, 6x1-chest)
SINGLE_GAP = 1.5


def _one_per_row(grp: list[tuple[float, float, float]], apart_px: float) -> list[tuple[float, float, float]]:
    keep: list[tuple[float, float, float]] = []
    for p in grp:
        if all(abs(p[2] - q[2]) > apart_px for q in keep):
            keep.append(p)
    return keep


def _regular(ys: list[float]) -> bool:
    """Whether the baselines stand at one pitch: every gap a whole number of pitches (the median of the
    gaps under SINGLE_GAP times the smallest), within PULSE_PITCH_TOL."""
    g = np.diff(np.sort(np.asarray(ys, np.float64)))
    if len(g) < 2 or g.min() <= 0:
        return False
    pitch = float(np.median(g[g < SINGLE_GAP * g.min()]))
    r = g / pitch
    return bool(np.all((np.round(r) >= 1) & (np.abs(r - np.round(r)) <= PULSE_PITCH_TOL)))


def _aligned(pulses: list[tuple[float, float, float]], ppm: float) -> list[tuple[float, float, float]]:
    """The largest group of pulses stacked at one x (one per row), as rows of a page have them: pulses
    closer than PULSE_ROW_MM count as one row's, unless taking them gives a stack at one pitch (a 12-row
    page at 5 mm/mV prints its pulses ~10 mm apart, and every other row was lost)."""
    best: list[tuple[float, float, float]] = []
    for _, x, _ in pulses[:20]:
        grp = [p for p in pulses if abs(p[1] - x) < 3 * ppm]
        keep = _one_per_row(grp, PULSE_ROW_MM * ppm)
        dense = _one_per_row(grp, PULSE_DENSE_MM * ppm)
        if len(dense) > len(keep) and _regular([p[2] for p in dense]):
            keep = dense
        if len(keep) > len(best) or (
            len(keep) == len(best) and sum(q[0] for q in keep) > sum(q[0] for q in best)
        ):
            best = keep
    return sorted(best, key=lambda p: p[2])


def _rows_from_pulses(
    m: np.ndarray,
    pulses: list[tuple[float, float, float]],
    x0: float,
    y0: float,
    ppm: float,
    inside: np.ndarray,
) -> Rows:
    """Rows whose baselines are the pulses' feet (exactly 0 mV) and which start at the pulses' left edges;
    or, where the trace runs left of the pulses (Mortara-like pages print them at the row ends), rows that
    end END_PULSE_GAP_MM before them and start where their ink does (`pulse` then False: no start pulse)."""
    centres, lefts, rights, lcut, rcut = [], [], [], [], []
    h, w = m.shape
    bands = []
    for _s, px, py in pulses:
        b = int(round(py))
        band = m[max(0, b - int(3 * ppm)) : b + int(3 * ppm)]
        bands.append((b, int(px), band.sum(axis=0).astype(float)))
    # the trace's side: ink before the pulses against ink after them (a whole row against a few mm)
    pw = int(round((PULSE_MM[0] + 1.0) * ppm))
    before = sum(float(wts[:px].sum()) for _b, px, wts in bands)
    after = sum(float(wts[px + pw :].sum()) for _b, px, wts in bands)
    at_end = before > END_PULSE_RATIO * max(after, 1.0)
    margin = int(2.5 * ppm)
    for (b, px, wts), (_s, _px, py) in zip(bands, pulses, strict=True):
        vb = np.asarray(inside[max(0, b - int(2 * ppm)) : b + int(2 * ppm)].all(axis=0))
        if at_end:
            wts[px:] = 0
            cdf = np.cumsum(wts) / max(wts.sum(), 1)
            left = int(np.searchsorted(cdf, 0.002))
            lcut.append(not vb[max(0, left - margin) : left].all() or left < margin)
            rcut.append(False)  # the pulse marks the row's end
            lefts.append(x0 + (left + 0.5) / ppm)
            rights.append(x0 + px / ppm - END_PULSE_GAP_MM)
        else:
            wts[:px] = 0
            cdf = np.cumsum(wts) / max(wts.sum(), 1)
            right = int(np.searchsorted(cdf, 0.998))
            lcut.append(not vb[max(0, px - margin) : px].all() or px < margin)
            rcut.append(not vb[right : right + margin].all() or right + margin >= w)
            lefts.append(x0 + px / ppm)
            rights.append(x0 + (right + 0.5) / ppm)
        centres.append(y0 + py / ppm)
    n = len(centres)
    return Rows(
        np.array(centres), np.array(lefts), np.array(rights), np.full(n, not at_end), np.array(lcut, bool),
        np.array(rcut, bool), {"from": "pulses", "pulse_at_end": at_end, "pulses": n},
    )  # fmt: skip


MIN_ROW_PITCH_MM = 15.0  # closer rows than this are a row and its labels or text, not two rows
PITCH_FIT = 0.2  # a profile row within this share of the pitch of a predicted row confirms it


def _split_pitch(gap: float, pulsed: np.ndarray, prof: np.ndarray) -> float:
    """The row pitch when the smallest gap between pulsed rows may still span missed rows: `gap` / n for
    the largest n (at most 3) whose n - 1 rows in between the profile found, each within PITCH_FIT of the
    pitch of its predicted place. Two pulses of rows 1 and 3 of four (a 72 mm gap on a 36 mm pitch) let
    rows 2 and 4 pass for text beside a row, and a torn edge took their place (Kaggle-type 0010 ECG 43)."""
    if len(pulsed) < 2 or len(prof) == 0:
        return gap
    d = np.diff(pulsed)
    i = int(np.argmin(d))
    for n in (3, 2):
        p = gap / n
        if p < MIN_ROW_PITCH_MM:
            continue
        want = pulsed[i] + p * np.arange(1, n)
        if all(np.min(np.abs(prof - w)) <= PITCH_FIT * p for w in want):
            return p
    return gap


def _merge_rows(pulsed: Rows, prof: Rows) -> Rows:
    """Rows with a pulse keep its exact baseline; rows the profile found without one are added."""
    if len(prof.centres) == 0:
        return pulsed
    p = pulsed
    cen, lef, rig, pul, lc, rc = (
        list(a) for a in (p.centres, p.left, p.right, p.pulse, p.left_cut, p.right_cut)
    )
    x_left = float(np.median(pulsed.left)) if pulsed.pulse.any() else None  # start pulses only
    pc = np.sort(pulsed.centres)
    # the row pitch is the smallest gap: a row whose pulse was missed doubles its gap, and the median of
    # such gaps (3 pulses of 4 rows: 36 and 69 mm) made the missed row look like a neighbour's text
    pitch = float(np.min(np.diff(pc))) if len(pc) >= 2 else 30.0
    pitch = _split_pitch(pitch, pc, prof.centres)
    for i, c in enumerate(prof.centres):
        if len(cen) and np.min(np.abs(np.array(cen) - c)) < max(6.0, 0.75 * pitch):
            continue  # the same row, or text/footer just beside a row
        if len(pc) >= 2 and not (pc[0] - 1.25 * pitch <= c <= pc[-1] + 1.25 * pitch):
            continue  # header or footer lines far from the pulsed block
        cen.append(float(c))
        lef.append(x_left if x_left is not None else float(prof.left[i]))
        rig.append(float(prof.right[i]))
        pul.append(x_left is not None)  # pulses are stacked at one x: this row's start is known
        lc.append(bool(prof.left_cut[i]))
        rc.append(bool(prof.right_cut[i]))
    order = np.argsort(cen)
    return Rows(
        np.array(cen)[order], np.array(lef)[order], np.array(rig)[order], np.array(pul, bool)[order],
        np.array(lc, bool)[order], np.array(rc, bool)[order],
        {"from": "pulses+profile", **{k: v for k, v in p.extras.items() if k in ("pulse_at_end", "pulses")}},
    )  # fmt: skip


def orient(
    ink_r: np.ndarray,
    paper: np.ndarray,
    inside: np.ndarray,
    ext: tuple[float, float, float, float],
    ppm: float = ORIENT_PPM,
    turn: int = 0,
    mask: np.ndarray | None = None,
    pulses: bool = True,
    lattice: bool = True,
    coarse: bool = False,
    chroma: np.ndarray | None = None,
) -> tuple[Orientation, Rows, np.ndarray]:
    """`_orient`, then `turn` more quarter turns when the caller has stronger evidence (the printed lead
    names read upside down): the rows are then measured again on the page turned that way. `mask`: the
    trace ink when the caller found it otherwise (default `ink_mask`, given `chroma` when known);
    `pulses` False: not searched; `lattice` False: no weak rows kept (`_rows`); `coarse`: the image
    holds the page at fewer px per mm than the raster (`_strokes`)."""
    ori, rows, m = _orient(ink_r, paper, inside, ext, ppm, mask, pulses, lattice, coarse, chroma)
    if turn % 4 == 0:
        return ori, rows, m
    k = (ori.k + turn) % 4
    m = np.ascontiguousarray(np.rot90(m, k=-(turn % 4)))
    te = turned_extent(k, ext)
    rows = _rows(m, te[0], te[1], ppm, np.rot90(inside, k=-k), lattice, coarse)
    rows.extras["columns"] = separator_columns(m, rows, te, ppm)
    return Orientation(k, ori.axis_score, -ori.upright_score), rows, m


def along_rows(ev: list[float], counts: list[int], cy: float, cx: float) -> list[float]:
    """The pulse evidence per quarter turn `ev`, none left on the turns across the rows the ink clearly
    lies in (row scores `cy` along the image's x, `cx` along its y, AXIS_SURE apart) where only a pair
    of pulses stacks (`counts`): such a pair is two waves shaped like pulses. A longer stack stays: a
    cart prints a pulse on most rows, and a screen photo's moire can pile ink up across its rows (a
    screen photo with four pulses scored its rows 1.5 times higher across them than along them)."""
    if max(cy, cx) < AXIS_SURE * min(cy, cx):
        return ev
    along = 0 if cy >= cx else 1
    return [e if k % 2 == along or n > 2 else 0.0 for k, (e, n) in enumerate(zip(ev, counts, strict=True))]


def _orient(
    ink_r: np.ndarray,
    paper: np.ndarray,
    inside: np.ndarray,
    ext: tuple[float, float, float, float],
    ppm: float = ORIENT_PPM,
    mask: np.ndarray | None = None,
    pulses: bool = True,
    lattice: bool = True,
    coarse: bool = False,
    chroma: np.ndarray | None = None,
) -> tuple[Orientation, Rows, np.ndarray]:
    """Quarter turn k of the frame (upright = rot(k) @ frame), the rows in upright mm, the upright mask.

    `ink_r` is the all-channel darkness on the frame raster covering `ext` (x0, y0, x1, y1 mm);
    `paper` marks where the grid was measured (inside the image), `inside` the image itself (rows that
    reach its border are cut, so their ends say nothing about the page).

    First evidence: calibration pulses (open boxes rising from the baseline at the row starts) stacked
    at one x; they fix the turn, the baselines and the row starts even when the traces wander. Without
    them: the axis along which ink piles up in rows, then the upright score.
    """
    if mask is None:
        mask = ink_mask(ink_r, paper, ppm, ext[0], ext[1], chroma)
    turns = [np.ascontiguousarray(np.rot90(mask, k=-k)) for k in range(4)]  # k clockwise = rot(k) of frame
    # standard (10 mm) pulses first: only a page without a stack of them is searched for 20 and 5 mm ones
    marks = [find_pulses(m, ppm, PULSE_HEIGHTS_MM[:1]) if pulses else [] for m in turns]
    found = [_aligned(c, ppm) for c in marks]
    if pulses and max(len(f) for f in found) < 2:
        marks = [
            sorted(c + find_pulses(m, ppm, PULSE_HEIGHTS_MM[1:]), key=lambda p: -p[0])
            for c, m in zip(marks, turns, strict=True)
        ]
        found = [_aligned(c, ppm) for c in marks]
    # evidence per turn: the summed scores of the aligned pulses
    ev = [sum(p[0] for p in f) if len(f) >= 2 else 0.0 for f in found]
    cy = _row_score(mask, ppm)
    cx = _row_score(mask.T, ppm)
    counts = [len(f) for f in found]
    ev = along_rows(ev, counts, cy, cx)
    kbest = int(np.argmax(ev))
    others = sorted(ev)[-2]
    if ev[kbest] > 0 and ev[kbest] >= 1.2 * others:
        m = np.ascontiguousarray(np.rot90(mask, k=-kbest))
        te = turned_extent(kbest, ext)
        rows = _rows_from_pulses(m, found[kbest], te[0], te[1], ppm, np.rot90(inside, k=-kbest))
        prof_rows = _rows(m, te[0], te[1], ppm, np.rot90(inside, k=-kbest), lattice, coarse)
        rows = _merge_rows(rows, prof_rows)
        rows.extras["columns"] = separator_columns(m, rows, te, ppm)
        return Orientation(kbest, float(counts[kbest]), float(ev[kbest] - others)), rows, m
    cands = []
    for k in (0, 2) if cy >= cx else (1, 3):
        m = np.rot90(mask, k=-k)
        te = turned_extent(k, ext)
        rows = _rows(m, te[0], te[1], ppm, np.rot90(inside, k=-k), lattice, coarse)
        # a lone pulse is weak evidence (a QRS can pass for one): it only adds to the wave/header votes
        lone = found[k][0][0] if len(found[k]) == 1 else 0.0
        prior = IMAGE_UP_PRIOR if k == 0 else 0.0
        cands.append((_upright_score(m, rows, te, ppm) + LONE_PULSE_WEIGHT * lone + prior, k, rows, m))
    cands.sort(key=lambda c: -c[0])
    s, k, rows, m = cands[0]
    rows.extras["columns"] = separator_columns(m, rows, turned_extent(k, ext), ppm)
    margin = s - cands[1][0]
    axis = (max(cy, cx) + 1e-6) / (min(cy, cx) + 1e-6)
    return Orientation(k, float(axis), float(margin)), rows, m


def separator_columns(
    mask: np.ndarray, rows: Rows, ext: tuple[float, float, float, float], ppm: float
) -> int:
    """How many columns the top rows are cut into, from the separator ticks: 4, 2 or 0 (none seen).

    Ticks are short bars centred on the baseline at the cell boundaries; the top row of a 3x4+3R page has
    them at the quarter points, a 6x2 page only at the half.
    """
    if len(rows.centres) < 2:
        return 0
    x0, y0 = ext[0], ext[1]

    def tick(b: float, x: float) -> float:
        return _tick(mask, x0, y0, b, x, ppm)

    quarter, half = [], []
    for b, lft, rgt, pul in zip(rows.centres[:3], rows.left[:3], rows.right[:3], rows.pulse[:3], strict=True):
        start = lft + (PULSE_MM[0] if pul else 0.0)
        seg = (rgt - start) / 4
        quarter += [tick(b, start + seg), tick(b, start + 3 * seg)]
        half.append(tick(b, start + 2 * seg))
    if np.median(quarter) > 0.8:
        return 4
    if np.median(half) > 0.8:
        return 2
    return 0


def _tick(mask: np.ndarray, x0: float, y0: float, b: float, x: float, ppm: float) -> float:
    """Share of a 4 mm-tall window on the baseline that the darkest column within ±0.8 mm fills with ink."""
    bi, xi = int((b - y0) * ppm), int((x - x0) * ppm)
    hw, hh = max(1, int(0.8 * ppm)), int(2.0 * ppm)
    win = mask[max(0, bi - hh) : max(0, bi + hh), max(0, xi - hw) : max(0, xi + hw + 1)]
    return float(win.mean(axis=0).max()) if win.size else 0.0


def tick_phase(
    mask: np.ndarray,
    ext: tuple[float, float, float, float],
    layout: PageLayout,
    tx: float,
    ty: float,
    ppm: float,
) -> float:
    """`tx` moved by whole 5 mm periods onto the separator ticks at the cell boundaries, if they say so.

    The row ends and a pulse cut by the image border can leave the x snap one period off; the ticks between
    leads (where a generator draws them) sit at known paper x. The median tick strength per candidate
    decides, and only a clear verdict (strong there, clearly weaker at `tx`) moves it; and only when the
    ticks stand in one place within two periods of `tx`, not near `tx`: a page whose cells do not start on
    a 5 mm line has its ticks up to half a period off the snap, and QRS complexes that line up down the
    rows (the same beat in every row of a column) read as ticks 10 mm away on either side (validation
    pages 6x2-seq_009 and 3x5_005 were moved 10 mm onto them: every lead 0.4 s late at confidence 0.9+).
    """
    cells = [c for c in layout.cells if c.col > 0]
    if len(cells) < 2:
        return tx
    x0, y0 = ext[0], ext[1]
    cols = np.array([c.col for c in cells])

    def ticks(t: float) -> np.ndarray:
        """Each boundary cell's tick strength with the page moved by `t` mm."""
        return np.array([_tick(mask, x0, y0, c.baseline_mm - ty, c.x0_mm - t, ppm) for c in cells])

    def strength(t: float) -> float:
        return float(np.median(ticks(t)))

    def every_column(t: float) -> bool:
        """Ticks at every boundary column of the template (the median over its rows), not at some only."""
        v = ticks(t)
        return all(float(np.median(v[cols == k])) >= TICK_ON for k in np.unique(cols))

    cands = {k: strength(tx + 5.0 * k) for k in (-2, -1, 0, 1, 2)}
    best = max(cands, key=lambda k: cands[k])
    if not (best != 0 and cands[best] >= TICK_ON and cands[best] - cands[0] >= TICK_GAIN):
        return tx
    if not every_column(tx + 5.0 * best):
        # separators stand at every boundary of the page's columns; strokes at some of the template's
        # boundaries only are beats lined up down the rows, or the ticks of another column count (validation
        # realworld 3x5_009: the QRS of one beat in every row at two of 3x4's three boundaries moved a
        # 15-lead page 10 mm, every lead lost)
        return tx
    shifts = np.arange(-TICK_REACH_MM, TICK_REACH_MM + 1e-9, TICK_STEP_MM)
    on = np.array([strength(tx + d) >= TICK_ON for d in shifts])
    places = int(np.sum(on[1:] & ~on[:-1]) + on[0])  # runs of shifts where ticks stand
    near = bool(np.any(on[np.abs(shifts) < 2.5]))
    return tx if places > 1 or near else tx + 5.0 * best


def layout_name(n_rows: int, rows: Rows) -> str:
    """The named layout with this many rows; 6 rows: 6x2 when separators sit only at the half."""
    if n_rows in ROWS_TO_LAYOUT:
        return ROWS_TO_LAYOUT[n_rows]
    if n_rows == 6:
        return "6x2" if rows.extras.get("columns") == 2 else "3x4+3R"
    return DEFAULT_LAYOUT


def row_end(right: np.ndarray, tol_mm: float = 2.5) -> float:
    """Where the rows end: the rightmost end that two rows share (within `tol_mm`), else the median.

    A row whose last lead is flat (lead off, or a zero channel) reads as ending a whole cell early; with
    the median of four rows, two such rows put the page 30 mm off.
    """
    r = np.asarray(right, np.float64)
    if r.size < 3:
        return float(np.median(r))
    for v in np.sort(r)[::-1]:
        near = np.abs(r - v) <= tol_mm
        if near.sum() >= 2:
            return float(np.median(r[near]))
    return float(np.median(r))


def snap(rows: Rows, name: str, pulse_mm: float | None = None) -> tuple[float, float, PageLayout, float]:
    """Translation (tx, ty) frame -> paper that puts the lattice on the paper grid and the rows on the layout.

    `pulse_mm`: the measured width of the pulses at the rows' starts (None: a standard 5 mm pulse where
    the rows show one): the template's pulse keeps its left edge (the page margin) and its rows start
    that far right of it. Returns (tx, ty, layout, residual mm of the baselines after snapping).
    """
    width = STANDARD_PULSE_MM if pulse_mm is None else pulse_mm
    lay = make_layout(name)
    if width != STANDARD_PULSE_MM:
        x0 = KAGGLE_X0_MM - STANDARD_PULSE_MM + width
        lay = make_layout(name, x0_mm=x0, pulse_width_mm=width)
    ref = np.array(lay.row_baselines())
    b = rows.centres
    n = min(len(b), len(ref))
    if n == 0:
        return 0.0, 0.0, lay, float("inf")
    # each detected row to its nearest layout row; the offset is a whole number of 5 mm periods
    best = (np.inf, 0.0)
    for bi in b:
        for ri in ref:
            ty_c = GRID_Y_PHASE + 5 * np.round((ri - bi - GRID_Y_PHASE) / 5)
            d = np.abs((b + ty_c)[:, None] - ref[None, :]).min(axis=1)
            cost = float(np.sum(np.minimum(d, 6.0))) + 6.0 * abs(len(b) - len(ref))
            if cost < best[0]:
                best = (cost, float(ty_c))
    ty = best[1]
    res = float(np.median(np.abs((b + ty)[:, None] - ref[None, :]).min(axis=1)))
    rows.extras.setdefault("snap_cost", {})[name] = best[0]
    # x: the rows end at the last cell's x1; they start at the pulse (x0 - 5) or at x0
    x_end = max(c.x1_mm for c in lay.cells)
    x_start = min(c.x0_mm for c in lay.cells)
    r_end = row_end(rows.right)
    l_start = float(np.median(rows.left))
    has_pulse = bool(rows.pulse.mean() > 0.5) if len(rows.pulse) else False
    has_pulse = has_pulse or pulse_mm is not None
    l_ref = x_start - (width if has_pulse else 0.0)
    t_r = x_end - r_end
    t_l = l_ref - l_start
    left_ok = not (len(rows.left_cut) and rows.left_cut.mean() > 0.5)
    right_ok = not (len(rows.right_cut) and rows.right_cut.mean() > 0.5)
    # the pulse's left edge is the sharpest mark; then the row ends (the last sample); else the ink start
    t = t_l if (has_pulse and left_ok) or not right_ok else t_r
    tx = 5 * np.round(t / 5)
    return float(tx), float(ty), lay, res


def choose_layout(rows: Rows) -> str:
    """The named layout whose standard baselines fit the rows best (missing or extra rows cost a row
    each); when none fits (baselines moved, as on many real-world pages), the one with this row count."""
    costs = {}
    for name in ROWS_TO_LAYOUT.values():
        snap(rows, name)
        costs[name] = rows.extras["snap_cost"][name]
    snap(rows, "3x4+3R")
    costs["six"] = rows.extras["snap_cost"]["3x4+3R"]
    best = min(costs, key=lambda k: costs[k])
    n = len(rows.centres)
    counts = {name: k for k, name in ROWS_TO_LAYOUT.items()} | {"six": 6}
    if n in ROW_COUNTS and n >= ONE_PITCH_MIN_ROWS and counts[best] != n and on_one_pitch(rows):
        # every row found on the cart's one pitch, and as many as a named layout has: a template of
        # another count fits them only by moving rows onto its pitch (a photo's 6x2 at a 23 mm pitch
        # took the 6x2+1R template's 24 mm one, and its seventh row read blank paper as lead II)
        return layout_name(n, rows)
    if costs[best] <= 1.5 * max(len(rows.centres), 1) + 6.5:
        if best == "six":
            return layout_name(6, rows)
        return best
    return layout_name(len(rows.centres), rows)
