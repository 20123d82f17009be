"""The flat page: a record drawn on paper in millimetres and rasterised at `px_per_mm` with OpenCV.

Coordinates follow ecgml.page: paper mm with the origin at the top-left corner, image pixels with
pixel centres at (i + 0.5, j + 0.5); a flat page maps mm to px by multiplying with `px_per_mm`.
Grid lines are drawn analytically (exact area coverage per pixel); traces, pulses and separators are
antialiased OpenCV polylines drawn `supersample` times finer and area-averaged; text uses PIL.
Every layer is kept as a coverage so the masks come out of the drawing itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from ecgml.errors import EcgmlError
from ecgml.layout import PageLayout, Pulse
from ecgml.records import LEADS, Record
from ecgml.render.header import redaction_coverage
from ecgml.render.labels import label_items, row_is_rhythm  # noqa: F401 (re-export)
from ecgml.render.style import PageStyle
from ecgml.render.text import TextItem, draw_text_coverage, pt_to_px

# Bit planes of the `masks` array (uint8), identical in the flat page and in captured images.
MASK_TRACE = 1
MASK_GRID = 2
MASK_TEXT = 4
MASK_PULSE = 8
MASK_SEPARATOR = 16
MASK_PAPER = 32
MASK_OCCLUDED = 64
MASK_GRID_MAJOR = 128
MASK_BITS = {
    "trace": MASK_TRACE,
    "grid": MASK_GRID,
    "text": MASK_TEXT,
    "pulse": MASK_PULSE,
    "separator": MASK_SEPARATOR,
    "paper": MASK_PAPER,
    "occluded": MASK_OCCLUDED,
    "grid_major": MASK_GRID_MAJOR,
}
CV_AA_EXTRA = 1.38  # px an OpenCV antialiased line of even thickness covers beyond it (measured)
CV_AA_ONE = 1.31  # px across that a thickness-1 antialiased line covers
COVERAGE_THRESHOLD = 64  # a pixel belongs to a layer's mask when that layer covers >= 25 % of it


@dataclass
class CellSamples:
    """The plotted samples of one layout cell: record indices `start .. start+n-1` and their page mm."""

    cell: int
    lead: str
    row: int
    start: int
    x_mm: np.ndarray
    y_mm: np.ndarray

    @property
    def n(self) -> int:
        return int(self.x_mm.size)


@dataclass
class FlatPage:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    masks: np.ndarray  # (H, W) uint8 bit planes (MASK_*)
    rows: np.ndarray  # (H, W) uint16, bit r set where row r's trace is drawn (stroke width)
    centre: np.ndarray  # (H, W) uint16, bit r set on row r's 1-px centreline (8-connected, no AA)
    px_per_mm: float
    layout: PageLayout
    style: PageStyle
    samples: list[CellSamples]
    text_boxes: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)
    text_items: list[TextItem] = field(default_factory=list)  # what each text box is (kind, cell)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])


def check_record(record: Record, duration_s: float = 10.0) -> None:
    """Raise EcgmlError unless the record is 12 finite leads, an integer fs and at least `duration_s`."""
    src = record.meta.get("source", record.name) or None
    sig = np.asarray(record.signal)
    if sig.ndim != 2 or sig.shape[1] != len(LEADS):
        raise EcgmlError(src, f"need 12 leads, got shape {sig.shape}")
    if not isinstance(record.fs, int | np.integer) or record.fs <= 0:
        raise EcgmlError(src, f"sampling rate must be a positive integer, got {record.fs!r}")
    if sig.shape[0] < int(round(duration_s * record.fs)):
        raise EcgmlError(src, f"record lasts {sig.shape[0] / record.fs:.2f} s, need {duration_s:g} s")
    if not np.all(np.isfinite(sig)):
        raise EcgmlError(src, "record contains NaN or infinite samples")


def cell_windows(layout: PageLayout, fs: int) -> list[tuple[int, int]]:
    """(first sample, count) plotted in each cell; on the standard page these are `lead_window`'s."""
    out = []
    for c in layout.cells:
        start = int(c.t0_s * fs + 1e-9)
        n = int((c.t1_s - c.t0_s) * fs + 1e-9)
        out.append((start, min(n, int(round(10 * fs)) - start)))
    return out


def lead_signal(record: Record, lead: str) -> np.ndarray:
    """One lead of the record: a standard lead, or an extra one in `record.meta["extra_leads"]`."""
    if lead in LEADS:
        return record.signal[:, LEADS.index(lead)]
    extra = record.meta.get("extra_leads", {})
    if lead not in extra:
        raise EcgmlError(record.meta.get("source", record.name) or None, f"record has no lead {lead}")
    return np.asarray(extra[lead], dtype=np.float32)


def cell_samples(record: Record, layout: PageLayout) -> list[CellSamples]:
    """Page millimetres of every plotted sample: x = x0 + (t - t0) * speed, y = baseline - sign * v * gain."""
    out = []
    for k, (cell, (start, n)) in enumerate(zip(layout.cells, cell_windows(layout, record.fs), strict=True)):
        i = np.arange(start, start + n)
        v = lead_signal(record, cell.lead)[start : start + n].astype(np.float64)
        x = cell.x0_mm + (i / record.fs - cell.t0_s) * layout.speed_mm_s
        y = cell.baseline_mm - cell.sign * v * layout.cell_gain(cell)
        out.append(CellSamples(k, cell.lead, cell.row, start, x, y))
    return out


def plotted_mask(layout: PageLayout, fs: int, n_samples: int) -> np.ndarray:
    """(n_samples, 12) bool: which samples of each lead the layout plots (the CSV's non-NaN cells)."""
    m = np.zeros((n_samples, len(LEADS)), dtype=bool)
    for cell, (start, n) in zip(layout.cells, cell_windows(layout, fs), strict=True):
        if cell.lead in LEADS and not cell.derived:
            m[start : start + n, LEADS.index(cell.lead)] = True
    return m


# --------------------------------------------------------------------------------------------- drawing


def _profile(n: int, centres: np.ndarray, width: float) -> np.ndarray:
    """Exact 1-D area coverage of lines of `width` px centred at `centres` (continuous px)."""
    cov = np.zeros(n, dtype=np.float32)
    half = max(width, 0.05) / 2
    for c in centres:
        lo, hi = c - half, c + half
        for j in range(max(0, math.floor(lo)), min(n, math.ceil(hi))):
            cov[j] = max(cov[j], min(hi, j + 1) - max(lo, j))
    return cov


def snap_to_pixels(c_mm: np.ndarray, px_per_mm: float) -> np.ndarray:
    """Matplotlib's snapping of a thin straight line (Agg, odd rounded width): the line at continuous
    coordinate c px (from the top-left corner) is drawn centred on pixel floor(c + 0.5), so on average
    half a pixel right of / below c. ECG-Image-Kit's grid is drawn this way (0.5 pt at 200 DPI)."""
    return (np.floor(c_mm * px_per_mm + 0.5) + 0.5) / px_per_mm


def _grid_coverages(
    style: PageStyle, paper_mm: tuple[float, float], ppm: float, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(minor, major) coverage in [0, 1]; lines every 1 and 5 mm anchored at the bottom-left corner."""
    w, h = size
    ox, oy = style.grid_offset_mm
    kx = np.arange(-1, math.ceil(paper_mm[0]) + 2)
    ky = np.arange(-1, math.ceil(paper_mm[1]) + 2)
    xs_mm, ys_mm = kx + ox, paper_mm[1] - ky - oy
    if style.snap_grid:  # onto the pixel centres of the raster the page was first drawn on
        lat = style.snap_px_per_mm or ppm
        xs_mm, ys_mm = snap_to_pixels(xs_mm, lat), snap_to_pixels(ys_mm, lat)
    xs, ys = xs_mm * ppm, ys_mm * ppm
    wmaj = max(pt_to_px(style.grid_major_pt, ppm), 0.3)
    wmin = max(pt_to_px(style.grid_minor_pt, ppm), 0.2)
    major_x, major_y = (kx % 5) == 0, (ky % 5) == 0
    if style.grid_dots:
        wmaj, wmin = wmaj * 2.0, wmin * 2.0
    cmx = _profile(w, xs[major_x], wmaj)
    cmy = _profile(h, ys[major_y], wmaj)
    major = cmy[:, None] * cmx[None, :] if style.grid_dots else np.maximum(cmy[:, None], cmx[None, :])
    if style.grid_minor:
        cnx = _profile(w, xs[~major_x], wmin)
        cny = _profile(h, ys[~major_y], wmin)
        minor = cny[:, None] * cnx[None, :] if style.grid_dots else np.maximum(cny[:, None], cnx[None, :])
    else:
        minor = np.zeros((h, w), dtype=np.float32)
    return minor, major


def _panel_coverages(
    style: PageStyle, layout: PageLayout, ppm: float, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(minor, major) coverage of a panel page: each box's grid (when `style.grid`) anchored at the box's
    own left and bottom edges and only inside it, and a frame around it (`style.panel_frame`)."""
    w, h = size
    minor = np.zeros((h, w), np.float32)
    major = np.zeros((h, w), np.float32)
    boxes = {
        (c.x0_mm, c.box_top_mm, c.x1_mm, c.box_bottom_mm)
        for c in layout.cells
        if c.box_bottom_mm > c.box_top_mm
    }
    wmaj = max(pt_to_px(style.grid_major_pt, ppm), 0.3)
    for x0, y0, x1, y1 in sorted(boxes):
        px0, py0 = max(0, math.floor(x0 * ppm) - 1), max(0, math.floor(y0 * ppm) - 1)
        px1, py1 = min(w, math.ceil(x1 * ppm) + 2), min(h, math.ceil(y1 * ppm) + 2)
        if px1 <= px0 or py1 <= py0:
            continue
        sub = ((px1 - px0) / ppm, (py1 - py0) / ppm)
        if style.grid:
            local = replace(
                style, grid_offset_mm=(x0 - px0 / ppm, sub[1] - (y1 - py0 / ppm)), snap_grid=False
            )
            mi, ma = _grid_coverages(local, sub, ppm, (px1 - px0, py1 - py0))
        else:
            mi = ma = np.zeros((py1 - py0, px1 - px0), np.float32)
        # only inside the box (a line on its edge keeps its full width)
        half = 0.5 * wmaj / ppm
        cx = (np.arange(px0, px1) + 0.5) / ppm
        cy = (np.arange(py0, py1) + 0.5) / ppm
        inside = ((cy >= y0 - half) & (cy <= y1 + half))[:, None] & ((cx >= x0 - half) & (cx <= x1 + half))[
            None, :
        ]
        mi, ma = np.where(inside, mi, 0.0), np.where(inside, ma, 0.0)
        if style.panel_frame:
            fx = _profile(px1 - px0, np.array([x0 * ppm - px0, x1 * ppm - px0]), wmaj)
            fy = _profile(py1 - py0, np.array([y0 * ppm - py0, y1 * ppm - py0]), wmaj)
            ma = np.maximum(ma, np.where(inside, np.maximum(fx[None, :], fy[:, None]), 0.0))
        np.maximum(minor[py0:py1, px0:px1], mi, out=minor[py0:py1, px0:px1])
        np.maximum(major[py0:py1, px0:px1], ma, out=major[py0:py1, px0:px1])
    return minor, major


def stroke(
    polys_px: list[np.ndarray], thickness_px: float, size: tuple[int, int], supersample: int = 3
) -> tuple[np.ndarray, int, int] | None:
    """Antialiased open polylines (continuous px) -> (coverage crop uint8, x0, y0) or None if off-page."""
    w, h = size
    polys = [p for p in polys_px if len(p) >= 2]
    if not polys:
        return None
    allp = np.concatenate(polys)
    pad = thickness_px + 3
    x0 = max(0, math.floor(allp[:, 0].min() - pad))
    y0 = max(0, math.floor(allp[:, 1].min() - pad))
    x1 = min(w, math.ceil(allp[:, 0].max() + pad))
    y1 = min(h, math.ceil(allp[:, 1].max() + pad))
    if x1 <= x0 or y1 <= y0:
        return None
    s = supersample
    pts = []
    for p in polys:
        q = (p - np.array([x0, y0])) * s - 0.5  # to OpenCV's integer-centred pixels
        q = np.clip(q, -1e5, 1e5)
        pts.append(np.round(q * 16).astype(np.int32).reshape(-1, 1, 2))
    acc = np.zeros(((y1 - y0) * s, (x1 - x0) * s), dtype=np.float32)
    for th, weight in cv_line_mix(thickness_px * s):
        canvas = np.zeros(acc.shape, dtype=np.uint8)
        cv2.polylines(canvas, pts, False, 255, thickness=th, lineType=cv2.LINE_AA, shift=4)
        acc += weight * canvas
    if s > 1:
        acc = cv2.resize(acc, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    return np.clip(acc + 0.5, 0, 255).astype(np.uint8), x0, y0


def cv_line_mix(width: float) -> list[tuple[int, float]]:
    """(thickness, weight) of OpenCV antialiased lines whose weighted sum covers `width` px across.

    OpenCV draws an even thickness t as t + 1.38 px across its antialiased edges (an odd one as t + 1),
    so one line of round(width) was 0.6 px too wide (2.7 px for ECG-Image-Kit's 2.15 px trace); mixing
    the two nearest even thicknesses gives any width with the same full core and soft edges."""
    if width <= CV_AA_ONE:  # thinner than OpenCV's thinnest line: a fainter one
        return [(1, width / CV_AA_ONE)]
    if width <= 2 + CV_AA_EXTRA:
        a = (width - CV_AA_ONE) / (2 + CV_AA_EXTRA - CV_AA_ONE)
        return [(1, 1 - a), (2, a)]
    n = int((width - CV_AA_EXTRA) // 2)
    a = (width - (2 * n + CV_AA_EXTRA)) / 2
    return [(2 * n, 1 - a), (2 * n + 2, a)]


def centreline_pixels(
    polys_px: list[np.ndarray], size: tuple[int, int], density: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of every pixel the exact polylines pass through (sampled `density` times per px).

    OpenCV's 1-px lines round the end points to whole pixels, which moves steep QRS strokes by up to
    half a pixel in x (several px in y); this keeps the centreline mask true to the sub-pixel path."""
    w, h = size
    out_y, out_x = [], []
    for p in polys_px:
        if len(p) < 2:
            continue
        d = np.diff(p, axis=0)
        k = np.maximum(1, np.ceil(np.hypot(d[:, 0], d[:, 1]) * density)).astype(np.int64)
        seg = np.repeat(np.arange(len(d)), k)
        t = (np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)) / np.repeat(k, k)
        pts = np.vstack([p[seg] + d[seg] * t[:, None], p[-1:]])
        ix = np.floor(pts[:, 0]).astype(np.int64)
        iy = np.floor(pts[:, 1]).astype(np.int64)
        ok = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
        out_y.append(iy[ok])
        out_x.append(ix[ok])
    if not out_y:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_y), np.concatenate(out_x)


def _blend(img: np.ndarray, cov: np.ndarray, rgb: tuple[int, int, int], x0: int = 0, y0: int = 0) -> None:
    """img[crop] = img * (1 - a) + rgb * a, in place; `cov` is uint8 (0..255) or float (0..1)."""
    a = cov.astype(np.float32)
    if cov.dtype == np.uint8:
        a *= 1 / 255
    h, w = a.shape
    sub = img[y0 : y0 + h, x0 : x0 + w]
    sub += a[..., None] * (np.asarray(rgb, dtype=np.float32) - sub)


def _fake_qr(seed: int, modules: int = 25) -> np.ndarray:
    r = np.random.default_rng(seed)
    q = r.random((modules, modules)) < 0.5
    for oy, ox in ((0, 0), (0, modules - 7), (modules - 7, 0)):
        q[oy : oy + 7, ox : ox + 7] = True
        q[oy + 1 : oy + 6, ox + 1 : ox + 6] = False
        q[oy + 2 : oy + 5, ox + 2 : ox + 5] = True
    return q


def pulse_polyline(p: Pulse, gain_mm_mv: float) -> np.ndarray:
    """(k, 2) mm: the step up to 1 mV, across (stepping down half-way on mixed-gain rows), and down."""
    h = p.height_mm or gain_mm_mv
    b, x0, x1 = p.baseline_mm, p.x0_mm, p.x1_mm
    if p.step_mm > 0:
        xm = (x0 + x1) / 2
        s = p.step_mm
        return np.array([[x0, b], [x0, b - h], [xm, b - h], [xm, b - s], [x1, b - s], [x1, b]])
    return np.array([[x0, b], [x0, b - h], [x1, b - h], [x1, b]])


def page_text(layout: PageLayout, style: PageStyle) -> list[TextItem]:
    items: list[TextItem] = []
    if style.labels:
        items += label_items(layout, style)
    if style.footer_lines:
        for x, y, text in style.footer_lines:
            items.append(TextItem(text, x, y, style.footer_pt, style.header_font, kind="footer"))
    elif style.footer:
        yb = layout.paper_mm[1] - 5.0
        font, pt = style.label_font, style.label_pt
        items.append(TextItem(f"{layout.speed_mm_s:g}mm/s", 50.0, yb, pt, font, kind="footer"))
        gain = f"{layout.gain_mm_mv:g}mm/mV"
        if layout.chest_gain_mm_mv and layout.chest_gain_mm_mv != layout.gain_mm_mv:  # mixed: say both
            gain = f"limb {gain}, chest {layout.chest_gain_mm_mv:g}mm/mV"
        items.append(TextItem(gain, 100.0, yb, pt, font, kind="footer"))
        if style.footer_extra:
            items.append(TextItem(style.footer_extra, 150.0, yb, pt * 0.9, font, kind="footer"))
    for x, y, text in style.header_lines:
        items.append(TextItem(text, x, y, style.header_pt, style.header_font, kind="header"))
    return items


def draw_page(
    record: Record, layout: PageLayout, style: PageStyle, px_per_mm: float, supersample: int = 3
) -> FlatPage:
    """Rasterise `record` (its first 10 s) on `layout` in `style`: image, masks and sample positions."""
    check_record(record)
    ppm = float(px_per_mm)
    w = int(round(layout.paper_mm[0] * ppm))
    h = int(round(layout.paper_mm[1] * ppm))
    img = np.empty((h, w, 3), dtype=np.float32)
    img[:] = np.asarray(style.paper_rgb, dtype=np.float32)
    masks = np.full((h, w), MASK_PAPER, dtype=np.uint8)
    rows = np.zeros((h, w), dtype=np.uint16)
    centre = np.zeros((h, w), dtype=np.uint16)

    boxed = any(c.box_bottom_mm > c.box_top_mm for c in layout.cells)
    if style.grid or (boxed and style.panel_frame):
        if boxed and (style.grid_panels or not style.grid):
            minor, major = _panel_coverages(style, layout, ppm, (w, h))
        else:
            minor, major = _grid_coverages(style, layout.paper_mm, ppm, (w, h))
        _blend(img, minor, style.grid_minor_rgb)
        _blend(img, major, style.grid_major_rgb)
        masks[(minor >= 0.25) | (major >= 0.25)] |= MASK_GRID
        masks[major >= 0.25] |= MASK_GRID_MAJOR

    items = page_text(layout, style)
    text_cov, boxes = draw_text_coverage(items, (w, h), ppm)
    if style.qr:
        q = _fake_qr(style.qr_seed)
        side = int(round(style.qr_mm * ppm))
        qx, qy = int(round((layout.paper_mm[0] - 8 - style.qr_mm) * ppm)), int(round(6 * ppm))
        qimg = cv2.resize(q.astype(np.uint8) * 255, (side, side), interpolation=cv2.INTER_NEAREST)
        text_cov = text_cov.copy()
        sub = text_cov[qy : qy + side, qx : qx + side]
        np.maximum(sub, qimg[: sub.shape[0], : sub.shape[1]], out=sub)
        boxes.append((qx / ppm, qy / ppm, (qx + side) / ppm, (qy + side) / ppm))
        items.append(TextItem("<qr>", qx / ppm, qy / ppm, kind="qr"))
    _blend(img, text_cov, style.text_rgb)
    masks[text_cov >= COVERAGE_THRESHOLD] |= MASK_TEXT
    if style.redactions:  # grey blobs over names and IDs, on top of the text they hide
        red = redaction_coverage(style.redactions, (w, h), ppm)
        _blend(img, red, (style.redaction_grey,) * 3)
        masks[red >= COVERAGE_THRESHOLD] |= MASK_TEXT
        for x0_, y0_, x1_, y1_, _ in style.redactions:
            items.append(TextItem("<redaction>", x0_, y0_, kind="redaction"))
            boxes.append((x0_, y0_, x1_, y1_))
    if style.pen_strokes:  # handwriting and pen marks: drawn in ink, masked as text (annotations)
        res = stroke(
            [np.asarray(p) * ppm for p in style.pen_strokes], style.pen_mm * ppm, (w, h), supersample
        )
        if res is not None:
            cov, x0, y0 = res  # blended last, on top of the trace
            sub_m = masks[y0 : y0 + cov.shape[0], x0 : x0 + cov.shape[1]]
            sub_m[cov >= COVERAGE_THRESHOLD] |= MASK_TEXT
            pen_cov, pen_x0, pen_y0 = cov, x0, y0

    samples = cell_samples(record, layout)
    trace_w = pt_to_px(style.trace_pt, ppm)
    by_row: dict[int, list[np.ndarray]] = {}
    for cs in samples:
        by_row.setdefault(cs.row, []).append(np.stack([cs.x_mm, cs.y_mm], axis=1) * ppm)
    for r, polys in sorted(by_row.items()):
        res = stroke(polys, trace_w, (w, h), supersample)
        if res is None:
            continue
        cov, x0, y0 = res
        _blend(img, cov, style.trace_rgb, x0, y0)
        on = cov >= COVERAGE_THRESHOLD
        sub_m = masks[y0 : y0 + cov.shape[0], x0 : x0 + cov.shape[1]]
        sub_m[on] |= MASK_TRACE
        sub_r = rows[y0 : y0 + cov.shape[0], x0 : x0 + cov.shape[1]]
        sub_r[on] |= np.uint16(1 << r)
        iy, ix = centreline_pixels(polys, (w, h))
        centre[iy, ix] |= np.uint16(1 << r)

    pulse_polys = [pulse_polyline(p, layout.gain_mm_mv) * ppm for p in layout.pulses]
    sep_polys = []
    if style.separators:
        last_col: dict[int, int] = {}
        for c in layout.cells:
            last_col[c.row] = max(last_col.get(c.row, 0), c.col)
        for c in layout.cells:
            hh = style.separator_half_mv * layout.cell_gain(c)
            if c.col < last_col[c.row]:
                sep_polys.append(
                    np.array([[c.x1_mm, c.baseline_mm - hh], [c.x1_mm, c.baseline_mm + hh]]) * ppm
                )
    for polys, width_pt, bit in (
        (pulse_polys, style.pulse_pt, MASK_PULSE),
        (sep_polys, style.separator_pt, MASK_SEPARATOR),
    ):
        res = stroke(polys, pt_to_px(width_pt, ppm), (w, h), supersample)
        if res is None:
            continue
        cov, x0, y0 = res
        _blend(img, cov, style.trace_rgb, x0, y0)
        sub_m = masks[y0 : y0 + cov.shape[0], x0 : x0 + cov.shape[1]]
        sub_m[cov >= COVERAGE_THRESHOLD] |= bit

    if style.pen_strokes and "pen_cov" in locals():  # ink drawn over the trace hides it there
        sub_m = masks[pen_y0 : pen_y0 + pen_cov.shape[0], pen_x0 : pen_x0 + pen_cov.shape[1]]
        _blend(img, pen_cov, style.pen_rgb, pen_x0, pen_y0)
        sub_m[pen_cov >= 128] |= MASK_OCCLUDED
    image = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    text_boxes = [(it.text, b) for it, b in zip(items, boxes, strict=True)]
    return FlatPage(image, masks, rows, centre, ppm, layout, style, samples, text_boxes, items)
