"""Train the trace model: the one function (`train_trace`) that produces the shipped weights.

It renders training pages from the records folder's *train*-split records into a page cache (reused
across runs), cuts random row strips from it, and optimises the CoordLoss + soft-argmax L1 below.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecgml.errors import EcgmlError
from ecgml.trace.model import TraceModelConfig, local_centroid, read_weights_info
from ecgml.trace.net import build_model, load_model, save_weights, soft_argmax
from ecgml.training.batches import StepStrips, step_batches
from ecgml.training.dataset import StripSampler, read_index
from ecgml.training.device import Placement, peak_memory
from ecgml.training.distributed import (
    Ranks,
    any_rank,
    barrier,
    init_process_group,
    mean_over_ranks,
    ranks_from_env,
    shutdown,
    sync_buffers,
)
from ecgml.training.loop import Clock, load_checkpoint, lr_at, run_loop, save_checkpoint, save_curve, to_cpu
from ecgml.training.options import TrainOptions, cache_dir, options_json, portable_path


def trace_loss(
    logits: torch.Tensor, target_y: torch.Tensor, valid: torch.Tensor, cfg: TraceModelConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-column CE against a Gaussian over y (CoordLoss) + L1 of the soft-argmax in mm, on valid columns.

    target_y: (B, W_out) px in strip coordinates (centre convention); valid: (B, W_out) bool.
    """
    _, h, _ = logits.shape
    v = valid.to(logits.dtype)
    n = v.sum().clamp_min(1.0)
    ty = torch.nan_to_num(target_y, nan=h / 2.0)
    pos = torch.arange(h, device=logits.device, dtype=logits.dtype).view(1, -1, 1) + 0.5
    q = torch.exp(-0.5 * ((pos - ty[:, None, :]) / cfg.sigma_px) ** 2)
    q = q / q.sum(dim=1, keepdim=True).clamp_min(1e-12)
    logp = torch.log_softmax(logits, dim=1)
    ce = (-(q * logp).sum(dim=1) * v).sum() / n
    l1 = ((soft_argmax(logits) - ty).abs() / cfg.px_per_mm[1] * v).sum() / n
    loss = ce + cfg.l1_weight * l1
    return loss, {"loss": float(loss.detach()), "ce": float(ce.detach()), "l1_mm": float(l1.detach())}


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    batches: list[tuple[np.ndarray, np.ndarray]],
    cfg: TraceModelConfig,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Mean and median |y error| (mm) of the inference decoding (local centroid) on fixed strips."""
    model.eval()
    errs = []
    for x, y in batches:
        xt = torch.from_numpy(x).to(device or "cpu").permute(0, 3, 1, 2).float()
        yp, _ = local_centroid(model(xt).float().cpu())
        ok = np.isfinite(y)
        errs.append(np.abs(yp[ok] - y[ok]) / cfg.px_per_mm[1])
    model.train()
    e = np.concatenate(errs) if errs else np.array([np.nan])
    return {
        "val_l1_mm": float(np.mean(e)),
        "val_med_mm": float(np.median(e)),
        "val_p95_mm": float(np.quantile(e, 0.95)),
    }


@dataclass
class Trainee:
    """The model being trained and what steps it: optimiser, gradient scaler, placement, ranks."""

    model: torch.nn.Module  # the plain module (its state is what checkpoints hold)
    net: torch.nn.Module  # what the forward pass calls: the module, or its DistributedDataParallel wrap
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    place: Placement
    ranks: Ranks


def trace_step_fn(
    t: Trainee, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], opts: TrainOptions, clock: Clock
) -> Callable[[int], dict[str, float]]:
    """One optimisation step on the next batch (that of `step`: seeded by (seed, step, strip)); logs the
    time spent waiting for it, so a device the data cannot keep busy shows in the curve."""
    dev = t.place.device

    def step_fn(step: int) -> dict[str, float]:
        t0 = time.perf_counter()
        x, y = next(batches)
        wait = time.perf_counter() - t0
        t.model.train()
        xt = x.to(dev, non_blocking=True).permute(0, 3, 1, 2).float()
        if t.place.channels_last:
            xt = xt.contiguous(memory_format=torch.channels_last)
        yt = y.to(dev, non_blocking=True)
        for g in t.opt.param_groups:
            g["lr"] = lr_at(step, clock.frac(step, opts), opts.lr)
        with t.place.autocast():
            logits = t.net(xt)
        loss, parts = trace_loss(logits.float(), yt, torch.isfinite(yt), opts.model)
        t.opt.zero_grad(set_to_none=True)
        t.scaler.scale(loss).backward()
        t.scaler.unscale_(t.opt)
        torch.nn.utils.clip_grad_norm_(t.model.parameters(), 5.0)
        t.scaler.step(t.opt)
        t.scaler.update()
        parts = mean_over_ranks(parts, t.ranks)
        return {**parts, "data_wait_s": wait, "step_s": time.perf_counter() - t0}

    return step_fn


def train_trace(opts: TrainOptions, build_cache: bool = True) -> Path:
    """Train (or fine-tune / resume) the trace model; writes weights to `opts.out` and returns the path.

    Under torchrun each process is one rank of a DistributedDataParallel job; rank 0 alone writes.
    """
    ranks = ranks_from_env()
    place = Placement.choose(opts.device, ranks.local_rank)
    if opts.batch_size % ranks.world:
        raise EcgmlError(None, f"batch size {opts.batch_size} does not split over {ranks.world} ranks")
    if place.device.type == "cuda":
        torch.cuda.set_device(place.device)  # NCCL and DDP use the current device of each rank
    init_process_group(ranks, place.device)
    try:
        return _train_trace(opts, build_cache, ranks, place)
    finally:
        shutdown(ranks)


def _initial_model(opts: TrainOptions) -> tuple[TraceModelConfig, torch.nn.Module, list[dict[str, Any]]]:
    """The run's config and model: fresh, or the `--init` weights (whose config then wins)."""
    cfg = opts.model
    if opts.init is None:
        return cfg, build_model(cfg), []
    info = read_weights_info(Path(opts.init))
    arch = info.get("config", {}).get("arch")
    if arch != "unet":
        raise EcgmlError(
            opts.init, f"init weights are a {arch!r} model; this run trains the trace U-Net (unet)"
        )
    init_model, init_cfg, init_meta = load_model(opts.init)
    if init_cfg.to_dict() != cfg.to_dict():
        cfg = init_cfg
    model = build_model(cfg)
    model.load_state_dict(init_model.state_dict())
    return cfg, model, list(init_meta.get("rounds", []))


def _check_resumable(st: dict[str, Any], cfg: TraceModelConfig, path: Path) -> None:
    """A checkpoint must be of the model this run builds; otherwise one line naming both."""
    have = st.get("config", {})
    want = cfg.to_dict()
    diff = sorted(k for k in set(have) | set(want) if k != "strip_mm" and have.get(k) != want.get(k))
    if diff:
        both = "; ".join(f"{k}: checkpoint {have.get(k)!r}, this run {want.get(k)!r}" for k in diff)
        raise EcgmlError(
            path, f"checkpoint is of another model ({both}); use another --work or drop --resume"
        )


def _train_trace(opts: TrainOptions, build_cache: bool, ranks: Ranks, place: Placement) -> Path:
    torch.set_num_threads(max(1, opts.threads))
    torch.manual_seed(opts.seed)
    cache = cache_dir(opts)
    if build_cache and ranks.is_main:
        from ecgml.training.render_source import fill_cache

        fill_cache(opts, cache)
    barrier(ranks)
    entries = read_index(cache)
    train_e = [e for e in entries if e.get("split") == "train"]
    val_e = [e for e in entries if e.get("split") == "validation"]
    if not train_e:
        raise EcgmlError(cache, "no training pages in the cache (no train-split records rendered?)")
    cfg, model, rounds = _initial_model(opts)
    meta_init = {"init": portable_path(opts.init)} if opts.init is not None else {}
    ckpt_path = opts.work / "checkpoint.pt"
    step, history, elapsed = 0, [], 0.0
    st: dict[str, Any] | None = None
    if opts.resume and ckpt_path.exists():
        st = load_checkpoint(ckpt_path)
        _check_resumable(st, cfg, ckpt_path)
        cfg = TraceModelConfig.from_dict(st["config"])
        model = build_model(cfg)
        model.load_state_dict(st["model"])
        step, history, elapsed = int(st["step"]), list(st["history"]), float(st.get("elapsed_s", 0.0))
    if opts.strip_mm is not None and not opts.strip_mm > 0:
        raise EcgmlError(opts.out, f"strip height must be positive, got {opts.strip_mm} mm")
    if opts.strip_mm is not None and opts.strip_mm != cfg.strip_mm:
        cfg = replace(cfg, strip_mm=float(opts.strip_mm))  # strips only: same weights
    opts.model = cfg
    model = model.to(place.device)
    if place.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    scaler = place.scaler()
    if st is not None:
        opt.load_state_dict(st["opt"])
        if st.get("scaler"):
            scaler.load_state_dict(st["scaler"])
    net: torch.nn.Module = model
    if ranks.distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(
            model, device_ids=[place.device.index] if place.device.index is not None else None
        )
    t = Trainee(model, net, opt, scaler, place, ranks)
    sampler = StripSampler(cache, train_e, cfg, stretch_p=opts.stretch_p)
    val_batches: list[tuple[np.ndarray, np.ndarray]] = []
    if val_e and ranks.is_main:
        vs = StripSampler(cache, val_e, cfg, crop_w=1024, augment=False)
        vrng = np.random.default_rng([opts.seed, 10**9])
        val_batches = [vs.batch(vrng, 4) for _ in range(opts.val_batches)]

    clock = Clock(elapsed)

    def checkpoint(s: int) -> None:
        if not ranks.is_main:
            return
        state = {
            "model": model.state_dict(),
            "opt": opt.state_dict(),
            "scaler": scaler.state_dict(),
            "step": s,
            "history": history,
            "config": cfg.to_dict(),
            "options": options_json(opts),
            "elapsed_s": clock.elapsed(),
            "world_size": ranks.world,
            **place.describe(),
        }
        save_checkpoint(ckpt_path, to_cpu(state))
        save_curve(opts.work, history)

    stop = min(opts.steps, opts.stop_after or opts.steps)
    data = StepStrips(sampler, opts.seed, opts.batch_size // ranks.world, ranks.rank)
    batches = step_batches(data, step, stop, opts.workers, place.pin_memory)
    val_fn = (lambda: validate(model, val_batches, cfg, place.device)) if val_batches else None
    step = run_loop(
        opts, step, history, trace_step_fn(t, batches, opts, clock), checkpoint, val_fn, clock,
        agree=lambda flag: any_rank(flag, ranks), show=ranks.is_main,
    )  # fmt: skip
    batches.close()  # stop the data workers
    sync_buffers(model, ranks)
    checkpoint(step)
    barrier(ranks)
    if not ranks.is_main:
        return opts.out
    vals = [h for h in history if "val_l1_mm" in h]
    steps_logged = [h for h in history if "step_s" in h]
    busy = sum(h["step_s"] for h in steps_logged)
    meta = {
        "steps": step,
        "seed": opts.seed,
        "train_pages": len(train_e),
        "train_seconds": round(clock.elapsed(), 1),
        "records": portable_path(opts.records),
        "world_size": ranks.world,
        "workers": opts.workers,
        **place.describe(),
        **peak_memory(place.device),
        **({"data_wait_share": round(sum(h["data_wait_s"] for h in steps_logged) / busy, 4)} if busy else {}),
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
    cpu_model = model.to("cpu").float()  # fp32 on the CPU: loads on any install
    cpu_model = cpu_model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    return save_weights(cpu_model, cfg, opts.out, meta)


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
