"""The flat page: the exact Kaggle 0001 geometry read from the drawn pixels, variation, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ecgml.errors import EcgmlError
from ecgml.geometry.grid import GRID_SHIFT_MM
from ecgml.kaggle import masked_signal
from ecgml.layout import LAYOUT_NAMES, make_layout
from ecgml.records import LEADS, Record
from ecgml.render.page import (
    MASK_PULSE,
    MASK_SEPARATOR,
    MASK_TEXT,
    MASK_TRACE,
    check_record,
    draw_page,
    plotted_mask,
)
from ecgml.render.presets import render
from ecgml.render.style import kaggle_style

BASELINES = (708.3, 991.7, 1275.0, 1534.7)
STARTS = (118.1, 610.2, 1102.4, 1594.5)
END = 2087.0


def _zero(fs: int = 500) -> Record:
    return Record(np.zeros((fs * 10, 12), np.float32), fs, "zero")


@pytest.fixture(scope="module")
def page0001():
    return render(_zero(), "0001", seed=0)


def _dark(img: np.ndarray) -> np.ndarray:
    return img.astype(np.int32).sum(-1) < 200  # the trace is near black; the red grid sums to >= 255


def test_size_and_colours(page0001):
    img = page0001.image
    assert img.shape == (1700, 2200, 3)
    flat = img.reshape(-1, 3)
    assert (flat == (255, 0, 0)).all(1).sum() > 50_000
    assert (flat == (254, 223, 219)).all(1).sum() > 50_000
    major = (img == (255, 0, 0)).all(-1)
    ppm = 200 / 25.4
    cols = np.nonzero(major.mean(0) > 0.5)[0]
    rows = np.nonzero(major.mean(1) > 0.5)[0]
    # major lines every 5 mm from the bottom-left corner, on the pixel matplotlib snaps them to
    # (floor(c + 0.5)); the one at y = 1700 is off the page and the one at y = 991.3 is hidden under row
    # II's flat trace here
    assert np.array_equal(cols, np.floor(np.arange(56) * 5 * ppm + 0.5).astype(int))
    expected_rows = np.floor((215.9 - np.arange(1, 44) * 5) * ppm + 0.5).astype(int)
    assert np.array_equal(rows, np.sort(expected_rows[expected_rows != 991]))


def test_baselines_from_pixels(page0001):
    dark = _dark(page0001.image)
    for b in BASELINES:
        ys = np.nonzero(dark[int(b) - 30 : int(b) + 30, 300])[0] + int(b) - 30
        assert ys.size > 0
        assert abs(ys.mean() + 0.5 - b) <= 1.0


def test_pulse_and_segment_starts_from_pixels(page0001):
    img, masks = page0001.image, page0001.masks
    dark = _dark(img)
    for b in BASELINES:
        band = dark[int(b) - 60 : int(b) - 20]  # the pulse's vertical sides, above the flat trace
        cols = np.nonzero(band.any(0))[0]
        left, right = cols[cols < 100], cols[(cols > 100) & (cols < 140)]
        assert abs(left.mean() + 0.5 - 78.7) <= 1.0
        assert abs(right.mean() + 0.5 - STARTS[0]) <= 1.0
        top = np.nonzero(dark[int(b) - 100 : int(b) - 60, 90:110].any(1))[0] + int(b) - 100
        assert abs(top.mean() + 0.5 - (b - 78.74)) <= 1.0
        assert (masks[int(b) - 40, 70:130] & MASK_PULSE).any()


def test_separators_and_end_from_pixels(page0001):
    dark, masks = _dark(page0001.image), page0001.masks
    for b in BASELINES[:3]:
        band = dark[int(b) - 22 : int(b) - 6]  # separator ticks reach +-24.8 px; the flat trace is at b
        cols = np.nonzero(band.any(0))[0]
        for x in STARTS[1:]:
            near = cols[np.abs(cols - x) < 8]
            assert near.size >= 4
            assert abs(near.mean() + 0.5 - x) <= 1.0
        assert (masks[int(b) - 15, 600:620] & MASK_SEPARATOR).any()
    row = dark[int(BASELINES[3]) - 3 : int(BASELINES[3]) + 4]
    assert abs(np.nonzero(row.any(0))[0].max() - END) <= 1.5
    assert not band[:, 2095:].any()


def test_truth_constants(page0001):
    lay = page0001.layout
    pm = page0001.page_map
    base_px = [pm.mm_to_px(np.array([[100.0, b]]))[0, 1] for b in lay.row_baselines()]
    assert np.allclose(base_px, BASELINES, atol=0.5)
    starts = sorted({pm.mm_to_px(np.array([[c.x0_mm, 0.0]]))[0, 0] for c in lay.cells})
    assert np.allclose(starts, STARTS, atol=0.5)
    t = page0001.truth
    last = t.xy[(t.cell == len(lay.cells) - 1)][-1]
    assert abs(last[0] - END) <= 1.0 and abs(last[1] - BASELINES[3]) <= 0.5
    assert abs(pm.homography[0, 0] * 10 - 78.74) < 0.01  # px per mV at 10 mm/mV


def test_labels_and_footer(page0001):
    boxes = dict((t, b) for t, b in page0001.meta["text_boxes_mm"])
    ppm = 200 / 25.4
    x0, _, _, y1 = (v * ppm for v in boxes["I"])
    assert abs(x0 - STARTS[0]) <= 4 and abs(y1 - 763.4) <= 1.5  # 'I' sits on its baseline, 7 mm below
    text = (page0001.masks & MASK_TEXT) != 0
    ys, xs = np.nonzero(text[1600:1700, 350:420])  # the digits "25" of "25mm/s" (no descender)
    assert abs(ys.max() + 1600 + 1 - 1660.6) <= 1.5
    assert 392 <= xs.min() + 350 <= 400
    assert "25mm/s" in boxes and "10mm/mV" in boxes


def test_trace_masks_rows_and_centre(page0001):
    for r, b in enumerate(BASELINES):
        on = np.nonzero((page0001.rows[:, 300] >> r) & 1)[0]
        assert abs(on.mean() + 0.5 - b) <= 1.0
        c = np.nonzero((page0001.centre[:, 300] >> r) & 1)[0]
        assert c.size == 1 and abs(c[0] + 0.5 - b) <= 0.5
    assert ((page0001.masks & MASK_TRACE) != 0).sum() > 10_000


def test_standard_windows_match_competition():
    rec = Record(np.random.default_rng(0).normal(size=(10250, 12)).astype(np.float32), 1025, "r")
    lay = make_layout()
    m = plotted_mask(lay, 1025, 10250)
    assert np.array_equal(m, np.isfinite(masked_signal(rec)))


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_every_layout_draws_every_lead(name):
    rec = Record(np.random.default_rng(1).normal(0, 0.3, (5000, 12)).astype(np.float32), 500, "r")
    lay = make_layout(name)
    flat = draw_page(rec, lay, kaggle_style(), 100 / 25.4)
    assert {c.lead for c in lay.cells} == set(LEADS)
    for r in range(lay.n_rows):
        assert ((flat.rows >> r) & 1).any()


def test_bad_input():
    good = np.zeros((5000, 12), np.float32)
    bad = good.copy()
    bad[10, 3] = np.nan
    with pytest.raises(EcgmlError, match="NaN"):
        check_record(Record(bad, 500, "nan"))
    with pytest.raises(EcgmlError, match="need 10"):
        render(Record(good[:4000], 500, "short"), "0001", 0)
    r = Record(good, 500, "fs")
    r.fs = 500.5  # type: ignore[assignment]
    with pytest.raises(EcgmlError, match="positive integer"):
        check_record(r)
    r = Record(good, 500, "leads")
    r.signal = good[:, :11]
    with pytest.raises(EcgmlError, match="12 leads"):
        check_record(r)
    with pytest.raises(ValueError, match="unknown image type"):
        render(Record(good, 500, "t"), "0002", 0)


def test_seeded_and_recorded():
    rec = Record(np.random.default_rng(2).normal(0, 0.3, (5000, 12)).astype(np.float32), 500, "r")
    a, b = render(rec, "realworld", 11), render(rec, "realworld", 11)
    assert np.array_equal(a.image, b.image) and a.meta == b.meta
    layouts, grids, speeds, gains = set(), set(), set(), set()
    for s in range(40):
        m = render(rec, "realworld", s).meta if s < 3 else None
        from ecgml.render.presets import sample_layout
        from ecgml.render.style import random_style

        rng = np.random.default_rng(s)
        lay, p = sample_layout(rng)
        st = random_style(rng)
        layouts.add(lay.name)
        grids.add(st.grid_name)
        speeds.add(p["speed_mm_s"])
        gains.add(p["gain_mm_mv"])
        if m is not None:
            assert "layout" in m["params"] and "style" in m and "page_map" in m
    assert len(layouts) >= 4 and len(grids) >= 4 and speeds == {25.0, 50.0, 12.5} and len(gains) >= 2


def _line_centres_mm(cov: np.ndarray, ppm: float) -> np.ndarray:
    """Centroid (mm) of each run of covered pixels of a 1-D grid-line coverage profile."""
    on = np.flatnonzero(cov > 0)
    runs = np.split(on, np.flatnonzero(np.diff(on) > 1) + 1)
    return np.array([((r + 0.5) * cov[r]).sum() / cov[r].sum() / ppm for r in runs])


@pytest.mark.parametrize(
    ("ppm", "lattice"), [(9.0, None), (9.0, "kaggle"), (8.0003, None), (8.0003, "kaggle")]
)
def test_snapped_grid_at_a_near_integer_density(ppm, lattice):
    """At (nearly) an integer px/mm every 1 mm line falls on a pixel edge: snapping there moves them all
    one way (photos are drawn at 9 px/mm, scans at 7.96-8.04). A Kaggle page's grid was snapped on the
    200 DPI raster it was drawn at, so every capture of it snaps there.
    """
    from dataclasses import replace

    from ecgml.render.page import _grid_coverages

    style = kaggle_style()
    assert style.snap_grid and style.snap_px_per_mm == pytest.approx(200 / 25.4)
    if lattice is None:
        style = replace(style, snap_px_per_mm=None)
    size = (int(60 * ppm), int(40 * ppm))
    minor, major = _grid_coverages(style, (60.0, 40.0), ppm, size)
    row = np.maximum(minor, major)[5]  # one pixel row: every vertical line crosses it
    got = _line_centres_mm(row, ppm)[1:-1]  # the lines at the page's edges are cut
    off = got - np.round(got)
    assert got.size >= 55
    if lattice is None:  # the drawing's own raster: about +0.5 px on every line
        assert np.all(np.abs(off - 0.5 / ppm) < 0.01)
    else:  # the 200 DPI raster's snap: within half its pixel of half a pixel right, that on average
        assert np.abs(off - GRID_SHIFT_MM).max() <= 0.5 * 25.4 / 200 + 0.5 / ppm
        assert abs(off.mean() - GRID_SHIFT_MM) < 0.015
