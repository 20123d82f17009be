"""Tall complexes (issue 14 item 5): a read clipped at its strip's edge is read again squashed."""

from __future__ import annotations

import numpy as np
import pytest

from ecgml.layout import LEADS
from ecgml.trace.tall import clipped, merge
from ecgml.trace.types import CellTrace

HALF = 32.0
X = np.arange(0, 50, 0.0625)  # 16 columns per mm, like the shipped model's output


def _trace(y: np.ndarray) -> CellTrace:
    return CellTrace("V2", 0, 0, X.copy(), y.astype(float), np.full(X.size, 0.9))


def _complex(peak_mm: float) -> np.ndarray:
    """A baseline at 100 mm with one narrow complex of `peak_mm` (upwards: smaller y) at x = 25 mm."""
    return 100.0 - peak_mm * np.exp(-0.5 * ((X - 25.0) / 0.6) ** 2)


def test_clipped_stretch_is_taken_from_the_squashed_read():
    truth = _complex(45.0)
    plain = _trace(np.maximum(truth, 100.0 - 31.0))  # flattened at the strip's edge
    squashed = _trace(truth + 0.1)
    out = merge(plain, squashed, 100.0, HALF)
    assert np.nanmin(out.y_mm) == pytest.approx(100.0 - 45.0 + 0.1, abs=0.05)
    away = np.abs(X - 25.0) > 3  # elsewhere the plain (finer) read is kept
    assert np.array_equal(out.y_mm[away], plain.y_mm[away])


def test_a_squashed_read_on_other_ink_is_not_taken():
    truth = _complex(45.0)
    plain = _trace(np.maximum(truth, 100.0 - 31.0))
    squashed = _trace(truth + 3.0 * np.sin(X))  # elsewhere it is 2 mm off: a neighbouring row
    assert merge(plain, squashed, 100.0, HALF) is plain


def test_a_squashed_read_that_goes_no_further_changes_nothing():
    plain = _trace(_complex(30.5))
    squashed = _trace(_complex(20.0))  # the plain read at the edge is not carried further: keep it
    assert merge(plain, squashed, 100.0, HALF) is plain


def test_only_a_read_near_the_edge_marks_the_page_clipped():
    from ecgml.layout import Cell, PageLayout

    lay = PageLayout("t", (100.0, 200.0), 25.0, 10.0, [Cell("V2", 0, 0, 100.0, 0.0, 50.0, 0.0, 2.0)])
    assert clipped([_trace(_complex(31.0))], lay, HALF)
    assert not clipped([_trace(_complex(20.0))], lay, HALF)


@pytest.mark.slow
def test_shipped_model_reads_a_5_mv_complex_on_a_10_mm_per_mv_page():
    """A record whose V2 is scaled to 4.5 mV peaks, drawn at 10 mm/mV: the plain read stops near
    ±3.2 mV (the strip's edge); with the squashed second read the peak comes out within 0.5 mV."""
    from dataclasses import replace

    from ecgml.geometry.canonical import canonical_page
    from ecgml.records import iter_wfdb_paths, read_wfdb
    from ecgml.render.presets import render
    from ecgml.trace.model import load_extractor

    rec = read_wfdb(iter_wfdb_paths("data/records")[0]).window(0, 10)
    j = LEADS.index("V2")
    sig = rec.signal.copy()
    v = sig[:, j] - np.median(sig[:, j])
    sig[:, j] = v * (4.5 / np.max(np.abs(v)))
    rec = replace(rec, signal=sig)
    out = render(rec, "0001", seed=3, layout="6x2", gain=10.0)
    page = canonical_page(out.image, out.page_map, (8.0, 8.0))
    ex = load_extractor(runtime="torch")
    cell = next(c for c in out.layout.cells if c.lead == "V2")
    only = replace(out.layout, cells=[cell])  # one strip: the test reads this cell alone
    shown = sig[int(cell.t0_s * rec.fs) : int(cell.t1_s * rec.fs), j]
    peak_true = float(np.max(np.abs(shown)))
    plain = ex.extract(page, only)
    reads = {}
    for tall, traces in ((False, plain), (True, ex.read_tall(page, only, plain))):
        (tr,) = traces
        reads[tall] = float(np.nanmax(np.abs(tr.y_mm - cell.baseline_mm))) / out.layout.gain_mm_mv
    assert reads[False] < 3.3 < peak_true - 1.0  # the plain strip cannot see the peak
    assert reads[True] == pytest.approx(peak_true, abs=0.5)
