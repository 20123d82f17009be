"""Pages made of separate gridded panels: one lead per panel, blank gaps between them.

Many software exports and several cart vendors draw each lead in its own box: the grid is ruled only
inside the boxes, each box's lattice starts at its own left edge (the boxes' lattices are not one
global lattice, so a page-wide grid fit bends the page to reconcile them), the columns are separated by
gaps rather than by separator ticks, rows are as tall as the largest complex, and the rhythm strip's
box need not be as wide as the grid's columns together. What such a page shows is read directly:

- the boxes, from long ruled lines (a morphological opening keeps grid lines, drops text and traces):
  rows of boxes from where vertical lines are, boxes within a row from where horizontal lines are;
- the scale, from the spacing of the ruled lines inside the boxes (a least-squares lattice per box,
  one spacing for all); whether that spacing is 1 mm or 5 mm, from the page size it implies;
- time, from each box's left edge (its window start) and its width at the page's speed;
- each row's baseline, from where the trace ink rests in its boxes.

Only upright, axis-aligned pages (renders, exports, flatbed scans) are read this way; anything else is
left to the page-wide grid fit (`estimate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from ecgml.geometry.gaps import true_runs
from ecgml.geometry.orient import ORIENT_PPM, Rows
from ecgml.geometry.pulses import WIDTHS_MM, PulseReading, read_pulses
from ecgml.layout import Cell, PageLayout, with_gain, with_speed
from ecgml.page import PageMap

INK_LEVEL = 12  # darker than the paper by this much (of 255): ruled line or ink
TRACE_LEVEL = 90  # trace ink: darker than the paper by this much in every channel (a red grid is not)
FAINT_LEVEL = 30  # ... a light trace (a small copy's): this much, where the darker ink crosses too few
MIN_TRACE_COLUMNS = 0.3  # ... of a box's columns (a trace crosses them all, a printed name a few)
LINE_FRAC = 1 / 45  # opening length, share of the image's short side (~4.8 mm on a Letter page)
MIN_BOX_MM = 10.0  # a box is at least this wide and tall
MIN_GAP_MM = 1.0  # boxes are apart by at least this much
EDGE_SNAP_MM = 0.4  # a box side within this of a vertical ruled line is that line
KEEP_SKEW_MM = 1.0  # a page whose levelled copy does not read keeps its first reading when levelling moves
# the boxes' far side by at most this much (a small page's ruled lines, interpolated, blur away)
# a levelled reading less sure than the first by one of the reader's doubts (each a factor <= CUT_FACTOR)
# came from a blurred copy: it does not replace a reading levelled by a hair
LEVEL_DOUBT = 0.9
MAX_SKEW_DEG = 3.0  # a page of boxes that does not read is tried again turned upright by up to this much
MAX_ASPECT = 1.25  # the ruled spacings across and along a scan differ by less than this factor
MAX_ASPECT_LEVELLED = 2.0  # ... on a photo's page made upright by a page-wide fit (its aspect is that fit's)
SPECTRAL_PEAK = 20.0  # the lines' peak in the boxes' summed power spectrum: this far above its median
FUNDAMENTAL_SHARE = 0.2  # ... and the lattice's fundamental: at least this share of that peak
PAGE_MM = (150.0, 450.0)  # plausible page widths: decides whether the ruled spacing is 1 or 5 mm
ROW_MM = (100.0, 450.0)  # ... else plausible widths of the widest row of boxes
SPEED_MM_S = 25.0
EDGE_CUT_MM = 1.0  # a box side this close to the image's edge is the edge's, not the box's (a crop)
NEAR_EDGE_MM = 4.0  # ... and within this of it (a scan turned a degree or two) when the box is narrower
CUT_TOL_MM = 0.5  # ... than the whole boxes by more than this
CUT_FACTOR = 0.8  # confidence kept by a page whose cut boxes were completed from its whole ones
# a strip under the grid with one end where the grid's seconds start or end (within this) and the other
# short of the grid's: that end was lost (a curled corner, a fold, a stain), completed from the grid's
STRIP_ALIGN_MM = 1.5
# ... only when it shows less than the grid by more than this share: the rows' spread would then cost the
# page more than the completion's CUT_FACTOR (`panel_layout`: 1 - 4 * spread); a hair short, it stands
STRIP_LOST_SHARE = (1.0 - CUT_FACTOR) / 4.0
GAIN_MM_MV = 10.0
MAX_DURATION_S = 10.0
# a box may show this much more than the record: a plotting library pads its axes past the data (wfdb's
# plot_items, Matplotlib's 5 % margins: a 10 s lead's box runs from its grid's 0 s to 10.5 s, read 10.55 s;
# at 0.2 s such pages were held at 0.4 and left to the page-wide fit, which turned them 90-270 degrees).
# Far below a misread scale's excess (a harmonic doubles the seconds; 12.5 mm/s read at 25 halves them).
PADDED_S = 0.6
SCALES_TOL = 1.1  # boxes whose ruled spacings differ by more than this factor are drawn at their own scales
# a column of six single boxes is a half page only where each box shows a record's 10 s (less this): six
# boxes showing less are the rows of another page read in part (validation cabrera-12x1_007's twelve rows,
# read as six boxes of 8.2-8.8 s, went from 11 leads right to 0 as a 6x1 half page)
HALF_PAGE_SHORT_S = 0.5
# a spacing that `_square` found around the other axis's, at a whole fraction (1/2, 1/3 ...) of the
# lines' own spacing (within this share): a comb through every other line fits as well as the lattice's
HARMONIC_TOL = 0.08
MIN_SHOWN_S = 7.5  # rows of boxes showing less than this: their scale or speed is in doubt
# a slow page: 0.2 s pulses at 12.5 mm/s are 2.5 mm wide (looked for beside boxes besides the standard widths)
SLOW_SPEED_MM_S, SLOW_PULSE_S, SLOW_PULSE_TOL_MM = 12.5, 0.2, 1.0
PULSE_WIDTHS_MM = (SLOW_PULSE_S * SLOW_SPEED_MM_S, *WIDTHS_MM)
# a pulse left of its row's first box starts its width and a gap left of the box: the search for its left
# stroke (ROW_END_MM either side) is centred this far left of the box, so that a 2.5 mm and a 20 mm pulse
# (0.4 s at 50 mm/s, its left stroke 22 mm from the box) both fall in it
PULSE_LEFT_MM = 0.5 * max(PULSE_WIDTHS_MM)
BOX_MARGIN_MM = 0.5  # a box's ruled edge reaches this far past the box read (antialiasing, line width)
SLIVER_SHARE = 0.2  # on a levelled raster: a box at a row's end less wide than this share of the widest
MERGED_FACTOR = 0.8  # confidence kept by a page some of whose boxes were split at the other rows' gaps
# the standard lead order of each grid shape (rows of the grid, top to bottom)
SHAPES: dict[tuple[int, int], list[list[str]]] = {
    (3, 4): [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]],
    (6, 2): [["I", "V1"], ["II", "V2"], ["III", "V3"], ["aVR", "V4"], ["aVL", "V5"], ["aVF", "V6"]],
    (12, 1): [[lead] for lead in ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")],
    # a column of six boxes: a half page (wfdb's plot_items of six leads draws one box a lead); read as
    # the limb half, the family solver lets the chest half compete on the same boxes
    (6, 1): [[lead] for lead in ("I", "II", "III", "aVR", "aVL", "aVF")],
}
SHAPE_NAMES = {(6, 1): "6x1-limb"}  # the catalogue's family name where a shape is a partial page
STRIP_LEADS = ("II", "V1", "V5")  # strips below a grid, top to bottom, as carts print them


Box = tuple[float, float, float, float]


@dataclass
class PanelPage:
    """Boxes (x0, y0, x1, y1 in image px, continuous coordinates) in rows, the scale, the layout."""

    rows: list[list[tuple[float, float, float, float]]]
    px_per_mm: tuple[float, float]
    page_map: PageMap
    layout: PageLayout
    confidence: float
    diagnostics: dict[str, Any] = field(default_factory=dict)


def _line_centres(profile: np.ndarray) -> np.ndarray:
    """Sub-pixel centres (continuous px) of the ruled lines along a profile of line coverage."""
    if profile.max() <= 0:
        return np.zeros(0)
    on = profile > 0.5 * profile.max()
    out = []
    for a, b in true_runs(on):
        w = profile[a:b]
        out.append(float(np.sum((np.arange(a, b) + 0.5) * w) / max(float(w.sum()), 1e-9)))
    return np.array(out)


def _ends(dark: np.ndarray, hor: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> tuple[float, float]:
    """Sub-pixel left and right ends of a box's horizontal ruled lines: where their darkness falls to
    half its level inside (antialiased line ends and caps otherwise widen the box by a pixel or two)."""
    w = dark.shape[1]
    a, b = max(0, x0 - 3), min(w, x1 + 3)
    line_rows = np.flatnonzero(hor[y0:y1, x0:x1].mean(axis=1) > 0.5) + y0
    if line_rows.size == 0:
        return float(x0), float(x1)
    prof = dark[line_rows, a:b].mean(axis=0)
    level = float(np.median(prof[x0 - a : x1 - a]))
    if level <= 0:
        return float(x0), float(x1)
    half = prof >= 0.5 * level
    i, j = int(np.argmax(half)), int(half.size - 1 - np.argmax(half[::-1]))

    def cross(k_out: int, k_in: int) -> float:  # continuous position of the half-level crossing
        p_out, p_in = prof[k_out] if 0 <= k_out < prof.size else 0.0, prof[k_in]
        f = (p_in - 0.5 * level) / max(p_in - p_out, 1e-9)
        return float(np.clip(f, 0.0, 1.0))

    left = a + i + 0.5 - cross(i - 1, i)
    right = a + j + 0.5 + cross(j + 1, j)
    return left, right


def _grouped(rows: list[list[Box]], groups: list[np.ndarray]) -> list[tuple[list[Box], list[np.ndarray]]]:
    """The per-box `groups` (in box order) handed out row by row."""
    out, k = [], 0
    for r in rows:
        out.append((r, groups[k : k + len(r)]))
        k += len(r)
    return out


def _snap_x(box: Box, lines: np.ndarray, tol_px: float) -> Box:
    """The box with each side on the vertical ruled line it carries (within `tol_px`): a line's centre is
    sharper than where antialiased, capped horizontal lines end."""
    x0, y0, x1, y1 = box
    if lines.size:
        i, j = int(np.argmin(np.abs(lines - x0))), int(np.argmin(np.abs(lines - x1)))
        x0 = float(lines[i]) if abs(lines[i] - x0) <= tol_px else x0
        x1 = float(lines[j]) if abs(lines[j] - x1) <= tol_px else x1
    return (x0, y0, x1, y1)


def _spacing(groups: list[np.ndarray], around: float | None = None) -> float | None:
    """One lattice spacing for all groups of line centres (each group its own phase): the period whose
    comb best fits every group's lines at once (a periodogram of the line positions, so a text stroke
    or a QRS taken for a line only adds noise), searched around the median step between lines, or
    around `around` (the other axis's spacing: the grid is square)."""
    groups = [g for g in groups if g.size >= 3]
    diffs = np.concatenate([np.diff(g) for g in groups]) if groups else np.zeros(0)
    if diffs.size < 4:
        return None
    d0 = float(np.median(diffs)) if around is None else around
    if d0 <= 1.5:
        return None
    cands = d0 * np.linspace(0.85, 1.15, 1201)
    power = np.zeros(cands.size)
    for g in groups:
        ph = np.exp(2j * np.pi * (g - g[0])[None, :] / cands[:, None])
        power += np.abs(ph.sum(axis=1)) ** 2
    k = int(np.argmax(power))
    if power[k] < 0.25 * sum(g.size**2 for g in groups):
        return None  # the lines keep no common period
    return float(cands[k])


def _scales_differ(groups: list[np.ndarray], tol: float = SCALES_TOL) -> bool:
    """Whether the boxes' ruled lines keep spacings apart by more than `tol` (a factor): boxes drawn at
    their own scales, which one spacing for the page misreads."""
    each = [d for g in groups if (d := _spacing([g])) is not None]
    return len(each) >= 2 and max(each) / min(each) > tol


def _harmonic(own: tuple[float | None, float | None], taken: tuple[float, float]) -> bool:
    """Whether a spacing taken (`taken`, px across and along) is a whole fraction, 1/2 or less, of the
    spacing that axis's lines keep on their own (`own`): a comb through every k-th tooth fits the lines
    as well as their own period, so nothing in them says the finer one is the grid's."""
    for o, t in zip(own, taken, strict=True):
        if o is None or t <= 0:
            continue
        k = round(o / t)
        if k >= 2 and abs(o / t - k) <= HARMONIC_TOL * k:
            return True
    return False


def _square(
    vgroups: list[np.ndarray], hgroups: list[np.ndarray], dx: float, dy: float, aspect: float
) -> tuple[float | None, float | None]:
    """Spacings across and along that disagree, each searched again around the other's (the grid is
    square), the axis with more ruled lines first: a box's frame need not lie on its lattice (a box
    12.5 mm tall ruled every 5 mm), and in a short box's few lines the median step is that remainder."""
    n_v, n_h = sum(g.size for g in vgroups), sum(g.size for g in hgroups)
    tries = [(dx, _spacing(hgroups, around=dx)), (_spacing(vgroups, around=dy), dy)]
    for a, b in tries if n_v >= n_h else tries[::-1]:
        if a is not None and b is not None and 1 / aspect < a / b < aspect:
            return a, b
    return dx, dy


def _split(pv: np.ndarray, bands: list[tuple[int, int]], min_px: int) -> list[tuple[int, int]]:
    """Bands of vertical ruled lines cut where their coverage drops below half the band's median: two
    rows of boxes whose gap the tall complexes of a trace cross (their strokes are vertical lines too)
    are one band, but the lines of a box run its whole height, so a box's own coverage does not drop."""
    out = []
    for a, b in bands:
        low = pv[a:b] < 0.5 * float(np.median(pv[a:b]))
        cuts = [(a + i, a + j) for i, j in true_runs(low) if i > 0 and j < b - a]
        start = a
        for i, j in cuts:
            if i - start >= min_px and b - j >= min_px:
                out.append((start, i))
                start = j
        out.append((start, b))
    return out


def _one_axis(spacings: tuple[float | None, float | None], levelled: bool) -> float | None:
    """The spacing of the one axis whose boxes' darkness kept a period, for both axes: boxes too short
    to show three ruled lines across (a small copy's 12x1 boxes, 13 mm tall and ruled every 5 mm) give
    none along them, and the grid is square. Not on a levelled photo's raster, whose aspect is the
    page-wide fit's and need not be square; None when both or neither axis kept one."""
    dx, dy = spacings
    if levelled or (dx is None) == (dy is None):
        return None
    return dx if dx is not None else dy


def _spectral_spacing(dark: np.ndarray, rows: list[list[Box]], axis: int) -> float | None:
    """The ruled lines' spacing (px) across `axis` (0: vertical lines, along x; 1: horizontal ones)
    from the power spectrum of each box's mean darkness profile, summed over boxes (each box keeps its
    own phase); None without a clear peak. Whether it is the 1 or the 5 mm lines, the page size says."""
    profiles = []
    for r in rows:
        for x0, y0, x1, y1 in r:
            sub = dark[int(y0) : int(y1), int(x0) : int(x1)]
            if min(sub.shape) >= 16:
                profiles.append(sub.mean(axis=axis).astype(np.float64))
    if not profiles:
        return None
    n = 1 << int(np.ceil(np.log2(4 * max(p.size for p in profiles))))
    power = np.zeros(n // 2 + 1)
    for p in profiles:
        p = p - gaussian_filter1d(p, max(3.0, p.size / 20))
        power += np.abs(np.fft.rfft(p * np.hanning(p.size), n)) ** 2
    f = np.arange(power.size) / n  # cycles per px
    band = (f >= 1 / (min(p.size for p in profiles) / 3)) & (f <= 1 / 3.0)
    if band.sum() < 5:
        return None
    k = int(np.flatnonzero(band)[np.argmax(power[band])])
    if power[k] < SPECTRAL_PEAK * float(np.median(power[band])) or not 0 < k < power.size - 1:
        return None
    # thin lines put about as much power in every harmonic: the fundamental is the lowest of them that
    # carries a share of the peak's power (the 5 mm lattice, not its 2.5 mm harmonic)
    for d in (5, 4, 3, 2):
        j = int(round(k / d))
        if j < 2:
            continue
        j = j - 2 + int(np.argmax(power[j - 2 : j + 3]))
        if power[j] >= FUNDAMENTAL_SHARE * power[k] and abs(j * d - k) <= d + 1 and band[j]:
            k = j
            break
    a, b, c = np.log(power[k - 1 : k + 2] + 1e-12)
    shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c < 0 else 0.0
    return float(n / (k + shift))


def find_panels(image: np.ndarray, max_deg: float = MAX_SKEW_DEG, level: bool = False) -> PanelPage | None:
    """The page's panels and the layout they imply; None when the page is not made of separate boxes.

    A page of boxes whose ruled lines are not level (a scan turned by a degree or two: a box's far end
    then sits a millimetre off) is read again levelled by its ruled lines: turned so the horizontal ones
    lie level, sheared so the vertical ones stand upright (a photo's rectified page keeps a shear the
    page-wide fit left), each within `max_deg`. `level` (a page made upright by the page-wide fit): level
    it even when the first reading found no boxes (lines turned by several degrees are cut into pieces
    the opening drops), and take the spacings across and along within MAX_ASPECT_LEVELLED."""
    found, n_boxes, ink = _read(image, level)
    if n_boxes < 2 and not level:
        return found
    m = _deskew(ink, max_deg, shear=level)
    if m is None:
        return found
    h, w = ink.shape
    upright = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255))
    turned, _, _ = _read(upright, level)
    if turned is None:
        if found is not None and _skew_mm(found, m) <= KEEP_SKEW_MM:
            # levelled by a hair (a fraction of a mm across the boxes), a small page's interpolated copy
            # blurs its ruled lines: the reading as it lies stands
            found.diagnostics["skew_kept_mm"] = round(_skew_mm(found, m), 3)
            return found
        return None  # its boxes were read off the skewed lines: not to be trusted either
    if (
        found is not None
        and not level
        and turned.confidence < LEVEL_DOUBT * found.confidence
        and _skew_mm(found, m) <= KEEP_SKEW_MM
    ):
        # ... nor does a reading that blur makes less sure (validation panels-12x1_009, 460 px wide,
        # turned 0.1 degree: its boxes' darkness read 12.2 px apart, not the 15.6 as it lies)
        found.diagnostics["skew_kept_mm"] = round(_skew_mm(found, m), 3)
        found.diagnostics["levelled_less_sure"] = round(turned.confidence, 3)
        return found
    found = turned
    # continuous px (centres at i + 0.5) of the upright copy -> the input's
    to_cont = np.array([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1.0]])
    m3 = to_cont @ np.vstack([m, [0, 0, 1.0]]) @ np.linalg.inv(to_cont)
    hom = np.linalg.inv(m3) @ found.page_map.homography
    found.page_map = PageMap(hom, (w, h), found.page_map.paper_mm)
    found.diagnostics["skew_deg"] = round(float(np.degrees(np.arctan2(m[1, 0], m[1, 1]))), 3)
    shear = float(m[0, 0] * m[1, 0] + m[0, 1] * m[1, 1])  # tan of the shear after the turn
    if abs(shear) > 1e-6:
        found.diagnostics["shear_deg"] = round(float(np.degrees(np.arctan(shear))), 3)
    return found


def _skew_mm(found: PanelPage, m: np.ndarray) -> float:
    """How far (mm) the levelling `m` moves the far side of the boxes' extent against its near side."""
    xs = [v for r in found.rows for b in r for v in (b[0], b[2])]
    ys = [v for r in found.rows for b in r for v in (b[1], b[3])]
    w, h = max(xs) - min(xs), max(ys) - min(ys)
    return float(max(abs(m[1, 0]) * w / found.px_per_mm[1], abs(m[0, 1]) * h / found.px_per_mm[0]))


def count_boxes(image: np.ndarray) -> int:
    """How many boxes the long ruled lines of `image` form (1: one ruled area, a page-wide grid); the
    count `find_panels(image, level=True)` starts from, without reading the boxes."""
    return _read(image, True, count_only=True)[1]


def _sharpest(px: np.ndarray, py: np.ndarray, n: int, max_deg: float) -> float:
    """The angle (degrees, within max_deg) whose shear `py + tan(angle) * px` stacks the points into the
    sharpest profile over `n` bins (coarse, then fine)."""

    def sharp(deg: float) -> float:
        v = np.round(py + np.tan(np.radians(deg)) * px).astype(np.int64)
        v = v[(v >= 0) & (v < n)]
        hist = np.bincount(v, minlength=n).astype(np.float64)
        return float(np.sum(hist * hist))

    step = 0.25
    coarse = np.arange(-max_deg, max_deg + 1e-9, step)
    best = float(coarse[int(np.argmax([sharp(a) for a in coarse]))])
    fine = best + np.arange(-step, step + 1e-9, 0.025)
    return float(fine[int(np.argmax([sharp(a) for a in fine]))])


def _deskew(ink: np.ndarray, max_deg: float = MAX_SKEW_DEG, shear: bool = False) -> np.ndarray | None:
    """The affine map (OpenCV 2x3, input -> level) that turns the ruled lines horizontal and, with
    `shear`, then shears the vertical ones upright, each within `max_deg`; None when level and upright
    to a pixel or so. (A scan has no shear: searching one there only adds noise to a level page.)"""
    ys, xs = np.nonzero(ink)
    if xs.size < 1000:
        return None
    pick = np.random.default_rng(0).choice(xs.size, min(xs.size, 200_000), replace=False)  # fixed seed
    h, w = ink.shape
    cx, cy = w / 2.0, h / 2.0
    px, py = xs[pick].astype(np.float64) - cx, ys[pick].astype(np.float64) - cy
    # rows: y' = y cos a - x sin a ~ y - tan(a) x for small a (the sign as cv2.getRotationMatrix2D's)
    a = _sharpest(-px, py + cy, h, max_deg)
    ca, sa = np.cos(np.radians(a)), np.sin(np.radians(a))
    xr, yr = ca * px + sa * py, -sa * px + ca * py  # turned by a (image y down)
    # columns of the turned points: x'' = x' + tan(b) y'
    b = _sharpest(yr, xr + cx, w, max_deg) if shear else 0.0
    if (abs(np.radians(a)) + abs(np.radians(b))) * max(h, w) < 1.5:
        return None  # level and upright within a pixel or so across the page
    rot = np.array([[ca, sa], [-sa, ca]])
    upright = np.array([[1.0, np.tan(np.radians(b))], [0.0, 1.0]])
    lin = upright @ rot
    c = np.array([cx, cy])
    return np.hstack([lin, (c - lin @ c)[:, None]])


def _read(
    image: np.ndarray, levelled: bool = False, count_only: bool = False
) -> tuple[PanelPage | None, int, np.ndarray]:
    """(the panel page or None, how many boxes the ruled lines form, the ink mask). `levelled`: a page
    made upright by the page-wide fit, whose aspect is that fit's (MAX_ASPECT_LEVELLED) and whose raster
    holds bits of ruled lines beyond the paper's boxes (smaller than a box: dropped). `count_only`: stop
    at the count (no page: None)."""
    aspect = MAX_ASPECT_LEVELLED if levelled else MAX_ASPECT
    lo = cv2.min(cv2.min(image[..., 0], image[..., 1]), image[..., 2]) if image.ndim == 3 else image
    h, w = lo.shape
    paper = float(np.percentile(lo[::4, ::4], 90))
    dark = np.clip(paper - lo.astype(np.float32), 0, 255)
    ink = (dark > INK_LEVEL).astype(np.uint8)
    n = max(9, int(min(h, w) * LINE_FRAC))
    hor = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, n), np.uint8))
    ver = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((n, 1), np.uint8))
    # rows of boxes: where vertical ruled lines are (a text line or a pulse has none this long)
    pv = gaussian_filter1d(ver.mean(axis=1).astype(np.float64), 1.0)
    if pv.max() <= 0:
        return None, 0, ink
    min_px = max(2 * n, 1)
    bands = _split(pv, true_runs(pv > 0.25 * np.percentile(pv[pv > 0], 90), min_px, 2), min_px)
    rows: list[list[tuple[float, float, float, float]]] = []
    counted = 0
    for y0, y1 in bands:
        ph = gaussian_filter1d(hor[y0:y1].mean(axis=0).astype(np.float64), 1.0)
        if ph.max() <= 0:
            continue
        # boxes: where the row's horizontal lines are, against their typical coverage (a pen stroke or a
        # flat trace along a box is a long horizontal line too: against the highest coverage, the grid's
        # own lines beside it fell under the cut and the box broke in pieces)
        cols = true_runs(ph > 0.25 * np.median(ph[ph > 0.02 * ph.max()]), min_px, 2)
        if count_only:
            counted += len(cols)
            continue
        boxes = [(*_ends(dark, hor, y0, y1, x0, x1), float(y0), float(y1)) for x0, x1 in cols]
        boxes = [(b[0], b[2], b[1], b[3]) for b in boxes]
        if boxes:
            rows.append(boxes)
    if count_only:
        return None, counted, ink
    n_boxes = sum(len(r) for r in rows)
    if n_boxes < 2:
        return None, n_boxes, ink  # one ruled area: a page-wide grid, for the page-wide fit
    # the scale from the ruled lines inside the boxes
    vgroups, hgroups = [], []
    for r in rows:
        for bx0, by0, bx1, by1 in r:
            a, b, c, d = int(by0), int(by1), int(bx0), int(bx1)
            vgroups.append(c + _line_centres(ver[a:b, c:d].mean(axis=0).astype(np.float64)))
            hgroups.append(a + _line_centres(hor[a:b, c:d].mean(axis=1).astype(np.float64)))
    dx, dy = _spacing(vgroups), _spacing(hgroups)
    own = (dx, dy)  # each axis's lines' own spacing, before the square grid is assumed
    if dx is not None and dy is not None and not 1 / aspect < dx / dy < aspect:
        dx, dy = _square(vgroups, hgroups, dx, dy, aspect)
    if dx is None or dy is None or not 1 / aspect < dx / dy < aspect:
        # lines broken by a photo's blur or faint beside a frame: the spacing from the boxes' darkness
        dx, dy = _spectral_spacing(dark, rows, 0), _spectral_spacing(dark, rows, 1)
    if dx is None or dy is None or not 1 / aspect < dx / dy < aspect:
        one = _one_axis((dx, dy), levelled)
        if one is None:
            return None, n_boxes, ink
        dx = dy = one
    step_mm = next((s for s in (5.0, 1.0) if PAGE_MM[0] <= w / dx * s <= PAGE_MM[1]), None)
    if step_mm is None:
        # an image that holds more than the page (a photo's desk or screen around it): the widest row
        # of boxes, a lead's 2.5-10 s at 12.5-50 mm/s with gaps, says it instead
        span = max(r[-1][2] - r[0][0] for r in rows)
        step_mm = next((s for s in (5.0, 1.0) if ROW_MM[0] <= span / dx * s <= ROW_MM[1]), None)
    if step_mm is None:
        return None, n_boxes, ink
    ppm = (dx / step_mm, dy / step_mm)
    rows = [
        [_snap_x(box, g, EDGE_SNAP_MM * ppm[0]) for box, g in zip(r, gs, strict=True)]
        for r, gs in _grouped(rows, vgroups)
    ]
    if levelled:

        def big(b: Box) -> bool:
            return min((b[2] - b[0]) / ppm[0], (b[3] - b[1]) / ppm[1]) >= MIN_BOX_MM

        rows = [kept for r in rows if (kept := [b for b in r if big(b)])]
        rows = _without_sliver_ends(rows, w, NEAR_EDGE_MM * ppm[0])
    if sum(len(r) for r in rows) < 2 or any(
        (x1 - x0) / ppm[0] < MIN_BOX_MM or (y1 - y0) / ppm[1] < MIN_BOX_MM
        for r in rows
        for x0, y0, x1, y1 in r
    ):
        return None, n_boxes, ink
    gaps = [(b[0] - a[2]) / ppm[0] for r in rows for a, b in zip(r, r[1:], strict=False)]
    if gaps and min(gaps) < MIN_GAP_MM:
        return None, n_boxes, ink
    rows, merged = _split_merged(rows, ppm)
    # trace ink: dark in every channel (a coloured grid is not) and not on a long ruled line (a grey one)
    hi = cv2.max(cv2.max(image[..., 0], image[..., 1]), image[..., 2]) if image.ndim == 3 else image
    black = paper - hi.astype(np.float32) >= TRACE_LEVEL
    trace = black & (hor == 0) & (ver == 0)
    # a flat lead (a lead off, a zero channel) is a long level line: the opening took it for a ruled one
    flat = black & (hor > 0)
    faint = (paper - hi.astype(np.float32) >= FAINT_LEVEL) & (hor == 0) & (ver == 0)
    layout, conf, why = panel_layout(rows, ppm, trace, (w / ppm[0], h / ppm[1]), flat, faint)
    if layout is None:
        return None, n_boxes, ink
    padded = MAX_DURATION_S + 0.2 < max(c.t1_s for c in layout.cells) <= MAX_DURATION_S + PADDED_S
    # padded boxes whose one spacing for the page is in doubt are held as a box longer than the record is
    # (0.4, not 0.95) and left to the page-wide fit:
    # - each box autoscaled (wfdb's plot_items without sharey: each box its own mV per line): one spacing
    #   for all reads most leads at the wrong gain (wfdb 6x1 pages -10 to -8 dB at 0.84-0.92);
    # - lines along ruled at a whole multiple of the spacing taken (a plotting library's grid need not be
    #   square: wfdb's boxes 0.2 s by 0.5 mV, read square at half the lines' spacing, came out twice too
    #   tall, three leads wrong at 0.86-0.94)
    doubt = ""
    if padded and _scales_differ(hgroups):
        doubt = "padded boxes ruled at different spacings"
    elif padded and _harmonic(own, (dx, dy)):
        doubt = "spacing taken at a fraction of the lines' own"
    if doubt:
        conf *= 0.4 / 0.95
        why += f" ({doubt}: one scale in doubt)"
    pulses = _pulse_reading(black, rows, layout, ppm)
    shown = max(c.t1_s for c in layout.cells)
    slow = SLOW_SPEED_MM_S / SPEED_MM_S
    if shown < MIN_SHOWN_S and _slow_pulses(pulses) and MIN_SHOWN_S <= shown / slow <= MAX_DURATION_S + 0.5:
        # the boxes show half a record at 25 mm/s and the pulses beside them are 0.2 s wide at 12.5 mm/s
        # (2.5 mm, a width no cart prints at 25): the page runs at 12.5 mm/s and its rows show the record
        # (validation panels-12x1_001, a small realworld copy, was read as 5 s rows at half confidence and
        # left to the page-wide fit, which found no row: every lead wrong). The page's calibration reads
        # that speed off the same pulses again, never as a confirmed one.
        layout = with_speed(layout, SLOW_SPEED_MM_S)
        why += f" (pulses {pulses.width_mm:g} mm wide: {SLOW_SPEED_MM_S:g} mm/s)"
        shown = max(c.t1_s for c in layout.cells)
    if shown < MIN_SHOWN_S:
        # boxes whose rows show much less than a record's 10 s: on a photo's levelled page the scale read
        # off its ruled lines is more likely a harmonic than the page a short one, and anywhere the rows
        # may be 10 s at 12.5 mm/s (a realworld 12x1 page of 125 mm boxes, read as 5 s at 25 mm/s with
        # nothing else to say the speed, came out wrong at 0.95 on 10 of 12 leads)
        conf *= 0.5
        why += f" (rows shorter than {MIN_SHOWN_S:g} s: scale in doubt)"
    if merged:
        conf *= MERGED_FACTOR
        why += f" ({merged} boxes split at the other rows' gaps)"
    pm = PageMap(np.diag([ppm[0], ppm[1], 1.0]), (w, h), (w / ppm[0], h / ppm[1]))
    diag = {"panels": [len(r) for r in rows], "grid_step_mm": step_mm, "panel_fit": why}
    diag["pulses"] = pulses.to_json()
    if pulses.gain_mm_mv is not None:
        layout = with_gain(layout, pulses.gain_mm_mv, pulses.chest_gain_mm_mv)
    return PanelPage(rows, ppm, pm, layout, conf, diag), n_boxes, ink


def _slow_pulses(pulses: PulseReading) -> bool:
    """The pulses read (their gain agreed) and are 0.2 s wide at SLOW_SPEED_MM_S (2.5 mm)."""
    w = SLOW_PULSE_S * SLOW_SPEED_MM_S
    return pulses.read and pulses.width_mm is not None and abs(pulses.width_mm - w) <= SLOW_PULSE_TOL_MM


def _pulse_reading(
    black: np.ndarray, rows: list[list[Box]], layout: PageLayout, ppm: tuple[float, float]
) -> PulseReading:
    """The gain the calibration pulses beside the boxes show (`geometry.pulses`): each row of boxes is a row
    of the page, from its first box's left side to its last box's right; a pulse's foot lies anywhere
    within the boxes' height (ecg-plot centres its pulse on the baseline, carts stand it on it); the ink
    is the trace-dark ink outside the boxes (a pulse stands beside its row, not in a box, and a grey
    grid's ruled lines are as dark as a trace). Without it a panel page printed at 20 mm/mV read every
    lead at 10, twice as tall, at 0.98 (an ecg-plot page; its pulses 20 mm tall and its footer said so)."""
    out = black.copy()
    m = (BOX_MARGIN_MM * ppm[0], BOX_MARGIN_MM * ppm[1])
    for r in rows:
        for x0, y0, x1, y1 in r:
            ya, yb = max(0, int(y0 - m[1])), int(np.ceil(y1 + m[1]))
            out[ya:yb, max(0, int(x0 - m[0])) : int(np.ceil(x1 + m[0]))] = 0
    h, w = out.shape
    size = (max(1, round(w / ppm[0] * ORIENT_PPM)), max(1, round(h / ppm[1] * ORIENT_PPM)))
    mask = cv2.resize(out.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.2
    base = {c.row: c.baseline_mm for c in layout.cells}
    order = sorted(base)
    tops = np.array([min(b[1] for b in rows[r]) / ppm[1] for r in order])
    bottoms = np.array([max(b[3] for b in rows[r]) / ppm[1] for r in order])
    found = Rows(
        (tops + bottoms) / 2,
        np.array([rows[r][0][0] / ppm[0] - PULSE_LEFT_MM for r in order]),
        np.array([rows[r][-1][2] / ppm[0] for r in order]),
        np.zeros(len(order), bool),
    )
    half = float(np.min(bottoms - tops)) / 2
    ext = (0.0, 0.0, w / ppm[0], h / ppm[1])
    reading = read_pulses(mask.astype(np.float32), found, ext, ORIENT_PPM, half, PULSE_WIDTHS_MM)
    for q in reading.pulses:  # each pulse's baseline on paper: the row (and leads) it calibrates
        q["baseline_mm"] = round(float(base[order[q["row"]]]), 2)
    return reading


def _without_sliver_ends(rows: list[list[Box]], width_px: float, edge_px: float) -> list[list[Box]]:
    """Rows without the boxes at their ends that are less than SLIVER_SHARE as wide as the page's widest
    box: on a photo's levelled raster the paper's edge, a screen's bezel or a fold beside the boxes rules
    a narrow box of its own, and no grid shape has boxes that narrow beside its widest (a 3x4 grid's 2.5 s
    under a 10 s strip: a quarter). A box within `edge_px` of the image's side (`width_px` wide) stays:
    the image's edge cut it (its window is completed from the whole boxes)."""
    widest = max((b[2] - b[0] for r in rows for b in r), default=0.0)

    def sliver(b: Box) -> bool:
        cut = b[0] <= edge_px or b[2] >= width_px - edge_px
        return not cut and b[2] - b[0] < SLIVER_SHARE * widest

    out = []
    for r in rows:
        r = list(r)
        while len(r) > 1 and sliver(r[0]):
            r.pop(0)
        while len(r) > 1 and sliver(r[-1]):
            r.pop()
        out.append(r)
    return out


def _split_merged(rows: list[list[Box]], ppm: tuple[float, float]) -> tuple[list[list[Box]], int]:
    """Rows of a grid whose gap between two boxes something bridged (a crease, a fold, a pen stroke or a
    trace run along the gap joins their horizontal lines into one long box) split at the gaps of the
    rows that show the grid's every column: a box that spans such a gap (its columns lie under each
    other: one grid) is cut there. Only when the cuts give the row exactly the full rows' count.
    Returns the rows and how many boxes were split."""
    n_cols = max(len(r) for r in rows)
    full = [r for r in rows if len(r) == n_cols]
    if n_cols < 2 or len(full) == len(rows):
        return rows, 0
    # each gap of the full rows (x0, x1): their median over those rows (the columns stand aligned)
    ref = np.median([[(a[2], b[0]) for a, b in zip(r, r[1:], strict=False)] for r in full], axis=0)
    min_px = MIN_BOX_MM * ppm[0]
    out, split = [], 0
    for r in rows:
        if len(r) in (1, n_cols):
            out.append(r)  # a strip below the grid, or a row whose every gap shows
            continue
        pieces: list[Box] = []
        cut = 0
        for x0, y0, x1, y1 in r:
            inner = [(g0, g1) for g0, g1 in ref if x0 + min_px <= g0 and g1 <= x1 - min_px]
            edges = [x0, *(float(v) for g in inner for v in g), x1]
            pieces += [(edges[i], y0, edges[i + 1], y1) for i in range(0, len(edges), 2)]
            cut += bool(inner)
        if len(pieces) == n_cols:
            out.append(pieces)
            split += cut
        else:
            out.append(r)
    return out, split


def _baseline(
    trace: np.ndarray, box: tuple[float, float, float, float], faint: np.ndarray | None = None
) -> float | None:
    """Image row (continuous px) where the trace ink in `box` rests most: its baseline. Where the trace
    ink crosses few of the box's columns and the `faint` ink crosses more (a light trace on a small
    copy: the black ink left is the printed name in the box's corner), the faint ink's."""
    x0, y0, x1, y1 = (int(v) for v in box)
    sub = trace[y0:y1, x0 + 2 : x1 - 2]
    if faint is not None and sub.shape[1] > 0 and sub.any(axis=0).mean() < MIN_TRACE_COLUMNS:
        alt = faint[y0:y1, x0 + 2 : x1 - 2]
        if alt.any(axis=0).mean() > sub.any(axis=0).mean():
            sub = alt
    if sub.size == 0 or sub.sum() == 0:
        return None
    hist = gaussian_filter1d(sub.sum(axis=1).astype(np.float64), 1.5)
    return float(y0 + np.argmax(hist) + 0.5)


def _completed(
    rows: list[list[Box]], ppm: tuple[float, float], width_mm: float, grid_rows: list[int]
) -> tuple[list[list[tuple[float, float]]], str, int]:
    """Each box's (x0, x1) in mm, a box cut by the image's left or right edge (a scan cropped inside the
    page) completed. A grid's boxes are all as wide (each column the same seconds): one near the edge
    and narrower than the whole ones is cut there, and gets their width; a strip under the grid cut at
    one end shows as many seconds as a grid row's boxes together (it starts where the grid starts when
    cut at both). A strip away from the edges that shows less than the grid by more than
    STRIP_LOST_SHARE, one of its ends where the grid's seconds start or end (STRIP_ALIGN_MM), lost its
    other end inside the page (a photo's curled corner, a fold: validation 0005 panels-3x4+1R_003, its
    strip's first 26 mm lost under a curl, read 9.0 s under 10 s rows, the page's boxes dropped for the
    spread and the page-wide fit's 3x4+1R read upside down): completed from the aligned end as well.
    Returns the spans, "" (no box cut), "completed" or "not completed" (cut boxes and no whole box to
    complete them from), and how many strips were completed from an aligned end."""
    spans = [[(b[0] / ppm[0], b[2] / ppm[0]) for b in r] for r in rows]
    near_l = [[a <= NEAR_EDGE_MM for a, _ in r] for r in spans]
    near_r = [[b >= width_mm - NEAR_EDGE_MM for _, b in r] for r in spans]
    grid = sorted(set(grid_rows))
    whole = [b - a for r in grid for c, (a, b) in enumerate(spans[r]) if not (near_l[r][c] or near_r[r][c])]
    width = float(np.median(whole)) if whole else None
    out = [list(r) for r in spans]
    status = ""
    for r in grid:
        for c, (a, b) in enumerate(spans[r]):
            if not (near_l[r][c] or near_r[r][c]):
                continue
            if width is None:
                if a <= EDGE_CUT_MM or b >= width_mm - EDGE_CUT_MM:
                    status = "not completed"  # touches the edge, and nothing says how wide it is
                continue
            if b - a >= width - CUT_TOL_MM:
                continue  # near the edge but whole
            if near_l[r][c] and near_r[r][c]:
                status = "not completed"
                continue
            out[r][c] = (b - width, b) if near_l[r][c] else (a, a + width)
            status = status or "completed"
    seconds_mm = max(sum(b - a for a, b in out[r]) for r in grid) if grid else 0.0
    g0 = min(out[r][0][0] for r in grid) if grid else 0.0
    lost = 0
    for r, row in enumerate(spans):
        if r in grid or len(row) != 1 or not grid:
            continue
        a, b = row[0]  # a strip under the grid
        if b - a >= seconds_mm - CUT_TOL_MM:
            continue
        if not (near_l[r][0] or near_r[r][0]):
            at_start, at_end = abs(a - g0) <= STRIP_ALIGN_MM, abs(b - g0 - seconds_mm) <= STRIP_ALIGN_MM
            if b - a < (1.0 - STRIP_LOST_SHARE) * seconds_mm and at_start != at_end:
                out[r][0] = (a, a + seconds_mm) if at_start else (b - seconds_mm, b)
                lost += 1
            continue
        if near_l[r][0] and near_r[r][0]:
            out[r][0] = (min(a, g0), b)
            status = "not completed"
        else:
            out[r][0] = (b - seconds_mm, b) if near_l[r][0] else (a, a + seconds_mm)
            status = status or "completed"
    return out, status, lost


def panel_layout(
    rows: list[list[tuple[float, float, float, float]]],
    ppm: tuple[float, float],
    trace: np.ndarray,
    paper_mm: tuple[float, float],
    flat: np.ndarray | None = None,
    faint: np.ndarray | None = None,
) -> tuple[PageLayout | None, float, str]:
    """The layout the boxes form: the grid shape (rows x columns of equal boxes) and strips below it
    (rows of one box under a grid of several), leads in the standard order, each box's left edge its
    window's start, columns sequential; a row without trace ink rests on its `flat` ink (a flat lead).
    Returns (layout or None, confidence, how it was read)."""
    counts = [len(r) for r in rows]
    n_cols = max(counts)
    grid_rows = [i for i, k in enumerate(counts) if k == n_cols]
    strip_rows = [i for i, k in enumerate(counts) if k == 1 and n_cols > 1 and i > max(grid_rows)]
    if len(grid_rows) + len(strip_rows) != len(rows):
        return None, 0.0, f"rows of {counts} boxes: no grid shape"
    shape = (len(grid_rows), n_cols)
    if shape not in SHAPES or len(strip_rows) > len(STRIP_LEADS):
        return None, 0.0, f"a {shape[0]}x{shape[1]} grid of boxes: not a known shape"
    half_page = shape in SHAPE_NAMES and not strip_rows
    names = SHAPES[shape] + [[lead] for lead in STRIP_LEADS[: len(strip_rows)]]
    spans_mm, cut, lost = _completed(rows, ppm, paper_mm[0], grid_rows)
    cells: list[Cell] = []
    spans = []
    for r, boxes in enumerate(rows):
        bases = [b for b in (_baseline(trace, box, faint) for box in boxes) if b is not None]
        if not bases and flat is not None:
            bases = [b for b in (_baseline(flat, box) for box in boxes) if b is not None]
        if not bases:
            return None, 0.0, f"no trace in row {r + 1}"
        base_mm = float(np.median(bases)) / ppm[1]
        t = 0.0
        for c, ((x0, y0, x1, y1), (c0_mm, c1_mm)) in enumerate(zip(boxes, spans_mm[r], strict=True)):
            # the cell is the box the image shows; its window, where the box is cut, the part shown of
            # the completed box's (what the crop took is not on the page: absent, not traced)
            x0_mm, x1_mm = x0 / ppm[0], x1 / ppm[0]
            top = max(y0 / ppm[1], 1e-3)
            cells.append(
                Cell(
                    names[r][c],
                    r,
                    c,
                    base_mm,
                    x0_mm,
                    x1_mm,
                    t + (x0_mm - c0_mm) / SPEED_MM_S,
                    t + (x1_mm - c0_mm) / SPEED_MM_S,
                    box_top_mm=top,
                    box_bottom_mm=y1 / ppm[1],
                )
            )
            t += (c1_mm - c0_mm) / SPEED_MM_S
        spans.append(t)
    if half_page and min(spans) < MAX_DURATION_S - HALF_PAGE_SHORT_S:
        return None, 0.0, f"a column of {shape[0]} boxes showing {min(spans):.2f} s: not a half page"
    name = SHAPE_NAMES.get(shape, f"{shape[0]}x{shape[1]}") + (f"+{len(strip_rows)}R" if strip_rows else "")
    lay = PageLayout(
        name, paper_mm, SPEED_MM_S, GAIN_MM_MV, cells, [], [STRIP_LEADS[i] for i in range(len(strip_rows))]
    )
    # how well the boxes fit the reading: every row shows the same time, at most the record's 10 s
    spread = (max(spans) - min(spans)) / max(max(spans), 1e-9)
    conf = float(np.clip(1.0 - 4.0 * spread, 0.0, 1.0)) * (
        0.95 if max(spans) <= MAX_DURATION_S + PADDED_S else 0.4
    )
    why = ""
    if cut:
        # boxes cut by the image's edge (a scan's crop), their windows completed from the whole boxes:
        # an inference, not a reading; where no whole box said it, the window is in doubt
        conf *= CUT_FACTOR if cut == "completed" else 0.5 * CUT_FACTOR
        why = f" (boxes cut by the image's edge: {cut})"
    if lost:
        # a strip's end lost inside the page, its window completed from the grid's: an inference too
        conf *= CUT_FACTOR
        why += f" ({lost} strip's end lost: completed from the grid's seconds)"
    return lay, conf, f"{name}: rows show {min(spans):.2f}-{max(spans):.2f} s" + why
