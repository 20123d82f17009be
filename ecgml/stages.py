"""The pipeline stages as plain functions: data → prepare → train → evaluate → register → submit.

`dvc.yaml` runs each one as `ecgml stage NAME`; the Prefect flows in `flows/` run the same stages through
`dvc repro`, so DVC alone decides what is stale. Each stage reads its section of `Params`, calls the
library (through the `ecgml` commands the other parts own: synth, train, submit, digitize) and writes its
outputs whole or not at all (`ecgml.atomic`): a stage killed half-way leaves its old outputs or nothing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgml.atomic import atomic_dir, atomic_path
from ecgml.config import Params, flat_params
from ecgml.errors import EcgmlError

log = logging.getLogger(__name__)

STAGES = ("data", "prepare", "train", "evaluate", "register", "submit")
SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "trace_unet.pt"
SPLIT_NAMES = ("train", "validation", "test")


@dataclass
class StageResult:
    """What a stage did: its outputs and a few numbers worth printing."""

    stage: str
    outputs: list[Path]
    summary: dict[str, Any]
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------- helpers


def run_ecgml(args: Sequence[Any], what: str, root: Path | None = None) -> None:
    """Run one `ecgml` command in a child process; its failure becomes an EcgmlError naming the command.

    The child uses the same MLflow store as this process (`root`'s, unless MLFLOW_TRACKING_URI is set).
    """
    from ecgml.tracking import tracking_uri

    cmd = [sys.executable, "-m", "ecgml", *map(str, args)]
    log.info("running %s", " ".join(cmd))
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri(root)}
    proc = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True)
    if proc.stdout:
        sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        tail = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise EcgmlError(
            what, f"`ecgml {' '.join(map(str, args[:1]))}` failed (exit {proc.returncode}): {tail}"
        )


def file_digest(*paths: Path) -> str:
    """A short content hash: identifies an evaluation set (its solution and types files)."""
    h = hashlib.sha256()
    for p in paths:
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _link_records(records: Sequence[Path], folder: Path) -> None:
    """A folder of symlinks to WFDB records (header and signal files), so `ecgml synth` sees a subset."""
    folder.mkdir(parents=True, exist_ok=True)
    for rec in records:
        for f in rec.parent.glob(rec.name + ".*"):
            (folder / f.name).symlink_to(f.resolve())


def _write_json(path: Path, data: Any) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


# ------------------------------------------------------------------------------------------------ data


def stage_data(p: Params) -> StageResult:
    """Images for train/validation/test: rendered from WFDB records split by record, or a Kaggle folder."""
    out = p.path(p.data.out)
    with atomic_dir(out) as tmp:
        counts = _render_synthetic(p, tmp) if p.data.source == "synthetic" else _ingest_kaggle(p, tmp)
        _write_json(tmp / "manifest.json", {"source": p.data.source, "counts": counts})
    return StageResult("data", [out], counts)


def _render_synthetic(p: Params, out: Path) -> dict[str, int]:
    from ecgml.records import iter_wfdb_paths
    from ecgml.splits import load_split_file, records_in_split

    src = p.path(p.data.path)
    records = iter_wfdb_paths(src)
    if not records:
        raise EcgmlError(src, "no WFDB records (*.hea) found")
    table = load_split_file(p.path(p.data.splits)) if p.path(p.data.splits).exists() else {}
    counts: dict[str, int] = {}
    links = out / ".records"
    for k, split in enumerate(SPLIT_NAMES):
        chosen = records_in_split(records, split, table)
        if split == "train" and p.data.max_train_records:
            chosen = chosen[: p.data.max_train_records]
        per_record = getattr(p.data.per_record, split)
        if not chosen or per_record == 0:
            counts[split] = 0
            continue
        _link_records(chosen, links / split)
        types = p.data.train_types if split == "train" else p.data.types
        args = ["synth", links / split, out / split, "--types", ",".join(types)]
        args += ["--per-record", str(per_record), "--seed", str(p.data.seed * 1000 + k)]
        if split != "train":
            args.append("--test")
        run_ecgml(args, str(src), p.root)
        counts[split] = len(chosen) * per_record
    import shutil

    shutil.rmtree(links)
    return counts


def _ingest_kaggle(p: Params, out: Path) -> dict[str, int]:
    """A competition folder: its test set as it is (no solution), train ids split into train/validation.

    Images are linked, not copied (the competition set is tens of GB); the validation set is written in
    the test layout with a solution built from the per-ECG CSVs, so evaluate scores it like our own sets.
    """
    import numpy as np

    from ecgml.kaggle import read_test_table, read_train_table, write_test_table, write_types
    from ecgml.records import read_csv
    from ecgml.splits import split_of

    src = p.path(p.data.path)
    train = read_train_table(src / "train.csv")
    val_ids = [
        int(i) for i in train["id"] if split_of(str(i), (1 - p.data.validation_fraction, 0.0)) != "train"
    ]
    train_ids = [int(i) for i in train["id"] if int(i) not in set(val_ids)]
    # train: link the whole folder and list the ids kept for training
    (out / "train").mkdir(parents=True)
    (out / "train" / "train").symlink_to((src / "train").resolve())
    train[train["id"].isin(train_ids)].to_csv(out / "train" / "train.csv", index=False)
    # validation in the test layout, one image per ECG (its first image type found)
    val = out / "validation"
    (val / "test").mkdir(parents=True)
    from ecgml.kaggle import write_solution

    items = []
    types: dict[int, str] = {}
    fs_of = dict(zip(train["id"].astype(int), train["fs"].astype(int), strict=True))
    for ecg_id in val_ids:
        images = sorted((src / "train" / str(ecg_id)).glob(f"{ecg_id}-*.png"))
        if not images:
            continue
        (val / "test" / f"{ecg_id}.png").symlink_to(images[0].resolve())
        types[ecg_id] = images[0].stem.split("-", 1)[1]
        rec = read_csv(src / "train" / str(ecg_id) / f"{ecg_id}.csv", fs=fs_of[ecg_id])
        rec.signal = np.nan_to_num(rec.signal)
        items.append((ecg_id, rec))
    write_test_table([(i, fs_of[i]) for i, _ in items], val / "test.csv")
    write_solution(items, val / "solution.csv")
    write_types(types, val / "types.csv")
    # test: link as it is
    (out / "test").mkdir()
    (out / "test" / "test").symlink_to((src / "test").resolve())
    read_test_table(src / "test.csv").to_csv(out / "test" / "test.csv", index=False)
    return {
        "train": len(train_ids),
        "validation": len(items),
        "test": int(read_test_table(src / "test.csv")["id"].nunique()),
    }


# --------------------------------------------------------------------------------------------- prepare


def stage_prepare(p: Params) -> StageResult:
    """Canonical pages (the paper on a fixed mm raster, through the renderer's exact page map) of every
    training image, with their layout: the trainer's input, computed once and cached by DVC."""
    import cv2

    from ecgml.geometry.canonical import canonical_page
    from ecgml.page import PageMap

    src = p.path(p.data.out) / "train" / "train"
    out = p.path(p.prepare.out)
    rows: list[dict[str, Any]] = []
    with atomic_dir(out) as tmp:
        for meta_path in sorted(src.glob("*/*-*.json")) if src.is_dir() else []:
            image_path = meta_path.with_suffix(".png")
            meta = json.loads(meta_path.read_text())
            if "page_map" not in meta or not image_path.exists():
                continue  # a Kaggle image has no exact page map: the trainer's own geometry handles it
            image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("%s: cannot read image, skipped", image_path)
                continue
            page = canonical_page(image, PageMap.from_dict(meta["page_map"]), (p.prepare.px_per_mm,) * 2)
            name = meta_path.stem
            cv2.imwrite(str(tmp / f"{name}.png"), page.image)
            (tmp / f"{name}.json").write_text(
                json.dumps({"layout": meta["layout"], "px_per_mm": page.px_per_mm})
            )
            rows.append(
                {"name": name, "source": str(image_path.relative_to(p.root)), "type": name.split("-", 1)[1]}
            )
        with open(tmp / "index.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["name", "source", "type"])
            w.writeheader()
            w.writerows(rows)
    return StageResult("prepare", [out], {"pages": len(rows)})


# ----------------------------------------------------------------------------------------------- train


def stage_train(p: Params) -> StageResult:
    """The candidate model folder: fine-tuned (default) or trained from scratch (full) trace weights;
    the classical digitizer when no learned model has shipped yet and the profile is `default`."""
    from ecgml.tracking import write_spec

    out = p.path(p.train.out)
    t = p.train
    with atomic_dir(out) as tmp:
        curve = tmp / "train_curve.csv"
        if t.init == "shipped" and not SHIPPED_WEIGHTS.exists():
            write_spec("classical", tmp, extra={"note": "no shipped trace weights: classical digitizer"})
            curve.write_text("step,loss\n")
            return_summary: dict[str, Any] = {"kind": "classical", "steps": 0}
        else:
            weights = tmp / "trace_unet.pt"
            args = ["train", p.path(p.prepare.out), "--data", p.path(p.data.out) / "train", "--out", weights]
            args += ["--lr", str(t.lr), "--steps", str(t.steps), "--epochs", str(t.epochs)]
            args += ["--batch-size", str(t.batch_size), "--seed", str(t.seed), "--threads", str(t.threads)]
            args += ["--time-budget", str(t.time_budget_s), "--curve", curve]
            if t.init == "shipped":
                args += ["--init", SHIPPED_WEIGHTS]
            run_ecgml(args, str(out), p.root)
            write_spec("learned", tmp, weights)
            return_summary = {"kind": "learned", "steps": t.steps}
    return StageResult("train", [out], return_summary)


def model_arg(model_dir: Path) -> str:
    """What `ecgml submit/digitize --model` takes for a candidate folder: its weights, or `classical`."""
    from ecgml.tracking import read_spec

    spec = read_spec(model_dir)
    return str(spec.weights) if spec.weights is not None else "classical"


# -------------------------------------------------------------------------------------------- evaluate


def score_set(set_dir: Path, model: str, submission: Path, workers: int = 1, root: Path | None = None) -> Any:
    """Digitize a test-layout set with `model` and score it against its solution (a ScoreReport)."""
    from ecgml.metric import score_files

    args = ["submit", set_dir, "--out", submission, "--model", model, "--workers", str(workers)]
    run_ecgml(args, str(set_dir), root)
    types = set_dir / "types.csv"
    return score_files(set_dir / "solution.csv", submission, types if types.exists() else None)


def stage_evaluate(p: Params) -> StageResult:
    """Per-type and per-lead scores of the candidate on the validation set (DVC metrics and plots),
    plus overlays of a few validation images for the MLflow run."""
    val = p.path(p.data.out) / "validation"
    out = p.path(p.evaluate.out)
    model = model_arg(p.path(p.train.out))
    with atomic_dir(out / "evaluate") as tmp:
        report = score_set(val, model, tmp / "validation_submission.csv", p.evaluate.workers, p.root)
        metrics = {
            "score": report.score,
            "per_type": report.per_type,
            "per_lead_db": report.per_lead_db,
            "frac_ge_25db": report.frac_ge_25db,
            "frac_lt_10db": report.frac_lt_10db,
            "n_ecgs": len(report.per_ecg),
        }
        _write_json(tmp / "metrics.json", metrics)
        _write_json(
            tmp / "evaluation.json",
            {"eval_set": eval_set_id(val), "model": model, "per_ecg": report.to_json()["per_ecg"]},
        )
        _write_csv(tmp / "per_type.csv", ["type", "score_db"], sorted(report.per_type.items()))
        _write_csv(tmp / "per_lead.csv", ["lead", "snr_db"], list(report.per_lead_db.items()))
        images = sorted((val / "test").glob("*.png"))[: p.evaluate.n_overlays]
        for img in images:
            run_ecgml(["digitize", img, "--out", tmp / "overlays", "--model", model], str(img), p.root)
    return StageResult(
        "evaluate",
        [out / "evaluate"],
        {"score": report.score, **{f"type {k}": v for k, v in report.per_type.items()}},
    )


def eval_set_id(set_dir: Path) -> str:
    return file_digest(set_dir / "solution.csv", set_dir / "types.csv")


def _write_csv(path: Path, header: list[str], rows: Sequence[Sequence[Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


# -------------------------------------------------------------------------------------------- register


def stage_register(p: Params) -> StageResult:
    """Log the candidate to MLflow, register it (`challenger`), and move `champion` only if it wins."""
    from ecgml import tracking

    ev = p.path(p.evaluate.out) / "evaluate"
    metrics = json.loads((ev / "metrics.json").read_text())
    evaluation = json.loads((ev / "evaluation.json").read_text())
    eval_set = evaluation["eval_set"]
    model_dir = p.path(p.train.out)
    flat_metrics = {"score": metrics["score"], "frac_ge_25db": metrics["frac_ge_25db"]}
    flat_metrics |= {f"per_type/{k}": v for k, v in metrics["per_type"].items()}
    flat_metrics |= {f"per_lead/{k}": v for k, v in metrics["per_lead_db"].items()}
    tags = {
        "eval_set": eval_set,
        "git_commit": _git_commit(p.root),
        "digitizer_kind": tracking.read_spec(model_dir).kind,
    }
    if os.environ.get("PREFECT__FLOW_RUN_ID"):
        tags["prefect.flow_run_id"] = os.environ["PREFECT__FLOW_RUN_ID"]
    rec = tracking.log_candidate(
        experiment=p.registry.experiment,
        model_dir=model_dir,
        params=flat_params(p),
        metrics=flat_metrics,
        loss_curve=_read_curve(model_dir / "train_curve.csv"),
        pictures=sorted((ev / "overlays").glob("*overlay*.png")),
        files=[p.root / "params.yaml", p.root / "dvc.lock"],
        tags=tags,
        root=p.root,
    )
    name = p.registry.model_name
    version = tracking.register(rec.model_uri, name, tags={"run_id": rec.run_id, "eval_set": eval_set})

    def score_version(v: str) -> float:
        sub = p.path(p.evaluate.out) / f".champion-v{v}-submission.csv"
        try:
            return float(
                score_set(p.path(p.data.out) / "validation", f"models:/{name}/{v}", sub, root=p.root).score
            )
        finally:
            sub.unlink(missing_ok=True)

    decision = tracking.promote(
        name, version, eval_set, float(metrics["score"]), p.registry.margin, score_version
    )
    out = p.path(p.registry.out)
    _write_json(
        out, {**decision.to_json(), "run_id": rec.run_id, "tracking_uri": tracking.tracking_uri(p.root)}
    )
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(decision.markdown())
    return StageResult(
        "register", [out], {"version": version, "promoted": decision.promoted, "reason": decision.reason}
    )


def _read_curve(path: Path) -> list[tuple[int, float]]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(fh)]


def _git_commit(root: Path) -> str:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


# ---------------------------------------------------------------------------------------------- submit


def stage_submit(p: Params) -> StageResult:
    """The competition submission for the test set, made with `submit.model` (the champion by default);
    scored when the set has a solution (our synthetic sets do, a real competition folder does not)."""
    from ecgml.metric import score_files

    test = p.path(p.data.out) / "test"
    out = p.path(p.submit.out)
    summary: dict[str, Any] = {}
    with atomic_dir(out) as tmp:
        sub = tmp / "submission.csv"
        args = ["submit", test, "--out", sub, "--model", p.submit.model, "--workers", str(p.submit.workers)]
        run_ecgml(args, str(test), p.root)
        if (test / "solution.csv").exists():
            types = test / "types.csv"
            report = score_files(test / "solution.csv", sub, types if types.exists() else None)
            summary = {"score": report.score, "per_type": report.per_type, "n_ecgs": len(report.per_ecg)}
        decision = p.path(p.registry.out)
        if decision.exists():
            d = json.loads(decision.read_text())
            summary["champion_version"] = d["challenger_version"] if d["promoted"] else d["champion_version"]
        _write_json(tmp / "score.json", summary)
    return StageResult(
        "submit",
        [out / "submission.csv", out / "score.json"],
        {k: v for k, v in summary.items() if k != "per_type"},
    )


STAGE_FUNCS: dict[str, Callable[[Params], StageResult]] = {
    "data": stage_data,
    "prepare": stage_prepare,
    "train": stage_train,
    "evaluate": stage_evaluate,
    "register": stage_register,
    "submit": stage_submit,
}


def run_stage(name: str, params: Params) -> StageResult:
    """Run one stage by name and time it."""
    if name not in STAGE_FUNCS:
        raise EcgmlError(None, f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    t0 = time.perf_counter()
    result = STAGE_FUNCS[name](params)
    result.seconds = time.perf_counter() - t0
    return result
