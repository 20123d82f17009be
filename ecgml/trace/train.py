"""Train the trace model (or the seed baseline): seeded, resumable, with a progress bar and a loss curve.

`train_trace` is the one function that produces the shipped weights (`ecgml train`). It renders
training pages from the records folder's *train*-split records into a page cache (reused across runs),
cuts random row strips from it, and optimises the CoordLoss + soft-argmax L1 of ecgml.trace.model.
Every step draws its batch from an RNG seeded by (seed, step), so a resumed run sees exactly the
batches an uninterrupted run would. A checkpoint (model, optimiser, schedule, step, curve) is written
atomically at least every `checkpoint_s` seconds and at the end.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecgml.atomic import atomic_path
from ecgml.errors import EcgmlError
from ecgml.trace.dataset import StripSampler, read_index
from ecgml.trace.model import (
    TraceModelConfig,
    build_model,
    load_model,
    local_centroid,
    save_weights,
    trace_loss,
)

CHECKPOINT_S = 600.0  # at least every 10 minutes (INTERFACES.md)
DEFAULT_WORK = Path("runs/trace")
LOG_EVERY = 50  # without a progress bar, print a line every this many steps
REFRESH_EVERY = 200  # steps between re-reads of the page cache index


@dataclass
class TrainOptions:
    """Knobs of one training run (the pipeline maps params.yaml `train:` onto these)."""

    records: Path = Path("data/records")
    out: Path = Path("runs/trace/trace_unet.pt")
    work: Path = DEFAULT_WORK  # checkpoints, curve, page cache
    cache: Path | None = None  # page cache folder (default: work / "cache")
    arch: str = "unet"
    steps: int = 3000
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    resume: bool = False
    init: Path | None = None  # start from these weights (fine-tuning)
    time_budget_s: float | None = None  # stop (and save) after this much training time
    stop_after: int | None = None  # end this session after this step (the schedule still spans `steps`)
    threads: int = 2
    checkpoint_s: float = CHECKPOINT_S
    val_every: int = 250
    val_batches: int = 6  # fixed validation batches of 4 strips, 1024 px wide
    pages_per_record: int = 2
    max_records: int = 0  # 0 = all train-split records
    val_pages: int = 24
    types: tuple[str, ...] = ()  # capture types to render (empty: the renderer's training mix)
    model: TraceModelConfig = field(default_factory=TraceModelConfig)
    strip_mm: float | None = None  # train at this strip height (over the init's; same weights)
    stretch_p: float = 0.0  # share of strips stretched vertically (taller complexes)
    progress: bool = True


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


def _lr_at(step: int, frac: float, base: float, warmup: int = 100) -> float:
    """Linear warm-up over the first steps, then a cosine down to 2 % of `base` as `frac` goes 0 -> 1."""
    w = min(1.0, (step + 1) / warmup)
    return base * w * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
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


@torch.no_grad()
def validate(
    model: torch.nn.Module, batches: list[tuple[np.ndarray, np.ndarray]], cfg: TraceModelConfig
) -> dict[str, float]:
    """Mean and median |y error| (mm) of the inference decoding (local centroid) on fixed strips."""
    model.eval()
    errs = []
    for x, y in batches:
        logits = model(torch.from_numpy(x).permute(0, 3, 1, 2).float())
        yp, _ = local_centroid(logits)
        ok = np.isfinite(y)
        errs.append(np.abs(yp[ok] - y[ok]) / cfg.px_per_mm[1])
    model.train()
    e = np.concatenate(errs) if errs else np.array([np.nan])
    return {
        "val_l1_mm": float(np.mean(e)),
        "val_med_mm": float(np.median(e)),
        "val_p95_mm": float(np.quantile(e, 0.95)),
    }


def run_loop(
    opts: TrainOptions,
    start_step: int,
    history: list[dict[str, float]],
    step_fn: Callable[[int], dict[str, float]],
    on_checkpoint: Callable[[int], None],
    val_fn: Callable[[], dict[str, float]] | None = None,
    clock: Clock | None = None,
) -> int:
    """Call `step_fn(step)` for steps start_step..opts.steps-1 (or until the time budget).

    Shows a progress bar, validates every `val_every` steps, checkpoints at least every `checkpoint_s`;
    returns the next step.
    """
    clock = clock or Clock()
    last_ckpt = time.monotonic()
    step = start_step
    progress = None
    if opts.progress:
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
            elif step % LOG_EVERY == 0 or "val_l1_mm" in history[-1]:
                print(f"step {step} t {clock.elapsed():.0f}s {info}", flush=True)
            now = time.monotonic()
            if now - last_ckpt >= opts.checkpoint_s:
                on_checkpoint(step)
                last_ckpt = now
            if opts.time_budget_s is not None and clock.elapsed() >= opts.time_budget_s:
                break
    finally:
        if progress is not None:
            progress.stop()
    return step


def trace_step_fn(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sampler: StripSampler,
    opts: TrainOptions,
    clock: Clock,
) -> Callable[[int], dict[str, float]]:
    """One optimisation step on the batch seeded by (seed, step): what makes resuming exact."""

    def step_fn(step: int) -> dict[str, float]:
        if step % REFRESH_EVERY == 0:  # pages rendered meanwhile (a cache still being filled) join in
            fresh = [e for e in read_index(sampler.folder) if e.get("split") == "train"]
            if len(fresh) > len(sampler.entries):
                sampler.entries = fresh
        model.train()
        rng = np.random.default_rng([opts.seed, step])
        x, y = sampler.batch(rng, opts.batch_size)
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).float()
        yt = torch.from_numpy(y)
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, clock.frac(step, opts), opts.lr)
        loss, parts = trace_loss(model(xt), yt, torch.isfinite(yt), opts.model)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        return parts

    return step_fn


def _cache_dir(opts: TrainOptions) -> Path:
    return opts.cache if opts.cache is not None else opts.work / "cache"


def train_trace(opts: TrainOptions, build_cache: bool = True) -> Path:
    """Train (or fine-tune / resume) the trace model; writes weights to `opts.out` and returns the path."""
    torch.set_num_threads(max(1, opts.threads))
    torch.manual_seed(opts.seed)
    cfg = opts.model
    cache = _cache_dir(opts)
    if build_cache:
        from ecgml.trace.render_source import fill_cache

        fill_cache(opts, cache)
    entries = read_index(cache)
    train_e = [e for e in entries if e.get("split") == "train"]
    val_e = [e for e in entries if e.get("split") == "validation"]
    if not train_e:
        raise EcgmlError(cache, "no training pages in the cache (no train-split records rendered?)")
    model = build_model(cfg)
    meta_init: dict[str, Any] = {}
    rounds: list[dict[str, Any]] = []  # earlier training rounds of the init weights (the budget is their sum)
    if opts.init is not None:
        init_model, init_cfg, init_meta = load_model(opts.init)
        rounds = list(init_meta.get("rounds", []))
        if init_cfg.to_dict() != cfg.to_dict():
            cfg = opts.model = init_cfg
            model = build_model(cfg)
        model.load_state_dict(init_model.state_dict())
        meta_init = {"init": str(opts.init)}
    opt = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    ckpt_path = opts.work / "checkpoint.pt"
    step = 0
    history: list[dict[str, float]] = []
    elapsed = 0.0
    if opts.resume and ckpt_path.exists():
        st = load_checkpoint(ckpt_path)
        cfg = opts.model = TraceModelConfig.from_dict(st["config"])
        model = build_model(cfg)
        model.load_state_dict(st["model"])
        opt = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
        opt.load_state_dict(st["opt"])
        step, history, elapsed = int(st["step"]), list(st["history"]), float(st.get("elapsed_s", 0.0))
    if opts.strip_mm is not None and not opts.strip_mm > 0:
        raise EcgmlError(opts.out, f"strip height must be positive, got {opts.strip_mm} mm")
    if opts.strip_mm is not None and opts.strip_mm != cfg.strip_mm:
        cfg = opts.model = replace(cfg, strip_mm=float(opts.strip_mm))  # strips only: same weights
    sampler = StripSampler(cache, train_e, cfg, stretch_p=opts.stretch_p)
    val_batches: list[tuple[np.ndarray, np.ndarray]] = []
    if val_e:
        vs = StripSampler(cache, val_e, cfg, crop_w=1024, augment=False)
        vrng = np.random.default_rng([opts.seed, 10**9])
        val_batches = [vs.batch(vrng, 4) for _ in range(opts.val_batches)]

    clock = Clock(elapsed)

    def checkpoint(s: int) -> None:
        save_checkpoint(
            ckpt_path,
            {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "step": s,
                "history": history,
                "config": cfg.to_dict(),
                "options": _jsonable(opts),
                "elapsed_s": clock.elapsed(),
            },
        )
        save_curve(opts.work, history)

    val_fn = (lambda: validate(model, val_batches, cfg)) if val_batches else None
    step = run_loop(
        opts, step, history, trace_step_fn(model, opt, sampler, opts, clock), checkpoint, val_fn, clock
    )
    checkpoint(step)
    vals = [h for h in history if "val_l1_mm" in h]
    meta = {
        "steps": step,
        "seed": opts.seed,
        "train_pages": len(train_e),
        "train_seconds": round(clock.elapsed(), 1),
        "records": str(opts.records),
        **({"val": vals[-1]} if vals else {}),
        **meta_init,
    }
    rounds.append(
        {"round": len(rounds) + 1, "steps": step, "train_seconds": meta["train_seconds"], "lr": opts.lr,
         "strip_mm": cfg.strip_mm, "stretch_p": opts.stretch_p,
         **({"val_l1_mm": round(vals[-1]["val_l1_mm"], 4)} if vals else {})}
    )  # fmt: skip
    meta["rounds"] = rounds
    meta["total_train_seconds"] = round(sum(float(r.get("train_seconds", 0.0)) for r in rounds), 1)
    return save_weights(model, cfg, opts.out, meta)


def export_checkpoint(ckpt: str | Path, out: str | Path) -> Path:
    """Weights (+ config JSON) from a trace-model checkpoint: ship or evaluate a run that is still going."""
    st = load_checkpoint(Path(ckpt))
    cfg = TraceModelConfig.from_dict(st["config"])
    model = build_model(cfg)
    model.load_state_dict(st["model"])
    vals = [h for h in st["history"] if "val_l1_mm" in h]
    meta = {"steps": int(st["step"]), "train_seconds": round(float(st.get("elapsed_s", 0.0)), 1),
            "options": st.get("options", {}), **({"val": vals[-1]} if vals else {})}  # fmt: skip
    return save_weights(model, cfg, out, meta)


def train_any(opts: TrainOptions, build_cache: bool = True) -> Path:
    """Dispatch on `opts.arch`: "unet" (the trace model) or "seed" (the seed baseline)."""
    if opts.arch == "seed":
        from ecgml.trace.seed import train_seed

        return train_seed(opts, build_cache)
    if opts.arch != "unet":
        raise EcgmlError(None, f"unknown architecture {opts.arch!r}; choose unet or seed")
    return train_trace(opts, build_cache)


def _jsonable(opts: TrainOptions) -> dict[str, Any]:
    d = asdict(opts)
    return json.loads(json.dumps(d, default=str))


def default_threads() -> int:
    return int(os.environ.get("ECGML_THREADS", "2"))
