"""The digitizer as an MLflow pyfunc model: image bytes (base64) or paths in, the 12 leads out.

The logged model holds only data (the trace weights, if any, and `digitizer.json` saying which
extractor to build); the code is the installed `ecgml` package, referenced by name. So
`mlflow models serve --env-manager local` and `mlflow.pyfunc.load_model` run exactly the code
`ecgml digitize` runs.

Input: a DataFrame with a column `image` (base64-encoded image file bytes) or `path` (an image file
under the folder `ECGML_SERVE_ROOT` names, relative to it; without that variable paths are refused, so
a client cannot probe which files exist on the server), one image per row; an optional `fs` column
or param sets the output rate (an image carries none; default 500 Hz). Output: one row per (input row,
lead) with the lead's plotted window (`start` sample in the 10 s record, `values` in mV), its
confidence, and `error` ("" when fine).
An input row that cannot be read (bad bytes, bad fs, a huge or non-ECG image, an unforeseen failure)
gives one row with `lead` "" and the error, and the rest go through; predict never raises, so a
server never answers with a stack trace.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from ecgml.errors import EcgmlError

DEFAULT_FS = 500
MAX_FS = 10_000
SERVE_ROOT_ENV = "ECGML_SERVE_ROOT"  # `path` inputs are read only under this folder (off when unset)
OUTPUT_COLUMNS = ["item", "lead", "fs", "start", "values", "confidence", "error"]


def signature() -> Any:
    """Input columns `image` (base64) or `path`, optional param `fs`; long output, one row per lead."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema(
        [
            ColSpec("string", "image", required=False),
            ColSpec("string", "path", required=False),
            ColSpec("long", "fs", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec("long", "item"),
            ColSpec("string", "lead"),
            ColSpec("long", "fs"),
            ColSpec("long", "start"),
            ColSpec(Array("double"), "values"),
            ColSpec("double", "confidence"),
            ColSpec("string", "error"),
        ]
    )
    return ModelSignature(
        inputs=inputs, outputs=outputs, params=ParamSchema([ParamSpec("fs", "long", DEFAULT_FS)])
    )


def encode_image(path: str | Path) -> str:
    """An image file as the base64 text the model's `image` column takes."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


class DigitizerModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """Loads the digitizer once per process; predicts image by image."""

    def load_context(self, context: Any) -> None:
        from ecgml.model_folder import DigitizerSpec

        spec_path = Path(context.artifacts["digitizer"])
        spec = json.loads(spec_path.read_text())
        weights = context.artifacts.get("weights")
        self._spec = DigitizerSpec(
            kind=spec["kind"], weights=Path(weights) if weights else None, uri=str(spec_path)
        )
        self._digitizer: Any = None

    def _get(self) -> Any:
        if self._digitizer is None:
            from ecgml.digitize import load_digitizer_from_spec

            self._digitizer = load_digitizer_from_spec(self._spec)
        return self._digitizer

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """One output row per lead of each readable image; one error row per unreadable input row.

        Never raises for a bad row (MLflow would answer the whole request with a stack trace)."""
        df = pd.DataFrame(model_input)
        try:
            default_fs = _fs((params or {}).get("fs"), DEFAULT_FS)
        except EcgmlError as exc:
            return pd.DataFrame(
                [_error_row(i, DEFAULT_FS, str(exc)) for i in range(len(df))], columns=OUTPUT_COLUMNS
            )
        rows: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory(prefix="ecgml-serve-") as tmp:
            for i, raw in enumerate(df.to_dict("records")):
                rows += self._predict_row(i, {str(k): v for k, v in raw.items()}, default_fs, Path(tmp))
        return pd.DataFrame(rows, columns=OUTPUT_COLUMNS)

    def _predict_row(self, i: int, item: dict[str, Any], default_fs: int, tmp: Path) -> list[dict[str, Any]]:
        from ecgml.digitize import digitize_leads

        fs = default_fs
        try:
            fs = _fs(item.get("fs"), default_fs)
            path = _item_path(item, tmp / f"item{i}", i)
            leads = digitize_leads(self._get(), path, fs)
        except EcgmlError as exc:
            return [_error_row(i, fs, str(exc))]
        except Exception as exc:  # noqa: BLE001 - one bad image must not cost the request
            return [_error_row(i, fs, f"input row {i}: unexpected {type(exc).__name__}: {exc}")]
        return [
            {
                "item": i,
                "lead": lead,
                "fs": fs,
                "start": int(start),
                "values": [float(v) for v in values],
                "confidence": float(conf),
                "error": "",
            }
            for lead, (start, values, conf) in leads.items()
        ]


def _error_row(i: int, fs: int, error: str) -> dict[str, Any]:
    return {"item": i, "lead": "", "fs": fs, "start": 0, "values": [], "confidence": 0.0, "error": error}


def _fs(value: Any, default: int) -> int:
    """The row's (or request's) output rate; missing means `default`."""
    if value is None or (isinstance(value, float) and value != value):
        return default
    try:
        fs = int(value)
        whole = isinstance(value, str) or float(value) == fs
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole or not 1 <= fs <= MAX_FS:
        raise EcgmlError(None, f"fs must be an integer between 1 and {MAX_FS}, got {value!r}")
    return fs


def serve_root() -> Path | None:
    """The folder `path` inputs must lie under (`ECGML_SERVE_ROOT`); None: paths are refused."""
    root = os.environ.get(SERVE_ROOT_ENV)
    return Path(root).resolve() if root else None


def _item_path(item: dict[str, Any], tmp_stem: Path, i: int) -> Path:
    """The image of one input row as a file: the decoded bytes in a temp file, or a given path under
    the configured serve root (a client must not probe which files exist elsewhere)."""
    image = item.get("image")
    if isinstance(image, (bytes, bytearray)):
        data = bytes(image)
    elif isinstance(image, str) and image:
        try:
            data = base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EcgmlError(f"input row {i}", "column 'image' is not valid base64") from exc
    else:
        p = item.get("path")
        if not isinstance(p, str) or not p:
            raise EcgmlError(f"input row {i}", "neither 'image' (base64 bytes) nor 'path' is given")
        root = serve_root()
        if root is None:
            raise EcgmlError(
                f"input row {i}", f"'path' inputs are off; send 'image' bytes (or set {SERVE_ROOT_ENV})"
            )
        full = (root / p).resolve()
        if not full.is_relative_to(root):
            raise EcgmlError(f"input row {i}", f"'path' must lie under the serve root ({SERVE_ROOT_ENV})")
        if not full.is_file():
            raise EcgmlError(f"input row {i}", "no such image under the serve root")
        return full
    suffix = ".jpg" if data[:3] == b"\xff\xd8\xff" else ".png"
    tmp_stem.parent.mkdir(parents=True, exist_ok=True)
    path = tmp_stem.with_suffix(suffix)
    path.write_bytes(data)
    return path
