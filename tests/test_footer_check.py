"""The footer reader's page-level check (benchmarks/footer_check.py): what counts as printed, read right,
read wrong, missed, and read where the page prints nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ecgml.footer_reader import CLASSES, band_inks, read_footer
from ecgml.layout import make_layout

ROOT = Path(__file__).resolve().parent.parent


def _module():
    spec = importlib.util.spec_from_file_location("footer_check", ROOT / "benchmarks" / "footer_check.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Reads:
    """A stand-in runner that reads one class with probability ~1 at every position."""

    runtime = "stub"

    def __init__(self, cls: str) -> None:
        self.k = CLASSES.index(cls)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h, w = x.shape[2] // 8, x.shape[3] // 8
        logits = np.zeros((1, len(CLASSES), h, w), np.float32)
        logits[0, self.k] = 20.0
        return logits


def test_printed_fields_are_the_standard_values_with_their_units():
    fc = _module()
    lines = ["Speed: 25 mm/sec", "Limb: 10 mm/mV  Chest: 5 mm/mV", "0.05-150 Hz", "HR 75 bpm", "7 mm/s"]
    assert fc.printed_fields(lines) == ["10 mm/mV", "25 mm/s", "5 mm/mV"]
    assert fc.printed_fields(["MAC 5500", "Page 1 of 1"]) == []


def test_outcomes():
    fc = _module()
    assert fc.outcome(10.0, 10.0, True) == "right"
    assert fc.outcome(20.0, 10.0, True) == "wrong"
    assert fc.outcome(20.0, None, False) == "wrong"  # a page of unknown gain printing none: any read is wrong
    assert fc.outcome(None, 10.0, True) == "missed"
    assert fc.outcome(10.0, 10.0, False) == "unprinted"
    assert fc.outcome(None, 10.0, False) == ""


def test_a_page_read_at_a_gain_it_does_not_print_fails_the_check():
    fc = _module()
    lay = make_layout()
    ink = np.zeros((int(lay.paper_mm[1] * 6), int(lay.paper_mm[0] * 6)), np.float32)
    bands = band_inks(ink, lay)
    assert bands  # a Letter page has room above and below its rows
    page = {"set": "s", "name": "p", "bands": bands, "source": "estimated", "speed": 25.0, "gain": 10.0,
            "chest": 0.0, "printed": ["10 mm/mV", "25 mm/s"]}  # fmt: skip
    wrong = fc.check_page(page, _Reads("20 mm/mV"))
    assert (wrong["read_gain"], wrong["gain_outcome"], wrong["speed_outcome"]) == (20.0, "wrong", "missed")
    right = fc.check_page(page, _Reads("10 mm/mV"))
    assert (right["read_gain"], right["gain_outcome"]) == (10.0, "right")
    # the check reads the bands as the digitizer does
    reading = read_footer(ink, lay, _Reads("10 mm/mV"))
    assert reading is not None and reading.gain_mm_mv == 10.0 and reading.speed_mm_s is None
