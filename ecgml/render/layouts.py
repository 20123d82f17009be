"""The layout catalogue the renderer draws, as data: names, rhythm strips, speeds, gains, training mixes.

A layout name is a base grid plus optional rhythm strips, joined by "+":
`3x4+1R` (lead II strip), `3x4+2R` (V1, II), `3x4+3R` (II, V1, V5), or any leads in order:
`3x4+V1`, `3x4+V1+II+V5`. Bases (BASES): 3x4, 6x2 (both columns show the first half, as
ECG-Image-Kit draws it), 6x2-seq (the right column shows the second half), 12x1, Cabrera
(cabrera-3x4, cabrera-6x2, cabrera-12x1: aVL, I, -aVR, II, aVF, III, the -aVR drawn inverted),
partial pages (6x1-limb, 6x1-chest, 12x1-top and 12x1-bottom: the upper or lower half of a 12x1
page) and the 15-lead 3x5 (V4R, V8, V9 as a fifth column). A `panels:` prefix (`panels:3x4+1R`) draws
the layout as a panel page, each lead in its own gridded box (`ecgml.render.panels`).

V4R, V8 and V9 are rarely in a record. Unless the record carries them in `meta["extra_leads"]`, they
are derived by extrapolating along the chest (`EXTRA_LEADS`: V4R = 2 V1 - V2, V8 = 2 V6 - V5,
V9 = 3 V6 - 2 V5): plausible waveforms for a reader to find and name, not measurements, so their
cells carry `derived` and no truth.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from ecgml.errors import EcgmlError
from ecgml.layout import LETTER_MM, PageLayout, grid_layout
from ecgml.records import LEADS, Record

LIMB = ["I", "II", "III", "aVR", "aVL", "aVF"]
CHEST = ["V1", "V2", "V3", "V4", "V5", "V6"]
CABRERA = ["aVL", "I", "-aVR", "II", "aVF", "III"]
_3X4 = [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]]

# base name -> (grid rows, simultaneous columns)
BASES: dict[str, tuple[list[list[str]], bool]] = {
    "3x4": (_3X4, False),
    "6x2": ([[a, b] for a, b in zip(LIMB, CHEST, strict=True)], True),
    "6x2-seq": ([[a, b] for a, b in zip(LIMB, CHEST, strict=True)], False),
    "12x1": ([[lead] for lead in LEADS], False),
    "cabrera-3x4": ([[CABRERA[r], CABRERA[3 + r], CHEST[r], CHEST[3 + r]] for r in range(3)], False),
    "cabrera-6x2": ([[a, b] for a, b in zip(CABRERA, CHEST, strict=True)], True),
    "cabrera-12x1": ([[lead] for lead in CABRERA + CHEST], False),
    "6x1-limb": ([[lead] for lead in LIMB], False),
    "6x1-chest": ([[lead] for lead in CHEST], False),
    "12x1-top": ([[lead] for lead in LEADS[:6]], False),
    "12x1-bottom": ([[lead] for lead in LEADS[6:]], False),
    "3x5": ([row + [x] for row, x in zip(_3X4, ["V4R", "V8", "V9"], strict=True)], False),
}
STRIP_SETS = {"1R": ["II"], "2R": ["V1", "II"], "3R": ["II", "V1", "V5"]}
EXTRA_LEADS: dict[str, tuple[str, dict[str, float]]] = {
    "V4R": ("2 V1 - V2", {"V1": 2.0, "V2": -1.0}),
    "V8": ("2 V6 - V5", {"V6": 2.0, "V5": -1.0}),
    "V9": ("3 V6 - 2 V5", {"V6": 3.0, "V5": -2.0}),
}
STRIP_LEADS = tuple(LEADS) + tuple(EXTRA_LEADS)
SPEEDS: tuple[float, ...] = (25.0, 50.0, 12.5)
GAINS: tuple[str, ...] = ("10", "5", "20", "mixed")  # mixed: limb 10, chest 5 mm/mV

# One example per family (the second contact sheet) and the training mix of RENDERER.md section 5.2
# (3x4 + one strip 0.45, two 0.05, three 0.10, none 0.10; 6x2 +/- strip 0.12; 12x1 0.06; Cabrera 0.04;
# partial pages 0.08).
FAMILIES: tuple[str, ...] = (
    "3x4+1R", "3x4", "3x4+3R", "3x4+V1", "6x2", "6x2+II", "12x1", "cabrera-12x1", "cabrera-6x2",
    "6x1-limb", "6x1-chest", "12x1-top", "3x5",
)  # fmt: skip
MIXES: dict[str, dict[str, float]] = {
    "training": {
        "3x4+1R": 0.43, "3x4+V1": 0.02, "3x4+3R": 0.07, "3x4+V1+II+V5": 0.03, "3x4+2R": 0.03,
        "3x4+II+V1": 0.02, "3x4": 0.10, "6x2": 0.06, "6x2+II": 0.03, "6x2-seq": 0.03, "12x1": 0.06,
        "cabrera-12x1": 0.015, "cabrera-6x2": 0.015, "cabrera-3x4+1R": 0.01, "6x1-limb": 0.02,
        "6x1-chest": 0.02, "12x1-top": 0.02, "12x1-bottom": 0.02,
    },
    "kaggle": {"3x4+1R": 1.0},
    "families": {name: 1.0 for name in FAMILIES},
    # panel pages (each lead in its own gridded box, ecgml.render.panels), alone and in the training mix
    "panels": {"panels:3x4+1R": 0.5, "panels:3x4": 0.15, "panels:3x4+3R": 0.1, "panels:6x2-seq": 0.1,
               "panels:12x1": 0.15},
    # every standard window of the competition plotted (solution.csv scores them), at 25 mm/s
    "standard": {"3x4+1R": 0.5, "3x4+3R": 0.15, "6x2-seq": 0.2, "12x1": 0.15},
}  # fmt: skip
MIXES["training-panels"] = {
    **{k: 0.9 * v for k, v in MIXES["training"].items()},
    **{k: 0.1 * v for k, v in MIXES["panels"].items()},
}


@dataclass(frozen=True)
class LayoutSpec:
    name: str
    base: str
    grid: list[list[str]]
    rhythm: list[str]
    simultaneous: bool

    @property
    def n_rows(self) -> int:
        return len(self.grid) + len(self.rhythm)

    @property
    def leads(self) -> list[str]:
        """Record leads (signs dropped) the page draws, in drawing order, each once."""
        out: list[str] = []
        for text in [t for row in self.grid for t in row] + self.rhythm:
            lead = text.lstrip("-")
            if lead not in out:
                out.append(lead)
        return out


def known_layouts() -> str:
    return (
        f"bases {', '.join(BASES)}, each optionally followed by rhythm strips "
        f"(+1R, +2R, +3R or +LEAD+LEAD..., e.g. 3x4+V1+II), or a mix ({', '.join(MIXES)})"
    )


def parse_layout(name: str) -> LayoutSpec:
    """'3x4+V1+II' -> LayoutSpec; an unknown name raises EcgmlError listing the known ones."""
    name = str(name).removeprefix("panels:")  # the same layout drawn as boxes (ecgml.render.panels)
    parts = [p.strip() for p in name.split("+")]
    base, strips = parts[0], parts[1:]
    if base not in BASES:
        raise EcgmlError(None, f"unknown layout {name!r}; known: {known_layouts()}")
    rhythm: list[str] = []
    for s in strips:
        if s in STRIP_SETS:
            rhythm += STRIP_SETS[s]
        elif s in STRIP_LEADS:
            rhythm.append(s)
        else:
            raise EcgmlError(
                None,
                f"unknown rhythm strip {s!r} in layout {name!r}; use 1R, 2R, 3R or a lead of {STRIP_LEADS}",
            )
    if len(rhythm) > 3:
        raise EcgmlError(None, f"layout {name!r} has {len(rhythm)} rhythm strips; at most 3 fit a page")
    grid, simultaneous = BASES[base]
    return LayoutSpec(name, base, [list(r) for r in grid], rhythm, simultaneous)


def parse_speed(speed: float | str) -> float:
    try:
        v = float(speed)
    except ValueError:
        v = float("nan")
    if v not in SPEEDS:
        raise EcgmlError(None, f"unknown speed {speed!r} mm/s; known: {', '.join(f'{s:g}' for s in SPEEDS)}")
    return v


def pulse_width_mm(speed_mm_s: float) -> float:
    """The calibration pulse's width: 0.2 s, and 0.4 s at 50 mm/s (RENDERER.md section 5.4)."""
    return (0.4 if speed_mm_s == 50.0 else 0.2) * speed_mm_s


def parse_gain(gain: float | str) -> tuple[float, float]:
    """'10' -> (10, 0); 'mixed' -> (10, 5): (page or limb gain, chest gain or 0)."""
    g = str(gain).strip().lower()
    if g == "mixed":
        return 10.0, 5.0
    with contextlib.suppress(ValueError):
        g = f"{float(g):g}"
    if g not in GAINS:
        raise EcgmlError(None, f"unknown gain {gain!r} mm/mV; known: {', '.join(GAINS)}")
    return float(g), 0.0


def parse_mix(text: str) -> dict[str, float]:
    """A mix name ('training') or comma-separated layout names (equal weights), each checked."""
    text = text.strip()
    if text in MIXES:
        return dict(MIXES[text])
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise EcgmlError(None, f"no layout given; known: {known_layouts()}")
    for n in names:
        parse_layout(n)
    return {n: 1.0 for n in names}


def pick(mix: dict[str, float], rng: np.random.Generator) -> str:
    names = list(mix)
    w = np.asarray([mix[n] for n in names], dtype=np.float64)
    return str(names[int(rng.choice(len(names), p=w / w.sum()))])


# ------------------------------------------------------------------------------------------- leads


def with_extra_leads(record: Record, spec: LayoutSpec, derive: bool = True) -> tuple[Record, dict[str, str]]:
    """The record with every extra lead the layout draws in `meta["extra_leads"]`.

    Leads the record lacks are derived (EXTRA_LEADS) when `derive`, else a clear error names the record
    and the missing leads. Returns the record and {lead: how it was derived}.
    """
    need = [lead for lead in spec.leads if lead not in LEADS]
    have = dict(record.meta.get("extra_leads", {}))
    missing = [lead for lead in need if lead not in have]
    if not missing:
        return record, {}
    if not derive:
        src = record.meta.get("source", record.name) or record.name
        raise EcgmlError(
            src, f"layout {spec.name} needs lead(s) {', '.join(missing)} the record does not have"
        )
    how = {}
    for lead in missing:
        formula, coef = EXTRA_LEADS[lead]
        sig = np.zeros(record.n_samples, np.float64)
        for k, w in coef.items():
            sig += w * record.signal[:, LEADS.index(k)]
        have[lead] = sig.astype(np.float32)
        how[lead] = f"derived: {formula} (not recorded; no truth)"
    meta = dict(record.meta, extra_leads=have)
    return Record(record.signal, record.fs, record.name, meta), how


# ------------------------------------------------------------------------------------------- geometry


def build_layout(
    spec: LayoutSpec,
    paper_mm: tuple[float, float] = LETTER_MM,
    speed_mm_s: float | str = 25.0,
    gain: str | float = "10",
    x0_mm: float = 15.0,
    baselines_mm: list[float] | None = None,
    pulse_rows: list[int] | None = None,
    pulse_at_end: bool = False,
    right_mm: float = 5.0,
    derived: dict[str, str] | None = None,
) -> PageLayout:
    """The page for `spec`; defaults are ECG-Image-Kit's (rows H/(rows+2) apart, 0.2 s pulse at the start).

    Half pages of 12x1 are the upper or lower half of a full 12x1 page: the paper is half as tall and
    keeps the full page's row pitch.
    """
    speed = parse_speed(speed_mm_s)
    g, chest = parse_gain(gain)
    half = spec.base in ("12x1-top", "12x1-bottom")
    full_h = paper_mm[1]
    if half:
        paper_mm = (paper_mm[0], full_h / 2)
        if baselines_mm is None:
            pitch = full_h / 14
            first = 1.5 * pitch if spec.base == "12x1-top" else 7.5 * pitch - full_h / 2
            baselines_mm = [first + pitch * r for r in range(6)]
    pulse_w = pulse_width_mm(speed)
    lay = grid_layout(
        spec.name, spec.grid, spec.rhythm, paper_mm, speed, g, x0_mm, baselines_mm,
        simultaneous=spec.simultaneous, pulse_width_mm=pulse_w, pulse_rows=pulse_rows,
        pulse_at_end=pulse_at_end, right_mm=right_mm, chest_gain_mm_mv=chest, derived=derived,
    )  # fmt: skip
    return lay


def layout_dict(lay: PageLayout) -> dict[str, object]:
    """The layout as a page reader wants it: grid shape, rhythm leads, speed, gain, Cabrera."""
    rhythm = set(range(lay.n_rows - len(lay.rhythm_leads), lay.n_rows))
    grid_cells = [c for c in lay.cells if c.row not in rhythm]
    n_grid_rows = lay.n_rows - len(lay.rhythm_leads)
    return {
        "name": lay.name,
        "grid_rows": n_grid_rows,
        "grid_columns": 1 + max((c.col for c in grid_cells), default=0),
        "grid": [[c.text for c in lay.cells if c.row == r] for r in range(n_grid_rows)],
        "rhythm_leads": list(lay.rhythm_leads),
        "columns": lay.columns,
        "speed_mm_s": lay.speed_mm_s,
        "gain_mm_mv": lay.gain_mm_mv,
        "chest_gain_mm_mv": lay.chest_gain_mm_mv or lay.gain_mm_mv,
        "cabrera": lay.cabrera,
        "inverted_leads": sorted({c.lead for c in lay.cells if c.sign < 0}),
        "derived_leads": sorted({c.lead for c in lay.cells if c.derived}),
        "paper_mm": list(lay.paper_mm),
    }


# ------------------------------------------------------------------------------------------- sampling

A4_MM = (297.0, 210.0)
PAPERS: dict[str, tuple[tuple[float, float], float]] = {
    "letter": (LETTER_MM, 0.55),
    "a4": (A4_MM, 0.30),
    "letter-portrait": ((LETTER_MM[1], LETTER_MM[0]), 0.075),
    "a4-portrait": ((A4_MM[1], A4_MM[0]), 0.075),
}
SPEED_P = {25.0: 0.9, 50.0: 0.07, 12.5: 0.03}
GAIN_P = {"10": 0.85, "5": 0.08, "20": 0.05, "mixed": 0.02}


def sample_page(
    rng: np.random.Generator,
    name: str | None = None,
    mix: dict[str, float] | None = None,
    speed: float | str | None = None,
    gain: str | float | None = None,
    standard_windows: bool = False,
) -> tuple[PageLayout, dict[str, object]]:
    """A real-world page: layout (`name`, or drawn from `mix`), paper, speed, gain, margins, header room,
    row pitch, plot shift and pulses (RENDERER.md section 5.2 and 5.4 weights). Returns the layout and
    every drawn parameter; `params["header_mm"]` is the room left above the plot for a header and
    `params["footer_mm"]` below it for a footer (0: none, as on the upper half of a 12x1 page)."""
    if name is None:
        name = pick(mix or MIXES["standard" if standard_windows else "training"], rng)
    spec = parse_layout(name)
    paper_name = str(rng.choice(list(PAPERS), p=[p for _, p in PAPERS.values()]))
    paper = PAPERS[paper_name][0]
    if speed is None:
        speed = 25.0 if standard_windows else float(rng.choice(list(SPEED_P), p=list(SPEED_P.values())))
    if gain is None:
        gain = str(rng.choice(list(GAIN_P), p=list(GAIN_P.values())))
    speed = parse_speed(speed)
    g, _ = parse_gain(gain)
    pulse = bool(rng.random() < 0.75)
    pulse_at_end = pulse and rng.random() < 0.3
    pulse_w = pulse_width_mm(speed)
    margin = float(rng.uniform(5, 20))
    x0 = margin + (pulse_w if pulse and not pulse_at_end else 0.0)
    right = pulse_w + 2.0 if pulse_at_end else float(rng.uniform(3, 10))
    half = {"12x1-top": 0, "12x1-bottom": 1}.get(spec.base)
    n = 12 if half is not None else spec.n_rows  # a half page is cut from a whole 12x1 page
    h = paper[1]
    footer = float(rng.uniform(8, 20))
    min_pitch = max(10.0, 1.5 * g)
    room = h - footer - 8.0 - n * min_pitch  # what a header may take and still leave min_pitch rows
    header = float(rng.uniform(15, 110)) if rng.random() < 0.7 else 0.0
    header = float(min(header, max(0.0, room)))
    top = max(header, float(rng.uniform(3, 15)))
    pitch = (h - footer - top) / (n + float(rng.uniform(0.3, 1.3)))
    pitch = min(pitch, h / (n + 1.5))
    first = top + pitch * float(rng.uniform(0.7, 1.0))
    last = first + pitch * (n - 1)
    shift = float(rng.uniform(-10, 10))
    shift = float(np.clip(shift, top + 0.5 * pitch - first, h - footer - last))  # keep within its room
    baselines = [first + shift + pitch * r for r in range(n)]
    if half is not None:  # cut the whole page between rows 5 and 6; keep one side in its own mm
        cut = (baselines[5] + baselines[6]) / 2
        baselines = [b - half * cut for b in baselines[6 * half : 6 * half + 6]]
        header, footer = (header, 0.0) if half == 0 else (0.0, footer)
        paper = (paper[0], 2 * (cut if half == 0 else h - cut))  # build_layout keeps half of it
        n = 6
    pulse_rows = list(range(n)) if pulse else []
    if pulse and rng.random() < 0.1:  # only on some rows
        pulse_rows = [r for r in range(n) if rng.random() < 0.5] or [0]
    lay = build_layout(spec, paper, speed, gain, x0, baselines, pulse_rows, pulse_at_end, right)
    p: dict[str, object] = {"layout": name, "paper": paper_name, "paper_mm": list(lay.paper_mm)}
    p.update({"speed_mm_s": speed, "gain": str(gain), "gain_mm_mv": g, "pulse": pulse})
    p.update({"pulse_at_end": pulse_at_end, "pulse_rows": [q.row for q in lay.pulses]})
    p.update({"x0_mm": x0, "right_mm": right, "row_pitch_mm": pitch, "first_baseline_mm": baselines[0]})
    p.update({"header_mm": header, "footer_mm": footer, "plot_shift_mm": shift})
    return lay, p
