"""Train the trace model: the one function (`train_trace`) that produces the shipped weights.

It renders training pages from the records folder's *train*-split records into a page cache (reused
across runs), cuts random row strips from it, and optimises the CoordLoss + soft-argmax L1 below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecgml.errors import EcgmlError
from ecgml.trace.model import (
    TraceModelConfig,
    build_model,
    load_model,
    local_centroid,
    save_weights,
    soft_argmax,
)
from ecgml.training.dataset import StripSampler, read_index
from ecgml.training.loop import Clock, load_checkpoint, lr_at, run_loop, save_checkpoint, save_curve
from ecgml.training.options import TrainOptions, cache_dir, options_json

REFRESH_EVERY = 200  # steps between re-reads of the page cache index


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
            g["lr"] = lr_at(step, clock.frac(step, opts), opts.lr)
        loss, parts = trace_loss(model(xt), yt, torch.isfinite(yt), opts.model)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        return parts

    return step_fn


def train_trace(opts: TrainOptions, build_cache: bool = True) -> Path:
    """Train (or fine-tune / resume) the trace model; writes weights to `opts.out` and returns the path."""
    torch.set_num_threads(max(1, opts.threads))
    torch.manual_seed(opts.seed)
    cfg = opts.model
    cache = cache_dir(opts)
    if build_cache:
        from ecgml.training.render_source import fill_cache

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
                "options": options_json(opts),
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
