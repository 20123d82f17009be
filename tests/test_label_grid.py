"""The page's rows and family from its printed names (`ecgml.label_grid`): lattices of names, noise."""

from collections.abc import Callable

import numpy as np

from ecgml.label_grid import Peak, find_grid, layout_from_names, lost_rows
from ecgml.layout import PageLayout, make_layout
from ecgml.trace.types import CellTrace

SIX_BY_TWO = [["I", "V1"], ["II", "V2"], ["III", "V3"], ["aVR", "V4"], ["aVL", "V5"], ["aVF", "V6"]]


def _lattice(grid: list[list[str]], xs: list[float], y0: float, pitch: float, p: float = 0.97) -> list[Peak]:
    return [Peak(lead, p, xs[c], y0 + r * pitch) for r, row in enumerate(grid) for c, lead in enumerate(row)]


def _noise(n: int, seed: int = 0) -> list[Peak]:
    """Strokes read as "I" anywhere on the page (what the reader does on QRS spikes and grid lines)."""
    rng = np.random.default_rng(seed)
    return [Peak("I", 0.95, float(rng.uniform(0, 270)), float(rng.uniform(0, 210))) for _ in range(n)]


def _recording_retrace() -> tuple[list[str], Callable[[PageLayout], list[CellTrace]]]:
    """(the names of the layouts traced, in order; a `retrace` that records each and reads nothing)."""
    names: list[str] = []

    def retrace(lay: PageLayout) -> list[CellTrace]:
        names.append(lay.name)
        return []

    return names, retrace


def test_a_six_by_two_lattice_is_read_among_noise() -> None:
    pk = _lattice(SIX_BY_TWO, [20.0, 150.0], 40.0, 25.0) + _noise(30)
    g = find_grid(pk)
    assert g is not None and g.base in ("6x2", "6x2-seq")
    assert len(g.rows_y) == 6 and abs(g.pitch - 25.0) < 0.5
    assert abs(g.cols_x[0] - 20.0) < 1 and abs(g.cols_x[1] - 150.0) < 1


def test_cabrera_order_is_told_from_the_standard_one() -> None:
    cab = [["aVL", "V1"], ["I", "V2"], ["aVR", "V3"], ["II", "V4"], ["aVF", "V5"], ["III", "V6"]]
    g = find_grid(_lattice(cab, [20.0, 150.0], 40.0, 25.0))
    assert g is not None and g.base == "cabrera-6x2"


def test_half_the_names_misread_or_strokes_only_give_no_lattice() -> None:
    assert find_grid(_noise(60, seed=1)) is None
    only_symmetric = [Peak(n, 0.99, 20.0, 40.0 + 25 * r) for r, n in enumerate(["I", "II", "III"])]
    assert find_grid(only_symmetric + _noise(20)) is None


def test_a_column_of_contradicting_names_is_left_out() -> None:
    pk = _lattice(SIX_BY_TWO, [20.0, 150.0], 40.0, 25.0)
    # every chest name read as another chest lead: only the limb column is a lattice (a 6x1 page)
    wrong = {"V1": "V3", "V2": "V5", "V3": "V1", "V4": "V6", "V5": "V2", "V6": "V4"}
    g = find_grid([Peak(wrong.get(q.name, q.name), q.p, q.x_mm, q.y_mm) for q in pk])
    assert g is not None and g.base == "6x1-limb" and len(g.rows_y) == 6


def test_layout_from_names_restores_rows_geometry_lost_and_drops_a_header_row() -> None:
    pk = _lattice(SIX_BY_TWO, [20.0, 150.0], 40.0, 25.0)
    g = find_grid(pk)
    assert g is not None
    # names print 4 mm above their baselines; geometry found rows 1, 2, 4 and 5 and a header at 15 mm
    true = [44.0 + 25 * r for r in range(6)]
    found = [15.0, true[0], true[1], true[3], true[4]]
    like = make_layout("3x4+1R", baselines_mm=found[:4], x0_mm=20.0)
    lay = layout_from_names(g, like, found, (20.0, 270.0))
    assert lay is not None and lay.n_rows == 6 and lay.name.startswith("6x2")
    assert np.allclose(lay.row_baselines(), true, atol=0.6)
    assert lost_rows(lay, like, g.pitch) == 3  # rows 3, 5 and 6 (the template kept 4 of those found)
    assert lost_rows(like, like, g.pitch) == 0
    # rows 1 and 2 taken from geometry exactly (snapped), the lost ones from the names' lattice
    assert lay.row_baselines()[0] == true[0] and lay.row_baselines()[4] == true[4]


def test_layout_from_names_needs_two_geometry_rows_to_place_the_traces() -> None:
    g = find_grid(_lattice(SIX_BY_TWO, [20.0, 150.0], 40.0, 25.0))
    assert g is not None
    like = make_layout("3x4+1R", x0_mm=20.0)
    assert layout_from_names(g, like, [44.0], (20.0, 270.0)) is None
    assert layout_from_names(g, like, [44.0, 200.0], (20.0, 270.0)) is None


def test_rows_from_names_retraces_only_where_geometry_lost_rows(monkeypatch) -> None:
    import ecgml.digitize as dg

    g = find_grid(_lattice(SIX_BY_TWO, [20.0, 150.0], 40.0, 25.0))
    assert g is not None
    monkeypatch.setattr(dg, "read_grid", lambda ink, net, prob=None: (g, []))
    true = [44.0 + 25 * r for r in range(6)]
    image = np.full((400, 500, 3), 255, np.uint8)
    calls, retrace = _recording_retrace()

    lost = dg.flat_page_estimate(image)
    lost.diagnostics["row_baselines_mm"] = [true[0], true[1], true[3], true[4]]
    lost.layout = make_layout("3x4+1R", baselines_mm=lost.diagnostics["row_baselines_mm"], x0_mm=20.0)
    geo, _, found = dg.rows_from_names(image, None, lost, [], retrace)
    # evenly spaced rows: both offsets' layouts are traced to choose; the one kept is not traced again
    assert found.used and geo.layout.name.startswith("6x2") and calls[-1] == geo.layout.name
    assert "printed lead names" in found.evidence["note"] and found.lattice is g and found.searched

    calls.clear()
    whole = dg.flat_page_estimate(image)
    whole.diagnostics["row_baselines_mm"] = true
    whole.layout = make_layout("6x2", baselines_mm=true, x0_mm=20.0)
    geo, _, found = dg.rows_from_names(image, None, whole, [], retrace)
    assert not found.used and geo is whole and not calls  # geometry has every row the names show
    assert found.evidence["used"] is False and found.lattice is g

    monkeypatch.setattr(dg, "read_grid", lambda ink, net, prob=None: (None, []))
    geo, _, found = dg.rows_from_names(image, None, whole, [], retrace)
    assert found.searched and found.lattice is None and not found.evidence  # `turned_grid` looks next


def test_of_two_row_offsets_the_one_whose_rows_carry_traces_wins(monkeypatch) -> None:
    import ecgml.digitize as dg
    from ecgml.trace.types import CellTrace

    # names printed 15 mm below their traces (pitch 25): geometry found the four middle rows, so the
    # names fit them alike one row down (+10 mm, the smaller offset) and at their own rows (-15 mm);
    # only the latter puts every row on a trace (the former's last row falls on blank paper)
    true = [44.0 + 25 * r for r in range(6)]
    g = find_grid(_lattice(SIX_BY_TWO, [20.0, 150.0], true[0] + 15.0, 25.0))
    assert g is not None
    monkeypatch.setattr(dg, "read_grid", lambda ink, net, prob=None: (g, []))
    image = np.full((400, 500, 3), 255, np.uint8)

    def retrace(lay):  # type: ignore[no-untyped-def]
        x = np.linspace(0.0, 10.0, 11)
        on = [min(abs(c.baseline_mm - t) for t in true) < 2.0 for c in lay.cells]
        conf = [np.full_like(x, 0.9 if o else 0.1) for o in on]
        return [
            CellTrace(c.lead, c.row, c.col, x, np.full_like(x, c.baseline_mm), k)
            for c, k in zip(lay.cells, conf, strict=True)
        ]

    geo = dg.flat_page_estimate(image)
    geo.diagnostics["row_baselines_mm"] = true[1:5]
    geo.layout = make_layout("3x4+1R", baselines_mm=true[1:5], x0_mm=20.0)
    got, _, found = dg.rows_from_names(image, None, geo, [], retrace)
    assert found.used and np.allclose(sorted(got.layout.row_baselines()), true, atol=0.5)
    assert found.evidence["offset_traced"] == [5, 6]


def test_the_turned_page_is_searched_only_where_its_names_do_not_read_it_upright(monkeypatch) -> None:
    import ecgml.digitize as dg
    from ecgml.page_reader import UPSIDE_DOWN_AT, LabelReading

    g = find_grid(_lattice(SIX_BY_TWO, [20.0, 150.0], 40.0, 25.0))
    seen: list[np.ndarray] = []

    def read_grid(ink, net, prob=None):  # type: ignore[no-untyped-def]
        seen.append(ink)
        return g, []

    monkeypatch.setattr(dg, "read_grid", read_grid)
    ink = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert dg.turned_grid(ink, None, LabelReading(upright=UPSIDE_DOWN_AT + 1)) == {} and not seen
    ev = dg.turned_grid(ink, None, LabelReading(upright=0.0))
    assert ev["turned_grid"]["base"] == g.base and np.array_equal(seen[0], ink[::-1, ::-1])
    monkeypatch.setattr(dg, "read_grid", lambda ink, net, prob=None: (None, []))
    assert dg.turned_grid(ink, None, None) == {}


def _three_by_four(cols_x: list[float]):  # type: ignore[no-untyped-def]
    from ecgml.label_grid import NameGrid

    return NameGrid("3x4", [40.0, 80.0, 120.0], cols_x, 40.0)


def test_names_that_stand_at_geometry_cuts_leave_them() -> None:
    from ecgml.label_grid import cuts_from_names

    # 4 columns of 62.5 mm from 15 mm, each name 3 mm right of its cell's start (one lost)
    g = _three_by_four([18.0, 80.5, float("nan"), 205.5])
    assert cuts_from_names(g, (15.0, 265.0), 25.0) == (True, None)
    assert cuts_from_names(_three_by_four([18.0] + [float("nan")] * 3), (15.0, 265.0), 25.0) == (True, None)


def test_a_row_cut_off_at_one_edge_is_cut_where_its_names_stand() -> None:
    from ecgml.label_grid import cuts_from_names

    # the scan lost the first 20 mm of the rows: geometry's rows run from 0 to the true end, 250 mm
    g = _three_by_four([-17.0 + 3.0 + c * 62.5 for c in range(4)])
    g.cols_x[0] = float("nan")  # the first column's names are off the page
    agree, frame = cuts_from_names(g, (0.0, 233.0), 25.0)
    assert not agree and frame is not None
    assert abs(frame[0] + 17.0) < 0.5 and abs(frame[1] - 233.0) < 0.5  # the end geometry found is kept
    # every geometry edge off: the cells start a typical offset before their names
    agree, frame = cuts_from_names(g, (-40.0, 210.0), 25.0)
    assert not agree and frame is not None and abs(frame[0] - (-17.0 + 3.0 - 3.0)) < 0.5
    # names one and a half columns apart for a 10 s page: the scale is off, no cuts from them
    g2 = _three_by_four([20.0 + c * 90.0 for c in range(4)])
    assert cuts_from_names(g2, (15.0, 265.0), 25.0) == (False, None)


def test_recut_spreads_each_row_over_the_new_extent() -> None:
    from ecgml.label_grid import recut

    lay = recut(make_layout("3x4+1R", x0_mm=15.0), (-10.0, 240.0))
    grid = sorted((c for c in lay.cells if c.row == 0), key=lambda c: c.col)
    assert [round(c.x0_mm, 1) for c in grid] == [-10.0, 52.5, 115.0, 177.5]
    assert [round(c.t0_s, 2) for c in grid] == [0.0, 2.5, 5.0, 7.5] and abs(grid[-1].t1_s - 10.0) < 1e-9
    strip = next(c for c in lay.cells if c.row == 3)
    assert (strip.x0_mm, strip.x1_mm, strip.t0_s, strip.t1_s) == (-10.0, 240.0, 0.0, 10.0)


def test_first_column_names_left_of_the_pulses_and_two_columns_say_nothing() -> None:
    from ecgml.label_grid import cuts_from_names

    # the first column's names right-aligned before the rows' pulses, 12 mm left of the cells' start
    g = _three_by_four([15.0 - 12.0, 80.5, 143.0, 205.5])
    assert cuts_from_names(g, (15.0, 265.0), 25.0) == (True, None)
    # a 6x2 lattice has one column after the first: its two names 145 mm apart are not the page's
    # pitch (5 s at 25 mm/s), so no evidence against geometry's cuts
    g6 = find_grid(_lattice(SIX_BY_TWO, [5.0, 150.0], 40.0, 25.0))
    assert g6 is not None and cuts_from_names(g6, (15.0, 265.0), 25.0) == (True, None)


def test_two_columns_of_names_one_pitch_apart_cut_the_rows() -> None:
    from ecgml.label_grid import NAME_DX_TYPICAL_MM, cuts_from_names

    # a 6x2 page whose rows start at 18 mm, its names 6 mm in; geometry put the rows 11 mm early
    g6 = find_grid(_lattice(SIX_BY_TWO, [24.0, 149.0], 40.0, 25.0))
    assert g6 is not None
    agree, frame = cuts_from_names(g6, (7.0, 257.0), 25.0)
    assert not agree and frame is not None
    assert abs(frame[0] - (24.0 - NAME_DX_TYPICAL_MM)) < 0.5 and abs(frame[1] - frame[0] - 250.0) < 0.5
    assert cuts_from_names(g6, (19.0, 269.0), 25.0) == (True, None)  # geometry's cuts where the names say
    # at 50 mm/s the same names are half a column apart: the scale or speed is off, no cut
    assert cuts_from_names(g6, (7.0, 257.0), 50.0) == (True, None)


def test_the_solved_family_is_recut_where_its_names_stand(monkeypatch) -> None:
    import ecgml.digitize as dg
    from ecgml.layout_solve import Solved

    # geometry's template had four columns, the solver read the page as 6x2: only then do the names'
    # two columns compare with the cells, and the rows are cut and traced again where they stand
    g6 = find_grid(_lattice(SIX_BY_TWO, [24.0, 149.0], 40.0, 25.0))
    assert g6 is not None
    seen, retrace = _recording_retrace()

    lay = make_layout("6x2", x0_mm=7.0)
    rows = dg.NameRows(g6, True, {"grid": {}})
    got = dg.names_recut(Solved(lay, []), rows, 279.4, retrace)
    starts = sorted({round(c.x0_mm, 1) for c in got.layout.cells})
    assert starts == [21.0, 146.0] and seen == ["6x2"] and rows.recut
    assert [c.lead for c in got.layout.cells] == [c.lead for c in lay.cells]
    # names at the solved cells' starts: nothing to cut, nothing traced again
    seen.clear()
    here = dg.NameRows(g6, True, {})
    same = Solved(make_layout("6x2", x0_mm=19.0), [])
    assert dg.names_recut(same, here, 279.4, retrace) is same and not seen and not here.recut


def test_a_column_of_names_where_no_cell_starts_is_found() -> None:
    from ecgml.label_grid import names_off_cells

    g = _three_by_four([float("nan"), 70.0, 120.0, 170.0])  # a 3x5 page's names, 50 mm apart
    assert not names_off_cells(g, [13.9 + 50.0 * c for c in range(5)])  # read as 3x5: every name at a start
    assert names_off_cells(g, [13.9 + 62.5 * c for c in range(4)])  # read as 3x4: two columns off
    assert names_off_cells(g, [13.9])  # read as 12x1: no cell starts where the names do


def test_names_that_build_no_layout_still_cut_geometry_rows(monkeypatch) -> None:
    import ecgml.digitize as dg

    # a 3x4 lattice, its names 12.5 mm right of geometry's cell starts; placed on one geometry row only,
    # so it builds no layout of its own (`layout_from_names`), yet its columns say where the cells start
    grid = [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]]
    g = find_grid(_lattice(grid, [27.5, 90.0, 152.5, 215.0], 40.0, 36.0))
    assert g is not None and g.base == "3x4"
    monkeypatch.setattr(dg, "read_grid", lambda ink, net, prob=None: (g, []))
    image = np.full((400, 500, 3), 255, np.uint8)
    traced, retrace = _recording_retrace()

    geo = dg.flat_page_estimate(image)
    geo.diagnostics["row_baselines_mm"] = [44.0]
    geo.layout = make_layout("3x4+1R", x0_mm=15.0)
    got, _, found = dg.rows_from_names(image, None, geo, [], retrace)
    assert not found.used and found.recut and traced == ["3x4+1R"]
    firsts = sorted(c.x0_mm for c in got.layout.cells if c.col == 0)
    assert abs(firsts[0] - 24.5) < 0.5 and got.layout.name == "3x4+1R"
