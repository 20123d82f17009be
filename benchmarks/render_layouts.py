"""Seconds per page for every layout family (median of N renders each), as a clean 200 DPI page (type 0001
placement) and as a low-resolution copy (type lowres). Usage: python benchmarks/render_layouts.py [N]."""

from __future__ import annotations

import sys
import time

import numpy as np

from ecgml.records import iter_wfdb_paths, read_wfdb, resample
from ecgml.render.layouts import FAMILIES
from ecgml.render.presets import render

if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    paths = iter_wfdb_paths("data/records")
    recs = [resample(read_wfdb(p).window(0, 10), 500) for p in paths[:n]]
    render(recs[0], "0001", 0)  # warm up (imports, fonts)
    print("| layout | 0001-style clean page, s | lowres copy, s |")
    print("|---|---|---|")
    for fam in FAMILIES:
        row = []
        for image_type in ("0001", "lowres"):
            ts = []
            for k in range(n):
                t0 = time.perf_counter()
                render(recs[k % len(recs)], image_type, k, layout=fam)
                ts.append(time.perf_counter() - t0)
            row.append(f"{np.median(ts):.2f}")
        print(f"| {fam} | {row[0]} | {row[1]} |", flush=True)
