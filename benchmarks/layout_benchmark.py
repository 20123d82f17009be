"""Page-reading benchmark: layouts, lead placement, orientation and confidence reliability.

    python benchmarks/layout_benchmark.py --outside /work/shared/data/outside-pages [--json out.json]
        [--web-width 700 --web-jpeg 75]   # the same pages as small JPEG web copies
    python benchmarks/layout_benchmark.py --render runs/bench/layout --per-family 20 [--json out.json]
        [--families 6x1-limb,3x5] [--pages '*_005']   # --pages: names of the set (page 5 = capture 0006)
        [--gain 20 --captures realworld,lowres]   # a set at a forced gain (its own folder)
        [--speed 50 --captures 0001,realworld,lowres]   # a set at a forced paper speed (its own folder)
    python benchmarks/layout_benchmark.py --ecg-plot runs/bench/ecgplot_layouts --per-layout 6 [--json x.json]
    python benchmarks/layout_benchmark.py --wfdb-plot runs/bench/wfdb_pages --per-layout 4 [--json x.json]

`--outside`: the outside generator's reference pages (evaluation only). `--ecg-plot`: pages of every layout
the `ecg-plot` package draws (a plotter we did not write; test-split records, its styles varied; needs the dev
extra; evaluation only). `--wfdb-plot`: pages drawn by `wfdb.plot_items` (a third plotter we did not write:
stacked subplots, wfdb's grey grid, on a Letter/A4 sheet or resized to paper scale; benchmarks/wfdb_pages.py;
evaluation only). `--render`: a fixed-seed renderer
set of every layout family from validation/test-split records (`--from-splits validation` for the
calibration set, `test` for the reported one). Prints per-family figures and the reliability table.

    python benchmarks/layout_benchmark.py --fit-calibration val.json [val2.json ...] \
        --out ecgml/weights/confidence.json
    python benchmarks/layout_benchmark.py --rescore test.json [more.json ...] [--calibration FILE|none] \
        [--no-cap]

`--fit-calibration`: fit the confidence calibration on results JSONs (validation sets only; several are
pooled: leads come a page at a time, so one 180-page set holds few independent cases).
`--rescore`: the tables of results JSONs (several: their pages pooled) with every confidence recomputed
from its stored evidence.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ecgml.digitize import load_digitizer, load_image
from ecgml.errors import EcgmlError
from ecgml.layout_bench import (
    FAMILIES,
    PageResult,
    failed_page,
    fit_calibration,
    load_pages,
    markdown,
    outside_pages,
    recalibrated,
    score_page,
    web_copy,
)
from ecgml.verdict import load_calibration


def run_pages(
    items: Iterable[tuple[str, str, Path, np.ndarray, int | None]],
    model: str | None,
    fs: int,
    json_out: Path | None = None,
    read_labels: bool = True,
    resume: bool = False,
    signals: Path | None = None,
) -> list[PageResult]:
    """Digitize and score every page; with `json_out`, the results so far are rewritten after each page
    (and with `resume`, the pages already there are kept and not digitized again); with `signals`, each
    page's record is saved there (<page>.npy, (n, 12) mV), so evidence computed from the signals
    (`ecgml.lead_checks`) can be recomputed later without digitizing again."""
    dig = load_digitizer(model)
    dig.read_labels = read_labels
    out: list[PageResult] = load_pages(json_out) if resume and json_out and json_out.exists() else []
    done = {p.name for p in out}
    for name, fam, png, truth, orientation in items:
        if name in done:
            continue
        t0 = time.perf_counter()
        try:
            res = dig.digitize_image(load_image(png), fs, png)
        except EcgmlError as exc:
            out.append(failed_page(name, fam, truth, str(exc), time.perf_counter() - t0))
            print(f"{name}: refused: {exc}", file=sys.stderr)
            _dump(out, json_out)
            continue
        got = getattr(res.geometry, "orientation", None)
        ori = None if orientation is None or got is None else int(got) == int(orientation)
        pr = score_page(name, fam, truth, res, time.perf_counter() - t0, ori)
        if signals is not None:
            signals.mkdir(parents=True, exist_ok=True)
            np.save(signals / f"{name.split()[0]}.npy", res.record.signal.astype(np.float32))
        out.append(pr)
        worst = min(pr.lead_db.values()) if pr.lead_db else float("nan")
        print(
            f"{name} [{fam}] layout={res.geometry.layout.name} verdict={pr.verdict} worst={worst:.1f} dB "
            f"placed={pr.all_placed} {time.perf_counter() - t0:.1f}s",
            file=sys.stderr,
        )
        _dump(out, json_out)
    return out


def _dump(pages: list[PageResult], path: Path | None) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([p.to_json() for p in pages], indent=1))


def _beside(name: str) -> Any:
    """The module `name`.py beside this script (benchmarks/ is no package; this may be loaded by path)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    if spec is None or spec.loader is None:
        raise ImportError(name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def interleave(items: list[Any]) -> list[Any]:
    """Round-robin over the families, so a run stopped early still covers every family."""
    fams: dict[str, list[Any]] = {}
    for it in items:
        fams.setdefault(it[1], []).append(it)
    out = []
    while any(fams.values()):
        for v in fams.values():
            if v:
                out.append(v.pop(0))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outside", type=Path, default=None)
    ap.add_argument("--web-width", type=int, default=0, help="outside pages as web copies this wide (px)")
    ap.add_argument("--web-jpeg", type=int, default=75, help="JPEG quality of those web copies")
    ap.add_argument("--render", type=Path, default=None, help="renderer set folder (made if missing)")
    ap.add_argument("--records", type=Path, default=Path("/work/shared/data/ecg"))
    ap.add_argument("--splits", type=Path, default=Path("data/splits.csv"))
    ap.add_argument("--from-splits", default="test")
    ap.add_argument("--per-family", type=int, default=20)
    ap.add_argument("--seed", type=int, default=14014)
    ap.add_argument("--model", default=None)
    ap.add_argument("--gain", default=None, help="renderer set printed at this gain: 5, 10, 20 or mixed")
    ap.add_argument("--speed", default=None, help="renderer set printed at this speed: 25, 50 or 12.5 mm/s")
    ap.add_argument("--captures", default="", help="capture types to cycle (default: CAPTURES)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N pages (quick looks)")
    ap.add_argument("--families", default="", help="families of the renderer set, comma-separated")
    ap.add_argument("--pages", default="", help="only renderer pages matching these patterns (e.g. '*_005')")
    ap.add_argument("--ecg-plot", type=Path, default=None, help="ecg-plot page set folder (made if missing)")
    ap.add_argument("--per-layout", type=int, default=6, help="--ecg-plot/--wfdb-plot: pages per layout")
    ap.add_argument(
        "--wfdb-plot", type=Path, default=None, help="wfdb.plot_items page folder (made if missing)"
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--signals", type=Path, default=None, help="save each page's record here (.npy)")
    ap.add_argument("--resume", action="store_true", help="keep the pages already in --json, do the rest")
    ap.add_argument("--no-labels", action="store_true", help="digitize without the printed-label reader")
    ap.add_argument("--fit-calibration", type=Path, nargs="+", default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--rescore", type=Path, nargs="+", default=None)
    ap.add_argument("--calibration", default=None, help="calibration JSON, or 'none' (raw evidence product)")
    ap.add_argument(
        "--no-cap", action="store_true", help="--rescore: without the raw product's gate (measuring only)"
    )
    a = ap.parse_args(argv)
    if a.fit_calibration:
        cal = fit_calibration([p for f in a.fit_calibration for p in load_pages(f)])
        cal["fitted_on"] = " + ".join(f.name for f in a.fit_calibration)  # provenance (validation only)
        args = sys.argv[1:] if argv is None else argv
        cal["command"] = "python benchmarks/layout_benchmark.py " + " ".join(args)
        text = json.dumps(cal, indent=1)
        print(text)
        if a.out:
            a.out.write_text(text + "\n")
        return 0
    if a.rescore:
        cal = None if a.calibration == "none" else load_calibration(a.calibration)
        pages = [p for f in a.rescore for p in load_pages(f)]
        print(markdown(recalibrated(pages, cal, cap=not a.no_cap)))
        return 0
    items: Iterable[tuple[str, str, Path, np.ndarray, int | None]] = []
    if a.render:  # rendered page by page as the run reaches it, page i of every family first
        from ecgml.layout_bench import CAPTURES, render_set

        fams = tuple(a.families.split(",")) if a.families else FAMILIES
        caps = tuple(a.captures.split(",")) if a.captures else CAPTURES
        items = render_set(
            a.render, a.records, a.per_family, a.seed, a.splits, tuple(a.from_splits.split(",")), fams,
            tuple(a.pages.split(",")) if a.pages else (), a.gain, caps, a.speed,
        )  # fmt: skip
    if a.ecg_plot:  # a plotter we did not write (evaluation only)
        if importlib.util.find_spec("ecg_plot") is None:
            ap.error("--ecg-plot needs the ecg-plot package (the dev extra, in requirements.lock)")
        from ecgml.digitize_bench import bench_records
        from ecgml.plotter_bench import plotter_pages

        recs = bench_records(a.records, a.splits, tuple(a.from_splits.split(",")))
        items = itertools.chain(items, plotter_pages(a.ecg_plot, recs, a.per_layout, a.seed))
    if a.wfdb_plot:  # a third plotter we did not write (evaluation only); wfdb is a runtime dependency
        from ecgml.digitize_bench import bench_records

        recs = bench_records(a.records, a.splits, tuple(a.from_splits.split(",")))
        items = itertools.chain(
            items, _beside("wfdb_pages").wfdb_pages(a.wfdb_plot, recs, a.per_layout, a.seed)
        )
    if a.limit:
        items = itertools.islice(items, a.limit)
    if a.outside:  # after the renderer set (evaluation only, never calibration)
        pages_out = outside_pages(a.outside)
        if a.web_width:  # small web copies in a temporary folder, named for their size and quality
            tmp = Path(tempfile.mkdtemp(prefix="ecgml-web-"))
            try:
                pages_out = [(n, f, web_copy(p, tmp, a.web_width, a.web_jpeg), t) for n, f, p, t in pages_out]
            except ValueError as exc:
                ap.error(str(exc))  # one line naming the page and the problem, exit 2
        items = itertools.chain(items, interleave([(n, "outside " + f, p, t, 0) for n, f, p, t in pages_out]))
    pages = run_pages(items, a.model, 500, a.json, not a.no_labels, a.resume, a.signals)
    print(markdown(pages))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
