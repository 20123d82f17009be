"""Training throughput on this machine: steps/s with 0 vs 2 data workers (and the data-wait share), and a
2-process DDP run on gloo vs 1 process at the same global batch.

    python benchmarks/train_throughput.py [STEPS] [REPEATS] [CACHE_DIR] [ONLY_PREFIX]

Renders a small page cache once (6 train pages from the bundled records) into /tmp, then runs the
configurations interleaved, REPEATS times each, with the default trace U-Net and 4 strips per step.
Steps/s is the median over a run's steps after the first 5 (data-worker and DDP start-up excluded),
and the median over repeats is printed; the data-wait share is the time the loop waited for a batch
over the step time. Prints a Markdown table for BENCHMARKS.md ("Training at scale").
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from ecgml.training.options import TrainOptions
from ecgml.training.render_source import fill_cache
from ecgml.training.train import train_any

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 5


def _opts(tmp: Path, cache: Path, steps: int, **kw: object) -> TrainOptions:
    base = TrainOptions(
        records=ROOT / "data" / "records", out=tmp / "w.pt", work=tmp, cache=cache, steps=steps,
        batch_size=4, val_every=10**9, val_batches=0, progress=False, threads=2, device="cpu",
        pages_per_record=1, max_records=6, val_pages=0, checkpoint_s=1e9,
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def _rates(work: Path) -> tuple[float, float]:
    curve = [h for h in json.loads((work / "curve.json").read_text()) if "step_s" in h][WARMUP:]
    steps_per_s = 1.0 / statistics.median(h["step_s"] for h in curve)
    wait = sum(h["data_wait_s"] for h in curve) / sum(h["step_s"] for h in curve)
    return steps_per_s, wait


def _ddp(cache: Path, tmp: Path, steps: int) -> tuple[float, float]:
    """torchrun runs this file again as two ranks (`--ddp-rank`), one torch thread each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           __file__, "--ddp-rank", str(tmp), str(cache), str(steps)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return _rates(tmp)


def main(steps: int, repeats: int, cache_dir: str | None = None, only: str = "") -> None:
    base = Path(tempfile.mkdtemp(prefix="ecgml-train-bench-"))
    cache = Path(cache_dir) if cache_dir else base / "cache"  # reuse a cache an earlier run rendered
    fill_cache(_opts(base, cache, steps, progress=False), cache)
    runs: dict[str, list[tuple[float, float]]] = {"0 workers": [], "2 workers": [], "DDP 2 x gloo": []}
    if only:
        runs = {k: v for k, v in runs.items() if k.startswith(only)}
    for r in range(repeats):
        for name in runs:
            tmp = base / f"{name.replace(' ', '_')}-{r}"
            tmp.mkdir()
            if name == "DDP 2 x gloo":
                runs[name].append(_ddp(cache, tmp, steps))
            else:
                train_any(_opts(tmp, cache, steps, workers=int(name[0])), build_cache=False)
                runs[name].append(_rates(tmp))
            print(name, r, runs[name][-1], flush=True)
    head = f"configuration (default U-Net, 4 strips/step, {steps} steps)"
    print(f"\n| {head} | steps/s (median) | data-wait share |")
    print("|---|---|---|")
    for name, vals in runs.items():
        sps = statistics.median(v[0] for v in vals)
        wait = statistics.median(v[1] for v in vals)
        print(f"| {name} | {sps:.2f} | {100 * wait:.0f} % |")


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "--ddp-rank":  # one rank of the DDP configuration
        train_any(_opts(Path(a[1]), Path(a[2]), int(a[3]), threads=1), build_cache=False)
        raise SystemExit(0)
    main(
        int(a[0]) if a else 30,
        int(a[1]) if len(a) > 1 else 2,
        a[2] if len(a) > 2 else None,
        a[3] if len(a) > 3 else "",
    )
