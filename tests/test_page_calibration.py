"""The page's speed and gain read from what it shows: printed settings, pulse widths, beats (issue 14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgml.digitize import Geometry
from ecgml.footer_reader import FIELD, FooterReading, decide, field_class
from ecgml.layout import make_layout, with_speed
from ecgml.page import PageMap
from ecgml.page_calibration import (
    beat_spacing_mm,
    gain_source,
    pulse_evidence,
    pulse_fits,
    read_calibration,
    speed_doubt,
    speed_source,
)
from ecgml.records import LEADS
from ecgml.trace.types import CellTrace
from ecgml.verdict import PULSE_UNSEEN


def _geo(pulse_width: float | None = None, gain: float | None = None) -> Geometry:
    lay = make_layout("3x4+1R")
    diag: dict = {"pulses": {"gain_read": False, "why": "no calibration pulse found"}}
    if pulse_width is not None:
        diag["pulses"] = {
            "gain_read": True,
            "gain_mm_mv": gain or 10.0,
            "pulse_width_mm": pulse_width,
            "speed_consistent": abs(pulse_width - 5.0) <= 1.0,
            "pulses": [],
        }
    return Geometry(PageMap(np.eye(3), (1000, 800), lay.paper_mm), lay, 0.9, "estimated", diag)


def _beats(spacing_mm: float, rows: int = 4) -> list[CellTrace]:
    """Rows of narrow spikes `spacing_mm` apart (a QRS every beat) on a flat baseline."""
    out = []
    x = np.arange(15.0, 265.0, 0.1)
    for r in range(rows):
        y = np.full(x.size, 40.0 + 30 * r)
        phase = (x - 15.0 - 3 * r) % spacing_mm
        y -= 10.0 * np.clip(1 - np.abs(phase - 2.0) / 1.0, 0, None)
        out.append(CellTrace("II", r, 0, x, y, np.ones(x.size)))
    return out


def test_printed_fields_are_parsed_to_their_classes():
    found = [(m.group(1), m.group(2)) for m in FIELD.finditer("Speed: 50 mm/sec  Limb: 10 mm/mV 0.05-150 Hz")]
    assert found == [("50", "sec"), ("10", "mV")]
    assert field_class("12.5", "s") == 2 and field_class("5", "mV") == 3 and field_class("30", "s") is None
    assert [m.group(1) for m in FIELD.finditer("25mm/s 12.5 mm/s")] == ["25", "12.5"]


def test_decide_takes_one_sure_value_per_kind():
    best = {"25 mm/s": 0.01, "50 mm/s": 0.97, "12.5 mm/s": 0.02, "5 mm/mV": 0.0, "10 mm/mV": 0.95}
    assert decide(best) == (50.0, 10.0, 0.0)
    assert decide({**best, "25 mm/s": 0.6}) == (None, 10.0, 0.0)  # two speeds near: none read
    assert decide({**best, "5 mm/mV": 0.93}) == (50.0, 10.0, 5.0)  # limb 10 and chest 5: mixed
    assert decide({**best, "20 mm/mV": 0.93}) == (50.0, None, 0.0)  # 10 and 20: not a setting
    assert decide({}) == (None, None, 0.0)


def test_with_speed_keeps_the_cells_and_scales_their_seconds():
    lay = make_layout("3x4+1R")
    fast = with_speed(lay, 50.0)
    assert fast.speed_mm_s == 50.0
    for a, b in zip(lay.cells, fast.cells, strict=True):
        assert (a.x0_mm, a.x1_mm) == (b.x0_mm, b.x1_mm)
        assert b.t0_s == pytest.approx(a.t0_s / 2) and b.t1_s == pytest.approx(a.t1_s / 2)
        assert (b.x1_mm - b.x0_mm) / fast.speed_mm_s == pytest.approx(b.t1_s - b.t0_s)


def test_beat_spacing_is_read_off_the_rows():
    assert beat_spacing_mm(_beats(20.0)) == pytest.approx(20.0, abs=0.5)
    flat = [CellTrace("I", 0, 0, np.arange(0, 50, 0.1), np.zeros(500), np.ones(500))]
    assert beat_spacing_mm(flat) is None


def test_pulse_widths_carts_print():
    assert pulse_fits(5.0, 25.0) and pulse_fits(10.0, 50.0) and pulse_fits(20.0, 50.0)
    assert pulse_fits(5.0, 50.0)  # 5 mm whatever the speed, on some carts
    assert not pulse_fits(20.0, 25.0) and not pulse_fits(10.0, 25.0, strict=True)


def test_speed_is_set_from_the_print_only_when_nothing_contradicts_it():
    at50 = FooterReading(speed_mm_s=50.0, gain_mm_mv=10.0)
    cal = read_calibration(_geo(20.0), at50, _beats(40.0))  # 75 a minute at 50 mm/s
    assert (cal.speed_mm_s, cal.speed_source, cal.speed_doubt) == (50.0, "footer", "")
    # a 20 mm pulse says 0.8 s at 25 mm/s: the printed 25 is doubted and the speed stays assumed
    cal = read_calibration(_geo(20.0), FooterReading(speed_mm_s=25.0), _beats(20.0))
    assert cal.speed_source == "assumed" and "20 mm wide" in cal.speed_doubt
    # beats 8 mm apart at 50 mm/s are 375 a minute: no heart
    cal = read_calibration(_geo(5.0), at50, _beats(8.0))
    assert cal.speed_source == "assumed" and "a minute" in cal.speed_doubt
    # nothing printed: 25 assumed, doubted where the pulse is not 0.2 s wide at 25 mm/s
    assert read_calibration(_geo(5.0), None, _beats(20.0)).speed_doubt == ""
    assert "10 mm wide" in read_calibration(_geo(10.0), None, _beats(20.0)).speed_doubt
    # a 20 mm pulse is 0.4 s at 50 mm/s and no pulse at 25: taken, doubted, when the beats agree
    cal = read_calibration(_geo(20.0), None, _beats(40.0))
    assert (cal.speed_mm_s, cal.speed_source) == (50.0, "pulse") and cal.speed_doubt
    assert read_calibration(_geo(20.0), None, _beats(8.0)).speed_source == "assumed"  # 375 a minute


def test_gain_from_the_print_only_where_no_pulse_gives_it():
    printed = FooterReading(speed_mm_s=None, gain_mm_mv=20.0)
    assert read_calibration(_geo(None), printed, []).gain_source == "footer"
    cal = read_calibration(_geo(5.0, gain=5.0), printed, [])
    assert (cal.gain_source, cal.gain_mm_mv) == ("pulse", 10.0)  # the layout's (geometry set the pulse's)


def test_pulse_evidence_follows_the_page_calibration():
    geo = _geo(20.0)
    assert pulse_evidence(geo) == PULSE_UNSEEN and "20.0 mm wide" in speed_doubt(geo)
    cal = read_calibration(geo, FooterReading(speed_mm_s=50.0), _beats(40.0))
    geo.diagnostics["calibration"] = cal.to_json()
    assert speed_source(geo) == "footer" and speed_doubt(geo) == "" and pulse_evidence(geo) == 1.0
    unpulsed = _geo(None)
    unpulsed.diagnostics["calibration"] = read_calibration(
        unpulsed, FooterReading(speed_mm_s=25.0, gain_mm_mv=10.0), _beats(20.0)
    ).to_json()
    assert gain_source(unpulsed) == "footer" and pulse_evidence(unpulsed) == 1.0


RECORD = Path(__file__).parent.parent / "data" / "records" / "cpsc2018_challenge2020" / "A0007"


@pytest.mark.slow
@pytest.mark.parametrize("speed", [50.0, 25.0])
def test_a_kaggle_page_is_read_at_its_printed_speed(speed):
    """ECG-Image-Kit's page printed at 50 mm/s ("50mm/s" in its footer, a 20 mm pulse: 0.4 s): its rows
    start after the wide pulse and each cell shows the seconds its millimetres take at 50 mm/s. At 25 mm/s
    (a 5 mm pulse) nothing changes."""
    from ecgml.digitize import classical_digitizer
    from ecgml.records import read_wfdb, resample
    from ecgml.render.presets import render

    rec = resample(read_wfdb(RECORD).window(0, 10), 500, 5000)
    out = render(rec, "0001", 14, speed=speed)
    res = classical_digitizer().digitize_image(out.image, 500, "A0007.png")
    cal = res.to_json()["calibration"]
    assert cal["speed_mm_s"] == speed
    if speed == 25.0:
        assert cal["speed_source"] in ("assumed", "footer") and cal["speed_doubt"] == ""
    else:  # the printed speed (when the footer reader ships), else the pulse's width, said to be doubtful
        assert cal["speed_source"] in ("footer", "pulse")
        assert cal["speed_source"] == "footer" or "pulse's width" in cal["speed_doubt"]
    first = min(c.x0_mm for c in res.geometry.layout.cells)
    assert first == pytest.approx(min(c.x0_mm for c in out.layout.cells), abs=1.5)
    strip = next(c for c in res.geometry.layout.cells if c.lead == "II" and c.col == 0 and c.t1_s > 4)
    truth = next(c for c in out.layout.cells if c.lead == "II" and c.t1_s > 4)
    assert strip.t1_s == pytest.approx(truth.t1_s, abs=0.15)
    # the rhythm strip's lead II follows the record where it is plotted
    ii = res.record.signal[:, LEADS.index("II")]
    ok = np.isfinite(ii)
    n = int(truth.t1_s * 500)
    assert ok[:n].mean() > 0.9 and np.corrcoef(ii[:n][ok[:n]], rec.signal[:n, 1][ok[:n]])[0, 1] > 0.8


def test_training_finds_the_printed_fields_where_the_page_draws_them():
    """The footer reader's positives: each value-and-unit field of the drawn footer, inside its text box."""
    from ecgml.footer_reader import CLASSES, FOOT_PPM
    from ecgml.records import Record
    from ecgml.render.page import draw_page
    from ecgml.render.presets import kaggle_layout
    from ecgml.render.style import kaggle_style
    from ecgml.training.footer_reader import field_boxes

    rec = Record(np.zeros((2500, 12), np.float32), 250, "flat")
    flat = draw_page(
        rec, kaggle_layout("3x4+1R", 50, "20"), kaggle_style(np.random.default_rng(1)), FOOT_PPM, 1
    )
    fields, others = field_boxes(flat.text_items, flat.text_boxes)
    assert sorted(CLASSES[c] for c, *_ in fields) == ["20 mm/mV", "50 mm/s"]
    for _c, cx, cy, w in fields:
        box = next(b for it, (_, b) in zip(flat.text_items, flat.text_boxes, strict=True) if "mm/" in it.text
                   and b[0] <= cx <= b[2])  # fmt: skip
        assert box[1] <= cy <= box[3] and 0 < w <= box[2] - box[0] + 0.5
    assert others  # the lead labels: "none" patches
