"""The served model, row by row: a bad input row gives one error row and the others their leads; predict
never raises (MLflow would answer the whole request with a stack trace); `path` inputs only under the
configured serve root."""

from __future__ import annotations

import base64
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ecgml import digitize, model_folder, serving
from ecgml.images import load_image
from ecgml.records import LEADS


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> serving.DigitizerModel:
    """The pyfunc model on a classical spec, its digitizer replaced after the real image loader: the
    rows' isolation is under test here, not the reading (tests/test_tracking_serve.py reads a page)."""

    def leads(digitizer: Any, path: Path, fs: int) -> dict[str, tuple[int, np.ndarray, float]]:
        image = load_image(path)
        if image[0, 0, 0] == 7:
            raise RuntimeError("a bug deep inside")
        return {lead: (0, np.zeros(fs // 4), 0.5) for lead in LEADS}

    monkeypatch.setattr(digitize, "digitize_leads", leads)
    (tmp_path / "model").mkdir()
    spec = model_folder.write_spec("classical", tmp_path / "model")
    m = serving.DigitizerModel()
    m.load_context(SimpleNamespace(artifacts={"digitizer": str(spec)}))
    return m


def _png(path: Path, value: int) -> bytes:
    import cv2

    cv2.imwrite(str(path), np.full((500, 600, 3), value, np.uint8))
    return path.read_bytes()


def test_bad_rows_give_one_error_row_each(model: serving.DigitizerModel, tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_images import _png_header_only

    good = _b64(_png(tmp_path / "good.png", 255))
    huge = _b64(_png_header_only(tmp_path / "huge.png", 40_000, 40_000).read_bytes())
    crash = _b64(_png(tmp_path / "crash.png", 7))
    rows = [
        {"image": good, "fs": 500},
        {"image": "not base64 !", "fs": 500},
        {"image": huge, "fs": 500},
        {"image": crash, "fs": 500},
        {"image": good, "fs": "fast"},
        {"image": good, "fs": 0},
        {"image": good, "fs": 250},
    ]
    out = model.predict(None, pd.DataFrame(rows))
    assert list(out.columns) == serving.OUTPUT_COLUMNS
    for i in (0, 6):
        got = out[out["item"] == i]
        assert list(got["lead"]) == list(LEADS) and (got["error"] == "").all()
    assert (out[out["item"] == 6]["fs"] == 250).all()
    errors = {i: out[out["item"] == i]["error"].tolist() for i in (1, 2, 3, 4, 5)}
    assert all(len(e) == 1 and e[0] for e in errors.values())
    assert "not valid base64" in errors[1][0] and "image too large" in errors[2][0]
    assert "unexpected RuntimeError" in errors[3][0] and "Traceback" not in errors[3][0]
    assert "fs must be an integer" in errors[4][0] and "fs must be an integer" in errors[5][0]


def test_paths_only_under_the_serve_root(
    model: serving.DigitizerModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "served"
    root.mkdir()
    _png(root / "page.png", 255)
    secret = tmp_path / "secret.png"
    _png(secret, 255)
    paths = ["page.png", str(secret), "../secret.png", "nosuch.png"]
    monkeypatch.delenv(serving.SERVE_ROOT_ENV, raising=False)
    out = model.predict(None, pd.DataFrame({"path": paths}))
    assert (out["error"].str.contains("'path' inputs are off")).all() and len(out) == 4
    monkeypatch.setenv(serving.SERVE_ROOT_ENV, str(root))
    out = model.predict(None, pd.DataFrame({"path": paths}))
    assert list(out[out["item"] == 0]["lead"]) == list(LEADS)
    errors = [out[out["item"] == i]["error"].iloc[0] for i in (1, 2, 3)]
    assert "must lie under the serve root" in errors[0] and "must lie under the serve root" in errors[1]
    assert errors[2] == "input row 3: no such image under the serve root"  # the same answer for all
    assert str(tmp_path) not in " ".join(out["error"])  # no server path is echoed back
