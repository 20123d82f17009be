"""Panel pages in photos, on screens and turned: the boxes read on the page made upright first.

The panel reader (`panels.find_panels`) reads boxes from long ruled lines, so it needs a page whose
lines run along the image axes. A photographed, turned or skewed panel page does not give it one; the
page-wide grid fit does find such a page's plane (its homography: the local lattice directions and
perspective are right even where the boxes' separate lattices bend its residual), so the image is
resampled through that homography alone onto an upright raster, lit evenly (a photo's shading is not
ink), cut to the paper (a desk or a screen's frame is not ruled lines), and read there, each quarter turn
in turn: the page-wide fit's turn first, then its half turn (a 3x4 grid of boxes with a strip under it
reads only one way up), then the quarter turns. The boxes' reading is the map of the whole chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ecgml.geometry.panels import PanelPage, count_boxes, find_panels
from ecgml.page import PageMap, apply_homography

COARSE_LONG_SIDE = 800  # the paper is found on a raster this size first
RASTER_LONG_SIDE = (1100, 2300)  # the raster keeps the image's detail, within these sizes (px)
MAX_EXTENT_MM = 600.0  # the raster covers at most this much paper around the page's centre
MAX_LEVEL_DEG = 12.0  # the homography's remaining turn and shear are levelled up to this much
FLAT_MM = 4.0  # the paper's brightness is the local maximum over this size (a grid square, a trace)
TURNS = (0, 2, 1, 3)  # quarter turns tried, in this order
PAPER_LEVEL = 250.0  # the paper after even lighting, and what lies outside it


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
    """A raster's local paper brightness as a gain to PAPER_LEVEL, where its paper lies, and that region's
    box (x0, y0, x1, y1) in raster px."""

    gain: np.ndarray  # float32, per px
    paper: np.ndarray  # bool, per px
    box: tuple[int, int, int, int]

    def apply(self, image: np.ndarray) -> np.ndarray:
        """`image` (RGB or one channel, the raster's size) lit evenly, PAPER_LEVEL outside the paper."""
        gain = self.gain[..., None] if image.ndim == 3 else self.gain
        even = np.clip(image.astype(np.float32) * gain, 0, 255)
        even[~self.paper] = PAPER_LEVEL  # as bright as the paper: no ink, and the paper stays the paper level
        return even.astype(np.uint8)


def _lighting(raster: np.ndarray, valid: np.ndarray, ppm: float) -> _Lighting | None:
    """The paper of `raster` (RGB): its local brightness, the largest bright region inside the image (the
    paper) and its box; None when no region stands out."""
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
    return _Lighting(PAPER_LEVEL / np.maximum(bg, 1.0), paper, box)


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


def panels_rectified(image: np.ndarray, page_map: PageMap) -> RectifiedPanels | None:
    """The panel page in `image` read on the raster `page_map`'s homography makes upright (see the
    module's doc); None when no turn of it reads as a page of boxes."""
    hom = page_map.homography
    h, w = image.shape[:2]
    corners = np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])
    mm = apply_homography(np.linalg.inv(hom), corners)
    centre = np.array(page_map.paper_mm) / 2.0
    lo = np.maximum(mm.min(axis=0), centre - MAX_EXTENT_MM / 2)
    hi = np.minimum(mm.max(axis=0), centre + MAX_EXTENT_MM / 2)
    if np.any(hi - lo < 20.0):
        return None
    # the paper first, on a coarse raster of everything the image shows
    coarse_ppm = COARSE_LONG_SIDE / float((hi - lo).max())
    raster, valid, _ = _raster(image, hom, lo, hi, coarse_ppm)
    light = _lighting(raster, valid, coarse_ppm)
    if light is None:
        return None
    x0, y0, x1, y1 = light.box
    lo, hi = lo + np.array([x0, y0]) / coarse_ppm, lo + np.array([x1, y1]) / coarse_ppm
    # then the paper at as many px per mm as the image has there (within RASTER_LONG_SIDE)
    ends = apply_homography(hom, np.array([centre, centre + [1.0, 0.0]]))
    native = float(np.linalg.norm(ends[1] - ends[0])) * float((hi - lo).max())
    ppm = float(np.clip(native, *RASTER_LONG_SIDE)) / float((hi - lo).max())
    raster, valid, m = _raster(image, hom, lo, hi, ppm)
    light = _lighting(raster, valid, ppm)
    if light is None:
        return None
    # a half turn keeps the boxes' rows: one look along each axis says whether any turn holds boxes
    # (a page with one ruled area, every page-wide grid, stops here). The count reads only each px's
    # darkest channel, and lighting commutes with taking it (one gain for all three channels, clipping
    # and rounding keep order): that one channel lit gives the count of the lit page at a third the cost
    dark = light.apply(_darkest(raster))
    boxes = {0: count_boxes(dark), 1: count_boxes(np.ascontiguousarray(np.rot90(dark, 1)))}
    if max(boxes.values()) < 2:
        return None
    crop = light.apply(raster)
    ch, cw = crop.shape[:2]
    for k in TURNS:
        if boxes[k % 2] < 2:
            continue
        turned = np.ascontiguousarray(np.rot90(crop, k))
        found = find_panels(turned, MAX_LEVEL_DEG, level=True)
        if found is None:
            continue
        # panel mm -> turned px -> raster px -> input px
        chain = m @ _quarter(k, cw, ch) @ found.page_map.homography
        pm = PageMap(chain / chain[2, 2], (w, h), found.page_map.paper_mm)
        diag = {"rectified": {"turn": k, "raster_px_per_mm": round(ppm, 3), "raster": [cw, ch]}}
        return RectifiedPanels(pm, found, diag)
    return None
