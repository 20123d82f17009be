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

import cv2
import numpy as np
from scipy.ndimage import maximum_filter1d
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import lsqr

TILE = 160  # px at working resolution
NFFT = 2048  # zero-padded profile length (fine frequency sampling)
MIN_COHERENCE = 0.25  # 4-fold orientation coherence of a tile that holds grid
MIN_PEAK_SNR = 6.0  # spectral peak over the band's median for a tile to count
PAGE_AREA_MM2 = 279.4 * 215.9


def darkness(img: np.ndarray, ksize: int) -> tuple[np.ndarray, np.ndarray]:
    """(any-channel darkness, all-channel darkness) in [0, 1] relative to the local paper brightness.

    The first shows coloured grid lines and ink alike; the second keeps neutral ink (traces, text) and
    drops coloured grid lines. The paper level is a max filter wider than any line, so lighting
    gradients and shadows cancel.
    """
    f = img.astype(np.float32)
    k = max(3, ksize | 1)
    bg = cv2.dilate(f, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    bg = cv2.blur(bg, (k, k))
    d = 1.0 - f / np.maximum(bg, 16.0)
    np.clip(d, 0.0, 1.0, out=d)
    return d.max(axis=2), d.min(axis=2)


@dataclass
class TileLattice:
    centre: np.ndarray  # (n, 2) px
    normal: np.ndarray  # (n, 2, 2) unit normals of the two line families
    spacing: np.ndarray  # (n, 2) px per 1 mm along each normal (after the global mm decision)
    strength: np.ndarray  # (n,) spectral peak SNR
    grid_ij: np.ndarray  # (n, 2) tile indices


def _spectrum(profile: np.ndarray) -> np.ndarray:
    p = profile - profile.mean()
    p = p * np.hanning(len(p))
    return np.abs(np.fft.rfft(p, NFFT)) ** 2


def _profile(tile: np.ndarray, theta: float) -> np.ndarray:
    """Projection of a tile onto the normal at angle theta, 1 px bins, mean per bin."""
    h, w = tile.shape
    yy, xx = np.mgrid[0:h, 0:w]
    u = (xx - w / 2) * np.cos(theta) + (yy - h / 2) * np.sin(theta)
    # restrict to the inscribed disc so every bin averages a similar chord
    r = np.hypot(xx - w / 2, yy - h / 2) < min(h, w) / 2
    b = np.floor(u[r] + w).astype(np.int64)
    s = np.bincount(b, weights=tile[r])
    c = np.bincount(b)
    ok = c > 0
    idx = np.flatnonzero(ok)
    prof = np.interp(np.arange(len(s)), idx, s[ok] / c[ok])
    return prof[idx[0] : idx[-1] + 1]


def _fundamental(spec: np.ndarray, f_lo: float, f_hi: float) -> tuple[float, float, float]:
    """(f, snr, minor_snr): the lattice's fundamental frequency in cycles per px.

    Harmonic scoring: the mean over the first harmonics of log(1 + S/noise) — the true fundamental has all
    of them, a sub-harmonic only half. `minor_snr` is the evidence at f/5 * (1..4) i.e. whether `f` is
    really a 1 mm period whose 5 mm major lines are distinct.
    """
    n = len(spec)
    freqs = np.arange(n) / NFFT
    band = (freqs > f_lo * 0.5) & (freqs < 0.45)
    noise = float(np.median(spec[band])) + 1e-12
    lg = np.log1p(spec / noise)
    # local max within +-1.5 % tolerates each candidate's own error
    lgm = maximum_filter1d(lg, size=9)
    cands = np.linspace(f_lo, f_hi, 600)
    idx = np.round(np.arange(1, 6)[None, :] * cands[:, None] * NFFT).astype(int)
    valid = idx < int(0.45 * NFFT)
    vals = np.where(valid, lgm[np.minimum(idx, n - 1)], 0.0)
    cnt = valid.sum(1)
    score = np.where(cnt >= 2, vals.sum(1) / np.maximum(cnt, 1), -1.0)
    f = float(cands[int(np.argmax(score))])
    i = int(round(f * NFFT))
    w = 1 + i // 70
    j = max(0, i - w) + int(np.argmax(spec[max(0, i - w) : i + w + 1]))
    # parabolic refinement of the peak
    if 0 < j < n - 1:
        a, b, c = np.log(spec[j - 1] + 1e-12), np.log(spec[j] + 1e-12), np.log(spec[j + 1] + 1e-12)
        den = a - 2 * b + c
        j = j + (float(np.clip(0.5 * (a - c) / den, -1, 1)) if den < 0 else 0.0)
    f = j / NFFT
    snr = float(spec[min(n - 1, int(round(j)))] / noise)
    sub = []
    for k in (1, 2, 3, 4):
        ii = int(round(k * f / 5 * NFFT))
        if ii > 2:
            sub.append(spec[max(0, ii - 1 - ii // 70) : ii + 2 + ii // 70].max() / noise)
    minor = float(np.median(sub)) if sub else 0.0
    return f, snr, minor


def tile_lattice(dark: np.ndarray) -> TileLattice | None:
    """Per-tile line directions and spacings (px per mm); None if no tile shows a lattice."""
    h, w = dark.shape
    gx = cv2.Sobel(dark, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(dark, cv2.CV_32F, 0, 1, ksize=3)
    mag = gx * gx + gy * gy
    phi = np.arctan2(gy, gx)
    c4, s4 = mag * np.cos(4 * phi), mag * np.sin(4 * phi)
    step = TILE // 2
    ny, nx = max(1, (h - TILE) // step + 1), max(1, (w - TILE) // step + 1)
    oy, ox = (h - ((ny - 1) * step + TILE)) // 2, (w - ((nx - 1) * step + TILE)) // 2
    raw = []
    for iy in range(ny):
        for ix in range(nx):
            y0, x0 = oy + iy * step, ox + ix * step
            sl = (slice(max(0, y0), y0 + TILE), slice(max(0, x0), x0 + TILE))
            m = mag[sl].sum()
            if m <= 1e-6:
                continue
            z = complex(c4[sl].sum(), s4[sl].sum())
            coh = abs(z) / m
            if coh < MIN_COHERENCE:
                continue
            th0 = np.angle(z) / 4
            # refine each family separately (under perspective they are not exactly perpendicular)
            ths = []
            p = phi[sl]
            mm = mag[sl]
            for base in (th0, th0 + np.pi / 2):
                d = np.angle(np.exp(2j * (p - base))) / 2  # in (-pi/2, pi/2]
                sel = np.abs(d) < np.pi / 8
                ths.append(base + float(np.angle(np.sum(mm[sel] * np.exp(2j * d[sel])))) / 2)
            raw.append((iy, ix, x0 + TILE / 2, y0 + TILE / 2, ths, sl))
    if not raw:
        return None
    # Spacing: spectra of the projections; frequency band from a loose page-size prior.
    spectra = []
    for _iy, _ix, _cx, _cy, ths, sl in raw:
        t = dark[sl]
        spectra.append([_spectrum(_profile(t, th)) for th in ths])
    return _decide_lattice(raw, spectra, dark.shape)


def _decide_lattice(raw: list, spectra: list, shape: tuple[int, int]) -> TileLattice | None:
    n_tiles = len(raw)
    # px per mm prior: grid tiles cover (roughly) the page
    area = n_tiles * (TILE // 2) ** 2
    prior = np.sqrt(max(area, 1) / PAGE_AREA_MM2)
    # 5 mm major period in px; search a wide band around the prior
    lo_ppm, hi_ppm = prior / 2.2, prior * 2.2
    lo_ppm = max(lo_ppm, 1.2)  # below ~1.2 px/mm nothing can be read
    f_lo = 1 / (5 * hi_ppm)
    f_hi = min(1 / (5 * lo_ppm), 0.2)
    rows = []
    for (iy, ix, cx, cy, ths, _sl), sp in zip(raw, spectra, strict=True):
        fam = []
        for th, s in zip(ths, sp, strict=True):
            f, snr, _ = _fundamental(s, f_lo, f_hi)
            ppm = (1 / f) / 5 if f > 0 else 0.0
            if snr < MIN_PEAK_SNR:
                # major lines not distinct: the lattice may show only the 1 mm period
                f1, snr1, _ = _fundamental(s, min(5 * f_lo, 0.3), min(5 * f_hi, 0.45))
                if snr1 >= MIN_PEAK_SNR and f1 > 0:
                    f, snr, ppm = f1, snr1, 1 / f1
            fam.append((th, ppm, snr))
        rows.append((iy, ix, cx, cy, fam))
    good = [p for *_, fam in rows for _th, p, snr in fam if snr >= MIN_PEAK_SNR and p > 0]
    if len(good) < 4:
        return None
    med_ppm = float(np.median(good))
    out_c, out_n, out_s, out_w, out_ij = [], [], [], [], []
    for iy, ix, cx, cy, fam in rows:
        if min(fam[0][2], fam[1][2]) < MIN_PEAK_SNR:
            continue
        sp = []
        for _th, p, _snr in fam:
            # octave errors: bring this tile's value to the factor nearest the global median
            k = min((1, 2, 1 / 2, 3, 1 / 3), key=lambda k, p=p: abs(np.log(p * k / med_ppm)))
            sp.append(p * k)
        if any(abs(np.log(v / med_ppm)) > np.log(1.6) for v in sp):
            continue
        nrm = np.array([[np.cos(th), np.sin(th)] for th, *_ in fam])
        out_c.append((cx, cy))
        out_n.append(nrm)
        out_s.append(sp)
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
    )


def coarse_frame(lat: TileLattice) -> tuple[np.ndarray, np.ndarray] | None:
    """Homography frame-mm -> px from the lattice field, and the boolean mask of tiles used.

    Labels the two families consistently by growing from the strongest tile (each tile takes the
    labelling nearest its labelled neighbour), then integrates the mm gradients over the tile graph.
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
        for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
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
    pos = {k: i for i, k in enumerate(used)}
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
    h, _ = cv2.findHomography(mm.astype(np.float64), px.astype(np.float64), 0)
    if h is None:
        return None
    mask = np.zeros(n, bool)
    mask[used] = True
    return h, mask
