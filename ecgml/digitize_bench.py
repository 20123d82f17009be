"""The digitizer benchmark: a fixed-seed renderer test set (validation/test-split records only), a
submission made with a chosen digitizer, scored per Kaggle type with `ecgml.metric`, plus seconds per
image per type. With `truth_geometry`, each image is read through the renderer's own page map and
layout instead of the estimated ones, which separates geometry error from trace error.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgml.errors import EcgmlError

KAGGLE_TYPES = ("0001", "0003", "0004", "0005", "0006", "0009", "0010", "0011", "0012")
BENCH_SEED = 20251125
ARCH_MODELS = {"classical": "classical", "unet": "unet", "seed": "seed"}


def bench_records(
    records_dir: str | Path,
    split_file: str | Path | None = None,
    splits: tuple[str, ...] = ("validation", "test"),
) -> list[Path]:
    """Validation- and test-split records of `records_dir` (never training records), sorted.

    `splits=("validation",)` gives a tuning set whose records the test split never shares."""
    from ecgml.records import iter_wfdb_paths
    from ecgml.splits import load_split_file, records_in_split

    paths = iter_wfdb_paths(records_dir)
    table = load_split_file(split_file) if split_file and Path(split_file).exists() else {}
    out = [p for split in splits for p in records_in_split(paths, split, table)]
    if not out:
        raise EcgmlError(records_dir, "no validation or test records found")
    return sorted(out)


def make_bench_set(
    out_dir: str | Path,
    records_dir: str | Path,
    per_type: int = 20,
    types: tuple[str, ...] = KAGGLE_TYPES,
    seed: int = BENCH_SEED,
    split_file: str | Path | None = None,
    splits: tuple[str, ...] = ("validation", "test"),
) -> Path:
    """Render the test-layout set (about `per_type` images per type) unless it is already there."""
    from ecgml.synth import synth_dataset

    out_dir = Path(out_dir)
    if (out_dir / "solution.csv").exists():
        return out_dir
    recs = bench_records(records_dir, split_file, splits)
    per_record = max(1, math.ceil(per_type * len(types) / len(recs)))
    synth_dataset(recs, out_dir, list(types), per_record=per_record, seed=seed, test=True)
    return out_dir


@dataclass
class BenchResult:
    model: str
    truth_geometry: bool
    score: float
    per_type: dict[str, float]
    seconds_per_image: dict[str, float]  # median per type
    n_images: dict[str, int]
    frac_lt_10db: float
    failures: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def truth_geometry_for(set_dir: Path, ecg_id: int | str, image_type: str) -> Any:
    """The renderer's page map and layout for one test image, as a digitize.Geometry."""
    from ecgml.digitize import Geometry
    from ecgml.layout import PageLayout
    from ecgml.page import PageMap

    meta = json.loads((set_dir / "truth" / f"{ecg_id}-{image_type}.json").read_text())
    return Geometry(PageMap.from_dict(meta["page_map"]), PageLayout.from_dict(meta["layout"]), 1.0, "given")


def run_bench(set_dir: str | Path, model: str, truth_geometry: bool = False, workers: int = 1) -> BenchResult:
    """Submit with `model` (or read through the true geometry), then score per type and time it."""
    from ecgml.digitize import submit
    from ecgml.kaggle import read_types
    from ecgml.metric import score_files

    set_dir = Path(set_dir)
    types = read_types(set_dir / "types.csv")
    tag = f"{model.replace('/', '_').replace(':', '_')}{'-truthgeo' if truth_geometry else ''}"
    sub = set_dir / "runs" / f"submission-{tag}.csv"
    geo = (lambda i: truth_geometry_for(set_dir, i, types[str(i)])) if truth_geometry else None
    summary = submit(set_dir, sub, model, workers, geometry_for=geo)
    report = score_files(set_dir / "solution.csv", sub, set_dir / "types.csv")
    secs: dict[str, list[float]] = {}
    for i, s in summary.seconds.items():
        secs.setdefault(types[str(i)], []).append(s)
    return BenchResult(
        model=model,
        truth_geometry=truth_geometry,
        score=report.score,
        per_type=dict(report.per_type),
        seconds_per_image={t: float(np.median(v)) for t, v in sorted(secs.items())},
        n_images={t: len(v) for t, v in sorted(secs.items())},
        frac_lt_10db=report.frac_lt_10db,
        failures=summary.failures,
    )


def markdown_table(results: list[BenchResult]) -> str:
    """One row per type, one score column (and one seconds column) per result."""
    types = sorted({t for r in results for t in r.per_type})
    head = ["type", "n"]
    for r in results:
        g = "truth geometry" if r.truth_geometry else "estimated geometry"
        head += [f"{r.model}, {g} (dB)", "s/image"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in types:
        row = [t, str(results[0].n_images.get(t, 0))]
        for r in results:
            row += [
                f"{r.per_type.get(t, float('nan')):.2f}",
                f"{r.seconds_per_image.get(t, float('nan')):.2f}",
            ]
        lines.append("| " + " | ".join(row) + " |")
    row = ["**overall**", str(sum(results[0].n_images.values()))]
    for r in results:
        row += [f"**{r.score:.2f}**", ""]
    lines.append("| " + " | ".join(row) + " |")
    row = ["ECGs < 10 dB", ""]
    for r in results:
        row += [f"{r.frac_lt_10db:.1%}", ""]
    lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
