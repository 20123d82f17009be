"""The score reproduces every METRIC.md test vector and behaves as the metric promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecgml.errors import EcgmlError
from ecgml.kaggle import read_long_table
from ecgml.metric import align_signals, score_ecg, score_files, score_tables
from ecgml.records import LEADS

DATA = Path(__file__).parent / "data"


def _tables(tmp_path: Path, sub_edit=None, sol_zero: bool = False, sub_zero: bool = False):
    sol = pd.read_csv(DATA / "metric_solution.csv")
    sub = sol[["id", "value"]].copy()
    if sub_edit:
        for i, v in sub_edit.items():
            sub.loc[i, "value"] = v
    if sol_zero:
        sol["value"] = 0.0
    if sub_zero:
        sub["value"] = 0.0
    sol.to_csv(tmp_path / "sol.csv", index=False)
    sub.to_csv(tmp_path / "sub.csv", index=False)
    return tmp_path / "sol.csv", tmp_path / "sub.csv"


@pytest.mark.parametrize(
    ("edit", "sol_zero", "sub_zero", "expected"),
    [
        ({}, False, False, 25.8433),
        ({0: 0.9}, False, False, 13.6291),
        ({0: 0.9, 4: 0.3}, False, False, 13.0576),
        ({0: 0.9, 4: 0.3}, True, False, -384.0),
        ({}, True, True, 25.8433),
    ],
)
def test_metric_md_vectors(tmp_path, edit, sol_zero, sub_zero, expected):
    sol, sub = _tables(tmp_path, edit, sol_zero, sub_zero)
    assert round(score_files(sol, sub).score, 4) == expected


def test_alignment_examples():
    np.testing.assert_allclose(
        align_signals(np.array([0, 1, 2, 1, 0]), np.array([10, 11, 12, 11, 10])), [0, 1, 2, 1, 0], atol=1e-6
    )
    out = align_signals(np.array([0, 0, 1, 2, 1, 0, 0]), np.array([1, 2, 1, 0, 0, 0, 0]))
    assert np.isnan(out[:2]).all()
    np.testing.assert_allclose(out[2:], [1, 2, 1, 0, 0], atol=1e-6)
    out = align_signals(np.array([0, 0, 0, 0, 1, 2, 1]), np.array([1, 2, 1, 0, 0, 0, 0]), max_shift=10)
    assert np.isnan(out[:4]).all()
    np.testing.assert_allclose(out[4:], [1, 2, 1], atol=1e-6)


def test_cli_reproduces_vectors(tmp_path):
    sol, sub = _tables(tmp_path, {0: 0.9})
    types = tmp_path / "types.csv"
    types.write_text("id,type\n343,0001\n")
    out = subprocess.run(
        [sys.executable, "-m", "ecgml", "score", str(sol), str(sub), "--types", str(types), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout)
    assert round(data["score"], 4) == 13.6291
    assert round(data["per_type"]["0001"], 4) == 13.6291
    assert data["per_ecg"][0]["id"] == 343 and data["frac_lt_10db"] == 0.0


def test_cli_bad_submission_names_file(tmp_path):
    sol, sub = _tables(tmp_path)
    df = pd.read_csv(sub)
    df.loc[3, "value"] = np.nan
    df.to_csv(sub, index=False)
    out = subprocess.run(
        [sys.executable, "-m", "ecgml", "score", str(sol), str(sub)], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "sub.csv" in out.stderr and "NaN" in out.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,val\n343_0_I,1\n", "missing column"),
        ("id,value\n343_0_I,abc\n", "non-numeric"),
        ("id,value\n343-0-I,1\n", "does not parse"),
        ("id,value\n343_0_XX,1\n", "does not parse"),
    ],
)
def test_bad_tables_name_the_problem(tmp_path, content, message):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(EcgmlError, match=message) as info:
        read_long_table(p)
    assert "bad.csv" in str(info.value)


def test_missing_rows_are_an_error(tmp_path):
    sol, sub = _tables(tmp_path)
    df = pd.read_csv(sub).iloc[:-1]
    df.to_csv(sub, index=False)
    with pytest.raises(EcgmlError, match="missing"):
        score_files(sol, sub)


def _ecg(rng: np.random.Generator, fs: int) -> dict[str, np.ndarray]:
    t = np.arange(fs * 10) / fs
    out = {}
    for k, lead in enumerate(LEADS):
        n = fs * 10 if lead == "II" else fs * 10 // 4
        phase = rng.uniform(0, 2 * np.pi)
        x = np.sin(2 * np.pi * 1.2 * t[:n] + phase) + 0.3 * np.sin(2 * np.pi * 7.3 * t[:n] + k)
        out[lead] = x + 0.05 * rng.standard_normal(n)
    return out


@settings(max_examples=25, deadline=None)
@given(offset=st.floats(-5, 5), seed=st.integers(0, 10_000))
def test_constant_offset_costs_nothing(offset, seed):
    labels = _ecg(np.random.default_rng(seed), 50)
    preds = {k: v + offset for k, v in labels.items()}
    assert score_ecg(1, 50, labels, preds).ratio == 384.0


@settings(max_examples=25, deadline=None)
@given(shift=st.integers(-10, 10), seed=st.integers(0, 10_000))
def test_integer_shift_costs_only_the_uncovered_ends(shift, seed):
    fs = 50  # max shift int(0.2 * 50) = 10 samples
    labels = _ecg(np.random.default_rng(seed), fs)
    preds = {k: np.roll(v, -shift) for k, v in labels.items()}
    s = score_ecg(1, fs, labels, preds)
    # the noise is at most what the uncovered ends and the offset removal can account for
    for lead in LEADS:
        x = labels[lead]
        ends = np.sum(x[-abs(shift) :] ** 2) + np.sum(x[: abs(shift)] ** 2) if shift else 0.0
        assert s.lead_noise[lead] <= ends + 1e-6 * np.sum(x**2)
    if shift == 0:
        assert s.ratio == 384.0


@settings(max_examples=25, deadline=None)
@given(gain=st.floats(0.5, 0.9) | st.floats(1.1, 2.0), seed=st.integers(0, 10_000))
def test_gain_error_is_not_forgiven(gain, seed):
    labels = _ecg(np.random.default_rng(seed), 50)
    preds = {k: v * gain for k, v in labels.items()}
    s = score_ecg(1, 50, labels, preds)
    expected_ratio = (
        1 / (gain - 1) ** 2
    )  # noise = (g-1)^2 * signal, before the offset fit (which helps little)
    assert s.ratio < 384.0
    assert s.ratio == pytest.approx(min(expected_ratio, 384.0), rel=0.1)


def test_score_tables_per_type_and_lead(tmp_path):
    sol, sub = _tables(tmp_path, {0: 0.9})
    rep = score_tables(read_long_table(sol), read_long_table(sub), {"343": "0003"})
    assert set(rep.per_type) == {"0003"}
    assert rep.per_lead_db["I"] < rep.per_lead_db["II"]
