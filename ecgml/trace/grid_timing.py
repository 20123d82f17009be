"""Local x correction of the cell traces from where the grid's 1 mm lines lie on the canonical page.

Why: the metric aligns each lead by whole samples only, so a page map that is 0.1 mm off in x over part
of a lead moves that part's QRS by 4 ms and costs most of the lead's score. Cockled, stained or bent
photos are off like that over 10-30 mm, finer than the 10-20 mm tiles the map is fitted on. On a
perfect canonical page the 1 mm lines sit at whole millimetres; where they sit δ mm to the right, the
trace beside them was put δ mm too far right as well. Chroma is what is read: a coloured grid has it,
trace and label ink have none. Grey grids give no reading and are left as they are.

Only for bent pages (the digitizer asks geometry): on flat scans, whose maps are already within
0.02 mm, the phase's own ±0.01 mm ripple (the raster's line pattern, mould spots, a screen's moiré)
cost 0.7-1.1 dB on 0006/0011 of the tuning set, while bent photos gained 2 dB (BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ecgml.geometry.canonical import CanonicalPage, chroma_columns
from ecgml.geometry.grid import GRID_SHIFT_MM
from ecgml.layout import Cell, PageLayout
from ecgml.trace.types import CellTrace

BAND_MM = 12.0  # the grid is read within this distance of each row's baseline
SIGMA_MM = 4.0  # smoothing of the phase along x (2 or 6 mm: 0.01-0.03 dB worse on the tuning set)
MIN_CONTRAST = 0.3  # |1 mm component| / mean |profile|; clean coloured grids give ~0.6, no grid ~0
MAX_SHIFT_MM = 0.45  # beyond this the phase may have wrapped by a whole millimetre


Bands = dict[tuple[int, int], np.ndarray]  # a page's `chroma_columns` of whole row bands, by pixel rows


def cell_x_error(
    page: CanonicalPage, cell: Cell, bands: Bands | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(x mm, δ mm, contrast) along the cell's row band: how far right of their place on paper (whole
    millimetres plus GRID_SHIFT_MM) the 1 mm grid lines lie; None when the page has no colour or the band
    is off the page.

    With `bands` (one dict per page), the chroma of the band's whole width is kept there and the cell's
    columns taken from it: a column's mean is its own pixels' only, so it is the same number, read once
    for the cells of a row and for the layout solver's re-reads of the page."""
    img = page.image
    if img.ndim != 3:
        return None
    px, py = page.px_per_mm
    pad = 3 * SIGMA_MM
    a = max(int((cell.x0_mm - pad) * px), 0)
    b = min(int(np.ceil((cell.x1_mm + pad) * px)), img.shape[1])
    r0 = max(int((cell.baseline_mm - BAND_MM) * py), 0)
    r1 = min(int(np.ceil((cell.baseline_mm + BAND_MM) * py)), img.shape[0])
    if r1 - r0 < 4 or b - a < 4 * px:
        return None
    if bands is None:
        prof = chroma_columns(img[r0:r1, a:b])
    else:
        if (r0, r1) not in bands:
            bands[(r0, r1)] = chroma_columns(img[r0:r1])
        prof = bands[(r0, r1)][a:b]
    x = (np.arange(a, b) + 0.5) / px
    s = SIGMA_MM * px
    p = prof - gaussian_filter1d(prof, s)
    z = p * np.exp(-2j * np.pi * x)  # lines at x = k + δ give angle -2πδ
    zr, zi = gaussian_filter1d(z.real, s), gaussian_filter1d(z.imag, s)
    contrast = np.hypot(zr, zi) / np.maximum(gaussian_filter1d(np.abs(p), s), 1e-9)
    return x, -np.arctan2(zi, zr) / (2 * np.pi) - GRID_SHIFT_MM, contrast


def correct_x(
    page: CanonicalPage, layout: PageLayout, traces: list[CellTrace], bands: Bands | None = None
) -> list[CellTrace]:
    """The traces with each column moved to where the grid beside it says it belongs (x - δ); columns
    where the grid is faint, or δ is implausible, stay where they are. `bands`: as `cell_x_error`'s."""
    cells = {(c.row, c.col): c for c in layout.cells}
    out = []
    for tr in traces:
        cell = cells.get((tr.row, tr.col))
        err = cell_x_error(page, cell, bands) if cell is not None and tr.x_mm.size else None
        if err is None:
            out.append(tr)
            continue
        x, d, contrast = err
        di = np.interp(tr.x_mm, x, d)
        ok = (np.interp(tr.x_mm, x, contrast) >= MIN_CONTRAST) & (np.abs(di) <= MAX_SHIFT_MM)
        new_x = tr.x_mm - np.where(ok, di, 0.0)
        if np.any(np.diff(new_x) <= 0):  # a fold the smooth phase cannot describe: leave the trace alone
            out.append(tr)
            continue
        out.append(replace(tr, x_mm=new_x))
    return out
