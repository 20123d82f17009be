"""One image of a batch → its output files, as a plain result row: the unit of work the Dask flow maps.

Errors are data here: a corrupt or unreadable image gives `ok=False` and the message, so one bad file
never stops a batch. The digitizer is loaded once per worker process (`ecgml.digitize.load_digitizer`
caches it by model string).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ecgml.errors import EcgmlError
from ecgml.model_folder import is_model_uri


def digitize_image_file(
    image: Path, out_dir: Path, model: str | None = None, fs: int = 500
) -> dict[str, Any]:
    """Digitize `image` into `out_dir` (CSV, WFDB, JSON, overlay); a row saying how it went."""
    from ecgml.digitize import digitize_file

    t0 = time.perf_counter()
    row: dict[str, Any] = {"image": str(image), "ok": False, "error": "", "seconds": 0.0, "outputs": []}
    try:
        if is_model_uri(model):  # fetched once per worker process (inference never imports MLflow)
            from ecgml.tracking import local_model

            model = local_model(model)
        result, paths = digitize_file(image, out_dir, fs, model)
        row.update(ok=True, outputs=[str(p) for p in paths.values()])
        row["mean_confidence"] = float(sum(result.confidence.values()) / max(1, len(result.confidence)))
    except EcgmlError as exc:
        row["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - an unforeseen image must not cost the other images
        row["error"] = f"{image}: unexpected {type(exc).__name__}: {exc}"
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row
