"""Page reading: rhythm-strip identity and the 6x2 time convention from the traces, per-lead status and
confidence (absent leads are NaN, a geometry fallback is never confident), and the submission's
estimates for what the page does not show."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ecgml.assemble import assemble, einthoven_fill
from ecgml.layout import PageLayout, make_layout
from ecgml.layout_solve import BEATS_MARGIN, BEATS_MIN_CORR, solve
from ecgml.records import LEADS, Record, read_wfdb, resample
from ecgml.trace.types import CellTrace
from ecgml.verdict import CONFIDENT, FALLBACK_CAP, HELD_AT, calibrate, geometry_factor, lead_report

RECORDS = Path(__file__).parent.parent / "data" / "records" / "cpsc2018_challenge2020"


@pytest.fixture(scope="module")
def record() -> Record:
    return resample(read_wfdb(RECORDS / "A0010").window(0, 10), 500, 5000)


def traces_of(record: Record, layout: PageLayout, drawn: PageLayout | None = None) -> list[CellTrace]:
    """Perfect cell traces of `record` as drawn on `drawn` (default `layout`), labelled as in `layout`."""
    drawn = drawn or layout
    out = []
    for c, d in zip(layout.cells, drawn.cells, strict=True):
        x = np.arange(d.x0_mm, d.x1_mm, 0.25)
        t = d.t0_s + (x - d.x0_mm) / drawn.speed_mm_s
        v = np.interp(t, np.arange(record.n_samples) / record.fs, record.signal[:, LEADS.index(d.lead)])
        y = d.baseline_mm - v * drawn.gain_mm_mv
        out.append(CellTrace(c.lead, c.row, c.col, x, y, np.ones_like(x)))
    return out


def with_strip(layout: PageLayout, lead: str) -> PageLayout:
    cells = [replace(c, lead=lead) if c.row == 3 else c for c in layout.cells]
    return replace(layout, cells=cells)


@pytest.mark.parametrize("strip", ["V1", "V5", "II"])
def test_rhythm_strip_takes_the_lead_it_matches(record, strip):
    printed = make_layout("3x4+1R")  # the template says II
    solved = solve(traces_of(record, printed, with_strip(printed, strip)), printed)
    lead = next(c.lead for c in solved.layout.cells if c.row == 3)
    assert lead == strip
    assert next(t.lead for t in solved.traces if t.row == 3) == strip
    assert solved.lead_factor["strip3"] > 0.8


def _six_by_two(simultaneous: bool) -> PageLayout:
    lay = make_layout("6x2")
    if simultaneous:
        lay = replace(lay, cells=[replace(c, t0_s=0.0, t1_s=5.0) if c.col == 1 else c for c in lay.cells])
    return lay


@pytest.mark.parametrize("simultaneous", [True, False])
def test_six_by_two_convention_from_the_beats(record, simultaneous):
    template = make_layout("6x2")  # right column 5-10 s
    drawn = _six_by_two(simultaneous)
    solved = solve(traces_of(record, template, drawn), template)
    right = [c for c in solved.layout.cells if c.col == 1]
    assert all(c.t0_s == (0.0 if simultaneous else 5.0) for c in right)
    assert solved.evidence["six_by_two"]["convention"] == ("simultaneous" if simultaneous else "sequential")
    # without a strip, simultaneous is an assumption the confidence must carry
    assert solved.lead_factor["right_column"] < (0.7 if simultaneous else 1.0)


def _beats_every(rr_s: float) -> Record:
    """Ten seconds of narrow beats every `rr_s` seconds, in every lead at its own amplitude."""
    fs = 500
    t = np.arange(10 * fs) / fs
    beats = np.arange(0.3, 10.0, rr_s)
    qrs = sum(
        np.exp(-0.5 * ((t - b) / 0.012) ** 2) - 0.4 * np.exp(-0.5 * ((t - b - 0.03) / 0.012) ** 2)
        for b in beats
    )
    return Record(np.outer(qrs, np.linspace(0.5, 1.5, 12)), fs, "beats", {})


def test_a_right_column_lining_up_far_less_than_the_left_rows_is_sequential() -> None:
    """Beats every 0.99 s: the right column's 5-10 s fall 50 ms after the left column's beats, so its
    envelopes still correlate (r ~ 0.4, above the absolute "do not line up" bound) while the left
    column's own rows line up perfectly: sequential, not "assumed" simultaneous."""
    template = make_layout("6x2")
    rec = _beats_every(0.99)
    seq = solve(traces_of(rec, template, _six_by_two(False)), template).evidence["six_by_two"]
    assert BEATS_MIN_CORR - BEATS_MARGIN <= seq["corr_simultaneous"] < BEATS_MIN_CORR + BEATS_MARGIN
    assert seq["convention"] == "sequential"
    sim = solve(traces_of(rec, template, _six_by_two(True)), template).evidence["six_by_two"]
    assert sim["convention"] == "simultaneous"


def test_assembled_six_by_two_shows_five_seconds_per_lead(record):
    template = make_layout("6x2")
    solved = solve(traces_of(record, template, _six_by_two(True)), template)
    asm = assemble(solved.traces, solved.layout, 500)
    v1 = asm.record.signal[:, LEADS.index("V1")]
    assert np.isfinite(v1[:2400]).all() and np.isnan(v1[2600:]).all()
    want = record.signal[100:2400, LEADS.index("V1")]
    assert np.corrcoef(v1[100:2400], want)[0, 1] > 0.98


def test_twelve_by_one_gives_ten_seconds_per_lead(record):
    lay = make_layout("12x1")
    asm = assemble(traces_of(record, lay), lay, 500)
    assert np.isfinite(asm.record.signal[20:4980]).all()


def test_three_by_four_without_a_strip_has_no_ten_second_lead_ii(record):
    lay = make_layout("3x4")
    asm = assemble(traces_of(record, lay), lay, 500)
    ii = asm.record.signal[:, LEADS.index("II")]
    assert np.isfinite(ii[:1240]).all() and np.isnan(ii[1260:]).all()


def test_a_strip_that_disagrees_with_its_cell_is_not_fused(record):
    lay = make_layout("3x4+1R")
    drawn = with_strip(lay, "V1")  # the layout claims II, the strip shows V1; solver not run
    asm = assemble(traces_of(record, lay, drawn), lay, 500)
    assert asm.agreement["II"] < 0.7
    assert any("not fused" in n for n in asm.notes)


def test_swapped_limb_leads_are_not_projected(record):
    lay = make_layout("3x4+1R")
    cells = []
    for c in lay.cells:  # aVL and aVF swapped: Goldberger's relations no longer hold
        cells.append(replace(c, lead={"aVL": "aVF", "aVF": "aVL"}.get(c.lead, c.lead)))
    drawn = replace(lay, cells=cells)
    asm = assemble(traces_of(record, lay, drawn), lay, 500)
    assert min(asm.agreement.get(lead, 1.0) for lead in ("aVL", "aVF")) < 0.9
    assert any("Einthoven" in n for n in asm.notes)
    clean = assemble(traces_of(record, lay), lay, 500)
    assert not any("Einthoven" in n for n in clean.notes)


def test_status_absent_unreadable_and_fallback_caps():
    shown = set(LEADS[:6])
    conf = {lead: 0.95 for lead in LEADS}
    share = {lead: 1.0 for lead in LEADS} | {"aVF": 0.1}
    rep = lead_report(conf, share, shown, geometry_factor("estimated", 0.9), {})
    assert rep.status["V1"] == "absent" and rep.confidence["V1"] == 0.0
    assert rep.status["aVF"] == "unreadable" and rep.status["I"] == "read"
    assert rep.verdict == "uncertain"
    fb = lead_report(conf, share, shown, geometry_factor("fallback: no ECG grid found", 1.0), {})
    assert max(fb.confidence.values()) <= FALLBACK_CAP
    assert all(fb.status[lead] != "read" for lead in LEADS)
    assert any("page position" in w for w in fb.warnings)
    # a calibration that trusts every other factor cannot lift a fallback page, nor a page whose position
    # is as doubtful (geometry factor at or below the cap, e.g. its names read upside down)
    eager = {"features": ["trace", "geometry"], "transform": "log", "bias": 6.0, "weights": [0.1, 0.1]}
    fb_geo = geometry_factor("fallback: no ECG grid found", 1.0)
    fb = lead_report(conf, share, shown, fb_geo, {}, None, True, eager)
    assert max(fb.confidence.values()) <= FALLBACK_CAP
    low = lead_report(conf, share, shown, FALLBACK_CAP, {}, None, False, eager)
    assert max(low.confidence.values()) <= FALLBACK_CAP
    # where the raw evidence product vouches for a lead (0.95 trace x 0.9 geometry >= CONFIDENT) it gets the
    # calibrated value; where it does not (x 0.7 geometry), it is held below CONFIDENT
    sure_parts = {"trace": 0.95, "geometry": 0.9, "raw": 0.95 * 0.9}
    sure = lead_report(conf, share, shown, 0.9, {}, None, False, eager).confidence
    assert max(sure.values()) == pytest.approx(calibrate(sure_parts, eager))
    assert max(sure.values()) > 0.95 * 0.9
    held = lead_report(conf, share, shown, 0.7, {}, None, False, eager).confidence
    lifted = calibrate(sure_parts | {"geometry": 0.7}, eager, cap=False)
    assert max(held.values()) == HELD_AT < CONFIDENT < lifted


def test_chest_leads_of_a_page_whose_limb_leads_break_einthoven_are_not_vouched_for():
    """Limb leads off Einthoven's plane say the page's rows may be traced across each other: its chest
    leads, which no relation checks, are capped at LIMBS_OFF_CAP (kept through a re-score of the stored
    evidence); limb leads keep their own agreement factor; a page whose limb leads agree is untouched."""
    from ecgml.layout_bench import PageResult, recalibrated
    from ecgml.verdict import LIMBS_OFF_CAP

    conf = {lead: 0.97 for lead in LEADS}
    agree = {lead: 0.3 for lead in ("II", "aVF")}
    rep = lead_report(conf, conf, set(LEADS), 1.0, {}, agree, limbs_off={"II": 0.4, "aVF": 0.3})
    assert all(rep.confidence[v] <= LIMBS_OFF_CAP for v in LEADS[6:])
    assert rep.parts["V1"]["page_limbs"] == pytest.approx(0.2) and "page_limbs" not in rep.parts["I"]
    assert rep.confidence["I"] == pytest.approx(0.97) and rep.confidence["II"] == pytest.approx(0.97 * 0.3)
    fine = lead_report(conf, conf, set(LEADS), 1.0, {}, limbs_off={})
    assert min(fine.confidence.values()) == pytest.approx(0.97)
    page = PageResult("p", "12x1", {}, dict(rep.confidence), dict(rep.status), rep.verdict, True, 1.0,
                      parts=rep.parts)  # fmt: skip
    again = recalibrated([page], None)[0]
    assert all(again.lead_conf[v] <= LIMBS_OFF_CAP for v in LEADS[6:])


def test_submission_estimates_lead_ii_from_the_augmented_leads(record):
    lay = make_layout("3x4")  # II shown 0-2.5 s only; aVL and aVF 2.5-5 s
    asm = assemble(traces_of(record, lay), lay, 500, einthoven=False, smooth_hz=0.0)
    filled, n = einthoven_fill(asm.record.signal)
    j = LEADS.index("II")
    assert n["II"] > 1000
    seg = slice(1300, 2450)
    got, want = filled[seg, j], record.signal[seg, j]
    assert np.corrcoef(got, want)[0, 1] > 0.98
    assert np.isnan(filled[3000:, j]).all()  # nothing shows II's limb plane after 5 s


def test_digitize_json_gives_status_windows_and_verdict(record, tmp_path):
    import json

    from ecgml.digitize import classical_digitizer, write_outputs
    from ecgml.render.presets import render

    img = render(record, "0001", 5, layout="3x4").image
    res = classical_digitizer().digitize_image(img, 500, tmp_path / "p.png")
    paths = write_outputs(res, img, tmp_path, "p")
    meta = json.loads(paths["json"].read_text())
    assert meta["verdict"] in ("read", "uncertain", "partial")
    assert meta["layout"]["name"] == "3x4"
    assert meta["leads"]["II"]["windows_s"] == [[0.0, 2.5]]  # no rhythm strip: no 10 s lead II
    assert meta["leads"]["II"]["status"] in ("read", "uncertain")
    assert set(meta["leads"]) == set(LEADS)
    from ecgml.digitize import STATUS_COLOURS, draw_overlay

    ov = draw_overlay(img, res)  # each cell named with its confidence, coloured by status
    colour = np.array(STATUS_COLOURS[meta["leads"]["I"]["status"]], np.uint8)
    assert (ov == colour).all(axis=2).sum() > 20
    segs, note = res.submission_segments()
    assert all(np.isfinite(segs[lead]).all() for lead in LEADS)
    assert "II" in note  # the seconds of II not on the page are said to be estimated


def test_six_by_two_with_a_strip_is_decided_by_the_strip(record):
    template = make_layout("6x2+1R")
    for simultaneous in (True, False):
        drawn = replace(
            template,
            cells=[
                replace(c, t0_s=0.0, t1_s=5.0) if c.col == 1 and simultaneous else c for c in template.cells
            ],
        )
        solved = solve(traces_of(record, template, drawn), template)
        ev = solved.evidence["six_by_two"]
        assert ev["decided_by"] == "rhythm strip"
        assert ev["convention"] == ("simultaneous" if simultaneous else "sequential")


def test_cells_in_the_wrong_seconds_lose_confidence(record):
    lay = make_layout("3x4+1R")
    good = solve(traces_of(record, lay), lay)
    assert min(good.lead_factor[k] for k in good.lead_factor if k.startswith("timing")) > 0.9
    # the grid drawn one column later than the layout says (a misregistered page)
    drawn = replace(
        lay,
        cells=[
            replace(c, t0_s=(c.t0_s + 2.5) % 10, t1_s=(c.t0_s + 2.5) % 10 + 2.5) if c.row < 3 else c
            for c in lay.cells
        ],
    )
    bad = solve(traces_of(record, lay, drawn), lay)
    timing = [bad.lead_factor[k] for k in bad.lead_factor if k.startswith("timing")]
    assert sum(f < 0.5 for f in timing) >= 3


def test_geometry_recognises_a_six_by_two_page_with_a_strip(record):
    from ecgml.geometry import estimate_page
    from ecgml.render.presets import render

    img = render(record, "0001", 7, layout="6x2+1R").image
    assert estimate_page(img).layout.name == "6x2+1R"


def test_a_700_px_wide_page_and_a_strip_of_it_are_read_and_a_sparser_one_refused(record, tmp_path):
    """Issue 14 item 5: one minimum, in px per mm of paper (what the grid fit measures), not in pixels:
    a 700 px wide page (2.5 px/mm) and a 185 px tall strip cut from it are read; the page at 440 px
    (1.6 px/mm) is refused by geometry and by `ecgml digitize`, naming the file, never guessed flat."""
    import cv2
    from typer.testing import CliRunner

    from ecgml.cli import app
    from ecgml.digitize import load_digitizer, load_image
    from ecgml.errors import ImageTooSmall
    from ecgml.geometry import estimate_page
    from ecgml.images import MIN_PX_PER_MM, MIN_SIDE_PX
    from ecgml.layout_bench import lead_snr_db
    from ecgml.render.page import plotted_mask
    from ecgml.render.presets import render

    out = render(record, "0001", 3)
    h = int(round(out.image.shape[0] * 700 / out.image.shape[1]))
    small = cv2.resize(out.image, (700, h), interpolation=cv2.INTER_AREA)  # ~2.5 px/mm
    res = load_digitizer(None).digitize_image(small, 500, "small.png")
    assert res.geometry.source == "estimated" and res.geometry.layout.name == "3x4+1R"
    mask = plotted_mask(out.layout, 500, 5000)
    for j, lead in enumerate(LEADS):
        truth = np.where(mask[:, j], record.signal[:, j], np.nan)
        assert lead_snr_db(truth, res.record.signal[:, j], 500) > 3.0, lead
    # rows 1-2 only: under the old 400 px floor, yet at the page's density
    ppm = 700 / out.layout.paper_mm[0]
    base = out.layout.row_baselines()
    strip = small[int((base[0] - 20) * ppm) : int((base[1] + 18) * ppm)]
    assert MIN_SIDE_PX <= strip.shape[0] < 400
    est = estimate_page(strip, "strip.png")
    assert est.px_per_mm == pytest.approx((ppm, ppm), rel=0.01) and est.diagnostics["rows"] == 2
    sparse = cv2.resize(out.image, (440, 340), interpolation=cv2.INTER_AREA)  # 1.6 px/mm
    assert 440 / out.layout.paper_mm[0] < MIN_PX_PER_MM
    path = tmp_path / "sparse.png"
    cv2.imwrite(str(path), cv2.cvtColor(sparse, cv2.COLOR_RGB2BGR))
    loaded = load_image(path)  # the loader's floor is one lead row at the minimum density, not a page
    with pytest.raises(ImageTooSmall, match=r"too small \(its grid measures 1\.[56]\d px/mm\)") as exc:
        estimate_page(loaded, path)
    assert "sparse.png" in str(exc.value)
    cli = CliRunner().invoke(app, ["digitize", str(path), "--out", str(tmp_path / "o")])
    assert cli.exit_code == 1 and "sparse.png" in cli.output and "px/mm" in cli.output
    assert "Traceback" not in cli.output


def test_confidence_calibration_fits_the_evidence_and_keeps_the_fallback_cap(tmp_path):
    import json

    from ecgml.layout_bench import CAL_FEATURES, PageResult, fit_calibration, recalibrated, reliability
    from ecgml.verdict import CHECK_KINDS, LAYOUT_KINDS, load_calibration

    rng = np.random.default_rng(0)
    pages = []
    for k in range(40):
        right = rng.random() < 0.6
        geo = 0.99 if right else 0.4
        parts = {
            lead: {
                "trace": 1.0,
                "read_share": 1.0,
                "geometry": geo,
                "layout": 1.0,
                "agreement": 1.0,
                "raw": geo,
            }
            | dict.fromkeys((*LAYOUT_KINDS, "pulse", *CHECK_KINDS), 1.0)
            for lead in LEADS
        }
        dbs = {lead: (15.0 if right else -2.0) for lead in LEADS}
        conf, stat = {x: 0.9 for x in LEADS}, {x: "read" for x in LEADS}
        pages.append(PageResult(f"p{k}", "f", dbs, conf, stat, "read", True, 1.0, parts=parts))
    cal = fit_calibration(pages)
    assert cal["features"] == list(CAL_FEATURES) and cal["transform"] == "log"
    base = pages[0].parts["I"]
    good, bad = base | {"geometry": 0.99, "raw": 0.99}, base | {"geometry": 0.4, "raw": 0.4}
    assert calibrate(good, cal) > 0.9 and calibrate(bad, cal) < 0.1
    # a lead the raw evidence product does not vouch for (< CONFIDENT) is held below it, whatever the
    # calibration says; one it vouches for gets the calibrated value, above or below the product
    assert calibrate(good | {"raw": 0.6}, cal) == HELD_AT < CONFIDENT
    assert calibrate(good | {"raw": 0.8}, cal) == calibrate(good, cal) > 0.9
    assert calibrate(bad | {"raw": 0.9}, cal) == calibrate(bad, cal) < 0.1
    table = reliability(recalibrated(pages, cal))
    assert all(abs(r["predicted"] - r["observed"]) < 0.1 for r in table if r["leads"])
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(cal))
    assert load_calibration(str(path)) == cal
    path.write_text(json.dumps(cal | {"features": ["trace", "pulse", "x", "y", "z"]}))
    assert load_calibration.__wrapped__(str(path)) is None  # evidence the digitizer does not give: not used
    fallback = [
        PageResult(**{**p.__dict__, "parts": {k: v | {"geometry": 0.2} for k, v in p.parts.items()}})
        for p in pages
    ]
    assert max(c for p in recalibrated(fallback, cal) for c in p.lead_conf.values()) <= 0.3


def test_calibration_takes_the_page_limb_doubt_and_reads_it_absent_as_none():
    """`page_limbs` (the page's limb leads off Einthoven's plane) is stored only on the other leads of such
    pages; a calibration fitted on it lowers those leads, and a lead without it is read as undoubted."""
    from ecgml.layout_bench import PageResult, fit_calibration
    from ecgml.verdict import CHECK_KINDS, LAYOUT_KINDS, feature_values

    rng = np.random.default_rng(1)
    pages = []
    for k in range(60):
        right = rng.random() < 0.6
        base = {"trace": 1.0, "read_share": 1.0, "geometry": 1.0, "layout": 1.0, "agreement": 1.0, "raw": 1.0}
        base |= dict.fromkeys((*LAYOUT_KINDS, "pulse", *CHECK_KINDS), 1.0)
        parts = {lead: dict(base) if right else base | {"page_limbs": 0.1} for lead in LEADS[6:]}
        dbs = {lead: (15.0 if right else -2.0) for lead in LEADS[6:]}
        conf, stat = dict.fromkeys(dbs, 0.9), dict.fromkeys(dbs, "read")
        pages.append(PageResult(f"p{k}", "f", dbs, conf, stat, "read", True, 1.0, parts=parts))
    cal = fit_calibration(pages)
    assert cal["weights"][cal["features"].index("page_limbs")] > 0
    lead = pages[0].parts["V1"] | {"doubts": 0.0, "page_doubts": 0.0, "page_labels": 0.0, "page_beats": 1.0}
    lead.pop("page_limbs", None)
    assert feature_values(lead, ["page_limbs"], "log") == [0.0]  # absent: no doubt (log 1)
    assert calibrate(lead | {"page_limbs": 0.1}, cal) < 0.5 < calibrate(lead, cal)


def test_pulse_evidence_says_whether_the_gain_was_read_from_the_pulses():
    from ecgml.digitize import Geometry
    from ecgml.page import PageMap
    from ecgml.page_calibration import pulse_evidence
    from ecgml.verdict import PULSE_UNSEEN

    lay = make_layout("3x4+1R")
    pm = PageMap(np.eye(3), (1000, 800), lay.paper_mm)
    read = {"pulse_rows": 4, "pulses": {"gain_read": True, "gain_mm_mv": 20.0, "speed_consistent": True}}
    assert pulse_evidence(Geometry(pm, lay, 0.9, "estimated", read)) == 1.0
    # gain read, but a pulse 20 mm wide (0.4 s at 50 mm/s) leaves the assumed 25 mm/s unconfirmed
    wide = {"pulse_rows": 4, "pulses": {"gain_read": True, "gain_mm_mv": 10.0, "speed_consistent": False}}
    assert pulse_evidence(Geometry(pm, lay, 0.9, "estimated", wide)) == PULSE_UNSEEN
    # pulse-like marks whose heights did not give a gain: the gain is assumed
    unread = {"pulse_rows": 4, "pulses": {"gain_read": False, "why": "pulses disagree"}}
    assert pulse_evidence(Geometry(pm, lay, 0.9, "estimated", unread)) == PULSE_UNSEEN
    assert pulse_evidence(Geometry(pm, lay, 0.9, "estimated", {"pulse_rows": 0})) == PULSE_UNSEEN
    assert pulse_evidence(Geometry(pm, lay, 0.2, "fallback: no ECG grid found", {})) == PULSE_UNSEEN
    assert pulse_evidence(Geometry(pm, lay, 1.0, "given")) == 1.0
    conf = {lead: 0.95 for lead in LEADS}
    rep = lead_report(conf, conf, set(LEADS), 1.0, {}, pulse=PULSE_UNSEEN)
    assert rep.parts["I"]["pulse"] == PULSE_UNSEEN and rep.parts["I"]["raw"] == pytest.approx(0.95)


def test_the_doubt_evidence_counts_each_leads_doubts_and_the_pages_name_conflicts():
    """A lead's doubts are its kinds of evidence below DOUBT_AT (not its trace); the page's are their mean
    and the share of its leads whose printed name contradicts the layout. The digitizer's report and a
    re-score of stored results without them (older code) give the same values."""
    from ecgml.layout_bench import PageResult, recalibrated, with_doubts
    from ecgml.verdict import DOUBT_AT, doubt_evidence, load_calibration

    conf = {lead: 0.97 for lead in LEADS}
    parts = {lead: {"layout_labels": 1.0} for lead in LEADS}
    parts["I"] |= {"geometry": DOUBT_AT - 0.01, "pulse": 0.5, "trace": 0.1}
    parts["V1"] |= {"layout_labels": 0.2}
    parts["V2"] |= {"layout_labels": 0.2, "read_share": DOUBT_AT}  # at DOUBT_AT: no doubt
    ev = doubt_evidence(parts)
    assert ev["I"]["doubts"] == 2 and ev["V1"]["doubts"] == 1 and ev["V2"]["doubts"] == 1
    assert ev["II"]["doubts"] == 0 and ev["II"]["page_doubts"] == pytest.approx(4 / 12)
    assert ev["II"]["page_labels"] == pytest.approx(2 / 12)
    labels = {lead: {"layout_labels": 0.2} for lead in ("V1", "V2", "V3")}
    rep = lead_report(conf, conf, set(LEADS), 1.0, {}, {}, layout_parts=labels, pulse={"I": 0.5})
    assert rep.parts["I"]["doubts"] == 1 and rep.parts["V1"]["doubts"] == 1
    assert rep.parts["II"]["page_labels"] == pytest.approx(0.25)
    stored = {lead: {k: v for k, v in d.items() if k not in ev["I"]} for lead, d in rep.parts.items()}
    assert with_doubts(stored) == rep.parts
    page = PageResult("p", "12x1", dict.fromkeys(LEADS, 10.0), dict(rep.confidence), dict(rep.status),
                      rep.verdict, True, 1.0, parts=stored)  # fmt: skip
    cal = load_calibration()
    again = recalibrated([page], cal)[0]
    shipped = lead_report(conf, conf, set(LEADS), 1.0, {}, {}, False, cal, labels, {"I": 0.5})
    assert again.lead_conf == pytest.approx(shipped.confidence)


def test_the_calibration_weighs_each_factor_by_what_it_says():
    """A factor that is low on pages whose leads are right anyway (a cap that says little) makes the raw
    product under-confident; the fit on the factors' logs, each kind of layout evidence apart, gives
    those leads what is observed."""
    from ecgml.layout_bench import PageResult, fit_calibration, recalibrated, reliability
    from ecgml.verdict import CHECK_KINDS, LAYOUT_KINDS

    rng = np.random.default_rng(1)
    pages = []
    for k in range(200):
        names = 0.6 if k % 2 else 1.0  # a printed name's doubt that says nothing: right as often either way
        geo = 1.0 if rng.random() < 0.8 else 0.3
        right = rng.random() < (0.95 if geo == 1.0 else 0.2)
        part = {"trace": 0.95, "read_share": 1.0, "geometry": geo, "layout": names, "agreement": 1.0}
        part |= dict.fromkeys((*LAYOUT_KINDS, "pulse", *CHECK_KINDS), 1.0) | {"layout_labels": names}
        part["raw"] = 0.95 * geo * names
        parts = {"I": dict(part)}
        pages.append(PageResult(f"p{k}", "f", {"I": 15.0 if right else -2.0}, {"I": part["raw"]},
                                {"I": "read"}, "read", True, 1.0, parts=parts))  # fmt: skip
    raw = reliability(recalibrated(pages, None))
    mid = next(r for r in raw if r["lo"] == 0.4)
    assert mid["observed"] - mid["predicted"] > 0.3  # layout 0.6 x 0.95: 0.57 predicted, ~0.95 right
    cal = fit_calibration(pages)
    w = dict(zip(cal["features"], cal["weights"], strict=True))
    assert w["layout_labels"] < 0.5 * w["geometry"]
    table = reliability(recalibrated(pages, cal))
    # capped at the raw product (`calibrate`): never over-confident, and the doubtful-geometry leads
    # (0.3 x 0.95, right 1 in 5) are brought down to what is observed
    assert all(r["predicted"] - r["observed"] < 0.08 for r in table if r["leads"] >= 20)
    doubt = [
        (q.lead_conf["I"], q.lead_db["I"] >= 3)
        for q in recalibrated(pages, cal)
        if q.parts["I"]["geometry"] < 1
    ]
    assert len(doubt) >= 20 and abs(np.mean([c for c, _ in doubt]) - np.mean([ok for _, ok in doubt])) < 0.08


def test_strips_that_match_no_cell_put_the_whole_layout_in_doubt(record):
    from ecgml.layout_solve import PAGE_DOUBT, lead_layout_factor, lead_layout_parts

    # a 6x2 page (both columns 0-5 s) read through the six-row 3x4+3R template: every template cell
    # holds part of a row "left lead | right lead"; the template's "strips" are rows 4-6
    template = make_layout("3x4+3R")
    rows = [("I", "V1"), ("II", "V2"), ("III", "V3"), ("aVR", "V4"), ("aVL", "V5"), ("aVF", "V6")]
    x_start = min(c.x0_mm for c in template.cells)
    half = (x_start + max(c.x1_mm for c in template.cells)) / 2
    ts = np.arange(record.n_samples) / record.fs
    traces = []
    for c in template.cells:
        left, right = rows[c.row]
        x = np.arange(c.x0_mm, c.x1_mm, 0.25)
        t = np.where(x < half, x - x_start, x - half) / template.speed_mm_s
        v = np.where(
            x < half,
            np.interp(t, ts, record.signal[:, LEADS.index(left)]),
            np.interp(t, ts, record.signal[:, LEADS.index(right)]),
        )
        traces.append(CellTrace(c.lead, c.row, c.col, x, c.baseline_mm - v * 10.0, np.ones_like(x)))
    solved = solve(traces, template)
    assert [c.lead for c in solved.layout.cells if c.row >= 3] == ["II", "V1", "V5"]  # not relabelled
    assert solved.lead_factor.get("page") == PAGE_DOUBT
    assert all(lead_layout_factor(solved, lead) <= PAGE_DOUBT for lead in LEADS)
    kinds = lead_layout_parts(solved, "V4")  # the doubt is the page's, kept apart from the other kinds
    assert kinds["page"] == PAGE_DOUBT and min(kinds.values()) == lead_layout_factor(solved, "V4")


def test_a_strip_that_is_its_template_lead_with_a_close_neighbour_leaves_the_layout_in_no_doubt(record):
    """A V5 strip whose trace matches V5 best and V4 nearly as well: V5 kept, no page doubt (the rule
    above is for strips that match no cell)."""
    from ecgml.layout_solve import lead_layout_factor

    template = make_layout("3x4+3R")
    ts = np.arange(record.n_samples) / record.fs
    rng = np.random.default_rng(3)
    v5 = record.signal[:, LEADS.index("V5")]
    sd = float(np.std(v5))
    data = {lead: record.signal[:, LEADS.index(lead)] for lead in LEADS}
    data["V4"] = v5 + 0.15 * sd * rng.standard_normal(v5.size)  # a neighbour nearly the same
    traces = []
    for c in template.cells:
        x = np.arange(c.x0_mm, c.x1_mm, 0.25)
        v = np.interp(c.t0_s + (x - c.x0_mm) / template.speed_mm_s, ts, data[c.lead])
        if c.row == 5:
            v = v + 0.1 * sd * rng.standard_normal(v.size)
        traces.append(CellTrace(c.lead, c.row, c.col, x, c.baseline_mm - v * 10.0, np.ones_like(x)))
    solved = solve(traces, template)
    ev = solved.evidence["strip_row5"]
    assert ev["lead"] == "V5" and ev["distance_ratio"] < 2.0 and ev["corr"] >= 0.9  # not sure of its lead
    assert next(c.lead for c in solved.layout.cells if c.row == 5) == "V5"
    assert "page" not in solved.lead_factor
    assert lead_layout_factor(solved, "I") == 1.0


def test_web_copy_is_a_small_jpeg_of_the_same_page(tmp_path: Path) -> None:
    """The outside pages' web copies keep the page's aspect and content at the asked width."""
    import cv2

    from ecgml.layout_bench import web_copy

    page = np.full((170, 220, 3), 255, np.uint8)
    page[80:90, :] = 0  # a dark band: must survive the downscale at the same relative place
    src = tmp_path / "page.png"
    cv2.imwrite(str(src), page)
    out = web_copy(src, tmp_path / "web", 110, 60)
    img = cv2.imread(str(out))
    assert out.suffix == ".jpg" and img.shape == (85, 110, 3)
    rows = img.mean(axis=(1, 2))
    assert rows[40:45].max() < 60 and rows[:30].min() > 200
    with pytest.raises(ValueError, match="width"):
        web_copy(src, tmp_path / "web", 500, 60)


def test_a_page_whose_printed_names_contradict_the_layout_in_several_leads_holds_every_lead():
    """Two leads whose printed names are other leads put the page's layout in doubt: every lead is held
    below CONFIDENT, however sure its own evidence (one alone may be the reader's error: it holds nothing)."""
    from ecgml.verdict import BEATS_VOUCH, HOLD_CONFLICTS, PULSE_UNSEEN, load_calibration

    assert BEATS_VOUCH is not None
    conf = {lead: 0.99 for lead in LEADS}
    cal = load_calibration()
    one = lead_report(conf, conf, set(LEADS), 1.0, {}, None, False, cal, {"V1": {"layout_labels": 0.2}})
    assert min(one.confidence.values()) >= CONFIDENT  # one conflict alone does not hold the page
    many = {lead: {"layout_labels": 0.2} for lead in LEADS[6 : 6 + HOLD_CONFLICTS]}
    rep = lead_report(conf, conf, set(LEADS), 1.0, {}, None, False, cal, many)
    assert rep.parts["II"]["page_conflicts"] == HOLD_CONFLICTS
    assert max(rep.confidence.values()) <= HELD_AT < CONFIDENT
    # the same page whose leads beat together: a lead nothing of its own doubts is beyond the page's doubt,
    # the leads whose names contradict the layout (and those whose beats are not checked) stay held
    beats = {lead: 0.99 for lead in LEADS}
    checks = {"beats": beats, "beat_witnesses": {lead: 5.0 for lead in LEADS}}
    rep = lead_report(conf, conf, set(LEADS), 1.0, {}, None, False, cal, many, checks=checks)
    assert rep.parts["II"]["page_beats"] >= BEATS_VOUCH and rep.confidence["II"] >= CONFIDENT
    assert all(rep.confidence[lead] <= HELD_AT for lead in many)
    apart = {"beats": {lead: 0.5 for lead in LEADS}, "beat_witnesses": checks["beat_witnesses"]}
    rep = lead_report(conf, conf, set(LEADS), 1.0, {}, None, False, cal, many, checks=apart)
    assert max(rep.confidence.values()) <= HELD_AT  # leads that do not beat together: all held
    # a lead whose own beats fall where the others' do is beyond the page's doubt even where the page's
    # leads do not beat together; an unconfirmed pulse (the page's gain) is no doubt of its own, any other is
    own = {"beats": {lead: (0.99 if lead in ("II", "III") else 0.5) for lead in LEADS}}
    own["beat_witnesses"] = checks["beat_witnesses"]
    rep = lead_report(conf, conf, set(LEADS), 1.0, {}, None, False, cal, many, PULSE_UNSEEN, checks=own)
    assert rep.parts["II"]["page_beats"] < BEATS_VOUCH and rep.parts["II"]["pulse"] == PULSE_UNSEEN
    assert rep.confidence["II"] >= CONFIDENT and rep.confidence["III"] >= CONFIDENT
    assert max(rep.confidence[lead] for lead in LEADS if lead not in ("II", "III")) <= HELD_AT
    timing = {lead: {"layout_timing": 0.5} for lead in ("III",)} | many
    rep = lead_report(conf, conf, set(LEADS), 1.0, {}, None, False, cal, timing, PULSE_UNSEEN, checks=own)
    assert rep.confidence["II"] >= CONFIDENT and rep.confidence["III"] <= HELD_AT


def test_the_reliability_table_says_how_far_its_pages_let_a_bin_be_judged():
    """Leads of a page are right or wrong together: a bin filled by a few pages read right or wrong whole
    is far less certain than its lead count says. The interval over resampled pages is wide for such a bin
    and narrow where the same share of right leads is spread over many pages; both hold the estimate."""
    from ecgml.layout_bench import PageResult, reliability

    def page(k: int, right: list[bool]) -> PageResult:
        dbs = {x: (15.0 if ok else -2.0) for x, ok in zip(LEADS, right, strict=True)}
        return PageResult(
            f"p{k}", "f", dbs, dict.fromkeys(dbs, 0.5), dict.fromkeys(dbs, "read"), "read", True, 1.0
        )

    rng = np.random.default_rng(3)
    whole = [page(k, [k % 2 == 0] * 12) for k in range(16)]  # 8 pages all right, 8 all wrong
    spread = [page(k, list(rng.permutation([True] * 6 + [False] * 6))) for k in range(16)]
    (a,), (b,) = ([r for r in reliability(ps) if r["leads"]] for ps in (whole, spread))
    assert a["leads"] == b["leads"] == 192 and a["pages"] == b["pages"] == 16
    assert a["observed"] == b["observed"] == 0.5 and a["predicted"] == b["predicted"] == 0.5
    assert a["gap_lo"] < 0 < a["gap_hi"] and b["gap_lo"] <= 0 <= b["gap_hi"]
    assert a["gap_hi"] - a["gap_lo"] > 0.25 > 5 * (b["gap_hi"] - b["gap_lo"])


def test_a_cell_cut_to_one_sample_has_no_beat_envelope() -> None:
    """A cell cut to one sample at the page's edge (test realworld 6x2-seq_001) gives no slope: its
    envelope is NaN (no beat evidence), not a crash of the whole page in the timing check."""
    from ecgml.layout_solve import _envelope

    for v in (np.array([0.3]), np.array([], dtype=np.float64)):
        env = _envelope(v)
        assert env.shape == v.shape and not np.isfinite(env).any()
    assert np.isfinite(_envelope(np.sin(np.linspace(0, 6, 50)))).all()
