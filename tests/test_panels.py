"""Panel pages (each lead in its own gridded box): the renderer draws them as its truth says, and geometry
reads the boxes, the scale and each box's window back from the picture alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgml.geometry.panels import find_panels
from ecgml.records import LEADS, iter_wfdb_paths, read_wfdb
from ecgml.render.page import MASK_GRID
from ecgml.render.presets import render

RECORDS = Path(__file__).resolve().parents[1] / "data" / "records"


@pytest.fixture(scope="module")
def record():
    return read_wfdb(iter_wfdb_paths(RECORDS)[0]).window(0, 10)


@pytest.fixture(scope="module")
def panel_page(record):
    """The first seed whose page rules its grid only inside the boxes (seeds are deterministic)."""
    for seed in range(20):
        r = render(record, "0001", seed, layout="panels:3x4+1R")
        if r.meta["params"]["panels"]["grid_panels"]:
            return r
    raise AssertionError("no seed drew a grid only inside the boxes")


def _boxes_px(r):
    ppm = r.meta["page_px_per_mm"]
    return {(c.x0_mm * ppm, c.box_top_mm * ppm, c.x1_mm * ppm, c.box_bottom_mm * ppm) for c in r.layout.cells}


def test_grid_is_ruled_only_inside_the_boxes_and_gaps_separate_the_columns(panel_page):
    r = panel_page
    lay = r.layout
    assert all(c.box_bottom_mm > c.box_top_mm > 0 for c in lay.cells)
    ys, xs = np.nonzero(r.masks & MASK_GRID)
    assert xs.size > 1000
    inside = np.zeros(xs.size, bool)
    for x0, y0, x1, y1 in _boxes_px(r):
        inside |= (
            (xs + 0.5 >= x0 - 1.5) & (xs + 0.5 <= x1 + 1.5) & (ys + 0.5 >= y0 - 1.5) & (ys + 0.5 <= y1 + 1.5)
        )
    assert inside.all(), f"{(~inside).sum()} grid pixels outside every box"
    for row in range(lay.n_rows):
        cells = sorted((c for c in lay.cells if c.row == row), key=lambda c: c.x0_mm)
        for a, b in zip(cells, cells[1:], strict=False):
            assert b.x0_mm - a.x1_mm >= 2.0  # a gap, not a separator tick
            assert b.t0_s == pytest.approx(a.t1_s)  # sequential windows: the gap is not time
        for c in cells:  # each box is as wide as its seconds at the page's speed
            assert c.x1_mm - c.x0_mm == pytest.approx((c.t1_s - c.t0_s) * lay.speed_mm_s)
    strip = [c for c in lay.cells if c.row == lay.n_rows - 1]
    grid_row = [c for c in lay.cells if c.row == 0]
    assert len(strip) == 1 and strip[0].t1_s - strip[0].t0_s == pytest.approx(10.0)
    assert strip[0].x1_mm < max(c.x1_mm for c in grid_row)  # no gaps inside the strip: narrower
    ann = {a["cell"]: a["box_mm"] for a in r.meta["annotations"]["cells"]}
    for k, c in enumerate(lay.cells):
        assert ann[k] == pytest.approx([c.x0_mm, c.box_top_mm, c.x1_mm, c.box_bottom_mm], abs=1e-3)


def test_geometry_reads_boxes_scale_and_windows_from_the_picture(panel_page):
    r = panel_page
    found = find_panels(r.image)
    assert found is not None
    ppm = r.meta["page_px_per_mm"]
    assert found.px_per_mm[0] == pytest.approx(ppm, rel=0.003)
    assert found.diagnostics["panels"] == [4, 4, 4, 1]
    assert found.layout.name == "3x4+1R" and found.confidence > 0.8
    scale = ppm / found.px_per_mm[0]  # truth mm -> the reader's mm
    for want, got in zip(r.layout.cells, found.layout.cells, strict=True):
        assert (got.lead, got.row, got.col) == (want.lead, want.row, want.col)
        assert got.x0_mm == pytest.approx(want.x0_mm * scale, abs=0.3)
        assert got.x1_mm == pytest.approx(want.x1_mm * scale, abs=0.3)
        assert got.t0_s == pytest.approx(want.t0_s, abs=0.015)
        assert got.box_top_mm == pytest.approx(want.box_top_mm * scale, abs=0.5)


def test_a_page_wide_grid_is_not_read_as_panels(record):
    r = render(record, "0001", 3)
    assert find_panels(r.image) is None


def test_panels_prefix_keeps_the_layouts_leads_and_seconds(record):
    plain = render(record, "0001", 5, layout="3x4+1R").layout
    boxed = render(record, "0001", 5, layout="panels:3x4+1R").layout
    key = sorted((c.lead, c.row, c.col, c.t0_s, c.t1_s) for c in plain.cells)
    assert key == sorted((c.lead, c.row, c.col, c.t0_s, c.t1_s) for c in boxed.cells)
    assert not boxed.pulses or all(p.x1_mm < min(c.x0_mm for c in boxed.cells) for p in boxed.pulses)


def test_ecg_plot_page_is_read_as_a_3x4_page_with_a_ii_strip(record):
    pytest.importorskip("ecg_plot")  # a dev extra
    from ecgml.geometry import estimate_page
    from ecgml.plotter_bench import draw_ecg_plot

    est = estimate_page(draw_ecg_plot(record))
    assert est.diagnostics.get("source") == "panels"
    lay = est.layout
    assert lay.name == "3x4+1R" and est.confidence > 0.8
    assert [c.lead for c in lay.cells if c.row < 3 and c.col == 0] == ["I", "II", "III"]
    assert sorted({c.lead for c in lay.cells}) == sorted(LEADS)
    for c in lay.cells:
        want = 2.5 * c.col if c.row < 3 else 0.0
        assert c.t0_s == pytest.approx(want, abs=0.02)
        assert c.t1_s - c.t0_s == pytest.approx(10.0 if c.row == 3 else 2.5, abs=0.02)


def test_columns_apart_by_gaps_on_a_page_wide_grid_are_cut_at_the_gaps(record):
    """Boxes without their own grid (the page's grid runs through the gaps): geometry's page-wide fit
    reads the page, and the column cuts move onto the blank gaps between the traces."""
    from ecgml.geometry import estimate_page

    r = next(
        r
        for seed in range(40)
        if not (r := render(record, "0001", seed, layout="panels:3x4+1R")).meta["params"]["panels"][
            "grid_panels"
        ]
    )
    est = estimate_page(r.image)
    assert est.diagnostics.get("column_gaps") is True
    for want, got in zip(r.layout.cells, est.layout.cells, strict=True):
        assert (got.lead, got.row, got.col) == (want.lead, want.row, want.col)
        a = r.page_map.mm_to_px(np.array([[want.x0_mm, want.baseline_mm]]))[0]
        b = est.page_map.mm_to_px(np.array([[got.x0_mm, got.baseline_mm]]))[0]
        assert abs(a[0] - b[0]) < 1.5 * r.meta["page_px_per_mm"]  # within 1.5 mm (0.06 s)
        assert got.t0_s == pytest.approx(want.t0_s)
    kaggle = estimate_page(render(record, "0001", 3).image)
    assert "column_gaps" not in kaggle.diagnostics  # abutting columns keep the template's cuts


def _photographed(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`image` on a darker desk, in perspective and turned a quarter (as a phone photo of a printout
    lying sideways): (the photo, the 3x3 map page px -> photo px)."""
    import cv2

    h, w = image.shape[:2]
    pad = int(0.25 * max(h, w))
    desk = np.full((h + 2 * pad, w + 2 * pad, 3), (96, 118, 92), np.uint8)
    desk[pad : pad + h, pad : pad + w] = image
    H, W = desk.shape[:2]
    src = np.float32([[0, 0], [W, 0], [W, H], [0, H]])
    dst = np.float32([[0.06 * W, 0.03 * H], [0.97 * W, 0], [W, H], [0.02 * W, 0.95 * H]])
    persp = cv2.getPerspectiveTransform(src, dst)
    photo = cv2.warpPerspective(desk, persp, (W, H), borderValue=(96, 118, 92))
    photo = np.ascontiguousarray(np.rot90(photo, 1))  # counter-clockwise: x' = y, y' = W - x
    turn = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, W], [0.0, 0.0, 1.0]])
    shift = np.array([[1.0, 0.0, pad], [0.0, 1.0, pad], [0.0, 0.0, 1.0]])
    return photo, turn @ persp @ shift


@pytest.mark.slow
def test_a_photographed_panel_page_turned_sideways_is_read_from_its_boxes(panel_page):
    """The panel reader needs level boxes; on a photo it reads them on the page the page-wide fit makes
    upright, and its map leads back into the photo: every cell's start within 1.5 mm of the truth."""
    from ecgml.geometry import estimate_page
    from ecgml.page import apply_homography

    r = panel_page
    photo, to_photo = _photographed(r.image)
    est = estimate_page(photo)
    assert est.diagnostics.get("source") == "panels" and "rectified" in est.diagnostics
    assert est.layout.name == "3x4+1R" and est.confidence > 0.5
    ppm = r.meta["page_px_per_mm"]
    for want, got in zip(r.layout.cells, est.layout.cells, strict=True):
        assert (got.lead, got.row, got.col) == (want.lead, want.row, want.col)
        a = apply_homography(to_photo, r.page_map.mm_to_px(np.array([[want.x0_mm, want.baseline_mm]])))[0]
        b = est.page_map.mm_to_px(np.array([[got.x0_mm, got.baseline_mm]]))[0]
        assert np.hypot(*(a - b)) < 1.5 * ppm


def test_boxes_cut_by_a_scans_crop_get_their_windows_from_the_whole_boxes(panel_page):
    """A scan cropped inside the page cuts the first and last columns' boxes (and the strip): the part
    shown keeps its own seconds (from the whole boxes' width, not from where the image ends), what the
    crop took is left out, and the page says its boxes were completed."""
    r = panel_page
    ppm = r.meta["page_px_per_mm"]
    speed = r.layout.speed_mm_s
    grid = [c for c in r.layout.cells if c.row == 0]
    cx0 = int(min(c.x0_mm for c in grid) * ppm + 3 * ppm)  # 3 mm into the first column
    cx1 = int(max(c.x1_mm for c in grid) * ppm - 5 * ppm)  # 5 mm before the last column ends
    crop = np.ascontiguousarray(r.image[:, cx0:cx1])
    found = find_panels(crop)
    assert found is not None and found.layout.name == "3x4+1R"
    assert "cut by the image's edge: completed" in found.diagnostics["panel_fit"]
    assert found.confidence < find_panels(r.image).confidence
    pm = found.page_map
    for want, got in zip(r.layout.cells, found.layout.cells, strict=True):
        assert (got.lead, got.row, got.col) == (want.lead, want.row, want.col)
        ends = pm.mm_to_px(np.array([[got.x0_mm, got.baseline_mm], [got.x1_mm, got.baseline_mm]]))[:, 0]
        x0_mm, x1_mm = (ends + cx0) / ppm  # the cell's ends on the uncropped page
        # the part shown (a box's end at the image's edge is found within a px or two of it)
        assert x0_mm == pytest.approx(max(want.x0_mm, cx0 / ppm), abs=0.3 if want.x0_mm > cx0 / ppm else 0.6)
        assert x1_mm == pytest.approx(min(want.x1_mm, cx1 / ppm), abs=0.3 if want.x1_mm < cx1 / ppm else 0.6)
        assert got.t0_s == pytest.approx(want.t0_s + (x0_mm - want.x0_mm) / speed, abs=0.02)
        assert got.t1_s == pytest.approx(want.t0_s + (x1_mm - want.x0_mm) / speed, abs=0.02)


def test_a_gap_bridged_by_a_dark_band_is_split_at_the_other_rows_gaps(panel_page):
    """A fold's shadow or a crease across the gap between two boxes joins their horizontal lines into one
    long box: the row is cut where the full rows have their gaps, each cell keeps its own window, and
    the page says so in a lower confidence."""
    r = panel_page
    ppm = r.meta["page_px_per_mm"]
    row = sorted((c for c in r.layout.cells if c.row == 1), key=lambda c: c.x0_mm)
    a, b = row[1], row[2]
    img = r.image.copy()
    y = (a.box_top_mm + a.box_bottom_mm) / 2  # a band 4 mm high from inside one box into the next
    img[int((y - 2) * ppm) : int((y + 2) * ppm), int((a.x1_mm - 3) * ppm) : int((b.x0_mm + 3) * ppm)] = 60
    found = find_panels(img)
    assert found is not None and found.layout.name == "3x4+1R"
    assert found.diagnostics["panels"] == [4, 4, 4, 1]
    assert "split at the other rows' gaps" in found.diagnostics["panel_fit"]
    assert found.confidence < find_panels(r.image).confidence
    for want, got in zip(r.layout.cells, found.layout.cells, strict=True):
        assert (got.lead, got.row, got.col) == (want.lead, want.row, want.col)
        assert got.t0_s == pytest.approx(want.t0_s, abs=0.03)
        assert got.t1_s == pytest.approx(want.t1_s, abs=0.03)


def test_narrow_boxes_at_a_rows_end_are_no_leads_on_a_levelled_raster():
    """The paper's edge or a screen's bezel beside a photo's boxes rules a narrow box at the rows' ends;
    a box a quarter as wide as the widest (a 3x4 column beside its 10 s strip) stays."""
    from ecgml.geometry.panels import _without_sliver_ends

    rows = [
        [(10.0, 0, 260, 20), (300, 0, 316, 20)],
        [(10.0, 30, 72, 50), (80, 30, 142, 50)],
        [(10.0, 60, 260, 80)],
    ]
    assert _without_sliver_ends(rows, 400, 5) == [[(10.0, 0, 260, 20)], rows[1], rows[2]]
    # ... but one the image's edge cut (a crop, completed from the whole boxes) stays
    assert _without_sliver_ends(rows, 318, 5) == rows


@pytest.mark.slow
def test_a_grid_without_rows_is_read_as_boxes_on_its_plane(panel_page, monkeypatch):
    """A page of boxes turned a quarter: the page-wide fit finds its grid's plane but no row along it
    (a 12x1 page's narrow boxes on a screen photo); the boxes are read on that plane made upright, and
    their map leads back into the turned image."""
    from ecgml.geometry import estimate as est_mod
    from ecgml.page import PageMap

    r = panel_page
    ppm = r.meta["page_px_per_mm"]
    pad = 150  # the page on a darker desk (the paper stands out of what surrounds it)
    desk = np.pad(r.image, ((pad, pad), (pad, pad), (0, 0)), constant_values=100)
    h, w = desk.shape[:2]
    turned = np.ascontiguousarray(np.rot90(desk, 1))  # x' = y, y' = w - x
    to_turned = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, w], [0.0, 0.0, 1.0]]) @ np.array(
        [[1.0, 0.0, pad], [0.0, 1.0, pad], [0.0, 0.0, 1.0]]
    )
    plane = PageMap(to_turned @ np.diag([ppm, ppm, 1.0]), (h, w), r.page_map.paper_mm)

    def no_rows(*_args, **_kw):
        raise est_mod.GridWithoutRows(None, plane)

    monkeypatch.setattr(est_mod, "_page_wide", no_rows)
    est = est_mod.estimate_page(turned)
    assert find_panels(turned) is None  # not read as it lies
    assert est.diagnostics.get("source") == "panels" and est.layout.name == "3x4+1R"
    for want, got in zip(r.layout.cells, est.layout.cells, strict=True):
        assert got.lead == want.lead
        a = to_turned @ np.array([want.x0_mm * ppm, want.baseline_mm * ppm, 1.0])
        b = est.page_map.mm_to_px(np.array([[got.x0_mm, got.baseline_mm]]))[0]
        assert np.hypot(*(a[:2] - b)) < 1.5 * ppm
    # a plane measured on a patch of the grid (a fifth of the page's area) is extrapolated over the
    # boxes: the reading keeps its boxes, at a confidence that says so
    pw, ph = r.page_map.paper_mm
    plane = PageMap(plane.homography, (h, w), (pw / 2.5, ph / 2))
    patch = est_mod.estimate_page(turned)
    assert patch.layout.name == "3x4+1R" and patch.diagnostics["plane_covers"] < 1 / 3  # margins too
    assert patch.confidence < est.confidence / 3


def test_a_bent_page_of_boxes_is_read_from_its_boxes_at_a_doubtful_confidence(panel_page, monkeypatch):
    """A page of boxes the page-wide fit found bent (fine rounds ran) and read as rows of a template
    (validation panels-3x4+1R_003, a 0005 photo: 3x4 turned 180 degrees, 0 leads right): its boxes are
    read on the fit's plane (leads, order and turn their own), at a confidence that keeps every lead
    of the page at or below verdict.FALLBACK_CAP - where the paper bends, cells can sit off their traces."""
    from ecgml.geometry import estimate as est_mod
    from ecgml.layout import make_layout
    from ecgml.page import PageMap
    from ecgml.verdict import FALLBACK_CAP, geometry_factor

    r = panel_page
    ppm = r.meta["page_px_per_mm"]
    pad = 150
    desk = np.pad(r.image, ((pad, pad), (pad, pad), (0, 0)), constant_values=100)
    h, w = desk.shape[:2]
    to_desk = np.array([[ppm, 0.0, pad], [0.0, ppm, pad], [0.0, 0.0, 1.0]])
    plane = PageMap(to_desk, (w, h), r.page_map.paper_mm)
    rows = est_mod.PageEstimate(plane, make_layout("3x4"), (ppm, ppm), 180, 0.4, {}, bent=True)
    monkeypatch.setattr(est_mod, "_panel_estimate", lambda image: None)  # as on a photo: not read as it lies
    monkeypatch.setattr(est_mod, "_page_wide", lambda *_a, **_kw: rows)
    est = est_mod.estimate_page(desk)
    assert est.diagnostics.get("source") == "panels" and est.layout.name == "3x4+1R"
    assert est.orientation == 0 and "bent_page" in est.diagnostics
    assert [c.lead for c in est.layout.cells] == [c.lead for c in r.layout.cells]
    assert est.confidence <= est_mod.BENT_PANELS_MAX_CONF
    assert geometry_factor("estimated", est.confidence) <= FALLBACK_CAP


def test_boxes_beyond_the_window_around_the_fits_page_are_read_around_the_images_centre(
    panel_page, monkeypatch
):
    """The page-wide fit's lattice origin need not be the paper's: its page's centre then lies far from
    the paper, and the window of paper looked at around it cuts the boxes (a 0009 photo's 12x1 page: nine
    of its twelve boxes seen). The boxes are read in a window around the image's centre instead, and
    their map leads back into the image."""
    from ecgml.geometry import estimate as est_mod
    from ecgml.geometry import panel_photo
    from ecgml.page import PageMap

    r = panel_page
    ppm = r.meta["page_px_per_mm"]
    pad = 150
    desk = np.pad(r.image, ((pad, pad), (pad, pad), (0, 0)), constant_values=100)
    h, w = desk.shape[:2]
    to_desk = np.array([[1.0, 0.0, pad], [0.0, 1.0, pad], [0.0, 0.0, 1.0]])
    # the fit's mm origin so far above the paper's top that the window around its page's centre ends
    # in the middle of the second row of boxes
    row2 = next(c for c in r.layout.cells if c.row == 1)
    edge = r.page_map.paper_mm[1] / 2 + panel_photo.MAX_EXTENT_MM / 2
    far = edge - (row2.box_top_mm + row2.box_bottom_mm) / 2
    origin = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -far], [0.0, 0.0, 1.0]])
    plane = PageMap(to_desk @ np.diag([ppm, ppm, 1.0]) @ origin, (w, h), r.page_map.paper_mm)
    windows = panel_photo._windows(desk, plane)
    assert len(windows) == 2 and windows[0][1][1] == pytest.approx(edge)

    def no_rows(*_args, **_kw):
        raise est_mod.GridWithoutRows(None, plane)

    monkeypatch.setattr(est_mod, "_page_wide", no_rows)
    est = est_mod.estimate_page(desk)
    assert est.diagnostics.get("source") == "panels" and est.layout.name == "3x4+1R"
    assert est.diagnostics["rectified"]["window"] == 1
    for want, got in zip(r.layout.cells, est.layout.cells, strict=True):
        assert got.lead == want.lead
        a = to_desk @ np.array([want.x0_mm * ppm, want.baseline_mm * ppm, 1.0])
        b = est.page_map.mm_to_px(np.array([[got.x0_mm, got.baseline_mm]]))[0]
        assert np.hypot(*(a[:2] - b)) < 1.5 * ppm
    # looked at only around the fit's page, the cut boxes are no page of boxes: the page is not read
    monkeypatch.setattr(panel_photo, "_windows", lambda image, page_map: windows[:1])
    with pytest.raises(est_mod.GridWithoutRows):
        est_mod.estimate_page(desk)


@pytest.mark.parametrize("gain", ["5", "20"])
def test_a_panel_page_s_gain_is_read_from_the_pulses_beside_its_boxes(record, gain):
    """A panel page printed at 5 or 20 mm/mV: its pulses say so (the panel reader assumed 10, and every
    lead came out at half or twice its size); a page without pulses keeps the assumed 10."""
    from ecgml.geometry import estimate_page

    for seed in range(3):
        r = render(record, "0001", seed, layout="panels:3x4+1R", gain=gain)
        est = estimate_page(r.image)
        assert est.diagnostics.get("source") == "panels"
        read = est.diagnostics["pulses"]
        if r.layout.pulses:
            assert read["gain_read"] and est.layout.gain_mm_mv == float(gain)
            assert {q["row"] for q in read["pulses"]} == {p.row for p in r.layout.pulses}
        else:
            assert not read["gain_read"] and est.layout.gain_mm_mv == 10.0


def test_an_ecg_plot_page_s_pulses_centred_on_the_baseline_give_its_gain(record):
    """ecg-plot draws its 1 mV pulse centred on the baseline, beside the box: a 20 mm/mV page reads 20."""
    ecg_plot = pytest.importorskip("ecg_plot")  # a dev extra
    from ecgml.geometry import estimate_page
    from ecgml.plotter_bench import rasterised

    sig = record.signal[: record.fs * 10].T.astype(np.float64)
    chart = ecg_plot.plot(
        sig, sample_rate=record.fs, lead_names=list(LEADS), layout="12lead", time_mode="sequential",
        window=(0.0, 10.0), gain=20, amplitude_range=(-1.5, 1.5),
    )  # fmt: skip
    est = estimate_page(rasterised(chart, 150))
    assert est.diagnostics.get("source") == "panels" and est.layout.name == "3x4"
    assert est.diagnostics["pulses"]["gain_read"] and est.layout.gain_mm_mv == 20.0


def _receding_plane(r, pad: int, g: float, h: float):
    """The plane of `r`'s page on a desk `pad` px wide as a fit that saw part of it would measure it: the
    true plane with a perspective that recedes along the rows (`g`, per mm) and down the page (`h`),
    about the page's middle. Returns (the desk image, page px -> desk px, that plane)."""
    from ecgml.page import PageMap

    ppm = r.meta["page_px_per_mm"]
    desk = np.pad(r.image, ((pad, pad), (pad, pad), (0, 0)), constant_values=100)
    to_desk = np.array([[1.0, 0.0, pad], [0.0, 1.0, pad], [0.0, 0.0, 1.0]])
    cx, cy = (v / 2 for v in r.page_map.paper_mm)
    centre = np.array([[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]])
    wrong = np.linalg.inv(centre) @ np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [g, h, 1.0]]) @ centre
    plane = PageMap(to_desk @ np.diag([ppm, ppm, 1.0]) @ wrong, desk.shape[1::-1], r.page_map.paper_mm)
    return desk, to_desk, plane


def test_boxes_read_through_a_receding_plane_are_squared_back(panel_page, monkeypatch):
    """A plane measured on part of a page of boxes and extrapolated over the rest leaves the rectified
    raster in perspective: the ruled lines' spacing grows along the rows and the columns' sides converge,
    so the rows tilt, the more the farther from the page's middle, and each box's seconds drift. Squared
    back (the spacing's steady change undone, the lines levelled, the sides made parallel), every cell's
    baseline lies within 0.5 mm of its trace's at its start, middle and end; read as the raster shows
    it, more than 1.5 mm off."""
    from ecgml.geometry import estimate as est_mod
    from ecgml.geometry import panel_photo

    r = panel_page
    ppm = r.meta["page_px_per_mm"]
    desk, to_desk, plane = _receding_plane(r, 150, 2.5e-4, 1.5e-4)

    def no_rows(*_args, **_kw):
        raise est_mod.GridWithoutRows(None, plane)

    monkeypatch.setattr(est_mod, "_page_wide", no_rows)

    def worst_baseline_mm() -> float:
        est = est_mod.estimate_page(desk)
        assert est.diagnostics.get("source") == "panels" and est.layout.name == "3x4+1R"
        worst = 0.0
        for want, got in zip(r.layout.cells, est.layout.cells, strict=True):
            assert got.lead == want.lead
            for f in (0.0, 0.5, 1.0):
                a = to_desk @ np.array(
                    [(want.x0_mm + f * (want.x1_mm - want.x0_mm)) * ppm, want.baseline_mm * ppm, 1.0]
                )
                mm = est.page_map.px_to_mm(a[None, :2] / a[2])[0]
                worst = max(worst, abs(float(mm[1]) - got.baseline_mm) * est.px_per_mm[1] / ppm)
        return worst

    assert worst_baseline_mm() < 0.5
    monkeypatch.setattr(panel_photo, "_squared", lambda found, dark: None)
    assert worst_baseline_mm() > 1.5


def test_a_panel_page_at_12_5_mm_s_is_read_at_that_speed_from_its_narrow_pulses(record):
    """Boxes 125 mm wide show 5 s at 25 mm/s: the rows' scale or speed in doubt, the page's confidence
    halved and the page left to the page-wide fit (validation panels-12x1_001, a 12.5 mm/s realworld copy,
    every lead wrong). Pulses 2.5 mm wide beside the boxes are 0.2 s at 12.5 mm/s: the rows show 10 s. A
    page without pulses stays in doubt."""
    seen = 0
    for seed in range(4):
        r = render(record, "0001", seed, layout="panels:12x1", speed="12.5")
        found = find_panels(r.image)
        assert found is not None
        if r.layout.pulses:
            seen += 1
            assert found.layout.speed_mm_s == 12.5 and found.confidence > 0.9
            assert max(c.t1_s for c in found.layout.cells) == pytest.approx(10.0, abs=0.1)
        else:
            assert found.layout.speed_mm_s == 25.0 and found.confidence < 0.5
    assert seen


def test_a_panel_page_s_wide_pulses_left_of_its_boxes_are_found(record):
    """At 50 mm/s a cart's pulse is 0.4 s, 20 mm wide, its left stroke 22 mm left of the first box: the
    search for it was centred on the box's edge (15 mm either side) and found none, so the page's speed
    was assumed 25 with nothing against it. Found, its width says 50 mm/s to the page's calibration."""
    seen = 0
    for seed in range(3):
        r = render(record, "0001", seed, layout="panels:3x4+1R", speed="50")
        found = find_panels(r.image)
        if found is None:  # not every seed's boxes are read at 50 mm/s (12x1: none of seeds 0-5)
            continue
        read = found.diagnostics["pulses"]
        if r.layout.pulses:
            seen += 1
            assert read["gain_read"] and read["pulse_width_mm"] == pytest.approx(20.0, abs=1.0)
            assert {q["row"] for q in read["pulses"]} == {p.row for p in r.layout.pulses}
        else:
            assert not read["gain_read"]
    assert seen


def test_boxes_whose_darkness_keeps_a_period_along_one_axis_only_take_it_for_both(record, monkeypatch):
    """Boxes too short to show three ruled lines across (validation panels-12x1_009: a 460 px realworld
    copy of 12x1 boxes 13 mm tall, ruled every 5 mm) give no spacing along them by lines or darkness, while
    the long axis keeps one: the grid is square, so the page is read at that spacing (before: refused as
    measuring 0.10 px/mm). The boxes' spacing alone is not enough on a levelled photo's raster."""
    import ecgml.geometry.panels as panels

    r = next(
        r
        for seed in range(8)
        if (r := render(record, "0001", seed, layout="panels:12x1")) is not None
        and (plain := panels._read(r.image)[0]) is not None
        and plain.layout.name == "12x1"
    )
    ppm = r.meta["page_px_per_mm"]
    monkeypatch.setattr(panels, "_spacing", lambda groups, around=None: None)
    monkeypatch.setattr(
        panels, "_spectral_spacing", lambda dark, rows, axis: 5.0 * ppm if axis == 0 else None
    )
    found, _, _ = panels._read(r.image)
    assert found is not None and found.layout.name == "12x1"
    assert found.px_per_mm == pytest.approx((ppm, ppm), rel=1e-6)
    assert panels._read(r.image, levelled=True)[0] is None


def test_a_levelled_reading_less_sure_does_not_replace_one_levelled_by_a_hair(panel_page, monkeypatch):
    """A small copy levelled by a tenth of a degree is interpolated, and its blurred lines can read at a
    harmonic that halves its confidence (validation panels-12x1_009: 12.2 px for 15.6, "scale in doubt"):
    the first reading stands. A levelled reading as sure as the first still replaces it."""
    import ecgml.geometry.panels as panels

    first = find_panels(panel_page.image)
    assert first is not None and "skew_deg" not in first.diagnostics
    ppm = first.px_per_mm
    for share, kept in ((0.5, True), (0.95, False)):
        calls = []

        def fake_read(image, levelled=False, count_only=False, share=share, calls=calls):
            calls.append(image)
            page = panels.PanelPage(
                first.rows,
                ppm,
                first.page_map,
                first.layout,
                first.confidence * (share if calls[1:] else 1.0),
                {},
            )
            return page, 12, np.ones(image.shape[:2], np.uint8)

        monkeypatch.setattr(panels, "_read", fake_read)
        monkeypatch.setattr(
            panels,
            "_deskew",
            lambda ink, max_deg, shear=False: np.array([[1.0, 0.001, 0.0], [-0.001, 1.0, 0.0]]),
        )
        got = panels.find_panels(panel_page.image)
        assert got is not None and len(calls) == 2
        assert ("levelled_less_sure" in got.diagnostics) is kept
        assert ("skew_deg" in got.diagnostics) is not kept


def _cream(image: np.ndarray) -> np.ndarray:
    """`image` printed on cream paper (a yellowed sheet: its blue ~12 % under its red)."""
    return np.clip(image.astype(np.float32) * np.array([1.0, 0.96, 0.87]), 0, 255).astype(np.uint8)


@pytest.mark.slow
def test_a_photographed_page_of_boxes_on_cream_paper_is_read_from_its_boxes(panel_page, monkeypatch):
    """On the fit's raster the sheet is lit to the paper level by its grey, while the box reader reads each
    px's darkest channel: a cream sheet's blue stayed ~25 under the level its surroundings are set to, the
    whole sheet read as ink and no box was found (validation 0009 panels-12x1_007). Looked at again with its
    colour made grey, its boxes read as on white paper: every cell's start within 1.5 mm of the truth (on
    main the page-wide fit's template stands; the same photo on white paper reads there)."""
    import cv2

    from ecgml.geometry import estimate as est_mod
    from ecgml.layout import make_layout
    from ecgml.page import PageMap, apply_homography

    r = panel_page
    photo, to_photo = _photographed(_cream(r.image))
    # turned 8 degrees more: the desk fills the corners of the paper's box (~15 % of it), where the
    # sheet's surroundings are set to the paper level
    h, w = photo.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 8.0, 1.0)
    photo = cv2.warpAffine(photo, turn, (w, h), borderValue=(96, 118, 92))
    to_photo = np.vstack([turn, [0.0, 0.0, 1.0]]) @ to_photo
    ppm = r.meta["page_px_per_mm"]
    # the page-wide fit's plane, as a photo's fit finds it (the page, a template's rows, doubtful)
    size = (photo.shape[1], photo.shape[0])
    plane = PageMap(to_photo @ np.diag([ppm, ppm, 1.0]), size, r.page_map.paper_mm)
    rows = est_mod.PageEstimate(plane, make_layout("3x4"), (ppm, ppm), 90, 0.4, {})
    monkeypatch.setattr(est_mod, "_panel_estimate", lambda image: None)  # as on a photo: not read as it lies
    monkeypatch.setattr(est_mod, "_page_wide", lambda *_a, **_kw: rows)
    est = est_mod.estimate_page(photo)
    assert est.diagnostics.get("source") == "panels" and est.layout.name == "3x4+1R"
    for want, got in zip(r.layout.cells, est.layout.cells, strict=True):
        assert (got.lead, got.row, got.col) == (want.lead, want.row, want.col)
        a = apply_homography(to_photo, r.page_map.mm_to_px(np.array([[want.x0_mm, want.baseline_mm]])))[0]
        b = est.page_map.mm_to_px(np.array([[got.x0_mm, got.baseline_mm]]))[0]
        assert np.hypot(*(a - b)) < 1.5 * ppm


def test_a_white_sheet_keeps_its_colours_and_a_cream_one_is_made_grey():
    """The balance is 1 where the sheet's darkest channel stays within the ink level (white paper: read as
    it always was), and makes a cream sheet's clear paper grey."""
    from ecgml.geometry.panel_photo import PAPER_LEVEL, _lighting

    rng = np.random.default_rng(0)
    for tint, changed in (((1.0, 1.0, 0.99), False), ((1.0, 0.96, 0.87), True)):
        sheet = np.full((400, 600, 3), 240.0) * np.array(tint) + rng.normal(0, 1.5, (400, 600, 3))
        raster = np.full((500, 700, 3), 60.0)
        raster[50:450, 50:650] = sheet
        raster[100:300:10, 100:500] = 120.0  # ruled lines
        light = _lighting(np.clip(raster, 0, 255).astype(np.uint8), np.ones((500, 700), bool), 5.0, True)
        assert light is not None
        assert np.allclose(light.balance, 1.0) != changed
        lit = light.apply(np.clip(raster, 0, 255).astype(np.uint8))[350:440, 100:600].astype(np.float32)
        if changed:
            assert np.ptp(np.median(lit.reshape(-1, 3), axis=0)) <= 3 and lit.min() >= PAPER_LEVEL - 15


@pytest.mark.parametrize("lost", ["start", "end"])
def test_a_strip_whose_end_is_lost_inside_the_page_gets_its_window_from_the_grid(panel_page, lost):
    """A photo's curled corner or a fold hides one end of the strip under the grid (here its first or last
    30 mm made paper): its other end still sits where the grid's seconds start or end, so the part shown
    keeps its own seconds (from that end, not from where the box now starts), the page is read as boxes
    (PANEL_MIN_CONFIDENCE: not dropped for its rows' spread) and says it completed the strip, at a lower
    confidence than the whole page."""
    from ecgml.geometry.estimate import PANEL_MIN_CONFIDENCE

    r = panel_page
    ppm = r.meta["page_px_per_mm"]
    speed = r.layout.speed_mm_s
    (strip,) = [c for c in r.layout.cells if c.row == r.layout.n_rows - 1]
    img = r.image.copy()
    paper = np.median(img[: int(5 * ppm), : int(5 * ppm)].reshape(-1, 3), axis=0)  # the sheet's top corner
    y0, y1 = int((strip.box_top_mm - 2) * ppm), int((strip.box_bottom_mm + 2) * ppm)
    a_mm = strip.x0_mm - 2 if lost == "start" else strip.x1_mm - 30
    b_mm = strip.x0_mm + 30 if lost == "start" else strip.x1_mm + 2
    img[y0:y1, int(a_mm * ppm) : int(b_mm * ppm)] = paper
    found = find_panels(img)
    assert found is not None and found.layout.name == "3x4+1R"
    assert PANEL_MIN_CONFIDENCE <= found.confidence < find_panels(r.image).confidence
    (got,) = [c for c in found.layout.cells if c.row == r.layout.n_rows - 1]
    scale = ppm / found.px_per_mm[0]  # the reader's mm -> truth mm
    x0_mm, x1_mm = got.x0_mm * scale, got.x1_mm * scale
    assert x0_mm == pytest.approx(max(strip.x0_mm, b_mm if lost == "start" else strip.x0_mm), abs=0.5)
    assert x1_mm == pytest.approx(min(strip.x1_mm, a_mm if lost == "end" else strip.x1_mm), abs=0.5)
    assert got.t0_s == pytest.approx(strip.t0_s + (x0_mm - strip.x0_mm) / speed, abs=0.03)
    assert got.t1_s == pytest.approx(strip.t0_s + (x1_mm - strip.x0_mm) / speed, abs=0.03)
    assert "strip's end lost: completed" in found.diagnostics["panel_fit"]


def test_a_column_of_six_boxes_is_read_as_a_half_page_of_limb_leads():
    """wfdb's plot_items of six leads draws a column of six boxes (a half page); before, a 6x1 shape was
    "not a known shape" and the page went to the page-wide fit (turned 270 degrees, every lead wrong).
    Read as the limb half; the family solver lets the chest half compete on the same boxes."""
    from ecgml.geometry.panels import panel_layout

    ppm = (5.0, 5.0)
    rows = [[(50.0, 20.0 + 150 * r, 1300.0, 140.0 + 150 * r)] for r in range(6)]  # 250 mm x 24 mm boxes
    trace = np.zeros((1000, 1400), bool)
    for r in range(6):
        trace[80 + 150 * r, 50:1300] = True  # each box's trace, 60 px under its top
    lay, conf, why = panel_layout(rows, ppm, trace, (280.0, 200.0))
    assert lay is not None and lay.name == "6x1-limb" and conf > 0.9, why
    assert [c.lead for c in lay.cells] == ["I", "II", "III", "aVR", "aVL", "aVF"]
    for r, c in enumerate(lay.cells):
        assert (c.row, c.col, c.t0_s) == (r, 0, 0.0) and c.t1_s == pytest.approx(10.0)
        assert c.baseline_mm == pytest.approx((80.5 + 150 * r) / 5.0, abs=0.3)
    five, _, why5 = panel_layout(rows[:5], ppm, trace, (280.0, 200.0))
    assert five is None and "not a known shape" in why5  # other single columns stay unknown


@pytest.mark.parametrize(("seconds", "sure"), [(10.0, True), (10.55, True), (11.5, False), (20.0, False)])
def test_boxes_padded_past_the_record_stay_sure_and_longer_ones_do_not(seconds: float, sure: bool):
    """wfdb's plot_items pads each box past its 10 s (Matplotlib's margins: read 10.55 s); a box showing
    far more than a record (a misread scale) keeps the doubt that leaves the page to the page-wide fit."""
    from ecgml.geometry.estimate import PANEL_MIN_CONFIDENCE
    from ecgml.geometry.panels import panel_layout

    ppm = (4.0, 4.0)
    x1 = 20.0 + seconds * 25.0 * ppm[0]
    rows = [[(20.0, 10.0 + 120 * r, x1, 110.0 + 120 * r)] for r in range(6)]
    trace = np.zeros((800, int(x1) + 40), bool)
    for r in range(6):
        trace[60 + 120 * r, 20 : int(20 + 1000 * ppm[0] / 4)] = True  # 10 s of trace from each box's left
    lay, conf, why = panel_layout(rows, ppm, trace, (trace.shape[1] / 4.0, 200.0))
    assert lay is not None, why
    assert (conf >= PANEL_MIN_CONFIDENCE) is sure, (conf, why)


def test_boxes_ruled_at_their_own_spacings_are_told_from_one_scale():
    """wfdb without sharey rules each box at its own mV per line (spacings 15.7-27.5 px on one page);
    with sharey, or on paper, one spacing (within 2 %)."""
    from ecgml.geometry.panels import _scales_differ

    one = [np.arange(0.0, 200, 7.37) + k for k in range(6)]
    own = [np.arange(0.0, 200, d) for d in (18.7, 27.5, 15.7, 27.4, 17.6, 23.5)]
    assert not _scales_differ(one) and _scales_differ(own)


def test_a_column_of_six_boxes_showing_less_than_a_record_is_not_a_half_page():
    """Validation cabrera-12x1_007's twelve rows were read in part as six single boxes of 8.2-8.8 s: read
    as a 6x1 half page they cost all 11 of its right leads. A half page's boxes each show the record's
    10 s (wfdb's padded boxes 10.5 s); six boxes showing less are left to the page-wide fit."""
    from ecgml.geometry.panels import panel_layout

    ppm = (5.0, 5.0)
    trace = np.zeros((1000, 1400), bool)
    for r in range(6):
        trace[80 + 150 * r, 50:1300] = True
    for seconds, half in ((8.3, False), (9.0, False), (10.0, True), (10.55, True)):
        x1 = 50.0 + seconds * 25.0 * ppm[0]
        rows = [[(50.0, 20.0 + 150 * r, x1, 140.0 + 150 * r)] for r in range(6)]
        lay, _, why = panel_layout(rows, ppm, trace, (280.0, 200.0))
        assert (lay is not None) is half, (seconds, why)
        if not half:
            assert "not a half page" in why


def test_a_spacing_taken_at_a_whole_fraction_of_the_lines_own_is_told():
    """wfdb's 6x1 boxes on a Letter sheet: lines along 6.52 px apart, across 3.10; `_square` found 3.26
    along (every other tooth of a comb through the lines), read square, twice too tall. A spacing near the
    lines' own (a scan's aspect, 4.89 read 5.48) or a ratio between harmonics (6.19 read 4.95) is not one."""
    from ecgml.geometry.panels import _harmonic

    assert _harmonic((3.10, 6.52), (3.10, 3.26))
    assert _harmonic((11.24, 6.2), (5.59, 6.2))  # across as well
    assert _harmonic((3.1, 9.3), (3.1, 3.1))  # a third
    assert not _harmonic((6.2, 4.89), (6.2, 5.48))
    assert not _harmonic((4.65, 6.19), (4.65, 4.95))
    assert not _harmonic((None, None), (4.0, 4.0))
    assert not _harmonic((4.0, 4.0), (4.0, 4.0))
