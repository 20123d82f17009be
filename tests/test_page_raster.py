"""PageMap.raster_to_px (the canonical page's fast map) against the point-by-point mm_to_px."""

import numpy as np

from ecgml.page import PageMap


def test_raster_to_px_matches_mm_to_px() -> None:
    rng = np.random.default_rng(0)
    h = np.array([[14.2, 0.9, 310.0], [-1.1, 13.8, 240.0], [2e-4, -1.5e-4, 1.0]])
    residual = rng.normal(0, 3, (45, 57, 2)).astype(np.float32)  # rough: kinks at every node
    pm = PageMap(h, (4032, 3024), (279.4, 215.9), residual, 5.0)
    xs = (np.arange(-20, 2255) + 0.5) / 8.0  # reaches beyond the grid: clamped like sample_grid
    ys = (np.arange(0, 1727, 7) + 0.5) / 8.0
    mx, my = pm.raster_to_px(xs, ys)
    gx, gy = np.meshgrid(xs, ys)
    ref = pm.mm_to_px(np.stack([gx, gy], -1))
    assert mx.dtype == np.float32 and mx.shape == (len(ys), len(xs))
    err = np.hypot(mx - ref[..., 0], my - ref[..., 1])
    assert err.max() < 2e-3  # float32 rounding of values up to ~4000 px
    none = PageMap(h, (4032, 3024), (279.4, 215.9)).raster_to_px(xs, ys)
    assert np.abs(none[0] - (ref[..., 0] - pm._residual_at(np.stack([gx, gy], -1))[..., 0])).max() < 2e-3
