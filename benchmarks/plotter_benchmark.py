"""Second-plotter benchmark: test-split records drawn by the `ecg-plot` package (not by us), then scored.

    python benchmarks/plotter_benchmark.py [--set runs/bench/ecgplot] [--per-record 2] [--model unet] \
        [--json out.json]

Each ECG is drawn twice, by ecg_plot (3x4 sequential + II strip, 25 mm/s, 10 mm/mV, 200 DPI; its default
and "bw" styles alternate) and by this project's renderer as type 0001, under different ids; the table gives
the score per generator on the same ECGs (`ecgml.plotter_bench`). Needs `pip install ecg-plot` (dev extra).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ecgml.digitize_bench import ARCH_MODELS, bench_records, markdown_table, run_bench
from ecgml.plotter_bench import make_plotter_set


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", dest="set_dir", type=Path, default=Path("runs/bench/ecgplot"))
    ap.add_argument("--records", type=Path, default=Path("/work/shared/data/ecg"))
    ap.add_argument("--splits", type=Path, default=Path("data/splits.csv"))
    ap.add_argument("--from-splits", default="test")
    ap.add_argument("--per-record", type=int, default=2)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--model", default="unet", help="classical | unet | seed, or any --model value")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    recs = bench_records(a.records, a.splits, tuple(a.from_splits.split(",")))
    make_plotter_set(a.set_dir, recs, per_record=a.per_record, seed=a.seed)
    result = run_bench(a.set_dir, ARCH_MODELS.get(a.model, a.model), workers=a.workers)
    print(markdown_table([result]))
    for i, err in result.failures:
        print(f"failed: {i}: {err}", file=sys.stderr)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result.to_json(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
