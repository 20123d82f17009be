"""The learned trace model: a small U-Net over per-row strips of the canonical page, decoded per column.

Why this shape (PRIOR-ART.md §2.2–2.3): every row of the layout is cut out of the canonical page as a
horizontal strip centred on its zero-mV baseline, so "the row's own trace" is always the one that
passes near the strip's middle (a y-coordinate channel tells the network where that is). The network
predicts, for every column, a distribution over y (a heatmap, softmax over the strip height); a
weighted centroid around its peak gives a sub-pixel y and the peak's mass a confidence. The output has
`x_up` sub-columns per input column (interleaved output channels), so the trace is read at twice the
canonical page's horizontal density at almost no cost.

This module reads the network's output with numpy; the network itself (torch) is `ecgml.trace.net`, and
`load_extractor` imports it only when no exported graph of the weights is cached (`ecgml.trace.runtime`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.special import log_softmax

from ecgml.geometry.canonical import CanonicalPage
from ecgml.layout import Cell, PageLayout
from ecgml.trace.classical import channel_range, ink_map
from ecgml.trace.net_config import DEFAULT_WEIGHTS, WEIGHTS_DIR, TraceModelConfig, read_weights_info
from ecgml.trace.shared_ink import (
    MIN_SHARED_MM,
    WINDOW_MARGIN_MM,
    keep_off,
    pinned_ends,
    plain_read,
    repair_chain,
)
from ecgml.trace.tall import SQUASH, clipped, merge
from ecgml.trace.types import CellTrace

__all__ = ["DEFAULT_WEIGHTS", "WEIGHTS_DIR", "TraceModelConfig", "UNetExtractor", "load_extractor"]
DECODE_RADIUS_PX = 4  # half-width of the centroid window around each column's peak
MAX_STEP_PX = 48  # largest y move (px) between neighbouring output columns the path decoder allows
TRACE_CHROMA = 60  # a trace this saturated (max - min channel, median where the net puts it) is coloured
GAP_NATS_PER_PX = 0.3  # path decoder: cost (nats) of each px of blank paper a step between columns crosses
# (px of the source image: on a page resampled up from a small copy a strip px is a fraction of one)
MIN_CONFIDENCE = 0.05  # below this a column is reported as unreadable (NaN)
# Test-time flips: the plain pass and its left-right mirror averaged gave +0.47 dB on the tuning set
# (truth geometry; up-down mirrors as well: +0.43; ±12 px strip offsets on top: +0.01). BENCHMARKS.md.
FLIPS = 1
FLIP_AXES = ((3,), (2,), (2, 3))  # (B, 3, H, W) axes of the test-time flips: left-right, up-down, both
EDGE_MM = 0.0  # columns this close to a cell's ends are left to assembly's gap filling (NaN). 0.3 mm helped
# the first model (separator ticks sit there); the 64 mm-strip model reads them better than a held value
# (validation-record tuning set: 0.3 -> 0 mm +0.37 dB; QRS cut by a cell end carry most edge error)


def log_probs_by_column(logits: Any) -> np.ndarray:
    """(..., H, W) logits -> (..., W, H) float32 log-probabilities over y, one contiguous row per column.

    Computed once per page; path decoding and the centroid both read it (no second softmax).
    """
    if hasattr(logits, "detach"):  # a torch tensor (training's validation)
        logits = logits.detach().cpu().numpy()
    lp = log_softmax(np.asarray(logits, dtype=np.float32), axis=-2).astype(np.float32, copy=False)
    return np.ascontiguousarray(np.swapaxes(lp, -1, -2))


def centroid_from_log_probs(
    lp: np.ndarray, centre: np.ndarray | None = None, radius: int = DECODE_RADIUS_PX
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel y (px, centres at i + 0.5) and confidence for (..., W, H) log-probabilities: centroid of
    p within ±radius of `centre` (default: each column's peak); confidence = the mass in that window."""
    h = lp.shape[-1]
    if centre is None:
        k = np.argmax(lp, axis=-1)
    else:
        k = np.asarray(centre, dtype=np.int64).reshape(lp.shape[:-1])
    idx = k[..., None] + np.arange(-radius, radius + 1)
    valid = (idx >= 0) & (idx < h)
    idx = np.clip(idx, 0, h - 1)
    w = np.exp(np.take_along_axis(lp, idx, axis=-1)) * valid
    mass = w.sum(axis=-1)
    y = (w * (idx + 0.5)).sum(axis=-1) / np.maximum(mass, 1e-12)
    return y.astype(np.float32), np.clip(mass, 0.0, 1.0).astype(np.float32)


def local_centroid(
    logits: Any, radius: int = DECODE_RADIUS_PX, centre: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel y (px, centres at i + 0.5) and confidence per column of (B, H, W) or (H, W) logits:
    centroid of p within ±radius of the peak (or of `centre`, (B, W) or (W,) integer rows).

    Unlike a global soft-argmax this ignores a second, distant trace (a neighbouring row) in the column.
    """
    return centroid_from_log_probs(log_probs_by_column(logits), centre, radius)


def track_paths(
    lps: list[np.ndarray], max_step: int = MAX_STEP_PX, gaps: list[np.ndarray] | None = None
) -> list[np.ndarray]:
    """Integer y per column for each (W_i, H) log-probability array (one per cell, same H): the path with
    the largest summed log-probability whose y moves at most `max_step` px between neighbouring columns
    (Viterbi with a hard window).

    Per-column argmax sometimes jumps for a stretch to a neighbouring row's trace that reaches into
    the strip; a continuous path cannot. All cells advance together, one column per step (a page's
    cells cost about as much as its longest one), and each cell's path depends on its own arrays only.

    `gaps`, when given, are (W_i, H) cumulative costs along y (`ink_gap_costs`): moving from y to y' into
    column j costs |gaps[j, y'] - gaps[j, y]| on top, so a path follows its own stroke up a steep QRS
    for free but pays for crossing blank paper to another trace.

    The loops run once per column on a few small arrays, so their per-call overhead is the cost: the
    forward pass writes into buffers kept for the whole walk, and the walk back reads each window from
    rows padded with -inf (no clipping, no `take_along_axis`). Same paths as the plain form, tie for tie
    (tests/test_trace_model.py compares them)."""
    if not lps:
        return []
    h = lps[0].shape[1]
    n_all = len(lps)
    widths = np.array([lp.shape[0] for lp in lps])
    if widths.max() == 0:
        return [np.empty(0, np.int64) for _ in lps]
    order = np.argsort(-widths, kind="stable")  # longest first: the live cells are a prefix
    live = np.searchsorted(-widths[order], -np.arange(int(widths.max())), side="left")  # cells with w > j
    wmax = int(widths.max())
    # (W, cell, H); np.empty: the part past a cell's end is never touched (never even paged in).
    lp = np.empty((wmax, n_all, h), np.float32)
    for slot, i in enumerate(order):
        lp[: widths[i], slot] = lps[i]
    # scores and step costs in rows padded by max_step along y (scores -inf, costs 0), so the walk back
    # reads a window of y +- max_step as one flat gather and the padding loses every comparison
    width = h + 2 * max_step
    inf = -np.inf
    score_pad = np.empty((wmax, n_all, width), np.float32)
    cum_pad = np.empty_like(score_pad) if gaps is not None else None
    for slot, i in enumerate(order):
        score_pad[: widths[i], slot, :max_step] = inf
        score_pad[: widths[i], slot, max_step + h :] = inf
        if cum_pad is not None and gaps is not None:
            cum_pad[: widths[i], slot, :max_step] = 0.0
            cum_pad[: widths[i], slot, max_step + h :] = 0.0
            cum_pad[: widths[i], slot, max_step : max_step + h] = gaps[i]
    score = score_pad[:, :, max_step : max_step + h]
    cum = cum_pad[:, :, max_step : max_step + h] if cum_pad is not None else None
    score[0] = lp[0]
    # a max over +-max_step px along y: OpenCV's dilation, the same maxima as scipy's filter at a fraction
    # of its per-call cost (the loop runs once per column)
    window = np.ones((1, 2 * max_step + 1), np.uint8)
    half = np.ones((1, max_step + 1), np.uint8)
    plus, minus = np.empty((n_all, h), np.float32), np.empty((n_all, h), np.float32)
    up, down = np.empty((n_all, h), np.float32), np.empty((n_all, h), np.float32)
    for j in range(1, wmax):
        n = int(live[j])
        prev, out = score[j - 1, :n], score[j, :n]
        if cum is None:
            cv2.dilate(prev, window, dst=out, borderType=cv2.BORDER_CONSTANT, borderValue=inf)
        else:  # the window's two halves: from below (y <= y') and from above (y >= y'), each with its cost
            c = cum[j, :n]
            u, d = up[:n], down[:n]
            np.add(prev, c, out=plus[:n])
            np.subtract(prev, c, out=minus[:n])
            const = cv2.BORDER_CONSTANT
            cv2.dilate(plus[:n], half, dst=u, anchor=(max_step, 0), borderType=const, borderValue=inf)
            cv2.dilate(minus[:n], half, dst=d, anchor=(0, 0), borderType=const, borderValue=inf)
            np.subtract(u, c, out=u)
            np.add(d, c, out=d)
            np.maximum(u, d, out=out)
        out += lp[j, :n]
    # back from each cell's best last column, all cells a column at a time (a cell joins at its own end)
    span = np.arange(2 * max_step + 1)
    row_at = np.arange(n_all) * width
    ys = np.zeros(n_all, np.int64)
    walked = np.zeros((n_all, wmax), np.int64)
    for j in range(wmax - 1, -1, -1):
        n, m = int(live[j]), (int(live[j + 1]) if j + 1 < wmax else 0)  # cells reaching column j; and j + 1
        ys[m:n] = np.argmax(score[j, m:n], axis=1)
        if m:
            y = ys[:m]
            at = (row_at[:m] + y)[:, None] + span  # padded index of y + offset: y - max_step .. y + max_step
            cand = score_pad[j].reshape(-1)[at]
            if cum_pad is not None:  # the cost of the step from column j into j + 1
                cost = cum_pad[j + 1].reshape(-1)
                cand -= np.abs(cost[row_at[:m] + y + max_step][:, None] - cost[at])
            best = y + np.argmax(cand, axis=1) - max_step
            ys[:m] = np.minimum(np.maximum(best, 0), h - 1)  # np.clip: five times the per-call cost
        walked[:n, j] = ys[:n]
    paths: list[np.ndarray] = [np.empty(0, np.int64)] * n_all
    for slot, i in enumerate(order):
        paths[i] = walked[slot, : widths[i]].copy()
    return paths


def strip_ink(strip: np.ndarray, trace_y: np.ndarray) -> np.ndarray:
    """(H, W) float32 ink of a strip: `ink_map` (dark and grey: a red grid drops out) for a black or grey
    trace; plain darkness (255 - the darkest channel) for a coloured one, which `ink_map` would drop with
    the grid (a blue trace on a grey grid, validation 3x4+3R_001). The trace's colour is read where the
    net puts the row's own trace (`trace_y`: a row per input column)."""
    on = strip[np.clip(trace_y, 0, strip.shape[0] - 1), np.arange(strip.shape[1])].astype(np.float32)
    chroma = on.max(axis=1) - on.min(axis=1)
    if chroma.size and float(np.median(chroma)) > TRACE_CHROMA:
        return (255 - channel_range(strip)[0]).astype(np.float32)
    return ink_map(strip)


def ink_gap_costs(strip: np.ndarray, trace_y: np.ndarray, x_up: int, per_px: float) -> np.ndarray:
    """(W * x_up, H) cumulative cost along y of moving through each strip's column into the next one:
    `per_px` for each pixel of blank paper, nothing on the trace's ink (`strip_ink`; `trace_y` as there).

    Ink counts where it reaches half the strip's trace darkness (its 99.9th ink percentile), in either
    of the two input columns a step joins, so a thin or faint QRS stroke still joins its own ends."""
    ink = strip_ink(strip, trace_y)
    ref = float(np.percentile(ink[::2, ::2], 99.9))
    inkness = np.minimum(ink * np.float32(1.0 / max(0.5 * ref, 1.0)), np.float32(1.0))
    inkness[:, 1:] = np.maximum(inkness[:, 1:], inkness[:, :-1])  # a step joins two input columns
    cum = np.cumsum(np.float32(per_px) * (np.float32(1.0) - inkness), axis=0, dtype=np.float32)
    return np.ascontiguousarray(np.repeat(cum.T, x_up, axis=0))  # step into each output column


def track_path(logits: np.ndarray, max_step: int = MAX_STEP_PX) -> np.ndarray:
    """Integer y per column of (H, W) logits: the continuous path of `track_paths` for one cell."""
    return track_paths([log_probs_by_column(logits)], max_step)[0]


# ---------------------------------------------------------------- strips of the canonical page


def page_at(page: CanonicalPage, px_per_mm: tuple[float, float]) -> np.ndarray:
    """The page's raster as (H, W, 3) uint8 at `px_per_mm` (resized if the page was made at another one)."""
    img = page.image
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if tuple(page.px_per_mm) != tuple(px_per_mm):
        w = int(round(page.paper_mm[0] * px_per_mm[0]))
        h = int(round(page.paper_mm[1] * px_per_mm[1]))
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if w < img.shape[1] else cv2.INTER_LINEAR)
    return np.ascontiguousarray(img)


def strip_top_px(baseline_mm: float, cfg: TraceModelConfig) -> int:
    """Top row (in page px) of the strip centred on `baseline_mm`; integer so strips are exact crops."""
    return int(round(baseline_mm * cfg.px_per_mm[1] - cfg.strip_px / 2))


def cut_strip(img: np.ndarray, top: int, height: int, width: int | None = None) -> np.ndarray:
    """Rows top..top+height of `img` (white where outside), padded on the right to `width`."""
    h, w = img.shape[:2]
    width = width or w
    out = np.full((height, width, 3), 255, np.uint8)
    a, b = max(top, 0), min(top + height, h)
    if b > a:
        out[a - top : b - top, : min(w, width)] = img[a:b, :width]
    return out


def out_columns_mm(width_px: int, cfg: TraceModelConfig) -> np.ndarray:
    """x (mm) of each output sub-column's centre for a strip `width_px` input columns wide."""
    k = np.arange(width_px * cfg.x_up)
    return (k + 0.5) / (cfg.px_per_mm[0] * cfg.x_up)


# ---------------------------------------------------------------- the extractor


def blank_cell_ends(trace: CellTrace, cell: Cell, edge_mm: float) -> CellTrace:
    """`trace` with the columns within `edge_mm` of the cell's ends unread (NaN, confidence at most 0.1):
    assembly fills them from their neighbours."""
    x = trace.x_mm
    edge = (x < cell.x0_mm + edge_mm) | (x > cell.x1_mm - edge_mm)
    if not edge.any():
        return trace
    return replace(
        trace,
        y_mm=np.where(edge, np.nan, trace.y_mm),
        confidence=np.where(edge, np.minimum(trace.confidence, 0.1), trace.confidence),
    )


@dataclass
class UNetExtractor:
    """TraceExtractor backed by a TraceUNet: one strip per layout row, one forward pass for the page.

    `runner`, when set, computes the logits instead of the eager `model` (the same weights exported to a
    faster runtime by `load_extractor`); an extractor built around a model being trained has none.
    """

    model: Any  # the torch module (ecgml.trace.net), or None when only the exported graph is loaded
    cfg: TraceModelConfig
    name: str = "unet"
    radius: int = DECODE_RADIUS_PX
    edge_mm: float = EDGE_MM
    track: bool = True  # continuous-path decoding (track_path) instead of per-column argmax
    max_step: int = MAX_STEP_PX
    gap_cost: float = GAP_NATS_PER_PX  # nats per px of blank paper a path step crosses (0: a free window)
    flips: int = FLIPS  # test-time flips averaged in: 1 = left-right, 2 = also up-down, 3 = also both
    tall: bool = True  # read_tall: a page with a read at its strip's edge read again squashed (trace.tall)
    meta: dict[str, Any] = field(default_factory=dict)

    runner: Callable[[np.ndarray], np.ndarray] | None = None  # fast runtime (ecgml.trace.runtime)
    # the last page's strips read (`row_logits`), their log-probabilities and the cells decoded on them
    # (`read_cells`), kept while that page is read: the layout solver reads a page again for each layout
    # whose cells cut the rows elsewhere, mostly on the same baselines and often the same cells
    _memo: tuple[CanonicalPage, dict[tuple[str, Any], Any]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def row_logits(
        self, page: CanonicalPage, baselines_mm: list[float], cfg: TraceModelConfig | None = None
    ) -> tuple[np.ndarray, list[int]]:
        """(rows, strip_px, W * x_up) logits, one strip per baseline, and each strip's top row (px).

        With fixed weights (a `runner`), a strip of the page read before is not read again: the net reads
        each strip of a batch on its own, so the page reads the same (12x1-bottom_008 and five other
        validation pages: records and confidences identical, the layout solver's reads 3-6 s -> 0.4-0.9 s)."""
        cfg = cfg or self.cfg
        tops = [strip_top_px(b, cfg) for b in baselines_mm]
        memo = self._strips_read(page)
        key = f"{cfg!r} flips={self.flips}"
        todo = [t for t in dict.fromkeys(tops) if (key, t) not in memo]
        if todo:
            img = page_at(page, cfg.px_per_mm)
            w = int(np.ceil(img.shape[1] / cfg.pool) * cfg.pool)
            strips = np.stack([cut_strip(img, t, cfg.strip_px, w) for t in todo])
            x = np.ascontiguousarray(strips.transpose(0, 3, 1, 2), dtype=np.float32)
            logits = self._log_probs(x)
            for axes in FLIP_AXES[: self.flips]:  # the net was trained with target-following flips
                lp = self._log_probs(np.ascontiguousarray(np.flip(x, axes)))
                logits += np.flip(lp, tuple(a - 1 for a in axes))  # (B, H, W') output: input axis - 1
            logits /= 1 + self.flips  # mean log-probability: a geometric mean of the passes' distributions
            width = img.shape[1] * cfg.x_up
            memo.update({(key, t): lg[:, :width] for t, lg in zip(todo, logits, strict=True)})
        return np.stack([memo[(key, t)] for t in tops]), tops

    def _gap_costs(
        self, page: CanonicalPage, tops: list[int], lp: list[np.ndarray], cfg: TraceModelConfig
    ) -> list[np.ndarray]:
        """`ink_gap_costs` of the strips at `tops` (`lp`: their (W, H) log-probabilities), kept with the
        page's logits (the solver re-reads rows)."""
        memo = self._strips_read(page)
        key = f"{cfg!r} gaps={self.gap_cost}"
        todo = {t: i for i, t in enumerate(tops) if (key, t) not in memo}
        if todo:
            img = page_at(page, cfg.px_per_mm)
            per_px = self.gap_cost * source_share(page, cfg)
            for t, i in todo.items():
                trace_y = np.argmax(lp[i][:: cfg.x_up], axis=1)  # the net's own trace, per input column
                strip = cut_strip(img, t, cfg.strip_px)
                memo[(key, t)] = ink_gap_costs(strip, trace_y, cfg.x_up, per_px)
        return [memo[(key, t)] for t in tops]

    def _strips_read(self, page: CanonicalPage) -> dict[tuple[str, Any], Any]:
        """The strips of `page` read so far (a fresh dict for a new page, or when the weights may change:
        an extractor around a model in training has no `runner`)."""
        if self.runner is None:
            return {}
        if self._memo is None or self._memo[0] is not page:
            self._memo = (page, {})
        return self._memo[1]

    def forget(self) -> None:
        """Drop the page's strips kept by `row_logits` (about 10 MB a strip), once the page is read."""
        self._memo = None

    def _log_probs(self, x: np.ndarray) -> np.ndarray:
        """(B, H, W * x_up) log-probabilities over y of (B, 3, H, W) strips (logits if no flips are used)."""
        if self.runner is not None:
            logits = self.runner(x)
        else:
            import torch

            self.model.eval()
            with torch.no_grad():
                logits = self.model(torch.from_numpy(x)).numpy()
        if not self.flips:
            return logits
        return log_softmax(np.asarray(logits, dtype=np.float32), axis=1).astype(np.float32, copy=False)

    def extract(self, page: CanonicalPage, layout: PageLayout) -> list[CellTrace]:
        """Every cell's trace, read at the model's own density (64 mm strips)."""
        return self.read_cells(page, layout, self.cfg)

    def read_tall(self, page: CanonicalPage, layout: PageLayout, traces: list[CellTrace]) -> list[CellTrace]:
        """`traces` (the cells of `layout`, relabelled or x-corrected as they may be) with complexes taller
        than the strip read again: when any read runs to its strip's edge, every row is read again squashed
        and each cell merged with its second read (`ecgml.trace.tall.merge`). Run on the page's final
        layout only: a candidate layout's reads may run to the edge of the wrong rows, and a second read
        there would change the evidence the family is chosen on."""
        half = self.cfg.strip_mm / 2
        if not (self.tall and clipped(traces, layout, half)):
            return traces
        again = {(u.row, u.col): u for u in self.read_cells(page, layout, squashed(self.cfg), repair=False)}
        base = {c.row: c.baseline_mm for c in layout.cells}
        out: list[CellTrace] = []
        for t in traces:
            if (t.row, t.col) not in again:
                out.append(t)
                continue
            u, b = again[(t.row, t.col)], base[t.row]
            new = merge(t, u, b, half)
            if t.plain is not None:  # the read before the repair, merged alike
                p = merge(plain_read(t), u, b, half)
                new = replace(new, plain=(p.y_mm, p.confidence))
            out.append(new)
        return out

    def _strip_log_probs(
        self, page: CanonicalPage, tops: list[int], logits: np.ndarray, cfg: TraceModelConfig
    ) -> list[np.ndarray]:
        """The (W, H) `log_probs_by_column` of each strip at `tops` (`logits`: their `row_logits`), kept
        with the page's logits: a column's log-probabilities are its own logits' only, so a strip reads
        the same alone or stacked with others."""
        if self.runner is None:  # nothing is kept for a model in training
            return list(log_probs_by_column(logits))
        memo = self._strips_read(page)
        key = f"{cfg!r} flips={self.flips} log-probs"
        for t, lg in zip(tops, logits, strict=True):
            if (key, t) not in memo:
                memo[(key, t)] = log_probs_by_column(lg)
        return [memo[(key, t)] for t in tops]

    def read_cells(
        self, page: CanonicalPage, layout: PageLayout, cfg: TraceModelConfig, repair: bool = True
    ) -> list[CellTrace]:
        """Every cell's trace from strips cut as `cfg` says (its density and strip height); with `repair`,
        neighbouring rows decoded onto the same ink are repaired (`ecgml.trace.shared_ink`) and a repaired
        cell keeps its read before the repair (`CellTrace.plain`: the page's doubts are taken from both).
        The squashed second read is not repaired: it is taken only where the plain read is clipped, for
        complexes that cross the neighbouring rows by design (validation 12x1_000: repaired squashed reads
        moved 3-4 rows over most of the page and its limb leads lost 1-3 dB).

        A cell's plain path depends only on its strip and its columns, so a path decoded before on the page
        (another candidate layout of the solver cutting a row alike) is taken as decoded; a repair depends
        on the cells stacked over the same columns too, and is made again for each layout (its windows
        only are decoded)."""
        rows = sorted({c.row for c in layout.cells})
        base = {c.row: c.baseline_mm for c in layout.cells}
        logits, tops = self.row_logits(page, [base[r] for r in rows], cfg)
        xs = out_columns_mm(logits.shape[2] // cfg.x_up, cfg)
        lp = self._strip_log_probs(page, tops, logits, cfg)  # per row: (W, H)
        cols: list[slice] = []
        for cell in layout.cells:
            sel = np.flatnonzero((xs >= cell.x0_mm) & (xs < cell.x1_mm))  # a run: xs increases
            cols.append(slice(int(sel[0]), int(sel[-1]) + 1) if sel.size else slice(0, 0))
        memo = self._strips_read(page)
        key = f"{cfg!r} flips={self.flips} cell r={self.radius} track={self.track} step={self.max_step}"
        key += f" gaps={self.gap_cost}"
        top_of = [tops[rows.index(c.row)] for c in layout.cells]
        lanes = [lp[rows.index(c.row)][sl] for c, sl in zip(layout.cells, cols, strict=True)]
        tracked = [k for k, ln in enumerate(lanes) if self.track and ln.shape[0] > 1]
        gaps: dict[int, np.ndarray] = {}
        if self.gap_cost > 0 and tracked:
            costs = self._gap_costs(page, tops, lp, cfg)
            gaps = {k: costs[rows.index(layout.cells[k].row)][cols[k]] for k in tracked}
        at_path = [(key + " path", (top_of[k], cols[k].start, cols[k].stop)) for k in range(len(lanes))]
        todo = [k for k in tracked if at_path[k] not in memo]
        todo_gaps = [gaps[k] for k in todo] if gaps else None
        for k, path in zip(
            todo, track_paths([lanes[k] for k in todo], self.max_step, todo_gaps), strict=True
        ):
            memo[at_path[k]] = path
        centres: list[np.ndarray | None] = [
            memo[at_path[k]] if k in tracked else None for k in range(len(lanes))
        ]
        plain = list(centres)
        if repair and gaps:
            per_px = self.gap_cost * source_share(page, cfg)
            self._repair_shared(layout, cols, lanes, gaps, top_of, centres, per_px, cfg)
        out: list[CellTrace] = []
        for k, (cell, sl) in enumerate(zip(layout.cells, cols, strict=True)):
            at = (key, at_path[k][1])
            y_mm, c = self._centroid(lanes[k], centres[k], top_of[k], cfg, memo, at, centres[k] is plain[k])
            kept = None
            if centres[k] is not plain[k]:
                y0, c0 = self._centroid(lanes[k], plain[k], top_of[k], cfg, memo, at, True)
                p0 = blank_cell_ends(
                    CellTrace(cell.lead, cell.row, cell.col, xs[sl].copy(), y0.copy(), c0.copy()),
                    cell,
                    self.edge_mm,
                )
                kept = (p0.y_mm, p0.confidence)
            trace = CellTrace(cell.lead, cell.row, cell.col, xs[sl].copy(), y_mm.copy(), c.copy(), kept)
            out.append(blank_cell_ends(trace, cell, self.edge_mm))
        return out

    def _centroid(
        self,
        lane: np.ndarray,
        centre: np.ndarray | None,
        top: int,
        cfg: TraceModelConfig,
        memo: dict[Any, Any],
        at: tuple[str, tuple[int, int, int]],
        keep: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(y mm, confidence) of a lane read around `centre` (NaN below MIN_CONFIDENCE); with `keep` (the
        plain path) it is kept under `at`, a repaired read is not: it depends on the stack."""
        if keep and at in memo:
            return memo[at]
        y_px, c = centroid_from_log_probs(lane, centre, self.radius)
        y_mm = (top + y_px) / cfg.px_per_mm[1]
        c = np.clip(c, 0.0, 1.0)
        read = (np.where(c >= MIN_CONFIDENCE, y_mm, np.nan), c)
        if keep:
            memo[at] = read
        return read

    def _repair_shared(
        self,
        layout: PageLayout,
        cols: list[slice],
        lanes: list[np.ndarray],
        gaps: dict[int, np.ndarray],
        tops: list[int],
        centres: list[np.ndarray | None],
        per_px: float,
        cfg: TraceModelConfig,
    ) -> None:
        """`centres` (in place) with each stack of cells over the same columns repaired where two
        neighbouring rows run along the same ink (`ecgml.trace.shared_ink`)."""
        stacks: dict[tuple[int, int, int], list[int]] = {}
        for k, (cell, sl) in enumerate(zip(layout.cells, cols, strict=True)):
            if k in gaps and centres[k] is not None:
                stacks.setdefault((cell.col, sl.start, sl.stop), []).append(k)
        min_cols = int(round(MIN_SHARED_MM * cfg.px_per_mm[0] * cfg.x_up))
        margin = int(round(WINDOW_MARGIN_MM * cfg.px_per_mm[0] * cfg.x_up))

        for ks in stacks.values():
            if len(ks) < 2:
                continue
            ks = sorted(ks, key=lambda k: layout.cells[k].row)

            def decode(
                i: int,
                path: np.ndarray,
                avoid: np.ndarray,
                where: np.ndarray,
                below: bool,
                ks: list[int] = ks,
            ) -> np.ndarray:
                k = ks[i]
                run = np.flatnonzero(where)
                a, b = int(run[0]), int(run[-1]) + 1
                lane = pinned_ends(
                    keep_off(lanes[k][a:b], avoid[a:b], where[a:b], below), path[a], path[b - 1]
                )
                out = path.copy()
                out[a:b] = track_paths([lane], self.max_step, [gaps[k][a:b]])[0]
                return out

            def inkness(i: int, y: np.ndarray, ks: list[int] = ks) -> np.ndarray:
                cum = gaps[ks[i]]
                y = np.clip(y, 1, cum.shape[1] - 1)
                col = np.arange(cum.shape[0])
                return 1.0 - (cum[col, y] - cum[col, y - 1]) / max(per_px, 1e-6)

            old = [np.asarray(centres[k]) for k in ks]
            new = repair_chain(old, [tops[k] for k in ks], decode, inkness, min_cols, margin)
            for k, a, b in zip(ks, old, new, strict=True):
                if not np.array_equal(a, b):
                    centres[k] = b


def source_share(page: CanonicalPage, cfg: TraceModelConfig) -> float:
    """Source px per strip px along y, at most 1 (1 where unknown): a small copy's strokes are blurred
    and faint where resampled up (thin steep QRS strokes read partly as blank paper), so its blank paper
    is charged per source px (validation lowres pages, 3.8 px/mm median: a flat 0.3 nats per strip px
    lost 0.22 dB per lead against 0.1)."""
    if page.source_px_per_mm <= 0:
        return 1.0
    return min(1.0, page.source_px_per_mm / cfg.px_per_mm[1])


def squashed(cfg: TraceModelConfig) -> TraceModelConfig:
    """`cfg` reading strips SQUASH times taller at 1/SQUASH the vertical density (the same strip pixels)."""
    sy = cfg.px_per_mm[1] / SQUASH
    return replace(cfg, px_per_mm=(cfg.px_per_mm[0], sy), strip_mm=cfg.strip_mm * SQUASH)


def load_extractor(
    path: str | Path | None = None, runtime: str | None = None, threads: int | None = None
) -> UNetExtractor:
    """The shipped trace model (ecgml/weights/trace_unet.pt) unless `path` names other weights, run by
    ONNX Runtime when installed (`ecgml.trace.runtime`; runtime "torch" keeps it eager).

    When the exported graph of these weights is cached, it is run without loading the weights into
    torch (nor importing torch); otherwise the network is loaded, exported and the graph cached."""
    from ecgml.trace.runtime import cached_runner, make_runner

    weights = Path(path) if path is not None else DEFAULT_WEIGHTS
    try:
        info = read_weights_info(weights)
        cfg = TraceModelConfig.from_dict(info["config"])
    except Exception:  # noqa: BLE001 - load_model below says what is wrong with these weights
        info = {}
    if info:
        runner = cached_runner(weights, (1, 3, cfg.strip_px, 4 * cfg.pool), runtime, threads)
        if runner is not None:
            meta = {**info.get("meta", {}), "runtime": runner.runtime, "threads": runner.threads}
            return UNetExtractor(None, cfg, meta=meta, runner=runner)
    from ecgml.trace.net import load_model

    model, cfg, meta = load_model(weights)
    runner = make_runner(model, (1, 3, cfg.strip_px, 4 * cfg.pool), runtime, threads, weights=weights)
    meta = {**meta, "runtime": runner.runtime, "threads": runner.threads}
    return UNetExtractor(model, cfg, meta=meta, runner=runner)
