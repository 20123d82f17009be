"""Many images → their output files: which images (files, folders, globs), where each one's outputs go,
and one image's work as a plain result row (the unit the CLI loop and the Dask flow both map).

Outputs keep the image's path relative to the folder (or glob root) it was found under, so
`site1/1.png` and `site2/1.png` write `out/site1/1.*` and `out/site2/1.*`. Two images that would write
the same files, or outputs already on disk (unless `overwrite`), are errors for that image, never an
overwrite. Errors are data here: a bad image gives `ok=False` and one line, and the batch goes on.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecgml.errors import EcgmlError
from ecgml.images import IMAGE_SUFFIXES
from ecgml.model_folder import is_model_uri
from ecgml.records import record_name

OUTPUT_SUFFIXES = (".csv", ".hea", ".dat", ".json", "-overlay.png")
MAX_FS = 10_000  # Hz; an image holds ~0.2 mm detail, far below this; a larger fs only costs memory


def check_fs(fs: int) -> None:
    """The output rate must be a positive integer no larger than MAX_FS (refused before any work)."""
    if not 1 <= fs <= MAX_FS:
        raise EcgmlError(None, f"--fs must be between 1 and {MAX_FS} Hz, got {fs}")


@dataclass
class Job:
    """One image to digitize: its outputs are `out_dir/{name}{suffix}`; `error` set = refused up front."""

    image: Path
    out_dir: Path
    name: str
    error: str = ""

    def outputs(self) -> list[Path]:
        return [self.out_dir / f"{self.name}{s}" for s in OUTPUT_SUFFIXES]


@dataclass
class Collected:
    """Images found (each with the output subfolder it keeps) and one line per input that gave none."""

    images: list[tuple[Path, Path]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (input as given, the problem line)

    def problem_rows(self) -> list[dict[str, Any]]:
        """The problems as failed result rows (no image, no outputs)."""
        return [
            {"image": i, "ok": False, "error": e, "seconds": 0.0, "outputs": []} for i, e in self.problems
        ]


def _glob_root(pattern: str) -> Path:
    """The leading part of a glob pattern without wildcards: matches keep their path below it."""
    parts: list[str] = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _is_image(p: Path) -> bool:
    """An image file to digitize; our own overlay pictures (beside their `.json`) are not."""
    if (
        p.name.endswith("-overlay.png")
        and p.with_name(p.name.removesuffix("-overlay.png") + ".json").exists()
    ):
        return False
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES


def collect_images(inputs: Sequence[str | Path]) -> Collected:
    """Files as given (flat), folders searched recursively, globs expanded (`**` too); each image once."""
    found = Collected()
    seen: set[Path] = set()

    def add(image: Path, sub: Path) -> None:
        key = image.resolve()
        if key not in seen:
            seen.add(key)
            found.images.append((image, sub))

    for raw in inputs:
        text = str(raw)
        p = Path(text)
        if p.is_dir():
            images = sorted(q for q in p.rglob("*") if _is_image(q))
            if not images:
                found.problems.append((text, f"{p}: folder has no images ({', '.join(IMAGE_SUFFIXES)})"))
            for q in images:
                add(q, q.parent.relative_to(p))
        elif p.exists():
            add(p, Path())  # a named file is tried whatever its suffix: the loader says what is wrong
        elif glob.has_magic(text):
            root = _glob_root(text)
            images = sorted(Path(m) for m in glob.glob(text, recursive=True) if _is_image(Path(m)))
            if not images:
                found.problems.append((text, f"{text}: no image matches this pattern"))
            for q in images:
                add(q, q.parent.relative_to(root) if q.is_relative_to(root) else Path())
        else:
            found.problems.append((text, f"{p}: file not found"))
    return found


def plan_jobs(images: Sequence[tuple[Path, Path]], out_dir: Path, overwrite: bool = False) -> list[Job]:
    """Where each image's outputs go; a second image wanting the same files, or files already there
    (without `overwrite`), gets an error instead of a chance to overwrite them."""
    if out_dir.exists() and not out_dir.is_dir():
        raise EcgmlError(out_dir, "--out is an existing file; it must be a folder (or not exist yet)")
    jobs: list[Job] = []
    claimed: dict[tuple[str, str], Path] = {}
    for image, sub in images:
        job = Job(image, out_dir / sub, record_name(image.stem))
        key = (str(job.out_dir).lower(), job.name.lower())  # case-insensitive file systems collide too
        if key in claimed:
            job.error = (
                f"{image}: its outputs {job.out_dir / job.name}.* would overwrite those of {claimed[key]}; "
                "rename one of them"
            )
        else:
            claimed[key] = image
            existing = [o for o in job.outputs() if o.exists()]
            if existing and not overwrite:
                job.error = f"{image}: {existing[0]} already exists (pass --overwrite to replace it)"
        jobs.append(job)
    return jobs


def digitize_image_file(
    image: Path, out_dir: Path, model: str | None = None, fs: int = 500, name: str | None = None
) -> dict[str, Any]:
    """Digitize `image` into `out_dir` (CSV, WFDB, JSON, overlay); a row saying how it went."""
    from ecgml.digitize import digitize_file

    t0 = time.perf_counter()
    row: dict[str, Any] = {
        "image": str(image),
        "ok": False,
        "error": "",
        "seconds": 0.0,
        "outputs": [],
        "layout": "",
        "mean_confidence": float("nan"),
    }
    try:
        if is_model_uri(model):  # fetched once per worker process (inference never imports MLflow)
            from ecgml.tracking import local_model

            model = local_model(model)
        result, paths = digitize_file(image, out_dir, fs, model, name=name)
        row.update(ok=True, outputs=[str(p) for p in paths.values()], notes=list(result.notes))
        row["confidence"] = {k: float(v) for k, v in result.confidence.items()}
        row["mean_confidence"] = float(sum(result.confidence.values()) / max(1, len(result.confidence)))
        row["layout"] = str(getattr(result.geometry.layout, "name", ""))
        row["verdict"] = str(result.verdict)
        row["model"] = str(result.model)
        row["geometry"] = f"{result.geometry.source} (confidence {result.geometry.confidence:.2f})"
        row["warnings"] = list(result.report.warnings) if result.report else []
    except EcgmlError as exc:
        row["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - an unforeseen image must not cost the other images
        row["error"] = f"{image}: unexpected {type(exc).__name__}: {exc}"
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def run_job(job: Job, model: str | None, fs: int) -> dict[str, Any]:
    """A planned job's row: refused up front, or digitized."""
    if job.error:
        return {"image": str(job.image), "ok": False, "error": job.error, "seconds": 0.0, "outputs": []}
    return digitize_image_file(job.image, job.out_dir, model, fs, job.name)


def run_jobs(
    jobs: Sequence[Job],
    model: str | None,
    fs: int,
    workers: int = 1,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every job's row, in job order: here, or on a dask LocalCluster of `workers` one-thread processes
    (each loads the model once). `progress(row)` is called as each row arrives."""
    rows: dict[int, dict[str, Any]] = {}

    def done(k: int, row: dict[str, Any]) -> None:
        rows[k] = row
        if progress is not None:
            progress(row)

    todo = [k for k, j in enumerate(jobs) if not j.error]
    for k, j in enumerate(jobs):
        if j.error:
            done(k, run_job(j, model, fs))
    if workers <= 1 or len(todo) <= 1:
        for k in todo:
            done(k, run_job(jobs[k], model, fs))
        return [rows[k] for k in range(len(jobs))]
    from dask.distributed import Client, LocalCluster, as_completed

    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        futures = {client.submit(run_job, jobs[k], model, fs, pure=False): k for k in todo}
        for fut in as_completed(futures):
            k = futures[fut]
            try:
                row = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker died: that image failed, the rest go on
                row = {"image": str(jobs[k].image), "ok": False, "seconds": 0.0, "outputs": []}
                row["error"] = f"{jobs[k].image}: worker failed: {type(exc).__name__}: {exc}"
            done(k, row)
    return [rows[k] for k in range(len(jobs))]
