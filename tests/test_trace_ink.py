"""A light-grey trace on a darker grid (GE-style prints): geometry finds the rows by shape, not darkness.

Before `trace_ink`, nothing on such a page was darker than its 5 mm lines, so geometry found the grid
and no trace row on it ("no ECG trace found on the grid"), and the page was refused as not an ECG.
"""

from __future__ import annotations

import numpy as np

from ecgml.geometry import estimate_page
from ecgml.geometry.trace_ink import line_free_mask
from ecgml.layout import make_layout
from ecgml.records import LEADS, Record
from ecgml.render.page import draw_page
from ecgml.render.style import PageStyle
from tests.geometry_pages import fake_ecg

PPM = 4.0  # a small copy: 4 px/mm


def _record() -> Record:
    t = np.arange(5000) / 500
    sig = np.stack([fake_ecg(t, 7 + i) for i in range(len(LEADS))], axis=1)
    return Record(sig.astype(np.float32), 500, "light")


def _page(trace_grey: int, grid_rgb: tuple[int, int, int]) -> np.ndarray:
    style = PageStyle(
        grid_major_rgb=grid_rgb,
        grid_minor=False,
        grid_major_pt=1.0,
        trace_rgb=(trace_grey, trace_grey, trace_grey),
        trace_pt=0.6,
        labels=False,
    )
    return draw_page(_record(), make_layout("3x4+1R"), style, PPM).image


def test_line_free_mask_keeps_the_trace_and_drops_the_grid() -> None:
    ink = np.zeros((200, 400), np.float32)
    ink[::20, :] = 0.6  # grid lines every 5 mm at 4 px/mm, darker than the trace
    ink[:, ::20] = 0.6
    x = np.arange(400)
    y = (100 + 12 * np.sin(x / 9.0)).astype(int)
    ink[y, x] = np.maximum(ink[y, x], 0.4)  # a light wavy trace (where it crosses a line, the line)
    valid = np.ones(ink.shape, bool)
    m = line_free_mask(ink, valid, PPM)
    assert m[y, x].mean() > 0.6  # most of the trace (lost only where it crosses a line)
    on_lines = np.concatenate([m[::20, :].ravel(), m[:, ::20].ravel()])
    assert on_lines.mean() < 0.03  # the grid lines are gone (but for short bridges where the trace is)


def test_light_trace_on_a_dark_grid_is_found() -> None:
    img = _page(150, (100, 96, 115))
    est = estimate_page(img, "light.png")
    assert est.diagnostics["trace_ink"]  # found by shape
    assert est.diagnostics["rows"] == 4
    assert est.orientation == 0
    assert est.layout.name == "3x4+1R"


def test_dark_trace_does_not_need_it() -> None:
    est = estimate_page(_page(20, (255, 120, 120)), "dark.png")
    assert "trace_ink" not in est.diagnostics
    assert est.diagnostics["rows"] == 4


def _rows_of(centres: list[float]):  # type: ignore[no-untyped-def]
    from ecgml.geometry.orient import Orientation, Rows

    c = np.array(centres, float)
    rows = Rows(c, np.full(len(c), 10.0), np.full(len(c), 250.0), np.zeros(len(c), bool))
    return Orientation(0, 2.0, 1.0), rows, np.zeros((8, 8), bool)


def _rows_found(monkeypatch, dark: list[float], shape: list[float]) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    """Rows `_found_rows` keeps where the ink mask (darkness) shows `dark` and the shape mask `shape`."""
    import ecgml.geometry.estimate as est_mod
    from ecgml.geometry.refine import Extent, FrameMap, RefineResult

    def fake_orient(ink, paper, valid, box, ppm, turn, mask=None, pulses=True, lattice=True, coarse=False,
                    chroma=None):  # fmt: skip
        return _rows_of(shape if mask is not None else dark if not coarse else [])

    monkeypatch.setattr(est_mod, "orient", fake_orient)
    monkeypatch.setattr(est_mod, "on_pitch", lambda rows, *a: rows)
    work = np.full((240, 320, 3), 255, np.uint8)
    tiles = np.stack(np.meshgrid(np.arange(5.0, 80, 10), np.arange(5.0, 60, 10)), -1).reshape(-1, 2)
    res = RefineResult(
        FrameMap(np.diag([4.0, 4.0, 1.0])), Extent(0.0, 0.0, 80.0, 60.0), 48, 0.9, 0.02, 0.0, tiles
    )
    diag: dict = {}
    rows = est_mod._found_rows(work, res, 1.0, 0, "p.png", diag, (320, 240))[3]
    return len(rows.centres), diag


def test_two_rows_of_a_faint_trace_are_looked_for_again_by_shape(monkeypatch) -> None:
    """A thin grey trace about as dark as a grey grid's 5 mm lines: darkness keeps two of its three rows
    (validation realworld 3x5_006, read as 3x4+1R and refused as a grid with no trace); by shape, three
    rows on one pitch."""
    n, diag = _rows_found(monkeypatch, [28.3, 90.0], [-34.2, 28.3, 90.0])
    assert n == 3 and diag["trace_ink"]


def test_two_rows_stay_when_the_shape_rows_are_no_carts(monkeypatch) -> None:
    """Rows by shape off one pitch (two rows and a text line or a stain) do not replace two rows."""
    n, diag = _rows_found(monkeypatch, [28.3, 90.0], [12.0, 28.3, 90.0])
    assert n == 2 and "trace_ink" not in diag
