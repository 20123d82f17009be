"""Batch digitization: map image files over Dask workers (prefect-dask), one task per image.

A `LocalCluster` with `workers` single-threaded processes by default; `address` uses a running Dask
scheduler instead (a real cluster). Each worker loads the digitizer once (`ecgml.batch`). A bad image is
reported in the result and in a table artifact, and the other images go through. Outputs keep each
image's path below the folder (`site1/1.png` → `OUT/site1/1.*`); two images wanting the same output
files, or outputs already there (without `--overwrite`), are failed rows, never an overwrite
(`ecgml.batch.plan_jobs`).

    python flows/batch.py IMAGES_DIR OUT_DIR [--workers 2] [--address tcp://host:8786] [--model URI]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

# No usage telemetry from Prefect unless the user asks for it (set before prefect is imported).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from prefect import flow, task  # noqa: E402
from prefect.artifacts import create_table_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.utilities.annotations import unmapped  # noqa: E402
from prefect_dask import DaskTaskRunner  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgml.batch import Job, collect_images, plan_jobs, run_job  # noqa: E402 - after the path above


@task(cache_policy=NO_CACHE)
def digitize_one(job: Job, model: str | None, fs: int) -> dict[str, Any]:
    """One image → its output files; an `EcgmlError` becomes a failed row, not a failed flow."""
    return run_job(job, model, fs)


@flow(name="ecgml-batch-digitize", log_prints=True)
def _digitize_images(jobs: list[Job], model: str | None, fs: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    todo = [j for j in jobs if not j.error]
    futures = digitize_one.map(todo, unmapped(model), unmapped(fs))
    done = {id(j): f.result() for j, f in zip(todo, futures, strict=True)}
    results = [done[id(j)] if id(j) in done else run_job(j, model, fs) for j in jobs]
    map_seconds = time.perf_counter() - t0
    failed = [r for r in results if not r["ok"]]
    if failed:
        create_table_artifact(
            key="batch-failures", table=[{"image": r["image"], "error": r["error"]} for r in failed]
        )
    print(f"{len(results) - len(failed)} digitized, {len(failed)} failed in {map_seconds:.1f} s")
    return {"rows": results, "map_seconds": map_seconds}


def task_runner(workers: int = 2, address: str | None = None) -> DaskTaskRunner:
    """A Dask runner on `address` if given, else a LocalCluster of `workers` one-thread processes."""
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        },
    )


def digitize_batch(
    images: list[str] | str,
    out_dir: str,
    model: str | None = None,
    fs: int = 500,
    workers: int = 2,
    address: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Digitize images (files, folders, globs; one folder or pattern as a string) on Dask.

    Returns `rows` (one per image: ok, error, seconds, outputs; plus one failed row per input that
    gave no image) and `map_seconds` (from the first task submitted to the last result, i.e. without
    Prefect's and the cluster's start-up).
    """
    found = collect_images([images] if isinstance(images, str) else images)
    jobs = plan_jobs(found.images, Path(out_dir), overwrite)
    runner_flow = _digitize_images.with_options(task_runner=task_runner(workers, address))
    res = runner_flow(jobs, model, fs)
    res["rows"] += [
        {"image": p.split(": ")[0], "ok": False, "error": p, "seconds": 0.0} for p in found.problems
    ]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description="digitize a folder of ECG images on Dask")
    ap.add_argument("images", help="a folder (searched recursively), an image or a glob pattern")
    ap.add_argument("out")
    ap.add_argument("--overwrite", action="store_true", help="replace outputs already in OUT")
    ap.add_argument("--model", default=None)
    ap.add_argument("--fs", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--address", default=None)
    a = ap.parse_args()
    t0 = time.perf_counter()
    res = digitize_batch(a.images, a.out, a.model, a.fs, a.workers, a.address, a.overwrite)
    dt = time.perf_counter() - t0
    rows, mapped = res["rows"], res["map_seconds"]
    report = {"images": len(rows), "ok": sum(r["ok"] for r in rows), "workers": a.workers}
    report |= {"wall_s": round(dt, 2), "map_s": round(mapped, 2)}
    report["images_per_s"] = round(len(rows) / mapped, 3)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
