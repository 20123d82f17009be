"""Per-lead status and confidence, and the page's verdict: what the digitizer can vouch for.

A lead's confidence is meant as the probability that its output is the right lead, in the right time
window, traced right. It weighs three kinds of evidence: the trace (the extractor's per-column
confidence and the share of columns it could read), the geometry (its own confidence; a fallback page
is never trusted) and the layout (rhythm-strip identity, the 6x2 time convention, printed names), with
how many of them doubt the lead and its page, by a calibration fitted on validation pages; their raw
product, or the beats of the page's other leads, must also vouch for a lead before it is called
confident (`calibrate`). Status:
- `read`: confidence >= READ_AT;
- `uncertain`: on the page but below it;
- `unreadable`: the layout places the lead on the page but too little of it could be traced (NaN out);
- `absent`: the page does not show the lead (NaN out).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgml.records import LEADS

LIMB_LEADS = LEADS[:6]  # the leads Einthoven's and Goldberger's relations tie together

READ_AT = 0.5
MIN_READ_SHARE = 0.3  # a lead traced over less than this share of its columns is unreadable
FALLBACK_CAP = 0.3  # geometry fallback: the page position is a guess, so no lead can be confident
GEOMETRY_TRUST_AT = 0.6  # geometry confidence at and above which it does not lower a lead's
CALIBRATION = Path(__file__).resolve().parent / "weights" / "confidence.json"
# the layout factor is the weakest of its kinds (`layout_solve.lead_layout_parts`, and the printed names'):
# kept apart as well, since a misread name and limb leads off Einthoven's plane say very different things
LAYOUT_KINDS = (
    "layout_family", "layout_limb", "layout_page", "layout_timing", "layout_strip", "layout_column",
    "layout_labels",
)  # fmt: skip
# `pulse`: the page's gain and speed confirmed by a standard calibration pulse found by geometry (1), or
# assumed (PULSE_UNSEEN): a page printed at 20 mm/mV or 50 mm/s without a pulse of the standard shape passes
# every layout check and still gives every lead at 0 dB (validation pages 3x4+1R_004, 12x1_004)
PULSE_UNSEEN = 0.5
# a lead outside Einthoven's relations (a chest lead) on a page whose limb leads contradict them: the rows
# may be traced across each other (12-row pages at a 14 mm pitch, QRS crossing into the next row), which
# no chest-lead check can see; such chest leads were right on 13 of the 18 read at >= 0.8 (validation and
# test splits, session 10; validation 12x1_004 and cabrera-12x1_008: V1, V2, V4, V6 at 0.82-0.97, 0-2.5 dB)
LIMBS_OFF_CAP = 0.7
CONFIDENT = 0.8  # a lead at or above it is "confident": wrong there is the worst output (issue 14)
HELD_AT = 0.79  # the most a lead gets that the raw evidence product does not vouch for (`calibrate`)
BEATS_VOUCH: float | None = 0.95  # beat agreement at which the other leads vouch instead (None: never)
# ... for a lead only this many kinds of its evidence doubt, its trace's included (`vouch_doubts`): the
# leads two vouched for beyond one were right on 73 of 73 (validation, session 18 code; test 44 of 45),
# held at 0.79 before; the trace counts, as the raw product it stands in for is mostly the trace's
VOUCH_MAX_DOUBTS = 2
# a lead the raw product holds, but whose product is nearly there, traced over every column, on a page that
# at most one kind of evidence doubts on average (`evidence_vouches`): found among held leads on validation,
# test, outside and ecg-plot pages of session 27 (97 of 97 right), then checked on a fresh set before it was
# used (validation seed 14002, pre-registered: 51 of 51 right, where the held leads were right on 86 %)
EVIDENCE_VOUCH_RAW = 0.7
EVIDENCE_VOUCH_PAGE_DOUBTS = 1.0
# a trace that reaches the paper's top or bottom edge ran off it there: what it did beyond is not on the page,
# and the decoder, its own trace gone, may follow another row's ink (validation 3x4+1R_000 and
# cabrera-3x4+1R_000: lead II's strip 4 mV off the page's foot for 0.3 s, read as the V6 row, -2 dB at 0.98)
OFF_PAPER_MM = 0.5
# `gain_fit`: 0 where the page's gain is assumed (no pulse, no printed gain read) and its traces, read at it,
# are nearer to a heart's at twice that gain (`ecgml.gain_check`): such a lead is held, whatever vouches
# for it - beats and Einthoven's relations hold at any gain (gain-20 pages without a pulse, validation seed
# 14035: 20 leads at 0 dB given 0.8+, all held); 1 (or missing) otherwise
HOLD_CONFLICTS = 2  # this many leads whose printed names contradict the layout: held (`beyond_conflicts`)
# how many kinds of evidence doubt a lead, and how many doubt its page: one doubt alone is mostly harmless
# (validation, session 10 code: leads whose only doubt is geometry, a 6x2 column's seconds or a strip
# that matched no cell were right on 97, 90 and 98 %), several together far worse than their product
# (four doubts: 22 % right, the product said ~45 %); and a page where several printed names contradict
# the layout is in doubt as a whole, not only at those names (`doubt_evidence`)
DOUBT_AT = 0.95  # a factor below this is a doubt
DOUBT_KINDS = ("read_share", "geometry", "agreement", *LAYOUT_KINDS, "pulse")
PAGE_FEATURES = ("doubts", "page_doubts", "page_labels")  # counts and shares: enter a calibration negated
# the lead against the page's other leads (`ecgml.lead_checks`): its beats where the simultaneous leads'
# are (1 where no other lead can check it); its page's leads named aVR and V6 pointing as a heart's do
# (`page_shape`: stored for a calibration, in none yet - session 14 found no use that validation supports
# and outside pages do not pay for)
CHECK_KINDS = ("beats", "page_shape")
FEATURES = (
    "trace", "read_share", "geometry", "layout", "agreement", "raw", *LAYOUT_KINDS, "pulse", *PAGE_FEATURES,
    *CHECK_KINDS, "page_beats", "page_limbs",
)  # fmt: skip
# evidence a lead carries only where it doubts the lead: absent, it is this (`lead_report` sets `page_limbs`
# only on the other leads of a page whose limb leads are off Einthoven's plane)
FEATURE_DEFAULTS = {"page_limbs": 1.0}
TRANSFORMS = ("linear", "log")  # a calibration takes each feature as it is, or its log (factors multiply)
LOG_FLOOR = 0.01  # a factor's log is taken of at least this (a factor of 0 would be -inf)


@functools.lru_cache(maxsize=2)
def load_calibration(path: str | None = None) -> dict[str, Any] | None:
    """The logistic map from evidence to P(lead right) fitted on the benchmark's calibration set."""
    p = Path(path) if path else CALIBRATION
    if not p.exists():
        return None
    d = dict(json.loads(p.read_text()))
    feats = list(d.get("features", ()))
    ok = bool(feats) and set(feats) <= set(FEATURES) and len(d.get("weights", ())) == len(feats)
    return d if ok and d.get("transform", "linear") in TRANSFORMS else None


def has_features(parts: dict[str, float], features: list[str] | tuple[str, ...]) -> bool:
    """Whether a lead's stored evidence holds every feature a calibration takes (or its default)."""
    return all(f in parts or f in FEATURE_DEFAULTS for f in features)


def feature_values(parts: dict[str, float], features: list[str], transform: str = "linear") -> list[float]:
    """The evidence a calibration takes, in its order and transform."""

    def value(f: str) -> float:
        v = float(parts[f] if f in parts else FEATURE_DEFAULTS[f])  # KeyError: evidence missing
        if f in PAGE_FEATURES:  # more doubts, less confidence: a weight >= 0 on the negated count
            return -v
        return float(np.log(max(v, LOG_FLOOR))) if transform == "log" else v

    return [value(f) for f in features]


def doubt_evidence(parts: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per lead, from the evidence of every lead on the page: `doubts` (how many of its kinds of evidence,
    DOUBT_KINDS, are below DOUBT_AT), `page_doubts` (the mean of that over the page's leads) and
    `page_labels` and `page_conflicts` (the share and the number of the page's leads whose printed name
    contradicts the layout); with the leads' `beats`, `page_beats` (their median: rows traced from ruled
    lines, text or another page's scale do not beat together, whatever each lead's own evidence says)."""
    if not parts:
        return {}
    doubts = {k: float(sum(float(p.get(f, 1.0)) < DOUBT_AT for f in DOUBT_KINDS)) for k, p in parts.items()}
    page = float(np.mean(list(doubts.values())))
    named = [float(p.get("layout_labels", 1.0)) < DOUBT_AT for p in parts.values()]
    labels, conflicts = float(np.mean(named)), float(sum(named))
    einthoven = float(limbs_agree(parts))
    out = {
        k: {
            "doubts": doubts[k], "page_doubts": page, "page_labels": labels, "page_conflicts": conflicts,
            "page_einthoven": einthoven if k in LIMB_LEADS else 0.0,
        }
        for k in parts
    }  # fmt: skip
    if all("beats" in p for p in parts.values()):
        beats = float(np.median([float(p["beats"]) for p in parts.values()]))
        for k in out:
            out[k]["page_beats"] = beats
    return out


def limbs_agree(parts: dict[str, dict[str, float]]) -> bool:
    """Whether a page's six limb leads are all read and none is off Einthoven's and Goldberger's relations
    (`agreement`): the one check of which trace is which lead that does not come from the layout itself
    (a page without its limb leads, a 12x1-bottom or 6x1-chest page, has none)."""
    limbs = [parts[k] for k in LIMB_LEADS if k in parts]
    return len(limbs) == len(LIMB_LEADS) and all(float(p.get("agreement", 1.0)) >= DOUBT_AT for p in limbs)


def page_vouches(parts: dict[str, float]) -> bool:
    """Whether the page vouches for a limb lead the raw product or the printed names' conflicts hold: the
    page's six limb leads keep Einthoven's and Goldberger's relations (`page_einthoven`, set on limb leads
    only, `limbs_agree`), which tells which trace is which limb lead; its beats, or its page's, fall where
    the simultaneous leads' do (`beats` or `page_beats` >= BEATS_VOUCH, checked by another lead), which
    tells its seconds; and at most VOUCH_MAX_DOUBTS kinds of evidence doubt the page's leads on average
    (bent photos and unconfirmed scales weaken every check). Not chest leads: the limb leads' relations say
    nothing of them. Measured in BENCHMARKS.md (session 25, calib31)."""
    if BEATS_VOUCH is None or float(parts.get("beat_witnesses", 0.0)) < 1:
        return False
    if float(parts.get("page_einthoven", 0.0)) < 1 or float(parts.get("agreement", 1.0)) < DOUBT_AT:
        return False
    if max(float(parts.get("beats", 0.0)), float(parts.get("page_beats", 0.0))) < BEATS_VOUCH:
        return False
    return float(parts.get("page_doubts", float("inf"))) <= VOUCH_MAX_DOUBTS


def evidence_vouches(parts: dict[str, float]) -> bool:
    """Whether a lead's own evidence vouches for it although its raw product is under CONFIDENT: the
    product at EVIDENCE_VOUCH_RAW or more, every column of its cells traced (`read_share` 1), and its page
    doubted by at most EVIDENCE_VOUCH_PAGE_DOUBTS kinds of evidence on average. Held leads are right on about
    9 in 10, which HELD_AT under-states by ten points; this finds the ones right on nearly all (numbers at
    the constants)."""
    if float(parts.get("raw", 0.0)) < EVIDENCE_VOUCH_RAW or float(parts.get("read_share", 0.0)) < 0.999:
        return False
    return float(parts.get("page_doubts", float("inf"))) <= EVIDENCE_VOUCH_PAGE_DOUBTS


def calibrate(parts: dict[str, float], cal: dict[str, Any] | None, cap: bool = True) -> float:
    """P(this lead is right) from its evidence; the raw product when there is no calibration.

    A lead is confident (>= CONFIDENT) only where the raw evidence product vouches for it too: with a
    raw product below CONFIDENT it gets at most HELD_AT, else the calibrated value (above or below the
    product). Without that gate, leads the product held at 0.6-0.8 (pages printed at 20 mm/mV, gain
    assumed; a 6x2 column's seconds misjudged) rose to 0.8+ and confidently wrong leads from 0.4 to
    2.4 % on validation (test split 0.5 -> 2.0 %, session 8). Capped at the raw product instead (sessions
    8-11), the leads one mostly harmless doubt held at 0.4-0.8 were right on 9 of 10 (test split,
    session 11): the cap made every bin under 0.8 under-confident by 20-35 points. The page's other
    leads can vouch instead (`beats_vouch`): most leads the product held were right (validation, session
    13: 89 %), and those whose beats fall where the simultaneous leads' do, on a page whose leads beat
    together, were right on all but a few. `cap=False`: the calibrated value alone (to measure what the
    gate costs and saves, never shipped). A page whose printed names contradict the layout in
    HOLD_CONFLICTS leads or more holds every lead, whatever its own evidence: its layout or row order is
    in doubt, and a page read wrong all alike still beats together (session 14, with names20's name
    vote: confidently wrong leads validation 6 -> 2, test 9 -> 3, at 7-10 % of the confident right ones),
    but for the leads beyond the page's doubt (`beyond_conflicts`)."""
    raw = float(parts["raw"])
    if cal is None:
        return raw
    if any(f not in parts for f in PAGE_FEATURES) or ("beats" in parts and "page_beats" not in parts):
        # a lead alone: its page's evidence is its own
        parts = parts | doubt_evidence({"lead": parts})["lead"]
    x = feature_values(parts, list(cal["features"]), str(cal.get("transform", "linear")))
    z = float(cal["bias"]) + sum(float(w) * v for w, v in zip(cal["weights"], x, strict=True))
    p = float(1.0 / (1.0 + np.exp(-z)))
    if not cap:
        return p
    if page_vouches(parts):
        return p
    if float(parts.get("page_conflicts", 0.0)) >= HOLD_CONFLICTS and not beyond_conflicts(parts):
        return min(p, HELD_AT)
    if raw >= CONFIDENT or beats_vouch(parts) or evidence_vouches(parts):
        return p
    return min(p, HELD_AT)


def vouch_doubts(parts: dict[str, float]) -> int:
    """How many kinds of a lead's evidence doubt it (`doubt_evidence`), its trace's confidence included."""
    return int(parts.get("doubts", 0.0)) + int(float(parts.get("trace", 1.0)) < DOUBT_AT)


def beyond_conflicts(parts: dict[str, float]) -> bool:
    """Whether a lead on a page whose printed names contradict the layout (HOLD_CONFLICTS) is beyond that
    page's doubt: no kind of its own evidence doubts it (its own name agrees) but its page's pulse
    (`own_doubts`), and its beats, checked by another lead, fall where the simultaneous leads' do, or the
    page's leads beat together (`beats` or `page_beats` >= BEATS_VOUCH). Names misread are common on pages
    read right (ecg-plot pages: 13 of 30 held whole, every lead right; validation 12x1_003, 3x4_006), and
    the leads this lets through were right on 58 of 58 with the page's beats alone and no pulse doubt
    (validation, session 18 code; test 35 of 35, ecg-plot 73 of 73, outside 19 of 19); the lead's own beats
    and the pulse doubt let 42 more through, right on every one (session 19 code: validation 16, test 1,
    outside 5, ecg-plot 20). The raw product's gate still applies to them."""
    if BEATS_VOUCH is None or own_doubts(parts) > 0 or float(parts.get("beat_witnesses", 0.0)) < 1:
        return False
    return max(float(parts.get("beats", 0.0)), float(parts.get("page_beats", 0.0))) >= BEATS_VOUCH


def own_doubts(parts: dict[str, float]) -> int:
    """`vouch_doubts` but the pulse's: a page's gain or speed unconfirmed by a calibration pulse is the
    page's doubt, not the lead's, and did not mark wrong leads (confident leads whose pulse was unconfirmed:
    right on 101 of 102 on validation, 79 of 79 on test and 64 of 64 on ecg-plot pages, session 18 code)."""
    return vouch_doubts(parts) - int(float(parts.get("pulse", 1.0)) < DOUBT_AT)


def beats_vouch(parts: dict[str, float]) -> bool:
    """Whether the page's other leads vouch for a lead the raw product does not: its beats fall where
    the simultaneous leads' do (`lead_checks.beat_agreement`, checked by at least one other lead), and
    at most VOUCH_MAX_DOUBTS kinds of its evidence doubt it (validation, session 13: leads so vouched
    for with one doubt right on 134 of 134, with two on 102 of 103; beats do not see a lead traced in
    the right seconds at the wrong amplitude). Until session 20 the page's leads had to beat together as
    well (`page_beats`); a lead whose own beats agree with the others' where most do not is as sure of
    its seconds, and the leads that asked for held were right on all of them (session 19 code: validation
    19 of 19 on 10 pages, test 18 of 18 on 10, outside 2 of 2, ecg-plot 2 of 2 - on 6x2_004, whose four
    wrong chest leads stay held). Never for a lead whose `agreement` doubts it (limb leads off Einthoven's
    plane, or a lead whose cells disagree): that doubts which lead the trace is, and beats, the same on every
    lead of a page, see only when (validation cabrera-6x2_007: five limb leads of rows read in the wrong
    order, -12 to -2 dB, vouched to 0.97; such leads >= 0.8 were right on 5 of 10, validation and test). Nor
    on a page more than VOUCH_MAX_DOUBTS kinds of evidence doubt on average, as `page_vouches`: beats line up
    on a page read wrong all alike (validation seed 14002 6x2_009, a bent photo, gain unconfirmed: five limb
    leads at -2.6 dB vouched to 0.92); such leads vouched were right on 29 of 35 (83 %, session 28: validation
    22 of 22, test 7 of 8, seed 14002 0 of 5), which HELD_AT states better than 0.9."""
    if BEATS_VOUCH is None or float(parts.get("beat_witnesses", 0.0)) < 1:
        return False
    if vouch_doubts(parts) > VOUCH_MAX_DOUBTS or float(parts.get("agreement", 1.0)) < DOUBT_AT:
        return False
    if float(parts.get("page_doubts", 0.0)) > VOUCH_MAX_DOUBTS:
        return False
    return float(parts.get("beats", 0.0)) >= BEATS_VOUCH


def lead_confidence(
    parts: dict[str, float],
    cal: dict[str, Any] | None,
    fallback: bool = False,
    cap: bool = True,
    off_paper: bool = False,
) -> float:
    """A lead's confidence from its evidence (`calibrate`), at most FALLBACK_CAP where the page position is
    a guess: a geometry fallback, or a geometry factor at or below the cap (names read upside down); at
    most LIMBS_OFF_CAP for a lead outside Einthoven's relations on a page whose limb leads break them
    (`page_limbs` < 1: the page's limb leads' agreement); at most HELD_AT for a lead whose trace runs off
    the paper (`off_paper`, or its evidence's `off_paper`: its values beyond the edge are not on the page),
    or whose page's assumed gain its traces' heights do not support (`gain_fit` 0)."""
    c = calibrate(parts, cal, cap)
    if (off_paper or parts.get("off_paper", 0.0) > 0) and cap:
        c = min(c, HELD_AT)
    if parts.get("gain_fit", 1.0) < 1.0 and cap:
        c = min(c, HELD_AT)
    if fallback or parts["geometry"] <= FALLBACK_CAP:
        c = min(c, FALLBACK_CAP)
    if parts.get("page_limbs", 1.0) < 1.0:
        c = min(c, LIMBS_OFF_CAP)
    return float(np.clip(c, 0, 1))


@dataclass
class LeadReport:
    status: dict[str, str]
    confidence: dict[str, float]
    verdict: str  # "read", "uncertain", "partial" (some leads absent, the rest read), "unreadable"
    parts: dict[str, dict[str, float]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "leads": {
                lead: {
                    "status": self.status[lead],
                    "confidence": round(self.confidence[lead], 4),
                    **{k: round(v, 4) for k, v in self.parts.get(lead, {}).items()},
                }
                for lead in LEADS
            },  # fmt: skip
            "warnings": self.warnings,
        }


def geometry_factor(source: str, confidence: float) -> float:
    """How far the page position can be trusted: 0..1, at most FALLBACK_CAP for a fallback."""
    if source.startswith("fallback"):
        return FALLBACK_CAP * float(np.clip(confidence, 0, 1)) if confidence > 0 else 0.0
    if source == "given":
        return 1.0
    return float(np.clip(confidence / GEOMETRY_TRUST_AT, 0, 1))


def lead_report(
    trace_conf: dict[str, float],
    read_share: dict[str, float],
    shown: set[str],
    geo_factor: float,
    layout_factor: dict[str, float],
    agreement: dict[str, float] | None = None,
    fallback: bool = False,
    calibration: dict[str, Any] | None = None,
    layout_parts: dict[str, dict[str, float]] | None = None,
    pulse: float | dict[str, float] = 1.0,
    limbs_off: dict[str, float] | None = None,
    checks: dict[str, dict[str, float]] | None = None,
    off_paper: set[str] | None = None,
    gain_fit: dict[str, float] | None = None,
) -> LeadReport:
    """Combine the evidence per lead (calibrated, see `calibrate`). `shown`: leads the layout places on
    the page; `agreement`: per lead, < 1 where its cells disagree or the limb leads break Einthoven's
    relations (`assemble`; None: those relations were not checked, and vouch for no lead, `page_vouches`);
    `fallback`: geometry did not find the page (no lead can then be confident);
    `layout_parts`: per lead, the layout factor by kind (LAYOUT_KINDS; missing kinds count as 1);
    `pulse`: 1 when a calibration pulse confirms gain and speed, else PULSE_UNSEEN, for the page or per
    lead (evidence for the calibration only: the raw product does not take it); `limbs_off`: the limb
    leads whose readings lie off Einthoven's plane, with that share (`assemble`): the other leads then
    get `page_limbs`, the limb leads' agreement, and LIMBS_OFF_CAP; `checks`: per kind (CHECK_KINDS), per
    lead, the lead against the page's other leads (missing leads count as 1; calibration only), and
    `beat_witnesses`: how many other leads checked its beats (missing: none); `off_paper`: leads whose
    trace runs off the paper's top or bottom edge (held, `lead_confidence`); `gain_fit`: per lead, the
    page's assumed gain supported by its traces' heights or not (`ecgml.gain_check`; kept with the
    evidence, and held where 0, `lead_confidence`; None: the gain was not assumed)."""
    checked = agreement is not None  # None: Einthoven's relations not checked, so they vouch for nothing
    agreement = agreement or {}
    page_limbs = min((float(np.clip(1.0 - 2 * f, 0.0, 1.0)) for f in (limbs_off or {}).values()), default=1.0)
    status, conf, parts = {}, {}, {}
    for lead in LEADS:
        if lead not in shown:
            status[lead], conf[lead] = "absent", 0.0
            continue
        share = float(read_share.get(lead, 0.0))
        t = float(np.clip(trace_conf.get(lead, 0.0), 0, 1))
        lf = float(layout_factor.get(lead, 1.0))
        ag = float(agreement.get(lead, 1.0))
        raw = t * geo_factor * lf * ag
        parts[lead] = {"trace": t, "read_share": share, "geometry": geo_factor, "layout": lf}
        parts[lead].update(agreement=ag, raw=raw)
        kinds = (layout_parts or {}).get(lead, {})
        parts[lead].update({k: float(kinds.get(k, 1.0)) for k in LAYOUT_KINDS})
        parts[lead]["pulse"] = float(pulse.get(lead, 1.0) if isinstance(pulse, dict) else pulse)
        parts[lead].update({k: float((checks or {}).get(k, {}).get(lead, 1.0)) for k in CHECK_KINDS})
        parts[lead]["beat_witnesses"] = float((checks or {}).get("beat_witnesses", {}).get(lead, 0.0))
        if page_limbs < 1.0 and lead not in LIMB_LEADS:
            parts[lead]["page_limbs"] = page_limbs
        if lead in (off_paper or set()):  # kept with the evidence, so that a re-score holds it as this does
            parts[lead]["off_paper"] = 1.0
        if gain_fit is not None and lead in gain_fit:
            parts[lead]["gain_fit"] = float(gain_fit[lead])
    for lead, page in doubt_evidence(parts).items():
        parts[lead].update(page | ({} if checked else {"page_einthoven": 0.0}))
        if parts[lead]["read_share"] < MIN_READ_SHARE:
            status[lead], conf[lead] = "unreadable", 0.0
            continue
        conf[lead] = lead_confidence(
            parts[lead], calibration, fallback, off_paper=lead in (off_paper or set())
        )
        status[lead] = "read" if conf[lead] >= READ_AT else "uncertain"
    status = {lead: status[lead] for lead in LEADS}
    conf = {lead: conf[lead] for lead in LEADS}
    vals = set(status.values())
    on_page = [lead for lead in LEADS if status[lead] != "absent"]
    if not on_page or all(status[lead] == "unreadable" for lead in on_page):
        verdict = "unreadable"
    elif vals & {"uncertain", "unreadable"}:
        verdict = "uncertain"
    elif "absent" in vals:
        verdict = "partial"
    else:
        verdict = "read"
    warnings = []
    bad = [lead for lead in LEADS if status[lead] in ("uncertain", "unreadable")]
    if bad:
        warnings.append("uncertain or unreadable lead(s): " + ", ".join(f"{b} ({status[b]})" for b in bad))
    absent = [lead for lead in LEADS if status[lead] == "absent"]
    if absent:
        warnings.append("not on the page (absent): " + ", ".join(absent))
    if off_paper:
        warnings.append(
            "trace runs off the paper (values beyond its edge not on the page): "
            + ", ".join(lead for lead in LEADS if lead in off_paper)
        )
    if geo_factor < READ_AT:
        warnings.append(f"page position uncertain (geometry factor {geo_factor:.2f})")
    return LeadReport(status, conf, verdict, parts, warnings)
