"""`ecgml train`: pick the trainer for the options' architecture."""

from __future__ import annotations

from pathlib import Path

from ecgml.errors import EcgmlError
from ecgml.training.options import TrainOptions


def train_any(opts: TrainOptions, build_cache: bool = True) -> Path:
    """Dispatch on `opts.arch`: "unet" (the trace model) or "seed" (the seed baseline)."""
    if opts.arch == "seed":
        from ecgml.training.seed import train_seed

        return train_seed(opts, build_cache)
    if opts.arch != "unet":
        raise EcgmlError(None, f"unknown architecture {opts.arch!r}; choose unet or seed")
    from ecgml.training.trace import train_trace

    return train_trace(opts, build_cache)
