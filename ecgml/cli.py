"""The `ecgml` command line: thin wrappers that parse arguments and call library functions."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ecgml.errors import EcgmlError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Digitize 12-lead paper ECG images.")
console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """ecgml: 12-lead paper ECG images in, signals out."""


def fail(exc: EcgmlError) -> None:
    """Print a one-line error that names the file and the problem, then exit 2 (no stack trace)."""
    console.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(2)


@app.command()
def score(
    solution: Path,
    submission: Path,
    types: Annotated[Path | None, typer.Option(help="types.csv (id,type) for a per-type breakdown")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Score a submission against a solution with the competition's modified SNR."""
    from ecgml.metric import score_files

    try:
        report = score_files(solution, submission, types)
    except EcgmlError as exc:
        fail(exc)
        return
    if as_json:
        sys.stdout.write(json.dumps(report.to_json()) + "\n")
        return
    table = Table(title=f"score: {report.score:.4f} dB over {len(report.per_ecg)} ECGs")
    table.add_column("subset")
    table.add_column("ECGs", justify="right")
    table.add_column("score (dB)", justify="right")
    table.add_row("overall", str(len(report.per_ecg)), f"{report.score:.4f}")
    for t, v in report.per_type.items():
        table.add_row(f"type {t}", str(sum(e.type == t for e in report.per_ecg)), f"{v:.4f}")
    Console().print(table)
    Console().print(
        f"ECGs at >= 25 dB: {report.frac_ge_25db:.1%}   below 10 dB: {report.frac_lt_10db:.1%}   "
        f"2024-style mean per-lead SNR: {report.snr2024_db:.2f} dB"
    )


@app.command()
def stage(
    name: Annotated[str, typer.Argument(help="data | prepare | train | evaluate | register | submit")],
    params: Annotated[Path, typer.Option(help="the pipeline's params file")] = Path("params.yaml"),
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-S", help="override a param: train.lr=1e-4")
    ] = None,
) -> None:
    """Run one pipeline stage (what dvc.yaml calls); knobs come from params.yaml."""
    import yaml

    from ecgml.config import load_params
    from ecgml.stages import run_stage

    overrides = {}
    for item in set_ or []:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    try:
        result = run_stage(name, load_params(params, overrides))
    except EcgmlError as exc:
        fail(exc)
        return
    console.print(f"stage {result.stage}: {result.seconds:.1f} s  {result.summary}")


@app.command()
def train(
    records: Annotated[
        Path, typer.Option(help="WFDB records folder (train-split records are rendered)")
    ] = Path("data/records"),
    out: Annotated[
        Path | None, typer.Option(help="weights file to write (default runs/trace/<arch>.pt)")
    ] = None,
    steps: Annotated[int, typer.Option("--steps", "--epochs", help="optimisation steps")] = 3000,
    seed: Annotated[int, typer.Option(help="seeds rendering, batches and init")] = 0,
    resume: Annotated[bool, typer.Option(help="continue from the work folder's checkpoint")] = False,
    init: Annotated[Path | None, typer.Option(help="start from these weights (fine-tune)")] = None,
    arch: Annotated[str, typer.Option(help="unet (trace model) | seed (seed baseline)")] = "unet",
    work: Annotated[Path, typer.Option(help="checkpoints, loss curve and page cache")] = Path("runs/trace"),
    batch_size: Annotated[int, typer.Option(help="strips (unet) or pages (seed) per step")] = 8,
    lr: Annotated[float, typer.Option(help="peak learning rate (cosine schedule)")] = 2e-3,
    pages_per_record: Annotated[int, typer.Option(help="rendered pages per train record")] = 3,
    time_budget: Annotated[
        float | None, typer.Option(help="stop after this many seconds of training")
    ] = None,
    threads: Annotated[int, typer.Option(help="torch threads")] = 2,
    device: Annotated[
        str, typer.Option(help="auto (a GPU if visible, else CPU) | cpu | cuda | cuda:N | mps")
    ] = "auto",
    workers: Annotated[
        int, typer.Option(help="DataLoader processes cutting/augmenting strips (0: in the loop)")
    ] = 0,
    render_workers: Annotated[
        int, typer.Option(help="render the page cache on a Dask LocalCluster of this many processes")
    ] = 1,
    dask_address: Annotated[
        str | None, typer.Option(help="render the page cache on this Dask scheduler (tcp://host:8786)")
    ] = None,
    strip_mm: Annotated[
        float | None, typer.Option(help="strip height (mm) to train at; default: the init weights' or 64")
    ] = None,
    channels: Annotated[
        str | None, typer.Option(help="U-Net channels per level, e.g. 16,32,48,80,128 (new models only)")
    ] = None,
    stretch: Annotated[
        float, typer.Option(help="share of training strips stretched vertically up to 1.5x (taller QRS)")
    ] = 0.0,
    type_mix: Annotated[
        str | None,
        typer.Option(
            help="capture types to render and their shares, e.g. 0001=0.1,realworld=0.3 "
            "(default: the renderer's training mix)"
        ),
    ] = None,
) -> None:
    """Train the trace model (the one command that produces the shipped weights) or the seed baseline."""
    from ecgml.trace.model import TraceModelConfig
    from ecgml.training.options import TrainOptions
    from ecgml.training.train import train_any

    model_cfg = TraceModelConfig()
    if channels:
        try:
            widths = tuple(int(c) for c in channels.split(","))
        except ValueError:
            widths = ()
        if len(widths) < 2 or min(widths) < 1:
            fail(
                EcgmlError(
                    None, f"--channels wants 2+ positive integers separated by commas, got {channels!r}"
                )
            )
            return
        model_cfg = TraceModelConfig(channels=widths)
    if not 0.0 <= stretch <= 1.0:
        fail(EcgmlError(None, f"--stretch is a share of strips, between 0 and 1; got {stretch}"))
        return
    types: tuple[str, ...] = ()
    type_weights: tuple[float, ...] = ()
    if type_mix:
        from ecgml.training.options import parse_type_mix

        try:
            types, type_weights = parse_type_mix(type_mix)
        except ValueError as exc:
            fail(EcgmlError(None, f"--type-mix: {exc}"))
            return
    opts = TrainOptions(
        types=types, type_weights=type_weights,
        records=records, out=out or work / ("trace_unet.pt" if arch == "unet" else "seed_cnn.pt"), work=work,
        arch=arch, steps=steps, seed=seed, resume=resume, init=init, batch_size=batch_size, lr=lr,
        pages_per_record=pages_per_record, time_budget_s=time_budget, threads=threads,
        strip_mm=strip_mm, model=model_cfg, stretch_p=stretch, device=device, workers=max(0, workers),
        render_workers=max(1, render_workers), dask_address=dask_address,
    )  # fmt: skip
    try:
        path = train_any(opts)
    except EcgmlError as exc:
        fail(exc)
        return
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 alone wrote them
        console.print(f"weights: {path} (config {path.with_suffix('.json')}); curve in {work}")


@app.command()
def digitize(
    images: Annotated[
        list[str], typer.Argument(help="image files, folders (searched recursively) or glob patterns")
    ],
    out: Annotated[
        Path, typer.Option(help="folder for {name}.csv/.hea/.dat/.json/-overlay.png (subfolders kept)")
    ] = Path("."),
    fs: Annotated[int, typer.Option(help="sampling rate of the output (an image carries none)")] = 500,
    model: Annotated[
        str | None,
        typer.Option(
            help="weights file, model folder, MLflow URI (models:/ecgml-digitizer@champion), "
            "'classical' or 'seed'; default: shipped weights, else classical"
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="digitize on a local dask cluster of this many processes")] = 1,
    overwrite: Annotated[bool, typer.Option(help="replace outputs already in --out")] = False,
) -> None:
    """Digitize ECG images into 12-lead records (CSV, WFDB, JSON) and overlay pictures.

    Exit 0 when every image was digitized, 1 when any failed (one line each), 2 on bad arguments.
    """
    from rich.progress import Progress

    from ecgml.batch import check_fs, collect_images, plan_jobs, run_jobs
    from ecgml.digitize import load_digitizer

    try:
        check_fs(fs)
        if workers < 1:
            raise EcgmlError(None, f"--workers must be at least 1, got {workers}")
        model = local_model(model)  # an MLflow URI fetched once, here; workers get the folder
        found = collect_images(images)
        jobs = plan_jobs(found.images, out, overwrite)
        if any(not j.error for j in jobs):
            load_digitizer(model)  # once, before any image: a bad --model stops here (workers: their own)
    except EcgmlError as exc:
        fail(exc)
        return
    for _, line in found.problems:
        console.print(f"[red]error:[/red] {line}")
    with Progress(console=console, transient=len(jobs) <= 1) as bar:
        task = bar.add_task("digitizing", total=len(jobs))
        rows = run_jobs(jobs, model, fs, workers, lambda row: bar.advance(task))
    failed = [r for r in rows if not r["ok"]]
    if len(rows) == 1 and rows[0]["ok"]:
        _print_one(rows[0])
    elif rows:
        _print_summary(rows)
    for r in failed:
        console.print(f"[red]failed:[/red] {r['error']}")
    console.print(
        f"{len(rows) - len(failed)} digitized, {len(failed)} failed, "
        f"{len(found.problems)} input(s) gave no image"
    )
    if failed or found.problems:
        raise typer.Exit(1)


def _print_one(row: dict[str, Any]) -> None:
    conf = " ".join(f"{k}:{v:.2f}" for k, v in row.get("confidence", {}).items())
    console.print(
        f"{row['image']}: {row['model']}, geometry {row['geometry']}; layout {row['layout']}; "
        f"page {row['verdict']}; lead confidence {conf}"
    )
    for warning in row.get("warnings", []):
        console.print(f"[red]warning:[/red] {warning}")
    for note in row.get("notes", []):
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print("wrote " + ", ".join(row["outputs"]))


def _print_summary(rows: list[dict[str, Any]]) -> None:
    table = Table(title=f"{len(rows)} image(s)")
    for col in ("image", "layout", "verdict", "mean confidence", "seconds"):
        table.add_column(col, justify="right" if col in ("mean confidence", "seconds") else "left")
    for r in rows:
        conf = f"{r['mean_confidence']:.2f}" if r["ok"] else "-"
        verdict = r.get("verdict", "") if r["ok"] else "failed"
        table.add_row(r["image"], r.get("layout", ""), verdict, conf, f"{r['seconds']:.1f}")
    Console().print(table)


@app.command()
def submit(
    data_dir: Path,
    out: Annotated[Path, typer.Option(help="submission file (.csv or .parquet)")] = Path("submission.csv"),
    model: Annotated[
        str | None, typer.Option(help="as for `ecgml digitize`; default: shipped weights, else classical")
    ] = None,
    workers: Annotated[int, typer.Option(help="digitize on a local dask cluster of this many processes")] = 1,
) -> None:
    """Write the competition submission for DATA_DIR/test.csv and DATA_DIR/test/{id}.png (every row)."""
    import logging

    from rich.logging import RichHandler
    from rich.progress import Progress

    from ecgml.digitize import submit as run_submit

    logging.basicConfig(level=logging.WARNING, handlers=[RichHandler(console=console, show_path=False)])
    if workers < 1:
        fail(EcgmlError(None, f"--workers must be at least 1, got {workers}"))
        return
    try:
        with Progress(console=console, transient=False) as bar:
            task = bar.add_task("digitizing", total=None)

            def tick(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            summary = run_submit(data_dir, out, local_model(model), workers, tick)
    except EcgmlError as exc:
        fail(exc)
        return
    console.print(f"wrote {summary.n_rows} rows for {summary.n_ecgs} ECGs to {summary.out}")
    if summary.failures:
        console.print(f"[yellow]{summary.n_failed} ECG(s) could not be digitized and were filled with zeros:")
        for ecg_id, err in summary.failures:
            console.print(f"  {ecg_id}: {err}")


@app.command()
def synth(
    records_dir: Annotated[Path, typer.Argument(help="folder of WFDB records (or use --record)")],
    out_dir: Path,
    types: Annotated[str, typer.Option(help="comma-separated image types")] = "0001",
    per_record: Annotated[int, typer.Option(help="ECGs (10 s windows) per record")] = 1,
    seed: Annotated[int, typer.Option(help="dataset seed")] = 0,
    test: Annotated[bool, typer.Option("--test", help="write the test layout")] = False,
    layout: Annotated[
        str | None, typer.Option(help="force one layout, e.g. 3x4+1R, 6x2+II, cabrera-12x1")
    ] = None,
    layouts: Annotated[
        str | None,
        typer.Option(
            help="layouts to draw from: a mix (training, kaggle, families, standard) or names: 3x4+1R,6x2"
        ),
    ] = None,
    speed: Annotated[str | None, typer.Option(help="force the paper speed: 25, 50 or 12.5 mm/s")] = None,
    gain: Annotated[
        str | None, typer.Option(help="force the gain: 10, 5, 20 or mixed (limb 10, chest 5)")
    ] = None,
    derive_leads: Annotated[
        bool, typer.Option(help="derive V4R/V8/V9 for 15-lead pages (marked no-truth), else skip the record")
    ] = True,
    record: Annotated[list[Path] | None, typer.Option(help="a single record file (repeatable)")] = None,
    first_id: Annotated[int, typer.Option(help="the first ECG id")] = 1,
) -> None:
    """Render a synthetic dataset in the competition's layout with exact truth beside each image."""
    from ecgml.synth import synth_dataset

    try:
        report = synth_dataset(
            list(record) if record else records_dir, out_dir, types, per_record, seed, test, layout, first_id,
            layouts=layouts, speed=speed, gain=gain, derive_leads=derive_leads,
        )  # fmt: skip
    except EcgmlError as exc:
        fail(exc)
        return
    console.print(f"wrote {report.n_images} images for {report.n_ecgs} ECGs to {report.out_dir}")
    for path, reason in report.skipped:
        console.print(f"[yellow]skipped[/yellow] {path}: {reason}")
    if report.n_ecgs == 0:
        console.print(f"[red]error:[/red] {records_dir}: no ECG written (every record was skipped)")
        raise typer.Exit(1)


@app.command()
def geometry(
    image: Path,
    out: Annotated[
        Path | None, typer.Option(help="write the page estimate (map, layout, calibration) as JSON")
    ] = None,
    canonical: Annotated[Path | None, typer.Option(help="write the canonical page (8 px/mm) as PNG")] = None,
) -> None:
    """Find the ECG page in an image: orientation, px/mm, layout, confidence (and the map as JSON)."""
    from ecgml.geometry.io import page_estimate_file

    try:
        est = page_estimate_file(image, out, canonical)
    except EcgmlError as exc:
        fail(exc)
        return
    console.print(
        f"{image}: turned {est.orientation} deg, {est.px_per_mm[0]:.3f} x {est.px_per_mm[1]:.3f} px/mm, "
        f"layout {est.layout.name}, confidence {est.confidence:.2f}"
    )


def local_model(model: str | None) -> str | None:
    """`--model`: an MLflow URI is fetched to a local model folder here, above inference (which never
    imports MLflow); other values pass through."""
    from ecgml.model_folder import is_model_uri

    if not is_model_uri(model):
        return model
    from ecgml.tracking import local_model as fetch

    return fetch(model)


def main() -> None:
    app()
