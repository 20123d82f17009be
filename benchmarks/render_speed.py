"""Seconds to render one image (with its truth, without writing it) per type, on one core.

    python benchmarks/render_speed.py [N_PER_TYPE]

OpenCV and BLAS are limited to one thread. Reports the median CPU time of the process per image (the
one-core cost, robust to other jobs on the machine) and the median wall time. Prints a Markdown table
for BENCHMARKS.md ("Renderer speed").
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from ecgml.records import iter_wfdb_paths, read_wfdb, resample  # noqa: E402
from ecgml.render.presets import TYPES, render  # noqa: E402

LIMITS = {"0001": 0.5, "0003": 1.0, "0004": 1.0, "0011": 1.0, "0012": 1.0}


def main(n: int) -> None:
    cv2.setNumThreads(1)
    paths = iter_wfdb_paths("data/records")
    rates = [500, 1000, 250, 1025, 256, 512] * n
    recs = [resample(read_wfdb(p).window(0, 10), fs) for p, fs in zip(paths[:n], rates[:n], strict=True)]
    render(recs[0], "0005", 0)  # warm-up: imports, font cache
    print("| type | median CPU s/image | max CPU s | median wall s | target s | example size | n |")
    print("|---|---|---|---|---|---|---|")
    for t in TYPES:
        cpu, wall = [], []
        size = (0, 0)
        for k, rec in enumerate(recs):
            c0, w0 = time.process_time(), time.perf_counter()
            out = render(rec, t, seed=k)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            size = out.image.shape[1::-1]
        row = [
            t,
            f"{np.median(cpu):.2f}",
            f"{max(cpu):.2f}",
            f"{np.median(wall):.2f}",
            str(LIMITS.get(t, 2.5)),
        ]
        print("| " + " | ".join(row + [f"{size[0]}x{size[1]}", str(len(cpu))]) + " |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
