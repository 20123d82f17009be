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


def _lerp_index(pos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Left sample and weight of linear interpolation at fractional indices `pos` of n samples, clamped
    at the ends like `sample_grid` (map_coordinates, order 1, mode "nearest")."""
    p = np.clip(pos, 0, n - 1)
    k = np.minimum(np.floor(p).astype(np.int64), max(n - 2, 0))
    return k, p - k


def _lerp_weights(pos: np.ndarray, n: int) -> np.ndarray:
    """(len(pos), n) float32 matrix of linear interpolation weights (see `_lerp_index`)."""
    k, f = _lerp_index(pos, n)
    w = np.zeros((len(pos), n), np.float32)
    r = np.arange(len(pos))
    np.add.at(w, (r, k), 1 - f)
    if n > 1:
        np.add.at(w, (r, k + 1), f)
    return w


def _add_lerp_cols(out: np.ndarray, a: np.ndarray, pos: np.ndarray) -> None:
    """out += the columns of `a` (rows, n) linearly interpolated at fractional indices `pos` (clamped).

    Runs of output columns between the same two samples are one broadcast each (no gathers, no
    dense weight matrix): the cost is two passes over `out`.
    """
    n = a.shape[1]
    if n == 1:
        out += a
        return
    k, f = _lerp_index(pos, n)
    f = f.astype(np.float32)
    d = a[:, 1:] - a[:, :-1]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    ends = np.r_[starts[1:], len(k)]
    for s0, s1 in zip(starts.tolist(), ends.tolist(), strict=True):
        c = int(k[s0])
        blk = out[:, s0:s1]
        blk += d[:, c : c + 1] * f[None, s0:s1]
        blk += a[:, c : c + 1]


def raster_to_px(
    h: np.ndarray,
    residual: np.ndarray | None,
    origin: tuple[float, float],
    step: float,
    xs: np.ndarray,
    ys: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Homography `h` plus a bilinear `residual` grid (node (i, j) at origin + step * (j, i) mm) on the
    separable raster of points (xs[i], ys[j]): two float32 (len(ys), len(xs)) arrays of image px.

    The same values as evaluating point by point (to float32 rounding, < 1e-3 px), but the map never
    touches more than two full-size arrays: the homography's numerators and denominator are sums of a
    row and a column term, and the bilinear residual is interpolated along y (small) and then along x.
    """
    xs = np.asarray(xs, np.float64)
    ys = np.asarray(ys, np.float64)
    inv = (h[2, 0] * xs).astype(np.float32)[None, :] + (h[2, 1] * ys + h[2, 2]).astype(np.float32)[:, None]
    np.reciprocal(inv, out=inv)
    out = []
    for r in range(2):
        m = (h[r, 0] * xs).astype(np.float32)[None, :] + (h[r, 1] * ys + h[r, 2]).astype(np.float32)[:, None]
        m *= inv
        out.append(m)
    if residual is not None:
        gy, gx = residual.shape[:2]
        wy = _lerp_weights((ys - origin[1]) / step, gy)
        for r in range(2):
            _add_lerp_cols(out[r], wy @ residual[..., r].astype(np.float32), (xs - origin[0]) / step)
    return out[0], out[1]


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

    def raster_to_px(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`mm_to_px` at all points (xs[i], ys[j]) mm, fast: float32 (len(ys), len(xs)) x and y px."""
        return raster_to_px(self.homography, self.residual, (0.0, 0.0), self.residual_step_mm, xs, ys)

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
