"""Is the image an ECG page at all? The evidence a real page has and other images lack (issue 16).

A real page has a periodic grid and, on it, trace-like ink: confident traces of some amplitude whose
heartbeats fall at the same moments in every row (the rows of a page show the same seconds). Some real
pages have no grid, or lose it to a photo; then the traces must carry the page by themselves. When
geometry found no grid its flat-page guess may miss the rows (a page photographed turned, small in the
frame), so the image's own ink is also looked at: long thin curves running across the page, side by
side, whose steep parts line up (`ink_curves`). Ruled lines, text, shapes, textures and bare graph paper
show none of this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

ENVELOPE_FS = 250.0  # Hz: the traces' slope envelopes are compared on this time grid
ENVELOPE_S = 0.06  # smoothing of |slope|: about a QRS complex
BEAT_SHIFT_S = 0.04  # rows may be misregistered by this much in time
MIN_AMPLITUDE_MM = 2.0  # no grid, median peak-to-peak of the traced cells below this: flat lines
GRID_TRACE_AT = 0.2  # with a grid: trace confidence below this means no trace-like ink on it (bare
GRID_WEAK_AT = 0.45  # graph paper 0.04-0.13); below this the beats must agree (a text page on which
GRID_BEATS_AT = 0.45  # geometry saw a grid: 0.30 and 0.20; real pages 0.32 and 0.74, 0.59 and 0.14)
NO_GRID_TRACE_AT = 0.45  # without a grid the traces themselves must look like an ECG: confident,
NO_GRID_SUM_AT = 1.05  # ... and confidence + beat agreement at least this (a crumpled photo's rows agree
# less in time but are traced with confidence 0.9; shapes reach 0.6-0.75 with agreement <= 0.25)
INK_LONG_SIDE = 1200  # px: the image is looked at this size for long thin curves
INK_KERNEL_PX = 9  # black-hat size: ink thinner than this (traces, not filled shapes or shadows)
CURVE_MIN_LENGTH = 0.3  # a curve spans at least this share of the image's width ...
CURVE_MAX_HEIGHT = 0.25  # ... and at most this share of its height
CURVE_MAX_INK = 12  # ink px per px of length: a line, not a blob
CURVE_MIN_WAVE = 0.02  # its ink leaves a straight line by this share of its length (QRS spikes of 1 mV
# on a 250 mm row: 4 %; ruled lines, straight even when photographed tilted: their width, < 1 %)
CURVE_SHIFT = 0.02  # rows of a tilted page are offset by up to this share of the width
MIN_CURVES = 3  # rows of trace side by side
CURVES_AT = 0.4  # median correlation of the curves' steep parts with the others'


@dataclass
class PageEvidence:
    """What makes a page an ECG page: a grid, trace-like ink, beats shared across leads, amplitudes."""

    grid: bool  # page geometry found a periodic ECG grid (not its fallback)
    trace: float  # mean extractor confidence over the traced columns, 0..1
    beats: float  # median correlation of each cell's slope envelope with the others' at the same time
    amplitude_mm: float  # median peak-to-peak of the traced cells on the paper
    curves: int = 0  # long thin curves side by side in the image's ink (`ink_curves`; no grid only)
    curve_beats: float = 0.0  # how well their steep parts line up

    def to_json(self) -> dict[str, Any]:
        return {
            "grid": self.grid,
            "trace": round(self.trace, 4),
            "beats": round(self.beats, 4),
            "amplitude_mm": round(self.amplitude_mm, 3),
            "curves": self.curves,
            "curve_beats": round(self.curve_beats, 4),
        }


def _cell_envelope(x_mm: np.ndarray, y_mm: np.ndarray, t0_s: float, x0_mm: float, speed: float) -> Any:
    """(first grid index, smoothed |dy/dt| on the ENVELOPE_FS grid) of one cell's trace, or None."""
    ok = np.isfinite(y_mm) & np.isfinite(x_mm)
    if ok.sum() < 8:
        return None
    t = t0_s + (x_mm[ok] - x0_mm) / speed
    k0, k1 = int(np.ceil(t[0] * ENVELOPE_FS)), int(np.floor(t[-1] * ENVELOPE_FS))
    if k1 - k0 < ENVELOPE_FS:  # under a second of trace: too short to show beats
        return None
    y = np.interp(np.arange(k0, k1 + 1) / ENVELOPE_FS, t, y_mm[ok])
    slope = np.abs(np.gradient(y)) * ENVELOPE_FS
    n = max(1, int(round(ENVELOPE_S * ENVELOPE_FS)))
    env = np.convolve(slope, np.ones(n) / n, mode="same")
    return k0, env / max(float(np.percentile(env, 98)), 1e-6)


def _best_correlation(a: np.ndarray, b: np.ndarray, shift: int, min_size: float) -> float:
    """Largest Pearson correlation of a and b over shifts of up to `shift` samples."""
    best = -1.0
    for s in range(-shift, shift + 1, 2):
        aa, bb = a[max(0, s) : a.size + min(0, s)], b[max(0, -s) : b.size - max(0, s)]
        if aa.size > min_size and aa.std() > 0 and bb.std() > 0:
            best = max(best, float(np.corrcoef(aa, bb)[0, 1]))
    return best


def _agreement(rows: list[tuple[int, np.ndarray]], shift: int, min_size: float) -> list[float]:
    """Each row's correlation with the mean of the others where they overlap: (start, envelope) rows."""
    # a row that starts before the page's time 0 (a cell placed left of the paper) is cut there
    rows = [(0, e[-k0:]) if k0 < 0 else (k0, e) for k0, e in rows]
    n = int(max((k0 + e.size for k0, e in rows), default=0))
    if not n:
        return []
    stack = np.full((len(rows), n), np.nan)
    for i, (k0, e) in enumerate(rows):
        stack[i, k0 : k0 + e.size] = e
    total, count = np.nansum(stack, axis=0), np.isfinite(stack).sum(axis=0)
    cors = []
    for k0, e in rows:
        sl = slice(k0, k0 + e.size)
        others = count[sl] - 1
        ok = others > 0
        if ok.sum() < min_size:
            continue
        mean_others = (total[sl][ok] - e[ok]) / others[ok]
        cors.append(_best_correlation(e[ok], mean_others, shift, min_size))
    return cors


def page_evidence(traces: list[Any], cells: list[Any], speed_mm_s: float, grid: bool) -> PageEvidence:
    """The evidence of `PageEvidence` from the traces (`CellTrace`) of the layout's `cells`.

    Beats: every lead shows the same heartbeats at the same moments, and the rows of a page show the
    same seconds, so the steep QRS slopes of one cell fall where the other rows' do; ruled lines, text,
    shapes or noise traced as if they were leads do not line up that way."""
    where = {(c.row, c.col): c for c in cells}
    envs: list[tuple[int, np.ndarray]] = []
    conf, amp = [], []
    for tr in traces:
        conf.append(tr.confidence)
        ok = np.isfinite(tr.y_mm)
        if ok.sum() >= 8:
            amp.append(float(np.ptp(tr.y_mm[ok])))
        cell = where.get((tr.row, tr.col))
        if cell is not None:
            env = _cell_envelope(tr.x_mm, tr.y_mm, cell.t0_s, cell.x0_mm, speed_mm_s)
            if env is not None:
                envs.append(env)
    trace = float(np.mean(np.concatenate(conf))) if conf and sum(c.size for c in conf) else 0.0
    cors = _agreement(envs, int(round(BEAT_SHIFT_S * ENVELOPE_FS)), ENVELOPE_FS)
    beats = float(np.median(cors)) if cors else 0.0
    return PageEvidence(grid, trace, beats, float(np.median(amp)) if amp else 0.0)


def not_an_ecg_page(ev: PageEvidence) -> str:
    """Why the page is not an ECG page ("" when it may be one).

    With a grid, trace-like ink on it is enough (a badly read real page keeps its output and its low
    confidences; graph paper has none). Without one (some photos lose it) the traces must look like an
    ECG themselves: confident, not flat, and with beats at the same moments across the rows."""
    measured = (
        f"trace confidence {ev.trace:.2f}, beat agreement {ev.beats:.2f}, amplitude {ev.amplitude_mm:.1f} mm"
    )
    if ev.grid:
        weak = ev.trace < GRID_WEAK_AT and ev.beats < GRID_BEATS_AT
        bare = ev.trace < GRID_TRACE_AT or weak
        return f"an ECG-like grid with no trace on it ({measured})" if bare else ""
    if ev.amplitude_mm < MIN_AMPLITUDE_MM:
        return f"no ECG grid, and the lines traced are flat: no heartbeats ({measured})"
    if ev.curves >= MIN_CURVES and ev.curve_beats >= CURVES_AT:
        return ""  # rows of trace in the image itself, where the flat-page guess did not find them
    if ev.trace < NO_GRID_TRACE_AT or ev.trace + ev.beats < NO_GRID_SUM_AT:
        return f"no ECG grid and no heartbeat-like traces ({measured})"
    return ""


def unread_ecg_reason(ev: PageEvidence, why: str, trace_rows: int) -> str:
    """Why a page whose ink shows ECG rows was not read; "" when it does not.

    The cells the layout placed hold no readable trace (`why`), but geometry found `trace_rows` rows of
    trace ink darker than the grid (each with steep strokes leaving its baseline) and the image has long
    wavy curves side by side whose steep parts line up (`ink_curves` in `ev`): the trace is there and the
    page was misplaced (wrong layout, rows or turn). Saying "no trace" would send the user looking for a
    problem the page does not have. Both are asked: bare graph paper photographed bent shows such curves
    (its lines), and rows found by shape (`geometry.trace_ink`) on it."""
    if trace_rows < MIN_CURVES or ev.curves < MIN_CURVES or ev.curve_beats < CURVES_AT:
        return ""
    return (
        f"ECG trace seen ({ev.curves} trace rows in the image, beats aligned {ev.curve_beats:.2f}) but the "
        f"page could not be placed: the leads were looked for where there is no trace ({why})"
    )


def _centre_line(mask: np.ndarray) -> np.ndarray:
    """Mean ink row of each column of one curve's mask (gaps interpolated)."""
    count = mask.sum(axis=0)
    rows = np.arange(mask.shape[0])[:, None]
    centre = np.where(count > 0, (mask * rows).sum(axis=0) / np.maximum(count, 1), np.nan)
    x = np.arange(mask.shape[1])
    ok = np.isfinite(centre)
    return np.asarray(np.interp(x, x[ok], centre[ok]))


def _waviness(mask: np.ndarray) -> float:
    """Peak-to-peak (px) of a curve's ink about the straight line fitted to its centre line. The ink's
    reach, not the centre line's: a QRS spike is a column of ink whose mean row moves half as far as its
    tip, so low limb leads on a page small in a photo (validation realworld 6x1-limb_009, QRS of about
    5 mm at 2.4 px/mm: spikes of 11-14 px on 600 px rows) had centre lines within 1-2 % of straight."""
    centre = _centre_line(mask)
    x = np.arange(centre.size)
    line = np.polyval(np.polyfit(x, centre, 1), x)
    cols = mask.any(axis=0)
    top = np.argmax(mask, axis=0)
    bottom = mask.shape[0] - 1 - np.argmax(mask[::-1], axis=0)
    return float(np.max((bottom - line)[cols]) - np.min((top - line)[cols]))


def _curve_envelope(mask: np.ndarray) -> np.ndarray:
    """Per column of one curve's mask: |slope| of its centre line plus its ink height (spikes are tall),
    smoothed and normalised (the image-space twin of a cell's slope envelope)."""
    count = mask.sum(axis=0)
    centre = _centre_line(mask)
    env = np.convolve(np.abs(np.gradient(centre)) + count / 3.0, np.ones(5) / 5, mode="same")
    return env / max(float(np.percentile(env, 98)), 1e-6)


def ink_curves(image: np.ndarray, neutral: bool = False) -> tuple[int, float]:
    """(number of long thin curves side by side, median agreement of their steep parts), taking the
    better of the image as it is and turned a quarter: ECG rows are long, thin, wavy lines that span the
    page, and their QRS spikes line up across the rows. `neutral`: only ink dark in every channel counts
    (a page with a coloured grid, whose lines would join the traces into one net)."""
    if image.ndim == 3:
        grey = image.max(axis=2) if neutral else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    else:
        grey = image
    scale = INK_LONG_SIDE / max(grey.shape)
    small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (INK_KERNEL_PX, INK_KERNEL_PX))
    dark = cv2.morphologyEx(small, cv2.MORPH_BLACKHAT, kernel)
    ink = (dark > max(20.0, 0.35 * float(np.percentile(dark, 99)))).astype(np.uint8)
    best = (0, 0.0)
    for turned in (ink, np.ascontiguousarray(ink.T)):
        h, w = turned.shape
        n, labels, stats, _ = cv2.connectedComponentsWithStats(turned, connectivity=8)
        rows: list[tuple[int, np.ndarray]] = []
        for i in range(1, n):
            x, y, cw, ch, area = (int(v) for v in stats[i])
            if cw < CURVE_MIN_LENGTH * w or ch > CURVE_MAX_HEIGHT * h or area > CURVE_MAX_INK * cw:
                continue
            mask = labels[y : y + ch, x : x + cw] == i
            if mask.any(axis=0).mean() >= 0.8 and _waviness(mask) >= CURVE_MIN_WAVE * cw:
                rows.append((x, _curve_envelope(mask)))
        if len(rows) < 2:
            continue
        cors = _agreement(rows, int(round(CURVE_SHIFT * w)), 0.2 * w)
        if cors and float(np.median(cors)) > best[1]:
            best = (len(rows), float(np.median(cors)))
    return best
