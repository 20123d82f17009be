"""The page's gain read from its calibration pulses: pages the project's renderer draws at 5, 10, 20 mm/mV
and mixed (limb 10, chest 5) come out at their gain, with the right amplitudes; a page without pulses
keeps 10 mm/mV and says it was assumed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgml.digitize import Geometry, classical_digitizer, estimate_geometry
from ecgml.geometry.pulses import page_gain, snap_gain
from ecgml.page_calibration import gain_source, pulse_evidence, speed_warning
from ecgml.records import LEADS, Record, read_wfdb, resample
from ecgml.render.layouts import build_layout, parse_layout
from ecgml.render.page import draw_page
from ecgml.render.presets import render
from ecgml.render.style import kaggle_style
from ecgml.verdict import PULSE_UNSEEN

RECORD = Path(__file__).parent.parent / "data" / "records" / "cpsc2018_challenge2020" / "A0007"
GAINS = {"5": (5.0, 0.0), "10": (10.0, 0.0), "20": (20.0, 0.0), "mixed": (10.0, 5.0)}


@pytest.fixture(scope="module")
def record() -> Record:
    return resample(read_wfdb(RECORD).window(0, 10), 500, 5000)


@pytest.fixture(scope="module")
def pages(record: Record) -> dict[str, np.ndarray]:
    """Clean Kaggle-style 3x4+1R pages at each gain (pulses on every row)."""
    return {g: render(record, "0001", 14, gain=g).image for g in GAINS}


@pytest.fixture(scope="module")
def no_pulse_page(record: Record) -> np.ndarray:
    """The same page at 10 mm/mV drawn without any calibration pulse."""
    lay = build_layout(parse_layout("3x4+1R"), gain="10", pulse_rows=[])
    return draw_page(record, lay, kaggle_style(np.random.default_rng(14)), 200 / 25.4).image


def _pulse(h: float, right: float | None = None, score: float = 0.8) -> dict:
    step = right if right is not None and right != h else 0.0
    return {"row": 0, "side": "left", "score": score, "shape": [5.0, h, step], "height_mm": h,
            "right_mm": right or h, "width_mm": 5.0}  # fmt: skip


def test_page_gain_needs_agreeing_standard_pulses():
    assert page_gain([_pulse(20.0), _pulse(20.0)]).gain_mm_mv == 20.0
    mixed = page_gain([_pulse(10.0, 5.0), _pulse(10.0)])
    assert (mixed.gain_mm_mv, mixed.chest_gain_mm_mv) == (10.0, 5.0)
    rows_10_and_5 = page_gain([_pulse(10.0), _pulse(5.0)])
    assert (rows_10_and_5.gain_mm_mv, rows_10_and_5.chest_gain_mm_mv) == (10.0, 5.0)
    assert page_gain([_pulse(20.0), _pulse(5.0)]).gain_mm_mv is None  # disagree: not read
    assert page_gain([_pulse(20.0, score=0.5)]).gain_mm_mv is None  # one weak mark is no evidence
    none = page_gain([])
    assert none.gain_mm_mv is None and "no calibration pulse" in none.why
    assert snap_gain(19.0) == 20.0 and snap_gain(4.6) == 5.0 and snap_gain(14.0) is None


@pytest.mark.parametrize("gain", list(GAINS))
def test_geometry_reads_the_gain_from_the_pulses(pages, gain):
    geo = estimate_geometry(pages[gain])
    assert geo.source == "estimated"
    assert geo.diagnostics["pulses"]["gain_read"], geo.diagnostics["pulses"]
    limb, chest = GAINS[gain]
    assert geo.layout.gain_mm_mv == limb
    assert (geo.layout.chest_gain_mm_mv or limb) == (chest or limb)
    v1 = next(c for c in geo.layout.cells if c.lead == "V1")
    assert geo.layout.cell_gain(v1) == (chest or limb)
    assert gain_source(geo) == "pulse" and pulse_evidence(geo) == 1.0


def test_a_page_without_pulses_keeps_10_and_says_assumed(no_pulse_page):
    geo = estimate_geometry(no_pulse_page)
    assert geo.source == "estimated"
    assert not geo.diagnostics["pulses"]["gain_read"]
    assert geo.layout.gain_mm_mv == 10.0
    assert gain_source(geo) == "assumed" and pulse_evidence(geo) == PULSE_UNSEEN
    given = Geometry(geo.page_map, geo.layout, 1.0, "given")
    assert gain_source(given) == "given"


def _amplitude_ratio(record: Record, out: np.ndarray, leads: list[str]) -> float:
    """Median over `leads` of the output's std over the truth's, where both are finite."""
    ratios = []
    for lead in leads:
        j = LEADS.index(lead)
        ok = np.isfinite(out[:, j])
        if ok.sum() > 200:
            ratios.append(np.std(out[ok, j]) / np.std(record.signal[ok, j]))
    return float(np.median(ratios))


@pytest.mark.slow
@pytest.mark.parametrize("gain", ["20", "5", "mixed"])
def test_digitized_amplitudes_follow_the_read_gain(record, pages, gain):
    res = classical_digitizer().digitize_image(pages[gain], 500, f"A0007-{gain}.png")
    cal = res.to_json()["calibration"]
    limb, chest = GAINS[gain]
    assert cal["gain_source"] == "pulse"
    assert (cal["gain_mm_mv"], cal["chest_gain_mm_mv"]) == (limb, chest or limb)
    out = res.record.signal
    # read at the assumed 10 mm/mV these would come out at gain / 10 (2.0 at 20, 0.5 at 5 and mixed chest)
    assert 0.85 <= _amplitude_ratio(record, out, ["I", "II", "III", "aVR", "aVL", "aVF"]) <= 1.15
    assert 0.85 <= _amplitude_ratio(record, out, ["V1", "V2", "V3", "V4", "V5", "V6"]) <= 1.15
    assert not any("gain not read" in w for w in res.report.warnings)


@pytest.mark.slow
def test_digitized_page_without_pulses_warns_gain_assumed(no_pulse_page):
    res = classical_digitizer().digitize_image(no_pulse_page, 500, "A0007-nopulse.png")
    cal = res.to_json()["calibration"]
    assert cal["gain_source"] == "assumed" and cal["gain_mm_mv"] == 10.0
    assert any("gain not read from the page" in w and "assumed 10 mm/mV" in w for w in res.report.warnings)


def test_a_50_mm_s_page_keeps_its_speed_unconfirmed(record):
    """The renderer draws 0.4 s pulses at 50 mm/s (20 mm wide): the gain is read, the speed is not, and
    the pulse does not count as confirming the page's calibration."""
    lay = build_layout(parse_layout("3x4+1R"), speed_mm_s=50, gain="10", x0_mm=30.0)
    geo = estimate_geometry(draw_page(record, lay, kaggle_style(np.random.default_rng(14)), 200 / 25.4).image)
    p = geo.diagnostics["pulses"]
    assert p["gain_read"] and p["gain_mm_mv"] == 10.0
    assert abs(p["pulse_width_mm"] - 20.0) <= 1.0 and not p["speed_consistent"]
    assert pulse_evidence(geo) == PULSE_UNSEEN
    assert "may run at another speed" in speed_warning(geo)


def _geo_with_pulses(layout, rows: list[int], heights: tuple[float, float]) -> Geometry:
    """A geometry whose pulse reading found pulses of `heights` (left, right mm) on these layout rows."""
    from ecgml.page import PageMap

    base = layout.row_baselines()
    step = heights[1] if heights[1] != heights[0] else 0.0
    pulses = [
        {"row": r, "side": "left", "score": 0.9, "shape": [5.0, heights[0], step], "height_mm": heights[0],
         "right_mm": heights[1], "width_mm": 5.0, "baseline_mm": base[r] + 0.5}
        for r in rows
    ]  # fmt: skip
    diag = {"pulses": {"gain_read": True, "speed_consistent": True, "pulses": pulses}}
    return Geometry(PageMap(np.eye(3), (1000, 800), layout.paper_mm), layout, 0.9, "estimated", diag)


def test_a_lead_gets_pulse_evidence_only_where_a_pulse_shows_its_gain():
    from ecgml.layout import make_layout, with_gain
    from ecgml.page_calibration import lead_pulse_evidence

    twelve = make_layout("12x1")  # rows I..aVF then V1..V6, read at 10 mm/mV
    # pulses only on limb rows: a mixed page whose chest pulses were missed looks like this
    ev = lead_pulse_evidence(_geo_with_pulses(twelve, [0, 1, 2], (10.0, 10.0)))
    assert ev["I"] == 1.0 and ev["aVF"] == PULSE_UNSEEN and ev["V3"] == PULSE_UNSEEN
    # a limb row and a chest row at the same height: one gain for the page, every lead confirmed
    ev = lead_pulse_evidence(_geo_with_pulses(twelve, [0, 8], (10.0, 10.0)))
    assert set(ev.values()) == {1.0}
    # a mixed 3x4 page with step pulses on every row: limb at 10, chest at 5, each confirmed
    mixed = with_gain(make_layout("3x4+1R"), 10.0, 5.0)
    assert set(lead_pulse_evidence(_geo_with_pulses(mixed, [0, 1, 2, 3], (10.0, 5.0))).values()) == {1.0}
    # the same page read at 10 throughout while its pulses step down: chest leads not confirmed
    flat = make_layout("3x4+1R")
    ev = lead_pulse_evidence(_geo_with_pulses(flat, [0, 1, 2, 3], (10.0, 5.0)))
    assert ev["I"] == 1.0 and ev["V1"] == PULSE_UNSEEN


def test_a_lone_pulse_at_the_other_row_end_is_not_the_page_gain():
    """Carts print their pulses at one end of every row: seven 10 mm pulses at the row starts and one
    5 mm mark at a row's end are a 10 mm/mV page, not a mixed one (a wave shaped like a pulse)."""
    left = [dict(_pulse(10.0), row=r) for r in range(7)]
    odd = dict(_pulse(5.0), row=5, side="right")
    got = page_gain(left + [odd])
    assert (got.gain_mm_mv, got.chest_gain_mm_mv) == (10.0, 0.0)
    assert odd not in got.pulses
    # pulses printed at both ends of the rows count on both
    both = [dict(_pulse(10.0), row=r, side=s) for r in range(3) for s in ("left", "right")]
    assert len(page_gain(both).pulses) == 6
    # a page whose pulses end its rows keeps them
    ends = [dict(_pulse(20.0), row=r, side="right") for r in range(4)]
    assert page_gain(ends).gain_mm_mv == 20.0


def _row_end_mark(top_left_mm: float, top_right_mm: float) -> list[dict]:
    """The pulses found on one traced row (baseline 40 mm, ink 20..200 mm at 4 px/mm) that ends in a
    5 mm wide mark whose top runs from `top_left_mm` to `top_right_mm` above the baseline."""
    import cv2

    from ecgml.geometry.orient import Rows
    from ecgml.geometry.pulses import find_row_pulses

    ppm = 4.0
    mask = np.zeros((int(80 * ppm), int(240 * ppm)), np.uint8)

    def px(x: float, y: float) -> tuple[int, int]:
        return int(round(x * ppm)), int(round(y * ppm))

    base, x0, x1 = 40.0, 195.0, 200.0
    pts = [(20.0, base), (x0, base), (x0, base - top_left_mm), (x1, base - top_right_mm), (x1, base)]
    for a, b in zip(pts, pts[1:], strict=False):
        cv2.line(mask, px(*a), px(*b), 1, 2)
    rows = Rows(np.array([base]), np.array([20.0]), np.array([x1]), np.array([False]))
    return find_row_pulses(mask.astype(np.float32), rows, (0.0, 0.0, 240.0, 80.0), ppm)


def test_a_mark_with_a_sloping_top_is_no_pulse():
    """A pulse's top is level: a wave at a row's end whose top slopes by 2 mm over its 5 mm is not read as
    a 10 mm pulse, though each half is within 10 % of 10 mm (a screen photo's square QRS read as a lone
    pulse doubled every lead)."""
    level = _row_end_mark(10.0, 10.0)
    assert [(p["side"], p["shape"][1]) for p in level] == [("right", 10.0)]
    assert _row_end_mark(11.0, 9.0) == []


def _thin_pen_row(pulse_mm: float | None, pen_px: int) -> list[dict]:
    """The pulses found on one traced row (baseline 50 mm, ink from 15 mm at 4 px/mm) drawn by a pen
    `pen_px` wide: a 5 mm wide pulse `pulse_mm` tall at the row's start (None: the trace alone, with
    10 mm spikes)."""
    import cv2

    from ecgml.geometry.orient import Rows
    from ecgml.geometry.pulses import find_row_pulses

    ppm = 4.0
    mask = np.zeros((int(90 * ppm), int(240 * ppm)), np.uint8)

    def px(x: float, y: float) -> tuple[int, int]:
        return int(round(x * ppm)), int(round(y * ppm))

    base = 50.0
    pts = [(15.0, base)]
    if pulse_mm is not None:
        pts += [(15.0, base - pulse_mm), (20.0, base - pulse_mm), (20.0, base)]
    for x in (60.0, 120.0, 180.0):  # QRS spikes: up and down within 1 mm
        pts += [(x, base), (x + 0.5, base - 10.0), (x + 1.0, base + 2.0), (x + 1.5, base)]
    pts.append((200.0, base))
    for a, b in zip(pts, pts[1:], strict=False):
        cv2.line(mask, px(*a), px(*b), 1, pen_px)
    rows = Rows(np.array([base]), np.array([15.0]), np.array([200.0]), np.array([False]))
    return find_row_pulses(mask.astype(np.float32), rows, (0.0, 0.0, 240.0, 90.0), ppm)


@pytest.mark.parametrize("height", [5.0, 10.0, 20.0])
def test_a_pulse_drawn_by_a_thin_pen_is_found_at_its_height(height):
    """A pulse drawn 1 px wide on the 4 px/mm ink raster fills half of the template's 2 px strokes and
    matched below the score (small copies and thin-pen carts: its gain was assumed); it is found, and
    measured at its own height, as one drawn 2 px wide is."""
    for pen in (1, 2):
        got = _thin_pen_row(height, pen)
        assert [(p["side"], p["shape"][:2]) for p in got] == [("left", [5.0, height])], (pen, got)
        assert abs(got[0]["height_mm"] - height) <= 0.5 and abs(got[0]["width_mm"] - 5.0) <= 0.5


def test_a_thin_pen_row_without_a_pulse_has_none():
    assert _thin_pen_row(None, 1) == [] and _thin_pen_row(None, 2) == []
