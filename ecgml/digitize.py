"""Image file in, 12-lead record out: load and validate, page geometry, canonical page, trace extractor,
assembly; and the writers (CSV, WFDB, JSON, overlay PNG) and the batch `submit` over a competition
test folder.

A `Digitizer` is built from a model spec (`load_digitizer`): a weights file, a model folder,
`classical`, `seed[:PATH]`, or nothing (the shipped trace weights if present, else the classical
extractor). Geometry is `ecgml.geometry.estimate_page`; when it cannot find the page, the digitizer
falls back to an upright flat page filling the image (`flat_page_estimate`) and says so.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ecgml.assemble import (
    Assembly,
    assemble,
    assemble_repaired,
    competition_segments,
    einthoven_fill,
    fallback_segments,
)
from ecgml.atomic import atomic_path
from ecgml.ecg_page import PageEvidence, ink_curves, not_an_ecg_page, page_evidence, unread_ecg_reason
from ecgml.errors import GRID_NO_ROWS, EcgmlError, ImageTooSmall
from ecgml.footer_reader import FOOT_PPM, load_footer_reader, read_footer
from ecgml.gain_check import gain_offset, supports_gain, trace_log_spans
from ecgml.geometry.canonical import CanonicalPage, canonical_page
from ecgml.geometry.orient import AXIS_SURE
from ecgml.images import load_image
from ecgml.label_grid import (
    NameGrid,
    cuts_from_names,
    label_offsets,
    lattice_names,
    layout_from_names,
    lost_rows,
    name_maps,
    names_off_cells,
    read_grid,
    recut,
)
from ecgml.layout import LETTER_MM, PageLayout, lead_window, make_layout, with_gain, with_speed
from ecgml.layout_family import name_score, row_frame, tick_strength
from ecgml.layout_solve import Solved, lead_layout_parts, rhythm_rows
from ecgml.layout_solve import solve as solve_layout
from ecgml.lead_checks import beat_agreement, beat_witnesses, page_shape
from ecgml.page import PageMap
from ecgml.page_calibration import (
    calibration,
    gain_source,
    gain_warning,
    lead_pulse_evidence,
    pulses,
    read_calibration,
    speed_doubt,
    speed_source,
    speed_warning,
)
from ecgml.page_reader import (
    READ_PPM,
    UPSIDE_DOWN_AT,
    LabelReading,
    apply_labels,
    conflicts,
    label_factors,
    load_reader,
    names_beside,
    page_ink,
    read_labels,
)
from ecgml.records import LEADS, Record, record_name, write_csv, write_wfdb
from ecgml.trace.edges import cut_leads, unread_borrowed
from ecgml.trace.grid_timing import Bands, correct_x
from ecgml.trace.shared_ink import unrepaired
from ecgml.trace.types import CellTrace, TraceExtractor
from ecgml.verdict import LeadReport, geometry_factor, lead_report, load_calibration

log = logging.getLogger(__name__)

DEFAULT_FS = 500
CANONICAL_PX_PER_MM = (16.0, 8.0)  # x finer than the ~7.9 px/mm of a 200 DPI page (PRIOR-ART.md 2.3)
MIN_READ_FRACTION = 0.05  # below this share of readable columns, "not an ECG page: no trace found"
OVERLAY_LONG_SIDE = 2400  # overlays of large photos are written at most this size
ROW_COLOURS = [(0, 170, 255), (0, 200, 0), (255, 0, 200), (0, 90, 255), (200, 120, 0), (120, 0, 255)]


# ---------------------------------------------------------------------------------------- loading


# --------------------------------------------------------------------------------------- geometry


@dataclass
class Geometry:
    """What the digitizer uses of a page estimate (geometry's `PageEstimate` has the same fields)."""

    page_map: PageMap
    layout: PageLayout
    confidence: float
    source: str  # "estimated", "fallback: <reason>" or "given"
    diagnostics: dict[str, Any] = field(default_factory=dict)
    bent: bool = False  # geometry found the paper bent beyond its tiles (grid timing then corrects x)
    orientation: int | None = None  # degrees the page is turned counter-clockwise in the input


NO_GRID_ROWS = "rows read on the ink"  # the fallback's source when `flat_rows_estimate` found rows


def flat_page_estimate(image: np.ndarray, reason: str = "") -> Geometry:
    """An upright, flat Letter page filling the image: the assumption when geometry cannot help."""
    h, w = image.shape[:2]
    sx, sy = w / LETTER_MM[0], h / LETTER_MM[1]
    pm = PageMap(np.diag([sx, sy, 1.0]), (w, h), LETTER_MM)
    return Geometry(pm, make_layout(), 0.0, f"fallback: {reason}" if reason else "fallback")


def estimate_geometry(image: np.ndarray, path: str | Path | None = None, turn: int = 0) -> Geometry:
    """Page geometry (ecgml.geometry); if it finds no page, the flat-page fallback with its reason.
    `turn`: quarter turns added to the orientation geometry finds (see `estimate_page`)."""
    from ecgml.geometry import GridRefuted, PageEstimate, estimate_page, flat_rows_estimate

    try:
        est = estimate_page(image, path, turn)
    except ImageTooSmall:
        raise  # a refusal: a flat-page guess at that density would trace nothing right
    except EcgmlError as exc:
        # no grid, or a "grid" with no row on it (text and traces of a gridless page can pass for one)
        no_grid = "no ECG grid found" in exc.reason or GRID_NO_ROWS in exc.reason
        flat: PageEstimate | None
        if isinstance(exc, GridRefuted):
            flat = exc.flat  # already read, by the pulses that refuted the grid
        else:
            flat = flat_rows_estimate(image, path, turn) if no_grid else None
        if flat is None:
            log.warning("%s: geometry failed (%s); assuming a flat upright page", path, exc.reason)
            return flat_page_estimate(image, exc.reason)
        # no grid, but trace rows on the ink of an assumed sheet: still a fallback (its scale is a guess,
        # its leads stay doubtful), with the rows, turn and layout read where the traces are
        log.warning("%s: geometry failed (%s); rows read on an assumed Letter sheet", path, exc.reason)
        return Geometry(
            flat.page_map, flat.layout, 0.0, f"fallback: {exc.reason}; {NO_GRID_ROWS}",
            dict(flat.diagnostics), False, int(flat.orientation),
        )  # fmt: skip
    conf = float(est.confidence)
    return Geometry(
        est.page_map, est.layout, conf, "estimated", dict(est.diagnostics), est.bent, int(est.orientation)
    )


# -------------------------------------------------------------------------------------- digitizer


@dataclass
class DigitizeResult:
    """One digitized image: the 10 s record (NaN outside the plotted windows) and how it was found."""

    record: Record
    confidence: dict[str, float]
    geometry: Geometry
    traces: list[CellTrace]
    model: str
    seconds: dict[str, float]
    image_size: tuple[int, int]
    notes: list[str] = field(default_factory=list)
    report: LeadReport | None = None  # per-lead status and the page verdict (None: whole-image models)
    evidence: dict[str, Any] = field(default_factory=dict)  # what the layout solver read off the traces

    @property
    def status(self) -> dict[str, str]:
        return self.report.status if self.report else {lead: "uncertain" for lead in LEADS}

    @property
    def verdict(self) -> str:
        return self.report.verdict if self.report else "uncertain"

    def segments(self, n_rows: dict[str, int] | None = None) -> dict[str, np.ndarray]:
        """Each lead's competition window, finite everywhere."""
        return competition_segments(self.record, n_rows)

    def submission_segments(self, n_rows: dict[str, int] | None = None) -> tuple[dict[str, np.ndarray], str]:
        """Each lead's competition window, finite everywhere, and a note on what was estimated.

        Samples the page does not show (or could not be traced) are first estimated from the limb leads
        that were read at the same moment (Einthoven); what is still missing is held or zero
        (`competition_segments`). The competition demands finite values; nowhere else is this done.
        """
        sig, filled = einthoven_fill(self.record.signal)
        rec = Record(sig.astype(np.float32), self.record.fs, self.record.name, dict(self.record.meta))
        segs = competition_segments(rec, n_rows)
        missing = []
        for j, lead in enumerate(LEADS):
            start, n = lead_window(lead, self.record.fs)
            if n_rows and lead in n_rows:
                n = int(n_rows[lead])
            orig = self.record.signal[start : start + n, j]
            now = sig[start : start + n, j]
            n_miss = int(n - np.isfinite(orig).sum())
            if n_miss > 0:
                how = int((np.isfinite(now) & ~np.isfinite(orig)).sum())
                missing.append(f"{lead} {n_miss}/{n} ({how} by Einthoven, rest held/zero)")
        note = ("not read from the page, estimated: " + ", ".join(missing)) if missing else ""
        return segs, note

    def _leads_json(self) -> dict[str, Any]:
        """Per lead: status, confidence and its parts, and the record seconds each of its cells shows."""
        out = self.report.to_json()["leads"] if self.report else {}
        for lead in out:
            out[lead]["windows_s"] = [
                [round(c.t0_s, 4), round(c.t1_s, 4)] for c in self.geometry.layout.cells if c.lead == lead
            ]
        return dict(out)

    def to_json(self) -> dict[str, Any]:
        lay = self.geometry.layout
        return {
            "name": self.record.name,
            "fs": self.record.fs,
            "n_samples": self.record.n_samples,
            "model": self.model,
            "calibration": {
                "speed_mm_s": lay.speed_mm_s,
                "speed_source": speed_source(self.geometry),
                "speed_doubt": speed_doubt(self.geometry),
                "gain_mm_mv": lay.gain_mm_mv,
                "chest_gain_mm_mv": lay.chest_gain_mm_mv or lay.gain_mm_mv,
                "gain_source": gain_source(self.geometry),
                "pulse_width_mm": pulses(self.geometry).get("pulse_width_mm"),
                "printed": calibration(self.geometry).get("footer", {}),
                "beat_mm": calibration(self.geometry).get("beat_mm"),
                "paper_mm": list(lay.paper_mm),
                "row_baselines_mm": lay.row_baselines(),
            },
            "layout": lay.to_dict(),
            "lead_confidence": self.confidence,
            "verdict": self.verdict,
            "leads": self._leads_json(),
            "warnings": self.report.warnings if self.report else [],
            "layout_evidence": _jsonable(self.evidence),
            "geometry": {
                "source": self.geometry.source,
                "orientation": self.geometry.orientation,
                "confidence": self.geometry.confidence,
                "page_map": self.geometry.page_map.to_dict(),
                "diagnostics": _jsonable(self.geometry.diagnostics),
            },
            "image_size": list(self.image_size),
            "seconds": self.seconds,
            "notes": self.notes,
        }


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


@dataclass
class Digitizer:
    """Geometry + canonical page + a trace extractor + assembly; or a whole-image model (the seed)."""

    extractor: TraceExtractor | None
    name: str
    whole_image: Any = None  # an object with predict_record(image, fs, name) -> Record
    px_per_mm: tuple[float, float] = CANONICAL_PX_PER_MM
    grid_timing: bool = True  # on bent pages, move trace columns by the local grid phase (trace.grid_timing)
    read_labels: bool = True  # read the printed lead names (ecgml.page_reader) when its weights are shipped
    read_footer: bool = True  # read the printed speed and gain (ecgml.footer_reader) when its weights ship

    def digitize_image(
        self,
        image: np.ndarray,
        fs: int = DEFAULT_FS,
        path: str | Path | None = None,
        geometry: Geometry | None = None,
    ) -> DigitizeResult:
        try:
            return self._read_upright(image, fs, path, geometry)
        finally:
            if self.extractor is not None:
                self.extractor.forget()  # the page's strips go with the page

    def _read_upright(
        self, image: np.ndarray, fs: int, path: str | Path | None, geometry: Geometry | None
    ) -> DigitizeResult:
        """The page read as it lies, or turned 180 degrees when its printed names read upside down, or
        turned a quarter when only that way do they read upright (`_quarter_turned`)."""
        try:
            res = self._digitize(image, fs, path, geometry)
        except ImageTooSmall:
            raise
        except EcgmlError:
            # refused as it lies (no trace found along the rows geometry chose): the rows may run the
            # other way (validation seed 14002 realworld panels-3x4+1R_001, turned 90 and read as 0)
            quarter = self._quarter_turned(image, fs, path, None) if geometry is None else None
            if quarter is None:
                raise
            return quarter
        up = res.evidence.get("labels", {}).get("upright", 0.0)
        if geometry is None and axis_unsure(res.geometry) and names_unconfirmed(res.evidence):
            quarter = self._quarter_turned(image, fs, path, up)
            if quarter is not None:
                return quarter
        names_down = "turned_grid" in res.evidence.get("name_grid", {})
        if (
            geometry is None
            and (up < -UPSIDE_DOWN_AT or names_down)
            and not res.geometry.source.startswith("fallback")
        ):
            # the printed names read upside down: read the page turned 180 degrees, and keep that
            # reading when its names then read upright
            try:
                turned = self._digitize(image, fs, path, None, turn=2)
            except EcgmlError:
                return res
            if names_read_upright(turned.evidence):
                turned.notes.append("page turned 180 degrees: its printed lead names read upside down")
                return turned
            if names_down and lattice_turned_upright(res.evidence, turned.evidence):
                # the names' lattice read only the other way up: on the turned page it is read again
                # upright, or the names beside its cells are its layout's leads
                turned.notes.append("page turned 180 degrees: its printed lead names stand upside down")
                return turned
        if geometry is None and boxes_unnamed(res):
            return self._boxes_turned(image, fs, path, res)
        return res

    def _boxes_turned(
        self, image: np.ndarray, fs: int, path: str | Path | None, res: DigitizeResult
    ) -> DigitizeResult:
        """A page of boxes whose printed names name none of its layout's leads (`boxes_unnamed`) read
        turned 180 degrees, kept when its names then read upright and mostly name its layout's leads;
        else `res`. Boxes read the same rows either way up, and a 12x1 page of them gives geometry no
        other word on which way is up (validation 0005 panels-12x1_003, read upside down: its names read
        "aVL" in every box, none its layout's; turned, 7 read and all its layout's)."""
        try:
            turned = self._digitize(image, fs, path, None, turn=2)
        except EcgmlError:
            return res
        if names_read_upright(turned.evidence):
            turned.notes.append(
                "page of boxes turned 180 degrees: its printed lead names name its leads only so"
            )
            return turned
        return res

    def _quarter_turned(
        self, image: np.ndarray, fs: int, path: str | Path | None, up: float | None
    ) -> DigitizeResult | None:
        """The page read turned 90 and 270 degrees from geometry's turn, and the reading kept whose
        printed names read upright there (by UPSIDE_DOWN_AT more than `up`, their reading as the page
        lay; None: it was refused) and name its layout's leads; None when neither does. Geometry's row
        axis is a guess where the rows were found by their shape alone and pile up hardly more along one
        axis than the other (`axis_unsure`): the names then decide, and only they."""
        best: tuple[float, DigitizeResult] | None = None
        for turn in (1, 3):
            try:
                res = self._digitize(image, fs, path, None, turn=turn)
            except EcgmlError:
                continue
            if not names_read_upright(res.evidence):
                continue
            t_up = float(res.evidence["labels"].get("upright", 0.0))
            if up is not None and t_up < up + UPSIDE_DOWN_AT:
                continue
            if best is None or t_up > best[0]:
                best = (t_up, res)
        if best is None:
            return None
        if best[1].geometry.source.startswith("fallback") and best[1].geometry.orientation in (None, 0):
            # geometry found no page turned that way: the flat page assumed is the image as it lies
            # (`flat_page_estimate` ignores the turn), and so is this reading
            best[1].notes.append("geometry found no page at a quarter turn: read as the image lies")
            return best[1]
        best[1].notes.append("page turned a quarter: its printed lead names read upright only that way")
        return best[1]

    def _digitize(
        self,
        image: np.ndarray,
        fs: int,
        path: str | Path | None,
        geometry: Geometry | None,
        turn: int = 0,
    ) -> DigitizeResult:
        name = Path(path).stem if path is not None else "image"
        h, w = image.shape[:2]
        t0 = time.perf_counter()
        if self.whole_image is not None:
            rec = self.whole_image.predict_record(image, fs, name)
            geo = geometry or flat_page_estimate(image, "not used by this model")
            masked = competition_mask(rec)
            conf = {lead: 0.0 for lead in LEADS}
            secs = {"model": time.perf_counter() - t0}
            return DigitizeResult(masked, conf, geo, [], self.name, secs, (w, h), ["whole-image seed model"])
        assert self.extractor is not None
        geo = geometry or estimate_geometry(image, path, turn)
        t1 = time.perf_counter()
        page = canonical_page(image, geo.page_map, self.px_per_mm)
        t2 = time.perf_counter()
        traces = self.extractor.extract(page, geo.layout)
        timed = bool(self.grid_timing and geo.bent)
        bands: Bands = {}  # the grid's chroma of the page's row bands, for the layout solver's re-reads too
        if timed:
            traces = correct_x(page, geo.layout, traces, bands)
        t3 = time.perf_counter()
        readable = _readable_fraction(traces)
        if readable < MIN_READ_FRACTION:
            why = f"no trace found ({readable:.0%} of columns readable)"
            ev = PageEvidence(not geo.source.startswith("fallback"), 0.0, 0.0, 0.0)
            ev.curves, ev.curve_beats = ink_curves(image, neutral=ev.grid)
            raise EcgmlError(path, unread_ecg_reason(ev, why, trace_rows(geo)) or f"not an ECG page: {why}")
        t_cal = time.perf_counter()
        if geometry is None:  # the page's own speed and gain (printed, pulses, beats): the cells' seconds
            geo = self.calibrate(page, geo, traces)
        t_cal = time.perf_counter() - t_cal
        page_ev = self.check_ecg_page(image, traces, geo, path)
        t_solve = time.perf_counter()

        def retrace(lay: PageLayout) -> list[CellTrace]:
            assert self.extractor is not None
            new = self.extractor.extract(page, lay)
            return correct_x(page, lay, new, bands) if timed else new

        net = load_reader() if self.read_labels else None
        small = reader_page(page) if net is not None else None
        ink = page_ink(small) if small is not None else None  # one ink page for both readings
        # the reader's maps of the whole page, once: the names' lattice and the names beside the cells
        prob = name_maps(ink, net) if ink is not None and geometry is None else None
        names = names_beside(small, net, ink, prob) if small is not None else None
        rows = NameRows()
        if ink is not None and prob is not None:
            geo, traces, rows = rows_from_names(ink, net, geo, traces, retrace, names, prob)
            if rows.lattice is not None and rows.used:  # the lattice's names vote among the families
                names = lattice_names(rows.lattice, names)
        solved = solve_layout(traces, geo.layout, retrace, functools.partial(tick_strength, page), names)
        if rows.lattice is not None and not rows.recut:  # the family solved may have the names' columns
            solved = names_recut(solved, rows, geo.page_map.paper_mm[0], retrace)
        if rows.lattice is not None:
            solved.evidence["name_grid"] = rows.evidence
            if rows.used:
                solved.notes.insert(0, rows.evidence["note"])
        geo = replace(geo, layout=solved.layout)
        traces = solved.traces
        labels = read_labels(small, geo.layout, net, ink, prob) if small is not None else None
        if ink is not None and rows.searched and rows.lattice is None:
            turned = turned_grid(ink, net, labels)
            if turned:
                solved.evidence["name_grid"] = turned
        if labels is not None:
            solved = apply_labels(solved, labels)
            geo = replace(geo, layout=solved.layout)
            traces = solved.traces
            solved.evidence["labels"] = labels.to_json()
            solved.notes += label_notes(labels, geo.layout)
        if rows.lattice is not None:
            # set after the names beside the cells, which lift page doubt where they confirm the leads
            solved = names_doubt(solved, rows.lattice, rows.recut)
        if geo.orientation is None and ink is not None and prob is not None:
            geo = flat_page_turn(geo, solved, ink, net, prob)
        t_solve = time.perf_counter() - t_solve
        t_tall = time.perf_counter()
        traces = self.extractor.read_tall(page, geo.layout, traces)  # the final layout's tall complexes
        t_tall = time.perf_counter() - t_tall
        cut = cut_leads(traces, geo.page_map)  # run off the paper or the image: held, others' ink unread
        plain = unrepaired(traces)
        traces = unread_borrowed(traces, cut)
        asm: Assembly
        if plain is None:
            asm = assemble(traces, geo.layout, fs, name=name)
        else:  # rows' shared ink repaired: the doubts of the reading before it stay
            plain = unread_borrowed(plain, cut)
            asm = assemble_repaired(traces, plain, geo.layout, fs, name, "the shared-ink repair")
            moved = sorted({t.lead for t in traces if t.plain is not None}, key=lambda n: (n not in LEADS, n))
            asm = replace(asm, notes=[*asm.notes, f"rows decoded onto the same ink repaired: {moved}"])
        solved.evidence["ecg_page"] = page_ev.to_json()
        report = _report(asm, traces, geo, solved, labels, cut)
        record = _blank_unreadable(asm.record, report)
        t4 = time.perf_counter()
        secs = {"geometry": t1 - t0, "canonical": t2 - t1, "extract": t3 - t2, "assemble": t4 - t3}
        secs["layout_solve"] = t_solve
        secs["tall"] = t_tall
        secs["calibration"] = t_cal
        notes = list(solved.notes) + list(asm.notes)
        if geo.source.startswith("fallback"):
            notes.append(f"geometry {geo.source}")
        if timed:
            notes.append("bent page: trace x corrected by the grid's local phase")
        return DigitizeResult(
            record, report.confidence, geo, traces, self.name, secs, (w, h), notes, report, solved.evidence
        )

    def calibrate(self, page: CanonicalPage, geo: Geometry, traces: list[CellTrace]) -> Geometry:
        """`geo` read at the speed and gain the page shows (`ecgml.page_calibration.read_calibration`; the
        printed settings only when `read_footer` and the footer reader's weights are shipped); the decision
        goes into its diagnostics ("calibration")."""
        net = load_footer_reader() if self.read_footer else None
        footer = read_footer(footer_ink(page), geo.layout, net) if net is not None else None
        cal = read_calibration(geo, footer, traces)
        lay = geo.layout
        if cal.speed_mm_s != lay.speed_mm_s:
            lay = with_speed(lay, cal.speed_mm_s)
        if cal.gain_source == "footer":
            lay = with_gain(lay, cal.gain_mm_mv, cal.chest_gain_mm_mv)
        return replace(geo, layout=lay, diagnostics=dict(geo.diagnostics, calibration=cal.to_json()))

    def check_ecg_page(
        self, image: np.ndarray, traces: list[CellTrace], geo: Geometry, path: str | Path | None
    ) -> PageEvidence:
        """The page's ECG evidence (`ecgml.ecg_page`); raises "not an ECG page" with the reason. Without
        a grid, the image's own ink is looked at too before the page is refused (`ink_curves`)."""
        fallback = geo.source.startswith("fallback")
        ev = page_evidence(traces, geo.layout.cells, geo.layout.speed_mm_s, grid=not fallback)
        if not_an_ecg_page(ev):
            ev.curves, ev.curve_beats = ink_curves(image, neutral=not fallback)
        why = not_an_ecg_page(ev)
        if why and not fallback:  # a grid, its cells bare: the trace may be there, the page misplaced
            raise EcgmlError(path, unread_ecg_reason(ev, why, trace_rows(geo)) or f"not an ECG page: {why}")
        if why and GRID_NO_ROWS in geo.source:  # geometry saw the grid: the flat guess's "no grid" is wrong
            why = f"an ECG-like grid with no trace rows found on it ({why.split('(', 1)[-1]}"
        if why:
            raise EcgmlError(path, f"not an ECG page: {why}")
        return ev

    def digitize(
        self, path: str | Path, fs: int = DEFAULT_FS, geometry: Geometry | None = None
    ) -> DigitizeResult:
        if int(fs) != fs or fs <= 0:
            raise EcgmlError(path, f"sampling rate must be a positive integer, got {fs}")
        return self.digitize_image(load_image(path), int(fs), path, geometry)


TURN_MIN_AGREE = 0.5  # a page re-read turned 180 degrees: share of its names naming its layout's leads
# the page's layout evidence where the rows were re-cut where the names stand (geometry's cuts disagreed),
# and where a column of names stands where no cell of the layout read starts (`names_doubt`)
NAMES_CUT_DOUBT, NAMES_CONTRA_DOUBT = 0.45, 0.2


@dataclass
class NameRows:
    """What the lattice of printed names (`ecgml.label_grid`) said of the page's rows."""

    lattice: NameGrid | None = None  # the lattice read upright on the page, if any
    searched: bool = False  # the page was searched for one (False: its layout has boxed panels or no rows)
    evidence: dict[str, Any] = field(default_factory=dict)  # JSON: "grid", "cuts", "used", "note", ...

    @property
    def used(self) -> bool:
        """The names' rows replaced geometry's (it had lost some)."""
        return bool(self.evidence.get("used"))

    @property
    def recut(self) -> bool:
        """The rows were re-cut where the names' columns stand."""
        return bool(self.evidence.get("cuts", {}).get("frame_mm"))


# a row is traced where the trace model reads it with at least this mean confidence over its cells (a
# trace scores 0.8-1.0 on readable pages, blank paper with grid lines well under one half)
ROW_TRACED_AT = 0.5


def traced_rows(traces: list[CellTrace]) -> int:
    """How many rows of a layout's traces the trace model reads a trace on (mean per-column confidence
    over the row's cells >= ROW_TRACED_AT): the page's own evidence of where its rows run."""
    per_row: dict[int, list[np.ndarray]] = {}
    for t in traces:
        per_row.setdefault(t.row, []).append(np.asarray(t.confidence, np.float64))
    return sum(
        bool(np.mean(np.concatenate(c)) >= ROW_TRACED_AT) for c in per_row.values() if sum(x.size for x in c)
    )


def _traced_already(
    done: dict[int, list[CellTrace]], retrace: Callable[[PageLayout], list[CellTrace]], want: PageLayout
) -> list[CellTrace]:
    """The traces of `want` read already (`done`, by the layout's identity), else `retrace(want)`."""
    return done[id(want)] if id(want) in done else retrace(want)


def rows_from_names(
    ink: np.ndarray,
    net: Any,
    geo: Geometry,
    traces: list[CellTrace],
    retrace: Callable[[PageLayout], list[CellTrace]],
    names: Callable[[list[PageLayout]], list[Any]] | None = None,
    prob: np.ndarray | None = None,
) -> tuple[Geometry, list[CellTrace], NameRows]:
    """The page's rows and family as its printed names lay them out (`ecgml.label_grid`), traced again,
    where they put the rows elsewhere than geometry's template (another count, a row moved); else
    `geo` and `traces` as they are, and what the names said (`NameRows`)."""
    rows_mm = geo.diagnostics.get("row_baselines_mm")
    if not rows_mm or any(c.box_top_mm > 0 for c in geo.layout.cells):
        return geo, traces, NameRows()
    grid, _ = read_grid(ink, net, prob)
    if grid is None:  # `turned_grid` may look for it on the page turned 180 degrees
        return geo, traces, NameRows(searched=True)
    found = NameRows(grid, True, {"grid": grid.to_json()})
    ev = found.evidence
    _, x0, x1 = row_frame(geo.layout)
    like = replace(geo.layout, paper_mm=geo.page_map.paper_mm)  # the rows may reach past the template's
    n_grid = len(grid.rows_y) - len(grid.strips)
    lays = [
        lay
        for off in label_offsets(grid.rows_y[:n_grid], np.asarray(rows_mm, np.float64), grid.pitch)
        if (lay := layout_from_names(grid, like, list(rows_mm), (x0, x1), off)) is not None
    ]
    lay = lays[0] if lays else None
    if len(lays) > 1:
        # rows evenly spaced: a name above its trace or below the one above fit alike. A row is where a
        # trace runs: the offset that puts more of its rows on one wins (a name below its trace puts
        # the other offset's end row on blank paper); else the names read beside each layout's cells
        # (at the page's own label offset) tell which
        read = [retrace(c) for c in lays]
        drawn = [traced_rows(t) for t in read]
        ev["offset_traced"] = drawn
        done = {id(c): t for c, t in zip(lays, read, strict=True)}
        retrace = functools.partial(_traced_already, done, retrace)
        if drawn.count(max(drawn)) == 1:
            lay = lays[int(np.argmax(drawn))]
        elif names is not None:
            fits = [name_score(c, r) for c, r in zip(lays, names(lays), strict=True)]
            lay = lays[int(np.argmax(fits))]
            ev["offset_fits"] = [round(f, 2) for f in fits]
    lost = lost_rows(lay, geo.layout, grid.pitch) if lay is not None else 0
    keep = lay if lay is not None and lost else geo.layout
    # the names' columns say where the cells start whether or not they also built a layout (a lattice
    # of the layout's leads on geometry's rows places its columns alike)
    cut = names_cuts(grid, keep, geo.page_map.paper_mm[0])
    if cut is not None:
        ev["cuts"] = cut
    if cut is not None and cut.get("frame_mm"):
        keep = recut(keep, tuple(cut["frame_mm"]))
    if lay is None or not lost:
        ev["used"] = False
        if keep is geo.layout:
            return geo, traces, found
        return replace(geo, layout=keep), retrace(keep), found
    ev.update(used=True, layout=lay.name, rows_added=lost)
    ev["note"] = (
        f"rows read from the printed lead names: {lay.name} ({lay.n_rows} rows), "
        f"not geometry's {geo.layout.name} ({geo.layout.n_rows} rows)"
    )
    return replace(geo, layout=keep), retrace(keep), found


def names_recut(
    solved: Solved, rows: NameRows, paper_w: float, retrace: Callable[[PageLayout], list[CellTrace]]
) -> Solved:
    """`solved` with its rows re-cut and traced again where the names' columns disagree with the solved
    layout's cuts (`names_cuts`): geometry's template may have had another column count than the family
    the solver chose (a 6x2 page read on a 3x4+3R template), so `rows_from_names` could not compare them.
    The cut is recorded in `rows.evidence["cuts"]`, so `names_doubt` holds the page's leads in doubt."""
    cut = names_cuts(rows.lattice, solved.layout, paper_w) if rows.lattice is not None else None
    if cut is None or not cut.get("frame_mm"):
        return solved
    rows.evidence["cuts"] = cut
    lay = recut(solved.layout, tuple(cut["frame_mm"]))
    return replace(solved, layout=lay, traces=retrace(lay))


def names_doubt(solved: Solved, grid: NameGrid, recut_: bool) -> Solved:
    """The page's layout evidence lowered where the names' lattice and the layout read disagree: to
    NAMES_CONTRA_DOUBT when a column of names (after the first) stands where no grid cell of the final
    layout starts (`label_grid.names_off_cells`), to NAMES_CUT_DOUBT when the rows were re-cut where the
    names stand (`names_cuts`: geometry's cuts disagreed with them)."""
    strips = set(rhythm_rows(solved.layout))
    starts = [c.x0_mm for c in solved.layout.cells if c.row not in strips]
    off = names_off_cells(grid, starts)
    if not (off or recut_):
        return solved
    solved.lead_factor["page"] = min(
        solved.lead_factor.get("page", 1.0), NAMES_CONTRA_DOUBT if off else NAMES_CUT_DOUBT
    )
    solved.notes.append(
        "the printed lead names' columns stand where no cell of the layout starts: leads in doubt"
        if off
        else "columns cut where the printed lead names stand, not where geometry's rows put them: "
        "time windows in doubt"
    )
    return solved


def names_cuts(grid: NameGrid, layout: PageLayout, paper_w: float) -> dict[str, Any] | None:
    """Where the names' columns (`label_grid.cuts_from_names`) disagree with the cuts of `layout`'s
    grid rows (each as many cells as the lattice has columns): {"from_mm": the layout's row extent,
    "frame_mm": the extent the names give}, without "frame_mm" when the names give none or it would
    leave the paper by more than a column (the page map itself is then off: the cells are kept, the
    leads doubted). None where they agree or the lattice does not fit the layout's grid."""
    strips = set(rhythm_rows(layout))
    per_row: dict[int, int] = {}
    for c in layout.cells:
        if c.row not in strips:
            per_row[c.row] = per_row.get(c.row, 0) + 1
    if not per_row or set(per_row.values()) != {len(grid.cols_x)}:
        return None
    _, x0, x1 = row_frame(layout)
    agree, got = cuts_from_names(grid, (x0, x1), layout.speed_mm_s)
    if agree:
        return None
    out: dict[str, Any] = {"from_mm": [round(x0, 1), round(x1, 1)]}
    pitch = (got[1] - got[0]) / len(grid.cols_x) if got is not None else 0.0
    if got is not None and got[0] >= -pitch and got[1] <= paper_w + pitch:
        out["frame_mm"] = [round(got[0], 1), round(got[1], 1)]
    return out


def names_read_upright(evidence: dict[str, Any]) -> bool:
    """Whether a turned reading's printed names read upright (`LabelReading.upright` > UPSIDE_DOWN_AT) and
    mostly name its layout's leads (>= TURN_MIN_AGREE): the bar every re-read turn must clear to be kept."""
    lab = evidence.get("labels") or {}
    return float(lab.get("upright", 0.0)) > UPSIDE_DOWN_AT and (lab.get("agree") or 0.0) >= TURN_MIN_AGREE


def flat_page_turn(geo: Geometry, solved: Solved, ink: np.ndarray, net: Any, prob: np.ndarray) -> Geometry:
    """`geo`, the flat page assumed as the image lies (`flat_page_estimate`: its turn unknown, None), said
    to lie upright (0) when its printed names say so: read upright beside the cells and mostly naming
    them (`names_read_upright`), or standing upright as a lattice of names (`label_grid.read_grid` on the
    reader's maps already computed; `rows_from_names` does not look on a page without geometry's rows).
    Geometry found no page to turn, so nothing else is evidence of the turn; the names are (test realworld
    3x4_009 and validation seed 14002 realworld 12x1_009: read as they lie, names upright, turn unknown)."""
    up = names_read_upright(solved.evidence)
    if not up:
        grid, _ = read_grid(ink, net, prob)
        up = grid is not None
        if grid is not None:
            solved.evidence.setdefault("name_grid", {"grid": grid.to_json(), "used": False})
    if not up:
        return geo
    solved.notes.append("the page read as it lies: its printed lead names stand upright")
    return replace(geo, orientation=0)


def lattice_turned_upright(before: dict[str, Any], turned: dict[str, Any]) -> bool:
    """The page re-read turned 180 degrees, because its names' lattice stood only upside down
    (`turned_grid` in `before`), reads a lattice upright (`grid`) and either mostly names its layout's
    leads beside the cells (>= TURN_MIN_AGREE) or stands as the same family's lattice with at least as
    many distinct names as the upside-down one: one printed lattice seen from both sides says the turn,
    even where the turned reading's layout is wrong (validation seed 14002 panels-12x1_002, 12 boxes in a
    column read as 3x4+3R: a 12x1 lattice of 5 names upside down, of 8 upright; agree 0.14). A lattice
    needs three names that read one way up only (`label_grid.find_grid`): a separator tick read as "I"
    builds none."""
    grid = (turned.get("name_grid") or {}).get("grid")
    if not grid:
        return False
    if ((turned.get("labels") or {}).get("agree") or 0.0) >= TURN_MIN_AGREE:
        return True
    down = (before.get("name_grid") or {}).get("turned_grid") or {}
    return (
        bool(down)
        and grid.get("base") == down.get("base")
        and grid.get("distinct", 0) >= down.get("distinct", 1)
    )


def boxes_unnamed(res: DigitizeResult) -> bool:
    """The page was read as boxes (`geometry.panels`), and of the names read confidently beside its
    cells fewer than TURN_MIN_AGREE name its layout's leads (or none was read): a half turn reads the
    same boxes, so only the names can say which way up they stand. A page not read as boxes has other
    evidence of its turn (pulses, a rhythm strip, waves and headers between rows)."""
    if res.geometry.diagnostics.get("source") != "panels":
        return False
    lab = res.evidence.get("labels") or {}
    return (lab.get("agree") or 0.0) < TURN_MIN_AGREE


def names_unconfirmed(evidence: dict[str, Any]) -> bool:
    """The printed names as the page lies read neither upright nor upside down (`LabelReading.upright`
    within UPSIDE_DOWN_AT of 0) nor mostly name the layout's leads, and no lattice of names stands either
    way up: geometry's turn has no word from the names (no names read at all: no word either way, False)."""
    lab = evidence.get("labels")
    if not lab or evidence.get("name_grid", {}).keys() & {"grid", "turned_grid"}:
        return False
    up = float(lab.get("upright", 0.0))
    return abs(up) <= UPSIDE_DOWN_AT and (lab.get("agree") or 0.0) < TURN_MIN_AGREE


def axis_unsure(geo: Geometry) -> bool:
    """Geometry chose the rows' axis by the ink's row profiles alone (no stack of pulses) and they pile
    up less than AXIS_SURE times more along it than across it: a quarter turn is as likely (validation
    seed 14002 realworld: 3 of 54 photos turned 90 were read as 0 at axis ratios 1.03-1.40)."""
    d = geo.diagnostics
    if geo.source.startswith("fallback") or d.get("orient_from", "rows") != "rows":
        return False
    ratio = d.get("axis_ratio")
    return ratio is not None and float(ratio) < AXIS_SURE


def turned_grid(ink: np.ndarray, net: Any, labels: LabelReading | None) -> dict[str, Any]:
    """Where no lattice of names stands upright: the one on the page turned 180 degrees, which says the
    page is upside down ({"turned_grid": ...}, which `Digitizer.digitize_image` re-reads turned; empty
    when none stands). It is a second pass of the reader over the whole page, so it is run only when the
    names beside the cells do not already read the page upright (`LabelReading.upright` >=
    UPSIDE_DOWN_AT: that many more names read this way up than turned)."""
    if labels is not None and labels.upright >= UPSIDE_DOWN_AT:
        return {}
    turned, _ = read_grid(np.ascontiguousarray(ink[::-1, ::-1]), net)
    return {"turned_grid": turned.to_json()} if turned is not None else {}


def footer_ink(page: CanonicalPage) -> np.ndarray:
    """The canonical page's ink at the footer reader's FOOT_PPM."""
    w = int(round(page.paper_mm[0] * FOOT_PPM))
    h = int(round(page.paper_mm[1] * FOOT_PPM))
    return page_ink(np.asarray(cv2.resize(page.image, (w, h), interpolation=cv2.INTER_AREA)))


def reader_page(page: CanonicalPage) -> np.ndarray:
    """The canonical page at the label reader's READ_PPM."""
    w = int(round(page.paper_mm[0] * READ_PPM))
    h = int(round(page.paper_mm[1] * READ_PPM))
    return np.asarray(cv2.resize(page.image, (w, h), interpolation=cv2.INTER_AREA))


def read_page_labels(page: CanonicalPage, layout: PageLayout) -> LabelReading | None:
    """The label reader on the canonical page brought to its READ_PPM (None without shipped weights)."""
    net = load_reader()
    if net is None:
        return None
    return read_labels(reader_page(page), layout, net)


def label_notes(labels: LabelReading, layout: PageLayout) -> list[str]:
    out = []
    wrong = [
        f"{c.lead} (row {c.row + 1}, col {c.col + 1}) is printed {got}"
        for c, got in conflicts(labels, layout)
    ]
    if wrong:
        out.append("printed labels disagree with the layout: " + "; ".join(wrong))
    if labels.upright < -UPSIDE_DOWN_AT:
        out.append("the printed labels read better upside down: page orientation doubtful")
    return out


def _report(
    asm: Assembly,
    traces: list[CellTrace],
    geo: Geometry,
    solved: Solved,
    labels: LabelReading | None = None,
    cut: set[str] | None = None,
) -> LeadReport:
    """Status and confidence per lead from trace, geometry and layout evidence (`ecgml.verdict`); `cut`:
    leads whose trace runs off the paper or the image (`trace.edges.cut_leads`; None: tested here)."""
    shown = {c.lead for c in geo.layout.cells}
    n_read: dict[str, int] = {}
    n_all: dict[str, int] = {}
    for tr in traces:
        n_all[tr.lead] = n_all.get(tr.lead, 0) + int(tr.y_mm.size)
        n_read[tr.lead] = n_read.get(tr.lead, 0) + int(np.isfinite(tr.y_mm).sum())
    share = {lead: n_read.get(lead, 0) / n_all[lead] if n_all.get(lead) else 0.0 for lead in LEADS}
    lab_f = label_factors(labels, geo.layout)
    lay_parts = {
        lead: {f"layout_{k}": v for k, v in lead_layout_parts(solved, lead).items()}
        | {"layout_labels": lab_f.get(lead, 1.0)}
        for lead in shown
    }
    lay_f = {lead: min(parts.values()) for lead, parts in lay_parts.items()}
    geo_f = geometry_factor(geo.source, geo.confidence)
    if labels is not None and labels.upright < -UPSIDE_DOWN_AT:
        geo_f *= 0.3
    fallback = geo.source.startswith("fallback")
    sig = asm.record.signal
    fit, offset = assumed_gain_fit(geo, traces)
    report = lead_report(
        asm.confidence, share, shown, geo_f, lay_f, asm.agreement, fallback, load_calibration(), lay_parts,
        lead_pulse_evidence(geo), asm.limbs_off,
        {"beats": beat_agreement(sig, asm.record.fs), "beat_witnesses": beat_witnesses(sig, asm.record.fs)}
        | {"page_shape": dict.fromkeys(shown, page_shape(sig, asm.record.fs))},
        cut_leads(traces, geo.page_map) if cut is None else cut, fit,
    )  # fmt: skip
    if offset is not None:  # kept with the evidence (the same on every lead of the page)
        for lead in report.parts:
            report.parts[lead]["gain_offset"] = offset
    report.warnings += [w for w in (gain_warning(geo), speed_warning(geo), height_warning(fit, offset)) if w]
    return report


def assumed_gain_fit(geo: Geometry, traces: list[CellTrace]) -> tuple[dict[str, float] | None, float | None]:
    """Per shown lead, 1 when the page's gain is not assumed or its traces' heights support it, else 0
    (`ecgml.gain_check`; None when the gain was read), and the page's height offset (None: not looked at,
    or too few leads)."""
    if gain_source(geo) != "assumed":
        return None, None
    offset = gain_offset(trace_log_spans(traces, geo.layout))
    ok = 1.0 if supports_gain(offset) else 0.0
    return {c.lead: ok for c in geo.layout.cells}, offset


def height_warning(fit: dict[str, float] | None, offset: float | None) -> str:
    """The page's warning when its traces' heights do not support its assumed gain, else ""."""
    if not fit or min(fit.values()) >= 1.0:
        return ""
    if offset is None:
        return "too few leads to check the assumed gain against a heart's amplitudes: leads held"
    return (
        f"the traces are {np.exp(offset):.1f}x as tall as an average heart's at the assumed gain "
        "(a page printed at another gain?): leads held"
    )


def trace_rows(geo: Geometry) -> int:
    """Trace rows geometry found darker than the grid (0 when it found them only by shape, or fell back)."""
    if geo.source.startswith("fallback") or "trace_ink" in geo.diagnostics:
        return 0
    return int(geo.diagnostics.get("rows", 0))


def _blank_unreadable(record: Record, report: LeadReport) -> Record:
    """NaN for leads the page does not show or that could not be traced (never invented numbers)."""
    sig = record.signal.copy()
    for j, lead in enumerate(LEADS):
        if report.status[lead] in ("absent", "unreadable"):
            sig[:, j] = np.nan
    return Record(sig, record.fs, record.name, dict(record.meta))


def _readable_fraction(traces: list[CellTrace]) -> float:
    n = sum(t.y_mm.size for t in traces)
    ok = sum(int(np.isfinite(t.y_mm).sum()) for t in traces)
    return ok / n if n else 0.0


def competition_mask(record: Record) -> Record:
    """NaN outside each lead's standard plotted window (for whole-image models that fill everything)."""
    from ecgml.kaggle import masked_signal

    return Record(masked_signal(record), record.fs, record.name, dict(record.meta))


def classical_digitizer() -> Digitizer:
    from ecgml.trace.classical import ClassicalExtractor

    return Digitizer(ClassicalExtractor(), "classical")


def learned_digitizer(weights: str | Path | None = None) -> Digitizer:
    from ecgml.trace.model import load_extractor

    ext = load_extractor(weights)
    ppm = tuple(getattr(getattr(ext, "cfg", None), "px_per_mm", CANONICAL_PX_PER_MM))
    return Digitizer(ext, f"unet:{weights or 'shipped'}", px_per_mm=(float(ppm[0]), float(ppm[1])))


def seed_digitizer(weights: str | Path | None = None) -> Digitizer:
    from ecgml.trace.seed import load_seed

    return Digitizer(None, f"seed:{weights or 'shipped'}", whole_image=load_seed(weights))


def shipped_weights() -> Path | None:
    """The learned model's weights shipped in ecgml/weights/, if this install has them."""
    p = Path(__file__).resolve().parent / "weights" / "trace_unet.pt"
    return p if p.exists() and p.with_suffix(".json").exists() else None


def load_digitizer_from_spec(spec: Any) -> Digitizer:
    """A Digitizer for a `model_folder.DigitizerSpec` (kind `classical` or `learned` with its weights)."""
    if spec.kind == "classical":
        return classical_digitizer()
    if spec.kind == "learned":
        return learned_digitizer(spec.weights)
    raise EcgmlError(getattr(spec, "uri", None) or None, f"unknown digitizer kind {spec.kind!r}")


@functools.lru_cache(maxsize=4)
def load_digitizer(model: str | None = None) -> Digitizer:
    """The digitizer for a `--model` value (see `_load_digitizer`); a file that is not a model (corrupt
    weights, bad JSON) is an `EcgmlError` naming it, never a library's exception."""
    try:
        return _load_digitizer(model)
    except EcgmlError:
        raise
    except Exception as exc:
        log.debug("loading model %r failed", model, exc_info=True)
        raise EcgmlError(
            model or "the shipped weights",
            f"cannot load the model: not a model file, or a corrupt one ({type(exc).__name__})",
        ) from exc


def _load_digitizer(model: str | None = None) -> Digitizer:
    """The digitizer for a `--model` value.

    None or "": the shipped learned weights if present, else classical. "classical". "seed" or
    "seed:PATH" (the whole-image seed baseline). A folder with digitizer.json: that spec
    (`ecgml.model_folder`); MLflow URIs are fetched to such a folder above inference
    (`ecgml.tracking.local_model`). A file: learned trace weights (a name starting with "seed" means
    seed weights).
    """
    if not model:
        w = shipped_weights()
        return learned_digitizer(w) if w is not None else classical_digitizer()
    if model in {"classical", "unet", "learned"}:
        return classical_digitizer() if model == "classical" else learned_digitizer(None)
    if model == "seed" or model.startswith("seed:"):
        return seed_digitizer(model[5:] or None)
    local = Path(model)
    if local.is_dir():
        from ecgml.model_folder import read_spec

        return load_digitizer_from_spec(read_spec(local))
    if local.is_file():
        return seed_digitizer(local) if local.name.startswith("seed") else learned_digitizer(local)
    if "://" in model or model.startswith(("models:/", "runs:/")):
        raise EcgmlError(
            model, "an MLflow model URI: fetch it first with ecgml.tracking.local_model (the CLI does)"
        )
    raise EcgmlError(
        model, "no such model: not a weights file, model folder, MLflow URI, 'classical' or 'seed'"
    )


def digitize_leads(
    digitizer: Digitizer, path: str | Path, fs: int
) -> dict[str, tuple[int, np.ndarray, float]]:
    """lead -> (start sample, plotted window in mV, confidence): what the served model returns."""

    res = digitizer.digitize(path, fs)
    segs = res.segments()
    return {lead: (lead_window(lead, fs)[0], segs[lead], res.confidence[lead]) for lead in LEADS}


# ---------------------------------------------------------------------------------------- writers


def draw_overlay(image: np.ndarray, result: DigitizeResult) -> np.ndarray:
    """The extracted traces drawn on the input image through the page map (RGB uint8)."""
    out = image.copy()
    h, w = out.shape[:2]
    scale = min(1.0, OVERLAY_LONG_SIDE / max(h, w))
    if scale < 1.0:
        out = cv2.resize(out, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    pm = result.geometry.page_map
    thick = max(1, int(round(max(out.shape[:2]) / 1500)))
    for tr in result.traces:
        ok = np.isfinite(tr.y_mm)
        if ok.sum() < 2:
            continue
        colour = ROW_COLOURS[tr.row % len(ROW_COLOURS)]
        px = pm.mm_to_px(np.stack([tr.x_mm, tr.y_mm], axis=1)) * scale - 0.5
        # Split at unreadable columns so gaps stay visible.
        breaks = np.flatnonzero(np.diff(ok.astype(np.int8)) != 0) + 1
        for seg_idx, seg in zip(np.split(np.arange(ok.size), breaks), np.split(ok, breaks), strict=True):
            if seg.all() and seg.size >= 2:
                pts = np.round(px[seg_idx] * 4).astype(np.int32)
                cv2.polylines(out, [pts], False, colour, thick, cv2.LINE_AA, shift=2)
    _label_cells(out, result, scale)
    return out


STATUS_COLOURS = {"read": (0, 150, 0), "uncertain": (230, 120, 0), "unreadable": (220, 0, 0)}


def _label_cells(out: np.ndarray, result: DigitizeResult, scale: float) -> None:
    """Each cell's lead and confidence written at its start, coloured by status, so a wrong or doubtful
    lead shows in the picture (the traces alone look right even when the page was misread)."""
    pm = result.geometry.page_map
    status = result.status
    font_scale = max(0.35, max(out.shape[:2]) / 3000)
    width = max(1, int(round(font_scale * 2)))
    for c in result.geometry.layout.cells:
        at = pm.mm_to_px(np.array([[c.x0_mm + 1.0, c.baseline_mm - 12.0]]))[0] * scale
        if not (0 <= at[0] < out.shape[1] and 0 <= at[1] < out.shape[0]):
            continue
        text = f"{c.lead} {result.confidence.get(c.lead, 0.0):.2f}"
        colour = STATUS_COLOURS.get(status.get(c.lead, ""), (120, 120, 120))
        org = (int(at[0]), int(at[1]))
        cv2.putText(
            out, text, org, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), width + 2, cv2.LINE_AA
        )
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour, width, cv2.LINE_AA)


def write_outputs(
    result: DigitizeResult, image: np.ndarray, out_dir: str | Path, stem: str
) -> dict[str, Path]:
    """`{stem}.csv`, `{stem}.hea/.dat`, `{stem}.json` and `{stem}-overlay.png` in `out_dir`; the stem
    is made WFDB-safe first (`records.record_name`: `scan.2024-01-05` → `scan_2024-01-05`)."""
    stem = record_name(stem)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rec = Record(result.record.signal, result.record.fs, stem, dict(result.record.meta))
    paths = {"csv": write_csv(rec, out_dir / f"{stem}.csv")}
    paths["hea"] = write_wfdb(rec, out_dir, stem)
    js = out_dir / f"{stem}.json"
    with atomic_path(js) as tmp:
        tmp.write_text(json.dumps(result.to_json(), indent=1))
    paths["json"] = js
    png = out_dir / f"{stem}-overlay.png"
    overlay = draw_overlay(image, result)
    with atomic_path(png) as tmp:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
        if not ok:
            raise EcgmlError(png, "cannot encode the overlay PNG")
        tmp.write_bytes(buf.tobytes())
    paths["overlay"] = png
    return paths


def digitize_file(
    path: str | Path,
    out_dir: str | Path,
    fs: int = DEFAULT_FS,
    model: str | None = None,
    name: str | None = None,
) -> tuple[DigitizeResult, dict[str, Path]]:
    """`ecgml digitize`: one image to the four outputs (named `name`, default the image's stem)."""
    digitizer = load_digitizer(model)
    image = load_image(path)
    result = digitizer.digitize_image(image, fs, path)
    return result, write_outputs(result, image, out_dir, name or Path(path).stem)


# ----------------------------------------------------------------------------------------- submit


@dataclass
class EcgOutcome:
    """One ECG of a submission: its segments (finite) and whether it was digitized or filled."""

    ecg_id: str  # as written in test.csv
    fs: int
    segments: dict[str, np.ndarray]
    seconds: float
    error: str = ""
    note: str = ""  # leads or samples estimated rather than read (absent or unreadable on the page)


@dataclass
class SubmitSummary:
    out: Path
    n_ecgs: int
    n_rows: int
    failures: list[tuple[str, str]]
    seconds: dict[str, float]

    @property
    def n_failed(self) -> int:
        return len(self.failures)


def digitize_for_submission(
    model: str | None,
    path: str,
    ecg_id: str,
    fs: int,
    n_rows: dict[str, int],
    geometry: Geometry | None = None,
) -> EcgOutcome:
    """Digitize one test image; on any failure, finite zeros and the reason (a batch never stops)."""
    t0 = time.perf_counter()
    try:
        digitizer = load_digitizer(model)
        segs, note = digitizer.digitize(path, fs, geometry).submission_segments(n_rows)
        for lead in LEADS:
            if not np.all(np.isfinite(segs[lead])):  # cannot happen; never let it through
                segs[lead] = np.nan_to_num(segs[lead], nan=0.0, posinf=0.0, neginf=0.0)
        return EcgOutcome(ecg_id, fs, segs, time.perf_counter() - t0, note=note)
    except EcgmlError as exc:
        err = str(exc)
    except Exception as exc:  # a bug or an unforeseen image must not cost the other ECGs
        err = f"{path}: unexpected {type(exc).__name__}: {exc}"
    return EcgOutcome(ecg_id, fs, fallback_segments(fs, n_rows), time.perf_counter() - t0, err)


def submit(
    data_dir: str | Path,
    out: str | Path,
    model: str | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    geometry_for: Callable[[str], Geometry] | None = None,
) -> SubmitSummary:
    """Write the submission for every row of `data_dir/test.csv`, in its order, finite values only.

    With `workers` > 1 the images are digitized on a dask.distributed LocalCluster (one process and
    one thread per worker); results are still written in test.csv order. `geometry_for(ecg_id)`
    replaces geometry estimation (benchmarks read through the renderer's true page map).
    """
    from ecgml.kaggle import SubmissionWriter, read_test_table, test_image_path

    data_dir = Path(data_dir)
    table = read_test_table(data_dir / "test.csv")
    jobs: list[tuple[str, int, dict[str, int]]] = []
    for ecg_id, g in table.groupby("id", sort=False):
        fs_values = g["fs"].unique()
        if len(fs_values) != 1:
            raise EcgmlError(data_dir / "test.csv", f"ECG {ecg_id}: fs is not constant over its rows")
        n_rows = {str(lead): int(n) for lead, n in zip(g["lead"], g["number_of_rows"], strict=True)}
        missing = [lead for lead in LEADS if lead not in n_rows]
        if missing:
            raise EcgmlError(data_dir / "test.csv", f"ECG {ecg_id}: no rows for lead(s) {missing}")
        jobs.append((str(ecg_id), int(fs_values[0]), n_rows))  # ids stay text
    if model not in (None, ""):
        load_digitizer(model)  # fail early on a bad --model, before any image (workers load their own)
    failures: list[tuple[str, str]] = []
    seconds: dict[str, float] = {}
    out = Path(out)
    with SubmissionWriter(out) as writer:
        outcomes = _outcomes(jobs, data_dir, model, workers, test_image_path, geometry_for)
        for k, res in enumerate(outcomes):
            if res.error:
                log.warning("ECG %s: %s (filled with zeros)", res.ecg_id, res.error)
                failures.append((res.ecg_id, res.error))
            elif res.note:
                log.warning("ECG %s: %s", res.ecg_id, res.note)
            seconds[res.ecg_id] = res.seconds
            writer.add(res.ecg_id, res.fs, res.segments)
            if progress:
                progress(k + 1, len(jobs))
        n_rows_written = writer.n_rows
    return SubmitSummary(out, len(jobs), n_rows_written, failures, seconds)


def _outcomes(
    jobs: list[tuple[str, int, dict[str, int]]],
    data_dir: Path,
    model: str | None,
    workers: int,
    image_path: Callable[[Path, str], Path],
    geometry_for: Callable[[str], Geometry] | None = None,
) -> Any:
    """EcgOutcomes in job order: in this process, or on a dask LocalCluster when workers > 1."""

    def geo(i: str) -> Geometry | None:
        return geometry_for(i) if geometry_for is not None else None

    if workers <= 1 or len(jobs) <= 1:
        for i, fs, n in jobs:
            yield digitize_for_submission(model, str(image_path(data_dir, i)), i, fs, n, geo(i))
        return
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        futures = [
            client.submit(
                digitize_for_submission, model, str(image_path(data_dir, i)), i, fs, n, geo(i), pure=False
            )
            for i, fs, n in jobs
        ]
        for (i, fs, n), fut in zip(jobs, futures, strict=True):  # in test.csv order
            try:
                yield fut.result()
            except Exception as exc:  # a worker died: that ECG is filled, the rest go on
                err = f"{image_path(data_dir, i)}: worker failed: {type(exc).__name__}: {exc}"
                yield EcgOutcome(i, fs, fallback_segments(fs, n), 0.0, err)
