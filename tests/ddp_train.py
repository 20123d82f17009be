"""One rank of the two-process DDP test (launched by torchrun from tests/test_training_ddp.py).

Rank r trains with its own work/out folders (so a write by rank 1 would show) and, as a test artifact,
dumps its final weights to state-rank{r}.pt for the test to compare.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

import ecgml.training.trace as trace
from ecgml.trace.model import TraceModelConfig
from ecgml.training.options import TrainOptions
from ecgml.training.train import train_any

seen: list[trace.Trainee] = []


class SpyTrainee(trace.Trainee):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(self)


def main() -> None:
    cache, tmp, steps, stop_after = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rank = int(os.environ["RANK"])
    trace.Trainee = SpyTrainee  # type: ignore[misc]
    opts = TrainOptions(
        out=tmp / f"out-{rank}" / "w.pt", work=tmp / f"work-{rank}", cache=cache, steps=steps,
        stop_after=stop_after or None, batch_size=4, val_every=2, val_batches=1, device="cpu",
        model=replace(TraceModelConfig(channels=(4, 8, 8), strip_mm=16.0)), progress=False, threads=1,
    )  # fmt: skip
    train_any(opts, build_cache=False)
    torch.save(seen[-1].model.state_dict(), tmp / f"state-rank{rank}.pt")


if __name__ == "__main__":
    main()
