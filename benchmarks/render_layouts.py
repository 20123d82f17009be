"""Seconds per page for every layout family (median of N renders each), as a clean 200 DPI page (type 0001
placement) and as a low-resolution copy (type lowres). Families are interleaved (page k of every family,
then page k+1) so a changing machine load hits them alike.
Usage: python benchmarks/render_layouts.py [N]."""

from __future__ import annotations

import sys
import time

import numpy as np

from ecgml.records import iter_wfdb_paths, read_wfdb, resample
from ecgml.render.layouts import FAMILIES
from ecgml.render.presets import render

TYPES = ("0001", "lowres")

if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    paths = iter_wfdb_paths("data/records")
    recs = [resample(read_wfdb(p).window(0, 10), 500) for p in paths[:n]]
    render(recs[0], "0001", 0)  # warm up (imports, fonts)
    times: dict[tuple[str, str], list[float]] = {(f, t): [] for f in FAMILIES for t in TYPES}
    for k in range(n):
        for fam in FAMILIES:
            for image_type in TYPES:
                t0 = time.perf_counter()
                render(recs[k % len(recs)], image_type, k, layout=fam)
                times[(fam, image_type)].append(time.perf_counter() - t0)
    print("| layout | 0001-style clean page (200 DPI), s | lowres copy, s |")
    print("|---|---|---|")
    for fam in FAMILIES:
        print(f"| {fam} | {np.median(times[(fam, '0001')]):.2f} | {np.median(times[(fam, 'lowres')]):.2f} |")
