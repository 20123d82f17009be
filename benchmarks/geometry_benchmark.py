"""Page geometry benchmark (issue 4): fixed-seed renderer sets, validation/test records only.

For every image: render it (cached as PNG + truth under --cache), run `estimate_page`, and measure the
error of the recovered map at the true positions of the visible trace samples, in paper mm:
|est.page_map.px_to_mm(xy) - truth.page_map.px_to_mm(xy)|. Also orientation (quarter turn of the page in
the image) and layout name against the truth, and the seconds `estimate_page` took.

    python benchmarks/geometry_benchmark.py --per-type 20 --out runs/geometry_benchmark.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from ecgml.errors import EcgmlError
from ecgml.geometry import estimate_page
from ecgml.page import PageMap
from ecgml.records import iter_wfdb_paths, read_wfdb
from ecgml.splits import load_split_file, records_in_split

TYPES = ("0001", "0003", "0004", "0011", "0012", "0005", "0006", "0009", "0010")
GROUPS = {
    "scans": ("0001", "0003", "0004", "0011", "0012"),
    "photos/screens": ("0005", "0006", "0009", "0010"),
}
SEED = 4000
POINTS_PER_IMAGE = 2000


def bench_records() -> list[Path]:
    paths = iter_wfdb_paths("data/records") + iter_wfdb_paths("/work/shared/data/ecg")
    table = load_split_file("data/splits.csv")
    out = []
    for split in ("validation", "test"):
        out += records_in_split(paths, split, table)
    return sorted(set(out))


def true_orientation(pm: PageMap) -> int:
    c = np.array(pm.paper_mm) / 2
    p = pm.mm_to_px(np.array([c, c + [1.0, 0]]))
    v = p[1] - p[0]
    return int(90 * np.round(np.degrees(np.arctan2(-v[1], v[0])) / 90)) % 360


def render_cached(rec_path: Path, image_type: str, seed: int, cache: Path) -> tuple[np.ndarray, dict]:
    from ecgml.render.presets import render

    stem = cache / f"{image_type}-{seed}"
    png, meta_p, xy_p = stem.with_suffix(".png"), stem.with_suffix(".json"), stem.with_suffix(".npz")
    if png.exists() and meta_p.exists() and xy_p.exists():
        img = cv2.cvtColor(cv2.imread(str(png), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        meta = json.loads(meta_p.read_text())
        z = np.load(xy_p)
        meta["xy"], meta["visible"] = z["xy"], z["visible"]
        return img, meta
    rec = read_wfdb(rec_path)
    out = render(rec, image_type, seed)
    cache.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(png), cv2.cvtColor(out.image, cv2.COLOR_RGB2BGR))
    meta = {"record": rec.name, "layout": out.layout.name, "page_map": out.page_map.to_dict()}
    meta_p.write_text(json.dumps(meta))
    np.savez_compressed(xy_p, xy=out.truth.xy, visible=out.truth.visible)
    meta["xy"], meta["visible"] = out.truth.xy, out.truth.visible
    return out.image, meta


def run(per_type: int, types: tuple[str, ...], cache: Path, render_only: bool = False) -> dict:
    recs = bench_records()
    rows = []
    for t in types:
        for i in range(per_type):
            seed = SEED + 1000 * TYPES.index(t) + i
            rec = recs[(i * 7 + TYPES.index(t)) % len(recs)]
            img, meta = render_cached(rec, t, seed, cache)
            if render_only:
                continue
            truth = PageMap.from_dict(meta["page_map"])
            xy = np.asarray(meta["xy"], np.float64)[np.asarray(meta["visible"], bool)]
            rng = np.random.default_rng(seed)
            if len(xy) > POINTS_PER_IMAGE:
                xy = xy[rng.choice(len(xy), POINTS_PER_IMAGE, replace=False)]
            row = {"type": t, "seed": seed, "record": meta["record"], "size": list(img.shape[:2])}
            t0 = time.perf_counter()
            c0 = time.process_time()
            try:
                est = estimate_page(img, f"{t}-{seed}")
            except EcgmlError as exc:
                row.update(ok=False, error=exc.reason, seconds=time.perf_counter() - t0)
                rows.append(row)
                print(t, seed, "FAILED", exc.reason, flush=True)
                continue
            row["seconds"] = time.perf_counter() - t0
            row["cpu_seconds"] = time.process_time() - c0
            err = np.linalg.norm(est.page_map.px_to_mm(xy) - truth.px_to_mm(xy), axis=1)
            row.update(ok=True, err=err.tolist(), median_mm=float(np.median(err)))
            row.update(p95_mm=float(np.percentile(err, 95)), confidence=est.confidence)
            row["diagnostics"] = est.diagnostics
            row["orientation_ok"] = est.orientation == true_orientation(truth)
            row["layout_ok"] = est.layout.name == meta["layout"]
            rows.append(row)
            print(
                t, seed, f"med {row['median_mm']:.3f} p95 {row['p95_mm']:.3f} conf {est.confidence:.2f} "
                f"orient {'ok' if row['orientation_ok'] else 'WRONG'} layout {est.layout.name} "
                f"{row['seconds']:.2f}s", flush=True,
            )  # fmt: skip
    return {"rows": rows, "summary": summarise(rows, types) if rows else {}}


def _stats(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["ok"]]
    n = len(rows)
    if n == 0:
        return {}
    # a failed image counts as a wrong orientation/layout and as errors of +inf
    err = np.concatenate([np.asarray(r["err"]) for r in ok]) if ok else np.array([np.inf])
    err = np.concatenate([err, np.full(POINTS_PER_IMAGE * (n - len(ok)), np.inf)])
    return {
        "images": n,
        "failed": n - len(ok),
        "median_mm": float(np.median(err)),
        "p95_mm": float(np.percentile(err, 95, method="higher")),
        "orientation_acc": sum(r.get("orientation_ok", False) for r in rows) / max(n, 1),
        "layout_acc": sum(r.get("layout_ok", False) for r in rows) / max(n, 1),
        "median_s": float(np.median([r["seconds"] for r in rows])),
        "median_cpu_s": float(np.median([r["cpu_seconds"] for r in rows if "cpu_seconds" in r] or [np.nan])),
        "max_s": float(np.max([r["seconds"] for r in rows])),
    }


def summarise(rows: list[dict], types: tuple[str, ...]) -> dict:
    out = {t: _stats([r for r in rows if r["type"] == t]) for t in types}
    for g, ts in GROUPS.items():
        sel = [r for r in rows if r["type"] in ts]
        if sel:
            out[g] = _stats(sel)
    return out


def table(summary: dict) -> str:
    lines = [
        "| set | images | failed | median mm | p95 mm | orientation | layout | median s | max s | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k, s in summary.items():
        lines.append(
            f"| {k} | {s['images']} | {s['failed']} | {s['median_mm']:.3f} | {s['p95_mm']:.3f} | "
            f"{s['orientation_acc']:.0%} | {s['layout_acc']:.0%} | {s['median_s']:.2f} | {s['max_s']:.2f} | "
            f"{s['median_cpu_s']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--per-type", type=int, default=20)
    ap.add_argument("--types", default=",".join(TYPES))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/ecgml-geometry-bench"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--render-only", action="store_true", help="only fill the render cache")
    a = ap.parse_args()
    cv2.setNumThreads(2)
    res = run(a.per_type, tuple(a.types.split(",")), a.cache, a.render_only)
    if a.render_only:
        return
    print(table(res["summary"]))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        slim = {
            "summary": res["summary"],
            "rows": [{k: v for k, v in r.items() if k != "err"} for r in res["rows"]],
        }
        a.out.write_text(json.dumps(slim, indent=1, default=float))


if __name__ == "__main__":
    main()
