"""tick_phase: the x snap moves by whole periods onto the separator ticks, and only on clear evidence."""

from __future__ import annotations

import numpy as np
import pytest

from ecgml.geometry.orient import tick_phase
from ecgml.layout import LETTER_MM, make_layout

PPM = 4.0
EXT = (0.0, 0.0, LETTER_MM[0], LETTER_MM[1])


def ink(ticks: bool, seed: int = 0) -> np.ndarray:
    """An upright ink mask (frame = paper): a wavy trace on every row's baseline, ticks at cell boundaries."""
    lay = make_layout("3x4+1R")
    h, w = int(LETTER_MM[1] * PPM), int(LETTER_MM[0] * PPM)
    m = np.zeros((h, w), np.float32)
    rng = np.random.default_rng(seed)
    for c in lay.cells:
        xs = np.arange(int(c.x0_mm * PPM), int(c.x1_mm * PPM))
        ys = (c.baseline_mm + rng.normal(0, 1.5, xs.size).cumsum() * 0.05) * PPM
        m[np.clip(ys.astype(int), 0, h - 1), xs] = 1.0
        if ticks and c.col > 0:
            x = int(c.x0_mm * PPM)
            m[int((c.baseline_mm - 2) * PPM) : int((c.baseline_mm + 2) * PPM), x : x + 2] = 1.0
    return m


@pytest.mark.parametrize("tx_wrong", [-10.0, -5.0, 5.0, 10.0])
def test_a_snap_off_by_whole_periods_lands_on_the_ticks(tx_wrong: float) -> None:
    lay = make_layout("3x4+1R")
    assert tick_phase(ink(ticks=True), EXT, lay, tx_wrong, 0.0, PPM) == 0.0


def test_a_right_snap_stays() -> None:
    assert tick_phase(ink(ticks=True), EXT, make_layout("3x4+1R"), 0.0, 0.0, PPM) == 0.0


def test_without_ticks_the_snap_is_kept() -> None:
    for tx in (-5.0, 0.0, 5.0):
        assert tick_phase(ink(ticks=False), EXT, make_layout("3x4+1R"), tx, 0.0, PPM) == tx


def test_a_layout_without_cell_boundaries_is_left_alone() -> None:
    assert tick_phase(ink(ticks=True), EXT, make_layout("12x1"), 5.0, 0.0, PPM) == 5.0


def test_rows_whose_last_lead_is_flat_do_not_move_the_page() -> None:
    """Two of four rows end a cell early (flat last leads, as on a record with zero channels)."""
    from ecgml.geometry.orient import Rows, row_end, snap
    from ecgml.layout import make_layout

    lay = make_layout("3x4+1R")
    x_end = max(c.x1_mm for c in lay.cells)
    shift = 37.3  # frame -> paper x: the frame's row ends sit at x_end - shift
    cell = lay.cells[1].x0_mm - lay.cells[0].x0_mm
    right = np.array([x_end - cell, x_end + 0.4, x_end - cell + 0.2, x_end - 0.6]) - shift
    n = right.size
    rows = Rows(
        centres=np.array(lay.row_baselines()) - 20.0,
        left=np.full(n, -50.0),
        right=right,
        pulse=np.ones(n, bool),
        left_cut=np.ones(n, bool),  # the pulse is cut by the image edge: x comes from the row ends
        right_cut=np.zeros(n, bool),
    )
    tx, _, _, _ = snap(rows, "3x4+1R")
    assert abs(tx - 5 * round(shift / 5)) < 1e-9
    assert row_end(np.array([10.0, 50.0, 90.0])) == 50.0  # no two agree: the median
    assert row_end(np.array([100.0, 160.0])) == 130.0  # two rows: the median


def test_beats_lined_up_down_the_rows_do_not_move_an_off_lattice_page() -> None:
    """A real page's cells start between 5 mm lines: its ticks lie 1.5 mm off the snap, and the QRS
    complexes of one beat, drawn in every row of a column at the same x, stand 10 mm either side of the
    snap (validation page 6x2-seq_009 was moved 10 mm onto such strokes). The snap stays."""
    lay = make_layout("3x4+1R")
    m = ink(ticks=False)
    for c in lay.cells:
        if c.col == 0:
            continue
        for dx in (1.5, -10.0, 10.0):  # the tick, and a QRS stroke either side of the snap
            x = int((c.x0_mm + dx) * PPM)
            m[int((c.baseline_mm - 2) * PPM) : int((c.baseline_mm + 2) * PPM), x : x + 2] = 1.0
    assert tick_phase(m, EXT, lay, 0.0, 0.0, PPM) == 0.0


def test_strokes_in_two_places_give_no_verdict() -> None:
    """Strong ticks 10 mm left and 7 mm right of the snap and none near it: which is the separator is not
    said, so the snap stays."""
    lay = make_layout("3x4+1R")
    m = ink(ticks=False)
    for c in lay.cells:
        if c.col == 0:
            continue
        for dx in (-10.0, 7.0):
            x = int((c.x0_mm + dx) * PPM)
            m[int((c.baseline_mm - 2) * PPM) : int((c.baseline_mm + 2) * PPM), x : x + 2] = 1.0
    assert tick_phase(m, EXT, lay, 0.0, 0.0, PPM) == 0.0


def test_strokes_at_some_of_the_templates_boundaries_do_not_move_the_page() -> None:
    """A sequential page shows one beat at the same x in every row: its QRS strokes can fall 10 mm right of
    two of the 3x4 template's three boundaries and nowhere near the third (a 15-lead 3x5 page read on the
    3x4 template). The median over all boundaries is strong there, but separators stand at every boundary
    of the page's columns: the snap stays."""
    lay = make_layout("3x4")
    m = ink(ticks=False)
    for c in lay.cells:
        if c.col in (1, 2):  # the beat's strokes, in every row, right of the first two boundaries only
            x = int((c.x0_mm + 10.0) * PPM)
            m[int((c.baseline_mm - 2) * PPM) : int((c.baseline_mm + 2) * PPM), x : x + 2] = 1.0
    assert tick_phase(m, EXT, lay, 0.0, 0.0, PPM) == 0.0


def test_ticks_at_every_boundary_still_move_a_snap_one_period_off_with_one_row_hidden() -> None:
    """Every boundary column keeps its ticks in most rows (one row's separators hidden): the snap moves."""
    lay = make_layout("3x4+1R")
    m = ink(ticks=True)
    row = lay.cells[0].baseline_mm
    m[int((row - 3) * PPM) : int((row + 3) * PPM)] = 0.0  # the first row's ticks lost (a fold, a stain)
    assert tick_phase(m, EXT, lay, 5.0, 0.0, PPM) == 0.0
