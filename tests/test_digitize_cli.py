"""`ecgml digitize` and `ecgml submit` end to end, and bad input named by file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ecgml.cli import app
from ecgml.digitize import load_image
from ecgml.errors import EcgmlError
from ecgml.kaggle import test_image_path as image_path_of
from ecgml.kaggle import write_test_table
from ecgml.layout import lead_window
from ecgml.records import LEADS, read_wfdb, resample
from ecgml.render.presets import render

RECORDS = Path(__file__).parent.parent / "data" / "records" / "cpsc2018_challenge2020"


def _write_png(path: Path, image: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def page_png(tmp_path_factory) -> Path:
    rec = resample(read_wfdb(RECORDS / "A0010").window(0, 10), 500, 5000)
    img = render(rec, "0001", 3).image
    return _write_png(tmp_path_factory.mktemp("img") / "ecg-0001.png", img)


def test_digitize_writes_all_four_outputs(page_png, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["digitize", str(page_png), "--out", str(out), "--fs", "250", "--model", "classical"]
    )
    assert res.exit_code == 0, res.output
    stem = page_png.stem
    for name in (f"{stem}.csv", f"{stem}.hea", f"{stem}.dat", f"{stem}.json", f"{stem}-overlay.png"):
        assert (out / name).stat().st_size > 0, name
    df = pd.read_csv(out / f"{stem}.csv")
    assert list(df.columns) == list(LEADS) and len(df) == 2500
    assert df["II"].notna().all()
    start, n = lead_window("V1", 250)
    assert df["V1"].iloc[start : start + n].notna().all() and df["V1"].iloc[:start].isna().all()
    meta = json.loads((out / f"{stem}.json").read_text())
    assert set(meta["lead_confidence"]) == set(LEADS)
    assert meta["calibration"]["gain_mm_mv"] == 10.0 and 0 <= meta["geometry"]["confidence"] <= 1
    assert load_image(out / f"{stem}-overlay.png").shape[1] > 1000
    wf = read_wfdb(out / stem)
    assert wf.fs == 250 and wf.n_samples == 2500


def test_submit_writes_every_row_even_with_a_corrupt_image(page_png, tmp_path):
    data = tmp_path / "data"
    write_test_table([(11, 500), (12, 250), (13, 1025)], data / "test.csv")
    img = load_image(page_png)
    _write_png(image_path_of(data, 11), img)
    image_path_of(data, 12).write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    _write_png(image_path_of(data, 13), img)
    sub = tmp_path / "submission.csv"
    res = CliRunner().invoke(app, ["submit", str(data), "--out", str(sub), "--model", "classical"])
    assert res.exit_code == 0, res.output
    assert "12.png" in res.output  # the failure is reported with its file
    table = pd.read_csv(data / "test.csv")
    got = pd.read_csv(sub)
    want = [f"{r.id}_{k}_{r.lead}" for r in table.itertuples() for k in range(r.number_of_rows)]
    assert list(got["id"]) == want  # every row, in test.csv order
    assert np.all(np.isfinite(got["value"]))
    v11 = got.loc[got["id"].str.startswith("11_"), "value"]
    v12 = got.loc[got["id"].str.startswith("12_"), "value"]
    assert v11.std() > 0.05 and np.all(v12 == 0)


def test_bad_model_is_an_error_naming_it(tmp_path, page_png):
    res = CliRunner().invoke(
        app, ["digitize", str(page_png), "--out", str(tmp_path), "--model", "nosuch/model.pt"]
    )
    assert res.exit_code == 2 and "nosuch/model.pt" in res.output


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "file not found"),
        (b"", "empty file"),
        (b"hello, I am text", "not an image"),
        ("tiny", "too small"),
        ("folder", "folder"),
    ],
)
def test_bad_inputs_name_the_file(tmp_path, content, reason):
    path = tmp_path / "input.png"
    if content == "tiny":
        _write_png(path, np.full((40, 60, 3), 255, np.uint8))
    elif content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(EcgmlError, match=reason) as exc:
        load_image(path)
    assert str(path) in str(exc.value)
    res = CliRunner().invoke(
        app, ["digitize", str(path), "--out", str(tmp_path / "o"), "--model", "classical"]
    )
    # a failed image is exit 1 (2 is for arguments refused before any work)
    assert res.exit_code == 1 and "input.png" in res.output and "Traceback" not in res.output


def test_batch_digitize_files_folders_globs_and_failures(page_png, tmp_path, monkeypatch):
    """Issue 17: many images in one call, a summary, a line per failure, exit 1; issue 16: dotted and
    spaced names give WFDB-readable outputs, a second run into the same folder is not silent."""
    import shutil

    monkeypatch.chdir(tmp_path)
    (tmp_path / "in" / "site").mkdir(parents=True)
    shutil.copy(page_png, tmp_path / "in" / "scan.2024-01-05.png")
    shutil.copy(page_png, tmp_path / "in" / "site" / "ECG (2).png")
    (tmp_path / "in" / "site" / "broken.png").write_bytes(b"not an image")
    args = ["digitize", "in", "nomatch/*.png", "--out", "out", "--model", "classical"]
    res = CliRunner().invoke(app, args)
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "nomatch/*.png: no image matches" in text and "broken.png: not an image" in text
    assert "2 digitized, 1 failed, 1 input(s) gave no image" in text
    assert "scan.2024-01-05.png" in text and "3x4+1R" in text  # the summary table's rows
    assert read_wfdb(tmp_path / "out" / "scan_2024-01-05").n_samples == 5000
    assert read_wfdb(tmp_path / "out" / "site" / "ECG_2").n_samples == 5000
    again = CliRunner().invoke(
        app, ["digitize", "in/scan.2024-01-05.png", "--out", "out", "--model", "classical"]
    )
    assert again.exit_code == 1 and "already exists" in again.output and "--overwrite" in again.output
    again = CliRunner().invoke(
        app, ["digitize", "in/scan.2024-01-05.png", "--out", "out", "--model", "classical", "--overwrite"]
    )
    assert again.exit_code == 0, again.output


@pytest.mark.slow
def test_submit_on_a_dask_cluster_matches_the_serial_run(page_png, tmp_path):
    from ecgml.digitize import submit

    data = tmp_path / "data"
    write_test_table([(5, 500), (6, 250)], data / "test.csv")
    img = load_image(page_png)
    for i in (5, 6):
        _write_png(image_path_of(data, i), img)
    serial = submit(data, tmp_path / "serial.csv", "classical", workers=1)
    parallel = submit(data, tmp_path / "parallel.csv", "classical", workers=2)
    assert serial.n_rows == parallel.n_rows and not parallel.failures
    assert (tmp_path / "serial.csv").read_bytes() == (tmp_path / "parallel.csv").read_bytes()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--channels", "16,wide,32", "--channels wants 2+ positive integers"),
        ("--channels", "16,0,32", "--channels wants 2+ positive integers"),
        ("--channels", "16", "--channels wants 2+ positive integers"),
        ("--stretch", "1.5", "--stretch is a share of strips"),
    ],
)
def test_train_names_a_bad_option(tmp_path, option, value, message):
    res = CliRunner().invoke(app, ["train", "--work", str(tmp_path), option, value])
    assert res.exit_code != 0
    assert message in res.output
    assert not (tmp_path / "cache").exists()  # nothing rendered before the options were checked


@pytest.mark.slow
def test_batch_digitize_on_dask_workers_matches_one_process(page_png, tmp_path):
    """`--workers 2` (the Dask path) writes the same outputs as the in-process loop, failures included."""
    import shutil

    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        shutil.copy(page_png, tmp_path / "in" / f"{name}.png")
    (tmp_path / "in" / "c.png").write_bytes(b"not an image")
    outs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        args = [
            "digitize",
            str(tmp_path / "in"),
            "--out",
            str(out),
            "--model",
            "classical",
            "--workers",
            workers,
        ]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 1 and "c.png: not an image" in " ".join(res.output.split()), res.output
        outs[workers] = {p.name: p.read_bytes() for p in sorted(out.glob("*.csv"))}
    assert set(outs["1"]) == {"a.csv", "b.csv"} and outs["1"] == outs["2"]
