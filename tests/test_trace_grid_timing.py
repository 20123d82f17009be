"""Grid timing: the 1 mm lines of a coloured grid say how far each part of a cell's trace sits off in x."""

from __future__ import annotations

import numpy as np
import pytest

from ecgml.geometry.canonical import CanonicalPage
from ecgml.geometry.grid import GRID_SHIFT_MM
from ecgml.layout import make_layout
from ecgml.trace.grid_timing import cell_x_error, correct_x
from ecgml.trace.types import CellTrace

PPM = (16.0, 8.0)


def _bend(x: np.ndarray) -> np.ndarray:
    """How far right of whole millimetres the page's grid lines (and so its trace) lie: a slow bend."""
    return 0.12 * np.sin(2 * np.pi * x / 70.0)


def _page(colour: bool = True) -> CanonicalPage:
    """A page whose 1 mm vertical lines are drawn at k + GRID_SHIFT_MM + _bend(k) mm (area-averaged,
    sub-pixel): where a printed ECG-Image-Kit grid sits, moved by the bend."""
    lay = make_layout()
    w, h = int(lay.paper_mm[0] * PPM[0]), int(lay.paper_mm[1] * PPM[1])
    x = (np.arange(w) + 0.5) / PPM[0]
    k = np.round(x)
    d = x - (k + GRID_SHIFT_MM + _bend(k))
    line = np.exp(-0.5 * (d / 0.06) ** 2)  # 0.14 mm wide line profile
    img = np.full((h, w, 3), 250.0)
    if colour:
        img[..., 1] -= 150 * line
        img[..., 2] -= 150 * line
    else:
        img -= 120 * line[None, :, None]
    return CanonicalPage(np.clip(img, 0, 255).astype(np.uint8), PPM, lay.paper_mm)


def _traces() -> list[CellTrace]:
    lay = make_layout()
    out = []
    for c in lay.cells:
        x = (np.arange(int(c.x0_mm * PPM[0]), int(c.x1_mm * PPM[0])) + 0.5) / PPM[0]
        out.append(CellTrace(c.lead, c.row, c.col, x, np.full(x.size, c.baseline_mm), np.ones(x.size)))
    return out


def test_the_grid_phase_follows_a_bend_of_the_lines():
    page, lay = _page(), make_layout()
    cell = lay.cells[1]
    err = cell_x_error(page, cell)
    assert err is not None
    x, d, contrast = err
    inside = (x >= cell.x0_mm) & (x < cell.x1_mm)
    assert np.all(contrast[inside] > 0.5)
    assert np.max(np.abs(d[inside] - _bend(x[inside]))) < 0.012


def test_traces_move_against_the_bend_and_stay_ordered():
    page, lay = _page(), make_layout()
    before = _traces()
    after = correct_x(page, lay, before)
    for b, a in zip(before, after, strict=True):
        assert np.all(np.diff(a.x_mm) > 0)
        assert np.max(np.abs((b.x_mm - a.x_mm) - _bend(b.x_mm))) < 0.012, b.lead
        np.testing.assert_array_equal(a.y_mm, b.y_mm)
    assert max(np.abs(b.x_mm - a.x_mm).max() for b, a in zip(before, after, strict=True)) > 0.08


def test_kept_row_bands_give_the_same_corrections():
    """The grid's chroma kept per row band (one dict per page, shared by the layout solver's re-reads)
    gives every cell the numbers it gets read alone, on a noisy page as on a clean one; a row's cells
    read the band once."""
    page, lay = _page(), make_layout()
    rng = np.random.default_rng(7)
    noisy = np.clip(page.image.astype(np.int16) + rng.integers(-40, 40, page.image.shape), 0, 255)
    for pg in (page, CanonicalPage(noisy.astype(np.uint8), page.px_per_mm, page.paper_mm)):
        bands: dict[tuple[int, int], np.ndarray] = {}
        for cell in lay.cells:
            alone, kept = cell_x_error(pg, cell), cell_x_error(pg, cell, bands)
            assert alone is not None and kept is not None
            for a, k in zip(alone, kept, strict=True):
                np.testing.assert_array_equal(a, k)
        assert len(bands) == len({c.baseline_mm for c in lay.cells})
        before = _traces()
        for a, k in zip(correct_x(pg, lay, before), correct_x(pg, lay, before, bands), strict=True):
            np.testing.assert_array_equal(a.x_mm, k.x_mm)


def test_a_grey_grid_leaves_the_traces_alone():
    page, lay = _page(colour=False), make_layout()
    before = _traces()
    for b, a in zip(before, correct_x(page, lay, before), strict=True):
        np.testing.assert_array_equal(a.x_mm, b.x_mm)


class _StraightReader:
    """An extractor that reads every cell as a flat line at its baseline, one column per canonical px."""

    name = "straight"

    def extract(self, page: CanonicalPage, layout: object) -> list[CellTrace]:
        return _traces()

    def read_tall(self, page: CanonicalPage, layout: object, traces: list[CellTrace]) -> list[CellTrace]:
        return traces  # a flat line never reaches a strip's edge

    forgotten = 0

    def forget(self) -> None:
        self.forgotten += 1


def test_the_digitizer_corrects_bent_pages_only():
    from ecgml.digitize import Digitizer, Geometry
    from ecgml.page import PageMap

    page, lay = _page(), make_layout()
    pm = PageMap(np.diag([PPM[0], PPM[1], 1.0]), page.image.shape[1::-1], lay.paper_mm)
    dig = Digitizer(_StraightReader(), "straight", px_per_mm=PPM)
    flat = dig.digitize_image(page.image, 500, geometry=Geometry(pm, lay, 1.0, "given"))
    bent = dig.digitize_image(page.image, 500, geometry=Geometry(pm, lay, 1.0, "given", bent=True))
    assert any("grid" in n for n in bent.notes) and not any("grid" in n for n in flat.notes)
    for tr, b, f in zip(_traces(), bent.traces, flat.traces, strict=True):
        np.testing.assert_array_equal(f.x_mm, tr.x_mm)
        assert np.max(np.abs((tr.x_mm - b.x_mm) - _bend(tr.x_mm))) < 0.012


def test_the_digitizer_drops_a_page_s_strips_once_the_page_is_read():
    """A served model waits between requests: what the extractor kept of a page goes with it, also when
    the page is refused."""
    from ecgml.digitize import Digitizer, Geometry
    from ecgml.errors import EcgmlError
    from ecgml.page import PageMap

    page, lay = _page(), make_layout()
    pm = PageMap(np.diag([PPM[0], PPM[1], 1.0]), page.image.shape[1::-1], lay.paper_mm)
    reader = _StraightReader()
    dig = Digitizer(reader, "straight", px_per_mm=PPM)
    dig.digitize_image(page.image, 500, geometry=Geometry(pm, lay, 1.0, "given"))
    assert reader.forgotten == 1
    blank = np.full_like(page.image, 255)
    with pytest.raises(EcgmlError):
        dig.digitize_image(blank, 500)
    assert reader.forgotten == 2
