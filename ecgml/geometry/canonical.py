"""Resample an image onto the canonical page: the paper on a fixed millimetre raster.

Pixel (i, j) of the canonical raster has its centre at ((i + 0.5) / px_per_mm_x, (j + 0.5) / px_per_mm_y)
paper mm (see ecgml.page for the convention). Areas outside the input image come out white.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ecgml.page import PageMap

DEFAULT_PX_PER_MM = (8.0, 8.0)


@dataclass
class CanonicalPage:
    image: np.ndarray  # (H, W, 3) uint8 RGB or (H, W) uint8
    px_per_mm: tuple[float, float]
    paper_mm: tuple[float, float]
    # input px per paper mm where the page was cut from (0: unknown): how sharp its strokes can be, since
    # a small copy resampled up to the raster keeps its own blur
    source_px_per_mm: float = 0.0

    def mm_to_px(self, x_mm: np.ndarray, y_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Paper mm to continuous canonical pixel coordinates (corner origin)."""
        return np.asarray(x_mm) * self.px_per_mm[0], np.asarray(y_mm) * self.px_per_mm[1]

    def px_to_mm(self, x_px: np.ndarray, y_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(x_px) / self.px_per_mm[0], np.asarray(y_px) / self.px_per_mm[1]


def canonical_page(
    image: np.ndarray,
    page_map: PageMap,
    px_per_mm: tuple[float, float] = DEFAULT_PX_PER_MM,
    interpolation: int = cv2.INTER_LINEAR,
) -> CanonicalPage:
    """Warp `image` through `page_map` so that the paper fills a (paper_h*ppm_y, paper_w*ppm_x) raster."""
    w = int(round(page_map.paper_mm[0] * px_per_mm[0]))
    h = int(round(page_map.paper_mm[1] * px_per_mm[1]))
    xs = (np.arange(w) + 0.5) / px_per_mm[0]
    ys = (np.arange(h) + 0.5) / px_per_mm[1]
    if page_map.residual is None:
        # A homography: let OpenCV do it directly (fast). Canonical px -> mm -> image px, centres at integers.
        s = np.array(
            [[1 / px_per_mm[0], 0, 0.5 / px_per_mm[0]], [0, 1 / px_per_mm[1], 0.5 / px_per_mm[1]], [0, 0, 1]]
        )
        shift = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
        m = shift @ page_map.homography @ s
        out = cv2.warpPerspective(
            image,
            m,
            (w, h),
            flags=interpolation | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(255, 255, 255),
        )
        return CanonicalPage(out, px_per_mm, page_map.paper_mm, source_density(page_map))
    # With a residual, the full sampling grid (image px, centres at integers for OpenCV).
    mapx, mapy = page_map.raster_to_px(xs, ys)
    mapx -= 0.5
    mapy -= 0.5
    out = cv2.remap(
        image, mapx, mapy, interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=(255, 255, 255)
    )
    return CanonicalPage(out, px_per_mm, page_map.paper_mm, source_density(page_map))


def source_density(page_map: PageMap) -> float:
    """Input px per paper mm at the paper's centre, the lesser of the two axes (a tilted or foreshortened
    axis is the blurrier one)."""
    cx, cy = page_map.paper_mm[0] / 2, page_map.paper_mm[1] / 2
    p = page_map.mm_to_px(np.array([[cx, cy], [cx + 1.0, cy], [cx, cy + 1.0]]))
    return float(min(np.hypot(*(p[1] - p[0])), np.hypot(*(p[2] - p[0]))))


def chroma_columns(rgb: np.ndarray) -> np.ndarray:
    """Mean chroma (max - min channel) of each column of an (H, W, 3) raster: the lines of a coloured
    grid have it, grey or black ink (trace, labels) has none. Both x-phase readings start from it."""
    return (rgb.max(axis=2).astype(np.float32) - rgb.min(axis=2)).mean(axis=0)
