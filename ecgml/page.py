"""The map between paper millimetres and image pixels, shared by renderer, geometry and trace model.

Coordinate convention, used everywhere in ecgml:
- paper: millimetres, origin at the page's top-left corner, x right, y down;
- image: continuous pixels, origin at the top-left *corner* of the top-left pixel, so the centre of
  pixel (column i, row j) is at (i + 0.5, j + 0.5). OpenCV puts centres at integers: subtract 0.5
  before handing points to OpenCV and add it back after.
- canonical page: the paper rasterised at (px_per_mm_x, px_per_mm_y), pixel centres at
  ((i + 0.5) / px_per_mm_x, (j + 0.5) / px_per_mm_y) mm.

The map is a homography (paper mm -> image px) followed by a smooth residual displacement, sampled on
a regular grid of paper millimetres, which carries curvature, crumples and lens distortion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.ndimage import map_coordinates


def sample_grid(grid: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Bilinear lookup of a (gy, gx, 2) displacement grid at fractional indices (clamped at edges)."""
    out = np.empty((*gx.shape, 2), dtype=np.float64)
    for k in range(2):
        out[..., k] = map_coordinates(
            grid[..., k], [gy.ravel(), gx.ravel()], order=1, mode="nearest"
        ).reshape(gx.shape)
    return out


def apply_homography(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, dtype=np.float64)
    ph = np.concatenate([pts, np.ones((*pts.shape[:-1], 1))], axis=-1) @ h.T
    return ph[..., :2] / ph[..., 2:3]


@dataclass
class PageMap:
    """paper mm -> image px: `homography` then `residual` (gy, gx, 2) px sampled every `residual_step_mm`."""

    homography: np.ndarray
    image_size: tuple[int, int]  # (width, height) in px
    paper_mm: tuple[float, float]
    residual: np.ndarray | None = None
    residual_step_mm: float = 5.0

    def _residual_at(self, mm: np.ndarray) -> np.ndarray:
        if self.residual is None:
            return np.zeros_like(mm)
        return sample_grid(
            self.residual, mm[..., 0] / self.residual_step_mm, mm[..., 1] / self.residual_step_mm
        )

    def mm_to_px(self, mm: np.ndarray) -> np.ndarray:
        mm = np.asarray(mm, dtype=np.float64)
        return apply_homography(self.homography, mm) + self._residual_at(mm)

    def px_to_mm(self, px: np.ndarray, iterations: int = 8) -> np.ndarray:
        """Invert by fixed-point iteration on the residual (it is small and smooth)."""
        px = np.asarray(px, dtype=np.float64)
        hinv = np.linalg.inv(self.homography)
        mm = apply_homography(hinv, px)
        if self.residual is None:
            return mm
        for _ in range(iterations):
            mm = apply_homography(hinv, px - self._residual_at(mm))
        return mm

    def compose_image_transform(self, m: np.ndarray, new_size: tuple[int, int]) -> PageMap:
        """The map after the image itself goes through the 3x3 pixel transform `m` (old px -> new px).

        Exact for a pure homography; with a residual, the residual is pushed through the
        transform's local linear part (good for the small residuals it carries).
        """
        h = m @ self.homography
        if self.residual is None:
            return PageMap(h, new_size, self.paper_mm, None, self.residual_step_mm)
        gy, gx = self.residual.shape[:2]
        yy, xx = np.mgrid[0:gy, 0:gx].astype(np.float64) * self.residual_step_mm
        mm = np.stack([xx, yy], axis=-1)
        old = self.mm_to_px(mm)
        new = apply_homography(m, old)
        base = apply_homography(h, mm)
        return PageMap(h, new_size, self.paper_mm, (new - base).astype(np.float32), self.residual_step_mm)

    def to_dict(self) -> dict[str, Any]:
        return {
            "homography": self.homography.tolist(),
            "image_size": list(self.image_size),
            "paper_mm": list(self.paper_mm),
            "residual_step_mm": self.residual_step_mm,
            "residual": None if self.residual is None else self.residual.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PageMap:
        res = d.get("residual")
        return cls(
            np.asarray(d["homography"], dtype=np.float64),
            (int(d["image_size"][0]), int(d["image_size"][1])),
            (float(d["paper_mm"][0]), float(d["paper_mm"][1])),
            None if res is None else np.asarray(res, dtype=np.float32),
            float(d.get("residual_step_mm", 5.0)),
        )


def scale_map(px_per_mm: float, image_size: tuple[int, int], paper_mm: tuple[float, float]) -> PageMap:
    """The map of a flat, upright page rasterised at `px_per_mm` (e.g. 200 DPI -> 7.874)."""
    h = np.diag([px_per_mm, px_per_mm, 1.0])
    return PageMap(h, image_size, paper_mm)
