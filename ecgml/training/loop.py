"""The training loop shared by the trace model and the seed baseline: schedule, clock, checkpoints, curve.

Every step draws its batch from an RNG seeded by (seed, step), so a resumed run sees exactly the
batches an uninterrupted run would. A checkpoint (model, optimiser, step, curve) is written atomically
at least every `checkpoint_s` seconds and at the end; it holds tensors and plain values only, so it
loads with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecgml.atomic import atomic_path
from ecgml.errors import EcgmlError
from ecgml.training.options import TrainOptions

LOG_EVERY = 50  # without a progress bar, print a line every this many steps


@dataclass
class Clock:
    """Training time across resumed sessions; the schedule ends when either the steps or the time run out."""

    before_s: float = 0.0
    t0: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return self.before_s + time.monotonic() - self.t0

    def frac(self, step: int, opts: TrainOptions) -> float:
        f = step / max(1, opts.steps)
        if opts.time_budget_s:
            f = max(f, self.elapsed() / opts.time_budget_s)
        return min(1.0, f)


def lr_at(step: int, frac: float, base: float, warmup: int = 100) -> float:
    """Linear warm-up over the first steps, then a cosine down to 2 % of `base` as `frac` goes 0 -> 1."""
    w = min(1.0, (step + 1) / warmup)
    return base * w * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def to_cpu(obj: Any) -> Any:
    """Every tensor in a (nested) state moved to the CPU: a GPU run's checkpoint loads anywhere."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise EcgmlError(path, f"cannot read checkpoint: {exc}") from exc


def save_curve(
    work: Path, history: list[dict[str, float]], title: str = "trace model", stem: str = "curve"
) -> Path:
    """The loss curve as JSON (and a PNG beside it when matplotlib can draw it)."""
    work.mkdir(parents=True, exist_ok=True)
    js = work / f"{stem}.json"
    with atomic_path(js) as tmp:
        Path(tmp).write_text(json.dumps(history))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
        tr = [h for h in history if "loss" in h]
        va = [h for h in history if any(k.startswith("val_") for k in h)]
        if tr:
            ax[0].plot([h["step"] for h in tr], [h["loss"] for h in tr], lw=0.5, label="train loss")
            ax[0].set_yscale("symlog")
            ax[0].legend()
        if va:
            for k in sorted({k for h in va for k in h if k.startswith("val_")}):
                ax[1].plot([h["step"] for h in va], [h.get(k, np.nan) for h in va], "o-", label=k)
            ax[1].legend()
        ax[0].set_xlabel("step")
        ax[1].set_xlabel("step")
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(work / f"{stem}.png", dpi=80)
        plt.close(fig)
    except Exception:  # noqa: BLE001 - the PNG is a convenience; the JSON is the record
        pass
    return js


def run_loop(
    opts: TrainOptions,
    start_step: int,
    history: list[dict[str, float]],
    step_fn: Callable[[int], dict[str, float]],
    on_checkpoint: Callable[[int], None],
    val_fn: Callable[[], dict[str, float]] | None = None,
    clock: Clock | None = None,
    agree: Callable[[bool], bool] = bool,
    show: bool = True,
) -> int:
    """Call `step_fn(step)` for steps start_step..opts.steps-1 (or until the time budget).

    Shows a progress bar (if `show`: rank 0 of a distributed job), validates every `val_every` steps,
    checkpoints every `checkpoint_every` steps and at least every `checkpoint_s`; returns the next step.
    `agree` makes the ranks of a distributed job take the time-budget decision together.
    """
    clock = clock or Clock()
    last_ckpt = time.monotonic()
    step = start_step
    progress = None
    if opts.progress and show:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        progress = Progress(
            TextColumn(f"train {opts.arch}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        task = progress.add_task("train", total=opts.steps, completed=step, info="")
        progress.start()
    try:
        while step < min(opts.steps, opts.stop_after or opts.steps):
            parts = step_fn(step)
            step += 1
            history.append({"step": step, **parts})
            if val_fn is not None and (step % opts.val_every == 0 or step == opts.steps):
                history.append({"step": step, **val_fn()})
            info = " ".join(f"{k} {v:.3f}" for k, v in history[-1].items() if k != "step")
            if progress is not None:
                progress.update(task, completed=step, info=info)
            elif show and (step % LOG_EVERY == 0 or "val_l1_mm" in history[-1]):
                print(f"step {step} t {clock.elapsed():.0f}s {info}", flush=True)
            now = time.monotonic()
            every = opts.checkpoint_every
            if now - last_ckpt >= opts.checkpoint_s or (every and step % every == 0):
                on_checkpoint(step)
                last_ckpt = now
            if agree(opts.time_budget_s is not None and clock.elapsed() >= opts.time_budget_s):
                break
    finally:
        if progress is not None:
            progress.stop()
    return step
