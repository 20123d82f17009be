"""`ecgml synth`: the competition layout on disk, train and test, and a bad record skipped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ecgml.cli import app
from ecgml.errors import EcgmlError
from ecgml.kaggle import masked_signal
from ecgml.records import LEADS, Record, read_csv
from ecgml.synth import SYNTH_FS, parse_types, synth_dataset

SRC = Path("data/records/ptbxl_wfdb")


@pytest.fixture()
def records(tmp_path: Path) -> Path:
    d = tmp_path / "records"
    d.mkdir()
    for stem in ("00005_hr", "00666_hr"):
        for ext in (".hea", ".dat"):
            shutil.copy(SRC / f"{stem}{ext}", d / f"{stem}{ext}")
    import wfdb

    short = np.random.default_rng(0).normal(0, 0.1, (2500, 12))
    wfdb.wrsamp("short", fs=500, units=["mV"] * 12, sig_name=list(LEADS), p_signal=short,
                fmt=["16"] * 12, write_dir=str(d))  # fmt: skip
    return d


def test_train_layout(records, tmp_path):
    out = tmp_path / "ds"
    rep = synth_dataset(records, out, ["0001"], per_record=2, seed=4, progress=False)
    assert rep.n_ecgs == 4 and rep.n_images == 4
    assert len(rep.skipped) == 1 and "short" in rep.skipped[0][0] and "shorter" in rep.skipped[0][1]
    train = pd.read_csv(out / "train.csv")
    assert list(train.columns) == ["id", "fs", "sig_len"] and len(train) == 4
    assert set(train["fs"]) <= set(SYNTH_FS) and (train["sig_len"] == train["fs"] * 10).all()
    for row in train.itertuples():
        rec = read_csv(out / "train" / str(row.id) / f"{row.id}.csv", int(row.fs))
        assert rec.n_samples == row.fs * 10
        expected = np.isfinite(masked_signal(Record(np.nan_to_num(rec.signal), int(row.fs))))
        assert np.array_equal(np.isfinite(rec.signal), expected)
        img = cv2.imread(str(out / "train" / str(row.id) / f"{row.id}-0001.png"))
        assert img.shape == (1700, 2200, 3)
        meta = json.loads((out / "train" / str(row.id) / f"{row.id}-0001.json").read_text())
        assert meta["fs"] == row.fs and meta["page_map"]["image_size"] == [2200, 1700]
        z = np.load(out / "train" / str(row.id) / f"{row.id}-0001.npz")
        assert z["xy"].shape[1] == 2 and z["masks"].shape == (1700, 2200)
    # two consecutive windows of the same record differ
    a = read_csv(out / "train" / "1" / "1.csv", int(train.fs[0])).signal
    b = read_csv(out / "train" / "2" / "2.csv", int(train.fs[1])).signal
    assert a.shape != b.shape or not np.allclose(np.nan_to_num(a), np.nan_to_num(b))


def test_test_layout_cli(records, tmp_path):
    out = tmp_path / "ts"
    res = CliRunner().invoke(
        app,
        [
            "synth",
            str(records),
            str(out),
            "--types",
            "0001,0003",
            "--per-record",
            "1",
            "--seed",
            "2",
            "--test",
        ],
    )
    assert res.exit_code == 0, res.output
    test = pd.read_csv(out / "test.csv")
    types = pd.read_csv(out / "types.csv", dtype={"type": str})
    assert len(test) == 12 * 2 and list(types["type"]) == ["0001", "0003"]
    sol = pd.read_csv(out / "solution.csv")
    assert len(sol) == test["number_of_rows"].sum()
    for i, t in zip(types["id"], types["type"], strict=True):
        assert (out / "test" / f"{i}.png").exists()
        assert (out / "truth" / f"{i}-{t}.json").exists() and (out / "truth" / f"{i}-{t}.npz").exists()


def test_single_record_option(tmp_path):
    out = tmp_path / "one"
    res = CliRunner().invoke(app, ["synth", str(tmp_path), str(out), "--record", str(SRC / "00005_hr"),
                                   "--types", "0001", "--layout", "6x2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "train" / "1" / "1-0001.json").read_text())
    assert meta["layout"]["name"] == "6x2"


def test_bad_types():
    with pytest.raises(EcgmlError, match="unknown image type"):
        parse_types("0001,0002")
    assert parse_types("0001, realworld") == ["0001", "realworld"]


def test_layouts_option_draws_from_the_list(tmp_path):
    out = tmp_path / "mix"
    args = ["synth", str(tmp_path), str(out), "--record", str(SRC / "00005_hr")]
    args += ["--record", str(SRC / "00666_hr"), "--per-record", "2", "--types", "0001,lowres"]
    args += ["--layouts", "cabrera-6x2,3x4+V1", "--gain", "mixed"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    names = set()
    for p in (out / "train").glob("*/*.json"):
        meta = json.loads(p.read_text())
        names.add(meta["layout"]["name"])
        assert meta["layout"]["chest_gain_mm_mv"] == 5.0
        assert meta["annotations"]["layout"]["gain_mm_mv"] == 10.0
    assert names <= {"cabrera-6x2", "3x4+V1"} and len(names) == 2


BAD_OPTIONS = [
    ("--layouts", "3x4,7x7", "known: bases"),
    ("--layout", "9x9", "known"),
    ("--speed", "30", "25, 50, 12.5"),
    ("--gain", "3", "10, 5, 20, mixed"),
]


@pytest.mark.parametrize("opt,value,known", BAD_OPTIONS)
def test_bad_layout_speed_gain_are_one_line(tmp_path, opt, value, known):
    args = ["synth", str(tmp_path), str(tmp_path / "o"), "--record", str(SRC / "00005_hr"), opt, value]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and known in res.output and "Traceback" not in res.output


def test_fifteen_lead_pages_without_derived_leads_skip_the_record(tmp_path):
    args = ["synth", str(tmp_path), str(tmp_path / "o"), "--record", str(SRC / "00005_hr"), "--layout", "3x5"]
    res = CliRunner().invoke(app, [*args, "--no-derive-leads"])
    assert res.exit_code != 0 and "V4R, V8, V9" in res.output and "00005_hr" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(app, [*args, "--types", "lowres"])
    assert res.exit_code == 0, res.output
