"""The page's gain read from its calibration pulses: each pulse's height measured on the ink, in mm.

A calibration pulse is 1 mV tall at the page's gain: 10 mm at the standard 10 mm/mV, 5 or 20 mm on pages
printed at other gains, and a step (10 mm, then 5 mm) on rows that mix limb leads at 10 and chest leads at
5 mm/mV. Orientation finds standard pulses only (`orient.find_pulses`); here every row end of the upright
page is searched for pulses of each standard shape, each match is checked stroke by stroke, and its
height is measured on the ink (top stroke to foot). The page's gain is set only when the measured
heights agree on one standard value (or on the mixed pattern); otherwise it stays assumed (10 mm/mV).

Speed is not set from the pulse: its width (0.2 s on most carts, 0.4 s at 50 mm/s on some, 5 mm whatever
the speed on others) does not say the speed reliably. The measured width is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ecgml.geometry.orient import PULSE_MIN_SCORE, Rows, pulse_template, taller

GAINS_MM_MV = (5.0, 10.0, 20.0)  # the standard gains a pulse may show (1 mV tall)
MIXED = (10.0, 5.0)  # limb, chest mm/mV: the one mixed setting carts print (a step pulse)
WIDTHS_MM = (5.0, 10.0, 20.0)  # 0.2 s at 25 mm/s; 0.4 s at 25, or 0.2 s at 50; 0.4 s at 50 mm/s
STANDARD_WIDTH_MM = 5.0  # 0.2 s at 25 mm/s
# a measured height within this share of a standard one is that one (the grid fixes mm to < 1 %; the ink
# raster's 0.25 mm px and the stroke width leave ~0.5 mm): 20 % keeps 5/10/20 far apart
SNAP_TOL = 0.2
ROW_END_MM = 15.0  # a pulse starts within this of its row's ink start (or ends within it of its end)
BASE_TOL_MM = 2.5  # its foot lies this close to the row's baseline
LONE_MIN_SCORE = 0.7  # a page with one pulse only: that pulse must match this well
SIDE_RATIO = 3  # the pulses at one row end outnumber those at the other this many times: only theirs count
STROKE_MIN = 0.5  # share of a stroke's rows with ink (grid lines cut strokes into dashes on photos)
# a pulse's top is one level stroke (or two, a step apart): its halves' measured heights differ from the
# shape's step by at most this (0.25 mm raster px; a photo's tilt moves them < 0.25 mm over 2.5 mm). A wave
# shaped like a pulse has a sloping top (validation page cabrera-6x2_009, a screen photo: a lone "5 mm
# pulse" 6.0 mm tall on its left half and 5.25 on its right, and every lead came out twice as tall)
TOP_TOL_MM = 0.5


@dataclass
class PulseReading:
    """What the pulses say: per pulse (row, side, height, step, width mm), and the page's gain."""

    pulses: list[dict[str, Any]] = field(default_factory=list)
    gain_mm_mv: float | None = None  # None: not read (no pulse, or the pulses disagree)
    chest_gain_mm_mv: float = 0.0  # > 0: mixed gain (limb at gain_mm_mv, chest at this)
    width_mm: float | None = None  # median measured pulse width
    why: str = ""

    @property
    def read(self) -> bool:
        return self.gain_mm_mv is not None

    @property
    def speed_consistent(self) -> bool:
        """The pulses are as wide as 0.2 s at the assumed 25 mm/s (else the page may run at another speed:
        0.4 s at 50 mm/s is 20 mm)."""
        return self.width_mm is not None and abs(self.width_mm - STANDARD_WIDTH_MM) <= 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "gain_read": self.read,
            "gain_mm_mv": self.gain_mm_mv,
            "chest_gain_mm_mv": self.chest_gain_mm_mv,
            "pulse_width_mm": self.width_mm,
            "speed_consistent": self.speed_consistent,
            "n_pulses": len(self.pulses),
            "pulses": self.pulses,
            "why": self.why,
        }


def measure(f: np.ndarray, left: int, foot: int, w: int, h: int, ppm: float) -> dict[str, float] | None:
    """Heights (mm from the baseline to the top stroke, over the left and the right half) and width (mm
    between the strokes) of the pulse matched with its left stroke near column `left` and its foot near
    row `foot`: each read where the ink piles up (a row or a column), so dashed strokes do not matter."""
    s = max(1, int(round(0.5 * ppm)))
    H, W = f.shape
    near = int(2.5 * ppm)
    # a pulse narrower than 4 mm (2.5 mm: 0.2 s at 12.5 mm/s, looked for beside boxes): its top read
    # half as far from its strokes, and its right stroke (as wide as its inside on a small copy) kept out
    # of the trace beside it; the standard widths (5 mm and up) are measured as they always were
    m = 2 * s if w >= 8 * s else s
    out = s if w >= 8 * s else 2 * s
    # the baseline: the trace beside the pulse (right of it at a row start, left of it at a row end)
    ya, yb = max(0, foot - near), min(H, foot + near + 1)
    beside = np.concatenate(
        [
            f[ya:yb, max(0, left - 3 * near) : max(0, left - s)],
            f[ya:yb, min(W, left + w + out) : left + w + 3 * near],
        ],
        axis=1,
    )
    base = ya + int(np.argmax(beside.sum(axis=1))) if beside.size and beside.max() > 0.5 else foot
    tops = []
    for c0, c1 in ((left + m, left + w // 2 - m // 2), (left + w // 2 + m // 2, left + w - m)):
        y0, y1 = max(0, base - int(1.5 * h) - 2 * s), max(0, base - h // 2)
        prof = f[y0:y1, c0:c1].mean(axis=1) if c1 > c0 and y1 > y0 else np.zeros(0)
        if prof.size == 0 or prof.max() < 0.5:
            return None
        tops.append(y0 + int(np.argmax(prof)))
    rows = f[min(tops) + 2 * s : base - 2 * s]
    if rows.shape[0] < 2:
        return None
    cols = rows.mean(axis=0)
    cl = left - s - 1 + int(np.argmax(cols[max(0, left - s - 1) : left + s + 2]))
    cr = left + w - s - 1 + int(np.argmax(cols[left + w - s - 1 : left + w + s + 2]))
    return {
        "height_mm": round((base - tops[0]) / ppm, 3),
        "right_mm": round((base - tops[1]) / ppm, 3),
        "width_mm": round((cr - cl) / ppm, 3),
    }


def snap_gain(h_mm: float) -> float | None:
    """The standard gain a measured 1 mV height is clearly near, else None."""
    for g in GAINS_MM_MV:
        if abs(h_mm - g) <= SNAP_TOL * g:
            return g
    return None


def _shapes(widths: tuple[float, ...] = WIDTHS_MM) -> list[tuple[float, float, float]]:
    """(width, height, step) of every pulse shape looked for, at these widths."""
    out = [(w, h, 0.0) for w in widths for h in GAINS_MM_MV]
    out += [(w, MIXED[0], MIXED[1]) for w in widths]
    return out


def _row_zones(
    rows: Rows, x0: float, y0: float, ppm: float, shape: tuple[int, int]
) -> list[tuple[int, int, int, int]]:
    """Per row: (row, baseline px, left-end x range, right-end x range) on the upright raster."""
    out = []
    for i, (b, lft, rgt) in enumerate(zip(rows.centres, rows.left, rows.right, strict=True)):
        by = int(round((b - y0) * ppm))
        lx, rx = int(round((lft - x0) * ppm)), int(round((rgt - x0) * ppm))
        if not 0 <= by < shape[0]:
            continue
        out.append((i, by, lx, rx))
    return out


def bridged(mask: np.ndarray, ppm: float) -> np.ndarray:
    """The ink mask with gaps of up to ~1 mm along vertical and horizontal strokes closed: on photos and
    coloured grids the grid lines cut a pulse's strokes into dashes."""
    k = max(3, int(round(1.0 * ppm)) | 1)
    m = mask.astype(np.uint8)
    v = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((k, 1), np.uint8))
    h = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((1, k), np.uint8))
    return np.maximum(v, h).astype(np.float32)


def find_row_pulses(
    mask: np.ndarray,
    rows: Rows,
    ext: tuple[float, float, float, float],
    ppm: float,
    base_tol_mm: float = BASE_TOL_MM,
    widths: tuple[float, ...] = WIDTHS_MM,
) -> list[dict]:
    """Pulses of any standard shape at the row ends of the upright ink `mask` (covering `ext` mm): per row
    the best-matching shape at its left end and at its right end, each checked and measured; its foot
    within `base_tol_mm` of the row's centre; `widths`: the pulse widths looked for."""
    f = cv2.GaussianBlur(bridged(mask, ppm), (0, 0), 0.6)
    np.minimum(f, 1.0, out=f)
    H, W = f.shape
    zones = _row_zones(rows, ext[0], ext[1], ppm, (H, W))
    if not zones:
        return []
    end = int(ROW_END_MM * ppm)
    btol = int(base_tol_mm * ppm)
    s = max(1, int(round(0.5 * ppm)))
    wide = cv2.dilate(f, np.ones((s, s), np.uint8))  # every stroke at least the template's s px wide
    found: list[dict] = []
    for w_mm, h_mm, step_mm in _shapes(widths):
        t, base = pulse_template(ppm, w_mm, h_mm, step_mm)
        th, tw = t.shape
        w, h = int(round(w_mm * ppm)), int(round(h_mm * ppm))
        pad = int(round(1.0 * ppm))
        for row, by, lx, rx in zones:
            for side, xa, xb in (("left", lx - end, lx + end), ("right", rx - end - w, rx + end - w)):
                # search window: the pulse's left stroke in [xa, xb], its foot within btol of the baseline
                ya, yb = by - btol - base, by + btol - base
                x_lo, y_lo = max(0, xa - pad), max(0, ya)
                x_hi, y_hi = min(W, xb - pad + tw), min(H, yb + th)
                roi = f[y_lo:y_hi, x_lo:x_hi]
                if roi.shape[0] < th or roi.shape[1] < tw:
                    continue
                sc = cv2.matchTemplate(roi, t, cv2.TM_CCORR)
                yy, xx = (int(v) for v in np.unravel_index(int(np.argmax(sc)), sc.shape))
                if sc[yy, xx] <= PULSE_MIN_SCORE:
                    # a pulse drawn by a pen thinner than the template's strokes fills half of each:
                    # matched again on strokes widened to them; the checks below read the ink as it is
                    sc = cv2.matchTemplate(wide[y_lo:y_hi, x_lo:x_hi], t, cv2.TM_CCORR)
                    yy, xx = (int(v) for v in np.unravel_index(int(np.argmax(sc)), sc.shape))
                    if sc[yy, xx] <= PULSE_MIN_SCORE:
                        continue
                left, top = x_lo + xx + pad, y_lo + yy + pad
                foot = y_lo + yy + base
                c = f[top - s : top + h + 3 * s, left - s : left + w + s]
                if c.shape != (h + 4 * s, w + 2 * s):
                    continue
                hs = int(round(step_mm * ppm)) if step_mm else h
                lft = c[s : s + h, : 2 * s].max(axis=1).mean()
                rgt = c[s + h - hs : s + h, w : w + 2 * s].max(axis=1).mean()
                half = w // 2 if step_mm else w
                tp = c[: 2 * s, 2 * s : half].max(axis=0).mean()
                inside = c[s + h - hs + 2 * s : h - s, 3 * s : w - s].mean()
                ft = c[h + s : h + 3 * s, 3 * s : w - s].mean()
                if (
                    min(lft, rgt) < STROKE_MIN
                    or tp < 0.6
                    or inside > 0.15
                    or ft > 0.25
                    or taller(f, left, top + h, w, ppm)
                ):
                    continue
                m = measure(f, left, foot, w, h, ppm)
                if m is None:
                    continue
                score = float((lft + rgt + tp) / 3 - inside - ft)
                found.append(
                    {"row": row, "side": side, "score": round(score, 3), "shape": [w_mm, h_mm, step_mm], **m}
                )
    # one pulse per row end: the best-scoring shape whose measured size agrees with it
    best: dict[tuple[int, str], dict] = {}
    for p in found:
        w_mm, h_mm, step_mm = p["shape"]
        ok_h = abs(p["height_mm"] - h_mm) <= SNAP_TOL * h_mm
        ok_r = abs(p["right_mm"] - (step_mm or h_mm)) <= SNAP_TOL * (step_mm or h_mm)
        ok_w = abs(p["width_mm"] - w_mm) <= max(1.0, 0.2 * w_mm)
        level = abs((p["height_mm"] - p["right_mm"]) - (h_mm - (step_mm or h_mm))) <= TOP_TOL_MM
        if not (ok_h and ok_r and ok_w and level):
            continue
        key = (p["row"], p["side"])
        if key not in best or p["score"] > best[key]["score"]:
            best[key] = p
    return [best[k] for k in sorted(best)]


def one_side(pulses: list[dict]) -> list[dict]:
    """The pulses at the row ends where the page prints them: a cart prints its pulses at the same end of
    every row, so a side with at most 1/SIDE_RATIO as many as the other holds waves shaped like a pulse,
    not pulses (validation page 6x2+II_002: seven 10 mm pulses at the row starts and one 5 mm "pulse" at
    a row's end read as mixed gain, and every chest lead came out twice as tall at confidence 0.93)."""
    n = {side: sum(p.get("side", "left") == side for p in pulses) for side in ("left", "right")}
    few = min(n, key=lambda k: n[k])
    if n[few] and n[few] * SIDE_RATIO <= n["left"] + n["right"] - n[few]:
        return [p for p in pulses if p.get("side", "left") != few]
    return pulses


def page_gain(pulses: list[dict]) -> PulseReading:
    """The page's gain from its measured pulses (at the end of the rows where most are: `one_side`): one
    standard gain all agree on, or the mixed pattern (step pulses, or rows at 10 and rows at 5 mm); else
    not read."""
    pulses = one_side(pulses)
    if not pulses:
        return PulseReading([], None, 0.0, None, "no calibration pulse found")
    if len(pulses) == 1 and pulses[0]["score"] < LONE_MIN_SCORE:
        return PulseReading(pulses, None, 0.0, None, "one weak pulse-like mark only")
    width = float(np.median([p["width_mm"] for p in pulses]))
    heights = [p["shape"][1] for p in pulses]
    steps = [p for p in pulses if p["shape"][2] > 0]
    flat = sorted({h for p, h in zip(pulses, heights, strict=True) if p["shape"][2] == 0})
    if steps or flat == [MIXED[1], MIXED[0]]:
        if set(flat) <= {MIXED[1], MIXED[0]}:
            return PulseReading(pulses, MIXED[0], MIXED[1], width, "mixed: step pulse or rows at 10 and 5 mm")
        return PulseReading(pulses, None, 0.0, width, f"pulses disagree: heights {flat} mm and step pulses")
    if len(flat) == 1:
        return PulseReading(pulses, flat[0], 0.0, width, f"{len(pulses)} pulse(s) {flat[0]:g} mm tall")
    return PulseReading(pulses, None, 0.0, width, f"pulses disagree: heights {flat} mm")


def read_pulses(
    mask: np.ndarray,
    rows: Rows,
    ext: tuple[float, float, float, float],
    ppm: float,
    base_tol_mm: float = BASE_TOL_MM,
    widths: tuple[float, ...] = WIDTHS_MM,
) -> PulseReading:
    """The gain the page's calibration pulses show (`find_row_pulses`, `page_gain`)."""
    return page_gain(find_row_pulses(mask, rows, ext, ppm, base_tol_mm, widths))


def start_pulse_width(reading: PulseReading) -> float | None:
    """The standard width (WIDTHS_MM) of the pulses measured at the rows' left ends, when they agree on
    one (None: no such pulses, or widths between standards): the rows start that far right of the
    pulses' left edges (20 mm on pages printing 0.4 s at 50 mm/s, not the 5 mm of 0.2 s at 25)."""
    left = [float(p["width_mm"]) for p in reading.pulses if p.get("side") == "left"]
    if not left or (len(left) == 1 and not reading.read):
        return None
    w = float(np.median(left))
    near = min(WIDTHS_MM, key=lambda s: abs(s - w))
    return near if abs(w - near) <= max(1.0, 0.2 * near) else None
