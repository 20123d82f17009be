"""The wave vote of the upright score: one or two voting rows do not outvote the rest of the page.

Rows closer than ~22 mm cast no wave vote (their bands hold the neighbour's trace), so on a 12-row page
the one row whose neighbours the profile missed voted alone, and its band held text or a missed row:
validation cabrera-12x1_004 (10 rows found, one voting) and panels-3x4+1R_001 (one row per box) were
read turned. The votes now count in full only where WAVE_FULL_ROWS rows cast one.
"""

from __future__ import annotations

import numpy as np

from ecgml.geometry.orient import _orient

PPM = 4.0
W_MM = 250.0


def _row(m: np.ndarray, b: float, tall: float) -> None:
    """A trace on baseline `b` mm: low bumps, and a QRS every 20 mm with an R wave `tall` mm high."""
    x = np.arange(int(10 * PPM), int(240 * PPM))
    y = int(b * PPM)
    yi = np.round(b * PPM - 1.5 * PPM * np.clip(np.sin(x / (2 * PPM)), 0, 1) ** 2).astype(int)
    for d in (0, 1):  # a stroke 2 px thick, unbroken where it climbs
        m[yi + d, x] = True
        m[np.roll(yi, 1) + d, x] = True
    for q in range(int(15 * PPM), int(235 * PPM), int(20 * PPM)):
        m[int((b - tall) * PPM) : y + 1, q : q + 2] = True  # R up
        m[y : int((b + 3) * PPM), q + 3 : q + 5] = True  # S down 3 mm


def _page(close: list[float], voting: list[float], h_mm: float, text_under: float | None) -> np.ndarray:
    """An upright ink mask: rows at `close` (16 mm apart: no wave vote) with 6 mm R waves, rows at
    `voting` (far apart) with 11 mm R waves (they reach the vote's band), and where `text_under` is a
    baseline, digit-sized blobs (2 x 3 mm) 10-13 mm under it every 25 mm, apart from the trace."""
    m = np.zeros((int(h_mm * PPM), int(W_MM * PPM)), bool)
    for b in close:
        _row(m, b, 6.0)
    for b in voting:
        _row(m, b, 11.0)
    if text_under is not None:
        for q in range(int(12 * PPM), int(240 * PPM), int(25 * PPM)):
            m[int((text_under + 10) * PPM) : int((text_under + 13) * PPM), q : q + int(2 * PPM)] = True
    return m


def _turn(mask: np.ndarray) -> int:
    inside = np.ones(mask.shape, bool)
    ink = np.zeros(mask.shape, np.float32)  # unused: the mask is given
    ori, _, _ = _orient(ink, inside, inside, (0.0, 0.0, mask.shape[1] / PPM, mask.shape[0] / PPM), PPM, mask)
    return ori.k


CLOSE = [40.0, 56.0, 72.0, 88.0]


def test_one_voting_row_with_text_under_it_does_not_turn_the_page() -> None:
    # four close rows cast no vote; the fifth, 42 mm below them, has text in its lower band (more ink
    # there than its R waves put above): it alone turned the page before
    assert _turn(_page(CLOSE, [130.0], 160.0, text_under=130.0)) == 0


def test_three_voting_rows_still_vote_in_full() -> None:
    # the same text under one of three voting rows: the other two outvote it either way up
    page = _page([], [40.0, 75.0, 110.0], 150.0, text_under=110.0)
    assert _turn(page) == 0
    assert _turn(np.ascontiguousarray(np.rot90(page, k=2))) == 2
