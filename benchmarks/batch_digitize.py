"""`ecgml digitize` on many pages: one call for the folder against one call per page (issue 17).

    python benchmarks/batch_digitize.py [--pages 20] [--model classical] [--workers 1] [--rounds 1]

Renders `--pages` Kaggle-style 0001 pages from the bundled records (seeded), then times, interleaved
round by round, (a) `ecgml digitize FOLDER --out A` once and (b) `ecgml digitize PAGE --out B` once per
page, each as a fresh `python -m ecgml` process (start-up, imports and model load included), and checks
that both wrote the same CSVs. Prints one JSON line per round and the medians.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def render_pages(folder: Path, n: int) -> list[Path]:
    from ecgml.records import iter_wfdb_paths, read_wfdb
    from ecgml.render.presets import render

    records = iter_wfdb_paths(REPO / "data" / "records")
    pages = []
    for k in range(n):
        rec = read_wfdb(records[k % len(records)]).window(0, 10)
        page = folder / f"page{k:02d}.png"
        cv2.imwrite(str(page), cv2.cvtColor(render(rec, "0001", seed=k).image, cv2.COLOR_RGB2BGR))
        pages.append(page)
    return pages


def run(args: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ecgml", "digitize", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"ecgml digitize {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--model", default=None, help="a --model value (default: the shipped weights)")
    ap.add_argument("--workers", type=int, default=1, help="--workers of the one-call run")
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ecgml-batch-bench-"))
    try:
        (work / "pages").mkdir()
        pages = render_pages(work / "pages", a.pages)
        model = ["--model", a.model] if a.model else []
        one, each = [], []
        for r in range(a.rounds):
            out_a, out_b = work / f"a{r}", work / f"b{r}"
            one.append(run([str(work / "pages"), "--out", str(out_a), "--workers", str(a.workers), *model]))
            each.append(sum(run([str(p), "--out", str(out_b), *model]) for p in pages))
            same = all(
                (out_a / f"{p.stem}.csv").read_bytes() == (out_b / f"{p.stem}.csv").read_bytes()
                for p in pages
            )
            line = {"round": r, "pages": len(pages), "one_call_s": round(one[-1], 1)}
            line |= {"per_page_calls_s": round(each[-1], 1), "same_outputs": same}
            print(json.dumps(line), flush=True)
        print(
            json.dumps(
                {
                    "pages": len(pages),
                    "workers": a.workers,
                    "model": a.model or "shipped",
                    "one_call_median_s": round(float(np.median(one)), 1),
                    "per_page_calls_median_s": round(float(np.median(each)), 1),
                }
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
