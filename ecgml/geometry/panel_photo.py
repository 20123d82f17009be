"""Panel pages in photos, on screens and turned: the boxes read on the page made upright first.

The panel reader (`panels.find_panels`) reads boxes from long ruled lines, so it needs a page whose
lines run along the image axes. A photographed, turned or skewed panel page does not give it one; the
page-wide grid fit does find such a page's plane (its homography: the local lattice directions and
perspective are right even where the boxes' separate lattices bend its residual), so the image is
resampled through that homography alone onto an upright raster, lit evenly (a photo's shading is not
ink), cut to the paper (a desk or a screen's frame is not ruled lines), and read there, each quarter turn
in turn: the page-wide fit's turn first, then its half turn (a 3x4 grid of boxes with a strip under it
reads only one way up), then the quarter turns. The boxes' reading is the map of the whole chain.

That homography may hold the page's perspective only where the fit measured it (part of the page): the
boxes read on the raster are then squared (`_squared`) by what they show themselves - the ruled lines'
spacing growing along the rows, their tilt, and the columns' converging sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from ecgml.geometry.panels import INK_LEVEL, PanelPage, count_boxes, find_panels
from ecgml.layout import Cell
from ecgml.page import PageMap, apply_homography

COARSE_LONG_SIDE = 800  # the paper is found on a raster this size first
RASTER_LONG_SIDE = (1100, 2300)  # the raster keeps the image's detail, within these sizes (px)
MAX_EXTENT_MM = 600.0  # the raster covers at most this much paper around the page's centre
MAX_LEVEL_DEG = 12.0  # the homography's remaining turn and shear are levelled up to this much
FLAT_MM = 4.0  # the paper's brightness is the local maximum over this size (a grid square, a trace)
TURNS = (0, 2, 1, 3)  # quarter turns tried, in this order
PAPER_LEVEL = 250.0  # the paper after even lighting, and what lies outside it
PAPER_TOL = 4.0  # px this close under the local paper level are clear paper (its colour is read there)
# Squaring the boxes read on the raster (`_squared`): a correction that moves no point of the grid by more
# than this is not made
SQUARE_MIN_MM = 0.5
SQUARE_MAX_RESIDUAL_MM = 0.5  # the columns' sides lie on straight lines within this (no crop, no tear)
SQUARE_MIN_ROWS = 3
SQUARE_CHIRP_MM = 40.0  # the ruled lines' spacing is measured over this much of each box's ends (at most
# a third of the box)
SQUARE_STEP_MM = 0.1
# a spacing is measured where its comb's power is at least this share of the profile's (noise: 1 / samples)
SQUARE_COHERENCE = 0.01
SQUARE_PERIOD_TOL = 0.02  # spacings off the steady change by more than this share are left out


@dataclass
class RectifiedPanels:
    """The boxes read on the upright raster, with the map paper mm -> input px of the whole chain."""

    page_map: PageMap
    found: PanelPage
    diagnostics: dict[str, Any] = field(default_factory=dict)


def _quarter(k: int, w: int, h: int) -> np.ndarray:
    """3x3 continuous-px map from `np.rot90(a, k)` (of an image `w` x `h` px) back to `a`."""
    k %= 4
    if k == 1:
        return np.array([[0.0, -1.0, w], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    if k == 2:
        return np.array([[-1.0, 0.0, w], [0.0, -1.0, h], [0.0, 0.0, 1.0]])
    if k == 3:
        return np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, h], [0.0, 0.0, 1.0]])
    return np.eye(3)


@dataclass
class _Lighting:
    """A raster's local paper brightness as a gain to PAPER_LEVEL, where its paper lies, that region's
    box (x0, y0, x1, y1) in raster px, and the gain per channel that makes the paper's colour grey."""

    gain: np.ndarray  # float32, per px
    paper: np.ndarray  # bool, per px
    box: tuple[int, int, int, int]
    balance: np.ndarray  # float32, per RGB channel

    def apply(self, image: np.ndarray) -> np.ndarray:
        """`image` (RGB, or one channel where the balance is 1; the raster's size) lit evenly, its paper
        grey, PAPER_LEVEL outside the paper."""
        px = image.astype(np.float32)
        lit = px * self.gain[..., None] * self.balance if image.ndim == 3 else px * self.gain
        even = np.clip(lit, 0, 255)
        even[~self.paper] = PAPER_LEVEL  # as bright as the paper: no ink, and the paper stays the paper level
        return even.astype(np.uint8)


def _lighting(raster: np.ndarray, valid: np.ndarray, ppm: float, balanced: bool = False) -> _Lighting | None:
    """The paper of `raster` (RGB): its local brightness, the largest bright region inside the image (the
    paper) and its box, and with `balanced` the gain that makes its colour grey (`_balance`; else 1);
    None when no region stands out."""
    grey = cv2.cvtColor(raster, cv2.COLOR_RGB2GRAY)
    k = max(3, int(FLAT_MM * ppm) | 1)
    # mean brightness per mm square (noise averaged out), its local maximum over FLAT_MM (the paper
    # between lines, traces and names), smoothed, at full size
    f = min(1.0, 1.0 / ppm)
    mean_mm = cv2.resize(grey, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    q = max(3, int(FLAT_MM * ppm * f) | 1)
    env = cv2.GaussianBlur(cv2.dilate(mean_mm, np.ones((q, q), np.uint8)).astype(np.float32), (0, 0), q / 2)
    bg = cv2.resize(env, (grey.shape[1], grey.shape[0]), interpolation=cv2.INTER_LINEAR)
    # the paper: brighter than what surrounds it (Otsu on the brightness inside the image), one region
    r = 0.25
    small = cv2.resize(bg, None, fx=r, fy=r, interpolation=cv2.INTER_AREA)
    near = cv2.INTER_NEAREST
    inside = cv2.resize(valid.astype(np.uint8), (small.shape[1], small.shape[0]), interpolation=near) > 0
    if inside.sum() < 100:
        return None
    levels = small[inside].astype(np.uint8).reshape(1, -1)
    t, _ = cv2.threshold(levels, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = ((small > t) & inside).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=4)
    if n < 2:
        return None
    j = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh = (int(v) for v in stats[j, :4])
    paper = cv2.resize((lab == j).astype(np.uint8), (grey.shape[1], grey.shape[0]), interpolation=near)
    paper = cv2.morphologyEx(paper, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8)) > 0
    gh, gw = grey.shape
    box = (int(x / r), int(y / r), min(gw, int((x + bw) / r) + 1), min(gh, int((y + bh) / r) + 1))
    balance = _balance(raster, grey, bg, paper) if balanced else np.ones(3, np.float32)
    return _Lighting(PAPER_LEVEL / np.maximum(bg, 1.0), paper, box, balance)


def _balance(raster: np.ndarray, grey: np.ndarray, bg: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """The gain per RGB channel that turns the paper's colour grey (its own brightness): the median colour
    of the paper's px as bright as its local paper level (the paper between lines and traces). A cream or
    yellowed sheet's blue sits ~25 under its grey; lit by the grey alone, its darkest channel - all the
    box reader looks at - stays that far under the PAPER_LEVEL the surroundings are set to, and the whole
    sheet reads as ink (0009 validation panels-12x1_007: one box counted either way; made grey, 7 and 12,
    but its stains' rings, the stains' holes in the paper and its bent rows still keep its boxes from
    reading). A sheet within INK_LEVEL of grey keeps its colours: it read before, and a screen's slight
    cast is no cause to read it otherwise (validation 0006 panels-12x1_005, blue 3 % over: made grey, two
    of its twelve rows were lost)."""
    clear = paper & (grey.astype(np.float32) >= bg - PAPER_TOL)
    if clear.sum() < 100:
        return np.ones(3, np.float32)
    colour = np.median(raster[clear].astype(np.float32), axis=0)
    level = float(colour @ np.array([0.299, 0.587, 0.114]))
    if (level - float(colour.min())) * PAPER_LEVEL / max(level, 1.0) <= INK_LEVEL:
        # a white or near-white sheet: lit by its grey, its darkest channel stays within the box reader's
        # ink level of the surroundings' - as it always was read
        return np.ones(3, np.float32)
    return np.asarray(level / np.maximum(colour, 1.0), np.float32)


def _darkness(lit: np.ndarray) -> np.ndarray:
    """A lit raster's darkness below the paper (float32): its darkest channel's."""
    return np.clip(PAPER_LEVEL - _darkest(lit).astype(np.float32), 0, 255)


def _darkest(rgb: np.ndarray) -> np.ndarray:
    """Each px's darkest channel: all the panel reader's box count looks at (`panels._read`)."""
    return np.asarray(cv2.min(cv2.min(rgb[..., 0], rgb[..., 1]), rgb[..., 2]))


def _raster(
    image: np.ndarray, hom: np.ndarray, lo: np.ndarray, hi: np.ndarray, ppm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raster of paper mm `lo`..`hi` at `ppm`, where it lies inside the image, raster px -> input px)."""
    h, w = image.shape[:2]
    size = (max(1, int(round((hi[0] - lo[0]) * ppm))), max(1, int(round((hi[1] - lo[1]) * ppm))))
    m = hom @ np.array([[1 / ppm, 0.0, lo[0]], [0.0, 1 / ppm, lo[1]], [0.0, 0.0, 1.0]])
    shift = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
    mi = shift @ m @ np.linalg.inv(shift)  # OpenCV's integer-centred px
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    raster = cv2.warpPerspective(image, mi, size, flags=flags, borderValue=(255, 255, 255))
    valid = cv2.warpPerspective(np.full((h, w), 255, np.uint8), mi, size, flags=flags, borderValue=0) > 128
    return raster, valid, m


def _windows(image: np.ndarray, page_map: PageMap) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The paper mm (lo, hi, centre) to look at: what the image shows, within MAX_EXTENT_MM around the fit's
    paper centre; and when that cut the image's extent, within it around the image's centre too. The
    fit's paper centre is where its lattice's origin puts the page, not always where the paper lies (a
    0009 photo of a 12x1 page: the window around it held the top nine boxes, the rest of the page lay
    beyond it); the image's centre is seen head-on wherever the homography's far side runs away."""
    hom = page_map.homography
    h, w = image.shape[:2]
    corners = np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])
    mm = apply_homography(np.linalg.inv(hom), corners)
    seen = apply_homography(np.linalg.inv(hom), np.array([[w / 2, h / 2]]))[0]
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for centre in (np.array(page_map.paper_mm) / 2.0, seen):
        lo = np.maximum(mm.min(axis=0), centre - MAX_EXTENT_MM / 2)
        hi = np.minimum(mm.max(axis=0), centre + MAX_EXTENT_MM / 2)
        if np.all(hi - lo >= 20.0) and not any(np.allclose(lo, a) and np.allclose(hi, b) for a, b, _ in out):
            out.append((lo, hi, centre))
        if np.all(lo <= mm.min(axis=0)) and np.all(hi >= mm.max(axis=0)):
            break  # the window holds all the image shows
    return out


def panels_rectified(image: np.ndarray, page_map: PageMap, balanced: bool = False) -> RectifiedPanels | None:
    """The panel page in `image` read on the raster `page_map`'s homography makes upright (see the
    module's doc), in the first window (`_windows`) where it reads; None when no turn of it reads as a
    page of boxes in any. The next window is looked at only when the one before held boxes it could
    not read (a page whose paper the window cut: its boxes lost to a grid shape). `balanced`: the
    paper's colour made grey first (`_balance`; None at once where it is grey already)."""
    for i, (lo, hi, centre) in enumerate(_windows(image, page_map)):
        got, boxes = _rectified_in(image, page_map, lo, hi, centre, balanced)
        if got is not None:
            got.diagnostics["rectified"]["window"] = i
            return got
        if not boxes:
            return None  # no boxes in the window around the fit's page: a page-wide grid, or no page
    return None


def _rectified_in(
    image: np.ndarray,
    page_map: PageMap,
    lo: np.ndarray,
    hi: np.ndarray,
    centre: np.ndarray,
    balanced: bool = False,
) -> tuple[RectifiedPanels | None, bool]:
    """`panels_rectified` in the window of paper mm `lo`..`hi` around `centre` (where the image's
    detail per mm is taken), and whether the window held boxes (two or more along either axis)."""
    hom = page_map.homography
    h, w = image.shape[:2]
    # the paper first, on a coarse raster of everything the image shows
    coarse_ppm = COARSE_LONG_SIDE / float((hi - lo).max())
    raster, valid, _ = _raster(image, hom, lo, hi, coarse_ppm)
    light = _lighting(raster, valid, coarse_ppm)
    if light is None:
        return None, False
    x0, y0, x1, y1 = light.box
    lo, hi = lo + np.array([x0, y0]) / coarse_ppm, lo + np.array([x1, y1]) / coarse_ppm
    # then the paper at as many px per mm as the image has there (within RASTER_LONG_SIDE)
    ends = apply_homography(hom, np.array([centre, centre + [1.0, 0.0]]))
    native = float(np.linalg.norm(ends[1] - ends[0])) * float((hi - lo).max())
    ppm = float(np.clip(native, *RASTER_LONG_SIDE)) / float((hi - lo).max())
    raster, valid, m = _raster(image, hom, lo, hi, ppm)
    light = _lighting(raster, valid, ppm, balanced)
    if light is None:
        return None, False
    if balanced and np.allclose(light.balance, 1.0):
        return None, False  # a grey sheet: the look without the balance was this one
    # a half turn keeps the boxes' rows: one look along each axis says whether any turn holds boxes
    # (a page with one ruled area, every page-wide grid, stops here). The count reads only each px's
    # darkest channel; without the balance, lighting commutes with taking it (one gain for all three
    # channels, clipping and rounding keep order): that one channel lit gives the count at a third the cost
    dark = _darkest(light.apply(raster)) if balanced else light.apply(_darkest(raster))
    boxes = {0: count_boxes(dark), 1: count_boxes(np.ascontiguousarray(np.rot90(dark, 1)))}
    if max(boxes.values()) < 2:
        return None, False
    crop = light.apply(raster)
    ch, cw = crop.shape[:2]
    for k in TURNS:
        if boxes[k % 2] < 2:
            continue
        turned = np.ascontiguousarray(np.rot90(crop, k))
        found = find_panels(turned, MAX_LEVEL_DEG, level=True)
        if found is None:
            continue
        found = _squared(found, _darkness(turned)) or found
        # panel mm -> turned px -> raster px -> input px
        chain = m @ _quarter(k, cw, ch) @ found.page_map.homography
        pm = PageMap(chain / chain[2, 2], (w, h), found.page_map.paper_mm)
        diag: dict[str, Any] = {
            "rectified": {"turn": k, "raster_px_per_mm": round(ppm, 3), "raster": [cw, ch]}
        }
        if balanced:
            diag["rectified"]["paper_balance"] = [round(float(v), 3) for v in light.balance]
        return RectifiedPanels(pm, found, diag), True
    return None, True


def _sample(dark: np.ndarray, hf: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """`dark` sampled at the panel mm grid `xs` x `ys` (rows: ys) through `hf` (panel mm -> px)."""
    gx, gy = np.meshgrid(xs, ys)
    px = apply_homography(hf, np.stack([gx.ravel(), gy.ravel()], axis=1)) - 0.5  # OpenCV's px centres
    mx, my = px[:, 0].reshape(gx.shape).astype(np.float32), px[:, 1].reshape(gx.shape).astype(np.float32)
    return np.asarray(
        cv2.remap(dark, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    )


def _local_period(profile: np.ndarray, step_mm: float, around_mm: float) -> float | None:
    """The period (mm) of the ruled lines in a darkness profile sampled every `step_mm`, within 15 % of
    `around_mm` (the comb whose phases add up best); None without a clear one (its power a small share of
    the profile's, or at the edge of the search)."""
    p = profile - profile.mean()
    if not np.any(p):
        return None
    x = np.arange(p.size) * step_mm
    cands = around_mm * np.linspace(0.85, 1.15, 601)
    power = np.abs(np.exp(2j * np.pi * x[None, :] / cands[:, None]) @ p) ** 2
    k = int(np.argmax(power))
    if k in (0, cands.size - 1) or power[k] < SQUARE_COHERENCE * p.size * float(np.sum(p * p)):
        return None
    return float(cands[k])


def _grid_rows(found: PanelPage) -> list[list[Cell]]:
    """The rows of the grid of boxes (those with the most boxes), top to bottom, each left to right."""
    rows: dict[int, list[Cell]] = {}
    for c in found.layout.cells:
        rows.setdefault(c.row, []).append(c)
    n_cols = max(len(r) for r in rows.values())
    grid = [sorted(r, key=lambda c: c.col) for r in rows.values() if len(r) == n_cols]
    return sorted(grid, key=lambda r: r[0].box_top_mm)


def _robust_line(x: np.ndarray, y: np.ndarray, tol: float) -> np.ndarray | None:
    """A straight line through (x, y), refitted without the points more than `tol` off the first fit;
    None when fewer than SQUARE_MIN_ROWS points stay."""
    if x.size < SQUARE_MIN_ROWS:
        return None
    f = np.polyfit(x, y, 1)
    keep = np.abs(np.polyval(f, x) - y) <= tol
    if keep.sum() < SQUARE_MIN_ROWS:
        return None
    return np.asarray(np.polyfit(x[keep], y[keep], 1))


def _receding(found: PanelPage, dark: np.ndarray) -> np.ndarray | None:
    """The homography (panel mm -> mm) that undoes the page receding along its rows: the ruled lines'
    spacing, measured near both ends of every box, grows steadily from one side of the grid to the other
    (a perspective the rectifying homography did not hold); a box's middle then sits millimetres off its
    ends, and its rows tilt the more the farther from the middle they are. None when the spacing is even
    within SQUARE_MIN_MM at the grid's middle, or does not change steadily."""
    step = float(found.diagnostics.get("grid_step_mm", 5.0))
    hf = found.page_map.homography
    at, rel = [], []
    for row in _grid_rows(found):
        for c in row:
            strip = min(SQUARE_CHIRP_MM, (c.x1_mm - c.x0_mm) / 3)
            ys = np.arange(c.box_top_mm + 1.0, c.box_bottom_mm - 1.0, SQUARE_STEP_MM * 5)
            for a in (c.x0_mm + 1.0, c.x1_mm - 1.0 - strip):
                xs = np.arange(a, a + strip, SQUARE_STEP_MM)
                if ys.size < 3 or xs.size < 10:
                    continue
                period = _local_period(_sample(dark, hf, xs, ys).mean(axis=0), SQUARE_STEP_MM, step)
                if period is not None:
                    at.append(a + strip / 2)
                    rel.append(period / step)
    if len(at) < 2 * SQUARE_MIN_ROWS:
        return None
    x, r = np.array(at), np.array(rel)
    fit = _robust_line(x, r, SQUARE_PERIOD_TOL)
    if fit is None:
        return None
    xc = float((x.min() + x.max()) / 2)
    d0 = float(np.polyval(fit, xc))
    g = -float(fit[0]) / (2.0 * d0)  # measured spacing ~ (1 - 2 g (x - xc)): x measured = u / (1 + g u)
    half = float(x.max() - x.min()) / 2
    if abs(g) * half * half / 2 < SQUARE_MIN_MM:
        return None
    yc = float(np.mean([c.baseline_mm for c in found.layout.cells]))
    centre = np.array([[1.0, 0.0, -xc], [0.0, 1.0, -yc], [0.0, 0.0, 1.0]])
    undo = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-g, 0.0, 1.0]])  # u = x / (1 - g x)
    return np.asarray(np.linalg.inv(centre) @ undo @ centre)


def _phase(profile: np.ndarray, step_mm: float, period_mm: float) -> float | None:
    """The phase (radians) of the ruled lines of `period_mm` in a darkness profile sampled every `step_mm`;
    None without a clear one (SQUARE_COHERENCE)."""
    p = profile - profile.mean()
    z = np.sum(p * np.exp(-2j * np.pi * np.arange(p.size) * step_mm / period_mm))
    if abs(z) ** 2 < SQUARE_COHERENCE * p.size * float(np.sum(p * p)):
        return None
    return float(np.angle(z))


def _levelling(found: PanelPage, dark: np.ndarray) -> np.ndarray | None:
    """The turn (a homography, panel mm -> mm, about the boxes' middle) that levels the boxes' horizontal
    ruled lines: their phase near each box's left and right end says how far they climb across it (the
    median over the boxes); None when they are level within SQUARE_MIN_MM across the grid."""
    step = float(found.diagnostics.get("grid_step_mm", 5.0))
    hf = found.page_map.homography
    slopes = []
    for c in found.layout.cells:
        strip = min(SQUARE_CHIRP_MM, (c.x1_mm - c.x0_mm) / 3)
        ys = np.arange(c.box_top_mm + 0.5, c.box_bottom_mm - 0.5, SQUARE_STEP_MM)
        ends = [(c.x0_mm + 1.0, c.x0_mm + 1.0 + strip), (c.x1_mm - 1.0 - strip, c.x1_mm - 1.0)]
        phases = [
            _phase(
                _sample(dark, hf, np.arange(a, b, SQUARE_STEP_MM * 5), ys).mean(axis=1), SQUARE_STEP_MM, step
            )
            for a, b in ends
        ]
        if phases[0] is None or phases[1] is None or ys.size < 10:
            continue
        turn = float(np.angle(np.exp(1j * (phases[1] - phases[0]))))  # within half a spacing (-: y down)
        slopes.append(-turn / (2 * np.pi) * step / (float(np.mean(ends[1]) - np.mean(ends[0]))))
    if len(slopes) < SQUARE_MIN_ROWS:
        return None
    slope = float(np.median(slopes))
    xs = [v for c in found.layout.cells for v in (c.x0_mm, c.x1_mm)]
    ys_ = [v for c in found.layout.cells for v in (c.box_top_mm, c.box_bottom_mm)]
    if abs(slope) * (max(xs) - min(xs)) < SQUARE_MIN_MM:
        return None
    xc, yc = (max(xs) + min(xs)) / 2, (max(ys_) + min(ys_)) / 2
    a = -float(np.arctan(slope))
    ca, sa = np.cos(a), np.sin(a)
    centre = np.array([[1.0, 0.0, -xc], [0.0, 1.0, -yc], [0.0, 0.0, 1.0]])
    return np.asarray(
        np.linalg.inv(centre) @ np.array([[ca, -sa, 0.0], [sa, ca, 0.0], [0.0, 0.0, 1.0]]) @ centre
    )


def _keystone(found: PanelPage) -> tuple[np.ndarray, float] | None:
    """(the homography, panel mm -> mm, that makes the grid of boxes a rectangle again; how far it moves
    its corners, mm), or None when it is one or its sides say nothing sure. A grid's columns stand under
    each other and are as wide in every row, so the first column's left sides and the last column's right
    sides lie on two parallel upright lines; on a raster made upright by a homography measured over part
    of the page (its perspective extrapolated over the rest) they converge, and every box's seconds, read
    off its width, drift with its row (a 0006 screen photo's 12x1 boxes 2 % narrower at the top than at
    the bottom)."""
    grid = _grid_rows(found)
    if len(grid) < SQUARE_MIN_ROWS:
        return None
    y = np.array([(r[0].box_top_mm + r[0].box_bottom_mm) / 2 for r in grid])
    fits = [
        _robust_line(y, np.array([r[0].x0_mm for r in grid]), SQUARE_MAX_RESIDUAL_MM),
        _robust_line(y, np.array([r[-1].x1_mm for r in grid]), SQUARE_MAX_RESIDUAL_MM),
    ]
    if fits[0] is None or fits[1] is None:
        return None
    top, bottom = grid[0][0].box_top_mm, grid[-1][0].box_bottom_mm
    left, right = np.polyval(fits[0], [top, bottom]), np.polyval(fits[1], [top, bottom])
    x0, width = float(left.mean()), float((right - left).mean())
    src = np.array([[left[0], top], [right[0], top], [right[1], bottom], [left[1], bottom]], np.float32)
    dst = np.array([[x0, top], [x0 + width, top], [x0 + width, bottom], [x0, bottom]], np.float32)
    move = float(np.linalg.norm(src - dst, axis=1).max())
    if move < SQUARE_MIN_MM:
        return None
    return np.asarray(cv2.getPerspectiveTransform(src, dst), np.float64), move


def _row_seconds(cells: list[Cell]) -> list[float]:
    """The seconds each row of `cells` shows."""
    rows: dict[int, float] = {}
    for c in cells:
        rows[c.row] = rows.get(c.row, 0.0) + c.t1_s - c.t0_s
    return list(rows.values())


def _spread(seconds: list[float]) -> float:
    """How far the rows' seconds disagree, as a share of the longest (the panel reader's measure)."""
    return (max(seconds) - min(seconds)) / max(max(seconds), 1e-9)


def _squared(found: PanelPage, dark: np.ndarray) -> PanelPage | None:
    """`found` with its grid of boxes made a rectangle: the page's recession along the rows undone
    (`_receding`, measured on `dark`, the raster's darkness in the px `found.page_map` maps to: the ruled
    lines' own spacing says it), then the columns' converging sides (`_keystone`, taken when the squared
    rows' seconds agree better: where a box's end was misread, its sides say nothing sure); None when
    neither applies, or when the squared rows' seconds agree worse than the boxes' as read."""
    out, moves = found, {}
    recede = _receding(found, dark)
    if recede is not None:
        out, moves["receding"] = _moved(out, recede), _corner_move(out, recede)
    level = _levelling(out, dark)
    if level is not None:
        out, moves["levelling"] = _moved(out, level), _corner_move(out, level)
    key = _keystone(out)
    if key is not None:
        keyed = _moved(out, key[0])
        if _spread(_row_seconds(keyed.layout.cells)) < _spread(_row_seconds(out.layout.cells)):
            out, moves["keystone"] = keyed, key[1]
    if not moves:
        return None
    before, after = _spread(_row_seconds(found.layout.cells)), _spread(_row_seconds(out.layout.cells))
    if after > before:
        return None  # the rows agree worse squared: what squared them was misread (a cut box, a faint grid)
    sq = {
        "moved_mm": {k: round(v, 2) for k, v in moves.items()},
        "spread": [round(before, 4), round(after, 4)],
    }
    out.diagnostics = {**found.diagnostics, "squared": sq}
    return out


def _corner_move(found: PanelPage, hom: np.ndarray) -> float:
    """How far (mm) `hom` moves the cells' ends and middles on their baselines, at most."""
    pts = np.array(
        [[x, c.baseline_mm] for c in found.layout.cells for x in (c.x0_mm, (c.x0_mm + c.x1_mm) / 2, c.x1_mm)]
    )
    return float(np.linalg.norm(apply_homography(hom, pts) - pts, axis=1).max())


def _moved(found: PanelPage, square: np.ndarray) -> PanelPage:
    """`found` read in the mm `square` (panel mm -> mm) takes its mm to: the map, and each box's sides,
    baseline and seconds (its width at the page's speed)."""
    lay = found.layout
    cells = []
    starts: dict[int, float] = {}
    for c in sorted(lay.cells, key=lambda c: (c.row, c.col)):
        mid_y, mid_x = (c.box_top_mm + c.box_bottom_mm) / 2, (c.x0_mm + c.x1_mm) / 2
        pts = apply_homography(
            square,
            np.array([[c.x0_mm, mid_y], [c.x1_mm, mid_y], [mid_x, c.box_top_mm], [mid_x, c.box_bottom_mm]]),
        )
        base = float(apply_homography(square, np.array([[mid_x, c.baseline_mm]]))[0, 1])
        t0 = starts.get(c.row, c.t0_s)
        t1 = t0 + float(pts[1, 0] - pts[0, 0]) / lay.speed_mm_s
        starts[c.row] = t1
        cells.append(
            replace(
                c,
                x0_mm=float(pts[0, 0]),
                x1_mm=float(pts[1, 0]),
                baseline_mm=base,
                box_top_mm=float(pts[2, 1]),
                box_bottom_mm=float(pts[3, 1]),
                t0_s=t0,
                t1_s=t1,
            )
        )
    # a row's boxes rest on one baseline (the panel reader's median over them): level in the squared mm,
    # where each box's own, moved, sits off it by the tilt the row had
    rows: dict[int, list[float]] = {}
    for c in cells:
        rows.setdefault(c.row, []).append(c.baseline_mm)
    cells = [replace(c, baseline_mm=float(np.median(rows[c.row]))) for c in cells]
    hom = found.page_map.homography @ np.linalg.inv(square)
    pm = PageMap(hom / hom[2, 2], found.page_map.image_size, found.page_map.paper_mm)
    return replace(found, page_map=pm, layout=replace(lay, cells=cells))
