"""Which lead sits where on the page and which seconds of the record it shows.

Paper coordinates are millimetres with the origin at the page's top-left corner, x to the right and
y downward. A cell is one plotted trace segment: a lead, its zero-mV baseline (y, mm), its x range
(mm) and the record time at its left edge. Voltage goes up the page: y = baseline - v * gain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ecgml.records import LEADS

_SIX_BY_TWO = [["I", "V1"], ["II", "V2"], ["III", "V3"], ["aVR", "V4"], ["aVL", "V5"], ["aVF", "V6"]]
# Row contents of the grid part of each layout (top to bottom), and the rhythm leads below it.
_GRIDS: dict[str, tuple[list[list[str]], list[str]]] = {
    "3x4+1R": ([["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]], ["II"]),
    "3x4": ([["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]], []),
    "3x4+3R": (
        [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]],
        ["II", "V1", "V5"],
    ),
    "6x2": (_SIX_BY_TWO, []),
    "6x2+1R": (_SIX_BY_TWO, ["II"]),
    "12x1": ([[lead] for lead in LEADS], []),
}
LAYOUT_NAMES: tuple[str, ...] = tuple(_GRIDS)
DEFAULT_LAYOUT = "3x4+1R"

# ECG-Image-Kit's default Letter page at 25 mm/s, 10 mm/mV (RENDERER.md section 1.3), in mm.
LETTER_MM = (279.4, 215.9)
KAGGLE_BASELINES_MM = (89.954, 125.946, 161.925, 194.907)
KAGGLE_MARGIN_MM = 10.0  # ECG-Image-Kit's left margin, before the calibration pulse
KAGGLE_X0_MM = KAGGLE_MARGIN_MM + 5.0  # first segment start: the margin + the 5 mm (0.2 s) calibration pulse
KAGGLE_PULSE_X0_MM = 10.0


@dataclass(frozen=True)
class Cell:
    lead: str  # the record lead the samples come from (LEADS), or a lead the record lacks (see `derived`)
    row: int
    col: int
    baseline_mm: float
    x0_mm: float
    x1_mm: float
    t0_s: float  # record time at x0
    t1_s: float
    sign: float = 1.0  # -1: drawn inverted (Cabrera's -aVR); y = baseline - sign * v * gain
    gain_mm_mv: float = 0.0  # 0: the page's gain (PageLayout.gain_mm_mv); else this cell's (mixed gain)
    label: str = ""  # the printed name; "" means `text` below
    derived: str = ""  # non-empty: not a record lead; how its samples were made (no truth)
    # > 0: drawn in its own gridded box (panel pages) spanning x0..x1 and these y; its left edge is t0
    box_top_mm: float = 0.0
    box_bottom_mm: float = 0.0

    @property
    def text(self) -> str:
        """The name printed for this cell ("-aVR" for an inverted aVR)."""
        return self.label or ("-" if self.sign < 0 else "") + self.lead


@dataclass(frozen=True)
class Pulse:
    row: int
    x0_mm: float
    x1_mm: float
    baseline_mm: float
    height_mm: float = 0.0  # 0: 1 mV at the page's gain
    step_mm: float = 0.0  # > 0: the second half steps down to this height (mixed limb/chest gain)


@dataclass
class PageLayout:
    """Everything needed to turn page millimetres into (lead, time, mV) and back."""

    name: str
    paper_mm: tuple[float, float]
    speed_mm_s: float
    gain_mm_mv: float
    cells: list[Cell]
    pulses: list[Pulse] = field(default_factory=list)
    rhythm_leads: list[str] = field(default_factory=list)  # the strips below the grid, top to bottom
    columns: str = "sequential"  # or "simultaneous": every column shows the same seconds
    cabrera: bool = False
    chest_gain_mm_mv: float = 0.0  # > 0: chest leads drawn at this gain (mixed gain)

    @property
    def n_rows(self) -> int:
        return 1 + max(c.row for c in self.cells)

    def cell_gain(self, cell: Cell) -> float:
        """mm per mV of one cell (differs from `gain_mm_mv` on mixed-gain pages)."""
        return cell.gain_mm_mv or self.gain_mm_mv

    def row_baselines(self) -> list[float]:
        rows: dict[int, float] = {}
        for c in self.cells:
            rows[c.row] = c.baseline_mm
        return [rows[r] for r in sorted(rows)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PageLayout:
        return cls(
            name=d["name"],
            paper_mm=tuple(d["paper_mm"]),  # type: ignore[arg-type]
            speed_mm_s=float(d["speed_mm_s"]),
            gain_mm_mv=float(d["gain_mm_mv"]),
            cells=[Cell(**c) for c in d["cells"]],
            pulses=[Pulse(**p) for p in d.get("pulses", [])],
            rhythm_leads=list(d.get("rhythm_leads", [])),
            columns=str(d.get("columns", "sequential")),
            cabrera=bool(d.get("cabrera", False)),
            chest_gain_mm_mv=float(d.get("chest_gain_mm_mv", 0.0)),
        )


def make_layout(
    name: str = DEFAULT_LAYOUT,
    paper_mm: tuple[float, float] = LETTER_MM,
    speed_mm_s: float = 25.0,
    gain_mm_mv: float = 10.0,
    x0_mm: float = KAGGLE_X0_MM,
    pulse: bool = True,
    pulse_width_mm: float = 5.0,
    baselines_mm: list[float] | None = None,
    duration_s: float = 10.0,
) -> PageLayout:
    """Build a layout; with the defaults it is exactly the Kaggle 0001 page.

    Rows are spaced H/(rows+2) apart as in ECG-Image-Kit unless `baselines_mm` is given. At 50 mm/s
    only the first half of the record fits a Letter page, so each column shows less time. These are the
    reader's templates (6x2: right column 5-10 s); the renderer's catalogue is ecgml.render.layouts.
    """
    if name not in _GRIDS:
        raise ValueError(f"unknown layout {name!r}; choose from {LAYOUT_NAMES}")
    grid, rhythm = _GRIDS[name]
    if baselines_mm is None and name == DEFAULT_LAYOUT and paper_mm == LETTER_MM:
        baselines_mm = list(KAGGLE_BASELINES_MM)
    return grid_layout(
        name, grid, rhythm, paper_mm, speed_mm_s, gain_mm_mv, x0_mm, baselines_mm, duration_s,
        pulse_width_mm=pulse_width_mm, pulse_rows=None if pulse else [],
    )  # fmt: skip


def with_gain(layout: PageLayout, gain_mm_mv: float, chest_gain_mm_mv: float = 0.0) -> PageLayout:
    """The layout printed at `gain_mm_mv` (and its chest leads at `chest_gain_mm_mv` when > 0: mixed gain),
    its cells and pulses brought along (a read gain replaces the assumed one)."""
    cells = [
        replace(c, gain_mm_mv=chest_gain_mm_mv if chest_gain_mm_mv > 0 and c.lead.startswith("V") else 0.0)
        for c in layout.cells
    ]
    pulses = [replace(p, height_mm=gain_mm_mv, step_mm=0.0) for p in layout.pulses]
    return replace(
        layout, gain_mm_mv=gain_mm_mv, chest_gain_mm_mv=chest_gain_mm_mv, cells=cells, pulses=pulses
    )


def with_speed(layout: PageLayout, speed_mm_s: float) -> PageLayout:
    """The layout read at `speed_mm_s`: the same cells on the paper, each showing the seconds its millimetres
    take at that speed (a row printed at 50 mm/s shows half the seconds of one at 25 mm/s)."""
    f = layout.speed_mm_s / speed_mm_s
    cells = [replace(c, t0_s=c.t0_s * f, t1_s=c.t1_s * f) for c in layout.cells]
    return replace(layout, speed_mm_s=float(speed_mm_s), cells=cells)


def parse_lead(text: str) -> tuple[str, float]:
    """'-aVR' -> ('aVR', -1.0); 'V4R' -> ('V4R', 1.0)."""
    return (text[1:], -1.0) if text.startswith("-") else (text, 1.0)


def grid_layout(
    name: str,
    grid: list[list[str]],
    rhythm: list[str],
    paper_mm: tuple[float, float] = LETTER_MM,
    speed_mm_s: float = 25.0,
    gain_mm_mv: float = 10.0,
    x0_mm: float = KAGGLE_X0_MM,
    baselines_mm: list[float] | None = None,
    duration_s: float = 10.0,
    simultaneous: bool = False,
    pulse_width_mm: float = 5.0,
    pulse_rows: list[int] | None = None,
    pulse_at_end: bool = False,
    right_mm: float = 5.0,
    chest_gain_mm_mv: float = 0.0,
    derived: dict[str, str] | None = None,
) -> PageLayout:
    """Cells of `grid` (rows of lead names, "-aVR" for inverted) with the `rhythm` strips below it.

    Each grid row splits the shown time into equal columns: one after the other (sequential), or all
    starting at 0 (`simultaneous`). Strips show all of it. Pulses go on `pulse_rows` (None: all)
    before the first column, or after the last with `pulse_at_end` (where the page has room).
    `chest_gain_mm_mv` > 0 draws V-leads at that gain (mixed gain; a row with both gets a step pulse).
    """
    n_rows = len(grid) + len(rhythm)
    if baselines_mm is None:
        pitch = paper_mm[1] / (n_rows + 2)
        baselines_mm = [pitch * (1.5 + r) for r in range(n_rows)]
    if len(baselines_mm) != n_rows:
        raise ValueError(f"layout {name} has {n_rows} rows, got {len(baselines_mm)} baselines")
    usable_mm = min(duration_s * speed_mm_s, paper_mm[0] - x0_mm - right_mm)
    shown_s = usable_mm / speed_mm_s
    derived = derived or {}
    cells: list[Cell] = []
    pulses: list[Pulse] = []
    for r, row in enumerate(grid + [[lead] for lead in rhythm]):
        n_cols = len(row)
        seg_mm = usable_mm / n_cols
        gains = []
        for c, text in enumerate(row):
            lead, sign = parse_lead(text)
            x0 = x0_mm + c * seg_mm
            t0 = 0.0 if simultaneous else c * shown_s / n_cols
            g = chest_gain_mm_mv if chest_gain_mm_mv > 0 and lead.startswith("V") else 0.0
            gains.append(g or gain_mm_mv)
            cells.append(
                Cell(lead, r, c, baselines_mm[r], x0, x0 + seg_mm, t0, t0 + shown_s / n_cols, sign, g,
                     "", derived.get(lead, ""))
            )  # fmt: skip
        if pulse_rows is not None and r not in pulse_rows:
            continue
        step = gains[-1] if len(set(gains)) > 1 else 0.0
        px0 = x0_mm + usable_mm + 1.0 if pulse_at_end else x0_mm - pulse_width_mm
        if pulse_at_end and px0 + pulse_width_mm > paper_mm[0] - 1.0:
            continue
        pulses.append(Pulse(r, px0, px0 + pulse_width_mm, baselines_mm[r], gains[0], step))
    cabrera = any(c.sign < 0 for c in cells)
    return PageLayout(
        name, paper_mm, speed_mm_s, gain_mm_mv, cells, pulses, list(rhythm),
        "simultaneous" if simultaneous else "sequential", cabrera, chest_gain_mm_mv,
    )  # fmt: skip


def lead_window(lead: str, fs: int) -> tuple[int, int]:
    """(first sample, number of samples) of a lead on the standard 3x4+1R page (INTERFACES.md)."""
    if lead == "II":
        return 0, fs * 10
    col = {"I": 0, "III": 0, "aVR": 1, "aVL": 1, "aVF": 1, "V1": 2, "V2": 2, "V3": 2}.get(lead, 3)
    if lead not in LEADS:
        raise KeyError(lead)
    return int(col * fs * 2.5), fs * 10 // 4
