"""A model folder: `digitizer.json` (which extractor, which weights) beside the weights it names.

The train stage writes one, `ecgml digitize --model FOLDER` reads one, and an MLflow model's
artifacts folder is one. Plain JSON, no MLflow: inference reads it without the tracking layer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgml.atomic import atomic_path
from ecgml.errors import EcgmlError

SPEC_NAME = "digitizer.json"
KINDS = ("classical", "learned")
URI_PREFIXES = ("models:/", "runs:/")


@dataclass
class DigitizerSpec:
    """What a model folder holds: which extractor (`classical` or `learned`) and its weights file."""

    kind: str
    weights: Path | None = None
    uri: str = ""
    version: str | None = None


def is_model_uri(model: str | None) -> bool:
    """True for an MLflow model URI (`models:/...`, `runs:/...`, any `scheme://`): the tracking layer
    fetches these to a local model folder before inference sees them."""
    return bool(model) and ("://" in str(model) or str(model).startswith(URI_PREFIXES))


def write_spec(
    kind: str, folder: Path, weights: Path | None = None, extra: Mapping[str, Any] | None = None
) -> Path:
    """`digitizer.json` beside the weights: the model folder the train stage writes."""
    if kind not in KINDS:
        raise EcgmlError(folder, f"unknown digitizer kind {kind!r}; expected one of {KINDS}")
    path = folder / SPEC_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(
            json.dumps({"kind": kind, "weights": weights.name if weights else None, **(extra or {})})
        )
    return path


def read_spec(folder: Path, uri: str | None = None) -> DigitizerSpec:
    """The spec of a model folder; missing or unreadable files are one clear error."""
    path = folder / SPEC_NAME
    if not path.exists():
        raise EcgmlError(path, f"not a model folder (no {SPEC_NAME})")
    try:
        data = json.loads(path.read_text())
        kind = str(data["kind"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EcgmlError(path, f"unreadable model spec: {type(exc).__name__}: {exc}") from exc
    weights = folder / data["weights"] if data.get("weights") else None
    if weights is not None and not weights.exists():
        raise EcgmlError(weights, f"weights named in {SPEC_NAME} are missing")
    return DigitizerSpec(kind=kind, weights=weights, uri=uri or str(folder))
