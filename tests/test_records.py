"""Records: WFDB and competition CSV in and out, lead-name normalisation, FFT resampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgml.errors import EcgmlError
from ecgml.records import (
    LEADS,
    Record,
    normalise_lead_name,
    read_csv,
    read_wfdb,
    resample,
    write_csv,
    write_wfdb,
)

RECORDS = Path(__file__).parents[1] / "data" / "records"


@pytest.mark.parametrize("raw", ["AVR", "avr", " aVR ", "aVR"])
def test_lead_names_normalise(raw):
    assert normalise_lead_name(raw) == "aVR"


def test_unknown_lead_name_raises():
    with pytest.raises(KeyError):
        normalise_lead_name("vx")


@pytest.mark.parametrize(
    "rel", ["ptbxl_wfdb/00005_hr", "ningbo_challenge2021/JS20000", "cpsc2018_challenge2020/A0002"]
)
def test_read_bundled_records(rel):
    rec = read_wfdb(RECORDS / rel)
    assert rec.signal.shape[1] == 12 and rec.signal.dtype == np.float32
    assert rec.fs == 500 and rec.duration >= 10
    assert np.isfinite(rec.signal).all() and np.abs(rec.signal).max() < 20  # mV, not adu


def test_upper_case_leads_reordered(tmp_path):
    """A record stored with upper-case names in a scrambled order comes back in LEADS order."""
    rng = np.random.default_rng(0)
    sig = rng.normal(size=(5000, 12))
    order = [11, 3, 0, 5, 1, 2, 4, 6, 7, 8, 9, 10]
    import wfdb

    wfdb.wrsamp(
        "scr",
        fs=500,
        units=["mV"] * 12,
        sig_name=[LEADS[i].upper() for i in order],
        p_signal=sig[:, order],
        fmt=["16"] * 12,
        adc_gain=[1000.0] * 12,
        baseline=[0] * 12,
        write_dir=str(tmp_path),
    )
    rec = read_wfdb(tmp_path / "scr")
    np.testing.assert_allclose(rec.signal, sig, atol=1e-3)


def test_wfdb_round_trip(tmp_path):
    rec = read_wfdb(RECORDS / "ptbxl_wfdb/00666_hr")
    write_wfdb(rec, tmp_path, "copy")
    back = read_wfdb(tmp_path / "copy")
    np.testing.assert_allclose(back.signal, rec.signal, atol=1e-3)


def test_short_record_is_rejected(tmp_path):
    import wfdb

    wfdb.wrsamp(
        "short",
        fs=500,
        units=["mV"] * 12,
        sig_name=list(LEADS),
        p_signal=np.zeros((2000, 12)),
        fmt=["16"] * 12,
        adc_gain=[1000.0] * 12,
        baseline=[0] * 12,
        write_dir=str(tmp_path),
    )
    with pytest.raises(EcgmlError, match="shorter than 10 s") as info:
        read_wfdb(tmp_path / "short")
    assert "short" in str(info.value)


def test_missing_leads_are_rejected(tmp_path):
    import wfdb

    wfdb.wrsamp(
        "six",
        fs=500,
        units=["mV"] * 6,
        sig_name=list(LEADS[:6]),
        p_signal=np.zeros((5000, 6)),
        fmt=["16"] * 6,
        adc_gain=[1000.0] * 6,
        baseline=[0] * 6,
        write_dir=str(tmp_path),
    )
    with pytest.raises(EcgmlError, match="lacks leads"):
        read_wfdb(tmp_path / "six")


def test_unknown_lead_names_are_rejected(tmp_path):
    import wfdb

    names = list(LEADS[:11]) + ["XYZ"]
    wfdb.wrsamp(
        "odd",
        fs=500,
        units=["mV"] * 12,
        sig_name=names,
        p_signal=np.zeros((5000, 12)),
        fmt=["16"] * 12,
        adc_gain=[1000.0] * 12,
        baseline=[0] * 12,
        write_dir=str(tmp_path),
    )
    with pytest.raises(EcgmlError, match="V6"):
        read_wfdb(tmp_path / "odd")


def test_csv_round_trip_keeps_nan(tmp_path):
    sig = np.random.default_rng(1).normal(size=(1000, 12)).astype(np.float32)
    sig[100:200, 3] = np.nan
    write_csv(Record(sig, 100, "x"), tmp_path / "x.csv")
    back = read_csv(tmp_path / "x.csv", 100)
    assert np.isnan(back.signal[100:200, 3]).all()
    np.testing.assert_allclose(np.nan_to_num(back.signal), np.nan_to_num(sig), atol=1e-4)


def test_csv_non_numeric_is_rejected(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text(",".join(LEADS) + "\n" + ",".join(["1"] * 11 + ["x"]) + "\n")
    with pytest.raises(EcgmlError, match="non-numeric") as info:
        read_csv(p, 500)
    assert "bad.csv" in str(info.value)


@pytest.mark.parametrize(("fs_in", "fs_out"), [(500, 1025), (500, 256), (1000, 250), (500, 500)])
def test_resample_exact_length_and_shape(fs_in, fs_out):
    t = np.arange(fs_in * 10) / fs_in
    x = np.sin(2 * np.pi * 1.3 * t)[:, None].repeat(12, axis=1)
    out = resample(Record(x, fs_in), fs_out)
    assert out.n_samples == fs_out * 10 and out.fs == fs_out
    t2 = np.arange(fs_out * 10) / fs_out
    np.testing.assert_allclose(out.signal[:, 0], np.sin(2 * np.pi * 1.3 * t2), atol=2e-2)


def test_resample_to_exact_sample_count():
    x = np.random.default_rng(2).normal(size=(2500, 12))
    assert resample(Record(x, 500), 1025, n_samples=2562).n_samples == 2562
