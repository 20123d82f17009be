"""The page's calibration as the digitizer knows it: where its gain and speed come from, and how far the
page itself confirms them (pulse evidence for the confidence calibration, warnings for the user).

Every reading here is of `geometry.diagnostics["pulses"]` (`ecgml.geometry.pulses`), kept in one place so
the JSON's `calibration` block, the lead confidences and the warnings say the same thing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ecgml.geometry.pulses import SNAP_TOL
from ecgml.layout import Cell
from ecgml.verdict import PULSE_UNSEEN

if TYPE_CHECKING:
    from ecgml.digitize import Geometry


def pulses(geo: Geometry) -> dict[str, Any]:
    """What geometry's pulse reading found (`PulseReading.to_json`), {} when it did not look."""
    return dict(geo.diagnostics.get("pulses", {}))


def gain_source(geo: Geometry) -> str:
    """Where the layout's gain comes from: "given" (the caller's geometry), "pulse" (measured on the page's
    calibration pulses, `geometry.pulses`) or "assumed" (10 mm/mV: no pulse, or pulses that disagree)."""
    if geo.source == "given":
        return "given"
    return "pulse" if pulses(geo).get("gain_read") else "assumed"


def pulse_evidence(geo: Geometry) -> float:
    """1 when the gain was read from the page's calibration pulses and they are as wide as 0.2 s at the
    assumed 25 mm/s (or the geometry was given), else PULSE_UNSEEN (`ecgml.verdict`): an assumed gain is
    wrong on pages printed at 5 or 20 mm/mV, and a wider pulse says the speed may not be 25 mm/s."""
    src = gain_source(geo)
    if src == "given":
        return 1.0
    return 1.0 if src == "pulse" and speed_consistent(geo) else PULSE_UNSEEN


ROW_PULSE_MM = 3.0  # a pulse calibrates the cells whose baseline lies this close to its foot


def lead_pulse_evidence(geo: Geometry) -> dict[str, float]:
    """Per lead: `pulse_evidence` of the page, kept at 1 only for a lead whose own gain a measured pulse
    shows - a pulse on one of its rows as tall as its cell's gain (a step pulse: its left half for limb
    leads, its right half for chest leads), or, on a page of one gain, pulses on rows of both limb and
    chest leads. A mixed page whose chest rows' pulses were missed is read at 10 mm/mV throughout: its
    chest leads' gain is then not confirmed."""
    page = pulse_evidence(geo)
    leads = sorted({c.lead for c in geo.layout.cells})
    if page < 1.0 or geo.source == "given":
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


def speed_consistent(geo: Geometry) -> bool:
    """The measured pulse width fits 0.2 s at the layout's (assumed) speed (`geometry.pulses`)."""
    return bool(pulses(geo).get("speed_consistent", False))


def speed_warning(geo: Geometry) -> str:
    """The page's warning when its pulses are read but not as wide as 0.2 s at the assumed speed, else ""."""
    if gain_source(geo) != "pulse" or speed_consistent(geo):
        return ""
    w = pulses(geo).get("pulse_width_mm")
    return (
        f"calibration pulse {w} mm wide, not 0.2 s at the assumed {geo.layout.speed_mm_s:g} mm/s: the page "
        "may run at another speed (speed is not read from the page)"
    )


def gain_warning(geo: Geometry) -> str:
    """The page's warning when its gain is assumed, else ""."""
    if gain_source(geo) != "assumed":
        return ""
    why = str(pulses(geo).get("why", "no calibration pulse found"))
    return (
        f"gain not read from the page ({why}): assumed {geo.layout.gain_mm_mv:g} mm/mV; amplitudes are "
        "off by the ratio if the page was printed at another gain"
    )
