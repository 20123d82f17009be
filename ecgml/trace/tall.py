"""Complexes taller than the strip: where a row's trace runs to its strip's edge, read it again squashed.

Why: the network reads strips 64 mm tall (±3.2 mV at 10 mm/mV), because taller strips let neighbouring
rows in (BENCHMARKS.md, "round 6"). Tall QRS complexes (±5 mV, or any lead over ±1.6 mV printed at
20 mm/mV) run off that strip and come out clipped at its edge, or jump to other ink. A second read of the
same rows at half the vertical density covers twice the height with the same network; it sees more
neighbours, so it is taken only where the plain read cannot see (near or past the edge) and only for
cells where both reads agree on the rest of the trace.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.ndimage import binary_dilation

from ecgml.layout import PageLayout
from ecgml.trace.types import CellTrace

SQUASH = 2.0  # vertical factor of the second read: the strip covers 2 x 64 mm (±6.4 mV at 10 mm/mV)
EDGE_MARGIN_MM = 2.0  # a plain read this close to its strip's edge is taken as clipped
FAR_MARGIN_MM = 4.0  # the squashed read's columns this close to (or past) the plain strip's edge replace it
BEYOND_MM = 1.0  # ... and carries the trace this much further out than the plain read (a clipped read)
SAME_MM = 0.3  # columns where the two reads are this close keep the plain (finer) one
WIDEN_MM = 1.0  # replaced stretches widened by this much on each side (the complex's flanks)
AGREE_MM = 0.6  # median |plain - squashed| (mm) elsewhere in the cell for the squashed read to be trusted
AGREE_SHARE = 0.9  # ... and this share of those columns within 1 mm


def offset_mm(trace: CellTrace, baseline_mm: float) -> np.ndarray:
    """|y - baseline| per column (NaN where unread)."""
    return np.abs(trace.y_mm - baseline_mm)


def clipped(traces: list[CellTrace], layout: PageLayout, half_mm: float) -> bool:
    """Whether a cell's read reaches within EDGE_MARGIN_MM of its strip's edge: the page has complexes
    taller than the strip (the other rows are read again too: a read that jumped to other ink at a
    tall complex never reaches the edge)."""
    base = {c.row: c.baseline_mm for c in layout.cells}
    for t in traces:
        off = offset_mm(t, base[t.row])
        if np.any(off[np.isfinite(off)] > half_mm - EDGE_MARGIN_MM):
            return True
    return False


def merge(plain: CellTrace, squashed: CellTrace, baseline_mm: float, half_mm: float) -> CellTrace:
    """`plain` with its clipped stretches taken from `squashed`, when the two agree elsewhere.

    Columns are replaced where the squashed read lies near or past the plain strip's edge and further out
    than the plain read (a plain read that is not clipped is finer, and kept); those stretches are
    widened by WIDEN_MM; of those, only columns where either read lies near or past the edge are taken
    (on the flanks inside the strip the plain read is finer). Unchanged when nothing is
    clipped or the reads disagree off those stretches (the squashed read may have followed a neighbouring
    row)."""
    if plain.x_mm.shape != squashed.x_mm.shape or plain.x_mm.size < 2:
        return plain
    off_p, off_s = offset_mm(plain, baseline_mm), offset_mm(squashed, baseline_mm)
    beyond = (off_s > half_mm - FAR_MARGIN_MM) & ~(off_s <= off_p + BEYOND_MM)  # NaN plain: beyond
    if not beyond.any():
        return plain
    step = float(np.median(np.diff(plain.x_mm)))
    near = binary_dilation(beyond, iterations=max(1, int(round(WIDEN_MM / step))))
    both = ~near & np.isfinite(plain.y_mm) & np.isfinite(squashed.y_mm)
    if both.sum() < 0.25 * near.size:
        return plain
    diff = np.abs(plain.y_mm[both] - squashed.y_mm[both])
    if np.median(diff) > AGREE_MM or np.mean(diff < 1.0) < AGREE_SHARE:
        return plain
    edge = half_mm - EDGE_MARGIN_MM  # inside it the plain read sees the trace and is finer (steep flanks)
    outside = (off_p > edge) | (off_s > edge) | ~np.isfinite(plain.y_mm)
    take = near & outside & ~(np.abs(plain.y_mm - squashed.y_mm) <= SAME_MM)
    return replace(
        plain,
        y_mm=np.where(take, squashed.y_mm, plain.y_mm),
        confidence=np.where(take, squashed.confidence, plain.confidence),
    )
