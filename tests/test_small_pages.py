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


def _found(centres: list[float], k: int = 0) -> tuple:
    from ecgml.geometry.orient import Orientation, Rows

    c = np.array(centres, float)
    rows = Rows(c, np.full(len(c), 10.0), np.full(len(c), 250.0), np.zeros(len(c), bool))
    return Orientation(k, 1.5, 1.0), rows, np.zeros((4, 4), bool)


@pytest.mark.parametrize(
    ("coarse", "shape", "bridged", "want"),
    [
        (False, [-88.0, -55.0, 37.0, 42.2], [107.6, 138.4, 168.9], "rows_bridged"),  # lowres 3x4_004
        (False, [39.0, 66.0, 93.0, 121.0, 147.0, 176.0], [40.0, 95.0, 150.0], "trace_ink"),  # more, even
        (False, [40.0, 70.0, 100.0], [40.0, 70.0, 100.0], "trace_ink"),  # a tie keeps the shape's rows
        (False, [], [60.0], ""),  # one bridged row is no better than none
        (False, [], [126.0, 136.0], ""),  # nor are two (test lowres 6x1-limb_004: a grid 2x off, 10 mm apart)
        (False, [50.0], [40.0, 70.0, 110.0], "trace_ink"),  # bridged rows off one pitch: text, grid bits
        (True, [40.0, 95.0, 170.0], [40.0, 70.0, 100.0], "trace_ink"),  # enlarged raster: bridged already
    ],
)
def test_rows_looked_for_again_prefer_one_pitch(monkeypatch, coarse, shape, bridged, want) -> None:
    """Under two rows on the ink mask: rows by shape or with bridged strokes, one pitch before more rows."""
    calls = []

    def fake_orient(ink, paper, valid, box, ppm, turn, mask=None, pulses=True, lattice=True, coarse=False):
        calls.append("shape" if mask is not None else "bridged" if coarse else "first")
        return _found(shape if mask is not None else bridged, k=1 if mask is not None else 2)

    monkeypatch.setattr(est_mod, "orient", fake_orient)
    monkeypatch.setattr(est_mod, "line_free_mask", lambda ink, paper, ppm: np.zeros_like(paper))
    z = np.zeros((8, 8), np.uint8)
    first = _found([])
    ori, rows, _m, how = est_mod._rows_again(z, z > 0, z == 0, est_mod.Extent(0, 0, 2, 2), 0, coarse, first)
    assert how == want
    assert ("bridged" in calls) == (not coarse)
    if want == "rows_bridged":
        assert list(rows.centres) == bridged and ori.k == 2
    elif want == "trace_ink":
        assert list(rows.centres) == shape and ori.k == 1
    else:
        assert rows is first[1]


def test_on_one_pitch() -> None:
    from ecgml.geometry.orient import on_one_pitch

    assert on_one_pitch(_found([107.6, 138.4, 168.9])[1])
    assert not on_one_pitch(_found([-88.0, -55.0, 37.0, 42.2])[1])
    assert not on_one_pitch(_found([50.0])[1])
    assert not on_one_pitch(_found([50.0, 80.0])[1])


def test_a_pulse_with_broken_sides_is_found_when_bridged() -> None:
    """A coarse raster's 1 px pulse sides lose every other raster row (as its QRS strokes do): bridged,
    the row still starts at a pulse (and its leads 5 mm right of the pulse's left edge)."""
    from ecgml.geometry.orient import _ink_width, _row_at

    m, b = _row(False)
    m = np.vstack([np.zeros((40, m.shape[1]), bool), m])  # room above the baseline for a 10 mm pulse
    b += 40
    m[b, :20] = False
    for x in range(100, m.shape[1] - 60, 120):  # T waves: the trace leaves its baseline for 4 mm
        m[b, x : x + 16] = False
        m[b - 12, x : x + 16] = True
    left, right, top = 20, 40, b - int(10 * PPM)
    m[top, left : right + 1] = True
    for x in (left, right):
        m[top:b:2, x] = True  # every other raster row of each side
    for bridge in (False, True):
        got = _row_at(m, b, 8.0, _ink_width(m), 0.0, 0.0, PPM, None, bridge)
        assert got is not None and got[0][3] is bridge


def _first_size_fails(monkeypatch, error: EcgmlError) -> list[float]:
    """`_attempt` fails with `error` at the image's first work size (as on validation 0005 6x2_003, whose
    phase filters lost the grid at its own 1344 px); returns the enlargements tried."""
    tried: list[float] = []
    real = est_mod._attempt

    def attempt(image, path, work_long_side, turn=0, look=est_mod.PLAIN):
        tried.append(look.enlarge)
        if look.enlarge == 1.0:
            raise error
        return real(image, path, work_long_side, turn, look)

    monkeypatch.setattr(est_mod, "_attempt", attempt)
    monkeypatch.setattr(est_mod, "_panel_estimate", lambda image: None)
    return tried


def test_a_small_image_without_a_grid_is_measured_again_enlarged(monkeypatch) -> None:
    img, _truth, layout = draw_page(ppm=2.8, seed=1)
    why = "no ECG grid found (grid lines not measurable)"
    tried = _first_size_fails(monkeypatch, EcgmlError("p.png", why))
    est = est_mod.estimate_page(img, "p.png")
    assert est.diagnostics["enlarged_retry"] == why
    assert sorted(set(tried) - {1.0}) == sorted(est_mod.ENLARGE_RETRIES)
    assert est.px_per_mm == pytest.approx((2.8, 2.8), rel=0.01) and est.layout.name == layout.name


def test_a_grid_without_rows_is_not_enlarged(monkeypatch) -> None:
    img, _truth, _layout = draw_page(ppm=2.8, seed=1)
    plane = est_mod.estimate_page(img, "p.png").page_map
    tried = _first_size_fails(monkeypatch, est_mod.GridWithoutRows("p.png", plane))
    monkeypatch.setattr(est_mod, "_panel_rectified_estimate", lambda image, est: None)
    with pytest.raises(EcgmlError):
        est_mod.estimate_page(img, "p.png")
    assert set(tried) == {1.0}


def test_the_enlarged_reading_kept_is_the_surest_dense_enough(monkeypatch) -> None:
    """A grid read at a fraction of its density on one enlarged copy (below the minimum) is not kept,
    however sure; of the rest, the surest is."""
    img, _truth, _layout = draw_page(ppm=2.8, seed=1)
    real = est_mod.estimate_page(img, "p.png")
    got = {1.5: (1.4, 0.9), 2.0: (2.8, 0.6)}  # enlargement: (px/mm, confidence)

    def attempt(image, path, work_long_side, turn=0, look=est_mod.PLAIN):
        ppm, conf = got[look.enlarge]
        return est_mod.replace(real, px_per_mm=(ppm, ppm), confidence=conf, diagnostics={})

    monkeypatch.setattr(est_mod, "_attempt", attempt)
    est = est_mod._enlarged_retry(img, "p.png", 0)
    assert est is not None and est.confidence == 0.6
    got[2.0] = (1.9, 0.6)
    assert est_mod._enlarged_retry(img, "p.png", 0) is None


def _rows_mask(
    end_mm: float, width_mm: float = 280.0, start_mm: float = 20.0
) -> tuple[np.ndarray, list[float]]:
    """An upright ink raster (paper mm = raster mm) of six 6x2 rows whose traces run from `start_mm` to
    `end_mm`, with grid dashes (1 px every 5 mm) past them to the paper's edge."""
    from ecgml.layout import make_layout

    base = make_layout("6x2").row_baselines()
    m = np.zeros((int(220 * PPM), int(width_mm * PPM)), bool)
    for b in base:
        y = int(b * PPM)
        m[y, int(start_mm * PPM) : int(end_mm * PPM)] = True
        for x in np.arange(start_mm + 10, end_mm - 5, 20.0):  # QRS strokes
            m[y - int(5 * PPM) : y, int(x * PPM)] = True
        for x in np.arange(end_mm + 5, width_mm, 5.0):  # grid leftovers beyond the trace
            m[y - 2 : y + 3, int(x * PPM)] = True
    return m, base


@pytest.mark.parametrize(
    ("end_mm", "valid_mm", "short"),
    [(210.0, 280.0, True), (270.0, 280.0, False), (210.0, 211.0, False), (110.0, 280.0, False)],
)
def test_rows_as_long_as_their_traces(end_mm: float, valid_mm: float, short: bool) -> None:
    """Rows whose traces end together well inside the image, short of the template's 250 mm, are cut over
    their own length (a portrait page's 6x2 columns of 3.8 s); full rows, rows cut by the image's edge
    (a crop) and rows far too short (speed or rows misread) keep the template's."""
    from ecgml.geometry.gaps import short_rows
    from ecgml.layout import make_layout

    lay = make_layout("6x2", x0_mm=20.0, pulse=False)
    mask, _ = _rows_mask(end_mm)
    valid = np.zeros_like(mask)
    valid[:, : int(valid_mm * PPM)] = True
    got = short_rows(mask, valid, (0.0, 0.0, mask.shape[1] / PPM, mask.shape[0] / PPM), lay, 0.0, 0.0, PPM)
    if not short:
        assert got is lay
        return
    right = [c for c in got.cells if c.col == 1]
    assert all(abs(c.x1_mm - end_mm) < 1.0 for c in got.cells if c.col == 1)
    assert all(abs(c.x0_mm - (20.0 + end_mm) / 2) < 1.0 for c in right)  # the cut at the rows' half
    assert all(abs(c.t1_s - c.t0_s - (end_mm - 20.0) / 2 / 25.0) < 0.05 for c in got.cells)  # 3.8 s a column


@pytest.mark.parametrize(("names", "start_mm"), [(True, 40.0), (False, 43.0)])
def test_short_rows_without_a_pulse_column_start_at_their_own_ink(names: bool, start_mm: float) -> None:
    """A page whose pulses were not measured (trace found by shape) and whose rows' ink starts scattered
    (names joined to some traces, no pulse column) starts its shorter rows where the traces start, not a
    template pulse's width right of the median start (validation 3x4+3R_006: every lead 0.24 s late);
    rows that start together (a pulse column, printed or not read) keep the old place (the pulse's width
    right of the start, at most SAME_END_MM)."""
    from ecgml.geometry.gaps import short_rows
    from ecgml.layout import make_layout

    lay = make_layout("6x2", x0_mm=20.0)
    assert lay.pulses
    mask, base = _rows_mask(210.0, start_mm=40.0)
    if names:
        for b in base[::2]:  # a name run into the trace's start on every other row
            mask[int(b * PPM) - 2 : int(b * PPM) + 1, int(16 * PPM) : int(40 * PPM)] = True
    valid = np.ones_like(mask)
    ext = (0.0, 0.0, mask.shape[1] / PPM, mask.shape[0] / PPM)
    got = short_rows(mask, valid, ext, lay, 0.0, 0.0, PPM, pulses_measured=False)
    assert got is not lay
    x0 = min(c.x0_mm for c in got.cells)
    assert abs(x0 - start_mm) < 1.0
    if names:  # read as measured, the template's pulse would have moved the start left of the traces
        old = short_rows(mask, valid, ext, lay, 0.0, 0.0, PPM)
        assert min(c.x0_mm for c in old.cells) < start_mm - 5.0


@pytest.mark.parametrize(
    ("trace_mm", "valid_mm", "pulse", "moved"),
    [
        ((25.0, 275.0), 290.0, False, 5.0),  # rows placed a pulse width left of their traces: moved onto them
        ((17.5, 267.5), 290.0, False, -2.5),  # half a grid square right of them (snap's 5 mm rounding)
        ((20.5, 270.5), 290.0, False, 0.0),  # within the pen's width: kept
        ((25.0, 275.0), 276.0, False, 0.0),  # the image ends with the traces: cut there, kept
        ((25.0, 275.0), 290.0, True, 0.0),  # a pulse read placed the rows: kept
        ((35.0, 275.0), 290.0, False, 0.0),  # traces start after the moved rows would: the ends are not 10 s
        ((20.0, 275.5), 290.0, False, 0.0),  # a pulse joined to the traces' ends (starts agree with the rows)
    ],
)
def test_rows_without_a_pulse_end_where_their_traces_end(
    trace_mm: tuple[float, float], valid_mm: float, pulse: bool, moved: float
) -> None:
    """A page without a pulse read has its rows placed by ink rounded to 5 mm squares (names before the
    traces, pulses after them): validation 12x1_001 came out 0.19 s late on every lead. Rows whose traces
    end together inside the image are moved to end where the traces end, when that is 2-8 mm off."""
    from ecgml.geometry.gaps import ends_placed
    from ecgml.layout import make_layout

    lay = make_layout("6x2", x0_mm=20.0, pulse=pulse)
    mask, _ = _rows_mask(trace_mm[1], start_mm=trace_mm[0], width_mm=300.0)
    valid = np.zeros_like(mask)
    valid[:, : int(valid_mm * PPM)] = True
    ext = (0.0, 0.0, mask.shape[1] / PPM, mask.shape[0] / PPM)
    got = ends_placed(mask, valid, ext, lay, 0.0, 0.0, PPM)
    if not moved:
        assert got is lay
        return
    for new, old in zip(got.cells, lay.cells, strict=True):
        assert abs(new.x0_mm - old.x0_mm - moved) < 0.5 and abs(new.x1_mm - old.x1_mm - moved) < 0.5
        assert (new.t0_s, new.t1_s) == (old.t0_s, old.t1_s)
