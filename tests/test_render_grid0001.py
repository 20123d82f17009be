"""The 0001 page's grid is where ECG-Image-Kit draws it, and geometry reads time from the trace's frame.

ECG-Image-Kit (the generator behind the Kaggle images) draws its 0.5 pt grid with matplotlib at 200 DPI on
a 2200 x 1700 page; matplotlib snaps each line to a whole pixel: vertical line k (1 mm = 200/25.4 px from
the left edge) is pixel column floor(k * 200/25.4 + 0.5), horizontal line k (from the bottom edge) is
pixel row floor(1700 - k * 200/25.4 + 0.5), every 5th major, 1 px at full colour. The trace is not
snapped. Measured on the generator's own pages (first lines below); the rule is encoded here, not read.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from geometry_pages import fake_ecg

from ecgml.geometry import estimate_page
from ecgml.records import LEADS, Record
from ecgml.render.presets import render

PPM = 200 / 25.4
MAJOR, MINOR = (255, 0, 0), (254, 223, 219)
# the generator's first lines, measured on its PNGs (outside-pages README)
FIRST_MINOR_COLS = [8, 16, 24, 31, 47, 55, 63, 71, 87, 94, 102, 110]
FIRST_MAJOR_COLS = [39, 79, 118, 157, 197, 236, 276, 315, 354, 394, 433, 472]
FIRST_MINOR_ROWS = [15, 23, 31, 39, 54, 62, 70, 78, 94, 102, 109, 117]
FIRST_MAJOR_ROWS = [7, 46, 86, 125, 165, 204, 243, 283, 322, 361, 401, 440]


def generator_columns() -> tuple[list[int], list[int]]:
    """(minor, major) pixel columns of the vertical lines k = 1..279 (k = 0 is under the frame)."""
    cols = [(k, math.floor(k * PPM + 0.5)) for k in range(1, 280)]
    return [c for k, c in cols if k % 5], [c for k, c in cols if k % 5 == 0]


def generator_rows() -> tuple[list[int], list[int]]:
    """(minor, major) pixel rows of the horizontal lines k = 1..215, counted from the bottom edge."""
    rows = [(k, math.floor(1700 - k * PPM + 0.5)) for k in range(1, 216)]
    return sorted(r for k, r in rows if k % 5), sorted(r for k, r in rows if k % 5 == 0)


@pytest.fixture(scope="module")
def page0001():
    t = np.arange(5000) / 500
    sig = np.stack([fake_ecg(t, 7 + j) for j in range(len(LEADS))], 1).astype(np.float32)
    return render(Record(sig, 500, "grid0001"), "0001", seed=0)


def _full_colour(line: np.ndarray, rgb: tuple[int, int, int]) -> list[int]:
    return [int(i) for i in np.flatnonzero(np.all(line == np.asarray(rgb), axis=1))]


def test_the_rule_gives_the_generators_measured_lines() -> None:
    minor_c, major_c = generator_columns()
    minor_r, major_r = generator_rows()
    assert minor_c[:12] == FIRST_MINOR_COLS and major_c[:12] == FIRST_MAJOR_COLS
    assert minor_r[:12] == FIRST_MINOR_ROWS and major_r[:12] == FIRST_MAJOR_ROWS


def test_every_grid_line_of_a_0001_page_is_on_the_generators_pixel(page0001) -> None:
    img = page0001.image
    assert img.shape == (1700, 2200, 3)
    minor_c, major_c = generator_columns()
    minor_r, major_r = generator_rows()
    # the header zone above the top row (rows 20-99) holds only the vertical lines; a margin column band
    # (columns 10-69, left of the pulses) only the horizontal ones
    band_v = np.median(img[20:100], axis=0).astype(int)
    band_h = np.median(img[:, 10:70], axis=1).astype(int)
    # column 0 (line k = 0) is under the generator's black frame, which this renderer does not draw
    assert _full_colour(band_v, MAJOR)[1:] == major_c and _full_colour(band_v, MAJOR)[0] == 0
    assert _full_colour(band_v, MINOR) == minor_c
    assert _full_colour(band_h, MAJOR) == major_r
    assert _full_colour(band_h, MINOR) == minor_r
    # 0.5 pt = 1.39 px: one full pixel and a faint neighbour (0.19 coverage) each side
    for c in major_c[:5]:
        assert np.all(np.abs(band_v[c - 1] - (255, 205, 205)) <= 1) and np.all(band_v[c - 2] == 255)
        assert np.all(np.abs(band_v[c + 1] - (255, 205, 205)) <= 1) and np.all(band_v[c + 2] == 255)


def test_the_0001_page_map_and_layout_are_the_generators(page0001) -> None:
    """RENDERER.md 1.3: paper mm x 200/25.4 = px with no translation; segment starts and baselines."""
    h = page0001.page_map.homography / page0001.page_map.homography[2, 2]
    assert np.allclose(h, np.diag([PPM, PPM, 1.0]), atol=1e-9)
    lay = page0001.layout
    starts = sorted({round(c.x0_mm * PPM, 2) for c in lay.cells})
    assert starts == pytest.approx([118.11, 610.24, 1102.36, 1594.49], abs=0.01)
    # (RENDERER.md gives the baselines in mm to 0.01, 0.04 px)
    assert [b * PPM for b in lay.row_baselines()] == pytest.approx(
        [708.33, 991.67, 1275.0, 1534.71], abs=0.05
    )
    # the first segment starts on a major line: the trace's first sample (continuous x 118.11, centred
    # at index 117.61) and that line (column 118) agree to half a pixel
    assert 118 in generator_columns()[1] and abs(118.11 - 0.5 - 118) < 0.5


def test_geometry_reads_the_trace_frame_not_the_snapped_grid(page0001) -> None:
    """The snapped grid is on average half a pixel right of and below the trace's frame; the estimated
    map must still agree with the page's own (a lattice on the lines alone is 0.5 px = 2.5 ms off)."""
    est = estimate_page(page0001.image, "0001.png")
    pts = np.array([[x, b] for b in page0001.layout.row_baselines() for x in np.linspace(20, 260, 13)])
    d = est.page_map.px_to_mm(page0001.page_map.mm_to_px(pts)) - pts
    assert np.abs(np.median(d, axis=0)).max() * PPM < 0.15  # px


def test_real_world_pages_vary_in_how_their_grid_snaps() -> None:
    from ecgml.render.style import grid_snap, random_style

    kinds = [grid_snap(s) for s in range(400)]
    share = {k: kinds.count(k) / len(kinds) for k in set(kinds)}
    assert set(share) == {(True, PPM), (True, None), (False, None)}
    assert share[(True, PPM)] == pytest.approx(0.5, abs=0.08)
    st = random_style(np.random.default_rng(3))
    assert (st.snap_grid, st.snap_px_per_mm) == grid_snap(st.qr_seed)
