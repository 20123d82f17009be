"""Small and low-resolution pages (issue 14 item 5): row strokes on a coarse image's enlarged raster, and
the luma retry of a small copy whose grid was not found or measured below the minimum density."""

from __future__ import annotations

import numpy as np
import pytest
from geometry_pages import draw_page

import ecgml.geometry.estimate as est_mod
from ecgml.errors import EcgmlError, ImageTooSmall
from ecgml.geometry.orient import ORIENT_PPM, _strokes

PPM = ORIENT_PPM


def _row(broken: bool) -> tuple[np.ndarray, int]:
    """A 200 mm raster row: a baseline at y = 40 px and six QRS strokes 5 mm tall; `broken` strokes lose
    a raster row at each major grid line (every 5 mm) and lean one column over their height."""
    h, w = 80, int(200 * PPM)
    m = np.zeros((h, w), bool)
    b = 40
    m[b, :] = True
    for x in range(60, w - 60, 120):
        for y in range(b - int(5 * PPM), b + 1):
            m[y, x + (1 if broken and y < b - 10 else 0)] = True
    if broken:
        m[b - 13, :] = False  # a major grid line 3.25 mm above the baseline ate a raster row
    return m, b


def test_broken_leaning_strokes_count_only_when_bridged() -> None:
    clean, b = _row(False)
    assert _strokes(clean, b, PPM) == 6 and _strokes(clean, b, PPM, bridge=True) == 6
    broken, b = _row(True)
    assert _strokes(broken, b, PPM) == 0  # each stroke is cut before it leaves the baseline by 2 mm
    assert _strokes(broken, b, PPM, bridge=True) == 6


def test_a_dashed_line_has_no_strokes_even_bridged() -> None:
    m = np.zeros((80, 800), bool)
    for x0 in range(0, 800, 12):
        m[40, x0 : x0 + 8] = True
        m[41, x0 + 4 : x0 + 10] = True  # a wavy, ragged edge: one raster row up and down
    assert _strokes(m, 40, PPM, bridge=True) == 0


@pytest.mark.parametrize("why", ["grid", "small"])
def test_a_small_copy_without_a_grid_is_measured_again_on_its_luma(monkeypatch, why: str) -> None:
    img, _truth, layout = draw_page(ppm=2.8, seed=1)  # 782 px wide: a web copy
    failed = (
        ImageTooSmall("p.jpg", "image too small (its grid measures 1.40 px/mm)")
        if why == "small"
        else (EcgmlError("p.jpg", "no ECG grid found"))
    )

    def first_attempt_fails(image, path, turn):  # what the palest channel's block lattice did
        raise failed

    monkeypatch.setattr(est_mod, "_estimate_page", first_attempt_fails)
    est = est_mod.estimate_page(img, "p.jpg")
    assert est.diagnostics["luma_retry"] == failed.reason
    assert est.px_per_mm == pytest.approx((2.8, 2.8), rel=0.01) and est.layout.name == layout.name
    big = np.ascontiguousarray(np.repeat(np.repeat(img, 3, axis=0), 3, axis=1))  # 2346 px: not a web copy
    with pytest.raises(EcgmlError, match=failed.reason.split(" (")[0]):
        est_mod.estimate_page(big, "p.jpg")
