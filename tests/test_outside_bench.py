"""outside_bench: sub-sample lead offsets and page scores on plotted samples only."""

from __future__ import annotations

import numpy as np
import pytest

from ecgml.outside_bench import read_truth, score_page, subsample_lag, summary_db
from ecgml.records import LEADS


def _ecg(t: np.ndarray) -> np.ndarray:
    """A smooth beat train with QRS-like peaks (mV)."""
    ph = t % 0.8
    return 1.2 * np.exp(-(((ph - 0.3) / 0.012) ** 2)) + 0.3 * np.exp(-(((ph - 0.55) / 0.06) ** 2))


@pytest.mark.parametrize("early_ms", [-2.5, 0.0, 1.3, 7.0])
def test_a_fractional_shift_is_read_to_a_tenth_of_a_sample(early_ms: float) -> None:
    fs = 500
    t = np.arange(2500) / fs
    label = _ecg(t)
    pred = _ecg(t + early_ms / 1000)  # pred shows each feature early_ms earlier
    lag = subsample_lag(label, pred, fs)
    assert lag / fs * 1000 == pytest.approx(early_ms, abs=0.1 * 1000 / fs)


def test_page_score_uses_plotted_samples_and_reports_offsets(tmp_path) -> None:
    fs = 500
    t = np.arange(5000) / fs
    truth = np.full((5000, 12), np.nan)
    for j in range(12):
        c = j % 4
        truth[c * 1250 : (c + 1) * 1250, j] = _ecg(t[c * 1250 : (c + 1) * 1250] + 0.05 * j)
    pred = np.nan_to_num(truth, nan=5.0)  # values outside the plotted windows must not count
    pred[:, 3] = np.nan  # an unread lead counts as zeros, as a missing reading would
    s = score_page("p", "3x4", truth, pred, fs)
    assert s.lead_db["I"] == pytest.approx(10 * np.log10(384)) and s.lead_db["aVR"] < 5  # capped
    assert s.lead_offset_ms["I"] == pytest.approx(0.0, abs=0.05)
    assert np.isnan(s.lead_offset_ms["aVR"]) and np.isfinite(s.median_offset_ms)
    assert 5 < s.db < 20  # one of 12 leads lost: about 10 log10(12)
    assert summary_db([s, s]) == pytest.approx(s.db)
    csv = tmp_path / "t.csv"
    import pandas as pd

    pd.DataFrame(truth, columns=list(LEADS)).to_csv(csv, index=False)
    assert np.allclose(read_truth(csv), truth, equal_nan=True)
