"""`ecgml digitize` on one small image, end to end, as a user runs it once per image (issue 17).

    python benchmarks/startup_digitize.py --variant before=/tmp/ecgml-before \
        --variant after=/tmp/ecgml-after [--runs 5]

Each variant is a folder holding an `ecgml` package (e.g. `git archive COMMIT ecgml | tar -x -C DIR`), run as
a fresh `python -m ecgml digitize PAGE --out DIR` process with PYTHONPATH=DIR. Per run: start-up = process
start (just before the parent launches it) to the first stage (geometry starts on the image), and the total
wall time of the process; variants take turns (A, B, A, B, ...); medians are printed. The first run of each
variant is reported apart: it may fill a cache (the exported ONNX graph) that later runs read; each variant
has its own cache folder (ECGML_CACHE_DIR) in the benchmark's temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
# Runs `python -m ecgml ...` and prints the wall clock when the first stage (page geometry) begins.
WRAPPER = """
import runpy, sys, time
import ecgml.digitize as d
from pathlib import Path
print("ECGML_FROM", Path(d.__file__).parent, file=sys.stderr, flush=True)
real = d.estimate_geometry
def first_stage(*a, **k):
    if not getattr(first_stage, "seen", False):
        first_stage.seen = True
        print("FIRST_STAGE", time.time(), file=sys.stderr, flush=True)
    return real(*a, **k)
d.estimate_geometry = first_stage
sys.argv = ["ecgml", *sys.argv[1:]]
runpy.run_module("ecgml", run_name="__main__")
"""


def one_page(folder: Path) -> Path:
    from ecgml.records import iter_wfdb_paths, read_wfdb
    from ecgml.render.presets import render

    rec = read_wfdb(iter_wfdb_paths(REPO / "data" / "records")[0]).window(0, 10)
    page = folder / "page.png"
    cv2.imwrite(str(page), cv2.cvtColor(render(rec, "0001", seed=0).image, cv2.COLOR_RGB2BGR))
    return page


def run_once(code_dir: Path, page: Path, out: Path) -> tuple[float, float]:
    """(start-up s, total s) of one `ecgml digitize PAGE` process using the package in `code_dir` (run
    in the page's folder: `python -c` puts the working directory before PYTHONPATH)."""
    env = {**os.environ, "PYTHONPATH": str(code_dir)}
    # Each variant's graph cache in the benchmark's own folder, not the user's home.
    env["ECGML_CACHE_DIR"] = str(out.parent / f"cache-{out.name}")
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, "digitize", str(page), "--out", str(out), "--overwrite"],
        env=env, cwd=page.parent, capture_output=True, text=True,
    )  # fmt: skip
    total = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{code_dir}: ecgml digitize failed:\n{proc.stderr[-3000:]}")
    first = [ln for ln in proc.stderr.splitlines() if ln.startswith(("FIRST_STAGE", "ECGML_FROM"))]
    assert first[0].split()[1] == str(code_dir / "ecgml"), f"ran {first[0]}, not {code_dir}"
    first = first[1:]
    return float(first[0].split()[1]) - t0, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", action="append", required=True, help="NAME=DIR (DIR holds ecgml/)")
    ap.add_argument("--runs", type=int, default=5, help="runs per variant after the first")
    a = ap.parse_args()
    variants = dict(v.split("=", 1) for v in a.variant)
    work = Path(tempfile.mkdtemp(prefix="ecgml-startup-bench-"))
    page = one_page(work)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for k in range(a.runs + 1):
        for name, folder in variants.items():
            s, t = run_once(Path(folder), page, work / name)
            times[name].append((s, t))
            print(json.dumps({"variant": name, "run": k, "startup_s": round(s, 2), "total_s": round(t, 2)}))
    for name, ts in times.items():
        rest = ts[1:]
        summary = {
            "variant": name,
            "first_run_startup_s": round(ts[0][0], 2),
            "first_run_total_s": round(ts[0][1], 2),
            "median_startup_s": round(statistics.median(s for s, _ in rest), 2),
            "median_total_s": round(statistics.median(t for _, t in rest), 2),
            "runs": len(rest),
        }
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
