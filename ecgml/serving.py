"""The digitizer as an MLflow pyfunc model: image bytes (base64) or paths in, the 12 leads out.

The logged model holds only data (the trace weights, if any, and `digitizer.json` saying which
extractor to build); the code is the installed `ecgml` package, referenced by name. So
`mlflow models serve --env-manager local` and `mlflow.pyfunc.load_model` run exactly the code
`ecgml digitize` runs.

Input: a DataFrame with a column `image` (base64-encoded image file bytes) or `path` (an image file
readable by the server), one image per row; an optional `fs` column or param sets the output rate
(an image carries none; default 500 Hz). Output: one row per (input row, lead) with the lead's plotted
window (`start` sample in the 10 s record, `values` in mV), its confidence, and `error` ("" when fine).
An image that cannot be read gives one row with `lead` "" and the error, and the rest go through.
"""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from ecgml.errors import EcgmlError

DEFAULT_FS = 500
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
        from ecgml.digitize import digitize_leads

        df = pd.DataFrame(model_input)
        if "image" not in df.columns and "path" not in df.columns:
            raise EcgmlError(None, "model input needs a column 'image' (base64 image bytes) or 'path'")
        default_fs = int((params or {}).get("fs") or DEFAULT_FS)
        rows: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory(prefix="ecgml-serve-") as tmp:
            for i, raw in enumerate(df.to_dict("records")):
                item = {str(k): v for k, v in raw.items()}
                fs = int(item["fs"]) if pd.notna(item.get("fs")) else default_fs
                try:
                    path = _item_path(item, Path(tmp) / f"item{i}", i)
                    leads = digitize_leads(self._get(), path, fs)
                except EcgmlError as exc:
                    rows.append(
                        {
                            "item": i,
                            "lead": "",
                            "fs": fs,
                            "start": 0,
                            "values": [],
                            "confidence": 0.0,
                            "error": str(exc),
                        }
                    )
                    continue
                for lead, (start, values, conf) in leads.items():
                    rows.append(
                        {
                            "item": i,
                            "lead": lead,
                            "fs": fs,
                            "start": start,
                            "values": [float(v) for v in values],
                            "confidence": conf,
                            "error": "",
                        }
                    )
        return pd.DataFrame(rows, columns=OUTPUT_COLUMNS)


def _item_path(item: dict[str, Any], tmp_stem: Path, i: int) -> Path:
    """The image of one input row as a file: the given path, or the decoded bytes in a temp file."""
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
            raise EcgmlError(f"input row {i}", "neither 'image' nor 'path' is given")
        if not Path(p).is_file():
            raise EcgmlError(p, "file not found")
        return Path(p)
    suffix = ".jpg" if data[:3] == b"\xff\xd8\xff" else ".png"
    tmp_stem.parent.mkdir(parents=True, exist_ok=True)
    path = tmp_stem.with_suffix(suffix)
    path.write_bytes(data)
    return path
