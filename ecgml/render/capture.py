"""Capture: put the flat page into a final image through one PageMap (scanner, phone photo, screen photo).

The geometry is decided first, as a PageMap (homography plus a residual grid carrying curvature,
crumples, crease shifts and lens distortion). The image is then produced by `cv2.remap` of the flat
page through the inverse of that same map, so the stored truth and the pixels agree by construction
(up to the bilinear interpolation of the inverse on an 8 px grid, well under 0.05 px).
Photometric effects work on uint8 images with OpenCV (and albumentations for JPEG and blur).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ecgml.page import PageMap, apply_homography
from ecgml.render.effects import Displacement, smooth_noise
from ecgml.render.page import MASK_OCCLUDED, MASK_PAPER

MAP_STEP_PX = 8  # the inverse map is computed every 8 output px and interpolated


# ------------------------------------------------------------------------------------------- geometry


def residual_grid(
    homography: np.ndarray,
    paper_mm: tuple[float, float],
    step_mm: float,
    paper_disp: Displacement | None = None,
    image_disp: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray | None:
    """Residual (gy, gx, 2) px so that mm -> H(mm + paper_disp(mm)) + image_disp(that) on the grid nodes."""
    if paper_disp is None and image_disp is None:
        return None
    gx = int(math.floor(paper_mm[0] / step_mm)) + 2
    gy = int(math.floor(paper_mm[1] / step_mm)) + 2
    yy, xx = np.mgrid[0:gy, 0:gx].astype(np.float64) * step_mm
    mm = np.stack([xx, yy], -1)
    moved = mm + paper_disp(mm) if paper_disp is not None else mm
    px = apply_homography(homography, moved)
    if image_disp is not None:
        px = px + image_disp(px)
    return (px - apply_homography(homography, mm)).astype(np.float32)


def barrel(size: tuple[int, int], k: float) -> Callable[[np.ndarray], np.ndarray]:
    """Radial lens distortion about the frame centre: k is the relative displacement at the corner."""
    c = np.array([size[0] / 2, size[1] / 2])
    r2max = float(c @ c)

    def disp(px: np.ndarray) -> np.ndarray:
        d = px - c
        return d * (k * (d**2).sum(-1, keepdims=True) / r2max)

    return disp


def inverse_maps(
    page_map: PageMap, flat_ppm: float, step: int = MAP_STEP_PX
) -> tuple[np.ndarray, np.ndarray]:
    """For every output pixel, the page mm at its centre: two float32 (H, W) arrays (x mm, y mm)."""
    w, h = page_map.image_size
    gw, gh = -(-w // step), -(-h // step)
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float64)
    px = np.stack([(xx + 0.5) * step, (yy + 0.5) * step], -1)
    mm = page_map.px_to_mm(px, iterations=20).astype(np.float32)
    mx = cv2.resize(mm[..., 0], (gw * step, gh * step), interpolation=cv2.INTER_LINEAR)[:h, :w]
    my = cv2.resize(mm[..., 1], (gw * step, gh * step), interpolation=cv2.INTER_LINEAR)[:h, :w]
    return mx, my


@dataclass
class Warped:
    image: np.ndarray  # uint8 RGB, page over background
    masks: np.ndarray
    rows: np.ndarray
    centre: np.ndarray
    mm_x: np.ndarray  # page mm at each output pixel centre (float32)
    mm_y: np.ndarray


def warp_page(
    flat_img: np.ndarray,
    flat_masks: np.ndarray,
    flat_rows: np.ndarray,
    flat_centre: np.ndarray,
    flat_alpha: np.ndarray | None,
    flat_ppm: float,
    page_map: PageMap,
    background: np.ndarray,
) -> Warped:
    """Remap the flat page (and its masks) through `page_map` onto `background` (same size as the map)."""
    mx, my = inverse_maps(page_map, flat_ppm)
    fx = mx * flat_ppm - 0.5  # OpenCV pixel centres are integers
    fy = my * flat_ppm - 0.5
    m1, m2 = cv2.convertMaps(fx, fy, cv2.CV_16SC2)
    page = cv2.remap(flat_img, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    masks = cv2.remap(flat_masks, fx, fy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    rows = cv2.remap(flat_rows, fx, fy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    centre = cv2.remap(flat_centre, fx, fy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if flat_alpha is None:
        flat_alpha = np.full(flat_img.shape[:2], 255, dtype=np.uint8)
    alpha = cv2.remap(flat_alpha, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    image = composite(page, background, alpha, masks, rows, centre)
    return Warped(image, masks, rows, centre, mx, my)


def composite(page: np.ndarray, background: np.ndarray, alpha: np.ndarray, *layers: np.ndarray) -> np.ndarray:
    """Blend the warped page onto the background by `alpha`; truth layers are cleared where it is off-page."""
    off = alpha < 128
    for layer in layers:
        layer[off] = 0
    wgt = alpha.astype(np.float32) * (1 / 255)
    return cv2.blendLinear(page, background, wgt, 1 - wgt)


def place_page(
    paper_mm: tuple[float, float],
    frame: tuple[int, int],
    angle_deg: float,
    fill: float,
    corner_jitter: np.ndarray,
    shift: tuple[float, float],
) -> np.ndarray:
    """Homography mm -> px: the page rotated by `angle_deg`, its bounding box `fill` of the frame, moved
    by `shift` (fractions of the free space), then each corner moved by `corner_jitter` (4, 2) px."""
    w_mm, h_mm = paper_mm
    corners = np.array([[0, 0], [w_mm, 0], [w_mm, h_mm], [0, h_mm]], dtype=np.float64)
    t = math.radians(angle_deg)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    c = (corners - [w_mm / 2, h_mm / 2]) @ rot.T
    span = c.max(0) - c.min(0)
    s = fill * min(frame[0] / span[0], frame[1] / span[1])
    c *= s
    free = np.array(frame) - span * s
    centre = np.array(frame) / 2 + np.asarray(shift) * free / 2
    dst = c + centre + corner_jitter
    return cv2.getPerspectiveTransform(corners.astype(np.float32), dst.astype(np.float32)).astype(np.float64)


# ------------------------------------------------------------------------------------------- photometry


def gain_image(gain: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A low-resolution gain (h, w) or (h, w, 3) in [0, 2) as a full-size uint8 image in units of 1/128."""
    g = np.clip(gain * 128, 0, 255).astype(np.uint8)
    g = cv2.resize(g, size, interpolation=cv2.INTER_LINEAR)
    if g.ndim == 2:
        g = cv2.merge([g, g, g])
    return g


def apply_gain(img: np.ndarray, gain: np.ndarray) -> np.ndarray:
    return cv2.multiply(img, gain_image(gain, (img.shape[1], img.shape[0])), scale=1 / 128, dtype=cv2.CV_8U)


def add_noise(img: np.ndarray, sigma: float, rng: np.random.Generator, dark_boost: float = 0.0) -> np.ndarray:
    """Gaussian sensor noise from a random 512 px tile (fast at 12 MP), optionally stronger in dark areas.

    Saturating uint8 arithmetic throughout: the positive and negative parts are added and subtracted."""
    if sigma <= 0:
        return img
    tile = rng.standard_normal((512, 512, 3)) * sigma
    pos_t = np.clip(np.round(tile), 0, 255).astype(np.uint8)
    neg_t = np.clip(np.round(-tile), 0, 255).astype(np.uint8)
    h, w = img.shape[:2]
    ny, nx = -(-h // 512) + 1, -(-w // 512) + 1
    oy, ox = int(rng.integers(0, 512)), int(rng.integers(0, 512))
    pos: np.ndarray = np.tile(pos_t, (ny, nx, 1))[oy : oy + h, ox : ox + w]
    neg: np.ndarray = np.tile(neg_t, (ny, nx, 1))[oy : oy + h, ox : ox + w]
    if dark_boost > 0:
        dark = 255 - cv2.cvtColor(img[::16, ::16], cv2.COLOR_RGB2GRAY).astype(np.float32)
        boost = gain_image(1 + dark_boost * dark / 255, (w, h))
        pos = cv2.multiply(np.ascontiguousarray(pos), boost, scale=1 / 128)
        neg = cv2.multiply(np.ascontiguousarray(neg), boost, scale=1 / 128)
    return cv2.subtract(cv2.add(img, np.ascontiguousarray(pos)), np.ascontiguousarray(neg))


def white_balance(kelvin: float) -> np.ndarray:
    """Per-channel RGB gains approximating a light source of `kelvin` on a camera balanced at 6500 K."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.7 * (t - 60) ** -0.1332
    g = 99.47 * math.log(t) - 161.12 if t <= 66 else 288.12 * (t - 60) ** -0.0755
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.52 * math.log(t - 10) - 305.04)
    rgb = np.clip(np.array([r, g, b]), 1, 255) / 255
    ref = np.array([1.0, 0.9547, 0.9156])  # 6500 K
    gains = rgb / ref
    return gains / gains.max()


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    import albumentations as A

    t = A.ImageCompression(quality_range=(quality, quality), compression_type="jpeg", p=1.0)
    return t(image=img)["image"]


def blur(img: np.ndarray, sigma: float, motion: int = 0, seed: int = 0) -> np.ndarray:
    if motion >= 3:
        import albumentations as A

        t = A.Compose([A.MotionBlur(blur_limit=(motion | 1, motion | 1), p=1.0)], seed=seed)
        img = t(image=img)["image"]
    if sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    return img


def sharpen(img: np.ndarray, amount: float, sigma: float) -> np.ndarray:
    soft = cv2.GaussianBlur(img, (0, 0), sigma)
    return cv2.addWeighted(img, 1 + amount, soft, -amount, 0)


def to_grey3(img: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return cv2.merge([g, g, g])


def lighting_gain(
    shape: tuple[int, int], rng: np.random.Generator, drop: float, shadow: bool, vignette: float
) -> tuple[np.ndarray, dict[str, Any]]:
    """A low-res gain: linear light gradient, radial vignette and an optional soft cast shadow."""
    h, w = shape
    lh, lw = max(16, h // 16), max(16, w // 16)
    yy, xx = np.mgrid[0:lh, 0:lw].astype(np.float32)
    u, v = xx / lw - 0.5, yy / lh - 0.5
    ang = float(rng.uniform(0, 2 * np.pi))
    lin = (u * math.cos(ang) + v * math.sin(ang)) / 0.7 + 0.5
    g = 1 - drop * np.clip(lin, 0, 1)
    g *= 1 - vignette * (u**2 + v**2) * 2
    p: dict[str, Any] = {"light_drop": drop, "light_angle": ang, "vignette": vignette, "shadow": shadow}
    if shadow:
        dark = float(rng.uniform(0.2, 0.6))
        blur_px = float(rng.uniform(20, 150))
        m: np.ndarray = np.zeros((lh, lw), np.float32)
        side = int(rng.integers(4))
        depth = float(rng.uniform(0.15, 0.5))
        pts = rng.uniform(0, 1, (3, 2))
        if side == 0:
            poly = [[0, 0], [1, 0], [pts[0, 0], depth], [pts[1, 0] * 0.5, depth * pts[2, 1] + 0.1]]
        elif side == 1:
            poly = [[0, 1], [1, 1], [pts[0, 0], 1 - depth], [pts[1, 0] * 0.5, 1 - depth * pts[2, 1] - 0.1]]
        elif side == 2:
            poly = [[0, 0], [0, 1], [depth, pts[0, 1]], [depth * pts[2, 0] + 0.1, pts[1, 1] * 0.5]]
        else:
            poly = [[1, 0], [1, 1], [1 - depth, pts[0, 1]], [1 - depth * pts[2, 0] - 0.1, pts[1, 1] * 0.5]]
        cv2.fillPoly(m, [np.round(np.array(poly) * [lw, lh]).astype(np.int32)], 1.0)
        m = cv2.GaussianBlur(m, (0, 0), max(0.5, blur_px / 16))
        g *= 1 - dark * m
        p.update({"shadow_dark": dark, "shadow_blur_px": blur_px, "shadow_side": side})
    return g.astype(np.float32), p


# ------------------------------------------------------------------------------------------- backgrounds


def background(
    size: tuple[int, int], rng: np.random.Generator, kind: str | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """A table-top: wood, a plain desk, fabric or a dark surface, drawn at 1/4 size and upscaled."""
    w, h = size
    lw, lh = max(16, w // 4), max(16, h // 4)
    kind = kind or str(rng.choice(["wood", "desk", "fabric", "dark"], p=[0.4, 0.3, 0.15, 0.15]))
    base = {
        "wood": (rng.uniform(120, 190), rng.uniform(80, 130), rng.uniform(40, 80)),
        "desk": (rng.uniform(150, 230),) * 3,
        "fabric": (rng.uniform(40, 200), rng.uniform(40, 200), rng.uniform(40, 200)),
        "dark": (rng.uniform(20, 70),) * 3,
    }[kind]
    base_rgb = np.asarray(base, dtype=np.float32) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    if kind == "wood":
        grain = smooth_noise(rng, (lh, lw), 6)
        streak = smooth_noise(rng, (max(8, lh // 40), lw), 3)
        streak = cv2.resize(streak, (lw, lh), interpolation=cv2.INTER_LINEAR)
        tex = 0.12 * np.sin(streak * 6 + grain * 2) + 0.05 * grain
        if rng.random() < 0.5:
            tex = np.ascontiguousarray(tex.T[:lh, :lw]) if lh == lw else cv2.resize(tex.T, (lw, lh))
    elif kind == "fabric":
        tex = 0.05 * smooth_noise(rng, (lh, lw), 2) + 0.04 * smooth_noise(rng, (lh, lw), 30)
    else:
        tex = 0.03 * smooth_noise(rng, (lh, lw), 40) + 0.015 * rng.standard_normal((lh, lw)).astype(
            np.float32
        )
    img = np.clip(base_rgb * (1 + tex[..., None]), 0, 255).astype(np.uint8)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR), {
        "background": kind,
        "background_rgb": base_rgb.tolist(),
    }


def occlusion_from_alpha(masks: np.ndarray) -> np.ndarray:
    """Pixels where the page is hidden: off paper, or occluded on it."""
    return ((masks & MASK_PAPER) == 0) | ((masks & MASK_OCCLUDED) != 0)
