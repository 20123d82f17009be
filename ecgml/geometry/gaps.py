"""Columns apart by blank gaps: where the grid rows' traces stop and start again.

Some pages (plotting software on a page-wide grid, several cart exports) leave a few millimetres of blank
paper between the columns of the grid instead of printing separator ticks; each column's trace then
starts at its window's start after the gap. A template that cuts the rows into equal parts puts those
starts up to a gap and a half off (0.1-0.4 s). The gaps are read off the trace ink: runs of columns where
no grid row has ink near its baseline, at the same x in every grid row, one near each of the template's
cuts. Pages whose columns abut (ECG-Image-Kit, most carts) show no such runs and keep their template.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ecgml.layout import PageLayout

BAND_MM = 12.0  # ink within this of a row's baseline counts (a wandering trace stays inside it; names and
BAND_PITCH = 0.4  # tick labels of tall panel rows sit further off), and within this share of the row pitch
GAP_MM = (1.5, 15.0)  # a gap between columns is this wide
NEAR_CUT = 1 / 3  # the columns between gaps are as wide as the template's, give or take this share
SAME_WIDTH_MM = 3.0  # the columns between gaps are this equal in width
PULSE_GAP_MM = (-8.0, 3.0)  # a gap this near the first column's start separates a pulse from the trace


def true_runs(on: np.ndarray, min_len: int = 1, min_gap: int = 1) -> list[tuple[int, int]]:
    """[start, end) runs of True at least `min_len` long, after closing gaps shorter than `min_gap`."""
    idx = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
    merged: list[tuple[int, int]] = []
    for a, b in zip(idx[::2].tolist(), idx[1::2].tolist(), strict=True):
        if merged and a - merged[-1][1] < min_gap:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return [(a, b) for a, b in merged if b - a >= min_len]


def gap_columns(
    mask: np.ndarray,
    ext: tuple[float, float, float, float],
    layout: PageLayout,
    tx: float,
    ty: float,
    ppm: float,
) -> PageLayout:
    """`layout` with its grid columns moved onto the blank gaps between the rows' traces, when every grid
    row shows one gap near each cut; strips then span their own seconds at the page's speed. `mask` is
    the upright ink raster whose top-left is `ext` (frame mm); paper = frame + (tx, ty)."""
    x0f, y0f = ext[0], ext[1]
    counts: dict[int, int] = {}
    for c in layout.cells:
        counts[c.row] = counts.get(c.row, 0) + 1
    n_cols = max(counts.values())
    grid_rows = [r for r, k in counts.items() if k == n_cols]
    if n_cols < 2 or not grid_rows:
        return layout
    h, w = mask.shape
    ink = np.zeros(w, bool)
    base = layout.row_baselines()
    band = min(BAND_PITCH * float(np.min(np.diff(base))), BAND_MM) if len(base) > 1 else BAND_MM
    for r in grid_rows:
        b = base[r]
        i0 = int(np.clip((b - band - ty - y0f) * ppm, 0, h))
        i1 = int(np.clip((b + band - ty - y0f) * ppm, 0, h))
        if i1 <= i0:
            return layout
        ink |= mask[i0:i1].any(axis=0)

    def px_to_mm(col: float) -> float:
        return x0f + col / ppm + tx

    cells = sorted((c for c in layout.cells if c.row == grid_rows[0]), key=lambda c: c.col)
    first_x0 = cells[0].x0_mm
    seg = (cells[-1].x1_mm - first_x0) / n_cols
    gaps = [(px_to_mm(a), px_to_mm(b)) for a, b in true_runs(~ink)]
    start = first_x0
    lead_in = [
        g for g in gaps if PULSE_GAP_MM[0] <= g[1] - first_x0 <= PULSE_GAP_MM[1] and g[1] - g[0] >= 0.5
    ]
    if lead_in:  # the trace starts after a blank beside its pulse
        start = lead_in[-1][1]
    inked = np.flatnonzero(ink)
    end = px_to_mm(float(inked[-1]) + 1.0) if inked.size else start
    # blanks inside the rows' span, a column's width (give or take) from the start and from each other
    inner = [
        g for g in gaps if GAP_MM[0] <= g[1] - g[0] <= GAP_MM[1] and start + 0.5 * seg < g[0] and g[1] < end
    ]
    if len(inner) != n_cols - 1:
        return layout  # columns that abut (or blanks that are not gaps): the template's cuts stand
    edges = [start] + [x for g in inner for x in g]
    widths = np.diff(edges)[::2]  # the columns closed by a gap on both sides (and the first)
    width = float(np.median(widths))
    if np.ptp(widths) > SAME_WIDTH_MM or abs(width - seg) > NEAR_CUT * seg:
        return layout  # blanks that do not cut the rows into equal columns: faint ink, not gaps
    edges.append(edges[-1] + width)  # the last one is as wide (the template's row end is not the page's)
    bounds = {c: (edges[2 * c], edges[2 * c + 1]) for c in range(n_cols)}
    new = []
    for c in layout.cells:
        if c.row in grid_rows:
            x0, x1 = bounds[c.col]
            new.append(replace(c, x0_mm=x0, x1_mm=x1, t1_s=c.t0_s + (x1 - x0) / layout.speed_mm_s))
        elif counts[c.row] == 1:  # a strip: no gaps inside it, its seconds at the page's speed
            new.append(replace(c, x0_mm=start, x1_mm=start + (c.t1_s - c.t0_s) * layout.speed_mm_s))
        else:
            new.append(c)
    return replace(layout, cells=new)


# Rows shorter than the template's: a page whose rows hold fewer seconds (portrait Letter or A4 paper, a
# cart's short strips) prints the same cells over less paper; the template's 250 mm rows put every cut but
# the first in the wrong place and read seconds the page does not show.
TRACE_BAND_PITCH = 0.25  # a row's trace is looked for this share of the row pitch either side of its baseline
TRACE_CLOSE_MM = 2.0  # blanks narrower than this inside a trace are closed (a thin pen on a small copy)
TRACE_RUN_MM = 15.0  # ink runs at least this long are trace (grid leftovers are dashes, names a few mm)
SHORT_SHARE = 0.9  # rows whose trace ends short of this share of the template's row are shorter rows
MIN_SHARE = 0.6  # ... down to this share (shorter: the speed or the rows misread, not a shorter row)
SAME_END_MM = 3.0  # the rows' traces end this close together ...
SAME_END_ROWS = 2 / 3  # ... on at least this share of the rows (one flat last lead ends early)
BEYOND_MM = 10.0  # ... and none runs on further than this past them
MIN_TRACE_ROWS = 3  # rows measured, at least
INSIDE_MM = 3.0  # the image (and its measured grid) runs on this far past the traces' end (else cut there)
END_SHIFT_MM = (2.0, 8.0)  # rows this far off their traces' ends (a 5 mm square rounded, a pulse width)
START_OFF_MM = 5.0  # the template's cells start this far or more left of the ink: placed by the rows' ends


def trace_extent(
    mask: np.ndarray, ext: tuple[float, float, float, float], baseline_mm: float, band_mm: float, tx: float,
    ty: float, ppm: float,
) -> tuple[float, float] | None:  # fmt: skip
    """(start, end) paper mm of a row's trace: the first and last ink runs of TRACE_RUN_MM or more in the
    band about its baseline, blanks under TRACE_CLOSE_MM closed; None when it has no such run."""
    h, _ = mask.shape
    i0 = int(np.clip((baseline_mm - band_mm - ty - ext[1]) * ppm, 0, h))
    i1 = int(np.clip((baseline_mm + band_mm - ty - ext[1]) * ppm, 0, h))
    if i1 <= i0:
        return None
    inked = np.asarray(mask[i0:i1].any(axis=0))
    runs = true_runs(inked, int(TRACE_RUN_MM * ppm), max(1, int(round(TRACE_CLOSE_MM * ppm))))
    if not runs:
        return None
    return ext[0] + runs[0][0] / ppm + tx, ext[0] + runs[-1][1] / ppm + tx


def pulse_column(starts: np.ndarray) -> bool:
    """Whether the rows' traces start together, as behind a column of pulses: pulses print at the same x
    on every row, so rows whose ink starts scattered (names before some traces, none after a pulse) show
    no pulse column, and a template pulse the page was not seen to print must not set their start."""
    return bool(np.mean(np.abs(starts - np.median(starts)) <= SAME_END_MM) >= SAME_END_ROWS)


def short_rows(
    mask: np.ndarray,
    valid: np.ndarray,
    ext: tuple[float, float, float, float],
    layout: PageLayout,
    tx: float,
    ty: float,
    ppm: float,
    pulses_measured: bool = True,
) -> PageLayout:
    """`layout` with its rows as long as their traces when the rows' traces end together well inside the
    image, short of the template's row (SHORT_SHARE, not below MIN_SHARE): every cell is drawn over that
    length, its seconds at the page's speed, so each lead stands in the time window the page gives it
    and seconds the page does not show are absent. `mask` and `valid` (where ink was looked for: the image
    and its measured grid; the same shape) are upright, top-left at `ext` (frame mm); paper = frame +
    (tx, ty). `pulses_measured` False: the layout's pulses are the template's, assumed, not read on the
    page (trace ink found by shape)."""
    if layout.pulses and all(p.x0_mm >= max(c.x1_mm for c in layout.cells) - 1.0 for p in layout.pulses):
        return layout  # a pulse after the rows would count as trace
    base = layout.row_baselines()
    spans = _row_spans(mask, ext, base, tx, ty, ppm)
    if spans is None:
        return layout
    end = float(np.median(spans[:, 1]))
    if (
        np.mean(np.abs(spans[:, 1] - end) <= SAME_END_MM) < SAME_END_ROWS
        or spans[:, 1].max() > end + BEYOND_MM
    ):
        return layout  # rows of several lengths: some rows' last cells blank (leads not recorded)
    x0, x1 = _row_bounds(layout, len(base))
    # rows without a pulse start their trace where their cells start (the latest start two rows share);
    # rows with one, a pulse width left of it
    starts = np.sort(spans[:, 0])[::-1]
    bare = next((v for v in starts if np.sum(np.abs(starts - v) <= SAME_END_MM) >= 2), float(starts[0]))
    start = bare
    if layout.pulses and (pulses_measured or pulse_column(spans[:, 0])):
        pulse_w = float(np.median([p.x1_mm - p.x0_mm for p in layout.pulses]))
        start = min(float(np.median(spans[:, 0])) + pulse_w, bare + SAME_END_MM)
    a = start if start > x0 + START_OFF_MM else x0
    share = (end - a) / (x1 - x0)
    if not MIN_SHARE <= share < SHORT_SHARE:
        return layout
    if not _read_to(valid, ext, base, tx, ty, ppm, end + INSIDE_MM):
        return layout  # the traces stop where the image (or the ink read) does: a crop, not a shorter row
    cells = [
        replace(c, x0_mm=a + (c.x0_mm - x0) * share, x1_mm=a + (c.x1_mm - x0) * share, t0_s=c.t0_s * share,
                t1_s=c.t1_s * share)
        for c in layout.cells
    ]  # fmt: skip
    pulses = [replace(p, x0_mm=p.x0_mm + a - x0, x1_mm=p.x1_mm + a - x0) for p in layout.pulses]
    return replace(layout, cells=cells, pulses=pulses)


def ends_placed(
    mask: np.ndarray,
    valid: np.ndarray,
    ext: tuple[float, float, float, float],
    layout: PageLayout,
    tx: float,
    ty: float,
    ppm: float,
) -> PageLayout:
    """`layout` moved along the rows so that they end where their traces end, when no pulse placed them.

    Without a pulse read at the rows' starts, `snap` places the rows by their ink's ends rounded to the
    grid's 5 mm squares, ink that takes in names before a trace and pulses after it; rows then start up to
    a pulse width (0.2 s) off their traces. The traces' own ends (`trace_extent`: runs of trace, names and
    end pulses apart) are the last sample of each row. Moved only when most rows end together (SAME_END_MM)
    inside the image, END_SHIFT_MM off the layout's end, and their traces start where the moved rows do."""
    if layout.pulses:
        return layout
    base = layout.row_baselines()
    spans = _row_spans(mask, ext, base, tx, ty, ppm)
    if spans is None:
        return layout
    end = float(np.median(spans[:, 1]))
    if np.mean(np.abs(spans[:, 1] - end) <= SAME_END_MM) < SAME_END_ROWS:
        return layout
    x0, x1 = _row_bounds(layout, len(base))
    shift = end - x1
    if not END_SHIFT_MM[0] <= abs(shift) <= END_SHIFT_MM[1]:
        return layout
    if abs(float(np.median(spans[:, 0])) - x0 - shift) > SAME_END_MM:
        # the traces do not start where the moved rows would: a pulse after them (1 mm past the trace,
        # joined to its run), or one before them, or names: the ends alone do not place the rows
        return layout
    if not _read_to(valid, ext, base, tx, ty, ppm, end + INSIDE_MM):
        return layout  # the traces stop where the image (or the ink read) does: cut there, not ended
    cells = [replace(c, x0_mm=c.x0_mm + shift, x1_mm=c.x1_mm + shift) for c in layout.cells]
    return replace(layout, cells=cells)


def _row_spans(
    mask: np.ndarray,
    ext: tuple[float, float, float, float],
    base: list[float],
    tx: float,
    ty: float,
    ppm: float,
) -> np.ndarray | None:
    """(n, 2) paper x of the traces' start and end on each row found (`trace_extent`), or None when fewer
    than MIN_TRACE_ROWS rows (or traces) say where the rows run."""
    if len(base) < MIN_TRACE_ROWS:
        return None
    band = TRACE_BAND_PITCH * float(np.min(np.diff(base)))
    found = [trace_extent(mask, ext, b, band, tx, ty, ppm) for b in base]
    spans = np.array([s for s in found if s is not None], np.float64)
    return spans if len(spans) >= MIN_TRACE_ROWS else None


def _row_bounds(layout: PageLayout, n_rows: int) -> tuple[float, float]:
    """The layout's rows' start and end (paper x, median over its first `n_rows` rows)."""
    rows = range(n_rows)
    x0 = float(np.median([min(c.x0_mm for c in layout.cells if c.row == r) for r in rows]))
    x1 = float(np.median([max(c.x1_mm for c in layout.cells if c.row == r) for r in rows]))
    return x0, x1


def _read_to(
    valid: np.ndarray,
    ext: tuple[float, float, float, float],
    base: list[float],
    tx: float,
    ty: float,
    ppm: float,
    x_mm: float,
) -> bool:
    """Whether ink was looked for (`valid`) past paper x `x_mm` along the rows (the median over rows of
    each row's last column read): traces that end there end on the page, not where the image stops."""
    h = valid.shape[0]
    last = []
    for b in base:
        i = int(np.clip((b - ty - ext[1]) * ppm, 0, h - 1))
        cols = np.flatnonzero(valid[i])
        if cols.size:
            last.append(ext[0] + (cols[-1] + 1) / ppm + tx)
    return bool(last) and float(np.median(last)) >= x_mm
