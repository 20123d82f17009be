"""Training the label reader (`ecgml.page_reader`) on renderer pages: label patches and everything else.

    python -m ecgml.training.page_reader --records /work/shared/data/ecg --pages 400 --steps 1500 \
        --out ecgml/weights/label_reader.pt [--cache runs/label_reader/patches.npz]

Pages are drawn flat at READ_PPM with real-world styles (every font, size and label placement the
renderer knows) and Kaggle styles, from train-split records only; then blurred, noised and
JPEG-compressed. Positives: a patch centred on a printed lead name (±1 mm). "none": the same names
moved by 4 mm or more, turned upside down, and random patches of the page (traces, grid, header text).
Checkpoints every 50 steps and resumes from the checkpoint.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from ecgml.page_reader import CLASSES, PATCH_MM, READ_PPM, _net, prepare
from ecgml.records import LEADS, read_wfdb, resample

PW, PH = int(PATCH_MM[0] * READ_PPM), int(PATCH_MM[1] * READ_PPM)


def _crop(ink: np.ndarray, cx_mm: float, cy_mm: float) -> np.ndarray | None:
    x0 = int(round(cx_mm * READ_PPM - PW / 2))
    y0 = int(round(cy_mm * READ_PPM - PH / 2))
    if x0 < 0 or y0 < 0 or x0 + PW > ink.shape[1] or y0 + PH > ink.shape[0]:
        return None
    return ink[y0 : y0 + PH, x0 : x0 + PW]


def _degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Capture-like damage on the flat page: blur, scale wobble, noise, JPEG."""
    out = img
    if rng.random() < 0.6:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.3, 1.2)))
    if rng.random() < 0.3:  # resampled from another resolution
        f = float(rng.uniform(0.5, 0.9))
        small = cv2.resize(out, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        noise = rng.normal(0, float(rng.uniform(2, 12)), out.shape)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 90))])
        dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        out = dec if dec is not None else out
    return out


def page_patches(record_path: Path, rng: np.random.Generator) -> tuple[list[np.ndarray], list[int]]:
    """Patches and classes from one freshly drawn page."""
    from ecgml.render.page import draw_page
    from ecgml.render.presets import kaggle_layout, sample_layout
    from ecgml.render.style import kaggle_style, random_style

    rec = read_wfdb(record_path)
    rec = resample(rec.window(0, 10), 250, 2500)
    if rng.random() < 0.3:
        lay, style = kaggle_layout(None), kaggle_style(rng)
    else:
        lay, _ = sample_layout(rng)
        style = random_style(rng)
        style.labels = True
    flat = draw_page(rec, lay, style, READ_PPM, supersample=2)
    grey = cv2.cvtColor(flat.image, cv2.COLOR_RGB2GRAY)
    ink = prepare(_degrade(grey, rng))
    xs, ys = [], []
    none = len(CLASSES) - 1
    labels = [(t, b) for t, b in flat.text_boxes if t in LEADS]
    for text, (bx0, by0, bx1, by1) in labels:
        cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
        for _ in range(2):
            p = _crop(ink, cx + rng.uniform(-1, 1), cy + rng.uniform(-1, 1))
            if p is not None:
                xs.append(p)
                ys.append(LEADS.index(text))
        p = _crop(ink, cx + rng.uniform(-1, 1), cy + rng.uniform(-1, 1))
        if p is not None:  # upside down: not a label this way up (I, II and III read the same both ways)
            xs.append(p[::-1, ::-1])
            ys.append(LEADS.index(text) if text in ("I", "II", "III") else none)
        for _ in range(2):
            dx = float(rng.choice([-1, 1]) * rng.uniform(5, 10)) if rng.random() < 0.7 else 0.0
            dy = float(rng.choice([-1, 1]) * rng.uniform(3, 8)) if dx == 0.0 or rng.random() < 0.3 else 0.0
            p = _crop(ink, cx + dx, cy + dy)
            if p is not None:
                xs.append(p)
                ys.append(none)
    w_mm, h_mm = ink.shape[1] / READ_PPM, ink.shape[0] / READ_PPM
    for _ in range(max(20, 2 * len(labels))):
        cx, cy = (
            rng.uniform(PATCH_MM[0] / 2, w_mm - PATCH_MM[0] / 2),
            rng.uniform(PATCH_MM[1] / 2, h_mm - PATCH_MM[1] / 2),
        )
        if any(abs(cx - (b[0] + b[2]) / 2) < 3 and abs(cy - (b[1] + b[3]) / 2) < 2.5 for _, b in labels):
            continue
        p = _crop(ink, cx, cy)
        if p is not None:
            xs.append(p)
            ys.append(none)
    return xs, ys


def make_patches(records: list[Path], n_pages: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs: list[np.ndarray] = []
    ys: list[int] = []
    t0 = time.time()
    for k in range(n_pages):
        px, py = page_patches(records[int(rng.integers(len(records)))], rng)
        xs += px
        ys += py
        if k % 50 == 49:
            print(f"{k + 1} pages, {len(ys)} patches, {time.time() - t0:.0f} s", flush=True)
    return (np.stack(xs) * 255).astype(np.uint8), np.array(ys, np.int64)


def train(
    x: np.ndarray, y: np.ndarray, steps: int, out: Path, seed: int = 0, batch: int = 64
) -> dict[str, float]:
    """Adam on the patches (90 % train / 10 % held out); checkpoint `out`.ckpt, weights to `out`."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(y))
    n_val = max(200, len(y) // 10)
    val, tr = idx[:n_val], idx[n_val:]
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-5)
    ckpt = out.with_suffix(".ckpt")
    step = 0
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
    xt = torch.from_numpy(x).float().div_(255).unsqueeze(1)
    yt = torch.from_numpy(y)
    counts = np.bincount(y[tr], minlength=len(CLASSES)).astype(np.float64)
    weight = torch.tensor(
        np.clip(counts.sum() / np.maximum(counts, 1) / len(CLASSES), 0.2, 5.0), dtype=torch.float32
    )
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    t0 = time.time()
    while step < steps:
        net.train()
        b = torch.from_numpy(rng.choice(tr, batch))
        logits = net(xt[b])[:, :, 0, 0]
        loss = loss_fn(logits, yt[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0 or step == steps:
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step}, ckpt)
            print(f"step {step} loss {loss.item():.3f} {time.time() - t0:.0f} s", flush=True)
    net.eval()
    with torch.inference_mode():
        pred = torch.cat(
            [
                net(xt[torch.from_numpy(val[i : i + 512])])[:, :, 0, 0].argmax(1)
                for i in range(0, len(val), 512)
            ]
        )
    yv = y[val]
    pv = pred.numpy()
    none = len(CLASSES) - 1
    lab = yv != none
    stats = {
        "val_patches": float(len(yv)),
        "val_accuracy": float((pv == yv).mean()),
        "label_accuracy": float((pv[lab] == yv[lab]).mean()) if lab.any() else float("nan"),
        "none_as_label": float((pv[~lab] != none).mean()) if (~lab).any() else float("nan"),
        "steps": float(step),
    }
    torch.save(net.state_dict(), out)
    return stats


def main(argv: list[str] | None = None) -> int:
    import json

    from ecgml.digitize_bench import bench_records

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=Path, default=Path("/work/shared/data/ecg"))
    ap.add_argument("--splits", type=Path, default=Path("data/splits.csv"))
    ap.add_argument("--pages", type=int, default=400)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--cache", type=Path, default=Path("runs/label_reader/patches.npz"))
    ap.add_argument("--out", type=Path, default=Path("ecgml/weights/label_reader.pt"))
    a = ap.parse_args(argv)
    if a.cache.exists():
        z = np.load(a.cache)
        x, y = z["x"], z["y"]
    else:
        recs = bench_records(a.records, a.splits, ("train",))
        x, y = make_patches(recs, a.pages, a.seed)
        a.cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(a.cache, x=x, y=y)
    print(f"{len(y)} patches, {int((y != len(CLASSES) - 1).sum())} labels", flush=True)
    stats = train(x, y, a.steps, a.out, a.seed)
    meta = {"classes": list(CLASSES), "read_ppm": READ_PPM, "patch_mm": list(PATCH_MM), "pages": a.pages,
            "seed": a.seed, **stats}  # fmt: skip
    a.out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
