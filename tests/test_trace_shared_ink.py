"""Neighbouring rows decoded onto the same ink: the chain of rows moved back onto their own traces."""

from __future__ import annotations

import numpy as np

from ecgml.trace.model import ink_gap_costs, log_probs_by_column, track_paths
from ecgml.trace.shared_ink import keep_off, pinned_ends, repair_chain, shared_runs

SPACING, HALF, W = 40, 48, 300


def _page(
    drop: np.ndarray, rows: int, top_drop: np.ndarray | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """A white page with `rows` traces SPACING px apart, each displaced by `drop` (px per column), the
    steps drawn as ink; the top trace by `top_drop` instead when given."""
    drops = [top_drop if (r == 0 and top_drop is not None) else drop for r in range(rows)]
    return _page_rows(drops)


def _stack(page: np.ndarray, rows: int):
    """Per row: strip top, a network-like log-probability (each visible trace, the nearest the strip's
    middle the likeliest) and the strip's ink gap costs."""
    tops, lanes, gaps = [], [], []
    for r in range(rows):
        top = SPACING * (r + 1) - HALF
        strip = np.full((2 * HALF, W, 3), 255, np.uint8)
        a, b = max(top, 0), min(top + 2 * HALF, page.shape[0])
        strip[a - top : b - top] = page[a:b]
        ink = strip.min(axis=2) < 128
        pos = np.arange(2 * HALF)[:, None]
        logits = np.where(ink, 4.0 - np.abs(pos - HALF) / 4.0, -8.0).astype(np.float32)
        lanes.append(log_probs_by_column(logits))
        gaps.append(ink_gap_costs(strip, np.full(W, HALF), 1, 0.3))
        tops.append(top)
    return tops, lanes, gaps


def _repair(lanes, gaps, tops, paths):
    def decode(i, path, avoid, where, below):
        run = np.flatnonzero(where)
        a, b = int(run[0]), int(run[-1]) + 1
        lane = pinned_ends(keep_off(lanes[i][a:b], avoid[a:b], where[a:b], below), path[a], path[b - 1])
        out = path.copy()
        out[a:b] = track_paths([lane], 48, [gaps[i][a:b]])[0]
        return out

    def inkness(i, y):
        cum = gaps[i]
        y = np.clip(y, 1, cum.shape[1] - 1)
        col = np.arange(cum.shape[0])
        return 1.0 - (cum[col, y] - cum[col, y - 1]) / 0.3

    return repair_chain(paths, tops, decode, inkness, min_cols=20, margin=10)


def test_rows_that_all_drift_by_a_row_spacing_get_their_own_traces_back():
    """Every trace drops by most of a row spacing for a stretch (baseline wander shared by all leads): each
    row but the top decodes the trace of the row above, which sits nearer its strip's middle; the chain
    moved down ends on the trace no row took, and every row is back on its own."""
    drop = np.zeros(W, np.int64)
    drop[100:200] = 34
    page, truth = _page(drop, 4)
    tops, lanes, gaps = _stack(page, 4)
    paths = track_paths(lanes, 48, gaps)
    wrong = [int(np.sum(np.abs(p + t - y) > 2)) for p, t, y in zip(paths, tops, truth, strict=True)]
    assert wrong[0] <= 3 and min(wrong[1:]) >= 90, wrong  # the failure: rows 1-3 on the trace above
    fixed = _repair(lanes, gaps, tops, paths)
    for p, t, y in zip(fixed, tops, truth, strict=True):
        assert np.sum(np.abs(p + t - y) > 2) <= 3


def test_a_top_row_whose_trace_leaves_the_paper_moves_alone():
    """The top row's trace runs off the paper for a stretch and its path falls onto the row below's
    trace: only the top row moves (the chain down would push every row off its own trace)."""
    top_drop = np.zeros(W, np.int64)
    top_drop[100:200] = -60  # above the page: no ink
    page, truth = _page(np.zeros(W, np.int64), 3, top_drop)
    tops, lanes, gaps = _stack(page, 3)
    paths = track_paths(lanes, 48, gaps)
    assert np.sum(np.abs(paths[0] + tops[0] - truth[1]) <= 2) >= 50  # row 0 on row 1's trace
    fixed = _repair(lanes, gaps, tops, paths)
    for r in (1, 2):
        np.testing.assert_array_equal(fixed[r], paths[r])
    assert np.sum(np.abs(fixed[0] + tops[0] - truth[1]) <= 2) < 20


def test_rows_on_their_own_traces_are_left_alone():
    """No shared stretch (QRS-like crossings last a column or two): no window, the same paths."""
    drop = np.zeros(W, np.int64)
    drop[150] = 45  # a spike of each row through the row below's trace, one column
    page, _ = _page(drop, 3)
    tops, lanes, gaps = _stack(page, 3)
    paths = track_paths(lanes, 48, gaps)
    assert shared_runs([p + t for p, t in zip(paths, tops, strict=True)], 20, 10) == []
    fixed = _repair(lanes, gaps, tops, paths)
    for a, b in zip(fixed, paths, strict=True):
        np.testing.assert_array_equal(a, b)


def _page_rows(drops: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """A white page with one trace per entry of `drops`, SPACING px apart, each displaced by its drop."""
    rows = len(drops)
    page = np.full((SPACING * (rows + 2), W, 3), 255, np.uint8)
    traces = []
    for r, d in enumerate(drops):
        y = SPACING * (r + 1) + d
        for x in range(W):
            lo, hi = (min(y[x], y[x - 1]), max(y[x], y[x - 1])) if x else (y[x], y[x])
            page[max(lo, 0) : max(hi + 1, 0), x] = 0
        traces.append(y)
    return page, traces


def test_separate_groups_of_rows_choose_their_own_direction():
    """Two conflicts over the same columns in one stack: the top row's trace leaves the paper (its path
    falls onto row 1's trace: moving row 0 alone, up, is right) while rows 2-4 drift down by a row spacing
    (rows 3 and 4 take the trace above: the chain down is right). Each pair gets its own window and
    direction; one window and one direction for all cannot repair both."""
    flat = np.zeros(W, np.int64)
    off = flat.copy()
    off[100:200] = -60  # above the page: no ink
    drift = flat.copy()
    drift[120:220] = 34
    page, truth = _page_rows([off, flat, drift, drift, drift])
    tops, lanes, gaps = _stack(page, 5)
    paths = track_paths(lanes, 48, gaps)
    assert np.sum(np.abs(paths[0] + tops[0] - truth[1]) <= 2) >= 50  # row 0 on row 1's trace
    for r in (3, 4):
        assert np.sum(np.abs(paths[r] + tops[r] - truth[r]) > 2) >= 90  # on the trace above
    fixed = _repair(lanes, gaps, tops, paths)
    np.testing.assert_array_equal(fixed[1], paths[1])  # row 1 is on its own trace throughout: not moved
    assert np.sum(np.abs(fixed[0] + tops[0] - truth[1]) <= 2) < 20
    for r in (2, 3, 4):
        assert np.sum(np.abs(fixed[r] + tops[r] - truth[r]) > 2) <= 3, r


def test_a_repaired_read_keeps_the_doubts_of_the_read_before():
    """The reading before the repair had limb leads off Einthoven's plane and a lead whose cells disagree:
    after the repair the page keeps both doubts (the repaired reading alone looked sure)."""
    from ecgml.assemble import Assembly, keep_doubts
    from ecgml.records import Record

    rec = Record(np.zeros((10, 12), np.float32), 500, "p", {})
    after = Assembly(rec, {}, np.zeros((10, 12), np.float32), [], {}, {})
    before = Assembly(
        rec, {}, np.zeros((10, 12), np.float32), ["limbs off"], {"I": 0.4}, {"I": 0.3, "II": 0.3}
    )
    kept = keep_doubts(after, before, "the repair")
    assert kept.agreement == {"I": 0.4} and kept.limbs_off == {"I": 0.3, "II": 0.3}
    assert any("the repair" in n for n in kept.notes)
    same = keep_doubts(after, after, "the repair")
    assert same.agreement == {} and same.limbs_off == {} and same.notes == []


def test_unrepaired_swaps_in_the_plain_read_only_where_a_repair_was_made():
    from ecgml.trace.shared_ink import unrepaired
    from ecgml.trace.types import CellTrace

    x = np.arange(5.0)
    a = CellTrace("I", 0, 0, x, x + 1, np.ones(5))
    b = CellTrace("II", 1, 0, x, x + 2, np.ones(5), (x + 9, np.full(5, 0.5)))
    assert unrepaired([a]) is None
    got = unrepaired([a, b])
    assert got is not None and got[0] is a
    np.testing.assert_array_equal(got[1].y_mm, x + 9)
    assert got[1].plain is None and got[1].lead == "II"
