"""`estimate_page`: from any capture of an ECG page to the paper-mm map, calibration, layout and confidence.

Steps (each in its module): darkness and local lattice -> coarse frame (`grid`), grid-phase refinement to
a homography plus smooth residual (`refine`), quarter turn, trace rows and absolute position (`orient`).
Work happens on a copy scaled to at most WORK_LONG_SIDE px (once more at up to RETRY_LONG_SIDE when no grid is
found there); the map is returned in input pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ecgml.errors import GRID_NO_ROWS, EcgmlError, ImageTooSmall
from ecgml.geometry.canonical import canonical_page, chroma_columns
from ecgml.geometry.gaps import ends_placed, gap_columns, short_rows
from ecgml.geometry.grid import (
    GRID_SHIFT_MM,
    LATTICE_LONG_SIDE,
    LATTICE_LONG_SIDE_PHOTO,
    TILE_STEP,
    bend_residual,
    coarse_frame,
    darkness,
    denser_frame,
    luma_darkness,
    tile_lattice,
)
from ecgml.geometry.orient import (
    COARSE_PPM,
    LATTICE_MIN_PITCH_MM,
    ORIENT_PPM,
    ROW_COUNTS,
    Orientation,
    Rows,
    choose_layout,
    on_one_pitch,
    on_pitch,
    orient,
    rot,
    snap,
    thin_strokes,
    tick_phase,
    turned_extent,
)
from ecgml.geometry.panel_photo import panels_rectified
from ecgml.geometry.panels import find_panels
from ecgml.geometry.paper import paper_box
from ecgml.geometry.pulses import SNAP_TOL, STANDARD_WIDTH_MM, PulseReading, read_pulses, start_pulse_width
from ecgml.geometry.refine import MAX_EXTENT_MM, TILE_MM, Extent, FrameMap, RefineResult, rectify, refine
from ecgml.geometry.trace_ink import line_free_mask
from ecgml.images import MIN_PX_PER_MM, MIN_SIDE_PX, too_small_reason
from ecgml.layout import LETTER_MM, PageLayout, make_layout, with_gain
from ecgml.page import PageMap, apply_homography

WORK_LONG_SIDE = 2300
# smaller images are enlarged (cubic) to this long side first: at ~2.5 px/mm (a 700 px web copy of a
# Letter page) the 1 mm lines are 2.5 px apart and the tile phases lose the lattice over most of the page
# (ECG-Image-Kit's 12x1 pages as 700 px JPEGs: 3 of 12 rows found); enlarged 1.6x, all 12 and grid
# confidence 0.48 -> 0.91. Enlarging adds no detail; it gives the phase filters the samples they need.
MIN_WORK_LONG_SIDE = 1100
RETRY_LONG_SIDE = 4000  # no grid on the reduced copy of a larger image: again at this size (12 MP: full)
RETRY_MIN_GAIN = 1.3  # ... and the retry would see at least this much more detail
# no grid on an image read at its own size or enlarged (a page small in a small photo, ~2.7 px/mm): again
# enlarged this much more, the most confident kept. Whether the phase filters lock on the 1 mm lines at
# such a density depends on where the resampling puts them: one factor can miss a grid another finds
# (validation 0005 6x2_003 at 1344 px: no grid at its size, the page found at 1.2-2.5x, some factors
# reading it at half its density), so more than one is tried.
ENLARGE_RETRIES = (1.5, 2.0)
# images up to this long side (web copies: at most ~5.7 px/mm on Letter) whose grid was not found, or was
# measured below the minimum density, are tried once more on their luma (`estimate_page`)
LUMA_RETRY_LONG_SIDE = 1600
# a grid measured too sparse to read is read once more with its coarse lattice this many times as dense
# (`_denser`): one lattice period per two of the grid's lines
DENSER_RETRY = 2.0
# ... kept only when the grid measured reaches farther than half an A4 page's long side: a page truly
# too sparse, read twice as dense, has its grid at most half a page across (tile centres: the readings
# kept on validation 6x1-chest_001 and 12x1-bottom_009 reach 200 and 250 mm; `test_page_reading`'s
# page at 1.6 px/mm, read twice as dense, 98 mm)
DENSER_MIN_SPAN_MM = 297.0 / 2
# pulses read on an assumed sheet that refute a grid of a small copy (`_pulses_refute_grid`): at least
# this many, as a cart prints one per row (one or two pulse-shaped waves are no scale to go by)
MIN_REFUTING_PULSES = 3
REFINE_ROUNDS = 3
RESIDUAL_STEP_MM = 5.0
# fewer lattice tiles than this share of the lattice raster's tiles: measure again with the axis prior
AXIS_PRIOR_SHARE = 0.2
MIN_GOOD_TILES = 40  # grid tiles (10 mm apart) a page gives when the scale is right
# ... and a bent page (its lattice integrated to a residual, `bend_residual`) whose first round at the
# lattice's scale measured this many keeps that scale: a crumpled photo's first round found 39, and a
# retry at 5x (6 tiles, each 25x the area) won the area-weighted vote; the page read 133 mm off
MIN_GOOD_TILES_BENT = 20
# the lattice's scale is off by the 1 mm / 5 mm / 10 mm line ratios (5, 2.5, 2) when it took one line
# family for another, and by 1.5 when it locked onto a period between them (a small strip photographed on
# wood, validation 0005 12x1-bottom_003: 7.4 work px/mm for 5.0; at 0.4x and 0.5x 12 and 6 tiles, the page
# read 2x off with 4 of its 6 rows; at 2/3x 60 tiles and six rows). Tried in this order; a later scale
# wins only with a higher area-weighted score.
SCALE_RETRIES = (5.0, 0.2, 2.5, 0.4, 2.0, 0.5, 1.5, 2 / 3)
ROW_OFF_MM = 4.0  # a row this far from every template baseline is not that template's row (pitch ~24 mm)
PAPER_MARGIN_MM = 8.0  # paper (pulses, row ends) reaches this far past the last grid tile measured
COARSE_RANSAC_MM = 3.0  # flat and gently bent pages: tiles further off the homography are outliers
FINE_ROUNDS = 4  # crumpled pages: rounds on smaller tiles once the map is close
FINE_TILE_MM = 10.0
FINE_RANSAC_MM = 8.0  # crumples move the grid several mm off any homography
FINE_MAX_JUMP_MM = 1.5  # unwrapping: natural steps ~1 mm per fine tile, a wrong tile's half period 2-2.5
FINE_WHEN_RESIDUAL_MM = 0.3  # bends beyond the homography larger than this (RMS) call for fine rounds
# Final x check on the rectified page: the phase of the 1 mm lines' chroma (grey or black ink has none) in
# PHASE_BLOCKS column blocks; a consistent line through them (rms below PHASE_MAX_RMS_MM) is the map's
# remaining x error. Time comes from x, and at 250 Hz a 0.025 mm (1 ms) shift costs ~5 dB on a clean ECG.
PHASE_PPM = (8.0, 2.0)
PHASE_BLOCKS = 8
PHASE_MIN_CONTRAST = 0.2  # share of the profile's variation at 1 cycle/mm (clean coloured grids: ~0.6)
PHASE_MAX_RMS_MM = 0.01
PHASE_MAX_MM = 0.25
MAX_PAPER_MM = 450.0  # the paper is grown to hold the layout's cells, at most to this
FEW_ROWS = 3  # fewer trace rows than this, and no aligned pulses: the turn is that much less sure
PANEL_MIN_CONFIDENCE = 0.5  # a page of separate gridded panels read with less is left to the page-wide fit
# a page the page-wide fit reads with this confidence is not looked at again as panels on its rectified
# copy (non-panel scans 0.85-0.98; panel pages that reach the rectified reading 0.04-0.75, session 11)
PANEL_PHOTO_MAX_PAGE_CONF = 0.8
# a bent page's boxes read on its homography's raster: at most this confidence. The raster is that
# homography alone, so where the paper bends the cells can sit millimetres off their traces (a bent 0005
# photo: two leads 3 mm off at 0.9+); at 0.18 the geometry factor (confidence / verdict.GEOMETRY_TRUST_AT
# 0.6) is verdict.FALLBACK_CAP 0.3, and every lead of the page stays at or below 0.3. The layout, the
# boxes' order and their turn are still the boxes' own, where the page-wide fit reads a page of boxes as
# rows of a template (validation panels-12x1_003: twelve boxes read as 3x4)
BENT_PANELS_MAX_CONF = 0.18
# how the rows were found where the ink mask showed fewer than any layout has (`_rows_again`): a note
ROWS_AGAIN = {"trace_ink": "grid lines removed by shape", "rows_bridged": "thin strokes bridged"}


@dataclass
class PageEstimate:
    """What geometry hands the trace model: map (paper mm -> input px), calibration, layout, confidence."""

    page_map: PageMap
    layout: PageLayout
    px_per_mm: tuple[float, float]  # input px per paper mm along paper x and y at the page centre
    orientation: int  # degrees the page is turned counter-clockwise in the input (0, 90, 180, 270)
    confidence: float  # in [0, 1]; below ~0.5 the map should not be trusted
    diagnostics: dict[str, Any] = field(default_factory=dict)
    bent: bool = False  # the paper bends beyond the coarse tiles (fine rounds ran): x timing may drift

    def to_dict(self) -> dict[str, Any]:
        return {
            "page_map": self.page_map.to_dict(),
            "layout": self.layout.to_dict(),
            "px_per_mm": list(self.px_per_mm),
            "orientation": self.orientation,
            "confidence": self.confidence,
            "diagnostics": self.diagnostics,
            "bent": self.bent,
        }


def _as_rgb(image: np.ndarray, path: str | Path | None) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.size == 0:
        raise EcgmlError(path, "not an image")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise EcgmlError(path, f"not an RGB image (shape {image.shape})")
    image = image[..., :3]
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating) and image.max() <= 1.0:
            image = image * 255.0
        image = np.clip(image, 0, 255).astype(np.uint8)
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE_PX:  # the loader's floor (`ecgml.images`): every step agrees on one
        raise ImageTooSmall(path, too_small_reason(f"{w}x{h} px"))
    return np.ascontiguousarray(image)


class GridWithoutRows(EcgmlError):
    """Geometry found the page's grid (its plane: `page_map`, paper mm on the grid's extent, orientation
    unknown) but no trace row on it."""

    def __init__(self, path: str | Path | None, page_map: PageMap) -> None:
        super().__init__(path, GRID_NO_ROWS)
        self.page_map = page_map


class GridRefuted(EcgmlError):
    """What geometry took for a grid is none (`_pulses_refute_grid`): "no ECG grid found (why)", with the
    page as read on the ink of an assumed sheet (`flat`), which said so - the gridless reading, made once."""

    def __init__(self, path: str | Path | None, why: str, flat: PageEstimate) -> None:
        super().__init__(path, f"no ECG grid found ({why})")
        self.flat = flat


def _frame_to_paper_map(fmap: FrameMap, a: np.ndarray, scale: float, size: tuple[int, int]) -> PageMap:
    """Paper map from the frame map, the frame -> paper transform `a` and the work -> input scale."""
    s_in = np.diag([1 / scale, 1 / scale, 1.0])
    ainv = np.linalg.inv(a)
    h = s_in @ fmap.h @ ainv
    h = h / h[2, 2]
    residual = None
    if fmap.residual is not None:
        gx = int(np.ceil(LETTER_MM[0] / RESIDUAL_STEP_MM)) + 1
        gy = int(np.ceil(LETTER_MM[1] / RESIDUAL_STEP_MM)) + 1
        yy, xx = np.mgrid[0:gy, 0:gx].astype(np.float64) * RESIDUAL_STEP_MM
        f = apply_homography(ainv, np.stack([xx, yy], -1))
        residual = (fmap.residual_at(f) / scale).astype(np.float32)
    return PageMap(h, size, LETTER_MM, residual, RESIDUAL_STEP_MM)


def _jacobian(pm: PageMap, mm: np.ndarray) -> np.ndarray:
    p = pm.mm_to_px(np.array([mm, mm + [1.0, 0], mm + [0, 1.0]]))
    return np.stack([p[1] - p[0], p[2] - p[0]], axis=1)  # columns: d px / d x_mm, d px / d y_mm


def estimate_page(image: np.ndarray, path: str | Path | None = None, turn: int = 0) -> PageEstimate:
    """Find the paper in `image` (RGB uint8): map paper mm -> input px, layout, calibration, confidence.

    `turn`: quarter turns to add to the orientation geometry finds (2: the page's printed names read
    upside down); the orientation part of the confidence then counts the evidence it overrode.

    Raises EcgmlError(path, reason) for input that is not an ECG page ("no ECG grid found", "no ECG
    trace found"); a numerical failure deep inside is reported the same way, so a batch can go on with
    its other images. ImageTooSmall when the grid measures fewer than MIN_PX_PER_MM px per paper mm.
    """
    image = _as_rgb(image, path)
    try:
        est = _read_or_luma(image, path, turn)
    except ImageTooSmall as exc:
        denser = _denser(image, path, turn)
        if denser is None:
            raise
        denser.diagnostics["denser_retry"] = exc.reason
        est = denser
    refuted = _pulses_refute_grid(image, est, path, turn)
    if refuted is not None:
        raise refuted
    return est


def _pulses_refute_grid(
    image: np.ndarray, est: PageEstimate, path: str | Path | None, turn: int
) -> GridRefuted | None:
    """Why the "grid" `est` was read on is none, with the gridless reading that says so; None if it stands.

    A small JPEG copy of a page printed without a grid shows its 8/16 px code blocks, text and trace
    strokes, which the lattice can take for a grid: measured over a small part of the page, at a scale
    the page's own marks do not bear out (validation lowres 6x2-seq_004, a gridless portrait page
    at 3.0 px/mm: "grid" 5.7 x 6.6 px/mm over 45 mm, rows 10 mm apart, no pulse; on an assumed Letter
    sheet six rows and six 10 mm pulses). Asked only of small copies (up to LUMA_RETRY_LONG_SIDE: their
    blocks are a lattice at a page's scale) whose grid reaches no farther than half an A4 page
    (DENSER_MIN_SPAN_MM) and shows no pulse: then the pulses read on an assumed Letter sheet
    (`flat_rows_estimate`), at least MIN_REFUTING_PULSES at a standard height, say the scale, and a grid
    whose scale is off theirs by more than a pulse height's tolerance (SNAP_TOL) is refuted."""
    span = est.diagnostics.get("grid_span_mm")
    if max(image.shape[:2]) > LUMA_RETRY_LONG_SIDE or span is None or span >= DENSER_MIN_SPAN_MM:
        return None
    if (est.diagnostics.get("pulses") or {}).get("n_pulses", 0) > 0:
        return None
    flat = flat_rows_estimate(image, path, turn)
    if flat is None:
        return None
    pulses = flat.diagnostics.get("pulses") or {}
    if not pulses.get("gain_read") or pulses.get("n_pulses", 0) < MIN_REFUTING_PULSES:
        return None
    ratio = max(est.px_per_mm) / max(min(flat.px_per_mm), 1e-9)
    if 1.0 / (1.0 + SNAP_TOL) <= ratio <= 1.0 + SNAP_TOL:
        return None
    why = (
        f"the grid measured over {span:.0f} mm at {max(est.px_per_mm):.2f} px/mm shows no pulse; "
        f"{pulses['n_pulses']} pulses of a standard height on an assumed Letter sheet say "
        f"{min(flat.px_per_mm):.2f} px/mm"
    )
    return GridRefuted(path, why, flat)


def _read_or_luma(image: np.ndarray, path: str | Path | None, turn: int) -> PageEstimate:
    """The page read (`_estimate_page`), small copies whose grid was not found or measured too sparse
    again on their luma."""
    try:
        return _dense_enough(_estimate_page(image, path, turn), path)
    except EcgmlError as exc:
        if "grid" not in exc.reason and not isinstance(exc, ImageTooSmall):
            raise
        if max(image.shape[:2]) > LUMA_RETRY_LONG_SIDE:
            raise
        # a small JPEG copy codes its colours at half resolution in 16 px blocks: in the darkness of its
        # palest channel that block lattice can pass for the grid (measured 2x off, or no grid at all);
        # the luma channel, coded at full resolution, shows the grid's own lines
        try:
            est = _attempt(image, path, WORK_LONG_SIDE, turn, Look(luma=True))
        except EcgmlError:
            raise exc from None
        est.diagnostics["luma_retry"] = exc.reason
        return _dense_enough(est, path)


def _denser(image: np.ndarray, path: str | Path | None, turn: int) -> PageEstimate | None:
    """The page read with its coarse lattice taken DENSER_RETRY times as dense, where the grid measured
    too sparse to read: a photo's grid whose 1 mm lines are lost shows only its 5 mm lines, and the
    lattice can settle on every other one (validation realworld 6x1-chest_001: 5 mm lines 19 px apart
    read as 1.87 px/mm, the page refused; at 2x its grid measures 3.8 px/mm, as its 25 mm rows say). None
    when that reading fails, measures too sparse as well, or its grid reaches no farther than half a
    page (DENSER_MIN_SPAN_MM: the grid of a page truly too sparse, read 2x dense). Only pages that
    would be refused are tried;
    small copies on their luma too (`_read_or_luma`), the reading that finds more trace rows kept."""
    best: PageEstimate | None = None
    for luma in (False, True) if max(image.shape[:2]) <= LUMA_RETRY_LONG_SIDE else (False,):
        try:
            est = _attempt(image, path, WORK_LONG_SIDE, turn, Look(luma=luma, density=DENSER_RETRY))
        except EcgmlError:
            continue
        if min(est.px_per_mm) < MIN_PX_PER_MM or est.diagnostics["grid_span_mm"] < DENSER_MIN_SPAN_MM:
            continue
        if best is None or _n_rows(est) > _n_rows(best):
            best = est
    return best


def _n_rows(est: PageEstimate) -> int:
    """How many trace rows geometry found on the page."""
    return len(est.diagnostics.get("row_baselines_mm") or [])


def _dense_enough(est: PageEstimate, path: str | Path | None) -> PageEstimate:
    """`est`, or ImageTooSmall when its grid measures fewer px per mm than the one minimum (the
    density, not the pixel count, decides: a strip cut from a page is as readable as the page)."""
    ppm = min(est.px_per_mm)
    if ppm < MIN_PX_PER_MM:
        raise ImageTooSmall(path, too_small_reason(f"its grid measures {ppm:.2f} px/mm"))
    return est


def _estimate_page(image: np.ndarray, path: str | Path | None, turn: int) -> PageEstimate:
    if turn % 4 == 0:
        panels = _panel_estimate(image)
        if panels is not None:
            return panels
    try:
        est = _page_wide(image, path, turn)
    except GridWithoutRows as exc:
        # a grid and no row along it: a page of boxes whose rows the fit did not see (a 12x1 page of
        # narrow boxes turned a quarter, on a screen); read as boxes on the grid's plane
        boxed = _panel_rectified_estimate(image, _no_rows_estimate(exc.page_map))
        if boxed is None:
            raise
        # the plane was measured on the grid the fit saw: over boxes beyond it, its perspective is
        # extrapolated and the boxes' cells drift millimetres off their traces (a 0006 screen photo's
        # plane measured on a fifth of the boxes: 3.5 mm off at its far end). The share it covers caps
        # the confidence
        covered = _covered_share(exc.page_map.paper_mm, boxed.layout)
        boxed.diagnostics["page_wide_failed"] = exc.reason
        boxed.diagnostics["plane_covers"] = round(covered, 3)
        return replace(boxed, confidence=boxed.confidence * covered)
    boxed = _panel_rectified_estimate(image, est)
    return est if boxed is None else boxed


def _page_wide(image: np.ndarray, path: str | Path | None, turn: int) -> PageEstimate:
    """The page read by the page-wide grid fit (at the work size, else larger or on the paper's crop)."""
    long_side = max(image.shape[:2])
    try:
        est = _attempt(image, path, WORK_LONG_SIDE, turn)
    except EcgmlError as exc:
        if "grid" not in exc.reason:
            raise
        return _grid_retry(image, path, turn, exc)
    if "trace_ink" not in est.diagnostics or long_side <= WORK_LONG_SIDE * RETRY_MIN_GAIN:
        return est
    # rows found only by shape on the reduced copy: a large photo's full size may show them by
    # darkness (0006 page 12x1_005: 4 rows by shape, all 12 at full size)
    try:
        full = _attempt(image, path, min(long_side, RETRY_LONG_SIDE), turn)
    except EcgmlError:
        return est
    if "trace_ink" in full.diagnostics:
        return est
    full.diagnostics["full_size_retry"] = "rows found only by shape on the reduced copy"
    return full


def _grid_retry(image: np.ndarray, path: str | Path | None, turn: int, first: EcgmlError) -> PageEstimate:
    """No grid on the reduced copy: again at (nearly) full size when that shows more; no grid on an image
    read at its own size or enlarged (a grid found, no row on it, aside): again enlarged (`_enlarged_retry`);
    then on a crop around the paper; raises the last grid error when none finds one."""
    long_side = max(image.shape[:2])
    last = first
    if long_side <= WORK_LONG_SIDE and not isinstance(first, GridWithoutRows):
        enlarged = _enlarged_retry(image, path, turn)
        if enlarged is not None:
            enlarged.diagnostics["enlarged_retry"] = first.reason
            return enlarged
    if long_side > WORK_LONG_SIDE * RETRY_MIN_GAIN:
        # a page that fills little of a large photo has its 1 mm lines at ~4 px on the reduced copy,
        # where a screen's raster or the camera's blur merges them: look again at (nearly) full size
        try:
            est = _attempt(image, path, min(long_side, RETRY_LONG_SIDE), turn)
            est.diagnostics["full_size_retry"] = first.reason
            return est
        except EcgmlError as exc:
            if "grid" not in exc.reason:
                raise
            last = exc
    cropped = _paper_crop_estimate(image, path, turn)
    if cropped is None:
        raise last
    cropped.diagnostics["full_size_retry"] = first.reason
    return cropped


def _enlarged_retry(image: np.ndarray, path: str | Path | None, turn: int) -> PageEstimate | None:
    """The most confident reading of `image` enlarged by each of ENLARGE_RETRIES beyond its first work
    size whose grid holds at least MIN_PX_PER_MM image px per mm (a grid read at a fraction of its density
    on the enlarged copy can fall below); None when none finds one."""
    best: PageEstimate | None = None
    for factor in ENLARGE_RETRIES:
        try:
            est = _attempt(image, path, WORK_LONG_SIDE, turn, Look(enlarge=factor))
        except EcgmlError:
            continue
        if min(est.px_per_mm) >= MIN_PX_PER_MM and (best is None or est.confidence > best.confidence):
            best = est
    return best


def _paper_crop_estimate(image: np.ndarray, path: str | Path | None, turn: int) -> PageEstimate | None:
    """The page read on a crop around the bright paper (`paper.paper_box`), its map moved back to `image`;
    None when no such page stands out or no grid is found on it either."""
    box = paper_box(image)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    est = _panel_estimate(crop) if turn % 4 == 0 else None
    if est is None:
        try:
            est = _attempt(crop, path, WORK_LONG_SIDE, turn)
        except EcgmlError:
            return None
    shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    pm = replace(
        est.page_map,
        homography=shift @ est.page_map.homography,
        image_size=(image.shape[1], image.shape[0]),
    )
    est.diagnostics["paper_crop"] = [int(v) for v in box]
    return replace(est, page_map=pm)


def _panel_estimate(image: np.ndarray) -> PageEstimate | None:
    """The page read as separate gridded panels (`panels.find_panels`), when it is one; else None."""
    t0 = time.perf_counter()
    work = _resized(image, min(1.0, WORK_LONG_SIDE / max(image.shape[:2])))
    try:
        found = find_panels(work)
    except (cv2.error, ValueError, IndexError, ZeroDivisionError):
        return None
    if found is None or found.confidence < PANEL_MIN_CONFIDENCE:
        return None
    sx, sy = work.shape[1] / image.shape[1], work.shape[0] / image.shape[0]
    pm = replace(
        found.page_map,
        homography=np.diag([1 / sx, 1 / sy, 1.0]) @ found.page_map.homography,
        image_size=(image.shape[1], image.shape[0]),
    )
    ppm = (found.px_per_mm[0] / sx, found.px_per_mm[1] / sy)
    diag = {**found.diagnostics, "source": "panels", "seconds": round(time.perf_counter() - t0, 3)}
    return PageEstimate(pm, found.layout, ppm, 0, found.confidence, diag)


def _covered_share(plane_mm: tuple[float, float], layout: PageLayout) -> float:
    """How much of the boxes' area (the layout's cells, paper mm) a plane measured over `plane_mm` covers:
    at most 1 (areas compared, so whichever way each is turned)."""
    xs = [v for c in layout.cells for v in (c.x0_mm, c.x1_mm)]
    ys = [v for c in layout.cells for v in (c.box_top_mm or c.baseline_mm, c.box_bottom_mm or c.baseline_mm)]
    area = (max(xs) - min(xs)) * (max(ys) - min(ys))
    return float(min(1.0, plane_mm[0] * plane_mm[1] / area)) if area > 0 else 0.0


def _no_rows_estimate(page_map: PageMap) -> PageEstimate:
    """What the page-wide fit knows of a page on whose grid it found no row: the plane, nothing more."""
    return PageEstimate(page_map, make_layout(), (0.0, 0.0), 0, 0.0, {}, False)


FLAT_TILE_MM = 10.0  # the assumed paper's "measured" region: tiles this far apart over the whole sheet


def flat_rows_estimate(
    image: np.ndarray, path: str | Path | None = None, turn: int = 0
) -> PageEstimate | None:
    """The page read on no grid: a Letter sheet assumed to fill the bright paper (`paper_box`) or the whole
    image, one scale on both axes (the long sides matched), its rows, turn, layout and pulses read on its
    ink as on a grid's frame. None when no trace row is found on it either. Real carts print without a
    visible grid too (thermal paper, photocopies; photos whose faint grid is lost): their rows, names and
    pulses still say how the page lies and which lead is where. The scale is a guess (an A4 sheet or a
    cropped photo is off by several per cent), so the confidence stays 0: its leads stay doubtful."""
    t_start = time.perf_counter()
    image = _as_rgb(image, path)
    h0, w0 = image.shape[:2]
    box = paper_box(image) or (0, 0, w0, h0)
    work, scale = _work_copy(image, WORK_LONG_SIDE)
    bw, bh = (box[2] - box[0]) * scale, (box[3] - box[1]) * scale
    ppm = max(bw, bh) / max(LETTER_MM)  # work px per assumed paper mm
    h = np.array([[ppm, 0.0, box[0] * scale], [0.0, ppm, box[1] * scale], [0.0, 0.0, 1.0]])
    ext = Extent(0.0, 0.0, bw / ppm, bh / ppm)
    xs = np.arange(FLAT_TILE_MM / 2, ext.x1, FLAT_TILE_MM)
    ys = np.arange(FLAT_TILE_MM / 2, ext.y1, FLAT_TILE_MM)
    tiles = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    res = RefineResult(FrameMap(h), ext, 0, 0.0, 0.0, 0.0, tiles)
    diag: dict[str, Any] = {"work_scale": scale, "no_grid": "rows read on a Letter sheet assumed", "box": box}
    try:
        fit = (False, COARSE_RANSAC_MM)
        est = _page_on_frame(image, work, None, res, scale, turn, path, diag, fit, t_start)
    except (EcgmlError, cv2.error, np.linalg.LinAlgError, ValueError, IndexError, ZeroDivisionError):
        return None
    return replace(est, confidence=0.0)


def _panel_rectified_estimate(image: np.ndarray, est: PageEstimate) -> PageEstimate | None:
    """The page read as gridded panels on the raster the page-wide fit's homography makes upright
    (`panel_photo`: photos, screens, turned pages), when it is one; else None. On a page the fit found
    bent beyond its homography at most BENT_PANELS_MAX_CONF: the raster is that homography alone, so
    where the paper bends the boxes' cells can sit millimetres off their traces, but which box holds
    which lead is still read off the boxes. Not on a page the fit read with confidence: one lattice over
    the page's rows is no page of boxes (whose separate lattices the fit cannot reconcile), and the
    rectified copy is not made for nothing."""
    if est.confidence >= PANEL_PHOTO_MAX_PAGE_CONF:
        return None
    t0 = time.perf_counter()
    got = None
    # as the sheet's grey lights it, then, where that reads no boxes, its colour made grey: a cream sheet
    # lit by its grey reads as ink in the darkest channel the box reader looks at (`panel_photo._balance`;
    # a second look only there: a page whose boxes read as it was lit keeps that reading)
    for balanced in (False, True):
        try:
            got = panels_rectified(image, est.page_map, balanced)
        except (cv2.error, ValueError, IndexError, ZeroDivisionError, np.linalg.LinAlgError):
            got = None
        if got is not None and got.found.confidence >= PANEL_MIN_CONFIDENCE:
            break
        got = None
    if got is None:
        return None
    pm = got.page_map
    jac = _jacobian(pm, np.array(pm.paper_mm) / 2)
    ppm = (float(np.linalg.norm(jac[:, 0])), float(np.linalg.norm(jac[:, 1])))
    orientation = int(90 * np.round(np.degrees(np.arctan2(-jac[1, 0], jac[0, 0])) / 90)) % 360
    diag = {**got.found.diagnostics, **got.diagnostics, "source": "panels"}
    diag["page_wide"] = {"layout": est.layout.name, "confidence": round(est.confidence, 3)}
    diag["seconds"] = round(est.diagnostics.get("seconds", 0.0) + time.perf_counter() - t0, 3)
    confidence = got.found.confidence
    if est.bent:
        diag["bent_page"] = "boxes read on the homography of a bent page: cells may sit off their traces"
        confidence = min(confidence, BENT_PANELS_MAX_CONF)
    return PageEstimate(pm, got.found.layout, ppm, orientation, confidence, diag)


def _resized(image: np.ndarray, scale: float) -> np.ndarray:
    """`image` scaled by `scale`: area-averaged when reduced, cubic when enlarged, itself at 1."""
    if scale == 1.0:
        return image
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(image, None, fx=scale, fy=scale, interpolation=interp))


@dataclass(frozen=True)
class Look:
    """How one attempt looks at the image (`_estimate`): `luma`, the grid measured on the luma's darkness
    (`luma_darkness`); `enlarge`, the work copy enlarged this much more (`ENLARGE_RETRIES`); `density`,
    the coarse lattice taken this many times as dense as measured (`_denser`)."""

    luma: bool = False
    enlarge: float = 1.0
    density: float = 1.0


PLAIN = Look()


def _attempt(
    image: np.ndarray, path: str | Path | None, work_long_side: int, turn: int = 0, look: Look = PLAIN
) -> PageEstimate:
    try:
        return _estimate(image, path, work_long_side, turn, look)
    except EcgmlError:
        raise
    except (cv2.error, np.linalg.LinAlgError, ValueError, IndexError, ZeroDivisionError) as exc:
        raise EcgmlError(
            path, f"page geometry failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
        ) from exc


def _lines_or_dots(
    dark: np.ndarray, fmap: FrameMap, ext: Extent, **kw: Any
) -> tuple[RefineResult | None, bool]:
    """One round of `refine` on the grid's lines, or on its dots (True) where the lines measure fewer
    than MIN_GOOD_TILES tiles and the dots a grid (MIN_GOOD_TILES) of more than twice as many: a grid of
    dots has the paper's median along its lines, so it is measured on means. None: neither measured."""
    try:
        lines = refine(dark, fmap, ext, **kw)
    except (cv2.error, IndexError, ValueError, np.linalg.LinAlgError):
        lines = None  # this scale makes no sense for the image (raster smaller than a tile, ...)
    if lines is not None and lines.n_tiles >= MIN_GOOD_TILES:
        return lines, False
    try:
        dotted = refine(dark, fmap, ext, dots=True, **kw)
    except (cv2.error, IndexError, ValueError, np.linalg.LinAlgError):
        dotted = None
    if (
        dotted is not None
        and dotted.n_tiles >= MIN_GOOD_TILES
        and (lines is None or dotted.n_tiles > 2 * lines.n_tiles)
    ):
        return dotted, True
    return lines, False


def _work_copy(image: np.ndarray, long_side: int, enlarge: float = 1.0) -> tuple[np.ndarray, float]:
    """(the image resized to `long_side` px at most, small web copies up to MIN_WORK_LONG_SIDE, times
    `enlarge`; the scale exactly as the resize made it: continuous coordinates scale by the size ratio per
    axis, averaged)."""
    h0, w0 = image.shape[:2]
    scale = min(1.0, long_side / max(h0, w0))
    if max(h0, w0) < MIN_WORK_LONG_SIDE:
        scale = MIN_WORK_LONG_SIDE / max(h0, w0)  # small web copies: see `MIN_WORK_LONG_SIDE`
    work = _resized(image, scale * enlarge)
    return work, 0.5 * (work.shape[1] / w0 + work.shape[0] / h0)


def _estimate(
    image: np.ndarray, path: str | Path | None, work_long_side: int, turn: int = 0, look: Look = PLAIN
) -> PageEstimate:
    """One attempt at `work_long_side`, looking at the image as `look` says."""
    t_start = time.perf_counter()
    h0, w0 = image.shape[:2]
    work, scale = _work_copy(image, work_long_side, look.enlarge)
    ksize = int(max(9, 0.012 * min(work.shape[:2])))
    dark = luma_darkness(work, ksize) if look.luma else darkness(work, ksize)[0]
    if float(dark.std()) < 2.0:
        raise EcgmlError(path, "no ECG grid found (blank image)")
    diag: dict[str, Any] = {"work_scale": scale}
    # the coarse lattice on a smaller copy (long side LATTICE_LONG_SIDE)
    r = min(1.0, (LATTICE_LONG_SIDE if max(h0, w0) <= 2600 else LATTICE_LONG_SIDE_PHOTO) / max(dark.shape))
    small = dark if r == 1.0 else cv2.resize(dark, None, fx=r, fy=r, interpolation=cv2.INTER_AREA)
    rx, ry = small.shape[1] / dark.shape[1], small.shape[0] / dark.shape[0]
    small01 = small.astype(np.float32) * (1 / 255)
    lat = tile_lattice(small01)
    coarse = None if lat is None else coarse_frame(lat)
    n_tiles = max(1, (small.shape[0] // TILE_STEP) * (small.shape[1] // TILE_STEP))
    if coarse is None or coarse.mask.sum() < AXIS_PRIOR_SHARE * n_tiles:
        # few tiles with a clear direction (dense fine lines, dots): measure the rest along the axes.
        # A page small in a photo also has few tiles in its frame, and along the axes the noise around
        # it reads as a period the size of a tile: such a lattice does not replace one a tile can hold
        # (0006 page 3x4+1R_005: 109 wall tiles at 25.6 lattice px/mm took over the page's 34 at 6.1
        # and the page was read 2x off). It may replace a lattice that is no measurement either.
        lat_ax = tile_lattice(small01, axis_prior=True)
        shading = lat_ax is not None and not lat_ax.measured and lat is not None and lat.measured
        coarse_ax = None if lat_ax is None or shading else coarse_frame(lat_ax)
        if coarse_ax is not None and (coarse is None or coarse_ax.mask.sum() > coarse.mask.sum()):
            lat, coarse = lat_ax, coarse_ax
            diag["axis_prior"] = True
    if lat is None:
        raise EcgmlError(path, "no ECG grid found")
    if coarse is None:
        raise EcgmlError(path, "no ECG grid found (inconsistent grid directions)")
    if look.density != 1.0:
        coarse = denser_frame(coarse, look.density)
        diag["density_retry"] = look.density
    used = coarse.mask
    h = np.diag([1 / rx, 1 / ry, 1.0]) @ coarse.h  # lattice px -> work px
    diag["lattice_tiles"] = int(used.sum())
    mmc = apply_homography(np.linalg.inv(h), lat.centre[used] / [rx, ry])
    ext = _first_extent(h, mmc, dark.shape)
    bend = bend_residual(coarse, h, (1 / rx, 1 / ry))
    # a bent page keeps the integrated lattice as the first residual, and its coarse rounds the tiles a
    # homography leaves several mm off (else the residual is dropped again where it matters)
    fmap = FrameMap(h) if bend is None else FrameMap(h, *bend)
    coarse_ransac_mm = COARSE_RANSAC_MM if bend is None else FINE_RANSAC_MM
    diag["lattice_bend"] = bend is not None
    first, dots = _lines_or_dots(dark, fmap, ext, ransac_mm=coarse_ransac_mm)
    if dots:
        diag["dotted_grid"] = True
    keep_scale = bend is not None and first is not None and first.n_tiles >= MIN_GOOD_TILES_BENT
    if (first is None or first.n_tiles < MIN_GOOD_TILES) and not keep_scale:
        # the 1 mm / 5 mm decision can fail: the other scales, best first (`_ranked_scales`)
        ranked = _ranked_scales(dark, h, ext, first, dots, coarse_ransac_mm, path)
        diag["scale_retry"] = True
        if ranked[0].k != 1.0:
            diag["scale_retry_k"] = round(ranked[0].k, 3)
        winner_diag = dict(diag)
        if ranked[0].dots:
            winner_diag["dotted_grid"] = True
        try:
            return _measured_page(image, work, dark, ranked[0], scale, turn, path, winner_diag, t_start)
        except GridWithoutRows as exc:
            if ranked[0].k == 1.0:
                raise
            # a retried scale won the vote with few tiles, and no trace row lies along its grid (test
            # realworld 6x1-chest_001, a crop of a photo: 8 tiles at 2/3x outscored 17 at 0.4x, where
            # the page's rows are): the next-best scales that measured a grid (MIN_GOOD_TILES: a page
            # printed without one shows a handful of "tiles" of text and trace at every scale, and its
            # rows are read on the ink instead) are read before the page is given up
            for cand in (c for c in ranked[1:] if c.first.n_tiles >= MIN_GOOD_TILES):
                alt = {k: v for k, v in diag.items() if k not in ("scale_retry_k", "dotted_grid")}
                if cand.k != 1.0:
                    alt["scale_retry_k"] = round(cand.k, 3)
                if cand.dots:  # the lattice's own scale carries its dots (`_ranked_scales`)
                    alt["dotted_grid"] = True
                alt["scale_gave_way"] = round(ranked[0].k, 3)
                try:
                    return _measured_page(image, work, dark, cand, scale, turn, path, alt, t_start)
                except GridWithoutRows:
                    continue
            raise exc
    if first is None:
        raise EcgmlError(path, "no ECG grid found (grid lines not measurable)")
    return _measured_page(
        image, work, dark, _Scale(1.0, first, dots, coarse_ransac_mm), scale, turn, path, diag, t_start
    )


@dataclass(frozen=True)
class _Scale:
    """One scale of the coarse frame (`k` times the lattice's) and the grid round measured at it."""

    k: float
    first: RefineResult
    dots: bool
    ransac_mm: float  # the coarse rounds' RANSAC threshold at this scale


def _ranked_scales(
    dark: np.ndarray,
    h: np.ndarray,
    ext: Extent,
    first: RefineResult | None,
    dots: bool,
    ransac_mm: float,
    path: str | Path | None,
) -> list[_Scale]:
    """The lattice's scale and each of SCALE_RETRIES that measured a grid, best first; raises "no ECG
    grid found" when none did.

    The 1 mm / 5 mm decision can fail (minor lines lost to blur or moire): the other scales are tried
    and ranked by how well their grid phases hold together over the image area (a tile of the frame
    scaled by k covers k^2 the image area: counting tiles alone favours the smaller scales). A later
    scale outranks an earlier one only with a higher score. Each scale is read as lines, or as dots
    where those measure a grid the lines do not: a grid of dots 5 mm apart, which the lattice took for
    1 mm lines, shows few lines at the true scale (validation lowres 6x1-chest_004: 9 line tiles at
    0.2x lost to 7 at 0.4x, the page read 2x off; as dots, 419 tiles at 0.2x)."""
    scored: list[tuple[float, int, _Scale]] = []
    if first is not None:
        scored.append((first.n_tiles * first.tile_conf, 0, _Scale(1.0, first, dots, ransac_mm)))
    for i, k in enumerate(SCALE_RETRIES, start=1):
        hk = h @ np.diag([k, k, 1.0])
        ek = Extent(ext.x0 / k, ext.y0 / k, ext.x1 / k, ext.y1 / k)
        rk, rk_dots = _lines_or_dots(dark, FrameMap(hk), ek)
        if rk is not None:
            # the lattice's bend was measured at another scale: plain coarse rounds
            scored.append((rk.n_tiles * k**2 * rk.tile_conf, i, _Scale(k, rk, rk_dots, COARSE_RANSAC_MM)))
    if not scored:
        raise EcgmlError(path, "no ECG grid found (grid lines not measurable)")
    # best score first; among equal scores the earlier tried (the vote kept the first of a tie)
    return [s for _, _, s in sorted(scored, key=lambda t: (-t[0], t[1]))]


def _measured_page(
    image: np.ndarray,
    work: np.ndarray,
    dark: np.ndarray,
    at: _Scale,
    scale: float,
    turn: int,
    path: str | Path | None,
    diag: dict[str, Any],
    t_start: float,
) -> PageEstimate:
    """The grid refined from its first round `at` (coarse rounds, then fine rounds on a bent page), and
    the page read on it (`_page_on_frame`)."""
    res, fmap, ext = at.first, at.first.fmap, at.first.extent
    for _ in range(REFINE_ROUNDS - 1):
        r = refine(dark, fmap, ext, ransac_mm=at.ransac_mm, dots=at.dots)
        if r is None:
            break
        res, fmap, ext = r, r.fmap, r.extent
    # a fine tile covers a quarter of a coarse one: a fine round must measure about as much paper
    need = 2 * res.n_tiles
    for _ in range(FINE_ROUNDS if res.residual_rms_mm > FINE_WHEN_RESIDUAL_MM else 0):
        r = refine(
            dark,
            fmap,
            ext,
            tile_mm=FINE_TILE_MM,
            step_mm=FINE_TILE_MM / 2,
            ransac_mm=FINE_RANSAC_MM,
            max_jump_mm=FINE_MAX_JUMP_MM,
            dots=at.dots,
        )
        if r is None or r.n_tiles < need:
            break
        res, fmap, ext = r, r.fmap, r.extent
        need = int(0.9 * r.n_tiles)
        diag["fine_rounds"] = diag.get("fine_rounds", 0) + 1
    diag.update(
        grid_tiles=res.n_tiles,
        grid_tile_conf=round(res.tile_conf, 4),
        fit_rms_mm=round(res.fit_rms_mm, 4),
        residual=fmap.residual is not None,
        t_grid_s=round(time.perf_counter() - t_start, 3),
    )
    return _page_on_frame(image, work, dark, res, scale, turn, path, diag, (at.dots, at.ransac_mm), t_start)


def _page_on_frame(
    image: np.ndarray,
    work: np.ndarray,
    dark: np.ndarray | None,
    res: RefineResult,
    scale: float,
    turn: int,
    path: str | Path | None,
    diag: dict[str, Any],
    fit: tuple[bool, float],
    t_start: float,
) -> PageEstimate:
    """Rows, orientation, layout, pulses and the paper map read on the frame `res` found on `work` (the
    input `image` scaled by `scale`). `dark` is None when the frame is no grid's (`flat_rows_estimate`):
    no wider grid round, no grid phase, and a grid confidence of 0. `fit`: (dotted grid, RANSAC mm)."""
    dots, coarse_ransac_mm = fit
    h0, w0 = image.shape[:2]
    fmap = res.fmap
    e, paper, ori, rows, mask = _found_rows(work, res, scale, turn, path, diag, (w0, h0))
    if len(rows.centres) not in ROW_COUNTS and dark is not None:
        # rows no named layout has: the frame may have stopped short of the page (`whole_image_round`)
        wider = whole_image_round(dark, res, coarse_ransac_mm, dots, fine="fine_rounds" in diag)
        again: dict[str, Any] = {}
        try:
            found = (
                _found_rows(work, wider, scale, turn, path, again, (w0, h0)) if wider is not None else None
            )
        except EcgmlError:
            found = None
        if wider is not None and found is not None and len(found[3].centres) in ROW_COUNTS:
            res, fmap = wider, wider.fmap
            e, paper, ori, rows, mask = found
            diag.update(again, whole_image_round=True, grid_tiles=res.n_tiles)
    ext_up = turned_extent(ori.k, (e.x0, e.y0, e.x1, e.y1))  # the upright mask's extent
    pulses = read_pulses(mask, rows, ext_up, ORIENT_PPM)
    measured = "trace_ink" not in diag  # a trace found by shape: its pulses are not measured
    if not measured:  # nor the gain from such boxes: it stays assumed (and the pulse unseen)
        pulses = PulseReading(why="trace found by shape: pulses not measured")
    # the rows start this far right of their pulses' left edges (None: the standard 5 mm, or not measured)
    pulse_mm = start_pulse_width(pulses)
    pulse_mm = None if pulse_mm == STANDARD_WIDTH_MM else pulse_mm
    name = choose_layout(rows)
    tx, ty, layout, base_res = snap(rows, name, pulse_mm)
    tx_snap = tx
    tx = tick_phase(mask, ext_up, layout, tx, ty, ORIENT_PPM)
    ticked = tx != tx_snap  # separator ticks placed the columns
    diag["tick_shift_mm"] = tx - tx_snap
    if len(rows.centres) == layout.n_rows and (
        base_res > 2.0 or _worst_row_mm(rows, layout, ty) > ROW_OFF_MM
    ):
        # every row is on the page but the template's rows are not where the page prints them: a
        # nearest-row snap would name each row after its neighbour (ECG-Image-Kit's 6x2 rows sit a row
        # pitch lower than the template's), so the rows keep their measured places and their order
        layout = _measured_layout(name, rows, tx, ty, pulse_mm)
        down = onto_paper(layout.row_baselines()) if "rows_added" in diag else 0.0
        if down:
            # rows completed on their own pitch (`on_pitch`) can snap onto a template of another pitch
            # with their first rows above the paper, where nothing is traced
            ty += down
            layout = _measured_layout(name, rows, tx, ty, pulse_mm)
    gapped = gap_columns(mask, ext_up, layout, tx, ty, ORIENT_PPM)
    if gapped is not layout:
        diag["column_gaps"] = True
        layout = gapped
    else:
        looked = np.rot90(paper, k=-ori.k)  # where ink was read
        shorter = short_rows(mask, looked, ext_up, layout, tx, ty, ORIENT_PPM, pulses_measured=measured)
        if shorter is not layout:  # rows holding fewer seconds than the template's (portrait paper)
            diag["short_rows_s"] = round(max(c.t1_s for c in shorter.cells), 2)
            layout = shorter
        elif not ticked:
            placed = ends_placed(mask, looked, ext_up, layout, tx, ty, ORIENT_PPM)
            if placed is not layout:
                diag["ends_shift_mm"] = round(placed.cells[0].x0_mm - layout.cells[0].x0_mm, 2)
                layout = placed
    # every trace row found, on paper (the layout keeps only its template's rows): the printed names'
    # rows are placed on them (`ecgml.label_grid`)
    diag["row_baselines_mm"] = [round(float(c + ty), 2) for c in rows.centres]
    # how far the grid measured reaches (`_denser`)
    diag["grid_span_mm"] = round(float(np.ptp(res.tiles_mm, axis=0).max()) if len(res.tiles_mm) else 0.0, 1)
    for q in pulses.pulses:  # each pulse's baseline on paper: which layout row (and leads) it calibrates
        q["baseline_mm"] = round(float(rows.centres[q["row"]] + ty), 2)
    diag["pulses"] = pulses.to_json()
    if pulses.gain_mm_mv is not None:
        layout = with_gain(layout, pulses.gain_mm_mv, pulses.chest_gain_mm_mv)
    # the lattice has its lines on whole mm of the frame; on paper they lie GRID_SHIFT_MM right and down
    a = np.array([[1, 0, tx + GRID_SHIFT_MM], [0, 1, ty + GRID_SHIFT_MM], [0, 0, 1.0]]) @ rot(ori.k)
    page_map = _frame_to_paper_map(fmap, a, scale, (w0, h0))
    fix = grid_x_phase(image, page_map) if dark is not None else None
    if fix is not None:
        # map(x) -> map(x + a + b x): the grid lines back onto whole millimetres
        t = np.array([[1.0 + fix[1], 0.0, fix[0]], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        page_map = replace(page_map, homography=page_map.homography @ t)
        diag["x_phase_mm"] = (round(fix[0], 4), round(fix[1], 7))
    grown = _paper_for(layout, page_map.paper_mm)
    if grown != page_map.paper_mm:  # rows or columns past a Letter page (taller or wider paper)
        diag["paper_mm"] = grown
        page_map = replace(page_map, paper_mm=grown)
        layout = replace(layout, paper_mm=grown)
    centre = np.array(LETTER_MM) / 2
    jac = _jacobian(page_map, centre)
    ppm = (float(np.linalg.norm(jac[:, 0])), float(np.linalg.norm(jac[:, 1])))
    angle = float(np.degrees(np.arctan2(-jac[1, 0], jac[0, 0])))
    orientation = int(90 * np.round(angle / 90)) % 360
    c_grid = float(np.clip((res.tile_conf - 0.3) / 0.6, 0, 1))
    c_fit = float(np.exp(-res.fit_rms_mm / 0.5))
    if turn % 4:
        diag["turn_forced"] = turn % 4
    up_score = abs(ori.upright_score) if turn % 4 else ori.upright_score
    c_orient = float(np.clip(up_score / 3.0, 0, 1)) * float(np.clip((ori.axis_score - 1.0) / 0.5, 0, 1))
    if rows.extras.get("from", "rows") == "rows" and len(rows.centres) < FEW_ROWS:
        # turned by the waves and the header of one or two rows: the rest of the page was not seen
        # (small real-world copies whose other rows were missed were turned 180 degrees with a full score)
        c_orient *= len(rows.centres) / FEW_ROWS
    c_layout = float(np.exp(-base_res / 2.0)) if np.isfinite(base_res) else 0.0
    confidence = float(
        np.clip(np.sqrt(c_grid) * c_fit * (0.5 + 0.5 * c_orient) * (0.5 + 0.5 * c_layout), 0, 1)
    )
    diag.update(
        rows=len(rows.centres),
        pulse_rows=int(rows.extras["pulses"] if rows.extras.get("pulse_at_end") else rows.pulse.sum()),
        pulse_at_end=bool(rows.extras.get("pulse_at_end", False)),
        baseline_res_mm=round(base_res, 3),
        orient_margin=round(ori.upright_score, 3),
        orient_from=str(rows.extras.get("from", "rows")),
        axis_ratio=round(ori.axis_score, 3),
        conf_parts={
            "grid": round(c_grid, 3),
            "fit": round(c_fit, 3),
            "orient": round(c_orient, 3),
            "layout": round(c_layout, 3),
        },
        seconds=round(time.perf_counter() - t_start, 3),
    )
    bent = diag.get("fine_rounds", 0) > 0
    return PageEstimate(page_map, layout, ppm, orientation, confidence, diag, bent)


def _rows_again(
    ink_r: np.ndarray,
    paper: np.ndarray,
    valid: np.ndarray,
    e: Extent,
    turn: int,
    coarse: bool,
    first: tuple[Orientation, Rows, np.ndarray],
) -> tuple[Orientation, Rows, np.ndarray, str]:
    """Orientation, rows and upright mask when the ink mask showed fewer rows than any named layout
    has (ROW_COUNTS), and how they were found (a `ROWS_AGAIN` key; "" when `first` stays).

    A light trace on a dark grid (GE-style copies) is nothing clearly darker than the grid lines: it is
    found by shape instead (`trace_ink`). A thin pen at a small copy's density (4-6 px/mm, near the
    raster's own) leaves its QRS strokes broken on the raster as on an enlarged one: they are counted
    bridged (`_strokes`); bridged, text lines and grid bits can pass for rows too, and such rows are kept
    only on one pitch (three rows or more: a cart prints its rows so). Rows on one pitch beat more rows,
    more rows beat fewer (validation lowres 3x4_004, 4.8 px/mm: by shape 4 rows, one true and two 5 mm
    apart; bridged its 3 rows). Bridged strokes are looked for only on a raster not already enlarged.
    Where the ink mask showed two rows, a thin grey trace about as dark as a grey grid's 5 mm lines
    has kept only part of its rows there (validation realworld 3x5_006: two of three rows, the page
    read as 3x4+1R and refused as a grid with no trace); rows found again replace them only on one
    pitch (two rows and a text line or a stain are more rows, but no cart's)."""
    ink01 = ink_r.astype(np.float32) * (1 / 255)
    box = (e.x0, e.y0, e.x1, e.y1)
    best, how = first, ""
    alt = thin_strokes(line_free_mask(ink01, paper, ORIENT_PPM))
    # its bridged line bits make boxes a pulse finder takes for pulses: turn and rows from the rows
    shape = orient(
        ink01, paper, valid, box, ORIENT_PPM, turn, alt, pulses=False, lattice=False, coarse=coarse
    )
    more = len(shape[1].centres) > len(first[1].centres)
    if more and (len(first[1].centres) < 2 or on_one_pitch(shape[1])):
        best, how = shape, "trace_ink"
    if not coarse:
        bridged = orient(ink01, paper, valid, box, ORIENT_PPM, turn, coarse=True)
        n = len(bridged[1].centres)
        if on_one_pitch(bridged[1]) and (True, n) > (on_one_pitch(best[1]), len(best[1].centres)):
            best, how = bridged, "rows_bridged"
    return (*best, how)


def _paper_for(layout: PageLayout, paper_mm: tuple[float, float]) -> tuple[float, float]:
    """`paper_mm` grown (up to MAX_PAPER_MM) to hold every cell of `layout` and half a row pitch below
    its last row: the canonical page is rasterised over the paper, and cells past it are never traced."""
    base = layout.row_baselines()
    half = float(np.median(np.diff(base))) / 2 if len(base) > 1 else 15.0
    need_x = max(c.x1_mm for c in layout.cells) + 3.0
    need_y = max(base) + min(half, 30.0)
    w = float(min(max(paper_mm[0], need_x), MAX_PAPER_MM))
    h = float(min(max(paper_mm[1], need_y), MAX_PAPER_MM))
    return (w, h) if (w, h) != tuple(paper_mm) else paper_mm


def _first_extent(h: np.ndarray, mmc: np.ndarray, shape: tuple[int, ...]) -> Extent:
    """Frame extent of the whole image (the coarse tiles may miss parts of the page), at most
    MAX_EXTENT_MM around the tiles' centre."""
    hh, ww = shape[:2]
    t = np.linspace(0, 1, 41)
    border = np.concatenate(
        [np.stack([t * ww, np.zeros_like(t)], 1), np.stack([t * ww, np.full_like(t, hh)], 1),
         np.stack([np.zeros_like(t), t * hh], 1), np.stack([np.full_like(t, ww), t * hh], 1)]
    )  # fmt: skip
    hinv = np.linalg.inv(h)
    ph = np.concatenate([border, np.ones((len(border), 1))], 1) @ hinv.T
    ok = ph[:, 2] * np.sign((np.array([ww / 2, hh / 2, 1.0]) @ hinv.T)[2]) > 1e-9
    mm = ph[ok, :2] / ph[ok, 2:3]
    c = mmc.mean(0)
    lo = np.maximum(mm.min(0), c - MAX_EXTENT_MM / 2) if len(mm) else mmc.min(0) - 10
    hi = np.minimum(mm.max(0), c + MAX_EXTENT_MM / 2) if len(mm) else mmc.max(0) + 10
    return Extent(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def _paper_mask(tiles_mm: np.ndarray, e: Extent, shape: tuple[int, ...], hull: bool = False) -> np.ndarray:
    """The region where the grid was measured (tile squares), on the orientation raster. `hull`: with
    all they enclose (`_sheet_rows`)."""
    m = np.zeros(shape[:2], np.uint8)
    half = 0.5 * TILE_MM + PAPER_MARGIN_MM
    corners = []
    for x, y in tiles_mm:
        x0, y0 = int((x - half - e.x0) * ORIENT_PPM), int((y - half - e.y0) * ORIENT_PPM)
        x1, y1 = int((x + half - e.x0) * ORIENT_PPM), int((y + half - e.y0) * ORIENT_PPM)
        m[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = 1
        corners += [(x0, y0), (x1, y0), (x0, y1), (x1, y1)]
    if hull and len(corners) >= 3:
        cv2.fillConvexPoly(m, cv2.convexHull(np.array(corners, np.int32)), 1)
    return m > 0


def grid_x_phase(image: np.ndarray, page_map: PageMap) -> tuple[float, float] | None:
    """(a, b): the map's paper-x error as a + b x mm, read from where the 1 mm grid lines land on the
    rectified page; None when the grid has no colour, is too faint, or the blocks disagree (a photo's
    local errors are not a line in x).

    The grid tiles' phases carry the trace's and labels' ink too; the chroma of a coloured grid does not.
    """
    if image.ndim != 3:
        return None
    page = canonical_page(image, page_map, PHASE_PPM).image
    if page.ndim != 3:
        return None
    prof = chroma_columns(page)
    x = (np.arange(prof.size) + 0.5) / PHASE_PPM[0]
    centres, phases = [], []
    for blk in np.array_split(np.arange(prof.size), PHASE_BLOCKS):
        p = prof[blk] - prof[blk].mean()
        c = np.sum(p * np.exp(-2j * np.pi * x[blk]))  # lines at x = k + d give angle -2 pi d
        if abs(c) < PHASE_MIN_CONTRAST * max(float(np.abs(p).sum()), 1e-9):
            return None
        centres.append(float(x[blk].mean()))
        phases.append(float(-np.angle(c) / (2 * np.pi)))
    ph = np.array(phases) - GRID_SHIFT_MM  # the lines' place on paper is k + GRID_SHIFT_MM
    ref = float(np.angle(np.mean(np.exp(2j * np.pi * ph))) / (2 * np.pi))  # circular mean, in (-0.5, 0.5]
    ph = (ph - ref + 0.5) % 1.0 - 0.5 + ref  # every block in the period around it
    b, a = np.polyfit(centres, ph, 1)
    fit = a + b * np.array(centres)
    if np.sqrt(np.mean((ph - fit) ** 2)) > PHASE_MAX_RMS_MM or np.abs(fit).max() > PHASE_MAX_MM:
        return None
    return float(a), float(b)


def _worst_row_mm(rows: Rows, layout: PageLayout, ty: float) -> float:
    """How far (mm) the detected row farthest from any template baseline lies from it, after the snap."""
    ref = np.array(layout.row_baselines())
    return float(np.abs((rows.centres + ty)[:, None] - ref[None, :]).min(axis=1).max())


WIDER_FIT_RMS_MM = 0.05  # a round over the whole image is kept at up to twice the fit error, or this


def _found_rows(
    work: np.ndarray,
    res: RefineResult,
    scale: float,
    turn: int,
    path: str | Path | None,
    diag: dict[str, Any],
    size: tuple[int, int],
) -> tuple[Extent, np.ndarray, Orientation, Rows, np.ndarray]:
    """Orientation and rows on an ink raster of the grid region of `res`: (the raster's extent, the paper
    the rows were read on (the raster's valid part where the grid was measured, or all the measured tiles
    enclose: `_sheet_rows`), the orientation, the rows on the cart's pitch (`on_pitch`), the upright ink
    mask). `size`: the input image's (width, height) px; raises GridWithoutRows (the grid's plane) when no
    row is found."""
    fmap, ext = res.fmap, res.extent
    e = Extent(
        ext.x0 - PAPER_MARGIN_MM, ext.y0 - PAPER_MARGIN_MM, ext.x1 + PAPER_MARGIN_MM, ext.y1 + PAPER_MARGIN_MM
    ).clipped()
    rgb_r = rectify(work, fmap, e, ORIENT_PPM, border=255.0)
    valid = rectify(np.full(work.shape[:2], 255, np.uint8), fmap, e, ORIENT_PPM, border=0.0) > 128
    any_r, ink_r = darkness(rgb_r, int(3 * ORIENT_PPM) | 1)
    # how coloured each pixel is (0..1): on a coloured grid as dark as the trace, the trace is the grey ink
    chroma = (any_r.astype(np.float32) - ink_r.astype(np.float32)) * (1 / 255)
    paper = valid & _paper_mask(res.tiles_mm, e, valid.shape)
    # input px per frame mm (the frame's mm are paper mm): a small copy's raster is enlarged from it
    mid = np.array([(e.x0 + e.x1) / 2, (e.y0 + e.y1) / 2])
    in_ppm = float(np.linalg.norm(fmap.mm_to_px(mid + [1.0, 0]) - fmap.mm_to_px(mid))) / scale
    coarse = in_ppm < COARSE_PPM
    diag["coarse"] = coarse
    ori, rows, mask = orient(
        ink_r.astype(np.float32) * (1 / 255), paper, valid, (e.x0, e.y0, e.x1, e.y1), ORIENT_PPM, turn,
        coarse=coarse, chroma=chroma,
    )  # fmt: skip
    sheet = _sheet_rows(ink_r, valid, res.tiles_mm, e, turn, coarse, paper, rows, chroma)
    if sheet is not None:
        paper, (ori, rows, mask) = sheet
        diag["paper_hull"] = True
    if len(rows.centres) < min(ROW_COUNTS):  # no named layout has fewer (`_rows_again`)
        ori, rows, mask, how = _rows_again(ink_r, paper, valid, e, turn, coarse, (ori, rows, mask))
        if how:
            diag[how] = ROWS_AGAIN[how]
    if len(rows.centres) == 0:
        # the grid's plane is known: a page of boxes turned or photographed may still read upright on it
        shift = np.array([[1.0, 0.0, -ext.x0], [0.0, 1.0, -ext.y0], [0.0, 0.0, 1.0]])
        plane = replace(
            _frame_to_paper_map(fmap, shift, scale, size), paper_mm=(ext.x1 - ext.x0, ext.y1 - ext.y0)
        )
        raise GridWithoutRows(path, plane)
    ext_up = turned_extent(ori.k, (e.x0, e.y0, e.x1, e.y1))  # the upright mask's extent
    rows = on_pitch(rows, mask, ext_up, ORIENT_PPM, np.rot90(valid, k=-ori.k))
    for key in ("rows_added", "rows_dropped", "rows_off_pitch", "rows_filled"):
        if key in rows.extras:
            diag[key] = rows.extras[key]
    return e, paper, ori, rows, mask


def _sheet_rows(
    ink_r: np.ndarray,
    valid: np.ndarray,
    tiles_mm: np.ndarray,
    e: Extent,
    turn: int,
    coarse: bool,
    paper: np.ndarray,
    rows: Rows,
    chroma: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[Orientation, Rows, np.ndarray]] | None:
    """The paper as all the measured grid tiles enclose (a sheet is convex) and the orientation and rows
    read on it, when `rows` (read where tiles were measured, `paper`) are no named layout's count and
    these are, none closer than a page's rows stand (LATTICE_MIN_PITCH_MM); else None. Tiles left out
    between measured ones (a block of dense rows, tiles the fit took for outliers) masked their rows'
    traces and pulses (validation lowres 6x2+II_004: two rows of seven read). Only then: a page of boxes
    has its grid in the boxes alone, and the paper between them holds names and box edges that the row
    finder is not meant to see (validation 0006 panels-12x1_005)."""
    if len(rows.centres) in ROW_COUNTS:
        return None
    sheet = valid & _paper_mask(tiles_mm, e, valid.shape, hull=True)
    if sheet.sum() <= paper.sum():
        return None
    again = orient(
        ink_r.astype(np.float32) * (1 / 255), sheet, valid, (e.x0, e.y0, e.x1, e.y1), ORIENT_PPM, turn,
        coarse=coarse, chroma=chroma,
    )  # fmt: skip
    c = np.sort(again[1].centres)
    named = len(c) in ROW_COUNTS and float(np.diff(c).min()) >= LATTICE_MIN_PITCH_MM
    return (sheet, again) if named else None


def whole_image_round(
    dark: np.ndarray, res: RefineResult, ransac_mm: float, dots: bool, fine: bool = False
) -> RefineResult | None:
    """One more refine round over the whole image where the tiles' extent stops a tile or more short of
    it, kept when it measures more tiles about as well. The extent grows a tile a round from the coarse
    round's tiles: a page whose top rows' tall complexes hid the grid from that round kept its top out
    (ECG-Image-Kit 12x1 page, QRS across rows: 9 of 12 rows found, the page placed 30-45 mm off).
    `fine`: `res` is a fine round's (bent paper): the round is fine too, so that its tiles are counted
    against tiles of their own size (a coarse tile covers four fine ones: a bent photo whose fine rounds
    stopped short of its last row never took the wider round)."""
    whole = _first_extent(res.fmap.h, res.tiles_mm, dark.shape)
    if _beyond(whole, res.extent) < TILE_MM:
        return None
    if fine:
        r = refine(
            dark, res.fmap, whole, tile_mm=FINE_TILE_MM, step_mm=FINE_TILE_MM / 2, ransac_mm=FINE_RANSAC_MM,
            max_jump_mm=FINE_MAX_JUMP_MM, dots=dots,
        )  # fmt: skip
    else:
        r = refine(dark, res.fmap, whole, ransac_mm=ransac_mm, dots=dots)
    if r is None or r.n_tiles <= res.n_tiles or r.fit_rms_mm > max(2 * res.fit_rms_mm, WIDER_FIT_RMS_MM):
        return None
    return r


def _beyond(outer: Extent, inner: Extent) -> float:
    """How far (mm) `outer` reaches past `inner` on its farthest side."""
    return max(inner.x0 - outer.x0, inner.y0 - outer.y0, outer.x1 - inner.x1, outer.y1 - inner.y1)


def onto_paper(baselines: list[float]) -> float:
    """How far (whole 5 mm periods, keeping the grid's phase) rows whose first baseline lies above the
    paper move down to stand half a pitch below its top edge; 0 when every baseline is on the paper."""
    top = min(baselines)
    if top >= 0.0 or len(baselines) < 2:
        return 0.0
    half = float(np.median(np.diff(sorted(baselines)))) / 2
    return float(5.0 * np.ceil((half - top) / 5.0))


def _measured_layout(
    name: str, rows: Rows, tx: float, ty: float, pulse_mm: float | None = None
) -> PageLayout:
    """A layout of the recognised kind, with the baselines and row extent measured on the page (the rows
    start `pulse_mm` right of their pulses' left edges: measured, else a standard 5 mm pulse)."""
    base = list(rows.centres + ty)
    has_pulse = bool(rows.pulse.mean() > 0.5) or pulse_mm is not None
    width = pulse_mm if pulse_mm is not None else STANDARD_WIDTH_MM
    x0 = float(np.median(rows.left) + tx) + (width if has_pulse else 0.0)
    return make_layout(name, baselines_mm=base, x0_mm=x0, pulse=has_pulse, pulse_width_mm=width)
