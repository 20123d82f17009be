"""The page's calibration: its paper speed and gain read from what the page shows, where each comes from,
and how far the page confirms them (pulse evidence for the confidence calibration, warnings for the user).

Three kinds of evidence (`read_calibration`):
- the printed settings ("25 mm/s", "Chest: 5 mm/mV"), read by the footer reader (`ecgml.footer_reader`);
- the calibration pulses (`ecgml.geometry.pulses`): their height is the gain; their width only supports a
  speed (0.2 s on most carts, 0.4 s at 50 mm/s on some, 5 mm whatever the speed on others);
- the traces: beats the speed would put below 25 or above 250 a minute are not a heart's.
The speed is set from the printed text only when neither the pulse width nor the beats contradict it;
else from a pulse no cart prints at 25 mm/s (20 mm: 0.4 s at 50) when the beats agree, said to be
doubtful; else the layout's 25 mm/s is assumed, and said to be doubtful when the pulse or the beats
suggest another speed. The gain comes from the pulses, else from the printed text, else 10 mm/mV is assumed.

Every reading of `geometry.diagnostics` ("pulses" from geometry, "calibration" from `read_calibration`)
is here, so the JSON's `calibration` block, the lead confidences and the warnings say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ecgml.geometry.pulses import SNAP_TOL, STANDARD_WIDTH_MM
from ecgml.layout import Cell, PageLayout
from ecgml.verdict import PULSE_UNSEEN

if TYPE_CHECKING:
    from ecgml.footer_reader import FooterReading
    from ecgml.trace.types import CellTrace


class PageGeometry(Protocol):
    """What these readers use of the digitizer's page geometry (`ecgml.digitize.Geometry`), named here
    so that this module, which digitize imports, does not import digitize back."""

    layout: PageLayout
    source: str
    diagnostics: dict[str, Any]


ASSUMED_SPEED_MM_S = 25.0
PULSE_SECONDS = (0.2, 0.4)  # a pulse's width in seconds at the page's speed (or STANDARD_WIDTH_MM at any)
PULSE_WIDTH_TOL = 0.2  # a measured width within this share (at least 1 mm) of one of those fits
RATE_BPM = (25.0, 250.0)  # a heart's beats per minute: outside, the speed read makes no heart
BEAT_STEP_MM = 0.25  # the traces are looked at on this x grid for their beat spacing
BEAT_LAG_MM = (4.0, 150.0)  # beat spacings looked for (250 bpm at 12.5 mm/s .. 20 bpm at 50 mm/s)
BEAT_MIN_CORR = 0.3  # a row's slope envelope repeats at its beat spacing at least this well


def pulses(geo: PageGeometry) -> dict[str, Any]:
    """What geometry's pulse reading found (`PulseReading.to_json`), {} when it did not look."""
    return dict(geo.diagnostics.get("pulses", {}))


def calibration(geo: PageGeometry) -> dict[str, Any]:
    """What `read_calibration` decided for the page (`PageCalibration.to_json`), {} before it ran."""
    return dict(geo.diagnostics.get("calibration", {}))


def gain_source(geo: PageGeometry) -> str:
    """Where the layout's gain comes from: "given" (the caller's geometry), "pulse" (measured on the page's
    calibration pulses, `geometry.pulses`), "footer" (printed on the page, no pulse read) or "assumed"
    (10 mm/mV: no pulse, or pulses that disagree, and no printed gain read)."""
    if geo.source == "given":
        return "given"
    if pulses(geo).get("gain_read"):
        return "pulse"
    return "footer" if calibration(geo).get("gain_source") == "footer" else "assumed"


def speed_source(geo: PageGeometry) -> str:
    """Where the layout's speed comes from: "given", "footer" (printed on the page, nothing against it),
    "pulse" (a pulse width no cart prints at 25 mm/s, and beats that agree) or "assumed" (25 mm/s)."""
    if geo.source == "given":
        return "given"
    return str(calibration(geo).get("speed_source", "assumed"))


def speed_doubt(geo: PageGeometry) -> str:
    """Why the assumed speed may be wrong ("" when nothing suggests it): a pulse or beats that fit another
    speed, or a printed speed the pulse or the beats contradict."""
    if geo.source == "given":
        return ""
    doubt = str(calibration(geo).get("speed_doubt", ""))
    if (
        not doubt
        and gain_source(geo) == "pulse"
        and speed_source(geo) != "footer"
        and not speed_consistent(geo)
    ):
        w = pulses(geo).get("pulse_width_mm")
        doubt = f"calibration pulse {w} mm wide, not 0.2 s at the assumed {geo.layout.speed_mm_s:g} mm/s"
    return doubt


def pulse_evidence(geo: PageGeometry) -> float:
    """1 when the page confirms its gain (calibration pulses, or the printed gain) and its speed (the printed
    speed, or pulses as wide as 0.2 s at the assumed 25 mm/s), and nothing says the speed may be another
    (or the geometry was given); else PULSE_UNSEEN (`ecgml.verdict`): an assumed gain is wrong on pages
    printed at 5 or 20 mm/mV, an assumed speed on pages printed at 50 or 12.5 mm/s."""
    src = gain_source(geo)
    if src == "given":
        return 1.0
    speed_ok = speed_source(geo) == "footer" or speed_consistent(geo)
    return 1.0 if src in ("pulse", "footer") and speed_ok and not speed_doubt(geo) else PULSE_UNSEEN


ROW_PULSE_MM = 3.0  # a pulse calibrates the cells whose baseline lies this close to its foot


def lead_pulse_evidence(geo: PageGeometry) -> dict[str, float]:
    """Per lead: `pulse_evidence` of the page, kept at 1 only for a lead whose own gain a measured pulse
    shows - a pulse on one of its rows as tall as its cell's gain (a step pulse: its left half for limb
    leads, its right half for chest leads), or, on a page of one gain, pulses on rows of both limb and
    chest leads. A mixed page whose chest rows' pulses were missed is read at 10 mm/mV throughout: its
    chest leads' gain is then not confirmed."""
    page = pulse_evidence(geo)
    leads = sorted({c.lead for c in geo.layout.cells})
    if page < 1.0 or gain_source(geo) in ("given", "footer"):  # a printed gain is the whole page's
        return dict.fromkeys(leads, page)
    lay = geo.layout
    found = pulses(geo).get("pulses", [])

    def shows(c: Cell, q: dict[str, Any]) -> bool:
        if abs(float(q.get("baseline_mm", -1e9)) - c.baseline_mm) > ROW_PULSE_MM:
            return False
        h = float(q["right_mm"] if q["shape"][2] > 0 and c.lead.startswith("V") else q["height_mm"])
        return abs(h - lay.cell_gain(c)) <= SNAP_TOL * lay.cell_gain(c)

    on_row = {c.lead for c in lay.cells if any(shows(c, q) for q in found)}
    kinds = {c.lead.startswith("V") for c in lay.cells if c.lead in on_row}
    if not lay.chest_gain_mm_mv and kinds == {True, False}:
        return dict.fromkeys(leads, 1.0)
    return {lead: 1.0 if lead in on_row else PULSE_UNSEEN for lead in leads}


def speed_consistent(geo: PageGeometry) -> bool:
    """The measured pulse width fits 0.2 s at the layout's (assumed) speed (`geometry.pulses`)."""
    return bool(pulses(geo).get("speed_consistent", False))


def speed_warning(geo: PageGeometry) -> str:
    """The page's warning when its speed is not printed and confirmed, and something suggests another speed
    (or the speed was taken from the pulse's width), else ""."""
    doubt = speed_doubt(geo)
    if not doubt:
        return ""
    if speed_source(geo) == "pulse":
        s = geo.layout.speed_mm_s
        return f"{doubt}: read at {s:g} mm/s; times are off by the ratio if it runs at another"
    return (
        f"{doubt}: the page may run at another speed (speed not read from the page: assumed "
        f"{geo.layout.speed_mm_s:g} mm/s; times are off by the ratio if it runs at another)"
    )


def gain_warning(geo: PageGeometry) -> str:
    """The page's warning when its gain is assumed, else ""."""
    if gain_source(geo) != "assumed":
        return ""
    why = str(pulses(geo).get("why", "no calibration pulse found"))
    return (
        f"gain not read from the page ({why}): assumed {geo.layout.gain_mm_mv:g} mm/mV; amplitudes are "
        "off by the ratio if the page was printed at another gain"
    )


# ------------------------------------------------------------------------------------- reading it


@dataclass
class PageCalibration:
    """The speed and gain the page is read at, where each comes from, and the evidence looked at."""

    speed_mm_s: float
    speed_source: str  # "footer", "pulse" (a width only one other speed's pulses have) or "assumed"
    gain_mm_mv: float
    chest_gain_mm_mv: float
    gain_source: str  # "pulse", "footer" or "assumed"
    speed_doubt: str = ""  # why a wrong speed is plausible ("" when nothing suggests one)
    footer: dict[str, Any] = field(default_factory=dict)  # `FooterReading.to_json`, {} without a reader
    pulse_width_mm: float | None = None
    beat_mm: float | None = None  # median beat-to-beat spacing of the traces on the paper

    def to_json(self) -> dict[str, Any]:
        rate = {
            f"{s:g}": round(60 * s / self.beat_mm, 1) for s in (12.5, 25.0, 50.0)
        } if self.beat_mm else None  # fmt: skip
        return {
            "speed_mm_s": self.speed_mm_s,
            "speed_source": self.speed_source,
            "speed_doubt": self.speed_doubt,
            "gain_mm_mv": self.gain_mm_mv,
            "chest_gain_mm_mv": self.chest_gain_mm_mv,
            "gain_source": self.gain_source,
            "footer": self.footer,
            "pulse_width_mm": self.pulse_width_mm,
            "beat_mm": None if self.beat_mm is None else round(self.beat_mm, 2),
            "rate_bpm_at": rate,
        }


def pulse_fits(width_mm: float, speed_mm_s: float, strict: bool = False) -> bool:
    """A pulse this wide is one a cart prints at this speed: 0.2 or 0.4 s, or the 5 mm some print always
    (`strict`: 0.2 s only - the width that says nothing against an assumed speed)."""
    widths = (PULSE_SECONDS[0] * speed_mm_s,) if strict else (
        STANDARD_WIDTH_MM, *(t * speed_mm_s for t in PULSE_SECONDS)
    )  # fmt: skip
    return any(abs(width_mm - w) <= max(1.0, PULSE_WIDTH_TOL * w) for w in widths)


def rate_fits(beat_mm: float, speed_mm_s: float) -> bool:
    """Beats this far apart on the paper make a heart's rate at this speed."""
    return RATE_BPM[0] <= 60.0 * speed_mm_s / beat_mm <= RATE_BPM[1]


def _row_beat_mm(x: np.ndarray, y: np.ndarray) -> float | None:
    """The beat spacing (mm) of one row's trace: where its smoothed |slope| repeats best."""
    ok = np.isfinite(y)
    if ok.sum() < 50:
        return None
    grid = np.arange(x[ok].min(), x[ok].max(), BEAT_STEP_MM)
    if grid.size < int(3 * BEAT_LAG_MM[0] / BEAT_STEP_MM):
        return None
    yy = np.interp(grid, x[ok], y[ok])
    env = np.abs(np.gradient(yy))
    k = max(1, int(round(1.0 / BEAT_STEP_MM)))
    env = np.convolve(env, np.ones(k) / k, mode="same")
    env = env - env.mean()
    den = float(np.dot(env, env))
    if den <= 0:
        return None
    lo = int(BEAT_LAG_MM[0] / BEAT_STEP_MM)
    hi = min(int(BEAT_LAG_MM[1] / BEAT_STEP_MM), env.size // 2)
    if hi <= lo + 2:
        return None
    ac = np.array([float(np.dot(env[:-lag], env[lag:])) / den for lag in range(lo, hi)])
    peaks = [i for i in range(1, ac.size - 1) if ac[i] >= ac[i - 1] and ac[i] >= ac[i + 1]]
    if not peaks:
        return None
    top = max(ac[i] for i in peaks)
    if top < BEAT_MIN_CORR:
        return None
    first = next(i for i in peaks if ac[i] >= 0.8 * top)  # the beat, not a multiple of it
    return float((lo + first) * BEAT_STEP_MM)


def beat_spacing_mm(traces: list[CellTrace]) -> float | None:
    """The median beat-to-beat spacing (mm) over the page's rows (each row's cells joined), None when no
    row repeats clearly."""
    rows: dict[int, list[CellTrace]] = {}
    for t in traces:
        rows.setdefault(t.row, []).append(t)
    found = []
    for cells in rows.values():
        x = np.concatenate([c.x_mm for c in cells])
        y = np.concatenate([c.y_mm for c in cells])
        order = np.argsort(x, kind="stable")
        b = _row_beat_mm(x[order], y[order])
        if b is not None:
            found.append(b)
    return float(np.median(found)) if found else None


def read_calibration(
    geo: PageGeometry, footer: FooterReading | None, traces: list[CellTrace]
) -> PageCalibration:
    """The page's speed and gain from its printed settings, pulses and traces (see the module docstring)."""
    lay = geo.layout
    p = pulses(geo)
    width = float(p["pulse_width_mm"]) if p.get("gain_read") and p.get("pulse_width_mm") else None
    beat = beat_spacing_mm(traces)
    printed = footer.to_json() if footer is not None else {}
    speed, src, doubt = ASSUMED_SPEED_MM_S, "assumed", ""
    said = footer.speed_mm_s if footer is not None else None
    if said is not None:
        against = []
        if width is not None and not pulse_fits(width, said):
            against.append(f"the calibration pulse is {width:g} mm wide")
        if beat is not None and not rate_fits(beat, said):
            against.append(f"beats {beat:.1f} mm apart make {60 * said / beat:.0f} a minute")
        if against:
            doubt = f"the page prints {said:g} mm/s but " + " and ".join(against)
        else:
            speed, src = said, "footer"
    if src == "assumed" and not doubt and width is not None and not pulse_fits(width, speed):
        # a pulse no cart prints at 25 mm/s (20 mm: 0.8 s) and one speed's: taken, when the beats agree
        # (never a confident speed: the page's confidence stays as for an unconfirmed one)
        other = [v for v in (50.0, 12.5) if pulse_fits(width, v)]
        if len(other) == 1 and (beat is None or rate_fits(beat, other[0])):
            speed, src = other[0], "pulse"
            doubt = f"speed from the calibration pulse's width only ({width:g} mm), not printed"
    if src == "assumed" and not doubt:
        if width is not None and not pulse_fits(width, speed, strict=True):
            doubt = f"calibration pulse {width:g} mm wide, not 0.2 s at the assumed {speed:g} mm/s"
        elif beat is not None and not rate_fits(beat, speed):
            doubt = f"beats {beat:.1f} mm apart make {60 * speed / beat:.0f} a minute at {speed:g} mm/s"
    gain, chest, gsrc = lay.gain_mm_mv, lay.chest_gain_mm_mv, "pulse" if p.get("gain_read") else "assumed"
    if gsrc == "assumed" and footer is not None and footer.gain_mm_mv is not None:
        gain, chest, gsrc = footer.gain_mm_mv, footer.chest_gain_mm_mv, "footer"
    return PageCalibration(speed, src, gain, chest, gsrc, doubt, printed, width, beat)
