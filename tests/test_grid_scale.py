"""The grid measured at the right scale (issue 14 items 2 and 5): a grid of 5 mm lines only, fine lines
dense for the lattice raster, and a grid of dots - each read at its true px per mm."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from geometry_pages import fake_ecg

from ecgml.geometry.estimate import estimate_page
from ecgml.geometry.grid import MIN_CYCLES, TILE, _fundamental, _prep, _spectrum, tile_lattice
from ecgml.layout import make_layout
from ecgml.records import LEADS, Record
from ecgml.render.page import draw_page
from ecgml.render.style import PageStyle


def _record() -> Record:
    t = np.arange(5000) / 500
    sig = np.stack([fake_ecg(t, 7 + j) for j in range(len(LEADS))], 1).astype(np.float32)
    return Record(sig, 500, "synthetic")


def _page(ppm: float, **style: object) -> np.ndarray:
    st = PageStyle(**style)  # type: ignore[arg-type]
    img = draw_page(_record(), make_layout(), st, ppm).image
    return np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))


def test_a_grid_of_5_mm_lines_only_is_measured_at_its_scale() -> None:
    # sharp 5 mm lines put every multiple of their frequency in a tile's spectrum; their 3rd harmonic
    # (5/3 mm) read as the period made the 1 mm decision land the page under 1 px/mm (refused as small)
    img = _page(3.8, grid_minor=False, grid_major_rgb=(240, 110, 60), grid_major_pt=0.6)
    est = estimate_page(img, "majors.png")
    assert est.px_per_mm == pytest.approx((3.8, 3.8), rel=0.03)


def _comb(period: float, width: float, rng: np.random.Generator, minor: float = 0.0) -> np.ndarray:
    """A tile's profile across sharp lines every `period` px (with lines `minor` as dark every period/5)."""
    u = np.arange(TILE) + 0.5 + rng.uniform(0, period)
    p = np.zeros(TILE)
    for per, depth in ((period, 1.0), (period / 5, minor)):
        if depth:
            d = np.abs(((u + per / 2) % per) - per / 2)
            p = np.maximum(p, depth * np.clip(width / 2 + 0.5 - d, 0, 1))
    return p + 0.02 * rng.normal(size=TILE)


@pytest.mark.parametrize("period, minor", [(19.55, 0.0), (22.0, 0.4), (4.5, 0.0)])
def test_a_tile_period_is_the_lattice_fundamental_not_a_harmonic(period: float, minor: float) -> None:
    # a comb of sharp lines has every multiple of its frequency; with only two harmonics below 0.45
    # cycles/px to average, its 3rd (period 6.5 px for 19.55) scored above the fundamental on about
    # one tile in three, and the 1 mm / 5 mm decision then landed 5/3 off
    rng = np.random.default_rng(3)
    spectra = [_prep(_spectrum(_comb(period, 1.5, rng, minor))) for _ in range(30)]
    got = [1 / _fundamental(sp, MIN_CYCLES / TILE, 0.42, sub=True)[0] for sp in spectra]
    # 5 mm only, or 1 mm only: that period; 5 mm over 1 mm lines: either (the lattice decides which)
    ok = [min(abs(g / period - 1), abs(g / (period / 5) - 1) if minor else 1.0) < 0.05 for g in got]
    assert all(ok), sorted(np.round(got, 1))


def _crossed_lines(period: float, width: float, size: int = 640) -> np.ndarray:
    """Darkness (float32, 0..1) of a square lattice of lines `width` px wide every `period` px."""
    u = np.arange(size) + 0.5
    d = np.abs(((u + period / 2) % period) - period / 2)
    prof = np.clip(width / 2 + 0.5 - d, 0, 1)
    return np.maximum(prof[:, None], prof[None, :]).astype(np.float32)


def test_dense_fine_lines_are_measured_along_the_image_axes() -> None:
    # lines 2.5 px wide every 5 px: most of the gradient sits at the crossings, diagonal, and cancels
    # the lines' own 4-fold direction; no tile is coherent, yet the lattice is plain
    dark = cv2.GaussianBlur(_crossed_lines(5.0, 2.5), (0, 0), 0.6)
    assert tile_lattice(dark) is None
    lat = tile_lattice(dark, axis_prior=True)
    assert lat is not None and len(lat.centre) >= 16
    assert float(np.median(lat.spacing)) == pytest.approx(5.0, rel=0.03)


def test_a_dotted_grid_is_measured_on_means_along_its_lines() -> None:
    # dots at the 5 mm crossings only (a thermal printer's grid): a line's median is the paper's
    img = _page(8.0, grid_dots=True, grid_minor=False, grid_major_pt=1.2)
    est = estimate_page(img, "dots.png")
    assert est.px_per_mm == pytest.approx((8.0, 8.0), rel=0.02)
    assert est.diagnostics.get("dotted_grid") is True
