"""Digitizer benchmark: render a fixed-seed test set, submit with one extractor, score per type.

    python benchmarks/digitize_benchmark.py --arch classical --per-type 20 --set runs/bench/digitize \
        [--truth-geometry] [--workers 1] [--json out.json]

The set is rendered once (validation/test-split records of /work/shared/data/ecg, seed fixed) and
reused. Prints a markdown table (per-type dB and median seconds per image) for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ecgml.digitize_bench import ARCH_MODELS, BENCH_SEED, make_bench_set, markdown_table, run_bench


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="classical", help="classical | unet | seed, or any --model value")
    ap.add_argument("--set", dest="set_dir", type=Path, default=Path("runs/bench/digitize"))
    ap.add_argument("--records", type=Path, default=Path("/work/shared/data/ecg"))
    ap.add_argument("--splits", type=Path, default=Path("data/splits.csv"))
    ap.add_argument("--per-type", type=int, default=20)
    ap.add_argument(
        "--from-splits", default="validation,test", help="records of these splits (tuning: validation)"
    )
    ap.add_argument("--seed", type=int, default=BENCH_SEED)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--truth-geometry", action="store_true", help="also run through the renderer's page maps")
    ap.add_argument("--only-truth-geometry", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--no-labels", action="store_true", help="digitize without the printed-label reader")
    a = ap.parse_args(argv)
    make_bench_set(
        a.set_dir,
        a.records,
        a.per_type,
        seed=a.seed,
        split_file=a.splits,
        splits=tuple(a.from_splits.split(",")),
    )
    model = ARCH_MODELS.get(a.arch, a.arch)
    if a.no_labels:  # the digitizer is cached per model: submit uses this very object (workers=1)
        from ecgml.digitize import load_digitizer

        load_digitizer(model).read_labels = False
    runs = [] if a.only_truth_geometry else [False]
    if a.truth_geometry or a.only_truth_geometry:
        runs.append(True)
    results = [run_bench(a.set_dir, model, truth_geometry=t, workers=a.workers) for t in runs]
    print(markdown_table(results))
    for r in results:
        for i, err in r.failures:
            print(f"failed: {i}: {err}", file=sys.stderr)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps([r.to_json() for r in results], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
