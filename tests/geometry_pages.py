"""A minimal ECG page drawn for the geometry tests (the renderer does the realistic ones), plus warps.

The page is drawn at `ppm` px/mm with OpenCV: a grid anchored at the bottom-left corner (1 mm minor,
5 mm major; each line where ECG-Image-Kit's 200 DPI raster snaps it), a made-up ECG in every layout cell,
calibration pulses, separator ticks and labels. Its truth is a PageMap (paper mm -> image px) that the
warps keep exact.
"""

from __future__ import annotations

import cv2
import numpy as np

from ecgml.layout import PageLayout, make_layout
from ecgml.page import PageMap
from ecgml.render.page import snap_to_pixels

SHIFT = 4  # cv2 fixed-point bits
KAGGLE_PPM = 200 / 25.4  # the grid is snapped as ECG-Image-Kit's 200 DPI page snaps it (matplotlib)


def _pt(x_px: float, y_px: float) -> tuple[int, int]:
    # continuous px (corner origin) -> cv2 fixed point (centres at integers)
    return int(round((x_px - 0.5) * (1 << SHIFT))), int(round((y_px - 0.5) * (1 << SHIFT)))


def fake_ecg(t: np.ndarray, seed: int) -> np.ndarray:
    """A plausible-looking ECG (mV): P, QRS, T waves at a random rate."""
    rng = np.random.default_rng(seed)
    rr = rng.uniform(0.7, 1.1)
    amp = rng.uniform(0.5, 1.6) * rng.choice([1, -1], p=[0.8, 0.2])
    ph = (t + rng.uniform(0, rr)) % rr
    v = 0.12 * np.exp(-(((ph - 0.15) / 0.03) ** 2))
    v += amp * np.exp(-(((ph - 0.3) / 0.012) ** 2)) - 0.2 * amp * np.exp(-(((ph - 0.33) / 0.01) ** 2))
    v += 0.3 * np.exp(-(((ph - 0.55) / 0.06) ** 2))
    return v + 0.03 * np.sin(2 * np.pi * 0.3 * t)


def draw_page(
    layout: PageLayout | None = None,
    ppm: float = 8.0,
    grid: str = "red",
    seed: int = 0,
    separators: bool = True,
    labels: bool = True,
    ink: tuple[int, int, int] = (10, 10, 10),
) -> tuple[np.ndarray, PageMap, PageLayout]:
    """(RGB uint8 image, true PageMap, layout) of a flat upright page (`grid` "scan" is the grey of a
    black-and-white scan, lighter than "bw")."""
    layout = layout or make_layout()
    pw, ph = layout.paper_mm
    w, h = int(round(pw * ppm)), int(round(ph * ppm))
    img = np.full((h, w, 3), 255, np.uint8)
    colours = {
        "red": ((255, 0, 0), (254, 223, 219)),
        "bw": ((102, 102, 102), (191, 191, 191)),
        "scan": ((140, 140, 140), (225, 225, 225)),
        "green": ((0, 150, 60), (190, 235, 200)),
        "blue": ((90, 140, 210), (190, 215, 240)),
    }
    if grid != "none":
        major, minor = colours[grid]
        for minor_pass in (True, False):
            col = minor if minor_pass else major
            for k in range(int(pw) + 1):
                if (k % 5 == 0) == minor_pass:
                    continue
                x = snap_to_pixels(np.array(float(k)), KAGGLE_PPM) * ppm
                cv2.line(img, _pt(x, 0), _pt(x, h), col, 1, cv2.LINE_AA, SHIFT)
            for k in range(int(ph) + 1):
                if (k % 5 == 0) == minor_pass:
                    continue
                y = snap_to_pixels(np.array(ph - k), KAGGLE_PPM) * ppm
                cv2.line(img, _pt(0, y), _pt(w, y), col, 1, cv2.LINE_AA, SHIFT)
    lw = max(1, int(round(0.26 * ppm)))
    gain, speed = layout.gain_mm_mv, layout.speed_mm_s
    for i, c in enumerate(layout.cells):
        t = np.arange(c.t0_s, c.t1_s, 1 / 500)
        v = fake_ecg(t, seed * 100 + sum(map(ord, c.lead)) % 97 + i % 3)
        x = c.x0_mm + (t - c.t0_s) * speed
        y = c.baseline_mm - v * gain
        pts = np.array([_pt(a * ppm, b * ppm) for a, b in zip(x, y, strict=True)], np.int32)
        cv2.polylines(img, [pts], False, ink, lw, cv2.LINE_AA, SHIFT)
        if labels:
            cv2.putText(
                img,
                c.lead,
                (int(c.x0_mm * ppm), int((c.baseline_mm + 7) * ppm)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.1 * ppm,
                ink,
                max(1, lw - 1),
                cv2.LINE_AA,
            )
        last_col = max(d.col for d in layout.cells if d.row == c.row)
        if separators and c.col < last_col:
            cv2.line(
                img,
                _pt(c.x1_mm * ppm, (c.baseline_mm - 3) * ppm),
                _pt(c.x1_mm * ppm, (c.baseline_mm + 3) * ppm),
                ink,
                lw + 1,
                cv2.LINE_AA,
                SHIFT,
            )
    for p in layout.pulses:
        # the renderer's (and ECG-Image-Kit's) open box: up, across, down
        xs = [p.x0_mm, p.x0_mm, p.x1_mm, p.x1_mm]
        ys = [p.baseline_mm, p.baseline_mm - gain, p.baseline_mm - gain, p.baseline_mm]
        pts = np.array([_pt(a * ppm, b * ppm) for a, b in zip(xs, ys, strict=True)], np.int32)
        cv2.polylines(img, [pts], False, ink, lw + 1, cv2.LINE_AA, SHIFT)
    cv2.putText(
        img,
        "25mm/s  10mm/mV",
        (int(50 * ppm), int((ph - 6) * ppm)),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.1 * ppm,
        ink,
        1,
        cv2.LINE_AA,
    )
    page_map = PageMap(np.diag([ppm, ppm, 1.0]), (w, h), layout.paper_mm)
    return img, page_map, layout


def _cv(m: np.ndarray) -> np.ndarray:
    """Continuous-px transform -> OpenCV (centres at integers) transform."""
    a = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])
    b = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1.0]])
    return b @ m @ a


def warp(
    img: np.ndarray,
    page_map: PageMap,
    m: np.ndarray,
    size: tuple[int, int],
    background: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, PageMap]:
    """Push the image through the continuous-px homography `m` onto a (w, h) canvas over a background."""
    rng = np.random.default_rng(seed)
    w, h = size
    if background is None:
        bg = np.zeros((h, w, 3), np.uint8)
        base = np.array([150, 120, 90]) + rng.integers(-30, 30, 3)
        noise = cv2.GaussianBlur(rng.normal(0, 25, (h, w)).astype(np.float32), (0, 0), 3)
        for k in range(3):
            bg[..., k] = np.clip(base[k] + noise, 0, 255).astype(np.uint8)
    else:
        bg = np.full((h, w, 3), background, np.uint8)
    out = cv2.warpPerspective(
        img, _cv(m), (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)
    )
    mask = cv2.warpPerspective(np.full(img.shape[:2], 255, np.uint8), _cv(m), (w, h), flags=cv2.INTER_LINEAR)
    a = (mask.astype(np.float32) / 255)[..., None]
    out = (out * a + bg * (1 - a)).astype(np.uint8)
    return out, page_map.compose_image_transform(m, size)


def rotation_90(k: int, w: int, h: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Continuous-px transform that turns a (w, h) image by k*90 degrees counter-clockwise."""
    k %= 4
    if k == 0:
        return np.eye(3), (w, h)
    if k == 1:
        return np.array([[0, 1, 0], [-1, 0, w], [0, 0, 1.0]]), (h, w)
    if k == 2:
        return np.array([[-1, 0, w], [0, -1, h], [0, 0, 1.0]]), (w, h)
    return np.array([[0, -1, h], [1, 0, 0], [0, 0, 1.0]]), (h, w)


def perspective(
    w: int, h: int, out: tuple[int, int], jitter: float, seed: int, fill: float = 0.8
) -> np.ndarray:
    """A random perspective that puts the (w, h) image inside `out` at about `fill` of its size."""
    rng = np.random.default_rng(seed)
    ow, oh = out
    s = fill * min(ow / w, oh / h)
    cx, cy = ow / 2, oh / 2
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    dst = np.array([[cx + (x - w / 2) * s, cy + (y - h / 2) * s] for x, y in src])
    dst += rng.uniform(-jitter, jitter, dst.shape) * s * w
    return cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32)).astype(np.float64)
