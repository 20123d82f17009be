"""The page's rows and family from its printed names (`ecgml.label_grid`): lattices of names, noise."""

import numpy as np

from ecgml.label_grid import Peak, find_grid, layout_from_names, lost_rows
from ecgml.layout import make_layout

SIX_BY_TWO = [["I", "V1"], ["II", "V2"], ["III", "V3"], ["aVR", "V4"], ["aVL", "V5"], ["aVF", "V6"]]


def _lattice(grid: list[list[str]], xs: list[float], y0: float, pitch: float, p: float = 0.97) -> list[Peak]:
    return [Peak(lead, p, xs[c], y0 + r * pitch) for r, row in enumerate(grid) for c, lead in enumerate(row)]


def _noise(n: int, seed: int = 0) -> list[Peak]:
    """Strokes read as "I" anywhere on the page (what the reader does on QRS spikes and grid lines)."""
    rng = np.random.default_rng(seed)
    return [Peak("I", 0.95, float(rng.uniform(0, 270)), float(rng.uniform(0, 210))) for _ in range(n)]


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
    calls: list[str] = []

    def retrace(lay):  # type: ignore[no-untyped-def]
        calls.append(lay.name)
        return []

    lost = dg.flat_page_estimate(image)
    lost.diagnostics["row_baselines_mm"] = [true[0], true[1], true[3], true[4]]
    lost.layout = make_layout("3x4+1R", baselines_mm=lost.diagnostics["row_baselines_mm"], x0_mm=20.0)
    geo, _, ev = dg.rows_from_names(image, None, lost, [], retrace)
    assert ev["used"] and geo.layout.name.startswith("6x2") and calls == [geo.layout.name]
    assert "printed lead names" in ev["note"]

    calls.clear()
    whole = dg.flat_page_estimate(image)
    whole.diagnostics["row_baselines_mm"] = true
    whole.layout = make_layout("6x2", baselines_mm=true, x0_mm=20.0)
    geo, _, ev = dg.rows_from_names(image, None, whole, [], retrace)
    assert not ev["used"] and geo is whole and not calls  # geometry has every row the names show
