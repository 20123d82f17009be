"""grid_x_phase: the map's remaining x error read from the coloured grid on the rectified page."""

from __future__ import annotations

import numpy as np
import pytest
from geometry_pages import draw_page

from ecgml.geometry.estimate import grid_x_phase
from ecgml.page import PageMap


def shifted(m: PageMap, a: float, b: float = 0.0) -> PageMap:
    """The map whose paper x is off by a + b x mm: map'(x) = map(x - (a + b x)) to first order."""
    t = np.array([[1.0 - b, 0.0, -a], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return PageMap(m.homography @ t, m.image_size, m.paper_mm, m.residual, m.residual_step_mm)


@pytest.mark.parametrize("a", [-0.04, 0.02, 0.1])
def test_an_x_offset_of_the_map_is_read_back(a: float) -> None:
    img, truth, _ = draw_page(ppm=8.0, grid="red", seed=1)
    assert abs(grid_x_phase(img, truth)[0]) < 0.006  # type: ignore[index]
    fix = grid_x_phase(img, shifted(truth, a))
    assert fix is not None
    assert fix[0] == pytest.approx(a, abs=0.006)


def test_an_x_stretch_is_read_as_a_slope() -> None:
    img, truth, _ = draw_page(ppm=8.0, grid="green", seed=2)
    fix = grid_x_phase(img, shifted(truth, 0.0, 2e-4))  # 0.056 mm across the page
    assert fix is not None
    assert fix[1] == pytest.approx(2e-4, abs=5e-5)


def test_a_grey_grid_says_nothing() -> None:
    img, truth, _ = draw_page(ppm=8.0, grid="bw", seed=3)
    assert grid_x_phase(img, shifted(truth, 0.05)) is None
