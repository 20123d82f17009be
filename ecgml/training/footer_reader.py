"""Training the footer reader (`ecgml.footer_reader`) on renderer pages: printed speed and gain fields.

    python -m ecgml.training.footer_reader --records /work/shared/data/ecg --pages 500 --steps 3000 \
        --out ecgml/weights/footer_reader.pt [--cache runs/footer_reader/patches.npz]

Pages are drawn flat at FOOT_PPM from train-split records only, at every speed and gain the renderer knows
(drawn evenly, so 50 and 12.5 mm/s are as common as 25), with its cart headers and footers (every
template, font and size) or the Kaggle page's footer; then blurred, noised and JPEG-compressed as the
label reader's pages are. Positives: a patch centred (within 1 mm) on a field's value and unit ("25 mm/s"
inside "Speed: 25 mm/sec"). "none": the same fields moved until the patch cuts them, every other printed
line (filters, devices, rates, intervals, names) along its whole length, lead labels, traces and grid,
at many random positions of the text bands the reader scans (TEXT_STEP_MM, BAND_NEGATIVES). A fine-tune
(`--init W --mine N`) adds hard negatives: N fresh pages' bands read whole by W, every position read as a
field at MINE_AT that is not centred on it (`mine_patches`). Held out: pages of validation-split records.
Patch figures say little of a page: `benchmarks/footer_check.py` is the check that decides shipping.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ecgml.footer_reader import CLASSES, FIELD, FOOT_PPM, PATCH_MM, _net, field_class, text_bands
from ecgml.layout import PageLayout
from ecgml.page_reader import prepare
from ecgml.patch_net import class_maps
from ecgml.records import read_wfdb, resample
from ecgml.training.page_reader import _degrade, predict, train

PW, PH = int(PATCH_MM[0] * FOOT_PPM), int(PATCH_MM[1] * FOOT_PPM)
NONE = len(CLASSES) - 1
KIND_FIELD, KIND_MOVED, KIND_TEXT, KIND_BAND, KIND_PAGE = range(5)
# "none" patches per page: the whole page is read band by band, so its bands' every other position must be
# "none" surely (the first model, 12 band and 8 page patches a page, read unprinted settings at >= 0.9)
TEXT_STEP_MM = 8.0  # other printed lines: one patch every this along the line, not only its centre
BAND_NEGATIVES = 48  # random positions in the text bands above and below the rows
PAGE_NEGATIVES = 16  # random positions anywhere (traces, grid, labels)


def _crop(ink: np.ndarray, cx_mm: float, cy_mm: float) -> np.ndarray | None:
    x0 = int(round(cx_mm * FOOT_PPM - PW / 2))
    y0 = int(round(cy_mm * FOOT_PPM - PH / 2))
    if x0 < 0 or y0 < 0 or x0 + PW > ink.shape[1] or y0 + PH > ink.shape[0]:
        return None
    return ink[y0 : y0 + PH, x0 : x0 + PW]


def field_boxes(items: list, boxes: list) -> tuple[list[tuple[int, float, float, float]], list[tuple]]:
    """(class, centre x, centre y, width mm) of every standard value-and-unit field printed, and the boxes
    of the printed lines without one."""
    from ecgml.render.text import text_width_mm

    fields, others = [], []
    for it, (_, b) in zip(items, boxes, strict=True):
        found = False
        for m in FIELD.finditer(it.text):
            c = field_class(m.group(1), m.group(2))
            if c is None:
                continue
            found = True
            full = max(text_width_mm(it.text, it.font, it.size_pt), 1e-3)
            scale = (b[2] - b[0]) / full  # the box as drawn (its padding shared out)
            a = b[0] + text_width_mm(it.text[: m.start()], it.font, it.size_pt) * scale
            e = b[0] + text_width_mm(it.text[: m.end()], it.font, it.size_pt) * scale
            fields.append((c, (a + e) / 2, (b[1] + b[3]) / 2, e - a))
        if not found:
            others.append(b)
    return fields, others


Field = tuple[int, float, float, float]  # class, centre x, centre y, width (mm)


def draw_training_page(
    record_path: Path, rng: np.random.Generator
) -> tuple[np.ndarray, PageLayout, list[Field], list[tuple]]:
    """One freshly drawn, degraded page at an evenly drawn speed and gain: its ink at FOOT_PPM, layout,
    printed fields and the boxes of its other printed lines."""
    from ecgml.render.header import add_header_footer
    from ecgml.render.layouts import GAINS, SPEEDS, parse_layout, with_extra_leads
    from ecgml.render.page import draw_page
    from ecgml.render.presets import kaggle_layout, sample_layout
    from ecgml.render.style import kaggle_style, random_style

    rec = resample(read_wfdb(record_path).window(0, 10), 250, 2500)
    speed = float(rng.choice(SPEEDS))
    gain = str(rng.choice(GAINS))
    if rng.random() < 0.25:
        lay, style = (
            kaggle_layout(str(rng.choice(["3x4+1R", "3x4", "6x2", "12x1"])), speed, gain),
            kaggle_style(rng),
        )
    else:
        lay, p = sample_layout(rng, speed=speed, gain=gain)
        style = random_style(rng)
        add_header_footer(rng, rec, lay, style, float(p["header_mm"]), float(p["footer_mm"]))
    rec, _ = with_extra_leads(rec, parse_layout(lay.name))
    flat = draw_page(rec, lay, style, FOOT_PPM, supersample=1)
    grey = cv2.cvtColor(flat.image, cv2.COLOR_RGB2GRAY)
    ink = prepare(_degrade(grey, rng))
    items = [it for it in flat.text_items if it.kind != "qr"]
    boxes = [tb for it, tb in zip(flat.text_items, flat.text_boxes, strict=True) if it.kind != "qr"]
    fields, others = field_boxes(items, boxes)
    return ink, lay, fields, others


def page_patches(
    record_path: Path, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[int], list[int]]:
    """Patches, classes and kinds from one freshly drawn page (`draw_training_page`)."""
    ink, lay, fields, others = draw_training_page(record_path, rng)
    xs: list[np.ndarray] = []
    ys: list[int] = []
    kinds: list[int] = []

    def add(p: np.ndarray | None, y: int, kind: int) -> None:
        if p is not None:
            xs.append(p)
            ys.append(y)
            kinds.append(kind)

    for c, cx, cy, w in fields:
        for _ in range(4):
            add(_crop(ink, cx + rng.uniform(-1, 1), cy + rng.uniform(-1, 1)), c, KIND_FIELD)
        for _ in range(2):  # moved until the patch cuts the field: not centred, not read
            if rng.random() < 0.6:
                dx = float(rng.choice([-1, 1]) * (PATCH_MM[0] / 2 - w / 2 + rng.uniform(1, 6)))
                add(_crop(ink, cx + dx, cy + rng.uniform(-1, 1)), NONE, KIND_MOVED)
            else:
                dy = float(rng.choice([-1, 1]) * rng.uniform(4.5, 7))
                add(_crop(ink, cx + rng.uniform(-2, 2), cy + dy), NONE, KIND_MOVED)

    def clear(x: float, y: float) -> bool:
        """No field inside or cut by a patch centred here (those are the field and moved kinds)."""
        return all(abs(x - fx) > PATCH_MM[0] / 2 + fw / 2 or abs(y - fy) > 4.5 for _, fx, fy, fw in fields)

    for b in others:  # every other printed line along its length: filters, devices, names, rates, labels
        for x in np.arange(b[0], b[2] + 1e-6, TEXT_STEP_MM) + rng.uniform(-3, 3):
            y = (b[1] + b[3]) / 2 + rng.uniform(-1, 1)
            if clear(float(x), y):
                add(_crop(ink, float(x), y), NONE, KIND_TEXT)
    h_mm, w_mm = ink.shape[0] / FOOT_PPM, ink.shape[1] / FOOT_PPM
    bands = text_bands(lay, h_mm)
    for kind, n in ((KIND_BAND, BAND_NEGATIVES if bands else 0), (KIND_PAGE, PAGE_NEGATIVES)):
        for _ in range(n):
            x = rng.uniform(PATCH_MM[0] / 2, w_mm - PATCH_MM[0] / 2)
            if kind == KIND_BAND:
                y0, y1 = bands[int(rng.integers(len(bands)))]
                y = rng.uniform(y0, y1)
            else:
                y = rng.uniform(PATCH_MM[1] / 2, h_mm - PATCH_MM[1] / 2)
            if clear(x, y):
                add(_crop(ink, x, y), NONE, kind)
    return xs, ys, kinds


def make_patches(
    records: list[Path], n_pages: int, seed: int, cache: Path | None = None
) -> dict[str, np.ndarray]:
    """Patches of `n_pages` pages (x uint8, y class, kind), saved to `cache` at the end."""
    rng = np.random.default_rng(seed)
    xs: list[np.ndarray] = []
    ys: list[int] = []
    kinds: list[int] = []
    t0 = time.time()
    for k in range(n_pages):
        px, py, pk = page_patches(records[int(rng.integers(len(records)))], rng)
        xs += [(p * 255).round().astype(np.uint8) for p in px]
        ys += py
        kinds += pk
        if k % 50 == 49:
            print(f"{k + 1} pages, {len(ys)} patches, {time.time() - t0:.0f} s", flush=True)
    out = {"x": np.stack(xs), "y": np.array(ys, np.int64), "kind": np.array(kinds, np.int64)}
    out["pages"] = np.array(n_pages)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, **out)  # type: ignore[arg-type]
    return out


MINE_AT = 0.3  # a "none" position read as a field at this probability is a hard negative
MINE_NEAR_MM = 1.5  # positions this close to a printed field's centre (x and y) are that field, not mined
MINE_PER_PAGE = 40  # at most this many hard negatives a page (the surest first)


def mine_patches(records: list[Path], n_pages: int, seed: int, net: object) -> dict[str, np.ndarray]:
    """Hard negatives: freshly drawn pages' text bands read whole by `net`, as the digitizer reads them;
    every position read as a field at MINE_AT or more whose patch is not centred on that field becomes a
    "none" patch (KIND_BAND), and every printed field a positive (so the fields keep their weight)."""
    rng = np.random.default_rng(seed)
    xs: list[np.ndarray] = []
    ys: list[int] = []
    kinds: list[int] = []
    t0 = time.time()
    for k in range(n_pages):
        ink, lay, fields, _ = draw_training_page(records[int(rng.integers(len(records)))], rng)
        for c, cx, cy, _w in fields:
            for _ in range(2):
                p = _crop(ink, cx + rng.uniform(-1, 1), cy + rng.uniform(-1, 1))
                if p is not None:
                    xs.append(p)
                    ys.append(c)
                    kinds.append(KIND_FIELD)
        found: list[tuple[float, float, float]] = []
        for y0, y1 in text_bands(lay, ink.shape[0] / FOOT_PPM):
            a = max(0, int(y0 * FOOT_PPM) - PH // 2)
            b = min(ink.shape[0], int(y1 * FOOT_PPM) + PH // 2)
            if b - a < PH:
                continue
            prob = class_maps(net, ink[a:b])[:NONE]
            top = prob.max(axis=0)
            for i, j in zip(*np.nonzero(top >= MINE_AT), strict=True):
                cx = (8 * j + PW / 2) / FOOT_PPM
                cy = (a + 8 * i + PH / 2) / FOOT_PPM
                near = [
                    f for f in fields if abs(cx - f[1]) <= MINE_NEAR_MM and abs(cy - f[2]) <= MINE_NEAR_MM
                ]
                if near:
                    continue  # the field itself (read right, or learnt from its positives)
                found.append((float(top[i, j]), cx, cy))
        for _, cx, cy in sorted(found, reverse=True)[:MINE_PER_PAGE]:
            p = _crop(ink, cx, cy)
            if p is not None:
                xs.append(p)
                ys.append(NONE)
                kinds.append(KIND_BAND)
        if k % 50 == 49:
            print(f"mined {k + 1} pages, {len(ys)} patches, {time.time() - t0:.0f} s", flush=True)
    x = np.stack([(p * 255).round().astype(np.uint8) for p in xs])
    return {
        "x": x,
        "y": np.array(ys, np.int64),
        "kind": np.array(kinds, np.int64),
        "pages": np.array(n_pages),
    }


def evaluate(net: object, data: dict[str, np.ndarray], sure: float = 0.9) -> dict[str, object]:
    """Held-out figures: fields read right, fields read confidently wrong, "none" patches read as a field."""
    prob = predict(net, data["x"])
    pred, p_max = prob.argmax(1), prob.max(1)
    y, kind = data["y"], data["kind"]
    fld = kind == KIND_FIELD
    per_class = {
        CLASSES[c]: [round(float((pred[fld & (y == c)] == c).mean()), 4), int((fld & (y == c)).sum())]
        for c in range(NONE)
        if (fld & (y == c)).any()
    }
    wrong = (pred != y) & (pred != NONE) & (p_max >= sure)
    per_kind = {
        name: round(float(((pred != NONE) & (p_max >= sure))[kind == k].mean()), 4)
        for name, k in (("moved", KIND_MOVED), ("text", KIND_TEXT), ("band", KIND_BAND), ("page", KIND_PAGE))
        if (kind == k).any()
    }
    return {
        "val_patches": int(len(y)),
        "field_accuracy": round(float((pred[fld] == y[fld]).mean()), 4),
        "field_read_surely": round(float(((pred == y) & (p_max >= sure))[fld].mean()), 4),
        "field_confidently_wrong": round(float(wrong[fld].mean()), 4),
        "none_read_surely_as_field": per_kind,
        "per_class": per_class,
    }


def _load_or_make(cache: Path, records: list[Path], pages: int, seed: int) -> dict[str, np.ndarray]:
    """The cached patches (brought to FOOT_PPM when drawn at another resolution), else drawn now."""
    z = dict(np.load(cache)) if cache.exists() else make_patches(records, pages, seed, cache)
    if z["x"].shape[1:] != (PH, PW):
        z["x"] = np.stack([cv2.resize(p, (PW, PH), interpolation=cv2.INTER_AREA) for p in z["x"]])
    return z


def main(argv: list[str] | None = None) -> int:
    import torch

    from ecgml.digitize_bench import bench_records

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=Path, default=Path("/work/shared/data/ecg"))
    ap.add_argument("--splits", type=Path, default=Path("data/splits.csv"))
    ap.add_argument("--pages", type=int, default=500)
    ap.add_argument("--val-pages", type=int, default=80, help="held-out pages of validation-split records")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument(
        "--cache",
        type=Path,
        nargs="+",
        default=[Path("runs/footer_reader/patches.npz")],
        help="training patch caches (the first names the held-out cache too; all are used)",
    )
    ap.add_argument("--render-only", action="store_true", help="render the patch caches and stop")
    ap.add_argument("--out", type=Path, default=Path("ecgml/weights/footer_reader.pt"))
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--init", type=Path, default=None, help="go on from these weights (a fine-tune)")
    ap.add_argument(
        "--mine",
        type=int,
        default=0,
        help="pages whose bands --init reads whole, for hard negatives (`mine_patches`)",
    )
    a = ap.parse_args(argv)
    args = sys.argv[1:] if argv is None else argv
    t0 = time.time()
    val_cache = a.cache[0].with_name(a.cache[0].stem + "-val.npz")
    val = _load_or_make(
        val_cache, bench_records(a.records, a.splits, ("validation",)), a.val_pages, a.seed + 1
    )
    train_recs = bench_records(a.records, a.splits, ("train",))
    parts = [_load_or_make(c, train_recs, a.pages, a.seed) for c in a.cache]
    if a.render_only:
        return 0
    torch.set_num_threads(1)
    if a.mine:
        from ecgml.footer_reader import load_net as _load

        mined_cache = a.out.with_name(a.out.stem + "-mined.npz")
        if mined_cache.exists():
            mined = dict(np.load(mined_cache))
        else:
            assert a.init is not None, "--mine reads pages with the --init weights"
            mined = mine_patches(train_recs, a.mine, a.seed + 2, _load(a.init))
            np.savez_compressed(mined_cache, **mined)  # type: ignore[arg-type]
        print(f"{int((mined['y'] == NONE).sum())} hard negatives mined on {a.mine} pages", flush=True)
        parts.append(mined)
    tr = {k: np.concatenate([p[k] for p in parts]) for k in ("x", "y", "kind")}
    tr["pages"] = np.array(sum(int(p["pages"]) for p in parts))
    print(f"{len(tr['y'])} training patches ({int(tr['pages'])} pages), {len(val['y'])} held out", flush=True)
    stats = train(
        tr["x"], tr["y"], a.steps, a.out, a.seed, lr=a.lr, net_fn=_net, n_classes=len(CLASSES), init=a.init
    )
    from ecgml.footer_reader import load_net

    meta = {
        "classes": list(CLASSES), "foot_ppm": FOOT_PPM, "patch_mm": list(PATCH_MM),
        "pages": int(tr["pages"]), "val_pages": int(val["pages"]), "train_split": "train",
        "held_out_split": "validation", "seed": a.seed, **stats,
        "seconds_total": round(time.time() - t0, 1), "held_out": evaluate(load_net(a.out), val),
        "command": "python -m ecgml.training.footer_reader " + " ".join(args),
    }  # fmt: skip
    if a.init is not None and a.init.with_suffix(".json").exists():
        meta["trained_from"] = json.loads(a.init.with_suffix(".json").read_text())
    a.out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
