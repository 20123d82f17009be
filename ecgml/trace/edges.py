"""Traces that run off the page as it is pictured: past the paper's top or bottom edge, or past the edge of
the image where the image cuts the paper (a half page cut from a 12x1 sheet, a photo that crops a row).

Why: beyond that edge the lead's own trace is not in the picture, and the decoder, its own ink gone, follows
the next row's ink. The template's paper alone does not see a cut image: geometry places a half page on a
whole sheet, so its edge rows end inside the paper (validation 12x1-bottom_008: V1's +1 mV swing leaves the
image's top for 0.7 s and is read as V2's trace there, -0.4 dB; the paper's edge is 63 mm further up).
Such a lead is held (`verdict.lead_confidence`), and where its path lies on another row's path it is unread
(NaN): assembly bridges those columns from the ones beside them, at the edge, which is what the page shows.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ecgml.page import PageMap
from ecgml.trace.types import CellTrace
from ecgml.verdict import OFF_PAPER_MM

SAME_PATH_MM = 0.5  # two rows' paths this close in a column follow the same ink (a trace is 0.2-0.5 mm wide)
# ... and between two such columns this close (x) the path has not come back: the other row's QRS, on whose
# steep strokes the two paths part by a mm or two (a QRS lasts at most 0.12 s, 3 mm at 25 mm/s)
JOIN_MM = 3.0
BORROWED_CONFIDENCE = 0.05  # the most a column read on another row's ink keeps (`assemble` bridges NaN)


def near_edge(
    page_map: PageMap, x_mm: np.ndarray, y_mm: np.ndarray, margin_mm: float = OFF_PAPER_MM
) -> np.ndarray:
    """Per point: within `margin_mm` (up or down the paper) of the paper's top or bottom edge, or of an edge
    of the image that runs along the rows, or beyond either: the picture ends there, across the rows.

    Only the image's edges that run along the rows count (those that paper y crosses more steeply than paper
    x, in the image): a photo that crops the paper's side cuts the rows in time, not their waves (validation
    6x2-seq_001, realworld: the left column's starts lie past the image's left edge, their waves inside)."""
    x, y = np.asarray(x_mm, dtype=np.float64), np.asarray(y_mm, dtype=np.float64)
    out = (y < margin_mm) | (y > page_map.paper_mm[1] - margin_mm)
    w, h = page_map.image_size
    at = page_map.mm_to_px(np.stack([x, y], axis=-1))
    along_x = np.abs(page_map.mm_to_px(np.stack([x + 1.0, y], axis=-1)) - at)  # image px per paper mm in x
    along_y = np.abs(page_map.mm_to_px(np.stack([x, y + 1.0], axis=-1)) - at)  # ... and in y
    across = along_y > along_x  # per image axis: the image's sides normal to it run along the rows
    for dy in (-margin_mm, margin_mm):
        px = page_map.mm_to_px(np.stack([x, y + dy], axis=-1))
        past_u = (px[..., 0] < 0) | (px[..., 0] > w)  # past the image's left or right side
        past_v = (px[..., 1] < 0) | (px[..., 1] > h)  # past its top or bottom
        out |= (past_u & across[..., 0]) | (past_v & across[..., 1])
    return np.asarray(out, dtype=bool)


def cut_leads(traces: list[CellTrace], page_map: PageMap) -> set[str]:
    """Leads whose trace comes within OFF_PAPER_MM of the edge of the paper or of the image (`near_edge`):
    what they did beyond it is not on the page."""
    out = set()
    for tr in traces:
        ok = np.isfinite(tr.y_mm)
        if ok.any() and near_edge(page_map, tr.x_mm[ok], tr.y_mm[ok]).any():
            out.add(tr.lead)
    return out


def unread_borrowed(traces: list[CellTrace], cut: set[str]) -> list[CellTrace]:
    """`traces` with each cut lead's columns that lie on another row's path (within SAME_PATH_MM) unread
    (NaN, confidence at most BORROWED_CONFIDENCE): there its own trace had left the picture and the
    decoder took the other row's ink. The other row keeps them; leads not cut are returned as they are."""
    out = []
    for tr in traces:
        if tr.lead not in cut or tr.x_mm.size == 0:
            out.append(tr)
            continue
        same = np.zeros(tr.x_mm.size, dtype=bool)
        for other in traces:
            if other.row == tr.row or other.x_mm.size == 0:
                continue
            same |= _on_path(tr, other)
        same = _joined(same, tr.x_mm, JOIN_MM)
        if not same.any():
            out.append(tr)
            continue
        out.append(
            replace(
                tr,
                y_mm=np.where(same, np.nan, tr.y_mm),
                confidence=np.where(same, np.minimum(tr.confidence, BORROWED_CONFIDENCE), tr.confidence),
            )
        )
    return out


def _joined(mask: np.ndarray, x: np.ndarray, gap_mm: float) -> np.ndarray:
    """`mask` with its runs of False between two True columns at most `gap_mm` apart in x set True."""
    on = np.flatnonzero(mask)
    out = mask.copy()
    for a, b in zip(on[:-1], on[1:], strict=True):
        if b > a + 1 and x[b] - x[a] <= gap_mm:
            out[a:b] = True
    return out


def _on_path(tr: CellTrace, other: CellTrace) -> np.ndarray:
    """Per column of `tr`: `other` was read at that x (its nearest column within half a column step) and
    its path lies within SAME_PATH_MM of `tr`'s."""
    xo, x = other.x_mm, tr.x_mm
    if xo.size > 1:
        j = np.clip(np.searchsorted(xo, x), 1, xo.size - 1)
        k = np.where(np.abs(xo[j - 1] - x) <= np.abs(xo[j] - x), j - 1, j)
        step = float(np.median(np.diff(xo)))
    else:
        k, step = np.zeros(x.size, dtype=np.int64), 0.0
    near_x = np.abs(xo[k] - x) <= step / 2 + 1e-9
    yo = other.y_mm[k]
    with np.errstate(invalid="ignore"):
        return near_x & np.isfinite(yo) & np.isfinite(tr.y_mm) & (np.abs(yo - tr.y_mm) < SAME_PATH_MM)
