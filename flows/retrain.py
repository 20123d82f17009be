"""Retraining flow: new records in → the DVC stages (`dvc repro`, one task per stage) → promote → push.

DVC owns the stage graph, the caching and `dvc.lock`; this flow adds what DVC lacks: retries on I/O,
schedules (flows/deploy.py), and Prefect artifacts (per-type scores, the promotion decision). The stage
list is read from `dvc.yaml` itself, so there is one stage list (tests/test_flows_consistency.py).
Run once by hand: `python flows/retrain.py [--workdir .] [--new-records DIR]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

# No usage telemetry from Prefect unless the user asks for it (set before prefect is imported).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import yaml  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact, create_table_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from ecgml.tools import tool_cmd, tool_env  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IO_RETRIES = {"retries": 2, "retry_delay_seconds": [5, 20]}


def dvc_stages(workdir: str | Path) -> list[str]:
    """Stage names of `dvc.yaml` in file order (written in dependency order; a test checks it)."""
    data = yaml.safe_load((Path(workdir) / "dvc.yaml").read_text())
    return list(data.get("stages", {}))


def _run(cmd: list[str], workdir: str | Path) -> str:
    """Run a tool of this environment (`tool_cmd`); its children find this environment's scripts first."""
    proc = subprocess.run(cmd, cwd=workdir, env=tool_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def ingest(new_records: str, workdir: str) -> int:
    """Copy new WFDB records (header + signal files) into the records folder DVC tracks."""
    params = yaml.safe_load((Path(workdir) / "params.yaml").read_text())
    dest = Path(workdir) / params.get("data", {}).get("path", "data/records") / "incoming"
    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    for hea in sorted(Path(new_records).rglob("*.hea")):
        for f in hea.parent.glob(hea.stem + ".*"):
            shutil.copy2(f, dest / f.name)
        n += 1
    get_run_logger().info("ingested %d record(s) into %s", n, dest)
    return n


@task(cache_policy=NO_CACHE)
def repro_stage(stage: str, workdir: str) -> dict[str, Any]:
    """`dvc repro --single-item STAGE`: DVC skips it when nothing it depends on changed."""
    t0 = time.perf_counter()
    out = _run(tool_cmd("dvc", "repro", "--single-item", stage), workdir)
    skipped = "didn't change, skipping" in out or "is cached" in out
    get_run_logger().info("stage %s: %s", stage, "up to date" if skipped else "ran")
    return {"stage": stage, "seconds": round(time.perf_counter() - t0, 2), "ran": not skipped}


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[2, 5, 15])
def push(workdir: str) -> None:
    """`dvc push` to the configured remote (I/O: retried)."""
    _run(tool_cmd("dvc", "push"), workdir)


@task(cache_policy=NO_CACHE)
def publish(workdir: str) -> dict[str, Any]:
    """Artifacts: a table of per-type scores and a markdown summary of the promotion decision."""
    params = yaml.safe_load((Path(workdir) / "params.yaml").read_text())
    reports = Path(workdir) / params.get("evaluate", {}).get("out", "reports") / "evaluate"
    register = Path(workdir) / params.get("register", {}).get("out", "reports/register") / "decision.json"
    out: dict[str, Any] = {}
    if (reports / "metrics.json").exists():
        m = json.loads((reports / "metrics.json").read_text())
        rows = [{"type": t, "score_db": round(v, 3)} for t, v in sorted(m.get("per_type", {}).items())]
        rows.append({"type": "overall", "score_db": round(m.get("score", float("nan")), 3)})
        create_table_artifact(key="per-type-scores", table=rows, description="validation score per type (dB)")
        out["score"] = m.get("score")
    if register.exists():
        d = json.loads(register.read_text())
        md = register.with_suffix(".md")
        text = md.read_text() if md.exists() else f"```json\n{json.dumps(d, indent=2)}\n```"
        create_markdown_artifact(key="promotion-decision", markdown=text, description="champion/challenger")
        out["promoted"] = d.get("promoted")
        out["version"] = d.get("challenger_version")
    return out


@flow(name="ecgml-retrain", log_prints=True)
def retrain(workdir: str = str(REPO), new_records: str | None = None, do_push: bool = True) -> dict[str, Any]:
    """Ingest new records (if any), run every DVC stage in order, publish scores and the decision, push."""
    if new_records:
        ingest(new_records, workdir)
    timings = []
    for stage in dvc_stages(workdir):
        runner = repro_stage.with_options(**IO_RETRIES) if stage == "data" else repro_stage
        timings.append(runner(stage, workdir))
    summary = publish(workdir)
    if do_push:
        push(workdir)
    return {"stages": timings, **summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=str(REPO))
    ap.add_argument("--new-records", default=None)
    ap.add_argument("--no-push", action="store_true")
    a = ap.parse_args()
    print(json.dumps(retrain(a.workdir, a.new_records, not a.no_push), indent=2))


if __name__ == "__main__":
    main()
