"""The second-plotter set: ECGs drawn by ecg_plot and by our renderer, scored on the same truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgml.records import iter_wfdb_paths, read_wfdb

pytest.importorskip("ecg_plot")  # a dev extra (requirements.lock); absent from a runtime-only install

RECORDS = Path(__file__).resolve().parents[1] / "data" / "records"


def test_ecg_plot_page_is_a_200_dpi_page_with_dark_trace_ink():
    from ecgml.plotter_bench import draw_ecg_plot

    rec = read_wfdb(iter_wfdb_paths(RECORDS)[0]).window(0, 10)
    img = draw_ecg_plot(rec)
    h, w, c = img.shape
    assert c == 3 and img.dtype == np.uint8
    assert 250 < w / (200 / 25.4) < 320 and 180 < h / (200 / 25.4) < 260  # a landscape page in mm
    dark = (img.max(axis=2) < 80).mean()
    assert 0.001 < dark < 0.1  # traces, pulses and labels, not an empty or black page


@pytest.mark.slow  # renders our 0001 page too (~5 s)
def test_set_holds_both_generators_of_each_ecg_on_the_same_truth(tmp_path: Path):
    from ecgml.plotter_bench import make_plotter_set

    out = make_plotter_set(tmp_path / "set", iter_wfdb_paths(RECORDS)[:1], per_record=1, seed=3)
    types = pd.read_csv(out / "types.csv")
    assert types["type"].tolist() == ["ecgplot", "0001"]
    assert sorted(p.name for p in (out / "test").iterdir()) == ["1.png", "2.png"]
    sol = pd.read_csv(out / "solution.csv")
    a, b = (sol[sol["id"].astype(str).str.startswith(f"{i}_")]["value"].to_numpy() for i in (1, 2))
    assert len(a) == len(b) > 0 and np.array_equal(a, b)
    test = pd.read_csv(out / "test.csv")
    assert set(test["id"]) == {1, 2} and len(test) == 24


@pytest.mark.parametrize(
    ("layout", "windows"),
    [
        ("6x2", {lead: (0.0, 5.0) for lead in ("I", "aVF", "V1", "V6")}),  # both columns the first 5 s
        ("6x2-seq", {"I": (0.0, 5.0), "aVF": (0.0, 5.0), "V1": (5.0, 10.0), "V6": (5.0, 10.0)}),
        ("3x4+1R", {"I": (0, 2.5), "II": (0, 10), "aVL": (2.5, 5), "V2": (5, 7.5), "V6": (7.5, 10)}),
        ("12x1", {lead: (0.0, 10.0) for lead in ("I", "aVR", "V3", "V6")}),
    ],
)
def test_an_ecg_plot_page_s_truth_is_what_its_panels_plot(layout: str, windows: dict[str, tuple]):
    """Each lead's truth is the window ecg_plot drew it in (6x2 simultaneous or sequential, strips, 12x1),
    the record's values there and NaN elsewhere: the page is scored on what it shows."""
    from ecgml.plotter_bench import plotter_page
    from ecgml.records import LEADS, resample

    rec = resample(read_wfdb(iter_wfdb_paths(RECORDS)[0]).window(0, 10), 500, 5000)
    img, truth = plotter_page(rec, layout, np.random.default_rng(0))
    assert img.ndim == 3 and img.dtype == np.uint8 and (img.max(axis=2) < 80).mean() > 0.0005
    t = np.arange(truth.shape[0]) / 500
    for lead, (a, b) in windows.items():
        j = LEADS.index(lead)
        shown = np.isfinite(truth[:, j])
        np.testing.assert_array_equal(shown, (t >= a) & (t < b))
        np.testing.assert_array_equal(truth[shown, j], rec.signal[shown, j])
