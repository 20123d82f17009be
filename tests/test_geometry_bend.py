"""Bent and crumpled pages: the coarse map keeps the integrated lattice where no homography reaches, and
the rows of a light trace on a black-and-white scan, or of a page whose pulse was missed, are still found."""

from __future__ import annotations

import numpy as np
import pytest
from geometry_pages import draw_page

from ecgml.geometry import estimate_page
from ecgml.geometry.grid import CoarseFrame, bend_residual
from ecgml.geometry.orient import Rows, _merge_rows, ink_mask
from ecgml.geometry.refine import FrameMap
from ecgml.page import apply_homography

PPM = 4.0  # lattice px per frame mm
H = np.array([[PPM, 0.0, 40.0], [0.0, PPM, 30.0], [0.0, 0.0, 1.0]])


def _tiles(curl_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Frame mm of tiles 20 mm apart over a page, and their px on a page whose left third curls down
    by up to `curl_mm` (quadratic, as a crumpled photo's far edge)."""
    gx, gy = np.meshgrid(np.arange(0, 281, 20.0), np.arange(0, 216, 20.0))
    mm = np.stack([gx.ravel(), gy.ravel()], -1)
    bend = np.zeros_like(mm)
    bend[:, 1] = curl_mm * np.clip((100 - mm[:, 0]) / 100, 0, None) ** 2
    return mm, apply_homography(H, mm + bend)


def test_a_flat_page_keeps_its_homography() -> None:
    mm, px = _tiles(0.0)
    cf = CoarseFrame(H, np.ones(len(mm), bool), mm, px)
    assert bend_residual(cf, H, (1.0, 1.0)) is None


def test_a_curled_page_keeps_the_integrated_lattice_as_residual() -> None:
    mm, px = _tiles(8.0)
    px_bad = px.copy()
    px_bad[20] += 12 * PPM  # one tile integrated 12 mm off its neighbours (a measuring error)
    cf = CoarseFrame(H, np.ones(len(mm), bool), mm, px_bad)
    hw = np.diag([0.5, 0.5, 1.0]) @ H  # the work copy is half the lattice's size
    out = bend_residual(cf, hw, (0.5, 0.5))
    assert out is not None
    fmap = FrameMap(hw, *out)
    err_mm = np.linalg.norm(fmap.mm_to_px(mm) - 0.5 * px, axis=1) / (0.5 * PPM)
    keep = np.arange(len(mm)) != 20
    flat_err = np.linalg.norm(apply_homography(hw, mm) - 0.5 * px, axis=1) / (0.5 * PPM)
    assert flat_err[keep].max() > 7.5  # what the homography alone leaves at the curled edge
    assert np.percentile(err_mm[keep], 90) < 0.5 and err_mm[keep].max() < 1.5  # read: 0.11, 0.59
    assert err_mm[20] < 0.5  # the bad tile is left out: the map there follows its neighbours


def test_light_grey_trace_on_a_grey_grid_is_ink() -> None:
    """A black-and-white scan (majors 0.45 dark on this raster) with a trace only a little darker (0.55):
    one threshold above the majors loses the trace; away from the majors it is held to the paper level."""
    h, w = 400, 600
    ink = np.full((h, w), 0.03, np.float32)
    ink[:, 2::4] = 0.08  # minor lines (1 mm)
    ink[2::4, :] = 0.08
    ink[:, 2::20] = 0.45  # major lines (5 mm): frame x, y = 5k mm with the raster at 0.5 px past them
    ink[2::20, :] = 0.45
    rows = 200 + np.round(8 * np.sin(np.arange(w) / 15.0)).astype(int)
    ink[rows, np.arange(w)] = 0.55
    valid = np.ones((h, w), bool)
    x0 = y0 = -0.625  # raster px 2 lies on frame 0 mm
    assert ink_mask(ink, valid, 4.0, x0)[rows, np.arange(w)].mean() < 0.1  # before: the trace is lost
    m = ink_mask(ink, valid, 4.0, x0, y0)
    cols = np.arange(w)
    away = (np.abs((cols - 2 + 10) % 20 - 10) > 1) & (np.abs((rows - 2 + 10) % 20 - 10) > 1)
    assert m[rows[away], cols[away]].mean() > 0.95  # within a px of a major line the lines' threshold holds
    off_trace = m.copy()
    off_trace[rows, np.arange(w)] = False
    assert off_trace.mean() < 0.01  # the grid lines are not ink


def test_a_grey_trace_on_a_coloured_grid_as_dark_as_it_is_ink_on_the_lines() -> None:
    """A small JPEG copy of a dark green grid (majors 0.73 dark in every channel, as its blurred grey trace):
    a baseline lying on a major line was lost there, and with it a rhythm strip and every pulse
    (validation lowres cabrera-3x4+1R_004). The lines are coloured, the trace grey: grey pixels as dark
    as the level beside the lines are ink on the lines too, and the lines themselves stay out."""
    h, w = 400, 600
    ink = np.full((h, w), 0.03, np.float32)
    chroma = np.full((h, w), 0.02, np.float32)
    ink[:, 2::20] = 0.73  # major lines (5 mm), dark green: as dark as the trace, and coloured
    ink[2::20, :] = 0.73
    chroma[:, 2::20] = 0.3
    chroma[2::20, :] = 0.3
    cols = np.arange(w)
    rows = np.full(w, 202)  # the baseline on a major line (frame y = 50 mm) ...
    beat = (cols % 80) >= 70
    rows[beat] = 190  # ... leaving it 3 mm up for a beat every 20 mm
    ink[rows, cols] = 0.72
    chroma[rows, cols] = 0.02  # grey, also where it lies on the line
    valid = np.ones((h, w), bool)
    x0 = y0 = -0.625  # raster px 2 lies on frame 0 mm
    on = rows == 202
    before = ink_mask(ink, valid, 4.0, x0, y0)
    assert before[rows[on], cols[on]].mean() < 0.1  # darkness alone: the baseline on the line is lost
    m = ink_mask(ink, valid, 4.0, x0, y0, chroma)
    assert m[rows[on], cols[on]].mean() > 0.9
    assert m[rows[~on], cols[~on]].mean() > 0.9
    off_trace = m.copy()
    off_trace[rows, cols] = False
    assert off_trace.mean() < 0.01  # the coloured lines are not ink
    grey = chroma.copy()
    grey[:, 2::20] = grey[2::20, :] = 0.02  # a black-and-white copy: no colour tells the trace from the lines
    assert np.array_equal(ink_mask(ink, valid, 4.0, x0, y0, grey), before)


def test_a_light_grey_trace_page_is_read() -> None:
    """Drawn page, light-grey trace on a light-grey grid: 'no ECG trace found on the grid' before."""
    img, truth, layout = draw_page(ppm=8.0, grid="scan", seed=5, ink=(115, 115, 115))
    est = estimate_page(img, "scan.png")
    assert est.orientation == 0 and est.layout.name == layout.name
    p = np.array([(x, c.baseline_mm) for c in layout.cells for x in np.linspace(c.x0_mm, c.x1_mm, 15)])
    err = np.linalg.norm(est.page_map.px_to_mm(truth.mm_to_px(p)) - p, axis=1)
    assert np.median(err) < 0.1


def test_a_row_whose_pulse_was_missed_is_kept() -> None:
    """Pulses on rows 1, 2 and 4 of four 36 mm apart: the profile's row 3 is a row, not text beside one."""
    pulsed = Rows(
        np.array([64.0, 100.0, 169.0]), np.full(3, -145.0), np.full(3, 100.0), np.ones(3, bool),
        np.zeros(3, bool), np.zeros(3, bool),
    )  # fmt: skip
    prof = Rows(
        np.array([64.0, 100.0, 136.0, 169.0]), np.full(4, -140.0), np.full(4, 100.0), np.zeros(4, bool),
        np.zeros(4, bool), np.zeros(4, bool),
    )  # fmt: skip
    rows = _merge_rows(pulsed, prof)
    assert np.allclose(rows.centres, [64.0, 100.0, 136.0, 169.0])
    assert rows.left[2] == -145.0  # the missed row starts where the pulses do


def test_rows_between_two_pulses_a_row_apart_are_kept() -> None:
    """Pulses on rows 1 and 3 of four 36 mm apart (Kaggle-type 0010 ECG 43): the 72 mm gap is two pitches,
    so the profile's rows 2 and 4 are rows, and a torn edge 23 mm under row 4 is not one."""
    pulsed = Rows(
        np.array([84.0, 156.0]), np.full(2, -80.0), np.full(2, 190.0), np.ones(2, bool),
        np.zeros(2, bool), np.zeros(2, bool),
    )  # fmt: skip
    prof = Rows(
        np.array([85.0, 120.5, 156.5, 189.0, 211.5]), np.full(5, -90.0), np.full(5, 190.0),
        np.zeros(5, bool), np.zeros(5, bool), np.zeros(5, bool),
    )  # fmt: skip
    rows = _merge_rows(pulsed, prof)
    assert np.allclose(rows.centres, [84.0, 120.5, 156.0, 189.0])
    assert np.allclose(rows.left, -80.0)  # the rows without a found pulse start where the pulses do


def test_two_pulses_on_neighbouring_rows_keep_their_pitch() -> None:
    """Pulses on rows 1 and 2 (36 mm): no profile row half-way, so a line 20 mm under row 2 (a label
    line wide enough to pass as a row) stays out, as before."""
    pulsed = Rows(
        np.array([84.0, 120.0]), np.full(2, -80.0), np.full(2, 190.0), np.ones(2, bool),
        np.zeros(2, bool), np.zeros(2, bool),
    )  # fmt: skip
    prof = Rows(
        np.array([84.5, 120.5, 140.0]), np.full(3, -90.0), np.full(3, 190.0),
        np.zeros(3, bool), np.zeros(3, bool), np.zeros(3, bool),
    )  # fmt: skip
    assert np.allclose(_merge_rows(pulsed, prof).centres, [84.0, 120.0])


def _photo_mask(ppm: float = 4.0) -> tuple[np.ndarray, list[float], float, float]:
    """An upright ink mask of a photographed page: three trace rows (a pulse at x = 20 mm, then a beat
    every 20 mm to x = 250), the paper's dashed top edge 40 mm above the first row, and its ragged left
    and dashed right edges 10 mm beyond the row ends. Returns (mask, baselines, row start, row end) in mm."""
    w, h = int(280 * ppm), int(200 * ppm)
    m = np.zeros((h, w), bool)
    bases, x_start, x_end = [80.0, 116.0, 152.0], 20.0, 250.0

    def px(v: float) -> int:
        return int(round(v * ppm))

    for b in bases:
        m[px(b), px(x_start) : px(x_end)] = True  # the baseline
        m[px(b - 10) : px(b) + 1, px(x_start)] = True  # pulse: up, across, down
        m[px(b - 10), px(x_start) : px(x_start + 5) + 1] = True
        m[px(b - 10) : px(b) + 1, px(x_start + 5)] = True
        for x in np.arange(x_start + 12, x_end - 5, 20.0):  # R waves 8 mm tall
            m[px(b - 8) : px(b) + 1, px(x)] = True
    rng = np.random.default_rng(0)
    for x in np.arange(2.0, 278.0, 13.0):  # dashed top edge at y = 40
        m[px(40), px(x) : px(x + 10)] = True
    for y in range(px(40), h):  # ragged left edge at x = 10, dashed right edge at x = 260
        c = px(x_start - 10) + int(rng.integers(-2, 3))
        m[y, c : c + 3] = rng.random() < 0.85
        m[y, px(x_end + 10)] = (y // px(8)) % 3 != 2
    return m, bases, x_start, x_end


def test_paper_edges_are_neither_rows_nor_row_ends() -> None:
    """A photo's paper edges (0005 ECG 31 of the Kaggle-type set: the top and bottom edge were read as rows,
    six rows of four; 0010 ECG 25: the rows started on the left edge) must not count as rows or row ends."""
    from ecgml.geometry.orient import _rows

    m, bases, x_start, x_end = _photo_mask()
    rows = _rows(m, 0.0, 0.0, 4.0, np.ones_like(m))
    assert np.allclose(rows.centres, bases, atol=0.5)
    assert np.allclose(rows.left, x_start, atol=0.5)  # the pulse, not the ragged edge 10 mm left of it
    assert np.allclose(rows.right, x_end, atol=1.0)  # the last sample, not the dashed edge past it
    assert not rows.left_cut.any() and not rows.right_cut.any()
    assert rows.pulse.all()


def test_a_row_ending_on_the_paper_edge_is_cut() -> None:
    """Rows that run into a torn edge end there: cut, so their end says nothing about the page."""
    from ecgml.geometry.orient import _rows

    m, _, x_start, _ = _photo_mask()
    tear = int(200 * 4.0)
    m[:, tear:] = False
    m[int(40 * 4.0) :, tear : tear + 3] = True  # the torn edge runs through the rows
    rows = _rows(m, 0.0, 0.0, 4.0, np.ones_like(m))
    assert len(rows.centres) == 3
    assert np.all(rows.right < 200.0) and rows.right_cut.all()
    assert np.allclose(rows.left, x_start, atol=0.5)


@pytest.mark.parametrize(("first_tiles", "retried"), [(30, False), (10, True)])
def test_a_bent_page_keeps_its_lattice_scale(monkeypatch, first_tiles: int, retried: bool) -> None:
    """A bent page (lattice integrated to a residual) whose first round at the lattice's scale measures >= 20
    tiles keeps that scale: a crumpled photo's first round found 39 (< 40) and a 5x retry with 6 tiles won
    the area-weighted vote (Kaggle-type 0010 ECG 34, 133 mm off). With fewer tiles the scales are tried."""
    import dataclasses

    import ecgml.geometry.estimate as est_mod

    img, _, _ = draw_page(ppm=8.0, seed=0)
    calls: list[bool] = []
    real_refine = est_mod.refine

    def bent(*_a: object) -> tuple[np.ndarray, tuple[float, float], float]:
        return np.zeros((40, 40, 2)), (-200.0, -200.0), 10.0  # a bend of zero: the page is flat

    def counted(dark, fmap, ext, **kw):  # type: ignore[no-untyped-def]
        r = real_refine(dark, fmap, ext, **kw)
        # scale retries: no residual, default rounds, on lines or dots
        calls.append(fmap.residual is None and set(kw) <= {"dots"})
        # the first round at the lattice's scale, on medians along the lines and (a dotted grid) on means
        if (len(calls) == 1 or (len(calls) == 2 and kw.get("dots"))) and r is not None:
            r = dataclasses.replace(r, n_tiles=first_tiles)
        return r

    monkeypatch.setattr(est_mod, "bend_residual", bent)
    monkeypatch.setattr(est_mod, "refine", counted)
    e = estimate_page(img, "bent.png")
    assert any(calls[1:]) is retried
    assert e.diagnostics.get("scale_retry", False) is retried
