"""Which lead sits where on the page and which seconds of the record it shows.

Paper coordinates are millimetres with the origin at the page's top-left corner, x to the right and
y downward. A cell is one plotted trace segment: a lead, its zero-mV baseline (y, mm), its x range
(mm) and the record time at its left edge. Voltage goes up the page: y = baseline - v * gain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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
KAGGLE_X0_MM = 15.0  # first segment start: 10 mm margin + the 5 mm calibration pulse
KAGGLE_PULSE_X0_MM = 10.0


@dataclass(frozen=True)
class Cell:
    lead: str
    row: int
    col: int
    baseline_mm: float
    x0_mm: float
    x1_mm: float
    t0_s: float  # record time at x0
    t1_s: float


@dataclass(frozen=True)
class Pulse:
    row: int
    x0_mm: float
    x1_mm: float
    baseline_mm: float


@dataclass
class PageLayout:
    """Everything needed to turn page millimetres into (lead, time, mV) and back."""

    name: str
    paper_mm: tuple[float, float]
    speed_mm_s: float
    gain_mm_mv: float
    cells: list[Cell]
    pulses: list[Pulse] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return 1 + max(c.row for c in self.cells)

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
    only the first half of the record fits a Letter page, so each column shows less time.
    """
    if name not in _GRIDS:
        raise ValueError(f"unknown layout {name!r}; choose from {LAYOUT_NAMES}")
    grid, rhythm = _GRIDS[name]
    n_rows = len(grid) + len(rhythm)
    if baselines_mm is None:
        if name == DEFAULT_LAYOUT and paper_mm == LETTER_MM:
            baselines_mm = list(KAGGLE_BASELINES_MM)
        else:
            pitch = paper_mm[1] / (n_rows + 2)
            baselines_mm = [pitch * (1.5 + r) for r in range(n_rows)]
    if len(baselines_mm) != n_rows:
        raise ValueError(f"layout {name} has {n_rows} rows, got {len(baselines_mm)} baselines")
    usable_mm = min(duration_s * speed_mm_s, paper_mm[0] - x0_mm - 5.0)
    shown_s = usable_mm / speed_mm_s
    cells: list[Cell] = []
    pulses: list[Pulse] = []
    for r, row in enumerate(grid + [[lead] for lead in rhythm]):
        n_cols = len(row)
        seg_mm = usable_mm / n_cols
        for c, lead in enumerate(row):
            x0 = x0_mm + c * seg_mm
            t0 = c * shown_s / n_cols
            cells.append(Cell(lead, r, c, baselines_mm[r], x0, x0 + seg_mm, t0, t0 + shown_s / n_cols))
        if pulse:
            pulses.append(Pulse(r, x0_mm - pulse_width_mm, x0_mm, baselines_mm[r]))
    return PageLayout(name, paper_mm, speed_mm_s, gain_mm_mv, cells, pulses)


def lead_window(lead: str, fs: int) -> tuple[int, int]:
    """(first sample, number of samples) of a lead on the standard 3x4+1R page (INTERFACES.md)."""
    if lead == "II":
        return 0, fs * 10
    col = {"I": 0, "III": 0, "aVR": 1, "aVL": 1, "aVF": 1, "V1": 2, "V2": 2, "V3": 2}.get(lead, 3)
    if lead not in LEADS:
        raise KeyError(lead)
    return int(col * fs * 2.5), fs * 10 // 4
