"""Header and footer blocks of real carts (GE MUSE-, Philips-, Mortara-like, ECG-Image-Kit, plain),
redaction blobs over names and IDs, and footers whose speed and gain text is what the page draws.

Names, IDs and dates are synthetic; the rate, intervals and axes are made plausible from the record.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ecgml.layout import PageLayout
from ecgml.records import LEADS, Record
from ecgml.render.text import text_width_mm

TEMPLATES = ("muse", "philips", "mortara", "imagekit", "plain")
_FIRST = ("Anna", "John", "Maria", "Lars", "Wei", "Fatima", "Ola", "Kari", "Jose", "Emma", "Ahmed", "Ingrid")
_LAST = ("Smith", "Hansen", "Garcia", "Olsen", "Chen", "Berg", "Khan", "Larsen", "Muller", "Silva", "Nguyen")
_STATEMENTS = (
    "Sinus rhythm", "Normal ECG", "Sinus bradycardia", "Sinus tachycardia", "Atrial fibrillation",
    "Left axis deviation", "Right bundle branch block", "Left ventricular hypertrophy",
    "Nonspecific T wave abnormality", "Borderline ECG", "Abnormal ECG", "Prolonged QT",
    "First degree AV block", "Possible anterior infarct - age undetermined", "Low voltage QRS",
)  # fmt: skip
_DEVICES = ("MAC 5500 HD", "MAC2000 1.1 12SL v241", "PageWriter TC50", "ELI 250c", "ELI 380",
            "CardioSoft V6.7", "AT-102 plus", "Cardiovit MS-2015")  # fmt: skip
_FILTERS = ("0.05-150 Hz", "0.15-100 Hz", "0.05-40 Hz", "40Hz", "100Hz", "150Hz", "60~ 0.05-150 Hz",
            "0.5-40 Hz 50~")  # fmt: skip


def heart_rate(record: Record) -> int:
    """Beats per minute from lead II's R peaks (a plausible header value, not a measurement)."""
    from scipy.signal import find_peaks

    x = record.signal[:, LEADS.index("II")].astype(np.float64)
    x = np.abs(x - np.median(x))
    top = float(np.percentile(x, 99))
    peaks, _ = find_peaks(x, height=0.5 * top, distance=max(1, int(0.3 * record.fs)))
    if len(peaks) < 2 or top <= 0:
        return 75
    return int(np.clip(round(60 * record.fs / float(np.median(np.diff(peaks)))), 30, 220))


def speed_gain_text(layout: PageLayout, template: str) -> list[str]:
    """The footer's settings, in the template's words, exactly as drawn."""
    s, g = layout.speed_mm_s, layout.gain_mm_mv
    c = layout.chest_gain_mm_mv or g
    if template == "philips":
        return [f"Speed: {s:g} mm/sec", f"Limb: {g:g} mm/mV", f"Chest: {c:g} mm/mV"]
    if c != g:
        return [f"{s:g} mm/s", f"Limb {g:g} mm/mV", f"Chest {c:g} mm/mV"]
    if template == "mortara":
        return [f"{s:g} mm/s", f"{g:g} mm/mV"]
    return [f"{s:g}mm/s", f"{g:g}mm/mV"]


def header_block(
    rng: np.random.Generator, record: Record, template: str, top_mm: float, bottom_mm: float,
    width_mm: float, size_pt: float,
) -> list[tuple[float, float, str]]:  # fmt: skip
    """(x_mm, y_mm, text) header rows between `top_mm` and `bottom_mm` (rows that do not fit are dropped)."""
    name = f"{rng.choice(_LAST)}, {rng.choice(_FIRST)}"
    date = f"{int(rng.integers(1, 29)):02d}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1995, 2025))}"
    time = f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}:{int(rng.integers(0, 60)):02d}"
    rate, pr, qrs = heart_rate(record), int(rng.integers(110, 240)), int(rng.integers(70, 140))
    qt = int(rng.integers(320, 470))
    qtc = int(qt / np.sqrt(60 / max(rate, 30)))
    axes = " ".join(str(int(v)) for v in rng.integers(-30, 90, 3))
    sex, age = str(rng.choice(["Male", "Female"])), int(rng.integers(18, 95))
    stm = [str(s) for s in rng.choice(_STATEMENTS, size=int(rng.integers(1, 5)), replace=False)]
    pid = int(rng.integers(10**5, 10**8))
    if template == "imagekit":
        cols = [[f"ID: {record.name}", f"Name: {name}", f"Date: {date}, {time}"]]
    elif template == "plain":
        cols = [[f"{name}   {date} {time}   ID {pid}"]]
    elif template == "muse":
        cols = [
            [name, f"ID:{pid}", f"{age} Years   {sex}", f"Room:{int(rng.integers(1, 600))}",
             f"Loc:{int(rng.integers(1, 60))}"],
            [date + " " + time, f"Vent. rate {rate} BPM", f"PR interval {pr} ms", f"QRS duration {qrs} ms",
             f"QT/QTc {qt}/{qtc} ms", f"P-R-T axes {axes}"],
            stm + [f"Technician: {rng.choice(_FIRST)}", f"Referred by: Dr {rng.choice(_LAST)}",
                   f"Confirmed By: Dr {rng.choice(_LAST)}"],
        ]  # fmt: skip
    elif template == "philips":
        cols = [
            [name, f"Patient ID {pid}", f"{date} {time}", f"{age}y {sex}"],
            [f"Rate {rate}", f"PR {pr}", f"QRSD {qrs}", f"QT {qt}", f"QTc {qtc}", f"--AXIS-- {axes}"],
            ["-- " + stm[0] + " --"] + stm[1:] + ["Unconfirmed Diagnosis"],
        ]
    else:  # mortara
        cols = [
            [f"ID: {pid}", name, f"{sex}  {age} yrs", f"{date} {time}"],
            [f"Ventricular rate: {rate} BPM", f"PR: {pr} ms  QRS: {qrs} ms", f"QT/QTcB: {qt}/{qtc} ms",
             f"P-QRS-T axes: {axes}"],
            stm + ["Unconfirmed report"],
        ]  # fmt: skip
    pitch = size_pt * 25.4 / 72 * 1.35
    out = []
    for c, lines in enumerate(cols):
        x = 8.0 + c * (width_mm - 16) / max(3, len(cols))
        for r, text in enumerate(lines):
            y = top_mm + pitch * (r + 1)
            if y < bottom_mm:
                out.append((x, y, text))
    return out


def footer_block(
    rng: np.random.Generator, layout: PageLayout, template: str, y_mm: float
) -> list[tuple[float, float, str]]:
    """One footer line split in fields: the speed and gain as drawn, filter, device, page, order fields."""
    fields = speed_gain_text(layout, template)
    if rng.random() < 0.7:
        fields.append(str(rng.choice(_FILTERS)))
    if rng.random() < 0.6:
        fields.append(str(rng.choice(_DEVICES)))
    if rng.random() < 0.3:
        eid, hh, mm = int(rng.integers(1, 99)), int(rng.integers(1, 28)), int(rng.integers(0, 60))
        fields.append(f"EID:{eid} EDT: {hh:02d}:{mm:02d}")
    if rng.random() < 0.4:
        fields.append("Page 1 of 1")
    out, x = [], float(rng.uniform(8, 40))
    step = (layout.paper_mm[0] - x - 10) / max(len(fields), 1)
    for f in fields:
        out.append((x, y_mm, f))
        x += step
    return out


def redaction_boxes(
    rng: np.random.Generator, lines: list[tuple[float, float, str]], font: str, size_pt: float
) -> list[tuple[float, float, float, float, bool]]:
    """Grey blobs over 1-3 of the first header lines (names, IDs): (x0, y0, x1, y1 mm, oval)."""
    if not lines:
        return []
    h = size_pt * 25.4 / 72
    out = []
    for x, y, text in lines[: int(rng.integers(1, min(3, len(lines)) + 1))]:
        w = text_width_mm(text, font, size_pt)
        pad = float(rng.uniform(0.5, 2.0))
        out.append(
            (x - pad, y - h - pad * 0.5, x + w + pad, y + 0.35 * h + pad * 0.5, bool(rng.random() < 0.3))
        )
    return out


def redaction_coverage(
    boxes: list[tuple[float, float, float, float, bool]], size: tuple[int, int], ppm: float
) -> np.ndarray:
    """(H, W) uint8 coverage of filled rounded rectangles or ovals (antialiased)."""
    w, h = size
    cov = np.zeros((h, w), np.uint8)
    for x0, y0, x1, y1, oval in boxes:
        p0 = (int(round(x0 * ppm * 16)), int(round(y0 * ppm * 16)))
        p1 = (int(round(x1 * ppm * 16)), int(round(y1 * ppm * 16)))
        if oval:
            c = ((p0[0] + p1[0]) // 2, (p0[1] + p1[1]) // 2)
            ax = ((p1[0] - p0[0]) // 2, (p1[1] - p0[1]) // 2)
            cv2.ellipse(cov, c, ax, 0, 0, 360, 255, -1, cv2.LINE_AA, 4)
        else:
            r = min(p1[1] - p0[1], p1[0] - p0[0]) // 4
            rects = [((p0[0] + r, p0[1]), (p1[0] - r, p1[1])), ((p0[0], p0[1] + r), (p1[0], p1[1] - r))]
            for a, b in rects:
                pts = np.array([a, (b[0], a[1]), b, (a[0], b[1])], np.int32).reshape(-1, 1, 2)
                cv2.fillPoly(cov, [pts], 255, cv2.LINE_AA, 4)
            for cx, cy in (
                (p0[0] + r, p0[1] + r),
                (p1[0] - r, p0[1] + r),
                (p0[0] + r, p1[1] - r),
                (p1[0] - r, p1[1] - r),
            ):
                cv2.circle(cov, (cx, cy), r, 255, -1, cv2.LINE_AA, 4)
    return cov


def add_header_footer(
    rng: np.random.Generator,
    record: Record,
    layout: PageLayout,
    style: Any,
    header_mm: float,
    footer_mm: float,
) -> dict[str, Any]:
    """Fill `style` with a header (when there is room), a footer and maybe redactions; return parameters."""
    template = str(rng.choice(TEMPLATES, p=[0.35, 0.2, 0.2, 0.15, 0.1]))
    p: dict[str, Any] = {"template": template, "header_mm": header_mm}
    if header_mm >= 8:
        style.header_lines = header_block(
            rng, record, template, 2.0, header_mm - 2.0, layout.paper_mm[0], style.header_pt
        )
        if style.header_lines and rng.random() < 0.2:
            style.redactions = redaction_boxes(rng, style.header_lines, style.header_font, style.header_pt)
            style.redaction_grey = int(rng.integers(90, 210))
    if footer_mm > 0 and rng.random() < 0.85:
        style.footer_pt = float(rng.uniform(6.5, 10))
        y = layout.paper_mm[1] - float(rng.uniform(2.5, max(3.0, footer_mm - 2.5)))
        style.footer_lines = footer_block(rng, layout, template, y)
    else:
        style.footer = False
    p["redactions"] = len(style.redactions)
    p["footer"] = [t for _, _, t in style.footer_lines]
    return p
