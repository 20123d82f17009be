"""Training the label reader (`ecgml.page_reader`) on renderer pages: label patches and everything else.

    python -m ecgml.training.page_reader --records /work/shared/data/ecg --pages 400 --steps 1500 \
        --out ecgml/weights/label_reader.pt [--cache runs/label_reader/patches.npz]

Pages are drawn flat at READ_PPM with real-world styles (every font, size and label placement the
renderer knows) and Kaggle styles, from train-split records only; then blurred, noised and
JPEG-compressed. Positives: a patch centred on a printed lead name (±1 mm). "none": the same names
moved by 4 mm or more, turned upside down, and random patches of the page (traces, grid, header text).
`--cart-pages`: also real-cart captures (`cart_patches`: the renderer's `realworld` pages, photographed,
scanned or screen-shot, rectified as the digitizer reads them), with "none" along every trace, on header
and footer text and, with `--mine`, wherever the `--init` reader reads a name that is not printed there.
Checkpoints every 100 steps and resumes from the checkpoint.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ecgml.page_reader import CLASSES, NAMES, PATCH_MM, READ_PPM, SYMMETRIC, _net, prepare
from ecgml.records import read_wfdb, resample

PW, PH = int(PATCH_MM[0] * READ_PPM), int(PATCH_MM[1] * READ_PPM)


def _crop(ink: np.ndarray, cx_mm: float, cy_mm: float) -> np.ndarray | None:
    x0 = int(round(cx_mm * READ_PPM - PW / 2))
    y0 = int(round(cy_mm * READ_PPM - PH / 2))
    if x0 < 0 or y0 < 0 or x0 + PW > ink.shape[1] or y0 + PH > ink.shape[0]:
        return None
    return ink[y0 : y0 + PH, x0 : x0 + PW]


KIND_LABEL, KIND_FLIPPED, KIND_MOVED, KIND_PAGE, KIND_NEAR = range(5)  # what a patch is (figures per kind)


def _degrade(img: np.ndarray, rng: np.random.Generator, small: bool = False) -> np.ndarray:
    """Capture-like damage on the flat page: blur, low resolution, contrast, noise, JPEG, photocopy.
    `small`: always a small copy (2.2-3.2 px/mm, names ~8 px tall) brought back to READ_PPM."""
    out = img
    if rng.random() < 0.6:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.3, 1.2)))
    if small or rng.random() < 0.35:  # a low-resolution capture brought to READ_PPM (down to ~2 px/mm)
        f = float(rng.uniform(0.55, 0.8)) if small else float(rng.uniform(0.5, 0.9))
        low = cv2.resize(out, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        out = cv2.resize(low, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.3:  # a dull photo or scan: paper grey, ink not black
        lo, hi = float(rng.uniform(0, 80)), float(rng.uniform(170, 255))
        out = np.clip(lo + out.astype(np.float32) * (hi - lo) / 255, 0, 255).astype(np.uint8)
    if rng.random() < 0.08:  # black-and-white photocopy
        out = np.where(out < rng.uniform(110, 200), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        noise = rng.normal(0, float(rng.uniform(2, 12)), out.shape)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 90))])
        dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        out = dec if dec is not None else out
    return out


RARE_MIX = {"3x5": 1.0, "cabrera-12x1": 1.0, "cabrera-6x2": 1.0, "cabrera-3x4+1R": 1.0}  # -aVR, V4R, V8, V9
# one name per row at the row's left, rows close together: where the reader mistook V5 for I
TWELVE_MIX = {"12x1": 1.0, "12x1-top": 1.0, "12x1-bottom": 1.0, "cabrera-12x1": 0.5}


def page_patches(
    record_path: Path, rng: np.random.Generator, mix: dict[str, float] | None = None, small: bool = False
) -> tuple[list[np.ndarray], list[int], list[int]]:
    """Patches, classes and kinds (KIND_*) from one freshly drawn page.

    Layouts: the training mix, one of every family (Cabrera's -aVR, 15-lead 3x5, half pages) or the
    Kaggle page; styles: every font, size and placement of `random_style`, or Kaggle's. `mix`: draw only
    these layouts (RARE_MIX: the names few pages print), in real-world styles. `small`: a small copy
    (`_degrade`)."""
    from ecgml.render.layouts import MIXES, parse_layout, with_extra_leads
    from ecgml.render.page import draw_page
    from ecgml.render.presets import kaggle_layout, sample_layout
    from ecgml.render.style import kaggle_style, random_style

    rec = read_wfdb(record_path)
    rec = resample(rec.window(0, 10), 250, 2500)
    u = rng.random()
    if mix is not None:
        lay, _ = sample_layout(rng, mix=mix)
        style = random_style(rng)
        style.labels = True
    elif u < 0.25:
        lay, style = kaggle_layout(None), kaggle_style(rng)
    else:
        lay, _ = sample_layout(rng, mix=MIXES["families"] if u < 0.5 else None)
        style = random_style(rng)
        style.labels = True
    rec, _ = with_extra_leads(rec, parse_layout(lay.name))
    flat = draw_page(rec, lay, style, READ_PPM, supersample=2)
    grey = cv2.cvtColor(flat.image, cv2.COLOR_RGB2GRAY)
    return cut_patches(prepare(_degrade(grey, rng, small)), flat.text_boxes, lay, rng)


def cut_patches(
    ink: np.ndarray,
    text_boxes: list[tuple[str, tuple[float, float, float, float]]],
    lay: Any,
    rng: np.random.Generator,
) -> tuple[list[np.ndarray], list[int], list[int]]:
    """Patches, classes and kinds (KIND_*) of one page's ink at READ_PPM (origin at paper 0, 0): its
    printed names (`text_boxes` whose text is a name), and "none" where the names are not: the same names
    moved or turned, the cells' starts, any other text (headers, footers) and the page at random."""
    xs: list[np.ndarray] = []
    ys: list[int] = []
    kinds: list[int] = []
    none = len(CLASSES) - 1

    def add(p: np.ndarray | None, y: int, kind: int) -> None:
        if p is not None:
            xs.append(p)
            ys.append(y)
            kinds.append(kind)

    labels = [(t, b) for t, b in text_boxes if t in NAMES]
    centres = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for _, b in labels]

    def clear(cx: float, cy: float, dx: float = 4.0, dy: float = 3.0) -> bool:
        return not any(abs(cx - lx) < dx and abs(cy - ly) < dy for lx, ly in centres)

    for text, (bx0, by0, bx1, by1) in labels:
        cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
        for _ in range(2):
            add(_crop(ink, cx + rng.uniform(-1, 1), cy + rng.uniform(-1, 1)), NAMES.index(text), KIND_LABEL)
        p = _crop(ink, cx + rng.uniform(-1, 1), cy + rng.uniform(-1, 1))
        if p is not None:  # upside down: not a label this way up (unless it reads the same)
            add(p[::-1, ::-1], NAMES.index(text) if text in SYMMETRIC else none, KIND_FLIPPED)
        for _ in range(2):
            dx = float(rng.choice([-1, 1]) * rng.uniform(5, 10)) if rng.random() < 0.7 else 0.0
            dy = float(rng.choice([-1, 1]) * rng.uniform(3, 8)) if dx == 0.0 or rng.random() < 0.3 else 0.0
            add(_crop(ink, cx + dx, cy + dy), none, KIND_MOVED)
    # where the reader looks for a cell's name but the name is not: separator ticks, pulse edges and the
    # trace's first waves there look like I, a minus sign or V (the hard cases of "none")
    from ecgml.page_reader import SEARCH_X_MM, SEARCH_Y_MM

    spots = [(c.x0_mm, c.baseline_mm) for c in lay.cells] + [(p.x0_mm, p.baseline_mm) for p in lay.pulses]
    for x0, base in spots:
        for _ in range(3):
            cx, cy = x0 + rng.uniform(*SEARCH_X_MM), base + rng.uniform(*SEARCH_Y_MM)
            if clear(cx, cy):
                add(_crop(ink, cx, cy), none, KIND_NEAR)
    # other printed text (header, footer: words, digits, units) is never a lead's name
    for text, (bx0, by0, bx1, by1) in text_boxes:
        if text in NAMES or text.startswith("<"):
            continue
        for _ in range(2):
            cx, cy = rng.uniform(bx0, max(bx1, bx0 + 1e-3)), (by0 + by1) / 2 + rng.uniform(-1, 1)
            if clear(cx, cy):
                add(_crop(ink, cx, cy), none, KIND_PAGE)
    w_mm, h_mm = ink.shape[1] / READ_PPM, ink.shape[0] / READ_PPM
    for _ in range(max(20, 2 * len(labels))):
        cx, cy = (
            rng.uniform(PATCH_MM[0] / 2, w_mm - PATCH_MM[0] / 2),
            rng.uniform(PATCH_MM[1] / 2, h_mm - PATCH_MM[1] / 2),
        )
        if clear(cx, cy, 3.0, 2.5):
            add(_crop(ink, cx, cy), none, KIND_PAGE)
    return xs, ys, kinds


# a miner's name read this surely where none is printed gives a "none" patch there (at most MINE_MAX a page)
MINE_AT, MINE_MAX = 0.5, 40


def _off_map(page_map: Any, rng: np.random.Generator) -> tuple[Any, np.ndarray]:
    """`page_map` a little off, as geometry's estimate of a photo or scan is (scale +-5 % per axis, up to
    1 degree, a few mm), and the paper -> off-map paper mm affine (2 x 3) that moves the page's text."""
    from dataclasses import replace

    w, h = page_map.paper_mm
    s = rng.uniform(0.95, 1.05, 2)
    t = np.radians(rng.uniform(-1.0, 1.0))
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) * s[None, :]
    c = np.array([w / 2, h / 2])
    shift = c - rot @ c + rng.uniform(-3, 3, 2)
    a = np.eye(3)
    a[:2, :2], a[:2, 2] = rot, shift  # off-map paper q -> true paper A q
    return replace(page_map, homography=page_map.homography @ a), np.linalg.inv(a)[:2]


def cart_patches(
    record_path: Path,
    rng: np.random.Generator,
    miner: Any = None,
    image_type: str = "realworld",
    mix: dict[str, float] | None = None,
) -> tuple[list[np.ndarray], list[int], list[int]]:
    """Patches (`cut_patches`) of one real-cart page as the renderer's `realworld` capture draws it
    (fonts, label places, headers, pen marks, panels; scanned, photographed, screen-shot, small), brought
    back onto the paper through its page map (half the time a little off, as geometry's estimate is)
    exactly as the digitizer's canonical page is, then to READ_PPM: the reader learns the names as it
    sees them on such pages, not only on flat drawings. The trace rows give "none" patches along every
    cell; `miner` (a reader's runner): also "none" where it reads a name that is not printed there.
    `image_type`: "realworld" or "lowres" (a small web copy); `mix`: its layouts (default: training mix)."""
    from ecgml.digitize import CANONICAL_PX_PER_MM, reader_page
    from ecgml.geometry.canonical import canonical_page
    from ecgml.render.presets import render

    rec = resample(read_wfdb(record_path).window(0, 10), 500, 5000)
    r = render(rec, image_type, int(rng.integers(2**31)), mix=mix)
    pmap, to_off = r.page_map, np.eye(3)[:2]
    if rng.random() < 0.5:
        pmap, to_off = _off_map(r.page_map, rng)
    small = reader_page(canonical_page(r.image, pmap, CANONICAL_PX_PER_MM))
    ink = prepare(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))

    def moved(x: float, y: float) -> tuple[float, float]:
        q = to_off @ np.array([x, y, 1.0])
        return float(q[0]), float(q[1])

    boxes = []
    for t, b in r.meta["text_boxes_mm"]:
        (x0, y0), (x1, y1) = moved(b[0], b[1]), moved(b[2], b[3])
        boxes.append((str(t), (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))))
    xs, ys, kinds = cut_patches(ink, boxes, r.layout, rng)
    none = len(CLASSES) - 1
    centres = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for t, b in boxes if t in NAMES]
    spots = []
    for c in r.layout.cells:  # along the traces: QRS strokes pass for I, waves for V or a minus sign
        for _ in range(3):
            spots.append(moved(rng.uniform(c.x0_mm, c.x1_mm), c.baseline_mm + rng.uniform(-10, 10)))
    if miner is not None:
        from scipy.ndimage import maximum_filter

        from ecgml.label_grid import name_maps
        from ecgml.page_reader import STRIDE_MM

        best = name_maps(ink, miner)[: len(NAMES)].max(axis=0)
        ii, jj = np.nonzero((best == maximum_filter(best, size=3)) & (best >= MINE_AT))
        for n in rng.permutation(len(ii))[:MINE_MAX]:
            x, y = PATCH_MM[0] / 2 + jj[n] * STRIDE_MM, PATCH_MM[1] / 2 + ii[n] * STRIDE_MM
            spots.append((x + rng.uniform(-1, 1), y + rng.uniform(-1, 1)))
    for cx, cy in spots:
        if not any(abs(cx - lx) < 4 and abs(cy - ly) < 3 for lx, ly in centres):
            p = _crop(ink, cx, cy)
            if p is not None:
                xs.append(p)
                ys.append(none)
                kinds.append(KIND_PAGE)
    return xs, ys, kinds


def make_patches(
    records: list[Path],
    n_pages: int,
    seed: int,
    cache: Path | None = None,
    mix: dict[str, float] | None = None,
    cart: bool = False,
    miner: Any = None,
    lowres_share: float = 0.0,
    twelve_share: float = 0.0,
    small: bool = False,
) -> dict[str, np.ndarray]:
    """Patches of `n_pages` pages (x uint8, y class, kind); saved to `cache` every 100 pages and at the end
    (a partial cache says how many pages it holds, so a long render can be used before it ends). `cart`:
    real-cart captures (`cart_patches`, with `miner`) instead of flat drawings, `lowres_share` of them
    small web copies; `twelve_share` of the pages drawn from TWELVE_MIX; `small`: flat small copies."""
    rng = np.random.default_rng(seed)
    xs: list[np.ndarray] = []
    ys: list[int] = []
    kinds: list[int] = []
    t0 = time.time()

    def pack(pages: int) -> dict[str, np.ndarray]:
        return {
            "x": np.stack(xs),
            "y": np.array(ys, np.int64),
            "kind": np.array(kinds, np.int64),
            "pages": np.array(pages),
        }

    for k in range(n_pages):
        rec = records[int(rng.integers(len(records)))]
        m = TWELVE_MIX if twelve_share and rng.random() < twelve_share else mix
        if cart:
            kind = "lowres" if lowres_share and rng.random() < lowres_share else "realworld"
            px, py, pk = cart_patches(rec, rng, miner, kind, m)
        else:
            px, py, pk = page_patches(rec, rng, m, small)
        xs += [(p * 255).round().astype(np.uint8) for p in px]
        ys += py
        kinds += pk
        if k % 50 == 49 or (cart and k % 10 == 9):
            print(f"{k + 1} pages, {len(ys)} patches, {time.time() - t0:.0f} s", flush=True)
        if cache is not None and (k % 100 == 99 or k == n_pages - 1 or (cart and k % 20 == 19)):
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.stem + ".tmp.npz")
            np.savez_compressed(tmp, **pack(k + 1))  # type: ignore[arg-type]
            tmp.replace(cache)
    return pack(n_pages)


def predict(net: object, x: np.ndarray) -> np.ndarray:
    """Class probabilities (n, classes) of uint8 patches."""
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(x), 512):
            xb = torch.from_numpy(x[i : i + 512]).float().div_(255).unsqueeze(1)
            out.append(torch.softmax(net(xb)[:, :, 0, 0], 1).numpy())  # type: ignore[operator]
    return np.concatenate(out) if out else np.zeros((0, len(CLASSES)), np.float32)


def evaluate(net: object, data: dict[str, np.ndarray], sure: float = 0.8) -> dict[str, object]:
    """Held-out figures: accuracy per name, upside-down rejection, false names on the rest of the page,
    and names read confidently (>= `sure`) but wrong."""
    prob = predict(net, data["x"])
    pred = prob.argmax(1)
    p_max = prob.max(1)
    y, kind = data["y"], data["kind"]
    none = len(CLASSES) - 1
    lab = kind == 0
    per_class = {
        NAMES[c]: [round(float((pred[lab & (y == c)] == c).mean()), 4), int((lab & (y == c)).sum())]
        for c in range(len(NAMES))
        if (lab & (y == c)).any()
    }
    flipped = (kind == 1) & (y == none)
    other = (kind >= 2) & (y == none)
    near = (kind == KIND_NEAR) & (y == none)
    return {
        "val_patches": int(len(y)),
        "label_accuracy": round(float((pred[lab] == y[lab]).mean()), 4),
        "label_confidently_wrong": round(
            float(((pred != y) & (pred != none) & (p_max >= sure))[lab].mean()), 4
        ),
        "label_missed": round(float((pred[lab] == none).mean()), 4),
        "upside_down_rejected": round(float((pred[flipped] == none).mean()), 4) if flipped.any() else None,
        "upside_down_read_confidently": round(float(((pred != none) & (p_max >= sure))[flipped].mean()), 4)
        if flipped.any()
        else None,
        "none_as_label": round(float((pred[other] != none).mean()), 4),
        "none_as_label_confidently": round(float(((pred != none) & (p_max >= sure))[other].mean()), 4),
        "near_cell_start_as_label": round(float((pred[near] != none).mean()), 4) if near.any() else None,
        "near_cell_start_as_label_confidently": round(
            float(((pred != none) & (p_max >= sure))[near].mean()), 4
        )
        if near.any()
        else None,
        "per_class": per_class,
    }


def train(
    x: np.ndarray,
    y: np.ndarray,
    steps: int,
    out: Path,
    seed: int = 0,
    batch: int = 64,
    init: Path | None = None,
    lr: float = 3e-3,
    net_fn: Callable[[], Any] = _net,
    n_classes: int = len(CLASSES),
) -> dict[str, float]:
    """Adam with a cosine-decayed rate on the patches; checkpoint `out`.ckpt every 100 steps (and resume
    from it), weights to `out`. `net_fn`, `n_classes`: another reader's network (the footer reader's)."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = net_fn()
    if init is not None:  # go on from trained weights (e.g. with new hard cases), usually at a lower rate
        net.load_state_dict(torch.load(init, map_location="cpu", weights_only=True))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    ckpt = out.with_suffix(".ckpt")
    step = 0
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step = int(state["step"])
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weight = torch.tensor(
        np.clip(counts.sum() / np.maximum(counts, 1) / n_classes, 0.2, 5.0), dtype=torch.float32
    )
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    t0 = time.time()
    run = 0.0
    while step < steps:
        net.train()
        b = torch.from_numpy(rng.choice(len(y), batch))
        xb = xt[b].float().div_(255).unsqueeze(1)
        # contrast wobble: ink of faint or heavy prints
        xb = (xb * torch.empty(batch, 1, 1, 1).uniform_(0.6, 1.3)).clamp_(0, 1)
        loss = loss_fn(net(xb)[:, :, 0, 0], yt[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        run = 0.98 * run + 0.02 * loss.item() if step > 1 else loss.item()
        if step % 100 == 0 or step == steps:
            state = {
                "net": net.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "step": step,
            }
            torch.save(state, ckpt)
            print(f"step {step} loss {run:.3f} {time.time() - t0:.0f} s", flush=True)
    net.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out)
    return {"steps": step, "train_seconds": round(time.time() - t0, 1)}


def _load_or_make(
    cache: Path,
    records: list[Path],
    pages: int,
    seed: int,
    mix: dict[str, float] | None = None,
    cart: bool = False,
    miner: Any = None,
    **kw: Any,
) -> dict[str, np.ndarray]:
    if cache.exists():
        z = dict(np.load(cache))
        if int(z["pages"]) >= pages:
            return z
        print(f"{cache} holds {int(z['pages'])} of {pages} pages; using it as it is", flush=True)
        return z
    return make_patches(records, pages, seed, cache, mix, cart, miner, **kw)


def main(argv: list[str] | None = None) -> int:
    import json

    from ecgml.digitize_bench import bench_records

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=Path, default=Path("/work/shared/data/ecg"))
    ap.add_argument("--splits", type=Path, default=Path("data/splits.csv"))
    ap.add_argument("--pages", type=int, default=1200)
    ap.add_argument("--val-pages", type=int, default=120, help="held-out pages of validation-split records")
    ap.add_argument(
        "--rare-pages", type=int, default=100, help="extra Cabrera and 15-lead pages (train split)"
    )
    ap.add_argument(
        "--cart-pages", type=int, default=0, help="real-cart captures (train split), rectified as read"
    )
    ap.add_argument(
        "--mine",
        action="store_true",
        help="real-cart pages: also 'none' where the --init reader reads a name",
    )
    ap.add_argument("--cart-val-pages", type=int, default=0, help="held-out real-cart captures (validation)")
    ap.add_argument("--cart-lowres-share", type=float, default=0.0, help="cart pages' share of small copies")
    ap.add_argument("--twelve-share", type=float, default=0.0, help="cart and small pages' share of 12x1")
    ap.add_argument("--small-pages", type=int, default=0, help="flat pages as small copies (train split)")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--cache", type=Path, default=Path("runs/label_reader/patches.npz"))
    ap.add_argument("--render-only", action="store_true", help="render the patch caches and stop")
    ap.add_argument("--out", type=Path, default=Path("ecgml/weights/label_reader.pt"))
    ap.add_argument("--init", type=Path, default=None, help="start from these weights")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--also", type=Path, nargs="*", default=[], help="more training caches (npz) to add")
    a = ap.parse_args(argv)
    t0 = time.time()
    val_cache = a.cache.with_name(a.cache.stem + "-val.npz")
    val = _load_or_make(
        val_cache, bench_records(a.records, a.splits, ("validation",)), a.val_pages, a.seed + 1
    )
    train_recs = bench_records(a.records, a.splits, ("train",))
    tr = _load_or_make(a.cache, train_recs, a.pages, a.seed)
    if a.rare_pages:
        rare_cache = a.cache.with_name(a.cache.stem + "-rare.npz")
        rare = _load_or_make(rare_cache, train_recs, a.rare_pages, a.seed + 2, RARE_MIX)
        tr = {k: np.concatenate([tr[k], rare[k]]) if k != "pages" else tr[k] + rare[k] for k in tr}
        rare_val_cache = a.cache.with_name(a.cache.stem + "-rare-val.npz")
        val_recs = bench_records(a.records, a.splits, ("validation",))
        rv = _load_or_make(rare_val_cache, val_recs, max(a.rare_pages // 4, 1), a.seed + 3, RARE_MIX)
        val = {k: np.concatenate([val[k], rv[k]]) if k != "pages" else val[k] + rv[k] for k in val}
    cart_val = None
    if a.cart_pages:
        from ecgml.page_reader import load_reader

        miner = load_reader(str(a.init) if a.init else None) if a.mine else None
        cart_cache = a.cache.with_name(a.cache.stem + "-cart.npz")
        cart = _load_or_make(
            cart_cache, train_recs, a.cart_pages, a.seed + 4, cart=True, miner=miner,
            lowres_share=a.cart_lowres_share, twelve_share=a.twelve_share,
        )  # fmt: skip
        tr = {k: np.concatenate([tr[k], cart[k]]) if k != "pages" else tr[k] + cart[k] for k in tr}
    if a.cart_val_pages:
        val_recs = bench_records(a.records, a.splits, ("validation",))
        cv_cache = a.cache.with_name(a.cache.stem + "-cart-val.npz")
        cart_val = _load_or_make(
            cv_cache, val_recs, a.cart_val_pages, a.seed + 5, cart=True, lowres_share=a.cart_lowres_share,
            twelve_share=a.twelve_share,
        )  # fmt: skip
    if a.small_pages:
        small_cache = a.cache.with_name(a.cache.stem + "-small.npz")
        sm = _load_or_make(
            small_cache, train_recs, a.small_pages, a.seed + 6, twelve_share=a.twelve_share, small=True
        )
        tr = {k: np.concatenate([tr[k], sm[k]]) if k != "pages" else tr[k] + sm[k] for k in tr}
    print(f"{len(tr['y'])} training patches ({int(tr['pages'])} pages), {len(val['y'])} held out", flush=True)
    if a.render_only:
        return 0
    for extra in a.also:
        z = dict(np.load(extra))
        tr = {k: np.concatenate([tr[k], z[k]]) if k != "pages" else tr[k] + z[k] for k in tr}
    print(f"{len(tr['y'])} training patches with --also ({int(tr['pages'])} pages)", flush=True)
    stats = train(tr["x"], tr["y"], a.steps, a.out, a.seed, init=a.init, lr=a.lr)
    from ecgml.page_reader import load_net

    held = evaluate(load_net(a.out), val)
    meta = {
        "classes": list(CLASSES), "read_ppm": READ_PPM, "patch_mm": list(PATCH_MM),
        "pages": int(tr["pages"]), "val_pages": int(val["pages"]), "train_split": "train",
        "held_out_split": "validation", "seed": a.seed, **stats,
        "seconds_total": round(time.time() - t0, 1), "held_out": held,
    }  # fmt: skip
    if cart_val is not None:
        meta["held_out_cart"] = evaluate(load_net(a.out), cart_val)
        meta["held_out_cart_pages"] = int(cart_val["pages"])
    a.out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
