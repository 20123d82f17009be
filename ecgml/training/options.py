"""The knobs of one training run (`TrainOptions`): the pipeline maps params.yaml `train:` onto them."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ecgml.trace.model import TraceModelConfig

CHECKPOINT_S = 600.0  # at least every 10 minutes (INTERFACES.md)
DEFAULT_WORK = Path("runs/trace")


@dataclass
class TrainOptions:
    """Knobs of one training run (the pipeline maps params.yaml `train:` onto these)."""

    records: Path = Path("data/records")
    out: Path = Path("runs/trace/trace_unet.pt")
    work: Path = DEFAULT_WORK  # checkpoints, curve, page cache
    cache: Path | None = None  # page cache folder (default: work / "cache")
    arch: str = "unet"
    steps: int = 3000
    batch_size: int = 8  # strips per step over all ranks (each of N ranks draws batch_size / N)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    resume: bool = False
    init: Path | None = None  # start from these weights (fine-tuning)
    time_budget_s: float | None = None  # stop (and save) after this much training time
    stop_after: int | None = None  # end this session after this step (the schedule still spans `steps`)
    threads: int = 2
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps (ecgml.training.device)
    workers: int = 0  # DataLoader processes cutting/augmenting strips (0: in the training loop)
    render_workers: int = 1  # >1: the page cache is rendered on a Dask LocalCluster of this many processes
    dask_address: str | None = None  # a running Dask scheduler renders the page cache instead
    checkpoint_s: float = CHECKPOINT_S
    checkpoint_every: int = 0  # also checkpoint every this many steps (0: by time only)
    val_every: int = 250
    val_batches: int = 6  # fixed validation batches of 4 strips, 1024 px wide
    pages_per_record: int = 2
    max_records: int = 0  # 0 = all train-split records
    val_pages: int = 24
    types: tuple[str, ...] = ()  # capture types to render (empty: the renderer's training mix)
    type_weights: tuple[float, ...] = ()  # their shares, one per type (empty: TYPE_MIX's, else equal)
    model: TraceModelConfig = field(default_factory=TraceModelConfig)
    strip_mm: float | None = None  # train at this strip height (over the init's; same weights)
    stretch_p: float = 0.0  # share of strips stretched vertically (taller complexes)
    progress: bool = True


def parse_type_mix(text: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """`"0001=0.1,realworld=0.3,lowres"` -> the types and their shares (a name without one: empty shares
    for all, i.e. the renderer's default mix for the names given). Raises ValueError on a bad entry."""
    from ecgml.render.presets import TYPES

    names, weights = [], []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, w = part.partition("=")
        name = name.strip()
        if name not in TYPES:
            raise ValueError(f"unknown image type {name!r} in {text!r}; choose from {', '.join(TYPES)}")
        if name in names:
            raise ValueError(f"image type {name!r} given twice in {text!r}")
        names.append(name)
        if w.strip():
            weights.append(float(w))
            if not weights[-1] > 0:
                raise ValueError(f"share of {name!r} must be positive, got {w!r}")
    if not names:
        raise ValueError(f"no image types in {text!r}")
    if weights and len(weights) != len(names):
        raise ValueError(f"give a share for every type or for none: {text!r}")
    return tuple(names), tuple(weights)


def portable_path(path: str | Path) -> str:
    """`path` relative to the working directory (the project root for the CLI and the stages): what the
    weights' metadata records, so it names the same data on every machine and leaks no home folder."""
    return Path(os.path.relpath(Path(path).absolute())).as_posix()


def cache_dir(opts: TrainOptions) -> Path:
    """The page cache folder of a run (default: work / "cache")."""
    return opts.cache if opts.cache is not None else opts.work / "cache"


def options_json(opts: TrainOptions) -> dict[str, Any]:
    """The options as plain JSON values (paths as text): what a checkpoint records."""
    return dict(json.loads(json.dumps(asdict(opts), default=str)))


def default_threads() -> int:
    return int(os.environ.get("ECGML_THREADS", "2"))
