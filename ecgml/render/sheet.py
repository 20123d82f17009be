"""A contact sheet: one example of every image type side by side, downscaled, labelled."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ecgml.atomic import atomic_path
from ecgml.records import Record
from ecgml.render.presets import TYPES, render


def contact_sheet(
    record: Record,
    out_path: str | Path,
    seed: int = 0,
    types: Sequence[str] = TYPES,
    tile_h: int = 360,
    per_row: int = 5,
) -> Path:
    """Render `record` once per type and write a labelled PNG grid to `out_path`."""
    tiles = []
    for k, t in enumerate(types):
        img = render(record, t, seed + k).image
        w = int(round(img.shape[1] * tile_h / img.shape[0]))
        tile = cv2.resize(img, (w, tile_h), interpolation=cv2.INTER_AREA)
        cell = np.full((tile_h + 34, int(tile_h * 1.34) + 10, 3), 255, np.uint8)
        x = max(0, (cell.shape[1] - w) // 2)
        cell[34:, x : x + min(w, cell.shape[1])] = tile[:, : cell.shape[1]]
        cv2.putText(cell, t, (8, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2, cv2.LINE_AA)
        tiles.append(cell)
    while len(tiles) % per_row:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.hstack(tiles[i : i + per_row]) for i in range(0, len(tiles), per_row)]
    sheet = np.vstack(rows)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        ok, buf = cv2.imencode(".png", sheet[..., ::-1])
        tmp.write_bytes(buf.tobytes())
    return out_path
