"""What passes for a calibration pulse: a box rising from the baseline whose top ends at its corners.

A page turned 180 degrees shows its R waves pointing down; two of them 5 mm apart (a fast heart at
12.5 mm/s) frame a stretch of baseline like a pulse's strokes and top, and as the rows' beats are
simultaneous, such pairs stack at one x like a column of pulses. That stack turned the page upside down
(validation realworld panels-3x4+1R_006, seed 14001); a pulse's top is paper beside its corners.
"""

from __future__ import annotations

import numpy as np

from ecgml.geometry.orient import find_pulses

PPM = 4.0
ROWS_MM = (30.0, 70.0, 110.0)


def _page(pulse: bool) -> np.ndarray:
    """Upright mask: flat rows with pairs of R waves (10 mm tall, 5 mm apart) at the same x in every
    row; with `pulse`, a 5 x 10 mm calibration pulse at each row's start."""
    m = np.zeros((int(150 * PPM), int(250 * PPM)), bool)
    for b in ROWS_MM:
        y = int(b * PPM)
        m[y - 1 : y + 1, int(30 * PPM) : int(230 * PPM)] = True
        for x_mm in (100.0, 105.0, 160.0, 165.0):
            x = int(x_mm * PPM)
            m[y - int(10 * PPM) : y + 1, x : x + 2] = True
        if pulse:
            x = int(15 * PPM)
            m[y - 1 : y + 1, int(10 * PPM) : int(30 * PPM)] = True
            m[y - 40 : y + 1, x : x + 2] = True
            m[y - 40 : y - 38, x : x + 22] = True
            m[y - 40 : y + 1, x + 20 : x + 22] = True
            m[y - 1 : y + 1, x + 20 : x + 40] = True  # the trace leaves the pulse's foot
    return m


def test_r_wave_pairs_of_a_turned_page_are_no_pulses() -> None:
    turned = np.ascontiguousarray(_page(False)[::-1, ::-1])
    assert find_pulses(turned, PPM, (10.0,)) == []


def test_a_pulse_at_the_row_start_is_still_found() -> None:
    got = find_pulses(_page(True), PPM, (10.0,))
    starts = sorted({round(p[1] / PPM) for p in got})
    assert starts == [15]
    assert sorted(round(p[2] / PPM) for p in got) == list(ROWS_MM)
