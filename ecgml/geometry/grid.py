"""Find the ECG grid: a coarse millimetre frame from local lattice measurements.

Why local: on photos the grid's direction and spacing change across the image (perspective, bends), so
one global spectrum smears. Each tile of the image gives its two line directions (4-fold structure
tensor of the darkness gradients) and its spacing along each (spectrum of the tile's projection onto the
line normal). The gradient of "paper mm" is then known at every tile; integrating it over the tile graph
and fitting a homography gives a coarse map whose origin, axis labels and signs are still arbitrary
(the "frame"); `refine` and `orient` settle those.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy.ndimage import maximum_filter1d, percentile_filter
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import lsqr

TILE = 128  # px at lattice resolution
TILE_STEP = 96
LATTICE_LONG_SIDE = 1200
LATTICE_LONG_SIDE_PHOTO = 1800  # photos: the page may fill only half the frame
NFFT = 2048  # zero-padded profile length (fine frequency sampling)
MIN_COHERENCE = 0.25  # 4-fold orientation coherence of a tile that holds grid
MIN_PEAK_SNR = 6.0  # spectral peak over the band's median for a tile to count
PAGE_AREA_MM2 = 279.4 * 215.9
# Where the printed grid sits relative to the trace's frame, paper mm right and down: ECG-Image-Kit (the
# generator behind the Kaggle pages, every capture a print of its 200 DPI PNG) draws the grid with
# matplotlib, which snaps each line to the pixel floor(c + 0.5); a line is thus on average half a 200 DPI
# pixel right of / below its nominal place c, while the trace is not snapped. Geometry lands the lines
# there, not on whole mm, or every lead is read 2.5 ms early (issue 15).
GRID_SHIFT_MM = 0.5 * 25.4 / 200


def darkness(img: np.ndarray, ksize: int) -> tuple[np.ndarray, np.ndarray]:
    """(any-channel darkness, all-channel darkness), uint8 0..255, relative to the local paper brightness.

    The first shows coloured grid lines and ink alike; the second keeps neutral ink (traces, text) and
    drops coloured grid lines. The paper level is a max filter wider than any line, so lighting
    gradients and shadows cancel. All in uint8 OpenCV calls (this runs on 12 MP photos).
    """
    k = max(3, ksize | 1)
    bg = cv2.dilate(img, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    bg = cv2.blur(bg, (k, k))
    bg = np.maximum(bg, 16).astype(np.uint8)
    ratio = cv2.divide(img, bg, scale=255)  # 255 = paper
    ch = cv2.split(ratio)
    lo = cv2.min(cv2.min(ch[0], ch[1]), ch[2])
    hi = cv2.max(cv2.max(ch[0], ch[1]), ch[2])
    return 255 - lo, 255 - hi


def luma_darkness(img: np.ndarray, ksize: int) -> np.ndarray:
    """Darkness of the luma (uint8, 255 = black) relative to the local paper level, as `darkness`.

    JPEG codes colour at half resolution in 16 px blocks and luma at full resolution: on a small copy
    the palest channel's darkness carries the block lattice, the luma's the grid lines."""
    y = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    k = max(3, ksize | 1)
    bg = cv2.blur(cv2.dilate(y, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))), (k, k))
    bg = np.maximum(bg, 16).astype(np.uint8)
    return np.asarray(255 - cv2.divide(y, bg, scale=255))


@dataclass
class TileLattice:
    centre: np.ndarray  # (n, 2) px
    normal: np.ndarray  # (n, 2, 2) unit normals of the two line families
    spacing: np.ndarray  # (n, 2) px per 1 mm along each normal (after the global mm decision)
    strength: np.ndarray  # (n,) spectral peak SNR
    grid_ij: np.ndarray  # (n, 2) tile indices
    period: float  # px: the period most tiles measured (1 or 5 mm; before the mm decision)

    @property
    def measured(self) -> bool:
        """Whether a tile holds two periods of the lattice. A longer one (the band reaches 120 px, a
        128 px tile) is no grid's: along the image axes, a wall's noise or a screen's dark surround
        in a photo gives the shading's ~105 px on most tiles, and a frame at 20-30 px per mm."""
        return self.period <= TILE / 2


def _spectrum(profile: np.ndarray) -> np.ndarray:
    p = profile - profile.mean()
    p = p * np.hanning(len(p))
    return np.abs(np.fft.rfft(p, NFFT)) ** 2


@lru_cache(maxsize=8)
def _disc(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat indices and centred x, y of the pixels in the disc inscribed in an (h, w) tile."""
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(xx - w / 2, yy - h / 2) < min(h, w) / 2
    out = (np.flatnonzero(r), (xx - w / 2)[r], (yy - h / 2)[r])
    for a in out:
        a.flags.writeable = False  # shared by every call (cached)
    return out


def _profile(tile: np.ndarray, theta: float) -> np.ndarray:
    """Projection of a tile onto the normal at angle theta, 1 px bins, mean per bin."""
    h, w = tile.shape
    # restrict to the inscribed disc so every bin averages a similar chord
    flat, dx, dy = _disc(h, w)
    u = dx * np.cos(theta) + dy * np.sin(theta)
    b = np.floor(u + w).astype(np.int64)
    s = np.bincount(b, weights=tile.ravel()[flat])
    c = np.bincount(b)
    ok = c > 0
    idx = np.flatnonzero(ok)
    prof = np.interp(np.arange(len(s)), idx, s[ok] / c[ok])
    return prof[idx[0] : idx[-1] + 1]


@dataclass
class _Spec:
    power: np.ndarray
    floor: np.ndarray  # local noise floor (broad low-frequency energy from shading, stains, trace)
    lgm: np.ndarray  # log(1 + power / floor), max-filtered to tolerate each candidate's own error


def _prep(power: np.ndarray) -> _Spec:
    n = len(power)
    coarse = power[::8]
    fl = percentile_filter(coarse, 20, size=33, mode="nearest")  # below a dense comb's peaks
    floor = np.interp(np.arange(n), np.arange(len(coarse)) * 8, fl)
    floor = np.maximum(floor, 1e-3 * float(np.median(power)) + 1e-12)
    lg = np.log1p(power / floor)
    return _Spec(power, floor, maximum_filter1d(lg, size=9))


@lru_cache(maxsize=32)
def _harmonic_index(
    f_lo: float, f_hi: float, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Candidate frequencies and the spectrum bins of their first 5 harmonics (the same for every tile)."""
    cands = np.geomspace(f_lo, f_hi, 700)
    idx = np.round(np.arange(1, 6)[None, :] * cands[:, None] * NFFT).astype(int)
    valid = idx < int(0.45 * NFFT)
    out = (cands, np.minimum(idx, n - 1), valid, valid.sum(1))
    for a in out:
        a.flags.writeable = False  # shared by every call (cached)
    return out


def _fundamental(sp: _Spec, f_lo: float, f_hi: float) -> tuple[float, float]:
    """(f, snr): the lattice's fundamental frequency in cycles per px within [f_lo, f_hi].

    Harmonic scoring: the mean over the first 5 harmonics (below 0.45 cycles/px) of log(1 + S/floor).
    The true fundamental has all of them, a sub-harmonic only every other one.
    """
    n = len(sp.power)
    cands, idx, valid, cnt = _harmonic_index(f_lo, f_hi, n)
    vals = np.where(valid, sp.lgm[idx], 0.0)
    score = np.where(cnt >= 2, vals.sum(1) / np.maximum(cnt, 1), -1.0)
    f = float(cands[int(np.argmax(score))])
    i = int(round(f * NFFT))
    w = 1 + i // 70
    lo = max(1, i - w)
    j = lo + int(np.argmax(sp.power[lo : i + w + 1]))
    jj = float(j)
    if 0 < j < n - 1:  # parabolic refinement of the peak
        a, b, c = (np.log(sp.power[k] + 1e-12) for k in (j - 1, j, j + 1))
        den = a - 2 * b + c
        jj = j + (float(np.clip(0.5 * (a - c) / den, -1, 1)) if den < 0 else 0.0)
    return jj / NFFT, float(sp.power[j] / sp.floor[j])


def _box_sums(a: np.ndarray, ys: np.ndarray, xs: np.ndarray, size: int) -> np.ndarray:
    """Sums of `a` over the size x size boxes with top-left corners (ys[i], xs[j])."""
    ii = cv2.integral(a, sdepth=cv2.CV_64F)
    y0, x0 = ys[:, None], xs[None, :]
    return ii[y0 + size, x0 + size] - ii[y0, x0 + size] - ii[y0 + size, x0] + ii[y0, x0]


def tile_lattice(dark: np.ndarray, axis_prior: bool = False) -> TileLattice | None:
    """Per-tile line directions and spacings (px per mm); None if no tile shows a lattice.

    `dark` is float32 darkness at the lattice resolution (long side ~LATTICE_LONG_SIDE px).
    `axis_prior`: tiles without a clear 4-fold direction are measured along the image axes too. Fine
    lines dense for the lattice raster (a 300 DPI page at ~6 lattice px per mm, blurred scans) and round
    dots have most of their gradient at the crossings, diagonal, where it cancels the lines' own: such a
    page's tiles read 0.05-0.2 coherent although the grid is plain (and a scan's is near the axes).
    """
    h, w = dark.shape
    gx = cv2.Sobel(dark, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(dark, cv2.CV_32F, 0, 1, ksize=3)
    mag = gx * gx + gy * gy
    phi = np.arctan2(gy, gx)
    c4, s4 = mag * np.cos(4 * phi), mag * np.sin(4 * phi)
    step = TILE_STEP
    ny, nx = max(1, (h - TILE) // step + 1), max(1, (w - TILE) // step + 1)
    oy, ox = max(0, (h - ((ny - 1) * step + TILE)) // 2), max(0, (w - ((nx - 1) * step + TILE)) // 2)
    ys = oy + step * np.arange(ny)
    xs = ox + step * np.arange(nx)
    size = min(TILE, h - ys.max(), w - xs.max())
    msum = _box_sums(mag, ys, xs, size)
    zc = _box_sums(c4, ys, xs, size)
    zs = _box_sums(s4, ys, xs, size)
    coh = np.hypot(zc, zs) / np.maximum(msum, 1e-9)
    raw = []
    take = (coh >= MIN_COHERENCE) | axis_prior
    for iy, ix in np.argwhere(take & (msum > 1e-6)):
        y0, x0 = int(ys[iy]), int(xs[ix])
        sl = (slice(y0, y0 + size), slice(x0, x0 + size))
        th0 = np.arctan2(zs[iy, ix], zc[iy, ix]) / 4 if coh[iy, ix] >= MIN_COHERENCE else 0.0
        # refine each family separately (under perspective they are not exactly perpendicular)
        ths = []
        p = phi[sl]
        mm = mag[sl]
        for base in (th0, th0 + np.pi / 2):
            d = np.angle(np.exp(2j * (p - base))) / 2  # in (-pi/2, pi/2]
            sel = np.abs(d) < np.pi / 8
            ths.append(base + float(np.angle(np.sum(mm[sel] * np.exp(2j * d[sel])))) / 2)
        raw.append((iy, ix, x0 + size / 2, y0 + size / 2, ths, sl))
    if not raw:
        return None
    # Spacing: spectra of the projections; frequency band from a loose page-size prior.
    spectra = []
    for _iy, _ix, _cx, _cy, ths, sl in raw:
        t = dark[sl]
        spectra.append([_prep(_spectrum(_profile(t, th))) for th in ths])
    return _decide_lattice(raw, spectra, dark.shape)


def _decide_lattice(raw: list, spectra: list, shape: tuple[int, int]) -> TileLattice | None:
    """Pick the lattice period per tile, decide whether it is 1 mm or 5 mm, keep consistent tiles.

    A tile's strongest comb is either the 5 mm major period (majors distinct from minors) or 1 mm
    (minors only, or majors not distinct) or 5 mm with no minors visible at all. What decides is the
    size of the grid in periods: a page is about 50 major periods across, 250 minor ones.
    """
    f_lo, f_hi = 1 / 120.0, 0.42  # periods from 2.4 px to 120 px
    first = []
    for (iy, ix, *_), sp in zip(raw, spectra, strict=True):
        for spec in sp:
            f, snr = _fundamental(spec, f_lo, f_hi)
            if snr >= MIN_PEAK_SNR and f > 0:
                first.append((iy, ix, 1 / f))
    if len(first) < 4:
        return None
    logp = np.log([p for *_, p in first])
    hist, edges = np.histogram(logp, bins=np.arange(np.log(2.0), np.log(130.0), 0.08))
    hist = np.convolve(hist, [1, 2, 1], mode="same")
    mode = float(np.exp(0.5 * (edges[np.argmax(hist)] + edges[np.argmax(hist) + 1])))
    near = [(iy, ix) for iy, ix, p in first if min(abs(np.log(p / mode / k)) for k in (1, 5, 0.2)) < 0.15]
    if len(near) < 4:
        return None
    tiles = {t for t in near}
    area_px = len(tiles) * TILE_STEP**2
    periods_across = np.sqrt(area_px) / mode
    page_periods_5mm = np.sqrt(PAGE_AREA_MM2) / 5.0  # ~49
    # geometric middle between "5 mm" (~49 across a whole page) and "1 mm" (~245), allowing partial pages
    is_1mm = periods_across > 1.6 * page_periods_5mm
    good = [mode / 1.0] if is_1mm else [mode / 5.0]
    med_ppm = float(np.median(good))
    # second pass: each tile's spacing searched only near the global value (no octave errors)
    b5 = (1 / (5 * med_ppm * 1.35), 1 / (5 * med_ppm / 1.35))
    b1 = (1 / (med_ppm * 1.35), min(1 / (med_ppm / 1.35), 0.45))
    cand = []
    for (iy, ix, cx, cy, ths, _sl), sp in zip(raw, spectra, strict=True):
        fam = []
        for th, spec in zip(ths, sp, strict=True):
            f, snr = _fundamental(spec, *b5)
            ppm = 1 / (5 * f) if f > 0 else 0.0
            if snr < MIN_PEAK_SNR and b1[0] < 0.45:
                f1, snr1 = _fundamental(spec, *b1)
                if snr1 >= MIN_PEAK_SNR and f1 > 0:
                    snr, ppm = snr1, 1 / f1
            fam.append((th, ppm, snr))
        if min(fam[0][2], fam[1][2]) >= MIN_PEAK_SNR:
            cand.append((iy, ix, cx, cy, fam))
    # neighbour consistency: a tile's spacings within 12 % of its neighbours' median
    where = {(c[0], c[1]): c for c in cand}
    out_c, out_n, out_s, out_w, out_ij = [], [], [], [], []
    for iy, ix, cx, cy, fam in cand:
        mine = np.array([fam[0][1], fam[1][1]])
        nb = [
            np.mean([where[(iy + dy, ix + dx)][4][0][1], where[(iy + dy, ix + dx)][4][1][1]])
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if (dy or dx) and (iy + dy, ix + dx) in where
        ]
        if len(nb) >= 2 and abs(np.log(mine.mean() / np.median(nb))) > np.log(1.12):
            continue
        if abs(np.log(mine[0] / mine[1])) > np.log(1.5):
            continue
        nrm = np.array([[np.cos(th), np.sin(th)] for th, *_ in fam])
        out_c.append((cx, cy))
        out_n.append(nrm)
        out_s.append(mine)
        out_w.append(min(fam[0][2], fam[1][2]))
        out_ij.append((iy, ix))
    if len(out_c) < 4:
        return None
    return TileLattice(
        np.array(out_c, float),
        np.array(out_n, float),
        np.array(out_s, float),
        np.array(out_w, float),
        np.array(out_ij, int),
        mode,
    )


# tiles holding traces or text often drop out: link tiles up to two steps apart
_NEIGHBOURS = tuple((dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if (dy, dx) != (0, 0))


@dataclass
class CoarseFrame:
    """The coarse map: homography frame mm -> px, the tiles it fits (mask), and every integrated tile."""

    h: np.ndarray
    mask: np.ndarray  # (n,) tiles of the lattice the homography fits (RANSAC inliers)
    mm: np.ndarray  # (m, 2) frame mm of every tile reached by the integration (inliers or not)
    px: np.ndarray  # (m, 2) their centres, lattice px


def denser_frame(frame: CoarseFrame, k: float) -> CoarseFrame:
    """`frame` with its grid taken `k` times as dense: the same tiles and image points, each at 1/k the
    frame mm (a lattice that settled on every other line of the grid, read at its true density)."""
    return CoarseFrame(frame.h @ np.diag([k, k, 1.0]), frame.mask, frame.mm / k, frame.px)


def coarse_frame(lat: TileLattice) -> CoarseFrame | None:
    """Homography frame-mm -> px from the lattice field, the tiles it fits, and the integrated tiles.

    Labels the two families consistently by growing from the strongest tile (each tile takes the
    labelling nearest its labelled neighbour), then integrates the mm gradients over the tile graph.
    The integration follows a bent page where no homography does (a crumpled page's far third can be
    20-30 mm off the homography fitted to the rest, 2-5 mm off the integration): `bend_residual` keeps it.
    """
    n = len(lat.centre)
    index = {tuple(ij): k for k, ij in enumerate(lat.grid_ij)}
    seed = int(np.argmax(lat.strength))
    normals = lat.normal.copy()
    spacing = lat.spacing.copy()
    done = np.zeros(n, bool)
    done[seed] = True
    # make the seed's x-family the more horizontal normal (arbitrary but tidy), sign positive
    if abs(normals[seed, 0, 0]) < abs(normals[seed, 1, 0]):
        normals[seed] = normals[seed][::-1]
        spacing[seed] = spacing[seed][::-1]
    for f in range(2):
        if normals[seed, f] @ (np.array([1.0, 0]) if f == 0 else np.array([0, 1.0])) < 0:
            normals[seed, f] *= -1
    queue = deque([seed])
    edges = []
    while queue:
        k = queue.popleft()
        iy, ix = lat.grid_ij[k]
        for dy, dx in _NEIGHBOURS:
            j = index.get((iy + dy, ix + dx))
            if j is None:
                continue
            if not done[j]:
                nj = normals[j]
                if abs(nj[0] @ normals[k, 0]) < abs(nj[1] @ normals[k, 0]):
                    normals[j] = nj[::-1].copy()
                    spacing[j] = spacing[j][::-1].copy()
                for f in range(2):
                    if normals[j, f] @ normals[k, f] < 0:
                        normals[j, f] *= -1
                if abs(normals[j, 0] @ normals[k, 0]) < np.cos(np.radians(12)):
                    continue  # inconsistent direction: leave this tile out
                done[j] = True
                queue.append(j)
            if k < j or not done[k]:
                edges.append((k, j))
    used = np.flatnonzero(done)
    if len(used) < 4:
        return None
    pos: dict[int, int] = {int(k): i for i, k in enumerate(used)}
    # gradient of frame mm wrt px per tile: rows = normal / spacing
    grad = normals / spacing[..., None]
    rows, cols, vals, rhs = [], [], [], []
    r = 0
    for a, b in edges:
        if a not in pos or b not in pos or not (done[a] and done[b]):
            continue
        g = 0.5 * (grad[a] + grad[b])
        dm = g @ (lat.centre[b] - lat.centre[a])
        for c in range(2):
            rows += [r, r]
            cols += [2 * pos[b] + c, 2 * pos[a] + c]
            vals += [1.0, -1.0]
            rhs.append(dm[c])
            r += 1
    # anchor the seed at 0
    for c in range(2):
        rows.append(r)
        cols.append(2 * pos[seed] + c)
        vals.append(1.0)
        rhs.append(0.0)
        r += 1
    a_mat = coo_matrix((vals, (rows, cols)), shape=(r, 2 * len(used))).tocsr()
    sol = lsqr(a_mat, np.array(rhs), atol=1e-10, btol=1e-10)[0]
    mm = sol.reshape(-1, 2)
    px = lat.centre[used]
    thr = 3.0 * float(np.median(spacing[used]))  # 3 mm in px
    h, inl = cv2.findHomography(mm.astype(np.float64), px.astype(np.float64), cv2.RANSAC, thr)
    if h is None or inl is None or inl.sum() < 4:
        return None
    keep = inl.ravel().astype(bool)
    h, _ = cv2.findHomography(mm[keep].astype(np.float64), px[keep].astype(np.float64), 0)
    if h is None:
        return None
    mask = np.zeros(n, bool)
    mask[used[keep]] = True
    return CoarseFrame(h, mask, mm, px)


BEND_STEP_MM = 10.0  # node spacing of the residual grid the integrated lattice gives
BEND_SIGMA_MM = 12.0  # smoothing of the tiles' residuals (tiles lie ~20 mm apart)
BEND_MIN_MM = 1.5  # a homography explains the tiles within this (rms): the page is flat enough
BEND_OUTLIER_MM = 3.0  # a tile this far from its neighbours' residual is a measuring error
# fewer tiles than this measure no bend: a page small in a small photo gives 20-35 lattice tiles, each
# about 35 mm across, and its 'bend' read the far half of 0010 seed 12017 up to 27 mm off (2.4 without)
BEND_MIN_TILES = 48


def bend_residual(
    cf: CoarseFrame, h: np.ndarray, scale: tuple[float, float]
) -> tuple[np.ndarray, tuple[float, float], float] | None:
    """Residual grid (gy, gx, 2 px; origin frame mm; step BEND_STEP_MM) that carries the homography `h`
    (frame mm -> px at `scale` times the lattice px) onto the integrated tiles; None for a flat page.

    Crumpled and curled photos bend beyond what a homography fitted to part of the page extrapolates:
    the refinement's tiles unwrap only where the map is within half a 5 mm period, so without this the
    far part of the page is never measured and its pulses and row ends are lost (type 0010).
    """
    px = cf.px * np.asarray(scale)
    mm = cf.mm
    if len(mm) < BEND_MIN_TILES:
        return None
    ph = np.concatenate([mm, np.ones((len(mm), 1))], 1) @ h.T
    r = px - ph[:, :2] / ph[:, 2:3]
    c = np.array([[*mm.mean(0), 1.0], [*(mm.mean(0) + [1, 0]), 1.0], [*(mm.mean(0) + [0, 1]), 1.0]]) @ h.T
    c = c[:, :2] / c[:, 2:3]
    ppm = float(np.sqrt(abs(np.cross(c[1] - c[0], c[2] - c[0]))))  # px per frame mm
    d = np.linalg.norm(mm[:, None] - mm[None], axis=2)
    near = (d < 2.5 * BEND_SIGMA_MM) & (d > 0)
    ok = np.ones(len(mm), bool)
    for i in range(len(mm)):
        if near[i].sum() >= 3:
            med = np.median(r[near[i]], axis=0)
            ok[i] = np.linalg.norm(r[i] - med) / ppm < BEND_OUTLIER_MM
    mm, r = mm[ok], r[ok]
    if len(mm) < 8 or np.sqrt(np.mean(np.sum(r**2, 1))) / ppm < BEND_MIN_MM:
        return None
    lo = mm.min(0) - 2 * BEND_STEP_MM
    n = np.ceil((mm.max(0) + 2 * BEND_STEP_MM - lo) / BEND_STEP_MM).astype(int) + 1
    gy, gx = np.mgrid[0 : n[1], 0 : n[0]].astype(np.float64) * BEND_STEP_MM
    nodes = np.stack([gx.ravel() + lo[0], gy.ravel() + lo[1]], -1)
    d2 = np.sum((nodes[:, None] - mm[None]) ** 2, axis=2)
    # normalised Gaussian interpolation; nodes far from every tile take their nearest tiles' mean
    w = np.exp(-0.5 * (d2 - d2.min(1, keepdims=True)) / BEND_SIGMA_MM**2)
    res = (w @ r) / w.sum(1, keepdims=True)
    return res.reshape(n[1], n[0], 2), (float(lo[0]), float(lo[1])), float(BEND_STEP_MM)
