"""Which images the digitizer refuses as "not an ECG page" (issue 16): non-ECG images must all be refused,
real ECG pages never.

    python benchmarks/non_ecg_benchmark.py --sets non_ecg,no_grid,renderer,outside --out runs/non_ecg.json

Sets: `non_ecg` (ecgml.render.non_ecg, every kind x --seeds), `renderer` (every capture type x --per-type,
validation/test records), `no_grid` (realworld and lowres pages with the grid switched off, --per-type
each), `outside` (the ECG-Image-Kit pages in /work/shared/data/outside-pages). Shipped weights, default
settings. Each image's outcome (refused, failed otherwise, digitized; the page evidence) is written to
--out as it comes; the summary per set is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ecgml.digitize import load_digitizer
from ecgml.errors import EcgmlError

sys.path.insert(0, str(Path(__file__).parent))
OUTSIDE = Path("/work/shared/data/outside-pages/pages")


def non_ecg_images(seeds: int, first: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    from ecgml.render.non_ecg import KINDS, non_ecg_image

    for seed in range(first, first + seeds):
        for kind in KINDS:
            yield f"{kind}-{seed}", non_ecg_image(kind, seed)


def renderer_pages(per_type: int, no_grid: bool, first: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    from geometry_benchmark import bench_records

    import ecgml.render.presets as presets
    from ecgml.records import read_wfdb

    types = ("realworld", "lowres") if no_grid else presets.TYPES
    if no_grid:  # the real-world style with its grid switched off (7 % of real-world pages draw none)
        drawn = presets.random_style

        def without_grid(*a, **k):  # type: ignore[no-untyped-def]
            style = drawn(*a, **k)
            style.grid = False
            return style

        presets.random_style = without_grid
    recs = bench_records()
    for i in range(first, first + per_type):
        for t in types:
            seed = (7000 if no_grid else 4000) + 100 * presets.TYPES.index(t) + i
            rec = read_wfdb(recs[(i * 7 + presets.TYPES.index(t)) % len(recs)])
            yield f"{t}-{seed}", presets.render(rec, t, seed).image


def outside_pages() -> Iterator[tuple[str, np.ndarray]]:
    for png in sorted(OUTSIDE.glob("*.png")):
        yield png.stem, cv2.cvtColor(cv2.imread(str(png), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="non_ecg,no_grid,renderer,outside")
    ap.add_argument("--seeds", type=int, default=5, help="non-ECG images per kind")
    ap.add_argument("--per-type", type=int, default=2, help="renderer pages per capture type")
    ap.add_argument("--first", type=int, default=0, help="first seed / page index (0: the tuning sets)")
    ap.add_argument("--out", type=Path, default=Path("runs/non_ecg.json"))
    a = ap.parse_args()
    digitizer = load_digitizer(None)
    makers = {
        "non_ecg": lambda: non_ecg_images(a.seeds, a.first),
        "no_grid": lambda: renderer_pages(a.per_type, True, a.first),
        "renderer": lambda: renderer_pages(a.per_type, False, a.first),
        "outside": outside_pages,
    }
    rows: list[dict] = []
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for name in a.sets.split(","):
        for image_name, image in makers[name]():
            t0 = time.perf_counter()
            row: dict = {"set": name, "image": image_name}
            try:
                res = digitizer.digitize_image(image, 500, image_name)
                row.update(outcome="digitized", verdict=res.verdict, evidence=res.evidence.get("ecg_page"))
            except EcgmlError as exc:
                refused = exc.reason.startswith("not an ECG page")
                row.update(outcome="refused" if refused else "failed", reason=exc.reason)
            except Exception as exc:  # noqa: BLE001 - counted, and the run goes on
                row.update(outcome="failed", reason=f"unexpected {type(exc).__name__}: {exc}")
            row["seconds"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
            a.out.write_text(json.dumps(rows, indent=1))
    for name in a.sets.split(","):
        mine = [r for r in rows if r["set"] == name]
        counts = {k: sum(r["outcome"] == k for r in mine) for k in ("refused", "failed", "digitized")}
        print(json.dumps({"set": name, "images": len(mine), **counts}))


if __name__ == "__main__":
    main()
