"""The pipeline stages as plain functions: data → prepare → train → evaluate → register → submit.

`dvc.yaml` runs each one as `ecgml stage NAME`; the Prefect flows in `flows/` run the same stages through
`dvc repro`, so DVC alone decides what is stale. Each stage reads its section of `Params`, calls the
library (through the `ecgml` commands the other parts own: synth, train, submit, digitize) and writes its
outputs whole or not at all (`ecgml.atomic`): a stage killed half-way leaves its old outputs or nothing.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgml.atomic import atomic_dir, atomic_path
from ecgml.config import Params, flat_params
from ecgml.errors import EcgmlError
from ecgml.evalkey import EvalKey, evaluation_key

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


def use_store(root: Path) -> str:
    """Make the library's MLflow calls in this process use `root`'s store (unless a URI is set)."""
    from ecgml.tracking import tracking_uri

    os.environ.setdefault("MLFLOW_TRACKING_URI", tracking_uri(root))
    return os.environ["MLFLOW_TRACKING_URI"]


def _write_json(path: Path, data: Any) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


# ------------------------------------------------------------------------------------------------ data


def stage_data(p: Params) -> StageResult:
    """Images for train/validation/test: rendered from WFDB records split by record, or a Kaggle folder.

    Each split folder is replaced whole (`atomic_dir`), so an interrupted run leaves old or new sets,
    never a half-rendered one.
    """
    out = p.path(p.data.out)
    counts = _render_synthetic(p, out) if p.data.source == "synthetic" else _ingest_kaggle(p, out)
    return StageResult("data", [out / s for s in SPLIT_NAMES], counts)


def _render_synthetic(p: Params, out: Path) -> dict[str, int]:
    from ecgml.records import iter_wfdb_paths
    from ecgml.splits import load_split_file, records_in_split
    from ecgml.synth import synth_dataset

    src = p.path(p.data.path)
    records = iter_wfdb_paths(src)
    if not records:
        raise EcgmlError(src, "no WFDB records (*.hea) found")
    table = load_split_file(p.path(p.data.splits)) if p.path(p.data.splits).exists() else {}
    counts: dict[str, int] = {}
    for k, split in enumerate(SPLIT_NAMES):
        chosen = records_in_split(records, split, table)
        if split == "train" and p.prepare.max_records:
            chosen = chosen[: p.prepare.max_records]
        per_record = getattr(p.data.per_record, split)
        with atomic_dir(out / split) as tmp:
            skipped: list[str] = []
            counts[split] = 0
            if chosen and per_record:
                report = synth_dataset(
                    chosen,
                    tmp,
                    p.data.types,
                    per_record=per_record,
                    seed=p.data.seed * 1000 + k,
                    test=split != "train",
                    first_id=1 + 100_000 * k,  # ids tell the split apart
                    progress=False,
                )
                counts[split] = report.n_ecgs
                skipped = [f"{path}: {reason}" for path, reason in report.skipped]
            used = [r.name for r in chosen] if per_record else []
            manifest = {"source": "synthetic", "records": used, "per_record": per_record}
            _write_json(tmp / "manifest.json", {**manifest, "ecgs": counts[split], "skipped": skipped})
    return counts


def _ingest_kaggle(p: Params, out: Path) -> dict[str, int]:
    """A competition folder: its test set as it is (no solution), train ids split into train/validation.

    Images are linked, not copied (the competition set is tens of GB); the validation set is written in
    the test layout with a solution built from the per-ECG CSVs, so evaluate scores it like our own sets.
    """
    src = p.path(p.data.path)
    if not (src / "train.csv").exists() or not (src / "test.csv").exists():
        raise EcgmlError(src, "not a competition folder (needs train.csv, train/, test.csv, test/)")
    with atomic_dir(out / "train") as t, atomic_dir(out / "validation") as v, atomic_dir(out / "test") as te:
        return _ingest_kaggle_into(p, src, t, v, te)


def _ingest_kaggle_into(p: Params, src: Path, train_dir: Path, val: Path, test_dir: Path) -> dict[str, int]:
    import numpy as np

    from ecgml.kaggle import read_test_table, read_train_table, write_solution, write_test_table, write_types
    from ecgml.records import read_csv
    from ecgml.splits import split_of

    train = read_train_table(src / "train.csv")
    held_out = {
        int(i) for i in train["id"] if split_of(str(i), (1 - p.data.validation_fraction, 0.0)) != "train"
    }
    (train_dir / "train").symlink_to((src / "train").resolve())
    train[~train["id"].astype(int).isin(held_out)].to_csv(train_dir / "train.csv", index=False)
    (val / "test").mkdir()
    items = []
    types: dict[int, str] = {}
    fs_of = dict(zip(train["id"].astype(int), train["fs"].astype(int), strict=True))
    for ecg_id in sorted(held_out):
        images = sorted((src / "train" / str(ecg_id)).glob(f"{ecg_id}-*.png"))
        if not images:
            continue
        (val / "test" / f"{ecg_id}.png").symlink_to(images[0].resolve())  # one image (type) per ECG
        types[ecg_id] = images[0].stem.split("-", 1)[1]
        rec = read_csv(src / "train" / str(ecg_id) / f"{ecg_id}.csv", fs=fs_of[ecg_id])
        rec.signal = np.nan_to_num(rec.signal)
        items.append((ecg_id, rec))
    write_test_table([(i, fs_of[i]) for i, _ in items], val / "test.csv")
    write_solution(items, val / "solution.csv")
    write_types(types, val / "types.csv")
    (test_dir / "test").symlink_to((src / "test").resolve())
    test = read_test_table(src / "test.csv")
    test.to_csv(test_dir / "test.csv", index=False)
    for d, n in (
        (train_dir, len(train) - len(held_out)),
        (val, len(items)),
        (test_dir, test["id"].nunique()),
    ):
        _write_json(d / "manifest.json", {"source": "kaggle", "path": str(src), "ecgs": int(n)})
    return {"train": len(train) - len(held_out), "validation": len(items), "test": int(test["id"].nunique())}


# --------------------------------------------------------------------------------------------- prepare


def _train_options(p: Params, **kw: Any) -> Any:
    """The trainer's options from params (`prepare` fixes the pages, `train` the optimisation)."""
    from ecgml.training.options import TrainOptions

    kw.setdefault("cache", p.path(p.prepare.out))
    return TrainOptions(
        records=p.path(p.prepare.records),
        types=p.prepare.types,
        pages_per_record=p.prepare.pages_per_record,
        max_records=p.prepare.max_records,
        val_pages=p.prepare.val_pages,
        seed=p.prepare.seed,
        progress=False,
        **kw,
    )


def stage_prepare(p: Params) -> StageResult:
    """The trainer's page cache: training pages rendered from train-split records with exact per-column
    targets (the canonical strips the trace model learns from), computed once and cached by DVC."""
    from ecgml.training.dataset import read_index
    from ecgml.training.render_source import fill_cache

    out = p.path(p.prepare.out)
    with atomic_dir(out) as tmp:
        opts = _train_options(p, cache=tmp, render_workers=p.prepare.workers, dask_address=p.prepare.address)
        fill_cache(opts, tmp)
        entries = read_index(tmp)
    counts = {s: sum(e.get("split") == s for e in entries) for s in ("train", "validation")}
    return StageResult("prepare", [out], {"pages": counts})


# ----------------------------------------------------------------------------------------------- train


def stage_train(p: Params) -> StageResult:
    """The candidate model folder: fine-tuned (default) or trained from scratch (full) trace weights;
    the classical digitizer when no learned model has shipped yet and the profile is `default`."""
    import shutil

    from ecgml.model_folder import write_spec

    out = p.path(p.train.out)
    t = p.train
    finished: Path | None = None
    with atomic_dir(out) as tmp:
        curve = tmp / "train_curve.csv"
        weights = tmp / "trace_unet.pt"
        shipped = SHIPPED_WEIGHTS.exists() and SHIPPED_WEIGHTS.with_suffix(".json").exists()
        if t.init == "shipped" and not shipped:
            write_spec("classical", tmp, extra={"note": "no shipped trace weights: classical digitizer"})
            _write_curve(curve, [])
            summary: dict[str, Any] = {"kind": "classical", "steps": 0}
        elif t.init == "shipped" and t.steps == 0:
            shutil.copy2(SHIPPED_WEIGHTS, weights)
            shutil.copy2(SHIPPED_WEIGHTS.with_suffix(".json"), weights.with_suffix(".json"))
            write_spec("learned", tmp, weights, extra={"note": "shipped weights, not fine-tuned"})
            _export_inference_graph(weights)
            _write_curve(curve, [])
            summary = {"kind": "learned", "steps": 0}
        else:
            from ecgml.trace.model import TraceModelConfig
            from ecgml.training.trace import train_trace

            work = train_work_dir(p)
            opts = _train_options(
                p,
                out=weights,
                work=work,
                steps=t.steps,
                batch_size=t.batch_size,
                lr=t.lr,
                init=SHIPPED_WEIGHTS if t.init == "shipped" else None,
                time_budget_s=t.time_budget_s,
                threads=t.threads,
                resume=True,  # a stage re-run after a kill goes on from the last checkpoint
                checkpoint_every=t.checkpoint_every,
                device=t.device,
                workers=t.workers,
                **({"model": TraceModelConfig(channels=t.channels)} if t.channels else {}),
            )
            opts.seed = t.seed
            train_trace(opts, build_cache=False)
            history = json.loads((work / "curve.json").read_text()) if (work / "curve.json").exists() else []
            _write_curve(curve, [(int(h["step"]), float(h["loss"])) for h in history if "loss" in h])
            write_spec("learned", tmp, weights, extra={"profile": t.profile, "init": t.init})
            _export_inference_graph(weights)
            summary = {"kind": "learned", "steps": len([h for h in history if "loss" in h])}
            finished = work
    if finished is not None:  # the weights are out; the checkpoint has done its job
        shutil.rmtree(finished, ignore_errors=True)
    return StageResult("train", [out], summary)


def _export_inference_graph(weights: Path) -> None:
    """Load the new weights once, as inference will, so the exported ONNX graph cached beside them
    (`trace.runtime.cached_onnx`) is part of the stage's output: written later by `evaluate`, it would
    change this DVC output and make the next `dvc repro` train again."""
    from ecgml.trace.model import load_extractor

    load_extractor(weights)


def train_work_dir(p: Params) -> Path:
    """The train stage's checkpoint folder: `train.work` / a key of everything that decides the weights
    (train and prepare params, the prepared pages' index, the init weights, the training code), so a
    re-run resumes only a run that would have produced the same weights, and a changed one starts over."""
    import hashlib

    h = hashlib.sha256()
    h.update(json.dumps(p.train.model_dump(mode="json", exclude={"out", "work"}), sort_keys=True).encode())
    h.update(json.dumps(p.prepare.model_dump(mode="json", exclude={"out"}), sort_keys=True).encode())
    index = p.path(p.prepare.out) / "index.json"
    h.update(index.read_bytes() if index.exists() else b"")
    if p.train.init == "shipped" and SHIPPED_WEIGHTS.exists():
        h.update(SHIPPED_WEIGHTS.read_bytes())
    code = Path(__file__).resolve().parent
    trace = [code / "trace" / f for f in ("model.py", "net.py", "net_config.py")]
    for f in sorted([*(code / "training").glob("*.py"), *trace]):
        h.update(f.read_bytes())
    return p.path(p.train.work) / h.hexdigest()[:16]


def training_figures(model_dir: Path) -> tuple[dict[str, str], dict[str, float]]:
    """Where and how the candidate was trained (device, precision, ranks, data workers) as MLflow tags,
    and the run's system figures (steps/s, data-wait share, peak memory) as metrics, from the weights'
    .json; nothing for a classical candidate or shipped weights registered as they are."""
    info = model_dir / "trace_unet.json"
    if not info.exists():
        return {}, {}
    meta = json.loads(info.read_text()).get("meta", {})
    keys = ("device", "device_name", "precision", "world_size", "workers")
    tags = {f"training.{k}": str(meta[k]) for k in keys if k in meta}
    metrics: dict[str, float] = {}
    if meta.get("train_seconds") and meta.get("steps") and "device" in meta:
        metrics["train/steps_per_s"] = float(meta["steps"]) / float(meta["train_seconds"])
    for k in ("data_wait_share", "peak_rss_mb", "peak_gpu_mb"):
        if k in meta:
            metrics[f"train/{k}"] = float(meta[k])
    return tags, metrics


def _write_curve(path: Path, points: Sequence[tuple[int, float]]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "loss"])
        w.writerows(points)


# -------------------------------------------------------------------------------------------- evaluate


def score_set(set_dir: Path, model: str, submission: Path, workers: int = 1) -> Any:
    """Digitize a test-layout set with `model` and score it against its solution (a ScoreReport)."""
    from ecgml.digitize import submit
    from ecgml.metric import score_files

    summary = submit(set_dir, submission, _local_model(model), workers)
    for ecg_id, err in summary.failures:
        log.warning("ECG %s could not be digitized (scored as zeros): %s", ecg_id, err)
    types = set_dir / "types.csv"
    return score_files(set_dir / "solution.csv", submission, types if types.exists() else None)


def _local_model(model: str | None) -> str | None:
    """A registry URI fetched to a local model folder (inference reads folders, not MLflow)."""
    from ecgml.model_folder import is_model_uri

    if not is_model_uri(model):
        return model
    from ecgml.tracking import local_model

    return local_model(model)


def stage_evaluate(p: Params) -> StageResult:
    """Per-type and per-lead scores of the candidate on the validation set (DVC metrics and plots),
    plus overlays of a few validation images for the MLflow run.

    Its outputs depend only on the model, the set and the code: no timings (the digitizer's JSON, with
    its seconds, is not written here), so an unchanged model leaves them byte-identical and DVC does
    not re-run `register` to log a new MLflow version of the same model."""

    val = p.path(p.data.out) / "validation"
    out = p.path(p.evaluate.out)
    model = str(p.path(p.train.out))  # a model folder (digitizer.json): `--model` takes it as it is
    with atomic_dir(out / "evaluate") as tmp:
        use_store(p.root)
        key = evaluation_key(val)  # before scoring: what this score is a score of
        report = score_set(val, model, tmp / "validation_submission.csv", p.evaluate.workers)
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
            {
                "eval_set": key.id,
                "eval_key": key.to_json(),
                "model": model,
                "per_ecg": report.to_json()["per_ecg"],
            },
        )
        _write_csv(tmp / "per_type.csv", ["type", "score_db"], sorted(report.per_type.items()))
        _write_csv(tmp / "per_lead.csv", ["lead", "snr_db"], list(report.per_lead_db.items()))
        images = sorted((val / "test").glob("*.png"))[: p.evaluate.n_overlays]
        for img in images:
            try:
                _write_overlay(img, tmp / "overlays" / f"{img.stem}-overlay.png", model)
            except EcgmlError as exc:
                log.warning("no overlay for %s", exc)
    return StageResult(
        "evaluate",
        [out / "evaluate"],
        {"score": report.score, **{f"type {k}": v for k, v in report.per_type.items()}},
    )


def _write_overlay(image_path: Path, png: Path, model: str) -> None:
    """The traces the model reads drawn on one validation image (PNG only: deterministic bytes)."""
    import cv2

    from ecgml.digitize import draw_overlay, load_digitizer
    from ecgml.images import load_image

    image = load_image(image_path)
    overlay = draw_overlay(image, load_digitizer(model).digitize_image(image, 500, image_path))
    ok, buf = cv2.imencode(".png", cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
    if not ok:
        raise EcgmlError(png, "cannot encode the overlay PNG")
    with atomic_path(png) as tmp:
        tmp.write_bytes(buf.tobytes())


def eval_set_id(set_dir: Path) -> str:
    """The id under which scores on `set_dir` are compared (see `ecgml.evalkey`)."""
    return evaluation_key(set_dir).id


def _write_csv(path: Path, header: list[str], rows: Sequence[Sequence[Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


# -------------------------------------------------------------------------------------------- register


def stage_register(p: Params) -> StageResult:
    """Log the candidate to MLflow, register it (`challenger`), and move `champion` only if it wins."""
    from ecgml import tracking
    from ecgml.model_folder import read_spec

    use_store(p.root)
    ev = p.path(p.evaluate.out) / "evaluate"
    for needed in (ev / "metrics.json", ev / "evaluation.json"):
        if not needed.exists():
            raise EcgmlError(needed, "missing: run `ecgml stage evaluate` (or `dvc repro`) first")
    metrics = json.loads((ev / "metrics.json").read_text())
    evaluation = json.loads((ev / "evaluation.json").read_text())
    val = p.path(p.data.out) / "validation"
    model_dir = p.path(p.train.out)
    key = evaluation_key(val)
    eval_set = key.id
    challenger_score, stale = _current_score(evaluation, key, float(metrics["score"]), val, model_dir)
    flat_metrics = {"score": metrics["score"], "frac_ge_25db": metrics["frac_ge_25db"]}
    flat_metrics |= {f"per_type/{k}": v for k, v in metrics["per_type"].items()}
    flat_metrics |= {f"per_lead/{k}": v for k, v in metrics["per_lead_db"].items()}
    train_tags, train_metrics = training_figures(model_dir)
    flat_metrics |= train_metrics
    tags = {
        "eval_set": eval_set,
        "git_commit": _git_commit(p.root),
        "digitizer_kind": read_spec(model_dir).kind,
        **{f"eval_key.{k}": v for k, v in key.to_json().items()},
    }
    if stale:
        tags["rescored_at_register"] = ",".join(stale)
    tags |= train_tags
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
            return float(score_set(val, f"models:/{name}/{v}", sub).score)
        finally:
            sub.unlink(missing_ok=True)

    decision = tracking.promote(name, version, eval_set, challenger_score, p.registry.margin, score_version)
    out = p.path(p.registry.out)
    with atomic_dir(out) as tmp:
        record = {**decision.to_json(), "run_id": rec.run_id, "tracking_uri": tracking.tracking_uri(p.root)}
        _write_json(tmp / "decision.json", record)
        (tmp / "decision.md").write_text(decision.markdown())
    return StageResult(
        "register", [out], {"version": version, "promoted": decision.promoted, "reason": decision.reason}
    )


def _current_score(
    evaluation: dict[str, Any], key: EvalKey, score: float, val: Path, model_dir: Path
) -> tuple[float, list[str]]:
    """The challenger's score under `key`: the evaluate stage's, or a fresh one when the set's images,
    truth, the code or the libraries changed since it ran (a stale score is never compared)."""
    try:
        then = EvalKey.from_json(evaluation["eval_key"])
        stale = key.differences(then)
    except (KeyError, TypeError):
        stale = ["eval_key (not recorded)"]
    if not stale:
        return score, []
    log.warning("evaluation is stale (%s changed): scoring the challenger again", ", ".join(stale))
    with tempfile.TemporaryDirectory(prefix="ecgml-rescore-") as tmp:
        return float(score_set(val, str(model_dir), Path(tmp) / "submission.csv").score), stale


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
    from ecgml.digitize import submit
    from ecgml.metric import score_files

    test = p.path(p.data.out) / "test"
    out = p.path(p.submit.out)
    summary: dict[str, Any] = {}
    with atomic_dir(out) as tmp:
        sub = tmp / "submission.csv"
        use_store(p.root)
        result = submit(test, sub, _local_model(p.submit.model), p.submit.workers)
        summary["failed_ecgs"] = result.n_failed
        if (test / "solution.csv").exists():
            types = test / "types.csv"
            report = score_files(test / "solution.csv", sub, types if types.exists() else None)
            summary |= {"score": report.score, "per_type": report.per_type, "n_ecgs": len(report.per_ecg)}
        decision = p.path(p.registry.out) / "decision.json"
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
