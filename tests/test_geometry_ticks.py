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
