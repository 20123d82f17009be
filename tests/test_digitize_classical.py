"""The classical extractor on a clean rendered 0001 page scores well end to end (estimated geometry)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgml.digitize import Geometry, classical_digitizer
from ecgml.kaggle import lead_segments
from ecgml.metric import score_ecg
from ecgml.records import LEADS, read_wfdb, resample
from ecgml.render.presets import render

RECORD = Path(__file__).parent.parent / "data" / "records" / "cpsc2018_challenge2020" / "A0007"
# Measured 17.5 dB (estimated geometry and truth geometry alike) on this page; the floor keeps margin.
FLOOR_DB = 14.0
LEAD_FLOOR_DB = 8.0  # every lead: catches a cell that follows its neighbour's trace or a label


@pytest.fixture(scope="module")
def page():
    rec = resample(read_wfdb(RECORD).window(0, 10), 500, 5000)
    return rec, render(rec, "0001", 7)


def test_clean_0001_page_scores_above_the_floor(page):
    rec, r = page
    res = classical_digitizer().digitize_image(r.image, 500, "A0007-0001.png")
    assert res.geometry.source == "estimated"
    s = score_ecg(0, 500, lead_segments(rec), res.segments())
    assert s.db >= FLOOR_DB
    for lead in LEADS:
        assert 10 * np.log10(s.lead_signal[lead] / s.lead_noise[lead]) >= LEAD_FLOOR_DB, lead
    assert min(res.confidence.values()) > 0.5


def test_truth_geometry_gives_the_same_quality(page):
    rec, r = page
    geo = Geometry(r.page_map, r.layout, 1.0, "given")
    res = classical_digitizer().digitize_image(r.image, 500, "A0007-0001.png", geo)
    s = score_ecg(0, 500, lead_segments(rec), res.segments())
    assert s.db >= FLOOR_DB


def test_a_blank_page_is_no_ecg(page):
    from ecgml.errors import EcgmlError

    _, r = page
    blank = np.full_like(r.image, 255)
    with pytest.raises(EcgmlError, match="blank.png"):
        classical_digitizer().digitize_image(blank, 500, "blank.png")
