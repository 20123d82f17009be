"""Second-generator benchmark: digitize ECG-Image-Kit's reference pages and score them against their truth.

    python benchmarks/outside_benchmark.py [--pages /work/shared/data/outside-pages] [--model unet] \
        [--ours] [--json out.json]

Reads `index.csv` of the outside pages (README there), digitizes every page at 500 Hz, and scores it with
`ecgml.metric` against `truth/{name}.csv` on the samples the page plots. Prints per-page dB and the median
over leads of each lead's sub-sample time offset (ms, negative: read early), then one summary line for the
12 Kaggle-layout pages and one for the other layouts. `--ours` also renders the Kaggle-layout records with
this project's renderer (type 0001, seed 0) and scores those, so a gap between the two generators shows.
Evaluation only: these pages must never be trained on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ecgml.digitize import load_digitizer, load_image
from ecgml.errors import EcgmlError
from ecgml.outside_bench import PageScore, read_truth, score_page, summary_db
from ecgml.records import read_wfdb

FS = 500


def _predict(dig, image: np.ndarray, name: str) -> np.ndarray:
    res = dig.digitize_image(image, FS, name)
    return np.asarray(res.record.signal, np.float64)  # (n, 12) in LEADS order


def _line(tag: str, scores: list[PageScore]) -> str:
    if not scores:
        return f"{tag}: no pages"
    offs = [s.median_offset_ms for s in scores if np.isfinite(s.median_offset_ms)]
    return (
        f"{tag}: {summary_db(scores):.2f} dB over {len(scores)} pages"
        f" (median page {np.median([s.db for s in scores]):.2f}),"
        f" median lead offset {np.median(offs) if offs else float('nan'):+.2f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=Path, default=Path("/work/shared/data/outside-pages"))
    ap.add_argument("--model", default="", help="any --model value of `ecgml digitize` (default: shipped)")
    ap.add_argument(
        "--ours", action="store_true", help="also score our renderer's 0001 page of each Kaggle-layout record"
    )
    ap.add_argument("--only", default="", help="comma-separated page names (default: all)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    index = pd.read_csv(a.pages / "index.csv")
    if a.only:
        index = index[index["name"].isin(a.only.split(","))]
    dig = load_digitizer(a.model or None)
    groups: dict[str, list[PageScore]] = {"kaggle": [], "other": [], "ours": []}
    print("| page | layout | dB | median lead offset (ms) | s |")
    print("|---|---|---|---|---|")
    for row in index.itertuples():
        name, strip = str(row.name), str(row.rhythm_lead)
        layout = str(row.layout) + (f"+{strip}" if strip.lower() not in ("none", "nan") else "")
        truth = read_truth(a.pages / "truth" / f"{name}.csv")
        jobs = [("kaggle" if name.startswith("kaggle_") else "other", name, None)]
        if a.ours and name.startswith("kaggle_"):
            jobs.append(("ours", f"{name} (ours)", a.pages / "records" / name))
        for group, label, rec_path in jobs:
            t0 = time.perf_counter()
            try:
                if rec_path is None:
                    image = load_image(a.pages / "pages" / f"{name}.png")
                else:
                    from ecgml.render.presets import render

                    image = render(read_wfdb(rec_path), "0001", 0).image
                pred = _predict(dig, image, name)
            except EcgmlError as exc:
                print(f"failed: {label}: {exc}", file=sys.stderr)
                pred = np.full_like(truth, np.nan)
            s = score_page(label, layout, truth, pred, FS)
            groups[group].append(s)
            secs = time.perf_counter() - t0
            print(f"| {label} | {layout} | {s.db:.2f} | {s.median_offset_ms:+.2f} | {secs:.1f} |")
            sys.stdout.flush()
    print()
    print(_line("ECG-Image-Kit, Kaggle layout (3x4+II)", groups["kaggle"]))
    print(_line("ECG-Image-Kit, other layouts", groups["other"]))
    if a.ours:
        print(_line("our renderer (0001), same Kaggle-layout records", groups["ours"]))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        out = {
            g: [s.__dict__ | {"median_offset_ms": s.median_offset_ms} for s in v] for g, v in groups.items()
        }
        a.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
