"""Two neighbouring rows decoded onto the same ink: move the chain of rows back onto their own traces.

Why: each row's path is decoded on its own strip, and the network prefers the trace nearest the strip's
middle. Where every row's trace drifts by about one row spacing at once (baseline wander that all leads
share, on 12x1 pages whose rows are about 15 mm apart), the row below takes the drifted trace of the row
above for the whole stretch, and so on down the page (validation 12x1-bottom_008: V3-V6 each followed
the row above from 6.8 to 7.5 s, 0.5-1.7 dB). Two rows never run along the same ink for long (a QRS
crosses a neighbour's trace in a column or two), so a long shared stretch says one of them is wrong.

Which one: the rows keep their order on the page, so a chain of rows moved one trace along ends at a
trace no row took. Each conflicting pair is repaired in its own window around its shared stretch, by a
chain that starts at that pair and moves on only while the next two rows still share ink: down (the lower
row of the pair kept below the upper, and so on) or up; the surest pair's repair is made first. The
chain whose moved rows all land on ink is kept; where both or neither do, the one that moves fewer
columns (a top row whose own trace runs off the paper falls onto the next row's trace: moving it alone
beats pushing every row below down a trace).
Separate groups of rows (tall complexes crossing rows in different places, test 12x1_007) choose their
own direction: session 29 merged every overlapping stretch into one window and one direction for all.
A repaired cell keeps its read before the repair (`CellTrace.plain`): a repair that makes wrong rows
agree must not lift the page's doubts (`unrepaired`, `assemble.keep_doubts`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ecgml.trace.types import CellTrace

SHARED_PX = 3  # two paths this close (strip px; 8 px/mm: 0.4 mm, a stroke's width) share ink
MIN_SHARED_MM = 3.0  # a shared run this long (75 ms at 25 mm/s) is no QRS crossing: one row is wrong
EXCLUDE_NATS = 20.0  # cost per output column of a repaired path running on its neighbour's path
MIN_INK_SHARE = 0.8  # a moved row lands on ink when this share of its moved columns lies on ink
WINDOW_MARGIN_MM = 2.0  # a shared run is repaired within this much around it
MAX_REPAIRS = 24  # windows repaired per stack at most (a 12x1 page: 11 pairs, a stretch or two each)


def true_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the runs of True in a 1-D mask, ends exclusive."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of True in a 1-D mask."""
    starts, ends = true_runs(mask)
    return int(np.max(ends - starts)) if len(starts) else 0


def shares_ink(a: np.ndarray, b: np.ndarray, min_cols: int, near_px: int = SHARED_PX) -> bool:
    """Whether paths `a` and `b` (page px per column, the same columns) run within `near_px` of each other
    for at least `min_cols` columns in a row."""
    return longest_run(np.abs(a - b) <= near_px) >= min_cols


def keep_off(
    lp: np.ndarray,
    other: np.ndarray,
    where: np.ndarray,
    below: bool,
    nats: float = EXCLUDE_NATS,
    near_px: int = SHARED_PX,
) -> np.ndarray:
    """(W, H) log-probabilities with `nats` taken off, in the columns `where`, on `other`'s side of the
    path `other` (strip px per column) and within `near_px` of it: a path kept `below` (or above) its
    neighbour keeps the rows' order, and may still cross for a column or two (a QRS), not run along."""
    ys = np.arange(lp.shape[1])[None, :]
    o = np.asarray(other)[:, None]
    side = ys <= o + near_px if below else ys >= o - near_px
    return np.where(side & np.asarray(where)[:, None], lp - np.float32(nats), lp).astype(
        np.float32, copy=False
    )


def pinned_ends(lp: np.ndarray, first: int, last: int) -> np.ndarray:
    """(W, H) log-probabilities whose first column allows only y `first` and last only y `last`: a path
    decoded again over a run of columns joins the path outside it."""
    out = lp.copy()
    for col, y in ((0, first), (-1, last)):
        keep = out[col, y]
        out[col] = np.float32(-1e4)
        out[col, y] = keep
    return out


def shared_runs(page: list[np.ndarray], min_cols: int, margin: int) -> list[tuple[int, slice]]:
    """(i, window) for each stretch where rows i and i + 1 (page px per column) run on the same ink for
    `min_cols` or more, widened by `margin`; one pair's overlapping windows merged, other pairs' kept apart
    (tall complexes crossing several rows: each group of rows chooses its own repair)."""
    out: list[tuple[int, slice]] = []
    for i, (a, b) in enumerate(zip(page, page[1:], strict=False)):
        spans: list[list[int]] = []
        for s, e in zip(*true_runs(np.abs(a - b) <= SHARED_PX), strict=True):
            if e - s < min_cols:
                continue
            lo, hi = max(0, int(s) - margin), min(len(a), int(e) + margin)
            if spans and lo <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], hi)
            else:
                spans.append([lo, hi])
        out += [(i, slice(lo, hi)) for lo, hi in spans]
    return sorted(out, key=lambda iw: (iw[1].start, iw[0]))


def repair_chain(
    paths: list[np.ndarray],
    tops: list[int],
    decode: Callable[[int, np.ndarray, np.ndarray, np.ndarray, bool], np.ndarray],
    inkness: Callable[[int, np.ndarray], np.ndarray],
    min_cols: int,
    margin: int,
) -> list[np.ndarray]:
    """Paths of one stack of vertically neighbouring lanes (top to bottom, the same columns; strip px,
    strips starting at page px `tops`) with their shared stretches repaired, or `paths` unchanged.

    Each conflicting pair gets its own window and its own chain (`repair_pair`). Of the pairs left, the
    one whose best chain is surest goes first (it ends on ink, then it moves fewest columns), and the
    conflicts are found again: a chain decoded while another group's rows are still wrong can run on
    into them and end on ink they freed (a top row off the paper above rows wandering down a row: the
    chain down from the top would push every row one trace along). A pair is tried once per stretch.

    `decode(i, path, avoid, where, below)` decodes lane i again in the columns `where` (a run), kept below
    (or above) `avoid` (strip px of lane i per column) and joined to its `path` at the run's ends;
    `inkness(i, y)` gives lane i's ink (0-1) at strip px `y` per column."""
    tried: list[tuple[int, slice]] = []
    for _ in range(MAX_REPAIRS):
        runs = shared_runs([p + t for p, t in zip(paths, tops, strict=True)], min_cols, margin)
        todo = [
            (i, w)
            for i, w in runs
            if not any(j == i and w.start < v.stop and v.start < w.stop for j, v in tried)
        ]
        best: tuple[tuple[bool, int], int, slice, list[np.ndarray]] | None = None
        for i, w in todo:
            got = repair_pair(paths, tops, decode, inkness, min_cols, i, w)
            if got is None:
                tried.append((i, w))  # no chain sets this pair apart: left as read
            elif best is None or got[0] > best[0]:
                best = (got[0], i, w, got[1])
        if best is None:
            break
        tried.append((best[1], best[2]))
        paths = best[3]
    return paths


def repair_pair(
    paths: list[np.ndarray],
    tops: list[int],
    decode: Callable[[int, np.ndarray, np.ndarray, np.ndarray, bool], np.ndarray],
    inkness: Callable[[int, np.ndarray], np.ndarray],
    min_cols: int,
    pair: int,
    window: slice,
) -> tuple[tuple[bool, int], list[np.ndarray]] | None:
    """The best chain setting rows `pair` and `pair` + 1 apart in the columns `window`, with its key
    (ends on ink, minus the columns it moves), or None. A chain starts at the pair: down (row `pair` + 1
    kept below `pair`, the next row below it while the two still share ink, and so on) or up (row `pair`
    kept above `pair` + 1, and so on upwards), moving only as far as the conflict goes. Of the chains that
    leave no shared stretch beside a row they moved, the one whose moved rows all land on ink (the chain
    ends on the trace no row took; session 29 judged the last row alone, and a chain that pushed a row
    onto blank paper on its way passed); where both or neither do, the one moving fewer columns (a row
    whose own trace ran off the paper takes its neighbour's: the chain that moves it alone)."""
    n = len(paths)
    where = np.zeros(len(paths[0]), bool)
    where[window] = True

    def shares(new: list[np.ndarray], j: int) -> bool:
        return shares_ink(new[j][window] + tops[j], new[j + 1][window] + tops[j + 1], min_cols)

    best: tuple[tuple[bool, int], list[np.ndarray]] | None = None
    for down in (True, False):
        new = [p.copy() for p in paths]
        chain = list(range(pair + 1, n)) if down else list(range(pair, -1, -1))
        for i in chain:
            prev = i - 1 if down else i + 1  # the row it is kept off, moved or fixed
            if i != chain[0] and not shares(new, min(i, prev)):
                break
            new[i] = decode(i, new[i], new[prev] + tops[prev] - tops[i], where, down)
        moved = [(np.abs(new[i] - paths[i]) > SHARED_PX) & where for i in range(n)]
        rows = {i for i in range(n) if moved[i].any()}
        if not rows or any(shares(new, j) for j in range(n - 1) if {j, j + 1} & (rows | {pair})):
            continue
        on_ink = all(
            float(np.mean(inkness(i, new[i])[moved[i]] >= 0.5)) >= MIN_INK_SHARE for i in sorted(rows)
        )
        key = (on_ink, -sum(int(m.sum()) for m in moved))
        if best is None or key > best[0]:
            best = (key, new)
    return best


def unrepaired(traces: list[CellTrace]) -> list[CellTrace] | None:
    """`traces` as read before the repair (each repaired cell's `plain` read), or None when none was
    repaired: the page's doubts are taken from both readings, so a repair that makes wrong rows agree
    (validation 12x1_004: wrong limb leads moved onto Einthoven's plane) cannot lift a doubt."""
    if all(t.plain is None for t in traces):
        return None
    return [t if t.plain is None else plain_read(t) for t in traces]


def plain_read(t: CellTrace) -> CellTrace:
    """A repaired cell as read before the repair (its `plain` y and confidence)."""
    assert t.plain is not None
    return replace(t, y_mm=t.plain[0], confidence=t.plain[1], plain=None)
