"""The layout benchmark's command line: a calibration fitted on several validation results at once."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from ecgml.layout_bench import PageResult
from ecgml.records import LEADS
from ecgml.verdict import CHECK_KINDS, LAYOUT_KINDS

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "layout_benchmark.py"


def _results(path: Path, seed: int, n: int) -> None:
    """`n` pages whose leads are right exactly where their geometry is sure, as a results JSON."""
    rng = np.random.default_rng(seed)
    pages = []
    for k in range(n):
        geo = 0.99 if rng.random() < 0.6 else 0.4
        base = {"trace": 1.0, "read_share": 1.0, "geometry": geo, "layout": 1.0, "agreement": 1.0, "raw": geo}
        parts = {lead: base | dict.fromkeys((*LAYOUT_KINDS, "pulse", *CHECK_KINDS), 1.0) for lead in LEADS}
        dbs = {lead: (15.0 if geo > 0.9 else -2.0) for lead in LEADS}
        conf, stat = dict.fromkeys(LEADS, 0.9), dict.fromkeys(LEADS, "read")
        pages.append(PageResult(f"p{k}", "f", dbs, conf, stat, "read", True, 1.0, parts=parts).to_json())
    path.write_text(json.dumps(pages))


def _bench():
    spec = importlib.util.spec_from_file_location("layout_benchmark", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_a_calibration_is_fitted_on_several_validation_results_pooled(tmp_path):
    bench = _bench()
    a, b, out = tmp_path / "val.json", tmp_path / "val2.json", tmp_path / "cal.json"
    _results(a, 0, 10)
    _results(b, 1, 15)
    assert bench.main(["--fit-calibration", str(a), str(b), "--out", str(out)]) == 0
    cal = json.loads(out.read_text())
    assert cal["pages"] == 25 and cal["leads"] == 25 * len(LEADS)  # every page of both results
    assert cal["fitted_on"] == "val.json + val2.json"
    assert bench.main(["--fit-calibration", str(a), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["pages"] == 10


def test_several_results_are_rescored_pooled(tmp_path, capsys):
    bench = _bench()
    a, b = tmp_path / "val.json", tmp_path / "val2.json"
    _results(a, 0, 10)
    _results(b, 1, 15)
    assert bench.main(["--rescore", str(a), str(b)]) == 0
    table = capsys.readouterr().out
    assert "| all | 25 |" in table  # the pages of both results in one table
    leads = sum(
        int(row.split("|")[2])
        for row in table.splitlines()
        if row.startswith("| 0.") or row.startswith("| 1.")
    )
    assert leads == 25 * len(LEADS)


def test_the_ecg_plot_set_without_its_plotter_is_one_clear_line(tmp_path, capsys, monkeypatch):
    """`--ecg-plot` where ecg-plot is not installed (a runtime-only install): exit 2 naming what is
    missing, before any page is drawn, not an ImportError in the middle of a run."""
    bench = _bench()
    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "ecg_plot" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(SystemExit) as exc:
        bench.main(["--ecg-plot", str(tmp_path / "set")])
    assert exc.value.code == 2
    assert "--ecg-plot needs the ecg-plot package" in capsys.readouterr().err
    assert not (tmp_path / "set").exists()


def test_page_readings_time_is_reported_and_old_results_without_it_still_load(tmp_path):
    """Issue 14 bounds page reading at 0.5 s per image: each page's own reading time is kept and summarised;
    results saved before the field existed load as NaN and are left out of the summary."""
    from ecgml.layout_bench import load_pages, markdown

    old = PageResult("a", "f", {"I": 10.0}, {"I": 0.9}, {"I": "read"}, "read", True, 2.0).to_json()
    del old["read_s"]
    one = {"I": 10.0}, {"I": 0.9}, {"I": "read"}, "read", True, 2.0
    new = [PageResult(f"p{k}", "f", *one, read_s=s).to_json() for k, s in enumerate((0.1, 0.3, 0.7))]
    path = tmp_path / "r.json"
    path.write_text(json.dumps([old, *new]))
    pages = load_pages(path)
    assert np.isnan(pages[0].read_s) and [p.read_s for p in pages[1:]] == [0.1, 0.3, 0.7]
    text = markdown(pages)
    assert "median 0.30 s" in text and "max 0.70 s over 3 pages" in text
    assert "| f | 4 |" in text and "| 0.30 |" in text
