"""The per-lead QRS span reference of `ecgml.gain_check` (LOG_SPAN), measured on training-split records only.

    python benchmarks/gain_reference.py [--records /work/shared/data/ecg] [--splits data/splits.csv]

Prints each lead's mean log span (mV) over the records' first 10 s, the spread of a page's mean offset
(all 12 leads, limb or chest leads alone) and how many records `supports_gain` passes when read at their
own gain and at twice it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ecgml.digitize_bench import bench_records
from ecgml.gain_check import log_span, supports_gain
from ecgml.records import LEADS, read_wfdb, resample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=Path, default=Path("/work/shared/data/ecg"))
    ap.add_argument("--splits", type=Path, default=Path("data/splits.csv"))
    a = ap.parse_args()
    rows = []
    for p in bench_records(a.records, a.splits, ("train",)):
        sig = resample(read_wfdb(p).window(0, 10), 500, 5000).signal
        rows.append([log_span(sig[:, j], 500) for j in range(len(LEADS))])
    x = np.array([[np.nan if v is None else v for v in r] for r in rows], np.float64)
    mu = np.nanmean(x, 0)
    print(f"{len(rows)} training records")
    print("LOG_SPAN = {" + ", ".join(f'"{k}": {m:.3f}' for k, m in zip(LEADS, mu, strict=True)) + "}")
    for name, idx in (("12 leads", range(12)), ("limb", range(6)), ("chest", range(6, 12))):
        z = np.nanmean(x[:, list(idx)] - mu[list(idx)], 1)
        own, twice = (float(np.mean([supports_gain(v + d) for v in z])) for d in (0.0, np.log(2)))
        print(f"{name}: sd {np.std(z):.3f}; passed at their own gain {own:.2f}, at twice it {twice:.2f}")


if __name__ == "__main__":
    main()
