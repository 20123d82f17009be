"""The wave vote of the upright score counts the tops of waves, not text printed beside the rows.

Strips that print their second numbers 9-12 mm under the trace (web viewers, the renderer's boxed
12x1 pages) put ink in the band below every baseline where only deep S waves reach: a photo of such a
page (validation seed 14002 panels-12x1_002) was read upside down with a margin of 18.
"""

from __future__ import annotations

import numpy as np

from ecgml.geometry.orient import _orient

PPM = 4.0
ROWS_MM = [20.0, 45.0, 70.0, 95.0, 120.0, 145.0]
W_MM, H_MM = 250.0, 175.0


def _page(numbers: bool) -> np.ndarray:
    """An upright ink mask: a trace per baseline with 6 mm QRS strokes every 20 mm, tall R waves (11 mm)
    on the last two rows, and, when `numbers`, a digit-sized blob (2 x 3 mm) 9.5-12.5 mm under each
    baseline every 25 mm, apart from the trace."""
    h, w = int(H_MM * PPM), int(W_MM * PPM)
    m = np.zeros((h, w), bool)
    x = np.arange(int(10 * PPM), int(240 * PPM))
    for i, b in enumerate(ROWS_MM):
        y = int(b * PPM)
        # T-like bumps 1.5 mm tall: the trace leaves its baseline (a ruled line would not)
        yi = np.round(b * PPM - 1.5 * PPM * np.clip(np.sin(x / (2 * PPM)), 0, 1) ** 2).astype(int)
        for d in (0, 1):  # a stroke 2 px thick, unbroken where it climbs
            m[yi + d, x] = True
            m[np.roll(yi, 1) + d, x] = True
        tall = 11.0 if i >= 4 else 6.0
        for q in range(int(15 * PPM), int(235 * PPM), int(20 * PPM)):
            m[int((b - tall) * PPM) : y + 1, q : q + 2] = True  # R up
            m[y : int((b + 3) * PPM), q + 3 : q + 5] = True  # S down 3 mm
        if numbers:
            for q in range(int(12 * PPM), int(240 * PPM), int(25 * PPM)):
                m[int((b + 9.5) * PPM) : int((b + 12.5) * PPM), q : q + int(2 * PPM)] = True
    return m


def _turn(mask: np.ndarray) -> int:
    inside = np.ones(mask.shape, bool)
    ink = np.zeros(mask.shape, np.float32)  # unused: the mask is given
    ori, _, _ = _orient(ink, inside, inside, (0.0, 0.0, mask.shape[1] / PPM, mask.shape[0] / PPM), PPM, mask)
    return ori.k


def test_a_page_of_strips_with_numbers_under_them_turned_180_is_read_upright() -> None:
    turned = np.ascontiguousarray(np.rot90(_page(numbers=True), k=2))
    assert _turn(turned) == 2


def test_the_same_strips_without_numbers_read_alike() -> None:
    # the waves alone decide either way up: the numbers no longer change the vote
    assert _turn(np.ascontiguousarray(np.rot90(_page(numbers=False), k=2))) == 2
    assert _turn(_page(numbers=True)) == 0
