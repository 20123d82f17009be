"""Per-lead checks against the page's other leads (`ecgml.lead_checks`): beats, Einthoven, rows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ecgml.assemble import assemble
from ecgml.layout import make_layout
from ecgml.lead_checks import beat_agreement, beat_witnesses, limb_fit, row_checks
from ecgml.records import LEADS, Record, read_wfdb, resample
from ecgml.verdict import CHECK_KINDS, lead_report
from tests.test_page_reading import traces_of

RECORDS = Path(__file__).parent.parent / "data" / "records" / "cpsc2018_challenge2020"


@pytest.fixture(scope="module")
def record() -> Record:
    return resample(read_wfdb(RECORDS / "A0010").window(0, 10), 500, 5000)


def test_a_lead_from_another_window_does_not_beat_with_the_others(record):
    sig = record.signal.astype(np.float64).copy()
    good = beat_agreement(sig, record.fs)
    assert min(good.values()) > 0.6
    j = LEADS.index("V3")
    sig[:, j] = np.roll(sig[:, j], int(0.4 * record.fs))  # V3 drawn 0.4 s late: its beats fall elsewhere
    bad = beat_agreement(sig, record.fs)
    assert bad["V3"] < good["V3"] - 0.3
    alone = np.full_like(sig, np.nan)
    alone[:, 0] = sig[:, 0]
    assert beat_agreement(alone, record.fs) == {"I": 1.0}  # nothing to check it against ...
    assert beat_witnesses(alone, record.fs) == {"I": 0.0}  # ... and said so
    assert beat_witnesses(sig, record.fs)["V3"] == 11.0


def test_a_limb_lead_off_einthovens_plane_is_the_one_named(record):
    sig = record.signal.astype(np.float64).copy()
    assert min(limb_fit(sig).values()) > 0.9
    sig[:, LEADS.index("aVL")] = record.signal[:, LEADS.index("V2")]  # aVL's cell shows V2
    fit = limb_fit(sig)
    assert fit["aVL"] < 0.5
    assert fit["aVL"] == min(fit.values())
    lay = make_layout("3x4+1R")
    asm = assemble(traces_of(record, lay), lay, 500)
    assert set(asm.limb_fit) == {"I", "II", "III", "aVR", "aVL", "aVF"}  # column mates and the II strip


def test_a_trace_along_the_neighbouring_row_is_seen_off_its_row(record):
    lay = make_layout("3x4+1R")
    traces = traces_of(record, lay)
    good = row_checks(traces, lay.cells)
    assert min(good["row_stay"].values()) > 0.9 and min(good["base_fit"].values()) > 0.8
    pitch = sorted({c.baseline_mm for c in lay.cells})
    step = pitch[1] - pitch[0]
    i = next(i for i, t in enumerate(traces) if t.lead == "V2")
    traces[i] = replace(traces[i], y_mm=traces[i].y_mm + step)  # V2 traced along the row below
    bad = row_checks(traces, lay.cells)
    assert bad["row_stay"]["V2"] < 0.2 and bad["base_fit"]["V2"] < 0.2
    y = traces[i].y_mm.copy()
    y[:40] = np.nan  # its first 10 mm not read: the cell may start elsewhere
    traces[i] = replace(traces[i], y_mm=y)
    assert row_checks(traces, lay.cells)["ends_read"]["V2"] == pytest.approx(0.01)


def test_the_checks_reach_the_evidence_and_default_to_no_doubt():
    conf = {lead: 0.95 for lead in LEADS}
    rep = lead_report(conf, conf, set(LEADS), 1.0, {}, checks={"beats": {"V3": 0.2}})
    assert rep.parts["V3"]["beats"] == 0.2
    assert all(rep.parts["I"][k] == 1.0 for k in CHECK_KINDS)


def test_the_page_beats_is_the_median_of_its_leads_and_a_lone_lead_is_its_own_page():
    from ecgml.verdict import doubt_evidence

    parts = {lead: {"beats": b} for lead, b in zip(LEADS[:3], (0.2, 0.9, 0.95), strict=True)}
    assert doubt_evidence(parts)["I"]["page_beats"] == 0.9
    assert "page_beats" not in doubt_evidence({"I": {"trace": 1.0}})["I"]  # older evidence: no beats


def test_leads_that_beat_with_the_others_pass_the_gate_the_raw_product_holds():
    from ecgml.verdict import BEATS_VOUCH, CONFIDENT, HELD_AT

    assert BEATS_VOUCH is not None
    eager = {"features": ["trace", "geometry"], "transform": "log", "bias": 6.0, "weights": [0.1, 0.1]}
    conf = {lead: 0.95 for lead in LEADS}
    beats = {lead: 1.0 for lead in LEADS} | {"V3": BEATS_VOUCH - 0.1}
    seen = {lead: 11.0 for lead in LEADS} | {"V5": 0.0}
    rep = lead_report(conf, conf, set(LEADS), 0.7, {}, None, False, eager, checks={"beats": beats})
    assert max(rep.confidence.values()) == HELD_AT  # beats that no other lead checked vouch for nothing
    checks = {"beats": beats, "beat_witnesses": seen}
    rep = lead_report(conf, conf, set(LEADS), 0.7, {}, None, False, eager, checks=checks)
    assert rep.confidence["I"] >= CONFIDENT  # raw 0.95 x 0.7, vouched for by the simultaneous leads
    assert rep.confidence["V3"] == HELD_AT  # its beats fall elsewhere
    assert rep.confidence["V5"] == HELD_AT  # no other lead shares its time
    # a lead two kinds of evidence doubt (geometry and its layout here) is not vouched for by its beats
    doubted = {lead: {"layout_family": 0.6} for lead in LEADS}
    rep = lead_report(conf, conf, set(LEADS), 0.7, {}, None, False, eager, doubted, checks=checks)
    assert rep.parts["I"]["doubts"] == 2 and rep.confidence["I"] == HELD_AT
