"""Assembly variants on fixed traces: extract every image of a bench set once, then score assembly options.

    python benchmarks/assembly_benchmark.py --set runs/trace/bench_small --model ecgml/weights/trace_unet.pt \
        [--truth-geometry] --variant default --variant edge_mm=0.3 --variant smooth_hz=0,fuse_ii=false

The trace model runs once per image (traces cached in SET/runs/traces-*.pkl); each variant then only
re-runs `ecgml.assemble` and the metric, so assembly choices are compared on identical traces.
A variant is `name` or comma-separated `key=value` overrides of `assemble` keyword arguments.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgml.assemble import assemble, competition_segments
from ecgml.digitize import load_digitizer
from ecgml.digitize_bench import truth_geometry_for
from ecgml.kaggle import read_long_table, read_types
from ecgml.metric import score_ecg, score_from_ratios
from ecgml.records import LEADS
from ecgml.trace.model import EDGE_MM, blank_cell_ends


def extract_all(
    set_dir: Path, model: str, truth: bool, extractor: dict[str, float] | None = None
) -> list[dict[str, Any]]:
    """Per test image: id, fs, type, layout and the extractor's cell traces (cached on disk).

    `extractor` sets attributes of the extractor (e.g. {"radius": 6}) before it runs."""
    extractor = extractor or {}
    tag = model.replace("/", "_") + ("-truthgeo" if truth else "") + "-edge0"
    tag += "".join(f"-{k}{v:g}" for k, v in sorted(extractor.items()))
    cache = set_dir / "runs" / f"traces-{tag}.pkl"
    if cache.exists():
        return list(pickle.loads(cache.read_bytes()))
    types = read_types(set_dir / "types.csv")
    test = pd.read_csv(set_dir / "test.csv")
    dig = load_digitizer(model)
    if hasattr(dig.extractor, "edge_mm"):
        dig.extractor.edge_mm = 0.0  # read to the cell ends; variants blank them (edge_mm=...)
    for k, v in extractor.items():
        setattr(dig.extractor, k, type(getattr(dig.extractor, k))(v))  # keep its type (an int radius)
    out = []
    for ecg_id, g in test.groupby("id", sort=True):
        fs = int(g["fs"].iloc[0])
        t = types[str(ecg_id)]
        geo = truth_geometry_for(set_dir, int(ecg_id), t) if truth else None
        try:
            res = dig.digitize(set_dir / "test" / f"{ecg_id}.png", fs, geo)
        except Exception as exc:  # scored as the submission would score it: zeros
            print(f"{ecg_id}: {exc}", file=sys.stderr)
            out.append({"id": int(ecg_id), "fs": fs, "type": t, "layout": None, "traces": None})
            continue
        lay = res.geometry.layout
        out.append({"id": int(ecg_id), "fs": fs, "type": t, "layout": lay, "traces": res.traces})
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(out))
    return out


def parse_variant(text: str) -> dict[str, Any]:
    if text == "default":
        return {}
    kw: dict[str, Any] = {}
    for part in text.split(","):
        k, v = part.split("=")
        kw[k] = float(v) if "." in v or v.isdigit() else {"true": True, "false": False}.get(v.lower(), v)
    return kw


def blank_edges(traces: list[Any], layout: Any, edge_mm: float) -> list[Any]:
    """The traces as the extractor reports them with `edge_mm` (`ecgml.trace.model.blank_cell_ends`)."""
    cells = {(c.row, c.col): c for c in layout.cells}
    return [blank_cell_ends(tr, cells[(tr.row, tr.col)], edge_mm) for tr in traces]


def score_variant(items: list[dict[str, Any]], labels: pd.DataFrame, kw: dict[str, Any]) -> dict[str, Any]:
    kw = dict(kw)
    edge_mm = float(kw.pop("edge_mm", EDGE_MM))
    ratios: dict[str, list[float]] = {}
    allr = []
    for it in items:
        g = labels[labels["ecg"] == it["id"]]
        lab = {lead: p.sort_values("row")["value"].to_numpy() for lead, p in g.groupby("lead")}
        n_rows = {lead: v.size for lead, v in lab.items()}
        if it["traces"] is None:
            segs = {lead: np.zeros(n_rows[lead]) for lead in LEADS}
        else:
            asm = assemble(blank_edges(it["traces"], it["layout"], edge_mm), it["layout"], it["fs"], **kw)
            segs = competition_segments(asm.record, n_rows)
        s = score_ecg(it["id"], it["fs"], lab, segs)
        ratios.setdefault(it["type"], []).append(s.ratio)
        allr.append(s.ratio)
    per_type = {t: score_from_ratios(r) for t, r in sorted(ratios.items())}
    return {"score": score_from_ratios(allr), "per_type": per_type}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", dest="set_dir", type=Path, required=True)
    ap.add_argument("--model", default="unet")
    ap.add_argument("--truth-geometry", action="store_true")
    ap.add_argument("--variant", action="append", default=[])
    ap.add_argument("--extractor", action="append", default=[], help="extractor attribute, e.g. radius=6")
    a = ap.parse_args(argv)
    ext = {k: float(v) for k, v in (e.split("=") for e in a.extractor)}
    items = extract_all(a.set_dir, a.model, a.truth_geometry, ext)
    labels = read_long_table(a.set_dir / "solution.csv")
    variants = a.variant or ["default"]
    results = {v: score_variant(items, labels, parse_variant(v)) for v in variants}
    types = sorted(next(iter(results.values()))["per_type"])
    print("| variant | overall | " + " | ".join(types) + " |")
    print("|---|---|" + "---|" * len(types))
    for v, r in results.items():
        cells = " | ".join(f"{r['per_type'][t]:.2f}" for t in types)
        print(f"| {v} | **{r['score']:.2f}** | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
