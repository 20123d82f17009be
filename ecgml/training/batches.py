"""Training batches, cut and augmented off the training loop: a step-indexed dataset that
`torch.utils.data` worker processes fill ahead of the device.

Item `step` is this rank's share of that step's strips (`StripSampler.step_strips`): every strip is
seeded by (seed, step, index), so the batches do not depend on the number of workers or ranks, and a
resumed run, or one resumed on another number of devices, sees the strips an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Generator

import torch
from torch.utils.data import DataLoader, Dataset

from ecgml.training.dataset import StripSampler, read_index

REFRESH_EVERY = 200  # steps between re-reads of the page cache index (pages rendered meanwhile join in)


class StepStrips(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """`dataset[step]` -> (uint8 strips (n, H, W, 3), float targets (n, W_out)) for one rank."""

    def __init__(self, sampler: StripSampler, seed: int, per_rank: int, rank: int = 0) -> None:
        self.sampler, self.seed, self.per_rank, self.rank = sampler, seed, per_rank, rank
        self._epoch = 0

    def __len__(self) -> int:  # steps are drawn by index; the loop decides how many
        return 2**31 - 1

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if step // REFRESH_EVERY != self._epoch:
            self._epoch = step // REFRESH_EVERY
            fresh = [e for e in read_index(self.sampler.folder) if e.get("split") == "train"]
            if len(fresh) > len(self.sampler.entries):
                self.sampler.entries = fresh
        x, y = self.sampler.step_strips(self.seed, step, self.rank * self.per_rank, self.per_rank)
        return torch.from_numpy(x), torch.from_numpy(y)


def _quiet_worker(_: int) -> None:
    """One thread per worker: the workers are the parallelism, not OpenCV's or torch's pools."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def step_batches(
    data: StepStrips, start: int, stop: int, workers: int = 0, pin_memory: bool = False
) -> Generator[tuple[torch.Tensor, torch.Tensor], None, None]:
    """The batches of steps start..stop-1 in order: drawn here (workers=0) or by worker processes."""
    if workers <= 0:
        for step in range(start, stop):
            yield data[step]
        return
    loader = DataLoader(
        data,
        batch_size=None,  # an item is already a batch
        sampler=range(start, stop),
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=4,
        worker_init_fn=_quiet_worker,
        # spawn, not fork: a fork of a process whose torch/OpenMP threads hold locks can hang its workers
        multiprocessing_context="spawn",
        persistent_workers=False,
    )
    yield from loader
