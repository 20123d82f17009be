"""Ground truth of a rendered image: per-sample pixel positions, visibility, masks, metadata; read-back.

On disk, beside `{id}-{type}.png`:
- `{id}-{type}.json`: metadata (type, seed, every random parameter, layout, style, speed, gain, DPI,
  fs, record, image size) and `page_map` (PageMap.to_dict(): paper mm -> image px, inverse by
  `PageMap.px_to_mm`). Pixel convention: ecgml.page (pixel centres at i + 0.5, origin top-left corner).
  `annotations` (ecgml.render.annotate): `layout` (grid rows/columns, printed grid, rhythm leads in
  order, columns sequential/simultaneous, speed, limb and chest gain, Cabrera, inverted and derived
  leads), `labels` (text, cell), `texts` (footer, header, qr, redaction), `pulses` (row, at_end),
  `rows` (baseline in mm and its ends in px, grid/rhythm, cells) and `cells` (lead, printed text, sign,
  gain, seconds, first sample and count, truth), each with `box_mm`, `box_px` and `quad_px`.
- `{id}-{type}.npz` (compressed):
  `cell` int16 (N,), `sample` int32 (N,) record sample index, `xy` float32 (N, 2) image px (x, y)
  after all geometry, `visible` bool (N,), for every plotted sample of every layout cell (the cell's
  lead, row and column are in the JSON layout's `cells[cell]`); `masks` uint8 (H, W) bit planes
  (ecgml.render.page.MASK_*: trace, grid, text, pulse, separator, paper, occluded, grid_major);
  `rows` uint16 (H, W), bit r set where row r's trace is drawn at its stroke width (traces overlap:
  bits, not labels); `centre` uint16 (H, W), the same for each row's 1-px centreline (8-connected).
  Warped images get their masks by nearest-neighbour remap of the flat page's masks, so the centreline
  of an upscaled photo is a little thicker/gappy; the per-sample `xy` are exact.
  Masks are at full image resolution; np.savez_compressed keeps them small (mostly zeros).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgml.atomic import atomic_path
from ecgml.layout import PageLayout
from ecgml.page import PageMap
from ecgml.records import LEADS
from ecgml.render.page import MASK_OCCLUDED, MASK_PAPER, CellSamples


@dataclass
class SampleTruth:
    cell: np.ndarray  # (N,) int16
    sample: np.ndarray  # (N,) int32
    xy: np.ndarray  # (N, 2) float32 image px
    visible: np.ndarray  # (N,) bool

    def lead_xy(self, layout: PageLayout, lead: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(sample indices, xy, visible) of every cell that plots `lead`."""
        out = []
        for k, c in enumerate(layout.cells):
            if c.lead == lead:
                sel = self.cell == k
                out.append((self.sample[sel], self.xy[sel], self.visible[sel]))
        return out


def sample_truth(
    samples: list[CellSamples], page_map: PageMap, masks: np.ndarray, paper_mm: tuple[float, float]
) -> SampleTruth:
    """Map every plotted sample through `page_map`; visible = on the frame, on paper, not occluded."""
    cell = np.concatenate([np.full(s.n, s.cell, np.int16) for s in samples])
    idx = np.concatenate([np.arange(s.start, s.start + s.n, dtype=np.int32) for s in samples])
    mm = np.concatenate([np.stack([s.x_mm, s.y_mm], 1) for s in samples])
    xy = page_map.mm_to_px(mm)
    w, h = page_map.image_size
    on_paper = (mm[:, 0] >= 0) & (mm[:, 0] <= paper_mm[0]) & (mm[:, 1] >= 0) & (mm[:, 1] <= paper_mm[1])
    ix = np.floor(xy[:, 0]).astype(np.int64)
    iy = np.floor(xy[:, 1]).astype(np.int64)
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    vis = on_paper & inside
    m = masks[iy[vis], ix[vis]]
    vis[vis] = ((m & MASK_PAPER) != 0) & ((m & MASK_OCCLUDED) == 0)
    return SampleTruth(cell, idx, xy.astype(np.float32), vis)


def centreline_mask(
    samples: list[CellSamples], layout: PageLayout, page_map: PageMap, masks: np.ndarray
) -> np.ndarray:
    """Per-row 1-px centreline bits (uint16) drawn in image space: each cell's polyline is sampled
    densely in paper mm, mapped through `page_map` and marked where it lands (on paper only)."""
    from ecgml.render.page import centreline_pixels

    w, h = page_map.image_size
    out = np.zeros((h, w), dtype=np.uint16)
    c = np.array([layout.paper_mm[0] / 2, layout.paper_mm[1] / 2])
    p = page_map.mm_to_px(np.array([c, c + [1.0, 0.0], c + [0.0, 1.0]]))
    scale = 1.3 * max(np.linalg.norm(p[1] - p[0]), np.linalg.norm(p[2] - p[0]))  # px per mm, with margin
    for s in samples:
        mm = np.stack([s.x_mm, s.y_mm], 1)
        if len(mm) < 2:
            continue
        d = np.diff(mm, axis=0)
        k = np.maximum(1, np.ceil(np.hypot(d[:, 0], d[:, 1]) * scale * 2)).astype(np.int64)
        seg = np.repeat(np.arange(len(d)), k)
        t = (np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)) / np.repeat(k, k)
        dense = np.vstack([mm[seg] + d[seg] * t[:, None], mm[-1:]])
        iy, ix = centreline_pixels([page_map.mm_to_px(dense)], (w, h), density=2)
        out[iy, ix] |= np.uint16(1 << s.row)
    out[(masks & MASK_PAPER) == 0] = 0
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def write_truth(
    stem: str | Path,
    meta: dict[str, Any],
    truth: SampleTruth,
    masks: np.ndarray,
    rows: np.ndarray,
    centre: np.ndarray,
) -> None:
    """Write `{stem}.json` and `{stem}.npz` atomically."""
    stem = Path(stem)
    with atomic_path(stem.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(_jsonable(meta)))
    with atomic_path(stem.with_suffix(".npz")) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            cell=truth.cell,
            sample=truth.sample,
            xy=truth.xy,
            visible=truth.visible,
            masks=masks,
            rows=rows,
            centre=centre,
        )


@dataclass
class LoadedTruth:
    meta: dict[str, Any]
    layout: PageLayout
    page_map: PageMap
    samples: SampleTruth
    masks: np.ndarray
    rows: np.ndarray
    centre: np.ndarray


def read_truth(stem: str | Path) -> LoadedTruth:
    stem = Path(stem)
    meta = json.loads(stem.with_suffix(".json").read_text())
    z = np.load(stem.with_suffix(".npz"))
    st = SampleTruth(z["cell"], z["sample"], z["xy"], z["visible"])
    return LoadedTruth(
        meta,
        PageLayout.from_dict(meta["layout"]),
        PageMap.from_dict(meta["page_map"]),
        st,
        z["masks"],
        z["rows"],
        z["centre"],
    )


# ------------------------------------------------------------------------------------------- read-back


def signal_from_coords(
    truth: SampleTruth, layout: PageLayout, page_map: PageMap, fs: int, n: int
) -> np.ndarray:
    """(n, 12) mV read back from the stored pixel coordinates through the inverse map (NaN unplotted)."""
    out = np.full((n, len(LEADS)), np.nan)
    mm = page_map.px_to_mm(truth.xy.astype(np.float64), iterations=20)
    for k, c in enumerate(layout.cells):
        if c.lead not in LEADS or c.derived:
            continue
        sel = truth.cell == k
        scale = c.sign * layout.cell_gain(c)
        out[truth.sample[sel], LEADS.index(c.lead)] = (c.baseline_mm - mm[sel, 1]) / scale
    return out


def signal_from_mask(
    rows: np.ndarray, layout: PageLayout, page_map: PageMap, fs: int, n: int, edge_mm: float = 1.0
) -> np.ndarray:
    """(n, 12) mV read back from the per-row trace masks: every masked pixel goes to page mm through the
    inverse map; per cell, pixels are binned in x (one output pixel wide) and each bin's value is the
    middle of its y extent; bins are interpolated at the sample times. Samples within `edge_mm` of a
    cell's ends (where neighbouring cells' strokes touch) and bins without pixels are NaN."""
    out = np.full((n, len(LEADS)), np.nan)
    scale = float(np.sqrt(abs(np.linalg.det(page_map.homography[:2, :2]))))  # ~px per mm
    bin_mm = 1.0 / max(scale, 1e-6)
    for r in range(layout.n_rows):
        ys, xs = np.nonzero((rows >> r) & 1)
        if ys.size == 0:
            continue
        mm = page_map.px_to_mm(np.stack([xs + 0.5, ys + 0.5], 1).astype(np.float64), iterations=20)
        for _k, c in enumerate(layout.cells):
            if c.row != r or c.lead not in LEADS or c.derived:
                continue
            sel = (mm[:, 0] >= c.x0_mm - 2 * bin_mm) & (mm[:, 0] < c.x1_mm + 2 * bin_mm)
            if not sel.any():
                continue
            xm, y = mm[sel, 0], mm[sel, 1]
            b = np.floor((xm - c.x0_mm) / bin_mm).astype(np.int64)
            b -= b.min()
            nb = int(b.max()) + 1
            ymin = np.full(nb, np.inf)
            ymax = np.full(nb, -np.inf)
            np.minimum.at(ymin, b, y)
            np.maximum.at(ymax, b, y)
            cnt_b = np.bincount(b, minlength=nb)
            ok = cnt_b > 0
            bx = np.bincount(b, weights=xm, minlength=nb)[ok] / cnt_b[ok]  # where the bin's pixels are
            yc = (ymin[ok] + ymax[ok]) / 2
            start = int(c.t0_s * fs + 1e-9)
            cnt = int((c.t1_s - c.t0_s) * fs + 1e-9)
            i = np.arange(start, min(n, start + cnt))
            xs_mm = c.x0_mm + (i / fs - c.t0_s) * layout.speed_mm_s
            v = np.interp(xs_mm, bx, yc, left=np.nan, right=np.nan)
            keep = (xs_mm > c.x0_mm + edge_mm) & (xs_mm < c.x1_mm - edge_mm)
            out[i[keep], LEADS.index(c.lead)] = (c.baseline_mm - v[keep]) / (c.sign * layout.cell_gain(c))
    return out


def snr_db(truth: np.ndarray, est: np.ndarray) -> float:
    """Uncapped SNR over the samples where both are finite, after removing each lead's mean offset."""
    ok = np.isfinite(truth) & np.isfinite(est)
    ps = pn = 0.0
    for j in range(truth.shape[1]):
        m = ok[:, j]
        if not m.any():
            continue
        t, e = truth[m, j], est[m, j]
        e = e - np.mean(e - t)
        ps += float(np.sum(t**2))
        pn += float(np.sum((t - e) ** 2))
    return float(10 * np.log10(ps / pn)) if pn > 0 else float("inf")
