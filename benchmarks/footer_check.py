"""The footer reader's page-level check: over whole pages, which printed speeds and gains it reads right,
reads wrong, misses, and which it reads where the page prints none.

A patch-level figure (fields read right among held-out field patches) says little about a whole page: the
reader looks at every position of the page's text bands, hundreds of them, and one confident "20 mm/mV"
among them sets the gain of all twelve leads. So the check runs the digitizer's own path on each image:
geometry (`digitize.estimate_geometry`), the canonical page, its ink at FOOT_PPM, the text bands of the
geometry's layout (`footer_reader.band_inks`), then `best_fields` and `decide`, and compares with what the
page prints. Two steps, so that a new model is checked in seconds:

    python benchmarks/footer_check.py bands --render /work/wt/bench26/layout_val --seed 14001 \
        --from-splits validation --per-family 20 --out runs/footer/val.pkl
    python benchmarks/footer_check.py bands --ecg-plot /work/wt/bench26/ecgplot16 --out runs/footer/plot.pkl
    python benchmarks/footer_check.py bands --images 'DIR/*.png' --set wfdb --speed 25 --out runs/footer/w.pkl
    python benchmarks/footer_check.py check --weights ecgml/weights/footer_reader.pt runs/footer/*.pkl \
        [--json out.json]

Truth: renderer pages are drawn again from their record and seed (`layout_bench.render_set`'s order) and
their printed lines searched for fields (`footer_reader.FIELD`); other sets give their settings on the
command line (`--speed`, `--gain`) and print none unless `--printed` says they do. A read of a field the
page does not print counts as such even when its value happens to be the page's.
"""

from __future__ import annotations

import argparse
import glob
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ecgml.footer_reader import CLASSES, FIELD, band_inks, best_fields, decide, field_class

KINDS = ("speed", "gain")


def printed_fields(texts: list[str]) -> list[str]:
    """The standard speed and gain fields (CLASSES names) printed in these lines."""
    out = []
    for t in texts:
        for m in FIELD.finditer(t):
            c = field_class(m.group(1), m.group(2))
            if c is not None:
                out.append(CLASSES[c])
    return sorted(set(out))


def page_bands(png: Path) -> tuple[list[np.ndarray], str, float]:
    """The text bands the digitizer would read on this image (float16 ink), geometry's source, seconds."""
    from ecgml.digitize import CANONICAL_PX_PER_MM, estimate_geometry, footer_ink
    from ecgml.geometry.canonical import canonical_page
    from ecgml.images import load_image

    t0 = time.perf_counter()
    image = load_image(png)
    geo = estimate_geometry(image, png)
    page = canonical_page(image, geo.page_map, CANONICAL_PX_PER_MM)
    bands = band_inks(footer_ink(page), geo.layout)
    return [b.astype(np.float16) for b in bands], geo.source, time.perf_counter() - t0


def render_truth(
    folder: Path,
    records: Path,
    splits: Path,
    from_splits: tuple[str, ...],
    per_family: int,
    seed: int,
    limit: int = 0,
) -> dict[str, dict[str, Any]]:
    """Per page name of a `layout_bench.render_set` folder: its speed, gain, chest gain and printed fields,
    from drawing the page again (same record, capture and seed)."""
    from ecgml.digitize_bench import bench_records
    from ecgml.layout_bench import CAPTURES, FAMILIES
    from ecgml.records import read_wfdb, resample
    from ecgml.render.presets import render

    recs = bench_records(records, splits, from_splits)
    out: dict[str, dict[str, Any]] = {}
    for png in sorted(folder.glob("*.png")):
        fam_name, idx = png.stem.rsplit("_", 1)
        fam = fam_name.replace("panels-", "panels:")
        if fam not in FAMILIES or (limit and len(out) >= limit):
            continue
        i = int(idx)
        k = FAMILIES.index(fam) * per_family + i
        rec = resample(read_wfdb(recs[k % len(recs)]).window(0, 10), 500, 5000)
        r = render(rec, CAPTURES[i % len(CAPTURES)], seed * 1000 + k, layout=fam)
        texts = [t for t, _ in r.meta["text_boxes_mm"]]
        out[png.stem] = {
            "speed": float(r.layout.speed_mm_s),
            "gain": float(r.layout.gain_mm_mv),
            "chest": float(r.layout.chest_gain_mm_mv or 0.0),
            "printed": printed_fields(texts),
        }
    return out


def flat_pages(records: Path, splits: Path, from_splits: tuple[str, ...], n: int, seed: int) -> list[dict]:
    """`n` pages drawn as the reader's training pages are (`training.footer_reader.draw_training_page`:
    flat, degraded, every cart header and footer, evenly drawn speeds and gains) from records of
    `from_splits`: the reader's own distribution held out, with its layout's bands (no geometry)."""
    import numpy as np

    from ecgml.digitize_bench import bench_records
    from ecgml.training.footer_reader import draw_training_page

    recs = bench_records(records, splits, from_splits)
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        t0 = time.perf_counter()
        ink, lay, fields, _ = draw_training_page(recs[int(rng.integers(len(recs)))], rng)
        bands = [b.astype(np.float16) for b in band_inks(ink, lay)]
        out.append({
            "name": f"flat_{k:03d}", "bands": bands, "source": "flat (true layout)",
            "secs": time.perf_counter() - t0, "speed": float(lay.speed_mm_s), "gain": float(lay.gain_mm_mv),
            "chest": float(lay.chest_gain_mm_mv or 0.0), "printed": sorted({CLASSES[c] for c, *_ in fields}),
        })  # fmt: skip
        print(f"{k + 1}/{n} flat {len(bands)} bands {out[-1]['printed']}", flush=True)
    return out


def ecgplot_gains(seed: int, per_layout: int = 6) -> dict[str, float]:
    """Per page name of an `ecgml.plotter_bench.plotter_pages` set: the gain it was drawn at (its
    `plotter_page` draws replayed: pulse, grid colour, names, then the gain). ecg_plot prints it, with the
    speed, under the page ("25 mm/s · 20 mm/mV · time: s ...")."""
    from ecgml.plotter_bench import PLOTTER_GAINS, PLOTTER_LAYOUTS

    out = {}
    for i in range(per_layout):
        for j, layout in enumerate(PLOTTER_LAYOUTS):
            rng = np.random.default_rng(seed * 1000 + j * per_layout + i)
            pulse = rng.random() < 0.8
            rng.random(), rng.random()
            gain = float(rng.choice(PLOTTER_GAINS, p=(0.15, 0.7, 0.15))) if pulse else 10.0
            out[f"ecgplot-{layout}_{i:03d}"] = gain
    return out


def bands_main(a: argparse.Namespace) -> int:
    pages: list[tuple[str, Path, dict[str, Any]]] = []
    if a.flat:
        out = flat_pages(a.records, a.splits, tuple(a.from_splits.split(",")), a.flat, a.seed)
        out = [{"set": a.set or "flat", **p} for p in out]
        a.out.parent.mkdir(parents=True, exist_ok=True)
        with open(a.out, "wb") as f:
            pickle.dump(out, f)
        return 0
    if a.render:
        truth = render_truth(
            a.render, a.records, a.splits, tuple(a.from_splits.split(",")), a.per_family, a.seed, a.limit
        )  # fmt: skip
        pages += [(n, a.render / f"{n}.png", t) for n, t in truth.items()]
        set_name = a.set or a.render.name
    else:
        fixed = {
            "speed": a.speed, "gain": a.gain, "chest": 0.0,
            "printed": a.printed.split(",") if a.printed else [],
        }  # fmt: skip
        files = sorted(glob.glob(a.images)) if a.images else []
        pages += [(Path(f).stem, Path(f), dict(fixed)) for f in files]
        if a.ecg_plot_seed is not None:  # the gain each page was drawn at, and printed
            gains = ecgplot_gains(a.ecg_plot_seed)
            pages = [(n, f, {**t, "gain": gains[n], "printed": ["25 mm/s", f"{gains[n]:g} mm/mV"]})
                     for n, f, t in pages]  # fmt: skip
        set_name = a.set or "images"
    if a.limit:
        pages = pages[: a.limit]
    out = []
    for k, (name, png, truth) in enumerate(pages):
        try:
            bands, source, secs = page_bands(png)
        except Exception as exc:  # a refused page has no bands the digitizer would read
            bands, source, secs = [], f"refused: {exc}", 0.0
        out.append({"set": set_name, "name": name, "bands": bands, "source": source, "secs": secs, **truth})
        print(f"{k + 1}/{len(pages)} {name} {len(bands)} bands {secs:.1f} s {source[:40]}", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "wb") as f:
        pickle.dump(out, f)
    return 0


def outcome(read: float | None, truth: float | None, printed: bool) -> str:
    """One field's outcome: "right", "wrong" (a value not the page's), "missed" (printed, not read),
    "unprinted" (read where the page prints none, at the page's own value) or "" (not printed, not read)."""
    if read is None:
        return "missed" if printed else ""
    if truth is None or read != truth:
        return "wrong"
    return "right" if printed else "unprinted"


def check_page(page: dict[str, Any], net: Any) -> dict[str, Any]:
    """The reader's reading of one page against its truth."""
    t0 = time.perf_counter()
    best = best_fields([b.astype(np.float32) for b in page["bands"]], net)
    secs = time.perf_counter() - t0
    speed, gain, chest = decide(best)
    printed = page["printed"]
    res = {
        "set": page["set"], "name": page["name"], "source": page["source"][:60],
        "read_speed": speed, "read_gain": gain, "read_chest": chest, "printed": printed,
        "speed": page["speed"], "gain": page["gain"], "chest": page["chest"], "read_s": round(secs, 3),
        "best": {k: round(v, 3) for k, v in best.items() if v >= 0.05},
    }  # fmt: skip
    res["speed_outcome"] = outcome(speed, page["speed"], any(p.endswith("mm/s") for p in printed))
    g_printed = any(p.endswith("mm/mV") for p in printed)
    g_out = outcome(gain, page["gain"], g_printed)
    if (
        g_out in ("right", "unprinted")
        and (chest or 0.0) != (page["chest"] or 0.0)
        and (chest or page["chest"])
    ):
        g_out = "wrong"  # a mixed page read as one gain, or one gain read as mixed
    res["gain_outcome"] = g_out
    return res


def check_main(a: argparse.Namespace) -> int:
    from ecgml.footer_reader import load_net

    net = load_net(a.weights)
    rows = []
    for path in a.bands:
        with open(path, "rb") as f:
            rows += [check_page(p, net) for p in pickle.load(f)]
    sets: dict[str, dict[str, Any]] = {}
    for r in rows:
        s = sets.setdefault(r["set"], {"pages": 0, "pages_printing": 0, **{
            f"{k}_{o}": 0 for k in KINDS for o in ("right", "wrong", "missed", "unprinted")
        }})  # fmt: skip
        s["pages"] += 1
        s["pages_printing"] += bool(r["printed"])
        for k in KINDS:
            if r[f"{k}_outcome"]:
                s[f"{k}_{r[f'{k}_outcome']}"] += 1
    bad = [r for r in rows if "wrong" in (r["speed_outcome"], r["gain_outcome"])]
    unprinted = [r for r in rows if "unprinted" in (r["speed_outcome"], r["gain_outcome"])]
    secs = [r["read_s"] for r in rows]
    summary = {
        "weights": str(a.weights), "pages": len(rows), "sets": sets,
        "pages_read_wrong": [r["name"] for r in bad],
        "pages_read_unprinted": [r["name"] for r in unprinted],
        "read_s_median": round(float(np.median(secs)), 3) if secs else None,
        "read_s_max": round(float(max(secs)), 3) if secs else None,
        "passes": not bad,
    }  # fmt: skip
    print(
        "| set | pages | printing | speed right / wrong / missed / unprinted | gain right / wrong / missed "
        "/ unprinted |"
    )
    print("|---|---|---|---|---|")
    for name, s in sets.items():
        sp = " / ".join(str(s[f"speed_{o}"]) for o in ("right", "wrong", "missed", "unprinted"))
        ga = " / ".join(str(s[f"gain_{o}"]) for o in ("right", "wrong", "missed", "unprinted"))
        print(f"| {name} | {s['pages']} | {s['pages_printing']} | {sp} | {ga} |")
    for r in bad + unprinted:
        print(json.dumps(r))
    print(json.dumps({k: v for k, v in summary.items() if k != "sets"}))
    if a.json:
        a.json.write_text(json.dumps({"summary": summary, "pages": rows}, indent=1) + "\n")
    meta_path = a.weights.with_suffix(".json")
    if a.record and meta_path.exists():  # the figures beside the weights they describe
        meta = json.loads(meta_path.read_text())
        meta["page_check"] = {
            **summary, "command": "python benchmarks/footer_check.py " + " ".join(sys.argv[1:]),
            "band_caches": [str(b) for b in a.bands],
        }  # fmt: skip
        meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    return 0 if not bad else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bands", help="cache each page's text bands (geometry as the digitizer's) and truth")
    b.add_argument("--render", type=Path, help="a layout_bench.render_set folder (truth drawn again)")
    b.add_argument("--records", type=Path, default=Path("/work/shared/data/ecg"))
    b.add_argument("--splits", type=Path, default=Path("data/splits.csv"))
    b.add_argument("--from-splits", default="validation")
    b.add_argument("--per-family", type=int, default=20)
    b.add_argument("--seed", type=int, default=14001)
    b.add_argument("--flat", type=int, default=0, help="draw this many held-out flat pages (`flat_pages`)")
    b.add_argument("--images", help="a glob of other pages (their settings from --speed/--gain)")
    b.add_argument("--speed", type=float, default=None, help="the pages' paper speed (None: unknown)")
    b.add_argument("--gain", type=float, default=None, help="the pages' gain (None: unknown)")
    b.add_argument("--printed", default="", help="fields the pages print, e.g. '25 mm/s,10 mm/mV'")
    b.add_argument(
        "--ecg-plot-seed", type=int, default=None, help="--images are an ecg-plot set of this seed"
    )
    b.add_argument("--set", default="")
    b.add_argument("--limit", type=int, default=0)
    b.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("check", help="read the cached bands with a model and count outcomes per set")
    c.add_argument("bands", type=Path, nargs="+")
    c.add_argument("--weights", type=Path, required=True)
    c.add_argument("--json", type=Path, default=None)
    c.add_argument("--record", action="store_true", help="write the figures into the weights' JSON")
    a = ap.parse_args(argv)
    return bands_main(a) if a.cmd == "bands" else check_main(a)


if __name__ == "__main__":
    sys.exit(main())
