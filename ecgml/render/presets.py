"""Capture presets named after the Kaggle image suffixes, plus `realworld`; `render` is the entry point.

    from ecgml.render.presets import render
    out = render(record, "0005", seed=7)          # Rendered: image (RGB uint8), masks, rows,
    out.page_map, out.layout, out.truth, out.meta # PageMap, PageLayout, SampleTruth, metadata dict

Each preset draws its parameters from `numpy.random.default_rng(seed)` and records them in `meta`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from ecgml.layout import DEFAULT_LAYOUT, KAGGLE_MARGIN_MM, PageLayout, make_layout
from ecgml.page import PageMap, apply_homography, scale_map
from ecgml.records import Record
from ecgml.render import capture as cap
from ecgml.render import effects as fx
from ecgml.render.annotate import page_annotations
from ecgml.render.header import add_header_footer
from ecgml.render.layouts import (
    build_layout,
    parse_layout,
    parse_speed,
    pick,
    pulse_width_mm,
    sample_page,
    with_extra_leads,
)
from ecgml.render.lowres import lowres
from ecgml.render.page import MASK_BITS, MASK_OCCLUDED, FlatPage, check_record, draw_page
from ecgml.render.panels import panel_page, split_name
from ecgml.render.style import PageStyle, kaggle_style, pen_marks, random_style
from ecgml.render.truth import SampleTruth, centreline_mask, sample_truth

TYPES: tuple[str, ...] = (
    "0001", "0003", "0004", "0005", "0006", "0009", "0010", "0011", "0012", "realworld", "lowres",
)  # fmt: skip
KAGGLE_DPI = 200.0
COORDINATES = (
    "paper mm: origin top-left page corner, x right, y down; image px: origin top-left corner of the "
    "top-left pixel, pixel centres at (i + 0.5, j + 0.5); xy arrays are (x, y)"
)


@dataclass
class Rendered:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    masks: np.ndarray  # (H, W) uint8 bit planes (ecgml.render.page.MASK_*)
    rows: np.ndarray  # (H, W) uint16 per-row trace bits (stroke width)
    centre: np.ndarray  # (H, W) uint16 per-row 1-px centreline bits
    page_map: PageMap
    layout: PageLayout
    style: PageStyle
    truth: SampleTruth
    meta: dict[str, Any]


# ------------------------------------------------------------------------------------------- layouts


def sample_layout(
    rng: np.random.Generator,
    name: str | None = None,
    standard_windows: bool = False,
    mix: dict[str, float] | None = None,
    speed: float | str | None = None,
    gain: str | float | None = None,
) -> tuple[PageLayout, dict[str, Any]]:
    """Real-world layout: name, paper, speed, gain, margins, header room, row pitch, plot shift, pulses."""
    return sample_page(rng, name, mix, speed, gain, standard_windows)


def kaggle_layout(
    name: str | None, speed: float | str | None = None, gain: str | float | None = None
) -> PageLayout:
    """ECG-Image-Kit's placement of a layout (the exact 0001 page for the default): a 10 mm margin, then
    the calibration pulse, then the rows (at 50 mm/s the pulse is 20 mm wide, so the rows start later)."""
    if name in (None, DEFAULT_LAYOUT) and speed is None and gain is None:
        return make_layout(DEFAULT_LAYOUT)
    s = parse_speed(speed or 25.0)
    x0 = KAGGLE_MARGIN_MM + pulse_width_mm(s)
    return build_layout(parse_layout(name or DEFAULT_LAYOUT), speed_mm_s=s, gain=gain or "10", x0_mm=x0)


# ------------------------------------------------------------------------------------------- helpers


def _local_scale(h: np.ndarray, paper_mm: tuple[float, float]) -> float:
    """Image px per paper mm at the page centre (geometric mean of the two axes)."""
    c = np.array([paper_mm[0] / 2, paper_mm[1] / 2])
    p = apply_homography(h, np.array([c, c + [1, 0], c + [0, 1]]))
    return float(math.sqrt(np.linalg.norm(p[1] - p[0]) * np.linalg.norm(p[2] - p[0])))


def _finish(img: np.ndarray) -> np.ndarray:
    return np.clip(img, 0, 255).astype(np.uint8) if img.dtype != np.uint8 else img


def _paper_state(
    flat: FlatPage, rng: np.random.Generator, kind: str, params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray | None, fx.Displacement | None]:
    """Print the page and age it: returns (image float32, paper alpha or None, paper displacement or None)."""
    img, p = fx.print_simulation(flat.image, flat.px_per_mm, rng)
    params["print"] = p
    alpha = None
    disps: list[fx.Displacement] = []
    ppm = flat.px_per_mm
    if kind in ("stain",):
        img, occ, p = fx.stains(img, ppm, rng)
        flat.masks[occ] |= MASK_OCCLUDED
        params["stains"] = p
        d, shade, p = fx.crumple(flat.layout.paper_mm, rng, float(rng.uniform(0.3, 1.2)), 30.0)  # cockle
        img = fx.apply_shade(img, 1 + (shade - 1) * 0.5)
        disps.append(d)
        params["cockle"] = p
    if kind in ("mould",):
        img, occ, p = fx.mould(img, ppm, rng)
        flat.masks[occ] |= MASK_OCCLUDED
        params["mould"] = p
    if kind == "damage":
        d, shade, p = fx.crumple(
            flat.layout.paper_mm, rng, float(rng.uniform(0.8, 4.0)), float(rng.uniform(25, 60))
        )
        img = fx.apply_shade(img, shade)
        disps.append(d)
        params["crumple"] = p
        img, d, p = fx.creases(img, ppm, rng, n_max=int(rng.integers(2, 8)))
        disps.append(d)
        params["creases"] = p
        img, p = fx.wrinkles(img, ppm, rng, float(rng.uniform(0.08, 0.2)))
        params["wrinkles"] = p
        alpha, p = fx.torn_corner(img.shape[:2], ppm, rng)
        params["torn"] = p
    elif kind in ("photo", "stain") and rng.random() < 0.35:
        img, d, p = fx.creases(img, ppm, rng, n_max=2)
        disps.append(d)
        params["creases"] = p
    if kind in ("photo", "stain") and rng.random() < 0.5:
        img, p = fx.wrinkles(img, ppm, rng, float(rng.uniform(0.02, 0.08)))
        params["wrinkles"] = p
    if not disps:
        return img, alpha, None

    def disp(mm: np.ndarray) -> np.ndarray:
        return sum(d(mm) for d in disps)  # type: ignore[return-value]

    return img, alpha, disp


# ------------------------------------------------------------------------------------------- captures


def _scan(
    record: Record, layout: PageLayout, style: PageStyle, rng: np.random.Generator, bw: bool, mould: bool,
    params: dict[str, Any], dpi: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, PageMap, FlatPage]:  # fmt: skip
    """Flatbed scan: H = 1652 at ~8 px/mm (or `dpi`), small rotation, lid border, colour or grey."""
    ppm = float(rng.uniform(7.96, 8.04)) if dpi is None else dpi / 25.4
    h_px = 1652 if dpi is None else int(round((layout.paper_mm[1] - 9.5) * ppm))
    w_px = int(rng.integers(2130, 2141)) if dpi is None else int(round((layout.paper_mm[0] - 12) * ppm))
    angle = float(rng.uniform(-2.0, 2.0))
    off = rng.uniform(-2.0, 2.0, 2)
    t = math.radians(angle)
    r = np.array([[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]])
    c = np.array(layout.paper_mm) / 2 + off
    hmg = (
        np.array([[1, 0, w_px / 2], [0, 1, h_px / 2], [0, 0, 1]])
        @ r
        @ np.diag([ppm, ppm, 1.0])
        @ np.array([[1, 0, -c[0]], [0, 1, -c[1]], [0, 0, 1]])
    )
    page_map = PageMap(hmg, (w_px, h_px), layout.paper_mm)
    params["scan"] = {
        "px_per_mm": ppm,
        "size": [w_px, h_px],
        "angle_deg": angle,
        "offset_mm": off.tolist(),
        "bw": bw,
    }
    flat = draw_page(record, layout, style, ppm)
    img, alpha, _ = _paper_state(flat, rng, "mould" if mould else "scan", params)
    lid = int(rng.integers(235, 256))
    bg = np.full((h_px, w_px, 3), lid, dtype=np.uint8)
    wp = cap.warp_page(_finish(img), flat.masks, flat.rows, flat.centre, alpha, ppm, page_map, bg)
    out = wp.image
    # lid shadow strips on 1-2 edges
    lh, lw = max(16, h_px // 8), max(16, w_px // 8)
    gain = np.ones((lh, lw), np.float32)
    edges = rng.choice(4, size=int(rng.integers(0, 3)), replace=False)
    strip = []
    for e in edges:
        width = float(rng.uniform(2, 30)) / 8
        dark = float(rng.uniform(0.3, 0.8))
        ramp = np.clip(np.arange(lh if e < 2 else lw) / max(width, 0.5), 0, 1).astype(np.float32)
        ramp = 1 - dark * (1 - ramp)
        if e == 0:
            gain *= ramp[:, None]
        elif e == 1:
            gain *= ramp[::-1][:, None]
        elif e == 2:
            gain *= ramp[None, :]
        else:
            gain *= ramp[::-1][None, :]
        strip.append({"edge": int(e), "width_px": width * 8, "dark": dark})
    gamma = float(rng.uniform(0.8, 1.2))
    sat = float(rng.uniform(0.85, 1.15))
    noise = float(rng.uniform(1, 4))
    params["scanner"] = {"lid": lid, "strips": strip, "gamma": gamma, "saturation": sat, "noise": noise}
    out = cap.apply_gain(out, gain)
    lut = np.clip(255 * (np.arange(256) / 255) ** gamma, 0, 255).astype(np.uint8)
    out = cv2.LUT(out, lut)
    if not bw:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
        hsv[..., 1] = cv2.convertScaleAbs(hsv[..., 1], alpha=sat)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    out = cap.add_noise(out, noise, rng)
    if bw:  # the scanner's grey mode: 8-bit luminance stored as three equal channels
        out = cap.to_grey3(out)
    return out, wp.masks, wp.rows, wp.centre, page_map, flat


def _photo_geometry(
    paper_mm: tuple[float, float], rng: np.random.Generator, params: dict[str, Any], step_mm: float
) -> tuple[np.ndarray, tuple[int, int], float, Any]:
    small = rng.random() < 0.1
    portrait = rng.random() < 0.5
    w, h = (1344, 1008) if small else (4032, 3024)
    frame = (h, w) if portrait else (w, h)
    angle = float(rng.uniform(-10, 10))
    # a landscape page is usually turned to fill a portrait frame
    if rng.random() < (0.7 if portrait else 0.1):
        angle += float(rng.choice([90.0, -90.0]))
    fill = float(rng.uniform(0.65, 0.97))
    tilt = float(rng.uniform(0, 0.10))
    page_w_px = fill * max(frame)
    jitter = rng.uniform(-1, 1, (4, 2)) * tilt * page_w_px * 0.5
    shift = tuple(float(v) for v in rng.uniform(-0.8, 0.8, 2))
    hmg = cap.place_page(paper_mm, frame, angle, fill, jitter, shift)  # type: ignore[arg-type]
    bend = float(rng.uniform(0.005, 0.03)) * paper_mm[0]
    lam = float(rng.uniform(1.0, 2.5)) * paper_mm[0]
    ph = float(rng.uniform(0, 2 * np.pi))
    axis = int(rng.integers(2))
    k = float(rng.uniform(-0.01, 0.03))
    params["camera"] = dict(frame=list(frame), angle_deg=angle, fill=fill, tilt=tilt)
    params["camera"].update(corner_jitter_px=jitter.tolist(), shift=list(shift), bend_mm=bend)
    params["camera"].update(bend_wavelength_mm=lam, bend_axis=axis, barrel_k=k)

    def bend_disp(mm: np.ndarray) -> np.ndarray:
        u = mm[..., axis]
        d = bend * np.sin(2 * np.pi * u / lam + ph)
        out = np.zeros_like(mm)
        out[..., 1 - axis] = d
        return out

    return hmg, frame, k, bend_disp


def _camera(
    img: np.ndarray, rng: np.random.Generator, params: dict[str, Any], screen: bool = False
) -> np.ndarray:
    """Phone camera pipeline: lighting and shadow, white balance, glare, blur, sharpening, noise, JPEG."""
    h, w = img.shape[:2]
    scale = max(h, w) / 4032
    lg, p = cap.lighting_gain(
        (h, w), rng, float(rng.uniform(0, 0.5 if not screen else 0.2)), (not screen) and rng.random() < 0.4,
        float(rng.uniform(0, 0.3)),
    )  # fmt: skip
    kelvin = float(rng.uniform(2500, 9000))
    wb_residual = float(rng.uniform(0.1, 0.4))  # the phone's auto white balance removes most of the cast
    exposure = float(rng.uniform(0.9, 1.12))
    wb = (1 - wb_residual + wb_residual * cap.white_balance(kelvin)) * exposure
    p["wb_residual"] = wb_residual
    p.update({"kelvin": kelvin, "exposure": exposure})
    img = cap.apply_gain(img, lg[..., None] * wb[None, None, :].astype(np.float32))
    if rng.random() < (0.1 if not screen else 0.5):
        lh, lw = max(16, h // 16), max(16, w // 16)
        cy, cx = rng.uniform(0, lh), rng.uniform(0, lw)
        sy, sx = rng.uniform(0.05, 0.25) * lh, rng.uniform(0.05, 0.3) * lw
        yy, xx = np.mgrid[0:lh, 0:lw]
        blob = np.exp(-(((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2)).astype(np.float32)
        strength = float(rng.uniform(60, 180))
        add = cv2.resize((blob * strength).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
        img = cv2.add(img, cv2.merge([add, add, add]))
        p["glare"] = {"centre": [float(cx / lw), float(cy / lh)], "strength": strength}
    sigma = float(rng.uniform(0, 2.0)) * scale
    motion = int(rng.integers(3, 9) * scale) if rng.random() < 0.15 else 0
    img = cap.blur(img, sigma, motion, int(rng.integers(2**31)))
    if rng.random() < 0.5:
        amount = float(rng.uniform(0.3, 1.0))
        img = cap.sharpen(img, amount, 2.0 * scale + 0.5)
        p["sharpen"] = amount
    noise = float(rng.uniform(1, 8))
    img = cap.add_noise(img, noise, rng, dark_boost=1.0)
    q = int(rng.integers(60, 96))
    img = cap.jpeg(img, q)
    p.update({"blur_sigma": sigma, "motion_blur": motion, "noise": noise, "jpeg_quality": q})
    params["camera_photometric"] = p
    return img


def _photo(
    record: Record,
    layout: PageLayout,
    style: PageStyle,
    rng: np.random.Generator,
    kind: str,
    params: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, PageMap, FlatPage]:
    step = 2.5 if kind == "damage" else 5.0
    hmg, frame, k, bend = _photo_geometry(layout.paper_mm, rng, params, step)
    ppm = float(np.clip(_local_scale(hmg, layout.paper_mm), 5.0, 9.0))
    flat = draw_page(record, layout, style, ppm, supersample=2)
    img, alpha, disp = _paper_state(flat, rng, kind, params)

    def paper_disp(mm: np.ndarray) -> np.ndarray:
        return bend(mm) + (disp(mm) if disp is not None else 0)

    res = cap.residual_grid(hmg, layout.paper_mm, step, paper_disp, cap.barrel(frame, k))
    page_map = PageMap(hmg, frame, layout.paper_mm, res, step)
    bg, p = cap.background(frame, rng)
    params["background"] = p
    wp = cap.warp_page(_finish(img), flat.masks, flat.rows, flat.centre, alpha, ppm, page_map, bg)
    out = _camera(wp.image, rng, params)
    return out, wp.masks, wp.rows, wp.centre, page_map, flat


def _screen(
    record: Record, layout: PageLayout, style: PageStyle, rng: np.random.Generator, params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, PageMap, FlatPage]:
    """Phone photo of the page shown in a viewer on a monitor: bezel, UI, moire, fall-off, glare, tilt."""
    portrait = rng.random() < 0.5
    frame = (3000, 4000) if portrait else (4000, 3000)
    sw, sh = [(1920, 1080), (1920, 1200), (2560, 1440), (1366, 768), (1680, 1050)][int(rng.integers(5))]
    ui_h = float(rng.uniform(0.03, 0.09)) * sh
    fit = min(sw / layout.paper_mm[0], (sh - ui_h) / layout.paper_mm[1])
    zoom = float(rng.uniform(0.6, 1.0))
    if rng.random() < 0.3:
        zoom = float(rng.uniform(1.0, 1.18))  # part of the page cut off (0-15 %)
    k = fit * zoom
    ox = (sw - layout.paper_mm[0] * k) / 2 + float(rng.uniform(-0.1, 0.1)) * sw * (1 - min(zoom, 1))
    oy = ui_h + (sh - ui_h - layout.paper_mm[1] * k) / 2
    s_mat = np.array([[k, 0, ox], [0, k, oy], [0, 0, 1.0]])
    bezel = float(rng.uniform(0.01, 0.04)) * sw
    angle = float(rng.uniform(-5, 5)) + (float(rng.choice([90.0, -90.0])) if portrait else 0.0)
    fill = float(rng.uniform(0.75, 1.05))
    tilt = float(rng.uniform(0, 0.15))
    jitter = rng.uniform(-1, 1, (4, 2)) * tilt * fill * max(frame) * 0.5
    shift = tuple(float(v) for v in rng.uniform(-0.5, 0.5, 2))
    h_scr = cap.place_page((sw + 2 * bezel, sh + 2 * bezel), frame, angle, fill, jitter, shift)  # type: ignore[arg-type]
    h_scr = h_scr @ np.array([[1, 0, bezel], [0, 1, bezel], [0, 0, 1.0]])  # screen px -> photo px
    hmg = h_scr @ s_mat
    page_map = PageMap(hmg, frame, layout.paper_mm)
    params["screen"] = {
        "frame": list(frame), "screen_px": [sw, sh], "ui_px": ui_h, "zoom": zoom, "px_per_mm": k,
        "offset_px": [ox, oy], "bezel_px": bezel, "angle_deg": angle, "fill": fill, "tilt": tilt,
    }  # fmt: skip
    flat = draw_page(record, layout, style, k, supersample=3)
    # what the screen shows at each output pixel
    mx, my = cap.inverse_maps(page_map, k)
    sx, sy = mx * k + ox, my * k + oy
    dark_ui = rng.random() < 0.5
    room, p = cap.background(frame, rng, "dark")
    view_bg = np.array([40, 40, 44] if dark_ui else [225, 225, 228], np.uint8)
    bar = np.array([25, 25, 28] if dark_ui else [240, 240, 242], np.uint8)
    in_screen = (sx >= 0) & (sx < sw) & (sy >= 0) & (sy < sh)
    in_bezel = (sx >= -bezel) & (sx < sw + bezel) & (sy >= -bezel) & (sy < sh + bezel)
    in_view = in_screen & (sy >= ui_h)
    base = room
    base[in_bezel] = (12, 12, 14)
    base[in_screen] = bar
    base[in_view] = view_bg
    alpha = np.full(flat.image.shape[:2], 255, np.uint8)
    fx_ = mx * k - 0.5
    fy_ = my * k - 0.5
    m1, m2 = cv2.convertMaps(fx_, fy_, cv2.CV_16SC2)
    page = cv2.remap(flat.image, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.remap(alpha, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    a[~in_view] = 0
    masks = cv2.remap(flat.masks, fx_, fy_, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    rows = cv2.remap(flat.rows, fx_, fy_, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    centre = cv2.remap(
        flat.centre, fx_, fy_, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    img = cap.composite(page, base, a, masks, rows, centre)
    # screen: gamma, backlight fall-off, sub-pixel stripes and moire
    gamma = float(rng.uniform(0.8, 1.2))
    img = cv2.LUT(img, np.clip(255 * (np.arange(256) / 255) ** gamma, 0, 255).astype(np.uint8))
    falloff = float(rng.uniform(0, 0.3))
    alpha_m = float(rng.uniform(0.05, 0.25))
    # sub-pixel stripes: a per-channel gain looked up from the screen x phase (64 steps per screen
    # pixel); sampled at the camera's pixels it aliases into moire. Index 255 = off screen (gain 1).
    ph = np.arange(256) / 64.0
    table = np.empty((1, 256, 3), np.uint8)
    for c in range(3):
        g = 1 - alpha_m * (0.5 - 0.5 * np.cos(2 * np.pi * (ph - c / 3)))
        table[0, :, c] = np.clip(g * 128, 0, 255)
    table[0, 255, :] = 128
    idx = (np.multiply(sx, 64.0).astype(np.int32) & 63).astype(np.uint8)
    idx[~in_screen] = 255
    stripes = cv2.LUT(cv2.merge([idx, idx, idx]), table)
    rtab = np.full((1, 256), 128, np.uint8)
    rtab[0, :64] = np.clip(
        128 * (1 - 0.3 * alpha_m * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(64) / 64))), 0, 255
    )
    ridx = (np.multiply(sy, 64.0).astype(np.int32) & 63).astype(np.uint8)
    ridx[~in_screen] = 255
    rowg = cv2.LUT(ridx, rtab)
    img = cv2.multiply(img, stripes, scale=1 / 128)
    img = cv2.multiply(img, cv2.merge([rowg, rowg, rowg]), scale=1 / 128)
    # backlight fall-off, smooth: computed on a coarse grid
    lo_sx, lo_sy = sx[::16, ::16], sy[::16, ::16]
    fall = 1 - falloff * np.clip(((lo_sx / sw - 0.5) ** 2 + (lo_sy / sh - 0.5) ** 2) * 2, 0, 1)
    fall = np.where((lo_sx >= 0) & (lo_sx < sw) & (lo_sy >= 0) & (lo_sy < sh), fall, 1.0).astype(np.float32)
    img = cap.apply_gain(img, fall)
    params["display"] = {"dark_ui": dark_ui, "gamma": gamma, "falloff": falloff, "moire_alpha": alpha_m, **p}
    out = _camera(img, rng, params, screen=True)
    return out, masks, rows, centre, page_map, flat


# ------------------------------------------------------------------------------------------- entry point


def render(
    record: Record,
    image_type: str,
    seed: int,
    layout: str | None = None,
    standard_windows: bool = False,
    speed: float | str | None = None,
    gain: str | float | None = None,
    mix: dict[str, float] | None = None,
    derive_leads: bool = True,
) -> Rendered:
    """Render the first 10 s of `record` as one image of `image_type` with exact truth.

    `layout` forces a layout name (ecgml.render.layouts; default: the Kaggle 3x4+1R page for Kaggle
    types, drawn from `mix` or the training mix for `realworld` and `lowres`); `standard_windows` keeps
    those to layouts that plot every standard window; `speed` (mm/s) and `gain` (mm/mV or "mixed")
    force the settings. Leads a layout needs and the record lacks (V4R, V8, V9) are derived and
    marked so when `derive_leads`, else refused with the record and the leads named.
    """
    if image_type not in TYPES:
        raise ValueError(f"unknown image type {image_type!r}; choose from {TYPES}")
    check_record(record)
    if record.n_samples != record.fs * 10:
        record = record.window(0, 10)
    rng = np.random.default_rng(seed)
    params: dict[str, Any] = {}
    layout, boxed = split_name(layout)
    if image_type in ("realworld", "lowres"):
        if layout is None and mix and any(split_name(k)[1] for k in mix):
            layout, boxed = split_name(pick(mix, rng))  # the one draw sample_layout would have made
        lay, p = sample_layout(rng, layout, standard_windows, mix, speed, gain)
        params["layout"] = p
        style = random_style(rng)
        if boxed:  # the header (if any) above the boxes; the panel footer stays unless a cart's replaces it
            lay, params["panels"] = panel_page(rng, lay, record, style, float(p["header_mm"]))
            if float(p["header_mm"]) >= 8:
                params["header"] = add_header_footer(rng, record, lay, style, float(p["header_mm"]), 0.0)
                style.footer = bool(style.footer_lines)
        else:
            params["header"] = add_header_footer(
                rng, record, lay, style, float(p["header_mm"]), float(p["footer_mm"])
            )
        if rng.random() < 0.3:
            style.pen_strokes = pen_marks(rng, lay.paper_mm)
            style.pen_rgb = (20, 40, 150) if rng.random() < 0.6 else (25, 25, 30)
            style.pen_mm = float(rng.uniform(0.5, 1.5))
    else:
        lay = kaggle_layout(layout, speed, gain)
        style = kaggle_style(rng)
        if boxed:
            lay, params["panels"] = panel_page(rng, lay, record, style)
    record, derived = with_extra_leads(record, parse_layout(lay.name), derive_leads)
    if derived:
        lay.cells = [replace(c, derived=derived.get(c.lead, "")) for c in lay.cells]
    kind_by_type = {
        "0003": ("scan", False, False), "0004": ("scan", True, False), "0011": ("scan", False, True),
        "0012": ("scan", True, True), "0005": ("photo", "photo", None), "0009": ("photo", "stain", None),
        "0010": ("photo", "damage", None), "0006": ("screen", None, None),
    }  # fmt: skip
    capture = "clean"
    if image_type in kind_by_type:
        capture = kind_by_type[image_type][0]
    elif image_type == "lowres":
        capture = "lowres"
    elif image_type == "realworld":
        capture = str(
            rng.choice(["clean", "lowres", "scan", "photo", "screen"], p=[0.1, 0.2, 0.25, 0.3, 0.15])
        )
    params["capture"] = capture
    dpi = KAGGLE_DPI
    if capture == "clean":
        if image_type == "realworld":
            dpi = float(rng.choice([72, 96, 100, 150, 200, 300]))
        ppm = dpi / 25.4
        flat = draw_page(record, lay, style, ppm)
        image, masks, rows, centre = flat.image, flat.masks, flat.rows, flat.centre
        page_map = scale_map(ppm, flat.size, lay.paper_mm)
        if image_type == "realworld" and rng.random() < 0.3:
            image = cap.jpeg(image, int(rng.integers(40, 95)))
    elif capture == "scan":
        if image_type == "realworld":
            bw, mould = bool(rng.random() < 0.3), bool(rng.random() < 0.1)
            sdpi = float(rng.choice([100, 150, 200, 300])) if rng.random() < 0.5 else None
        else:
            bw, mould = bool(kind_by_type[image_type][1]), bool(kind_by_type[image_type][2])
            sdpi = None
        image, masks, rows, centre, page_map, flat = _scan(record, lay, style, rng, bw, mould, params, sdpi)
        if image_type == "realworld" and rng.random() < 0.15:  # photocopy / fax: binarised
            g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            thr = int(rng.integers(120, 200))
            image = cv2.merge([np.where(g > thr, 255, 0).astype(np.uint8)] * 3)
            params["binarise"] = thr
        dpi = flat.px_per_mm * 25.4
    elif capture == "lowres":
        image, masks, rows, centre, page_map, flat = lowres(record, lay, style, rng, params)
        dpi = flat.px_per_mm * 25.4
    elif capture == "photo":
        kind = str(kind_by_type[image_type][1]) if image_type != "realworld" else str(
            rng.choice(["photo", "stain", "damage"], p=[0.7, 0.15, 0.15])
        )  # fmt: skip
        image, masks, rows, centre, page_map, flat = _photo(record, lay, style, rng, kind, params)
        dpi = flat.px_per_mm * 25.4
    else:
        image, masks, rows, centre, page_map, flat = _screen(record, lay, style, rng, params)
        dpi = flat.px_per_mm * 25.4
    if capture not in ("clean", "lowres"):  # the centreline in image space (exact), not warped 1-px lines
        centre = centreline_mask(flat.samples, lay, page_map, masks)
    truth = sample_truth(flat.samples, page_map, masks, lay.paper_mm)
    fs = record.fs
    meta = {
        "type": image_type,
        "seed": int(seed),
        "record": record.name,
        "source": record.meta.get("source", ""),
        "fs": record.fs,
        "n_samples": record.n_samples,
        "image_size": list(page_map.image_size),
        "page_dpi": dpi,
        "page_px_per_mm": flat.px_per_mm,
        "image_px_per_mm": _local_scale(page_map.homography, lay.paper_mm),
        "speed_mm_s": lay.speed_mm_s,
        "gain_mm_mv": lay.gain_mm_mv,
        "paper_mm": list(lay.paper_mm),
        "layout": lay.to_dict(),
        "style": style.to_dict(),
        "params": params,
        "text_boxes_mm": [[t, list(b)] for t, b in flat.text_boxes],
        "mask_bits": dict(MASK_BITS),
        "annotations": page_annotations(lay, flat.text_items, [b for _, b in flat.text_boxes], page_map, fs),
        "coordinates": COORDINATES,
        "visible_fraction": float(truth.visible.mean()) if truth.visible.size else 0.0,
        "page_map": page_map.to_dict(),
    }
    return Rendered(image, masks, rows, centre, page_map, lay, style, truth, meta)
