"""Contact sheets: one example of every image type, or of every layout family, downscaled and labelled."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ecgml.atomic import atomic_path
from ecgml.records import Record
from ecgml.render.layouts import FAMILIES
from ecgml.render.presets import TYPES, render


def _tile(img: np.ndarray, label: str, tile_h: int) -> np.ndarray:
    cell = np.full((tile_h + 34, int(tile_h * 1.34) + 10, 3), 255, np.uint8)
    k = min(tile_h / img.shape[0], cell.shape[1] / img.shape[1])  # whole image, wide ones narrower
    w, h = int(round(img.shape[1] * k)), int(round(img.shape[0] * k))
    tile = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    x, y = (cell.shape[1] - w) // 2, 34 + (tile_h - h) // 2
    cell[y : y + h, x : x + w] = tile
    cv2.putText(cell, label, (8, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2, cv2.LINE_AA)
    return cell


def _write_sheet(tiles: list[np.ndarray], out_path: str | Path, per_row: int) -> Path:
    while len(tiles) % per_row:
        tiles.append(np.full_like(tiles[0], 255))
    sheet = np.vstack([np.hstack(tiles[i : i + per_row]) for i in range(0, len(tiles), per_row)])
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        ok, buf = cv2.imencode(".png", sheet[..., ::-1])
        tmp.write_bytes(buf.tobytes())
    return out_path


def contact_sheet(
    record: Record,
    out_path: str | Path,
    seed: int = 0,
    types: Sequence[str] = TYPES,
    tile_h: int = 360,
    per_row: int = 5,
) -> Path:
    """Render `record` once per type and write a labelled PNG grid to `out_path`."""
    tiles = [_tile(render(record, t, seed + k).image, t, tile_h) for k, t in enumerate(types)]
    return _write_sheet(tiles, out_path, per_row)


def layout_sheet(
    record: Record,
    out_path: str | Path,
    seed: int = 0,
    layouts: Sequence[str] = FAMILIES,
    image_type: str = "realworld",
    tile_h: int = 360,
    per_row: int = 5,
) -> Path:
    """One page per layout family (real-world pages: headers, label styles, speeds, gains, captures)."""
    tiles = []
    for k, name in enumerate(layouts):
        out = render(record, image_type, seed + k, layout=name)
        lay = out.layout
        gain = f"{lay.gain_mm_mv:g}" + (f"/{lay.chest_gain_mm_mv:g}" if lay.chest_gain_mm_mv else "")
        label = f"{name} {lay.speed_mm_s:g}mm/s {gain}mm/mV {out.meta['params']['capture']}"
        tiles.append(_tile(out.image, label, tile_h))
    return _write_sheet(tiles, out_path, per_row)
