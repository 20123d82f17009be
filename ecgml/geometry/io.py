"""File-level wrapper of `estimate_page`: read an image, write the estimate (JSON) and the canonical page."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ecgml.atomic import atomic_path
from ecgml.errors import EcgmlError
from ecgml.geometry.canonical import canonical_page
from ecgml.geometry.estimate import PageEstimate, estimate_page
from ecgml.images import load_image


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8 (`ecgml.images.load_image`: size limits, transparency on white)."""
    return load_image(path)


def page_estimate_file(
    path: str | Path, out_json: str | Path | None = None, out_canonical: str | Path | None = None
) -> PageEstimate:
    img = read_rgb(path)
    est = estimate_page(img, path)
    if out_json is not None:
        with atomic_path(Path(out_json)) as tmp:
            tmp.write_text(json.dumps(est.to_dict(), default=float))
    if out_canonical is not None:
        page = canonical_page(img, est.page_map)
        with atomic_path(Path(out_canonical)) as tmp:
            ok, buf = cv2.imencode(".png", cv2.cvtColor(page.image, cv2.COLOR_RGB2BGR))
            if not ok:
                raise EcgmlError(out_canonical, "cannot encode the canonical page")
            tmp.write_bytes(buf.tobytes())
    return est
