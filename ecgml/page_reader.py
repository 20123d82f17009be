"""The learned label reader: which lead name is printed beside each cell, and whether the page reads upright.

A small fully convolutional network (`LabelNet`, ~52 k parameters) looks at the rectified page at
READ_PPM px/mm (grey, one channel) and gives, every 2 mm, the probability that a printed lead name
(I .. V6) is centred there, or none. It is trained on renderer pages (`ecgml.training.page_reader`):
label boxes of every label style and font are the positives; everything else on the page, and labels
turned upside down, are "none". Near each cell's start it reads the most likely name; run on the page
turned 180 degrees, it says whether the labels were readable the other way up.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ecgml.layout import PageLayout, parse_lead
from ecgml.layout_family import name_fit
from ecgml.layout_solve import STRIP_MIN_CORR, STRIP_MIN_RATIO, Solved, rhythm_rows
from ecgml.patch_net import class_maps, load_runner, patch_net
from ecgml.patch_net import load_net as load_patch_net
from ecgml.records import LEADS

READ_PPM = 4.0  # px per mm of the page the reader sees
PATCH_MM = (24.0, 10.0)  # (w, h) the network sees around a label's centre
# the names it reads: the 12 leads (rhythm strips print their lead's name too), Cabrera's inverted aVR
# and the extra chest leads of 15-lead pages
NAMES = (*LEADS, "-aVR", "V4R", "V8", "V9")
CLASSES = (*NAMES, "none")
STRIDE_MM = 2.0
WEIGHTS = Path(__file__).resolve().parent / "weights" / "label_reader.pt"
# where a cell's label may be centred, relative to (x0, baseline), mm
SEARCH_X_MM = (-3.0, 12.0)
SEARCH_Y_MM = (-16.0, 14.0)
BOX_LABEL_DY_MM = 2.0  # boxed cells: the search window is centred this far below the box's top edge
# boxed cells: where a box's own name may be centred about its top edge, mm (above it or inside its corner);
# never in the lower half of the gap above it (the box above's time ticks) nor the box's own lower half
BOX_LABEL_ABOVE_MM, BOX_LABEL_INSIDE_MM = 8.0, 6.0
READ_AT = 0.8  # a name read with this probability counts as printed there
UPSIDE_DOWN_AT = 2.0  # this many more names read on the page turned 180 degrees: it is upside down
# the grid's leads column by column (top to bottom, then left to right) in the orders carts print them
STANDARD = tuple(LEADS)
CABRERA = ("aVL", "I", "-aVR", "II", "aVF", "III", *LEADS[6:])
EXTRA = ("V4R", "V8", "V9")  # the fifth column of 15-lead pages
ORDERS: dict[int, dict[str, tuple[str, ...]]] = {
    12: {"standard": STANDARD, "cabrera": CABRERA},
    15: {"standard": STANDARD + EXTRA, "cabrera": CABRERA + EXTRA},
    6: {"limb": STANDARD[:6], "chest": STANDARD[6:], "cabrera limb": CABRERA[:6]},
}
SWITCH_MARGIN = 2.0  # another order must explain this many more confidently read names than the template's
NO_LABELS_FACTOR = 0.9  # layout evidence of every lead when no printed name could be read at all
CONFLICT_FACTOR = 0.2  # a lead whose cell carries another lead's printed name
LONE_CONFLICT_FACTOR = 0.75  # ... when the page's other names confirm the layout (at most two such cells)
# rows one off: at least this many names are their neighbour row's lead, more than this many times the
# names that are their own cell's (the reader's own errors, ~2 % of names, never line up that way)
SHIFT_MIN_READS, SHIFT_RATIO = 3, 2.0
CONFIRM_MIN_READS, CONFIRM_SHARE = 6, 0.8  # names that confirm a layout: this many, this share of those read
STRIP_READ_AT = 0.95  # a strip's printed name read this surely gives its lead when its trace matched nothing
# a strip's printed name is not taken when its trace matches that lead's cell this much (correlation)
# worse than its best match (a separator tick or a V5 read as "I" on a V5 strip, validation page 3x4+3R_000)
STRIP_NAME_SLACK = 0.1
STRIP_BY_LABEL = 0.85  # a strip's lead given by its printed name alone (its trace matched nothing surely)
# a strip's printed name read as surely as any counted name (READ_AT) gives its lead when it names the lead
# whose cell its trace matches best, though not surely (two witnesses agree; validation realworld 3x4+V1_001:
# name "V1", trace V1 r = 0.98 against 0.93, kept as II before)
STRIP_AGREED_READ_AT = READ_AT


def _lead(name: str) -> str:
    """The record lead a printed name stands for ("-aVR" -> "aVR")."""
    return parse_lead(name)[0]


def _net() -> Any:
    """The untrained label network (`ecgml.patch_net`, ~52 k parameters)."""
    return patch_net((EXAMPLE_SHAPE[2], EXAMPLE_SHAPE[3]), 32, len(CLASSES))


def prepare(grey: np.ndarray) -> np.ndarray:
    """Ink darkness in [0, 1] (1 = black) from an 8-bit grey page, per-page normalised."""
    g = grey.astype(np.float32) * (1 / 255)
    paper = float(np.percentile(g, 90))
    ink = np.clip((paper - g) / max(paper - float(np.percentile(g, 0.5)), 0.15), 0, 1)
    return ink.astype(np.float32)


def page_ink(page_rgb: np.ndarray) -> np.ndarray:
    """`prepare` of a rectified page, RGB or grey, at READ_PPM."""
    import cv2

    grey = cv2.cvtColor(page_rgb, cv2.COLOR_RGB2GRAY) if page_rgb.ndim == 3 else page_rgb
    return prepare(grey)


EXAMPLE_SHAPE = (1, 1, int(PATCH_MM[1] * READ_PPM), int(PATCH_MM[0] * READ_PPM))  # one patch, for the export


@functools.lru_cache(maxsize=2)
def load_reader(path: str | None = None) -> Any:
    """The shipped reader as a runner of (1, 1, H, W) ink -> class logits, or None when this install has no
    weights (`ecgml.patch_net.load_runner`: ONNX Runtime once its graph is cached)."""
    return load_runner(Path(path) if path else WEIGHTS, EXAMPLE_SHAPE, _net)


def load_net(path: Path) -> Any:
    """The torch network of `path` in eval mode (training, evaluation and the first export)."""
    return load_patch_net(path, _net())


@dataclass
class LabelReading:
    """What the printed labels say about the layout."""

    cells: dict[tuple[int, int], tuple[str, float]] = field(default_factory=dict)  # read name, prob
    agree: float = float("nan")  # share of confidently read cells whose name is the layout's lead
    read: int = 0  # cells with a confidently read name
    upright: float = 0.0  # names read this way up minus names read on the page turned 180 degrees
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "cells": {f"{r},{c}": [lead, round(p, 3)] for (r, c), (lead, p) in self.cells.items()},
            "agree": None if not np.isfinite(self.agree) else round(self.agree, 3),
            "read": self.read,
            "upright": round(self.upright, 3),
            "seconds": round(self.seconds, 3),
        }


def _cell_reads(
    prob: np.ndarray, layout: PageLayout, x0_mm: float, y0_mm: float
) -> dict[tuple[int, int], tuple[str, float]]:
    """The printed name of each cell, read where the page prints its names.

    A page prints every name at one offset from its cell's start (below-left, above-left, ...). That
    offset is found first, as the one where the most cells have a confident name (one offset for the
    page, so a name printed between two rows is given to the right one), then each cell is read there,
    within one step, by a vote of the 3 x 3 steps around it (`_voted`)."""
    cells = list(layout.cells)
    if not cells:
        return {}
    n_cls = len(NAMES)
    names = prob[:n_cls]
    hh, ww = names.shape[1:]
    dxs = np.arange(SEARCH_X_MM[0], SEARCH_X_MM[1] + 1e-9, STRIDE_MM)
    dys = np.arange(SEARCH_Y_MM[0], SEARCH_Y_MM[1] + 1e-9, STRIDE_MM)
    # the map step (i, j) of each cell at each offset: (cell, dx, dy)
    x = np.array([c.x0_mm for c in cells])[:, None, None] + dxs[None, :, None]
    y = np.array([c.baseline_mm for c in cells])[:, None, None] + dys[None, None, :]
    i = np.rint((y - y0_mm - PATCH_MM[1] / 2) / STRIDE_MM).astype(np.int64)
    j = np.rint((x - x0_mm - PATCH_MM[0] / 2) / STRIDE_MM).astype(np.int64)
    i, j = np.broadcast_arrays(i, j)
    allowed = _box_label_zone(cells, y)
    # each name's probability at the 3 x 3 steps around every (cell, dx, dy): (step, name, cell, dx, dy)
    steps = []
    inside = np.zeros(i.shape, bool)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            ii, jj = i + di, j + dj
            ok = (ii >= 0) & (ii < hh) & (jj >= 0) & (jj < ww)
            inside |= ok
            at = names[:, np.clip(ii, 0, hh - 1), np.clip(jj, 0, ww - 1)].astype(np.float64)
            steps.append(np.where(ok[None], at, 0.0))
    inside &= allowed
    window = np.stack(steps)
    # the offset where the cells' names are most likely, summed cell by cell in their order
    val = np.where(allowed, window.max(axis=(0, 1)), 0.0)
    score = np.zeros(val.shape[1:])
    for v in val:
        score = score + v
    a, b = np.unravel_index(int(np.argmax(score)), score.shape)
    out = {}
    for n, c in enumerate(cells):
        if inside[n, a, b]:
            k, p = _voted(window[:, :, n, a, b])
            out[(c.row, c.col)] = (NAMES[k], p)
    return out


def _box_label_zone(cells: list[Any], y: np.ndarray) -> np.ndarray:
    """Which of each cell's search offsets (cell, dx, dy) may hold its name: all of them for an unboxed
    cell; for a box, only about its top edge (BOX_LABEL_ABOVE_MM above it to BOX_LABEL_INSIDE_MM inside,
    at most half its height) and below the middle of the gap to the box above. A page of boxes prints
    time ticks under every box: with the whole window (30 mm, more than a short box and its gap), the
    ticks under the box above and under the box itself read as names ("0" as "I" or "V5") and won the
    page's offset on validation panels-12x1_000 (10 of 12 names read wrong)."""
    allowed = np.ones(y.shape, bool)
    for n, c in enumerate(cells):
        if c.box_bottom_mm <= c.box_top_mm:
            continue
        top, height = c.box_top_mm, c.box_bottom_mm - c.box_top_mm
        above = [
            o.box_bottom_mm
            for o in cells
            if o.box_bottom_mm > o.box_top_mm
            and o.box_bottom_mm <= top + 0.5
            and min(o.x1_mm, c.x1_mm) > max(o.x0_mm, c.x0_mm)
        ]
        lo = max(top - BOX_LABEL_ABOVE_MM, (max(above) + top) / 2 if above else -np.inf)
        hi = top + min(BOX_LABEL_INSIDE_MM, height / 2)
        allowed[n] = (y[n] >= lo) & (y[n] <= hi)
    return allowed


def _voted(window: np.ndarray) -> tuple[int, float]:
    """The name of one cell from the reader's probabilities at the 3 x 3 steps around its place
    (step, name): the name with the most probability summed over the steps, read as surely as its best
    step reads it. Not the single most likely step's name: a name crossed 2 mm off its centre (the
    reader was trained on names within 1 mm, and as "none" 3 mm and more off) or a QRS stroke can read
    as another name at 0.99 at one step, while the steps around read the printed name (names19: on the
    validation realworld pages, truly rectified, confident reads beside the cells 334 right / 125 wrong
    -> 341 / 91)."""
    k = int(np.argmax(window.sum(axis=0)))
    return k, float(window[:, k].max())


def maps_near(net: Any, ink: np.ndarray, layout: PageLayout) -> np.ndarray:
    """`class_maps` computed only where the layout's names may be printed: one box per column of cell
    starts (all its rows, the search window and a patch around it); elsewhere "none". A few times
    cheaper than the whole page, the same numbers inside the boxes."""
    kh, kw = int(PATCH_MM[1] * READ_PPM / 8), int(PATCH_MM[0] * READ_PPM / 8)
    hh, ww = ink.shape[0] // 8 - kh + 1, ink.shape[1] // 8 - kw + 1
    prob = np.zeros((len(CLASSES), max(hh, 0), max(ww, 0)), np.float32)
    prob[-1] = 1.0
    if hh <= 0 or ww <= 0:
        return prob
    cols: dict[int, list[float]] = {}
    for c in layout.cells:
        cols.setdefault(int(round(c.x0_mm / 2)), []).append(c.baseline_mm)
    for key, ys in cols.items():
        x = 2.0 * key
        j0 = max(int(np.floor((x + SEARCH_X_MM[0] - PATCH_MM[0] / 2) / STRIDE_MM)) - 2, 0)
        j1 = min(int(np.ceil((x + SEARCH_X_MM[1] - PATCH_MM[0] / 2) / STRIDE_MM)) + 3, ww)
        i0 = max(int(np.floor((min(ys) + SEARCH_Y_MM[0] - PATCH_MM[1] / 2) / STRIDE_MM)) - 2, 0)
        i1 = min(int(np.ceil((max(ys) + SEARCH_Y_MM[1] - PATCH_MM[1] / 2) / STRIDE_MM)) + 3, hh)
        if i1 <= i0 or j1 <= j0:
            continue
        # computed two steps wider each way: the trunk's padding then falls outside the box, where the
        # whole-page map sees page (its receptive field reaches 7 px past the patch)
        e0, e1, f0, f1 = max(i0 - 2, 0), min(i1 + 2, hh), max(j0 - 2, 0), min(j1 + 2, ww)
        crop = ink[8 * e0 : 8 * (e1 - 1 + kh) + 16, 8 * f0 : 8 * (f1 - 1 + kw) + 16]
        prob[:, i0:i1, j0:j1] = class_maps(net, crop)[:, i0 - e0 : i1 - e0, j0 - f0 : j1 - f0]
    return prob


def _turned(layout: PageLayout, size_mm: tuple[float, float]) -> PageLayout:
    """The layout as it would sit on the page turned 180 degrees (a cell starts where it ended)."""
    w, h = size_mm
    cells = [
        replace(c, x0_mm=w - c.x1_mm, x1_mm=w - c.x0_mm, baseline_mm=h - c.baseline_mm) for c in layout.cells
    ]
    return replace(layout, cells=cells, pulses=[])


SYMMETRIC = ("I", "II", "III")  # read the same turned 180 degrees: no evidence of orientation


def _names_read(cells: dict[tuple[int, int], tuple[str, float]]) -> float:
    """Soft count of the names read that only read one way up (probability 0.5 counts 0, 1.0 counts 1);
    I, II and III read the same both ways (and a separator tick can pass for I), so they do not count."""
    return float(sum(np.clip(2 * p - 1, 0, 1) for name, p in cells.values() if name not in SYMMETRIC))


def label_anchors(layout: PageLayout) -> PageLayout:
    """The layout with each boxed cell's name searched about its box's top-left corner rather than its
    baseline (panel pages print the name at the box's corner, however tall the box is)."""
    if not any(c.box_top_mm > 0 for c in layout.cells):
        return layout
    cells = [
        replace(c, baseline_mm=c.box_top_mm + BOX_LABEL_DY_MM) if c.box_top_mm > 0 else c
        for c in layout.cells
    ]
    return replace(layout, cells=cells)


def read_labels(
    page_rgb: np.ndarray,
    layout: PageLayout,
    net: Any = None,
    ink: np.ndarray | None = None,
    prob: np.ndarray | None = None,
) -> LabelReading | None:
    """Read the label beside every cell of a rectified page (RGB at READ_PPM px/mm, origin at paper 0, 0),
    and the same page turned 180 degrees (names read only one way up, except I, II and III). `ink`:
    `page_ink(page_rgb)`, when the caller has it already; `prob`: the reader's maps of the whole page,
    likewise (the same numbers `maps_near` gives near the cells)."""
    import time

    net = net if net is not None else load_reader()
    if net is None:
        return None
    t0 = time.perf_counter()
    ink = page_ink(page_rgb) if ink is None else ink
    layout = label_anchors(layout)
    cells = _cell_reads(prob if prob is not None else maps_near(net, ink, layout), layout, 0.0, 0.0)
    size = (ink.shape[1] / READ_PPM, ink.shape[0] / READ_PPM)
    turned = _turned(layout, size)
    flipped = np.ascontiguousarray(ink[::-1, ::-1])
    down = _names_read(_cell_reads(maps_near(net, flipped, turned), turned, 0.0, 0.0))
    sure = {k: v for k, v in cells.items() if v[1] >= READ_AT}
    lead_of = {(c.row, c.col): c.lead for c in layout.cells}
    agree = float(np.mean([_lead(v[0]) == lead_of[k] for k, v in sure.items()])) if sure else float("nan")
    return LabelReading(cells, agree, len(sure), _names_read(cells) - down, time.perf_counter() - t0)


def names_beside(
    page_rgb: np.ndarray, net: Any = None, ink: np.ndarray | None = None, prob: np.ndarray | None = None
) -> Any:
    """A reader of the names printed beside the cells of candidate layouts of one rectified page (RGB at
    READ_PPM px/mm): `read(layouts)` -> per layout, (row, col) -> (name, probability), each layout's
    names read at its own offset (`_cell_reads`) on one map computed near all their cell starts. None
    without shipped weights. For `layout_family.choose_family`, where the names vote between families.
    `ink`: `page_ink(page_rgb)`, when the caller has it already; `prob`: the whole page's maps, likewise."""

    net = net if net is not None else load_reader()
    if net is None:
        return None
    ink = page_ink(page_rgb) if ink is None else ink

    def read(layouts: list[PageLayout]) -> list[dict[tuple[int, int], tuple[str, float]]]:
        if not layouts:
            return []
        layouts = [label_anchors(lay) for lay in layouts]  # a box's name about its top, as `read_labels`
        union = replace(layouts[0], cells=[c for lay in layouts for c in lay.cells])
        near = prob if prob is not None else maps_near(net, ink, union)
        return [_cell_reads(near, lay, 0.0, 0.0) for lay in layouts]

    return read


def rows_shifted(reading: LabelReading | None, layout: PageLayout) -> bool:
    """Most confidently read names are the lead of the row just above (or just below) their cell: the
    rows are placed one off, and every lead of the page is its neighbour's (REAL-PAGES failure 4)."""
    if reading is None:
        return False
    lead_at = {(c.row, c.col): c.lead for c in layout.cells}
    same = up = down = 0
    for c in layout.cells:
        got = reading.cells.get((c.row, c.col))
        if got is None or got[1] < READ_AT:
            continue
        name = _lead(got[0])
        same += name == c.lead
        up += name == lead_at.get((c.row - 1, c.col))
        down += name == lead_at.get((c.row + 1, c.col))
    return max(up, down) >= SHIFT_MIN_READS and max(up, down) > SHIFT_RATIO * same


def conflicts(reading: LabelReading | None, layout: PageLayout) -> list[tuple[Any, str]]:
    """Cells whose confidently read name is another lead. A name that is the lead of the cell just above
    or below is left out: a label between two rows belongs to either (12x1 pages print it under its
    trace, beside the next row's start), unless most names are their neighbours' (`rows_shifted`)."""
    if reading is None:
        return []
    lead_at = {(c.row, c.col): c.lead for c in layout.cells}
    shifted = rows_shifted(reading, layout)
    out = []
    for c in layout.cells:
        got = reading.cells.get((c.row, c.col))
        if got is None or got[1] < READ_AT or _lead(got[0]) == c.lead:
            continue
        neighbours = (lead_at.get((c.row - 1, c.col)), lead_at.get((c.row + 1, c.col)))
        if not shifted and _lead(got[0]) in neighbours:
            continue
        out.append((c, got[0]))
    return out


def label_factors(reading: LabelReading | None, layout: PageLayout) -> dict[str, float]:
    """Per lead: lowered when one of its cells carries another lead's printed name, to CONFLICT_FACTOR,
    or only to LONE_CONFLICT_FACTOR when the page's other names confirm the layout (most confidently
    read names agree: a lone disagreement is then more likely the reader's error, ~2 % of held-out names,
    than one lead out of place); a little below 1 for every lead when no name could be read at all
    (identity from the layout alone); else 1."""
    if reading is None:
        return {}
    out: dict[str, float] = {}
    lead_at = {(c.row, c.col): c.lead for c in layout.cells}
    sure = [(k, name) for k, (name, p) in reading.cells.items() if p >= READ_AT and k in lead_at]
    if not sure:
        return {c.lead: NO_LABELS_FACTOR for c in layout.cells}
    bad = conflicts(reading, layout)
    agree = sum(_lead(name) == lead_at[k] for k, name in sure)
    confirmed = agree >= CONFIRM_MIN_READS and agree >= CONFIRM_SHARE * len(sure)
    for c, _ in bad:
        out[c.lead] = LONE_CONFLICT_FACTOR if confirmed and len(bad) <= 2 else CONFLICT_FACTOR
    return out


def _order_score(
    names: list[str], cells: list[Any], reads: dict[tuple[int, int], tuple[str, float]]
) -> float:
    """How well the printed names fit `cells` named in this order (`layout_family.name_fit`)."""
    return name_fit({(c.row, c.col): _lead(n) for c, n in zip(cells, names, strict=True)}, reads, at=READ_AT)


def apply_labels(solved: Solved, reading: LabelReading | None) -> Solved:
    """Let the printed names decide lead identity where they are clear, and say where they were not.

    The grid: of the template's leads and the orders carts print (standard, Cabrera, 15-lead, limb or
    chest halves) on the same cells, the one that explains the confidently read names best, if it beats
    the template by SWITCH_MARGIN names. A rhythm strip: its printed name when the trace matching of
    `layout_solve` was not sure, a conflict (low confidence) when both are sure and disagree. Labels
    that confirm the layout lift the solver's page doubt; none read at all lowers every lead a little."""
    if reading is None:
        return solved
    lay = solved.layout
    strips = set(rhythm_rows(lay))
    grid = sorted((c for c in lay.cells if c.row not in strips), key=lambda c: (c.col, c.row))
    reads = reading.cells
    ev: dict[str, Any] = {}
    current = [c.text for c in grid]
    scores = {"template": _order_score(current, grid, reads)}
    orders = {k: list(v) for k, v in ORDERS.get(len(grid), {}).items()}
    for k, names in orders.items():
        scores[k] = _order_score(names, grid, reads)
    best = max(scores, key=lambda k: scores[k])
    ev["order_scores"] = {k: round(v, 2) for k, v in scores.items()}
    relabel: dict[tuple[int, int], str] = {}
    if best != "template" and scores[best] >= scores["template"] + SWITCH_MARGIN:
        for c, new in zip(grid, orders[best], strict=True):
            if new != c.text:
                relabel[(c.row, c.col)] = new
        if relabel:
            solved.notes.append(f"printed lead names read as the {best} order: leads placed by them")
            ev["order"] = best
    for r in sorted(strips):
        cell = next(c for c in lay.cells if c.row == r)
        got = reads.get((r, cell.col))
        if got is None or got[1] < READ_AT or _lead(got[0]) not in LEADS or _lead(got[0]) == cell.lead:
            if got is not None and got[1] >= READ_AT and _lead(got[0]) == cell.lead:
                solved.lead_factor[f"strip{r}"] = max(
                    solved.lead_factor.get(f"strip{r}", 1.0), STRIP_BY_LABEL
                )
            continue
        match = solved.evidence.get(f"strip_row{r}", {})
        sure = (
            match.get("lead") == cell.lead
            and match.get("corr", 0.0) >= STRIP_MIN_CORR
            and match.get("distance_ratio", 0.0) >= STRIP_MIN_RATIO
        )
        agreed = match.get("lead") == _lead(got[0])  # the name is the trace's best match too
        if sure or got[1] < (STRIP_AGREED_READ_AT if agreed else STRIP_READ_AT):
            continue  # both sure and different (`conflicts` lowers it), or the name not sure enough
        by_lead = match.get("by_lead", {})
        if _lead(got[0]) in by_lead and by_lead[_lead(got[0])] < match.get("corr", 0.0) - STRIP_NAME_SLACK:
            continue  # the trace matches the named lead's cell clearly worse than another: a misread name
        relabel[(r, cell.col)] = got[0]
        solved.lead_factor[f"strip{r}"] = (
            0.95 if agreed and got[1] >= STRIP_READ_AT else STRIP_BY_LABEL
        )  # a name read less surely vouches no more than a name alone
        solved.notes.append(f"rhythm strip (row {r + 1}) printed as {got[0]}: read as lead {_lead(got[0])}")
    if relabel:
        cells = []
        for c in lay.cells:
            if (c.row, c.col) not in relabel:
                cells.append(c)
                continue
            name = relabel[(c.row, c.col)]
            lead, sign = parse_lead(name)
            cells.append(replace(c, lead=lead, sign=sign, label=""))
        lead_at = {(c.row, c.col): c.lead for c in cells}
        solved.layout = replace(lay, cells=cells, cabrera=any(c.sign < 0 for c in cells))
        solved.traces = [replace(t, lead=lead_at[(t.row, t.col)]) for t in solved.traces]
        ev["relabelled"] = {f"{r},{c}": n for (r, c), n in relabel.items()}
    sure = [v for v in reads.values() if v[1] >= READ_AT]
    if not sure:
        solved.notes.append("no printed lead name could be read: leads placed by the layout alone")
        ev["labels"] = "none read"
    elif rows_shifted(reading, solved.layout):
        ev["labels"] = "rows one off"
        solved.notes.append(
            "printed lead names are those of the neighbouring rows: rows misplaced, leads in doubt"
        )
    elif not conflicts(reading, solved.layout) and len(sure) >= max(3, len(solved.layout.cells) // 2):
        ev["labels"] = "confirm the layout"
        if solved.lead_factor.get("page", 1.0) < 1.0:
            solved.lead_factor["page"] = 1.0
            solved.notes.append("printed lead names confirm the layout: page doubt lifted")
    else:
        ev["labels"] = "partly read" if not conflicts(reading, solved.layout) else "conflict"
    solved.evidence["label_decision"] = ev
    return solved
