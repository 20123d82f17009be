"""The grid-phase unwrapping of the fine rounds (crumpled paper): a few confident wrong tiles must not
slip the rest of the page by a whole 5 mm period."""

from __future__ import annotations

import numpy as np

from ecgml.geometry.refine import _unwrap


def _ramp_with_a_bad_column() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shifts (mod 5) of a map that is off by 1 mm more per tile to the right (as where the coarse
    rounds had no tiles), with a column of confident tiles half a period off; one tile of that column
    (the last row) is right, so the right part is reachable only past the wrong ones or through it."""
    ny, nx = 6, 16
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    truth = 1.0 * xx + 0.2 * yy
    measured = truth.copy()
    bad = np.zeros((ny, nx), bool)
    bad[: ny - 1, 8] = True
    measured[bad] += 2.4
    conf = np.full((ny, nx), 0.9)
    conf[bad] = 0.95
    conf[2, 1] = 1.0  # the seed
    return np.mod(measured, 5.0), conf, truth, bad


def test_confident_wrong_tiles_do_not_slip_the_tiles_beyond_them() -> None:
    shift, conf, truth, bad = _ramp_with_a_bad_column()
    out = _unwrap(shift, np.ones(shift.shape, bool), conf, max_jump=1.5)
    err = out - truth - (out[2, 1] - truth[2, 1])
    good = ~bad
    assert np.isnan(out[bad]).all()  # the wrong tiles are left out, not bent onto the page
    assert not np.isnan(out[good]).any()  # everything else is reached through the one right tile
    assert np.abs(err[good]).max() < 1e-9


def test_without_the_guard_the_same_tiles_slip_part_of_the_page() -> None:
    """What the coarse rounds keep (their 20 mm tiles see no such slopes): the plain neighbour mean."""
    shift, conf, truth, bad = _ramp_with_a_bad_column()
    out = _unwrap(shift, np.ones(shift.shape, bool), conf)
    err = out - truth - (out[2, 1] - truth[2, 1])
    assert np.abs(err[~bad]).max() > 2.5
