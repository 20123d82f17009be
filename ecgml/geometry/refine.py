"""Refine a coarse frame to sub-0.1 mm: measure the grid's phase tile by tile on the rectified image.

In the rectified raster the grid is nearly axis-aligned with a nearly known spacing, so the position of
the 5 mm comb (with its 1 mm minor lines) in each 20 mm tile is one correlation of the tile's median
projection with the comb's harmonics. Medians along the lines drop the trace and text (they cross a
column of the tile only briefly). The phases, unwrapped over the tile graph, say where the grid lines
really are; a homography plus a smooth residual is fitted to them. Frame coordinates after refinement
put grid lines at multiples of 5 mm on both axes.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter, label

from ecgml.page import apply_homography, sample_grid

RECT_PPM = 5.0  # px/mm of the raster the phases are measured on
TILE_MM = 20.0
STEP_MM = 10.0
HARMONICS = 12  # k / 5 mm, k = 1..12 (5, 10 = the 1 mm minor lines; below the raster's Nyquist)
MIN_TILE_CONF = 0.4
# a grid of dots is measured on the dots alone: ink blobs wider or taller than this (trace, text) are
# dropped, and ink is what is darker than this share of the raster's darkest 1 %
DOT_MAX_MM = 1.2
DOT_INK_SHARE = 0.35
MAX_EXTENT_MM = 420.0
MAP_STEP = 8
MAX_REGIONS = 3  # connected regions of good tiles tried as the unwrapping's domain (largest first)
# smoothing of the measured residual, in tile steps (also in fine rounds: 0.7 fit crumpled maps closer
# but read worse end to end: `git show 00a57bb:BENCHMARKS.md`, "Page geometry")
RESIDUAL_SIGMA = 1.0
# a smaller rms departure of the tiles from the homography is their phase noise (flat scans 0.015-0.03 mm,
# screens 0.04-0.1; fitted, it moved traces by up to ±0.03 mm along a row); photos of paper 0.3-1
RESIDUAL_MIN_RMS_MM = 0.1


@dataclass
class FrameMap:
    """frame mm -> px: homography then a residual sampled on a regular grid (origin, step) in frame mm."""

    h: np.ndarray
    residual: np.ndarray | None = None  # (gy, gx, 2) px
    origin: tuple[float, float] = (0.0, 0.0)
    step: float = STEP_MM

    def residual_at(self, mm: np.ndarray) -> np.ndarray:
        if self.residual is None:
            return np.zeros_like(mm)
        gx = (mm[..., 0] - self.origin[0]) / self.step
        gy = (mm[..., 1] - self.origin[1]) / self.step
        return sample_grid(self.residual, gx, gy)

    def mm_to_px(self, mm: np.ndarray) -> np.ndarray:
        mm = np.asarray(mm, dtype=np.float64)
        return apply_homography(self.h, mm) + self.residual_at(mm)


@dataclass
class Extent:
    x0: float
    y0: float
    x1: float
    y1: float

    def clipped(self) -> Extent:
        cx, cy = (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2
        hw = min(self.x1 - self.x0, MAX_EXTENT_MM) / 2
        hh = min(self.y1 - self.y0, MAX_EXTENT_MM) / 2
        return Extent(cx - hw, cy - hh, cx + hw, cy + hh)


def rectify(img: np.ndarray, fmap: FrameMap, ext: Extent, ppm: float, border: float = -1.0) -> np.ndarray:
    """Sample `img` on the frame raster of `ext` at `ppm` px/mm (pixel centres at (i + 0.5) / ppm)."""
    w = int(round((ext.x1 - ext.x0) * ppm))
    h = int(round((ext.y1 - ext.y0) * ppm))
    if fmap.residual is None:
        s = np.array([[1 / ppm, 0, ext.x0 + 0.5 / ppm], [0, 1 / ppm, ext.y0 + 0.5 / ppm], [0, 0, 1]])
        shift = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
        m = shift @ fmap.h @ s
        bv = border if img.ndim == 2 else (border,) * img.shape[2]
        return cv2.warpPerspective(
            img,
            m,
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=bv,
        )
    # the map is smooth: evaluate it every MAP_STEP raster px and interpolate (exact for the homography
    # part up to the interpolation of its curvature, far below 0.01 px at these steps)
    # node i sits at raster px (i - 1) * STEP + (STEP - 1) / 2, which is where cv2.resize by STEP puts it
    gw, gh = w // MAP_STEP + 3, h // MAP_STEP + 3
    xs = ext.x0 + ((np.arange(gw) - 1) * MAP_STEP + (MAP_STEP - 1) / 2 + 0.5) / ppm
    ys = ext.y0 + ((np.arange(gh) - 1) * MAP_STEP + (MAP_STEP - 1) / 2 + 0.5) / ppm
    gx, gy = np.meshgrid(xs, ys)
    px = (fmap.mm_to_px(np.stack([gx, gy], -1)) - 0.5).astype(np.float32)
    big = (gw * MAP_STEP, gh * MAP_STEP)
    mapx = cv2.resize(px[..., 0], big, interpolation=cv2.INTER_LINEAR)[
        MAP_STEP : MAP_STEP + h, MAP_STEP : MAP_STEP + w
    ]
    mapy = cv2.resize(px[..., 1], big, interpolation=cv2.INTER_LINEAR)[
        MAP_STEP : MAP_STEP + h, MAP_STEP : MAP_STEP + w
    ]
    bv = border if img.ndim == 2 else (border,) * img.shape[2]
    return cv2.remap(img, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=bv)


def _comb_shift(profiles: np.ndarray, u0: np.ndarray, ppm: float) -> tuple[np.ndarray, np.ndarray]:
    """Shift (mm, in [0, 5)) of the 5 mm comb in each profile row, and a [0, 1] confidence.

    `profiles` (n, L) sampled at u = u0 + (i + 0.5) / ppm mm.
    """
    n, length = profiles.shape
    p = profiles - profiles.mean(axis=1, keepdims=True)
    p = p * np.hanning(length)[None, :]
    ks = np.arange(1, HARMONICS + 1)
    # exp(-2 pi i k u / 5) splits into a per-profile phase (u0) and a (L, k) basis shared by all
    # profiles: one real matrix product instead of an (n, L, k) complex exponential
    arg = (2 * np.pi / 5.0) * ((np.arange(length) + 0.5) / ppm)[:, None] * ks[None, :]
    q = p @ np.concatenate([np.cos(arg), -np.sin(arg)], axis=1)
    c = (q[:, :HARMONICS] + 1j * q[:, HARMONICS:]) * np.exp(-2j * np.pi * ks[None, :] * u0[:, None] / 5.0)
    grid = np.linspace(0, 5, 500, endpoint=False)
    e = np.exp(2j * np.pi * ks[:, None] * grid[None, :] / 5.0)
    s = np.concatenate([c.real, c.imag], axis=1) @ np.concatenate([e.real, -e.imag])  # Re(c @ e)
    rows = np.arange(n)
    j = np.argmax(s, axis=1)
    a, b, cc = s[rows, j - 1], s[rows, j], s[rows, (j + 1) % 500]
    den = a - 2 * b + cc
    off = np.where(den < 0, 0.5 * (a - cc) / np.where(den < 0, den, -1), 0.0)
    shift = (grid[j] + off * (5 / 500)) % 5
    # phase agreement of the harmonics (1 for a clean comb) times the share of the profile's energy
    # that sits in them (Parseval; a random texture puts only a few % there, a grid most of it)
    mag2 = c.real**2 + c.imag**2
    agree = b / np.maximum(np.sqrt(mag2).sum(1), 1e-9)
    share = (2.0 / length) * mag2.sum(1) / np.maximum(np.einsum("nl,nl->n", p, p), 1e-9)
    conf = agree * np.clip(share / 0.4, 0, 1)
    return shift, np.clip(conf, 0, 1)


def _band_medians(a: np.ndarray, starts: np.ndarray, t: int) -> np.ndarray:
    """Medians along axis 1 of a[:, s : s + t] for each start s: (len(starts), a.shape[0]) float32.

    Equal to np.median but on uint8 a stable sort is a radix sort, several times faster than the
    partition np.median does along a strided axis.
    """
    out = np.empty((len(starts), a.shape[0]), np.float32)
    m = t // 2
    for i, s0 in enumerate(starts):
        srt = np.sort(a[:, s0 : s0 + t], axis=1, kind="stable")
        if t % 2:
            out[i] = srt[:, m]
        else:
            out[i] = (srt[:, m - 1].astype(np.float64) + srt[:, m]) * 0.5
    return out


def _band_means(a: np.ndarray, starts: np.ndarray, t: int) -> np.ndarray:
    """Means along axis 1 of a[:, s : s + t] for each start s: (len(starts), a.shape[0]) float32."""
    c = np.concatenate([np.zeros((a.shape[0], 1)), np.cumsum(a, axis=1, dtype=np.float64)], axis=1)
    return ((c[:, starts + t] - c[:, starts]) / t).T.astype(np.float32)


def dots_only(dark_r: np.ndarray, ppm: float) -> np.ndarray:
    """The darkness raster of a dotted grid with every ink blob larger than a dot blanked (set to paper).

    A grid of dots darkens a few % of each line, so its phase is read from means along the lines; there
    a trace row, which runs along a raster row for millimetres, outweighs the dots of that line, and the
    tiles holding the traces lose their phase (validation realworld 3x4_009, a black-and-white copy: the
    tiles stopped above the second of its three rows, and only one row was found)."""
    d = np.asarray(dark_r)
    hi = float(np.percentile(d, 99)) if d.size else 0.0
    if hi <= 0:
        return dark_r
    ink = (d > DOT_INK_SHARE * hi).astype(np.uint8)
    _, lab, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    big = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) > DOT_MAX_MM * ppm
    big[0] = False  # the background
    blank = cv2.dilate(big[lab].astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # and their soft edges
    out = d.copy()
    out[blank] = 0
    return out


def measure_phases(
    dark_r: np.ndarray,
    valid: np.ndarray,
    ext: Extent,
    ppm: float,
    tile_mm: float = TILE_MM,
    step_mm: float = STEP_MM,
    dots: bool = False,
) -> dict[str, np.ndarray]:
    """Grid phase per tile of the rectified darkness: x- and y-shift of the comb (mm) and confidence.

    `dots`: means along the lines instead of medians (a grid of dots darkens a few % of each line:
    its median is the paper's), on the dots alone (`dots_only`)."""
    if dots:
        dark_r = dots_only(dark_r, ppm)
    h, w = dark_r.shape
    t = int(round(tile_mm * ppm))
    st = int(round(step_mm * ppm))
    ny = max(1, (h - t) // st + 1)
    nx = max(1, (w - t) // st + 1)
    out: dict[str, np.ndarray] = {}
    # x: medians down each column of a horizontal band; y: along each row of a vertical band
    band = _band_means if dots else _band_medians
    colmed = band(np.ascontiguousarray(dark_r.T), np.arange(ny) * st, t)
    rowmed = band(dark_r, np.arange(nx) * st, t)
    vi = cv2.integral(valid.astype(np.uint8))
    y0 = (np.arange(ny) * st)[:, None]
    x0 = (np.arange(nx) * st)[None, :]
    fill = (vi[y0 + t, x0 + t] - vi[y0, x0 + t] - vi[y0 + t, x0] + vi[y0, x0]) / float(t * t)
    # tile (i, j): the x-profile is colmed[i, j*st : j*st+t], the y-profile rowmed[j, i*st : i*st+t]
    win_x = (np.arange(nx) * st)[:, None] + np.arange(t)[None, :]  # (nx, t)
    win_y = (np.arange(ny) * st)[:, None] + np.arange(t)[None, :]  # (ny, t)
    px = colmed[:, win_x].reshape(ny * nx, t)
    py = rowmed[:, win_y].transpose(1, 0, 2).reshape(ny * nx, t)
    ux = np.tile(ext.x0 + np.arange(nx) * st / ppm, ny)
    uy = np.repeat(ext.y0 + np.arange(ny) * st / ppm, nx)
    sx, cx = _comb_shift(px, ux, ppm)
    sy, cy = _comb_shift(py, uy, ppm)
    ok = fill.ravel() > 0.8
    cx[~ok] = 0
    cy[~ok] = 0
    out["dx"], out["dy"] = sx.reshape(ny, nx), sy.reshape(ny, nx)
    out["cx"], out["cy"] = cx.reshape(ny, nx), cy.reshape(ny, nx)
    centres_x = ext.x0 + (np.arange(nx) * st + t / 2) / ppm
    centres_y = ext.y0 + (np.arange(ny) * st + t / 2) / ppm
    out["qx"], out["qy"] = np.meshgrid(centres_x, centres_y)
    return out


def _unwrap(shift: np.ndarray, ok: np.ndarray, conf: np.ndarray, max_jump: float | None = None) -> np.ndarray:
    """Quality-guided unwrapping of mod-5 shifts over the tile grid.

    Starts at the most confident tile near the centre and always extends to the most confident tile
    bordering the unwrapped set, taking the value nearest its unwrapped neighbours' weighted mean,
    so unreliable tiles (background, stains) cannot carry an error into the good ones.

    With `max_jump` (mm; fine rounds) each neighbour predicts along the slope across it (the map being
    refined can be several mm off where the coarse rounds had no tiles, changing ~1 mm per tile), and a
    tile further than `max_jump` from the prediction waits (NaN unless a later neighbour vouches for it):
    a confident but wrong tile (half a period off) would otherwise hand every tile reached through it a
    whole 5 mm slip (seed 12002 of type 0010: a third of the page 5 mm off).
    """
    out = np.full(shift.shape, np.nan)
    if not ok.any():
        return out
    ny, nx = shift.shape
    cy, cx = (ny - 1) / 2, (nx - 1) / 2
    yy, xx = np.mgrid[0:ny, 0:nx]
    prio = np.where(ok, conf - 0.01 * np.hypot(yy - cy, xx - cx) / max(ny, nx), -np.inf)
    seed = tuple(int(v) for v in np.unravel_index(int(np.argmax(prio)), shift.shape))
    out[seed] = shift[seed]
    heap: list[tuple[float, int, int]] = []
    queued = np.zeros_like(ok)
    queued[seed] = True
    nbrs = ((0, 1), (1, 0), (0, -1), (-1, 0))

    def push(i: int, j: int) -> None:
        for di, dj in nbrs:
            a, b = i + di, j + dj
            if 0 <= a < ny and 0 <= b < nx and ok[a, b] and not queued[a, b]:
                queued[a, b] = True
                heapq.heappush(heap, (-float(conf[a, b]), a, b))

    push(*seed)
    while heap:
        _, a, b = heapq.heappop(heap)
        vals, wts = [], []
        for di, dj in nbrs + ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            p, q = a + di, b + dj
            if 0 <= p < ny and 0 <= q < nx and not np.isnan(out[p, q]):
                v = out[p, q]
                p2, q2 = p + di, q + dj
                if max_jump is not None and 0 <= p2 < ny and 0 <= q2 < nx and not np.isnan(out[p2, q2]):
                    v = 2 * v - out[p2, q2]  # follow the slope across the neighbour (frontier lag)
                vals.append(v)
                wts.append(conf[p, q])
        ref = float(np.average(vals, weights=wts))
        value = shift[a, b] + 5 * np.round((ref - shift[a, b]) / 5)
        if max_jump is not None and abs(value - ref) > max_jump:
            queued[a, b] = False  # a neighbour unwrapped later may take it up again
            continue
        out[a, b] = value
        push(a, b)
    return out


def _regions(ok: np.ndarray, conf: np.ndarray) -> list[np.ndarray]:
    """The MAX_REGIONS connected regions of good tiles (4-neighbours, as the unwrapping walks) with
    the most confidence, largest first."""
    lab, n = label(ok)
    mass = np.bincount(lab.ravel(), weights=conf.ravel(), minlength=n + 1)[1:]
    return [lab == 1 + int(i) for i in np.argsort(-mass, kind="stable")[:MAX_REGIONS]]


def _smooth_fill(values: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Normalised Gaussian smoothing that also fills holes (values NaN where weight is 0)."""
    v = np.nan_to_num(values) * weight
    num = gaussian_filter(v, sigma, mode="nearest")
    den = gaussian_filter(weight, sigma, mode="nearest")
    out = num / np.maximum(den, 1e-9)
    # far holes: fall back to a much wider smoothing
    far = den < 0.05 * weight.max()
    if far.any():
        num2 = gaussian_filter(v, sigma * 4, mode="nearest")
        den2 = gaussian_filter(weight, sigma * 4, mode="nearest")
        out[far] = (num2 / np.maximum(den2, 1e-12))[far]
    return out


@dataclass
class RefineResult:
    fmap: FrameMap
    extent: Extent
    n_tiles: int
    tile_conf: float
    fit_rms_mm: float
    residual_rms_mm: float
    tiles_mm: np.ndarray  # (n, 2) frame mm of the tiles whose grid was measured (the paper region)


def refine(
    dark: np.ndarray,
    fmap: FrameMap,
    ext: Extent,
    ppm: float = RECT_PPM,
    keep_residual: bool = True,
    tile_mm: float = TILE_MM,
    step_mm: float = STEP_MM,
    ransac_mm: float = 3.0,
    max_jump_mm: float | None = None,
    dots: bool = False,
) -> RefineResult | None:
    """One round: rectify, measure grid phases, fit homography + smooth residual. Lines land at 5Z mm.

    Smaller tiles (`tile_mm`, `step_mm`) follow crumpled paper more closely but need a map that is
    already close (their phases are unwrapped against fewer grid periods). `dots`: a dotted grid
    (`measure_phases`)."""
    ext = ext.clipped()
    dr = rectify(dark, fmap, ext, ppm, border=0)
    valid = rectify(np.full(dark.shape, 255, np.uint8), fmap, ext, ppm, border=0) > 128
    ph = measure_phases(dr, valid, ext, ppm, tile_mm, step_mm, dots)
    ok = (ph["cx"] > MIN_TILE_CONF) & (ph["cy"] > MIN_TILE_CONF)
    if ok.sum() < 6:
        return None
    conf = np.minimum(ph["cx"], ph["cy"])
    qx, qy = ph["qx"], ph["qy"]
    # the phases unwrap only within a connected region of good tiles (a stain ring or crease can
    # split the page): keep the region whose phases one homography explains best
    best: tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, np.ndarray] | None = None
    for region in _regions(ok, conf):
        ux = _unwrap(ph["dx"], region, conf, max_jump_mm)
        uy = _unwrap(ph["dy"], region, conf, max_jump_mm)
        sel = region & ~np.isnan(ux) & ~np.isnan(uy)
        if sel.sum() < 6:
            continue  # too small for a homography
        q = np.stack([qx[sel], qy[sel]], -1)
        dlt = np.stack([ux[sel], uy[sel]], -1)
        px = fmap.mm_to_px(q)
        scale = _local_scale(fmap, q)
        # the homography takes the bulk (gross outliers out); bends and crumples go to the residual
        hm, inl = cv2.findHomography(q - dlt, px, cv2.RANSAC, ransacReprojThreshold=float(ransac_mm * scale))
        if hm is None or inl.sum() < 6:
            continue
        if best is None or int(inl.sum()) > best[0]:
            best = (int(inl.sum()), sel, q, dlt, px, scale, inl.ravel().astype(bool))
    if best is None:
        return None
    _, sel, q, dlt, px, scale, inl = best
    # put the tile nearest the centre's lattice at the frame's multiples of 5 (only a constant)
    m = q - dlt
    hm, _ = cv2.findHomography(m[inl], px[inl], 0)
    r_px = px - apply_homography(hm, m)
    ny, nx = qx.shape
    res = np.zeros((ny, nx, 2))
    wts = np.zeros((ny, nx))
    idx = np.argwhere(sel)
    for k, (i, j) in enumerate(idx):
        if inl[k]:
            res[i, j] = r_px[k]
            wts[i, j] = conf[i, j]
    # local outliers: a tile whose residual disagrees with its neighbours' median by > 0.4 mm
    good = wts > 0
    for k, (i, j) in enumerate(idx):
        if not inl[k]:
            continue
        i0, i1, j0, j1 = max(0, i - 1), min(ny, i + 2), max(0, j - 1), min(nx, j + 2)
        nb = good[i0:i1, j0:j1].copy()
        nb[i - i0, j - j0] = False
        if nb.sum() >= 3:
            med = np.median(res[i0:i1, j0:j1][nb], axis=0)
            if np.linalg.norm(res[i, j] - med) > 0.4 * scale:
                wts[i, j] = 0.0
                inl[k] = False
    if inl.sum() < 6:
        return None
    rrms = float(np.sqrt(np.mean(np.sum(r_px[inl] ** 2, 1)))) / scale
    resid = None
    if keep_residual and rrms > RESIDUAL_MIN_RMS_MM:
        resid = np.stack([_smooth_fill(res[..., c], wts, RESIDUAL_SIGMA) for c in range(2)], -1).astype(
            np.float32
        )
    # new frame: origin of the residual grid at the first tile centre, in m coordinates
    off = np.median(dlt[inl], axis=0)
    new = FrameMap(hm, resid, (float(qx[0, 0] - off[0]), float(qy[0, 0] - off[1])), step_mm)
    fit_rms = float(np.sqrt(np.mean(np.sum((new.mm_to_px(m[inl]) - px[inl]) ** 2, 1)))) / scale
    # the page reaches beyond the last measured tile centres (a coarse tile's size, whatever the tiles)
    new_ext = Extent(
        float(m[inl, 0].min() - TILE_MM),
        float(m[inl, 1].min() - TILE_MM),
        float(m[inl, 0].max() + TILE_MM),
        float(m[inl, 1].max() + TILE_MM),
    )
    return RefineResult(new, new_ext, int(inl.sum()), float(np.median(conf[sel])), fit_rms, rrms, m[inl])


def _local_scale(fmap: FrameMap, q: np.ndarray) -> float:
    c = q.mean(0)
    a = fmap.mm_to_px(np.array([c, c + [1, 0], c + [0, 1]]))
    return float(np.sqrt(abs(np.cross(a[1] - a[0], a[2] - a[0]))))
