"""The competition layout: windows, tables, streamed submissions and solutions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ecgml.errors import EcgmlError
from ecgml.kaggle import (
    SubmissionWriter,
    lead_segments,
    masked_signal,
    read_long_table,
    read_test_table,
    write_solution,
    write_test_table,
)
from ecgml.kaggle import test_image_path as image_path_of
from ecgml.layout import lead_window
from ecgml.metric import score_files
from ecgml.records import LEADS, Record


def test_windows_at_1025_hz():
    assert [lead_window(lead, 1025)[0] for lead in ("I", "aVR", "V1", "V4")] == [0, 2562, 5125, 7687]
    assert lead_window("V6", 1025)[1] == 2562 and lead_window("II", 1025) == (0, 10250)


def test_masked_signal_keeps_only_the_windows():
    rec = Record(np.ones((5000, 12)), 500)
    m = masked_signal(rec)
    assert np.isfinite(m[:, LEADS.index("II")]).all()
    v4 = m[:, LEADS.index("V4")]
    assert np.isnan(v4[:3750]).all() and np.isfinite(v4[3750:]).all()
    assert np.isfinite(m).sum() == 5000 + 11 * 1250


def test_test_table_round_trip_and_validation(tmp_path):
    p = write_test_table([(7, 500), (9, 1025)], tmp_path / "test.csv")
    df = read_test_table(p)
    assert len(df) == 24 and df.loc[df["lead"] == "II", "number_of_rows"].tolist() == [5000, 10250]
    df.loc[0, "number_of_rows"] = 3
    df.to_csv(p, index=False)
    with pytest.raises(EcgmlError, match="number_of_rows") as info:
        read_test_table(p)
    assert "test.csv" in str(info.value)


def test_test_table_missing_column(tmp_path):
    p = tmp_path / "test.csv"
    p.write_text("id,lead,fs\n1,I,500\n")
    with pytest.raises(EcgmlError, match="number_of_rows"):
        read_test_table(p)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_submission_round_trip_scores_perfect(tmp_path, suffix):
    rng = np.random.default_rng(3)
    recs = [(i, Record(rng.normal(size=(fs * 10, 12)), fs)) for i, fs in [(1, 250), (2, 512)]]
    write_solution(recs, tmp_path / "solution.csv")
    with SubmissionWriter(tmp_path / f"sub{suffix}") as w:
        for i, r in recs:
            w.add(i, r.fs, lead_segments(r))
    assert w.n_rows == sum(r.fs * 10 + 11 * (r.fs * 10 // 4) for _, r in recs)
    sub = read_long_table(tmp_path / f"sub{suffix}")
    assert len(sub) == w.n_rows
    assert score_files(tmp_path / "solution.csv", tmp_path / f"sub{suffix}").score == pytest.approx(
        25.8433, abs=1e-4
    )


def test_submission_refuses_nan_and_leaves_no_file(tmp_path):
    r = Record(np.zeros((2500, 12)), 250)
    seg = lead_segments(r)
    seg["V2"] = seg["V2"].copy()
    seg["V2"][5] = np.nan
    with pytest.raises(ValueError, match="V2"), SubmissionWriter(tmp_path / "sub.csv") as w:
        w.add(1, 250, seg)
    assert not (tmp_path / "sub.csv").exists()
    assert list(tmp_path.iterdir()) == []


def test_solution_ids_follow_the_contract(tmp_path):
    write_solution([(62, Record(np.zeros((2500, 12)), 250))], tmp_path / "s.csv")
    df = pd.read_csv(tmp_path / "s.csv")
    assert df["id"].iloc[0] == "62_0_I" and "62_2499_II" in set(df["id"]) and "62_625_I" not in set(df["id"])
    assert set(df.columns) == {"id", "fs", "value"}


def test_test_table_ids_stay_text_and_repeats_are_warned(tmp_path, caplog):
    """Issue 16: `1e3` was read as 1000 (image 1000.png, rows 1000_*); a repeated row merged silently."""
    p = write_test_table([("1e3", 500), ("0042", 250)], tmp_path / "test.csv")
    with open(p, "a") as fh:
        fh.write("1e3,II,500,5000\n")
    with caplog.at_level("WARNING", logger="ecgml.kaggle"):
        df = read_test_table(p)
    assert list(df["id"].unique()) == ["1e3", "0042"] and len(df) == 24
    assert "1 repeated (id, lead) row(s), e.g. ECG 1e3 lead II" in caplog.text
    assert image_path_of(tmp_path, df["id"].iloc[0]) == tmp_path / "test" / "1e3.png"
    p.write_text("id,lead,fs,number_of_rows\n1_2,I,500,1250\n")
    with pytest.raises(EcgmlError, match="holds a space, '_' or a slash"):
        read_test_table(p)
