"""The printed paper's state, applied to a flat page (RGB float32 or uint8) in page coordinates.

Photometric effects change colours only; geometric ones (crease shifts, crumples, cockle) return a
displacement function that capture.py puts into the PageMap residual, so truth and pixels agree.
Occluders (mould, opaque stains) and torn-away paper are returned as masks at flat-page resolution.
Every function takes an explicit `rng` and returns the parameters it drew, for the metadata.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

Displacement = Callable[[np.ndarray], np.ndarray]  # page mm (..., 2) -> displacement in page mm (..., 2)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell_px: float) -> np.ndarray:
    """Smooth noise, roughly N(0, 1) per cell, with features about `cell_px` across, float32 (h, w)."""
    h, w = shape
    gh, gw = max(2, int(math.ceil(h / cell_px)) + 2), max(2, int(math.ceil(w / cell_px)) + 2)
    g = rng.standard_normal((gh, gw)).astype(np.float32)
    big = cv2.resize(g, (int(gw * cell_px), int(gh * cell_px)), interpolation=cv2.INTER_CUBIC)
    oy, ox = int(cell_px // 2), int(cell_px // 2)
    return np.ascontiguousarray(big[oy : oy + h, ox : ox + w])


def _low(shape: tuple[int, int], factor: int) -> tuple[int, int]:
    return max(8, shape[0] // factor), max(8, shape[1] // factor)


def _up(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return cv2.resize(a, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


# ------------------------------------------------------------------------------------- print and paper


def print_simulation(
    img: np.ndarray, ppm: float, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """Printer: slight blur, ink density below 1, a colour shift of the grid ink, cream paper and grain."""
    p: dict[str, Any] = {
        "blur_sigma_px200": float(rng.uniform(0.3, 0.8)),
        "ink_density": float(rng.uniform(0.85, 1.0)),
        "paper_tint": [255, int(rng.integers(247, 256)), int(rng.integers(232, 256))],
        "red_shift": float(rng.uniform(0, 0.25)),
        "grain": float(rng.uniform(0.02, 0.08)),
    }
    out = img.astype(np.float32)
    # ink density: dark ink prints a little lighter
    out = 255 - (255 - out) * p["ink_density"]
    # colour shift: push the green channel of strongly red pixels (red prints orange)
    red = np.clip((out[..., 0] - out[..., 1]) / 255, 0, 1)
    out[..., 1] += red * p["red_shift"] * 120
    out *= np.asarray(p["paper_tint"], dtype=np.float32) / 255
    grain = smooth_noise(rng, _low(out.shape[:2], 2), 1.5)
    out *= (1 + p["grain"] * 0.15 * _up(grain, out.shape[:2]))[..., None]
    sigma = p["blur_sigma_px200"] * ppm / 7.874
    out = cv2.GaussianBlur(out, (0, 0), sigma)
    return np.clip(out, 0, 255), p


def stains(
    img: np.ndarray, ppm: float, rng: np.random.Generator, n: int | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """1-5 liquid stains (2-15 cm, darker rim, tea/coffee, water or blood): image, occluder mask, params."""
    h, w = img.shape[:2]
    lo = _low((h, w), 4)
    sx, sy = lo[1] / w, lo[0] / h
    n = int(rng.integers(1, 6)) if n is None else n
    mult = np.ones((*lo, 3), dtype=np.float32)
    opaque = np.zeros(lo, dtype=np.float32)
    params = []
    for _ in range(n):
        kind = str(rng.choice(["coffee", "water", "blood"], p=[0.6, 0.3, 0.1]))
        if kind == "coffee":
            colour = [int(rng.integers(150, 201)), int(rng.integers(110, 161)), int(rng.integers(60, 111))]
        elif kind == "water":
            colour = [int(rng.integers(200, 230))] * 3
        else:
            colour = [int(rng.integers(120, 180)), int(rng.integers(10, 50)), int(rng.integers(10, 50))]
        d_mm = float(rng.uniform(20, 150))
        cx, cy = float(rng.uniform(0, w / ppm)), float(rng.uniform(0, h / ppm))
        alpha = float(rng.uniform(0.1, 0.6))
        params.append(
            {"kind": kind, "colour": colour, "diameter_mm": d_mm, "centre_mm": [cx, cy], "alpha": alpha}
        )
        theta = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        wob = np.convolve(np.r_[rng.standard_normal(64), rng.standard_normal(64)], np.ones(7) / 7, "same")[
            :64
        ]
        r = d_mm / 2 * (1 + 0.35 * wob)
        poly = np.stack([(cx + r * np.cos(theta)) * ppm * sx, (cy + r * np.sin(theta)) * ppm * sy], 1)
        blob = np.zeros(lo, dtype=np.uint8)
        cv2.fillPoly(blob, [np.round(poly * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        b: np.ndarray = blob.astype(np.float32) / 255
        k = max(3, int(d_mm * ppm * sx * 0.06) | 1)
        inner = cv2.erode(b, np.ones((k, k), np.uint8))
        rim: np.ndarray = np.clip(b - inner, 0, 1)
        b = cv2.GaussianBlur(b, (0, 0), max(1.0, k / 4))
        rim = cv2.GaussianBlur(rim, (0, 0), max(1.0, k / 6))
        mottle = 0.75 + 0.25 * smooth_noise(rng, lo, max(4.0, d_mm * ppm * sx / 6))
        a = np.clip(alpha * (b * mottle + 1.2 * rim), 0, 0.95)
        c = np.asarray(colour, dtype=np.float32) / 255
        mult *= 1 - a[..., None] * (1 - c)
        if kind == "blood":
            opaque = np.maximum(opaque, a)
    out = img.astype(np.float32) * _up(mult, (h, w))
    occ = _up(opaque, (h, w)) > 0.55
    return out, occ, {"stains": params}


def mould(
    img: np.ndarray, ppm: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """3-50 speckled colonies in 1-5 clusters, 1-20 mm each, fuzzy; where opaque, the trace is occluded."""
    h, w = img.shape[:2]
    f = 2
    lo = _low((h, w), f)
    lppm = ppm * lo[1] / w
    n_col = int(rng.integers(3, 51))
    n_clu = int(rng.integers(1, 6))
    kind = str(rng.choice(["green", "black", "white"], p=[0.45, 0.35, 0.2]))
    base_colour = {"green": (55, 75, 40), "black": (40, 40, 38), "white": (225, 225, 215)}[kind]
    colour = tuple(int(np.clip(c + rng.integers(-15, 16), 0, 255)) for c in base_colour)
    alpha_max = float(rng.uniform(0.3, 1.0))
    centres = np.stack([rng.uniform(0, w / ppm, n_clu), rng.uniform(0, h / ppm, n_clu)], 1)
    a = np.zeros(lo, dtype=np.float32)
    for _ in range(n_col):
        cc = centres[rng.integers(n_clu)] + rng.normal(0, 15, 2)
        size_mm = float(rng.uniform(1, 20))
        col = np.zeros(lo, dtype=np.uint8)
        th = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        rr = size_mm / 2 * (1 + 0.25 * np.convolve(rng.standard_normal(46), np.ones(7) / 7, "valid"))
        poly = np.stack([cc[0] + rr * np.cos(th), cc[1] + rr * np.sin(th)], 1) * lppm
        core = int(rng.integers(150, 256))
        cv2.fillPoly(col, [np.round(poly * 16).astype(np.int32)], core, cv2.LINE_AA, shift=4)
        n_dots = int(5 + size_mm * 4)
        pts = cc + rng.normal(0, size_mm * 0.6, (n_dots, 2))
        for (x, y), r0 in zip(pts, rng.uniform(0.1, 0.5, n_dots), strict=True):
            v = int(rng.integers(100, 230))
            cv2.circle(col, (int(x * lppm), int(y * lppm)), max(1, int(r0 * lppm)), v, -1)
        blur = max(0.8, size_mm * lppm * 0.08)
        colf: np.ndarray = cv2.GaussianBlur(col.astype(np.float32) / 255, (0, 0), blur)
        colf *= 0.8 + 0.2 * smooth_noise(rng, lo, max(2.0, lppm))  # speckled texture inside
        a = np.maximum(a, np.clip(colf, 0, 1))
    a = cv2.GaussianBlur(a, (0, 0), 0.8) * alpha_max
    a_full = _up(a, (h, w))
    out = img.astype(np.float32)
    out += a_full[..., None] * (np.asarray(colour, dtype=np.float32) - out)
    occ = a_full > 0.5
    p = {"colonies": n_col, "clusters": n_clu, "kind": kind, "colour": list(colour), "alpha": alpha_max}
    return out, occ, p


def wrinkles(
    img: np.ndarray, ppm: float, rng: np.random.Generator, strength: float | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Crinkles: a network of thin ridges (zero crossings of smooth noise), lit from one side, plus
    faint facet shading; multiplied in as a photometric overlay only (geometry: see `crumple`)."""
    h, w = img.shape[:2]
    s = float(rng.uniform(0.04, 0.15)) if strength is None else strength
    lo = _low((h, w), 2)
    cell = float(rng.uniform(6, 14)) * ppm / 2  # 6-14 mm between ridges
    n1 = smooth_noise(rng, lo, cell) + 0.35 * smooth_noise(rng, lo, cell / 3)
    gy, gx = np.gradient(n1)
    g = np.sqrt(gx**2 + gy**2) + 1e-6
    d = n1 / g  # distance to the ridge line in low-res px
    ridge = np.exp(-((d / 1.2) ** 2))
    side = np.tanh(d / 2.0)  # one flank lighter than the other
    shade = 1 - s * ridge * (0.6 + 0.4 * side) + 0.15 * s * n1 / (np.abs(n1).max() + 1e-6)
    return img.astype(np.float32) * _up(shade, (h, w))[..., None], {"wrinkle_strength": s}


def creases(
    img: np.ndarray, ppm: float, rng: np.random.Generator, n_max: int = 3, shift_px_max: float = 3.0
) -> tuple[np.ndarray, Displacement, dict[str, Any]]:
    """Folds at an angle plus the perpendicular set: ridge/valley shading and a 0-3 px shift across each."""
    h, w = img.shape[:2]
    W, H = w / ppm, h / ppm
    angle = float(rng.uniform(0, 90)) if rng.random() < 0.5 else float(rng.choice([0.0, 90.0]))
    n1, n2 = int(rng.integers(1, n_max + 1)), int(rng.integers(0, n_max + 1))
    lines = []
    for k, (n, ang) in enumerate(((n1, angle), (n2, angle + 90))):
        if n == 0:
            continue
        t = math.radians(ang)
        nrm = np.array([-math.sin(t), math.cos(t)])
        proj = np.array([0, W, 0, W]) * nrm[0] + np.array([0, 0, H, H]) * nrm[1]
        offs = np.linspace(proj.min(), proj.max(), n + 2)[1:-1]
        offs = offs + rng.uniform(-0.1, 0.1, n) * (proj.max() - proj.min()) / (n + 1)
        for o in offs:
            shade = float(rng.uniform(0.08, 0.25))
            shift = float(rng.uniform(0, shift_px_max) / 7.874)
            lines.append(
                {"normal": nrm.tolist(), "offset_mm": float(o), "set": k, "shade": shade, "shift_mm": shift}
            )
    lo = _low((h, w), 4)
    yy, xx = np.mgrid[0 : lo[0], 0 : lo[1]].astype(np.float32)
    xm, ym = (xx + 0.5) * W / lo[1], (yy + 0.5) * H / lo[0]
    shading = np.ones(lo, dtype=np.float32)
    width_mm = 5 / 7.874 * 1.5
    for ln in lines:
        d = (xm * ln["normal"][0] + ym * ln["normal"][1] - ln["offset_mm"]) / width_mm
        shading *= 1 + ln["shade"] * (d * np.exp(-(d**2)) * 1.6 - 0.5 * np.exp(-(d**2) * 4))
    out = img.astype(np.float32) * _up(shading, (h, w))[..., None]

    def displacement(mm: np.ndarray) -> np.ndarray:
        disp = np.zeros_like(mm, dtype=np.float64)
        for ln in lines:
            nrm = np.asarray(ln["normal"])
            d = mm[..., 0] * nrm[0] + mm[..., 1] * nrm[1] - ln["offset_mm"]
            disp += (0.5 * ln["shift_mm"] * np.tanh(d / 2.0))[..., None] * nrm
        return disp

    return out, displacement, {"crease_angle": angle, "creases": lines}


def crumple(
    paper_mm: tuple[float, float], rng: np.random.Generator, amp_mm: float, scale_mm: float
) -> tuple[Displacement, np.ndarray, dict[str, Any]]:
    """A smooth random displacement field (mm) and its shading on a 2.5 mm grid."""
    gx, gy = int(paper_mm[0] / 2.5) + 3, int(paper_mm[1] / 2.5) + 3
    cell = scale_mm / 2.5
    dx = smooth_noise(rng, (gy, gx), cell) * amp_mm
    dy = smooth_noise(rng, (gy, gx), cell) * amp_mm
    gyy, gxx = np.gradient(dx)
    lx, ly = math.cos(light := float(rng.uniform(0, 2 * np.pi))), math.sin(light)
    slope = (gxx * lx + np.gradient(dy)[0] * ly) / max(amp_mm, 1e-6) * cell
    slope /= max(1e-6, float(np.abs(slope).std()) * 2)
    shade = np.clip(1 + 0.12 * slope, 0.8, 1.15).astype(np.float32)
    from scipy.ndimage import map_coordinates

    def displacement(mm: np.ndarray) -> np.ndarray:
        c = [mm[..., 1].ravel() / 2.5, mm[..., 0].ravel() / 2.5]
        ox = map_coordinates(dx, c, order=1, mode="nearest").reshape(mm.shape[:-1])
        oy = map_coordinates(dy, c, order=1, mode="nearest").reshape(mm.shape[:-1])
        return np.stack([ox, oy], -1)

    return displacement, shade, {"crumple_amp_mm": amp_mm, "crumple_scale_mm": scale_mm}


def apply_shade(img: np.ndarray, shade: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) * _up(shade.astype(np.float32), img.shape[:2])[..., None]


def torn_corner(
    shape: tuple[int, int], ppm: float, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """Alpha (uint8, 255 = paper) with a jagged corner torn off (up to about 15 % of the area)."""
    h, w = shape
    W, H = w / ppm, h / ppm
    corner = int(rng.integers(4))
    a, b = float(rng.uniform(20, 0.45 * W)), float(rng.uniform(20, 0.45 * H))
    cx, cy = (0.0 if corner in (0, 3) else W), (0.0 if corner in (0, 1) else H)
    sx, sy = (1 if cx == 0 else -1), (1 if cy == 0 else -1)
    t = np.linspace(0, 1, 24)
    edge = np.stack([cx + sx * a * (1 - t), cy + sy * b * t], 1)
    edge += rng.normal(0, 1.5, edge.shape) + np.cumsum(rng.normal(0, 0.8, edge.shape), 0) * 0.3
    poly = np.vstack(
        [[cx - sx * 5, cy - sy * 5], [cx + sx * a + sx * 2, cy - sy * 5], edge, [cx - sx * 5, cy + sy * b]]
    )
    alpha = np.full((h, w), 255, dtype=np.uint8)
    cv2.fillPoly(alpha, [np.round(poly * ppm * 16).astype(np.int32)], 0, cv2.LINE_AA, shift=4)
    return alpha, {"torn_corner": corner, "torn_mm": [a, b]}
