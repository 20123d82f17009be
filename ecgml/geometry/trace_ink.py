"""Trace ink on a grid as dark as the trace: the grid's lines taken out by their shape, not their darkness.

`orient.ink_mask` keeps what is clearly darker than the major grid lines. Some prints have it the other
way round (GE-style copies: a dark 5 mm grid, a light-grey trace): nothing is darker than the lines, and
geometry found the grid but no trace rows on it. On the rectified raster the grid lines run along the
raster's axes over the whole page and darken nearly every pixel of their row or column, while a trace
leaves any one raster row within a few millimetres; that level, taken away, leaves the trace, the labels
and the text.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np

BLOCK_MM = 20.0  # the page is looked at in blocks this long along each raster axis
LINE_SHARE = 0.9  # a grid line darkens at least this share of its raster row (column) in a block;
# a trace's flat stretch lies in one raster row for much less (wander, noise), a pulse stroke is 10 mm
MIN_LEVEL = 0.1  # darkness over the lines that counts as ink at all (paper noise, JPEG: < 0.05)
LEVEL_SHARE = 0.35  # ... and at least this share of the strongest ink left (99.5th percentile)
BRIDGE_MM = 10.0  # a trace's flat stretch between beats lost along a grid line (~0.4 s at 25 mm/s)
CROSS_MM = 1.5  # a line (widened by a pixel each side) cuts a stroke crossing it over at most this


def _row_level(a: np.ndarray, block: int) -> np.ndarray:
    """Per raster row and block of `block` columns: the darkness that (1 - LINE_SHARE) of it exceeds
    (NaN outside the image ignored), spread back over the block's pixels."""
    h, w = a.shape
    nb = -(-w // block)
    padded = np.full((h, nb * block), np.nan, np.float32)
    padded[:, :w] = a
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks outside the image
        lv = np.nanpercentile(padded.reshape(h, nb, block), 100 * (1 - LINE_SHARE), axis=2)
    return np.repeat(np.nan_to_num(lv, nan=0.0), block, axis=1)[:, :w].astype(np.float32)


def grid_lines(ink: np.ndarray, valid: np.ndarray, ppm: float) -> np.ndarray:
    """The grid lines' darkness at every pixel of `ink` (0..1, rectified raster at `ppm` px/mm): what
    darkens nearly all of a raster row or column over BLOCK_MM, widened by a pixel (map error, print
    jitter, anti-aliasing)."""
    a = np.where(valid, ink, np.nan).astype(np.float32)
    block = max(8, int(round(BLOCK_MM * ppm)))
    lines = np.maximum(_row_level(a, block), _row_level(a.T, block).T)
    return np.asarray(cv2.dilate(lines, np.ones((3, 3), np.uint8)))


def line_free_ink(ink: np.ndarray, valid: np.ndarray, ppm: float) -> np.ndarray:
    """Darkness (0..1) left over the grid lines (`grid_lines`), 0 outside `valid`. Where a trace crosses
    a line, or runs along one, its pixels there are lost."""
    rest = np.where(valid, ink, 0.0).astype(np.float32) - grid_lines(ink, valid, ppm)
    return np.clip(rest, 0.0, 1.0)


def line_free_mask(ink: np.ndarray, valid: np.ndarray, ppm: float) -> np.ndarray:
    """Ink pixels of `line_free_ink` above MIN_LEVEL and LEVEL_SHARE of the strongest ink left. A trace
    whose baseline runs along a grid line loses its flat stretches there, and a stroke crossing a line the
    line's width: gaps up to BRIDGE_MM along a line, and CROSS_MM across one, between ink on both sides,
    are given back."""
    lines = grid_lines(ink, valid, ppm)
    rest = np.clip(np.where(valid, ink, 0.0) - lines, 0.0, 1.0)
    v = rest[valid]
    if v.size == 0:
        return np.zeros(ink.shape, bool)
    thr = max(MIN_LEVEL, LEVEL_SHARE * float(np.percentile(v, 99.5)))
    m = (rest > thr).astype(np.uint8)
    n = max(3, int(round(BRIDGE_MM * ppm)))
    along = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((1, n), np.uint8)) > 0
    # a steep stroke (QRS, pulse) is cut at every line it crosses: the cut is given back too
    nv = max(3, int(round(CROSS_MM * ppm)) | 1)
    closed = along | (cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((nv, 1), np.uint8)) > 0)
    return np.asarray((m > 0) | (closed & (lines > thr) & valid))
