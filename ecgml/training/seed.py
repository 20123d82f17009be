"""Train the seed baseline (ecgml.trace.seed) with the trace model's options, cache, loop and checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecgml.trace.seed import SeedCNN, SeedConfig, load_seed, save_seed
from ecgml.training.dataset import read_index
from ecgml.training.loop import Clock, load_checkpoint, lr_at, run_loop, save_checkpoint, save_curve
from ecgml.training.options import TrainOptions, cache_dir, portable_path


def seed_loss(
    pred: torch.Tensor, target: torch.Tensor, smooth_weight: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Negative SNR in dB (per sample, averaged) plus a second-difference smoothness penalty."""
    noise = ((pred - target) ** 2).sum(dim=1)
    sig = (target**2).sum(dim=1)
    snr_db = 10 * torch.log10((sig + 1e-6) / (noise + 1e-6))
    smooth = (pred[:, 2:] - 2 * pred[:, 1:-1] + pred[:, :-2]).pow(2).mean()
    loss = -snr_db.mean() + smooth_weight * smooth * 1e3
    return loss, {"loss": float(loss.detach()), "snr_db": float(snr_db.mean().detach())}


class SeedSampler:
    """Batches of (small grey page, lead II) from the page cache, with light photometric augmentation."""

    def __init__(self, folder: Path, entries: list[dict[str, Any]], augment: bool = True) -> None:
        self.folder = folder
        self.keys = [e["key"] for e in entries if (folder / f"{e['key']}.seed.npy").exists()]
        if not self.keys:
            raise ValueError(f"no seed inputs in {folder}")
        self.x = {k: np.load(folder / f"{k}.seed.npy") for k in self.keys}
        self.y = {k: np.load(folder / f"{k}.ii.npy") for k in self.keys}
        self.augment = augment

    def batch(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        ks = [self.keys[i] for i in rng.integers(len(self.keys), size=n)]
        xs = []
        for k in ks:
            x = self.x[k].astype(np.float32)
            if self.augment:
                x = np.clip((x - 128) * rng.uniform(0.7, 1.3) + 128 + rng.normal(0, 15), 0, 255)
            xs.append(x)
        return np.stack(xs)[:, None], np.stack([self.y[k] for k in ks])


def train_seed(opts: TrainOptions, build_cache: bool = True) -> Path:
    """Train the seed baseline with the same options, cache, checkpoints and curve as the trace model."""
    torch.set_num_threads(max(1, opts.threads))
    torch.manual_seed(opts.seed)
    cache = cache_dir(opts)
    if build_cache:
        from ecgml.training.render_source import fill_cache

        fill_cache(opts, cache)
    entries = read_index(cache)
    sampler = SeedSampler(cache, [e for e in entries if e.get("split") == "train"])
    val_e = [e for e in entries if e.get("split") == "validation"]
    vx, vy = (
        SeedSampler(cache, val_e, augment=False).batch(np.random.default_rng(1), 8 * opts.val_batches)
        if val_e
        else (None, None)
    )
    cfg = SeedConfig()
    model = SeedCNN(cfg)
    if opts.init is not None:
        model.load_state_dict(load_seed(opts.init).model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    ckpt = opts.work / "checkpoint-seed.pt"
    step, history, elapsed = 0, [], 0.0
    if opts.resume and ckpt.exists():
        st = load_checkpoint(ckpt)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, history, elapsed = int(st["step"]), list(st["history"]), float(st.get("elapsed_s", 0.0))
    clock = Clock(elapsed)

    def step_fn(s: int) -> dict[str, float]:
        model.train()
        x, y = sampler.batch(np.random.default_rng([opts.seed, s]), opts.batch_size)
        for g in opt.param_groups:
            g["lr"] = lr_at(s, clock.frac(s, opts), opts.lr)
        loss, parts = seed_loss(model(torch.from_numpy(x)), torch.from_numpy(y), cfg.smooth_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        return parts

    @torch.no_grad()
    def val_fn() -> dict[str, float]:
        model.eval()
        _, parts = seed_loss(model(torch.from_numpy(vx)), torch.from_numpy(vy), cfg.smooth_weight)
        return {"val_snr_db": parts["snr_db"]}

    def checkpoint(s: int) -> None:
        save_checkpoint(
            ckpt,
            {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "step": s,
                "history": history,
                "elapsed_s": clock.elapsed(),
            },
        )
        save_curve(opts.work, history, "seed baseline", "curve-seed")

    step = run_loop(opts, step, history, step_fn, checkpoint, val_fn if vx is not None else None, clock)
    checkpoint(step)
    vals = [h for h in history if "val_snr_db" in h]
    meta = {
        "steps": step,
        "seed": opts.seed,
        "train_seconds": round(clock.elapsed(), 1),
        "records": portable_path(opts.records),
        **({"val": vals[-1]} if vals else {}),
    }
    return save_seed(model, cfg, opts.out, meta)
