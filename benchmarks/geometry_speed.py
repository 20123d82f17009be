"""estimate_page and canonical_page speed, two code versions interleaved (same machine load for both).

Each version runs in its own worker process (its ecgml tree on PYTHONPATH); images from the geometry
benchmark's render cache go to the two workers alternately, and the canonical pages are compared.

    git archive OLD ecgml | tar -x -C /tmp/before; git archive NEW ecgml | tar -x -C /tmp/after
    python benchmarks/geometry_speed.py --before /tmp/before --after /tmp/after --reps 2 \\
        0001-4000 0001-4001 0001-4002 0005-9000 0005-9001 0005-9002 0010-12000 0010-12001 0010-12002
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CACHE = Path("/tmp/ecgml-geometry-bench")


def worker(out_dir: Path) -> None:
    import cv2

    from ecgml.geometry import estimate_page
    from ecgml.geometry.canonical import canonical_page

    cv2.setNumThreads(2)
    for line in sys.stdin:
        name = line.strip()
        img = cv2.cvtColor(cv2.imread(str(CACHE / f"{name}.png")), cv2.COLOR_BGR2RGB)
        t0, c0 = time.perf_counter(), time.process_time()
        est = estimate_page(img, name)
        t1, c1 = time.perf_counter(), time.process_time()
        page = canonical_page(img, est.page_map)
        t2, c2 = time.perf_counter(), time.process_time()
        np.save(out_dir / f"{name}.npy", page.image)
        row = {"name": name, "est_s": t1 - t0, "est_cpu": c1 - c0, "can_s": t2 - t1, "can_cpu": c2 - c1}
        print(json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("names", nargs="*")
    ap.add_argument("--before", type=Path)
    ap.add_argument("--after", type=Path)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker)
        return
    procs = {}
    for v, root in (("before", a.before), ("after", a.after)):
        out = Path(f"/tmp/ecgml-geometry-speed/{v}")
        out.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(root))
        cmd = [sys.executable, __file__, "--worker", str(out)]
        procs[v] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    rows = []
    for r in range(a.reps):
        for i, name in enumerate(a.names):
            for v in ("before", "after") if (r + i) % 2 == 0 else ("after", "before"):
                p = procs[v]
                assert p.stdin is not None and p.stdout is not None
                p.stdin.write(name + "\n")
                p.stdin.flush()
                rows.append({**json.loads(p.stdout.readline()), "v": v})
    for p in procs.values():
        assert p.stdin is not None
        p.stdin.close()
        p.wait()
    print("| set | runs | estimate_page s | CPU s | canonical_page s | CPU s | px max / mean diff |")
    print("|---|---|---|---|---|---|---|")
    for kind in sorted({n.split("-")[0] for n in a.names}):
        med = {
            v: {k: float(np.median([x[k] for x in rows if x["v"] == v and x["name"].startswith(kind)]))
                for k in ("est_s", "est_cpu", "can_s", "can_cpu")}
            for v in ("before", "after")
        }  # fmt: skip
        diffs = []
        for name in {x["name"] for x in rows if x["name"].startswith(kind)}:
            b = np.load(f"/tmp/ecgml-geometry-speed/before/{name}.npy").astype(np.int16)
            c = np.load(f"/tmp/ecgml-geometry-speed/after/{name}.npy").astype(np.int16)
            diffs.append(np.abs(b - c))
        n = sum(x["name"].startswith(kind) for x in rows) // 2
        cells = " | ".join(f"{med['before'][k]:.2f} → {med['after'][k]:.2f}" for k in med["before"])
        dmax = max(int(d.max()) for d in diffs)
        dmean = float(np.mean([d.mean() for d in diffs]))
        print(f"| {kind} | {n} | {cells} | {dmax} / {dmean:.1e} |")


if __name__ == "__main__":
    main()
