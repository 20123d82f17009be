"""Several processes, one model: DistributedDataParallel under `torchrun --nproc_per_node N -m ecgml train`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them training is one process and nothing here
does anything. The backend is NCCL on CUDA and gloo on the CPU (so two CPU processes can test the path).
Each rank trains on its own share of every step's seeded strips; only rank 0 writes checkpoints, curves
and weights.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def ranks_from_env() -> Ranks:
    """This process's place in a torchrun job (rank 0 of 1 when not launched by torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    return Ranks(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_process_group(ranks: Ranks, device: torch.device) -> None:
    """Join the job's process group (env:// rendezvous that torchrun provides); no-op for one process."""
    if ranks.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        # the other ranks wait while rank 0 renders a missing page cache: allow hours, not the default 30 min
        dist.init_process_group(
            backend, rank=ranks.rank, world_size=ranks.world, timeout=datetime.timedelta(hours=6)
        )


def barrier(ranks: Ranks) -> None:
    if ranks.distributed and dist.is_initialized():
        dist.barrier()


def shutdown(ranks: Ranks) -> None:
    if ranks.distributed and dist.is_initialized():
        dist.destroy_process_group()


def mean_over_ranks(values: dict[str, float], ranks: Ranks) -> dict[str, float]:
    """The ranks' mean of each logged figure (rank 0 logs what the job as a whole saw)."""
    if not ranks.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / ranks.world for k, v in zip(keys, t.tolist(), strict=True)}


def any_rank(flag: bool, ranks: Ranks) -> bool:
    """True on every rank when it is true on one (so all ranks stop at the same step)."""
    if not ranks.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def sync_buffers(model: torch.nn.Module, ranks: Ranks) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank, as DDP does before each forward:
    after the last step the ranks then hold the same model as the one rank 0 saves."""
    if ranks.distributed:
        for buf in model.buffers():
            dist.broadcast(buf, src=0)
