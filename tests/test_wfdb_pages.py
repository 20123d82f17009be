"""The third-plotter set (benchmarks/wfdb_pages.py): wfdb's plot_items pages, scored on the record."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ecgml.records import LEADS, iter_wfdb_paths, read_wfdb, resample

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "data" / "records"


def _pages():
    spec = importlib.util.spec_from_file_location("wfdb_pages", ROOT / "benchmarks" / "wfdb_pages.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _dark_rows(img: np.ndarray) -> np.ndarray:
    """Rows of the image holding trace-dark ink (traces, frames, text)."""
    return np.flatnonzero((img.max(axis=2) < 90).sum(axis=1) > 0)


def test_paper_scale_page_is_25_mm_s_and_its_truth_is_what_it_plots():
    """A `paper` page is sized so wfdb's 0.2 s grid boxes are 5 mm: its axes (10 s and Matplotlib's
    5 % margins, 77.5 % of the figure's width) are 11 s = 275 mm;
    its truth is each plotted lead less its median, and NaN for the leads it does not show. (An unscaled
    figure is a 279 or 297 mm sheet.)"""
    wp = _pages()
    rec = resample(read_wfdb(iter_wfdb_paths(RECORDS)[0]).window(0, 10), 500, 5000)
    img, truth, info = wp.wfdb_page(rec.signal, rec.fs, "6x1-limb", "paper", np.random.default_rng(1))
    assert img.ndim == 3 and img.dtype == np.uint8 and info["sharey"] and info["scale"] == "paper"
    px_per_mm = info["dpi"] / wp.MM_PER_IN
    assert abs(img.shape[1] / px_per_mm - 11.0 * 25 / 0.775) < 1
    for j, lead in enumerate(LEADS):
        if lead in wp.WFDB_LAYOUTS["6x1-limb"]:
            np.testing.assert_allclose(truth[:, j], rec.signal[:, j] - np.median(rec.signal[:, j]))
        else:
            assert np.isnan(truth[:, j]).all()


@pytest.mark.slow  # wfdb draws each grid line as its own plot: ~5-10 s for 12 subplots
def test_page_scale_page_is_a_letter_or_a4_sheet_at_its_dpi_and_keeps_the_record():
    wp = _pages()
    rec = resample(read_wfdb(iter_wfdb_paths(RECORDS)[0]).window(0, 10), 500, 5000)
    img, truth, info = wp.wfdb_page(rec.signal, rec.fs, "12x1", "page", np.random.default_rng(3))
    w_in, h_in = wp.SHEETS_IN[info["sheet"].split()[0]]
    if "portrait" in info["sheet"]:
        w_in, h_in = h_in, w_in
    assert img.shape[:2] == (round(h_in * info["dpi"]), round(w_in * info["dpi"]))
    np.testing.assert_array_equal(truth, rec.signal)  # all 12 leads, as recorded
    assert len(_dark_rows(img)) > 0.3 * img.shape[0]  # twelve stacked subplots of ink, not an empty page


def test_set_builder_draws_every_family_once_keeps_pages_and_skips_the_unreal_one(
    tmp_path: Path, monkeypatch
):
    """Names, families, order and keeping; wfdb's drawing (seconds a page) is the tests' above."""
    wp = _pages()
    recs = iter_wfdb_paths(RECORDS)[:2]
    drawn: list[tuple[str, str]] = []

    def fake_page(signal, fs, layout, scale, rng):
        drawn.append((layout, scale))
        truth = np.where(
            np.isin(np.arange(12), [LEADS.index(x) for x in wp.WFDB_LAYOUTS[layout]]), signal, np.nan
        )
        return np.full((40, 60, 3), 255, np.uint8), truth, {"scale": scale, "rng": float(rng.random())}

    monkeypatch.setattr(wp, "wfdb_page", fake_page)
    got = list(wp.wfdb_pages(tmp_path, recs, 1, seed=5))
    fams = [fam for _, fam, _, _, _ in got]
    assert fams == ["wfdb-page 12x1", "wfdb-page 6x1-limb", "wfdb-page 6x1-chest", "wfdb-paper 6x1-limb",
                    "wfdb-paper 6x1-chest"]  # fmt: skip
    for name, _, png, truth, ori in got:
        assert (
            png.exists() and (tmp_path / f"{name}.json").exists() and ori == 0 and truth.shape == (5000, 12)
        )
    assert np.isnan(got[1][3][:, LEADS.index("V1")]).all() and np.isfinite(got[1][3][:, 0]).all()
    again = list(wp.wfdb_pages(tmp_path, recs, 1, seed=5))  # kept, not drawn again
    assert len(drawn) == 5 and [a[0] for a in again] == [g[0] for g in got]
    np.testing.assert_array_equal(again[2][3], got[2][3])


def test_layout_benchmark_accepts_the_wfdb_plot_set():
    spec = importlib.util.spec_from_file_location(
        "layout_benchmark", ROOT / "benchmarks" / "layout_benchmark.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench._beside("wfdb_pages").WFDB_LAYOUTS.keys() == {"12x1", "6x1-limb", "6x1-chest"}
    with pytest.raises(SystemExit):
        bench.main(["--wfdb-plot"])  # the folder is required
