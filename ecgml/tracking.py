"""MLflow for ecgml: where runs are stored, how a candidate is logged, registered and promoted, and how
a registered digitizer is loaded back.

The store defaults to `sqlite:///<repo>/mlflow.db` with artifacts in `<repo>/mlartifacts` (the file store
cannot hold a registry); `MLFLOW_TRACKING_URI` overrides it. Nothing here runs on import: callers pass
the repository root, and `configure` sets the URI when a function needs it.

Promotion: every registered version gets the alias `challenger`. `champion` moves to it only when its
score on the *same* evaluation (`ecgml.evalkey`: the set's images and truth, the package code, library
versions and the metric, hashed together) beats the champion's by `margin` dB; a champion without a
score under that key is scored again first. The decision and both scores are written as version tags,
so the registry itself says why each alias sits where it does.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ecgml.config import MODEL_NAME
from ecgml.errors import EcgmlError
from ecgml.model_folder import DigitizerSpec, is_model_uri, read_spec

log = logging.getLogger(__name__)

DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
CHAMPION = "champion"
CHALLENGER = "challenger"
PIP_REQUIREMENTS = [
    "ecgml",  # the digitizer's code: install this repository (`pip install -e .`)
    "mlflow>=3.17,<4",
    "torch>=2.4,<=2.13.0",
    "numpy>=1.26,<3",
    "pandas>=2.2,<4",
    "scipy>=1.13,<2",
    "opencv-python-headless>=4.9,<6",
]


# --- where the store is -------------------------------------------------------------------------------


def default_root() -> Path:
    """The repository root: the folder of `params.yaml` above the current directory, else the cwd."""
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "params.yaml").exists() and (p / "ecgml").is_dir():
            return p
    return here


def tracking_uri(root: str | Path | None = None) -> str:
    """`MLFLOW_TRACKING_URI` if set, else the project's SQLite store under `root`."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(Path(root) if root else default_root()).resolve() / DB_NAME}"


def artifact_location(root: str | Path | None = None) -> str:
    return ((Path(root) if root else default_root()).resolve() / ARTIFACTS_DIR).as_uri()


def configure(root: str | Path | None = None, must_exist: bool = False) -> str:
    """Point MLflow at the project's store; check an HTTP server answers, or that a SQLite file exists.

    `must_exist` is for readers (loading a model): they should not create an empty store by accident.
    """
    import mlflow

    uri = tracking_uri(root)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    check_store(uri, must_exist=must_exist)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def check_store(uri: str, must_exist: bool = False, timeout_s: float = 5.0) -> None:
    """Fail fast with a clear message instead of MLflow's minute of retries and a stack trace."""
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as resp:
                if resp.status != 200:
                    raise EcgmlError(uri, f"MLflow server answered {resp.status} on /health")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EcgmlError(
                uri, f"MLflow server unreachable ({reason}); start it or unset MLFLOW_TRACKING_URI"
            ) from exc
    elif uri.startswith("sqlite:///") and must_exist:
        db = Path(uri.removeprefix("sqlite:///"))
        if not db.exists():
            raise EcgmlError(
                db, "no MLflow store here yet; run `dvc repro` (or `ecgml stage register`) first"
            )


def ensure_experiment(name: str, root: str | Path | None = None) -> str:
    """The experiment's id, creating it with the project's artifact folder when the store is local."""
    import mlflow

    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    uri = tracking_uri(root)
    location = artifact_location(root) if uri.startswith("sqlite:") else None
    return str(mlflow.create_experiment(name, artifact_location=location))


# --- the digitizer as a model ---------------------------------------------------------------------------


def log_digitizer_model(model_dir: Path, name: str = "model") -> Any:
    """Log the model folder as a pyfunc (inside an active run); returns MLflow's ModelInfo."""
    import mlflow
    import pandas as pd

    from ecgml import serving as serving_module
    from ecgml.serving import signature

    spec = read_spec(model_dir)
    artifacts = {"digitizer": str(model_dir / "digitizer.json")}
    if spec.weights is not None:
        artifacts["weights"] = str(spec.weights)
        if spec.weights.with_suffix(".json").exists():  # the trace model's config travels beside it
            artifacts["weights_config"] = str(spec.weights.with_suffix(".json"))
    example = pd.DataFrame({"path": ["page.png"], "fs": [500]})
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(Path(serving_module.__file__).with_name("pyfunc_entry.py")),  # models from code
        artifacts=artifacts,
        signature=signature(),
        input_example=example,
        pip_requirements=PIP_REQUIREMENTS,  # inferring them costs ~6 s and would log a CUDA torch pin
        metadata={"digitizer_kind": spec.kind},
    )


# --- logging a candidate -------------------------------------------------------------------------------


@dataclass
class RunRecord:
    run_id: str
    model_uri: str
    experiment_id: str


def log_candidate(
    *,
    experiment: str,
    model_dir: Path,
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    loss_curve: Sequence[tuple[int, float]] = (),
    pictures: Sequence[Path] = (),
    files: Sequence[Path] = (),
    tags: Mapping[str, str] | None = None,
    root: str | Path | None = None,
) -> RunRecord:
    """One MLflow run: params, metrics, the loss curve, overlay pictures, extra files and the model."""
    import mlflow

    configure(root)
    exp_id = ensure_experiment(experiment, root)
    with mlflow.start_run(experiment_id=exp_id, tags=dict(tags or {})) as run:
        mlflow.log_params({k: v[:6000] for k, v in params.items()})
        mlflow.log_metrics({_metric_key(k): float(v) for k, v in metrics.items() if np.isfinite(v)})
        for step, loss in loss_curve:
            mlflow.log_metric("train_loss", float(loss), step=int(step))
        for p in pictures:
            mlflow.log_artifact(str(p), artifact_path="overlays")
        for p in files:
            if p.exists():
                mlflow.log_artifact(str(p), artifact_path="inputs")
        info = log_digitizer_model(model_dir)
        return RunRecord(run.info.run_id, info.model_uri, exp_id)


def _metric_key(key: str) -> str:
    """MLflow keys allow letters, digits, `_-./ `; type names like `realworld` pass as they are."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in key)


# --- registry and promotion ----------------------------------------------------------------------------


def _client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def alias_version(name: str, alias: str) -> Any | None:
    """The model version holding `alias`, or None when the alias (or the model) does not exist yet."""
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def register(model_uri: str, name: str = MODEL_NAME, tags: Mapping[str, str] | None = None) -> str:
    """Register a logged model as a new version of `name` and give it the alias `challenger`."""
    import mlflow

    mv = mlflow.register_model(model_uri, name, tags=dict(tags or {}))
    _client().set_registered_model_alias(name, CHALLENGER, mv.version)
    return str(mv.version)


def eval_tag(eval_set: str) -> str:
    """The version tag holding a score on one evaluation set (id: `ecgml.evalkey.EvalKey.id`)."""
    return f"score.{eval_set[:16]}"


def record_score(name: str, version: str, eval_set: str, score: float) -> None:
    _client().set_model_version_tag(name, version, eval_tag(eval_set), f"{score:.6f}")


def recorded_score(name: str, version: str, eval_set: str) -> float | None:
    mv = _client().get_model_version(name, version)
    value = mv.tags.get(eval_tag(eval_set))
    return float(value) if value is not None else None


@dataclass
class Decision:
    """The promotion outcome, as written to version tags and to the register stage's report."""

    model_name: str
    challenger_version: str
    challenger_score: float
    champion_version: str | None
    champion_score: float | None
    margin: float
    eval_set: str
    promoted: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        verb = "**promoted**" if self.promoted else "**not promoted**"
        champ = (
            f"version {self.champion_version} at {self.champion_score:.3f} dB"
            if self.champion_version is not None and self.champion_score is not None
            else "none"
        )
        return (
            f"# Promotion of `{self.model_name}` version {self.challenger_version}: {verb}\n\n"
            f"| | version | score (dB) |\n|---|---|---|\n"
            f"| challenger | {self.challenger_version} | {self.challenger_score:.3f} |\n"
            f"| champion before | {self.champion_version or '-'} | "
            f"{'-' if self.champion_score is None else f'{self.champion_score:.3f}'} |\n\n"
            f"Margin required: {self.margin:.3f} dB on evaluation set `{self.eval_set[:16]}`. "
            f"Previous champion: {champ}.\n\nReason: {self.reason}\n"
        )


def decide(challenger: float, champion: float | None, margin: float) -> tuple[bool, str]:
    """Promote only a finite score that beats the champion's by `margin` (any finite score if none)."""
    if not np.isfinite(challenger):
        return False, f"challenger score {challenger} is not finite"
    if champion is None:
        return True, "no champion yet"
    if challenger >= champion + margin:
        return True, f"beats the champion by {challenger - champion:.3f} dB (>= margin {margin:.3f})"
    return False, f"gains {challenger - champion:.3f} dB over the champion, less than the margin {margin:.3f}"


def promote(
    name: str,
    version: str,
    eval_set: str,
    challenger_score: float,
    margin: float,
    score_version: Callable[[str], float] | None = None,
) -> Decision:
    """Compare the challenger with the champion on the same evaluation set; move `champion` if it wins.

    The champion's score on this set comes from its version tag; when it was scored on another set,
    `score_version(version)` evaluates it now (and the result is recorded). Without that callable a
    champion of unknown score is kept: an unknown is never replaced on faith.
    """
    client = _client()
    record_score(name, version, eval_set, challenger_score)
    champ = alias_version(name, CHAMPION)
    champ_version = str(champ.version) if champ is not None else None
    champ_score: float | None = None
    if champ_version == version:
        promoted, reason = False, "this version is already the champion"
        champ_score = challenger_score
    else:
        if champ_version is not None:
            champ_score = recorded_score(name, champ_version, eval_set)
            if champ_score is None and score_version is not None:
                champ_score = float(score_version(champ_version))
                record_score(name, champ_version, eval_set, champ_score)
        if champ_version is not None and champ_score is None:
            promoted, reason = False, "the champion has no score on this evaluation set to compare against"
        else:
            promoted, reason = decide(challenger_score, champ_score, margin)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    decision = Decision(
        name, version, challenger_score, champ_version, champ_score, margin, eval_set, promoted, reason
    )
    tags = {
        "promotion_decision": "promoted" if promoted else "rejected",
        "promotion_reason": reason,
        "promotion_margin": f"{margin}",
        "compared_with": champ_version or "none",
        "eval_set": eval_set[:16],
    }
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, v)
    if promoted and champ_version is not None:
        client.set_model_version_tag(name, champ_version, "superseded_by", version)
    return decision


# --- loading back ----------------------------------------------------------------------------------------


def load_digitizer(uri: str, root: str | Path | None = None) -> DigitizerSpec:
    """Resolve `models:/ecgml-digitizer@champion` (or any MLflow model URI, or a local model folder) to
    a `DigitizerSpec` with local weights (`ecgml.digitize.load_digitizer_from_spec` runs it).

    Unreachable servers, missing stores and missing models or aliases raise `EcgmlError`.
    """
    local = Path(uri)
    if local.is_dir() and (local / "digitizer.json").exists():
        return read_spec(local)
    folder = fetch_model_folder(uri, root)
    spec = read_spec(folder, uri=uri)
    if uri.startswith("models:/") and "@" in uri:
        name, alias = uri.removeprefix("models:/").split("@", 1)
        mv = alias_version(name, alias)
        spec.version = str(mv.version) if mv is not None else None
    return spec


def fetch_model_folder(uri: str, root: str | Path | None = None) -> Path:
    """Download an MLflow model's artifacts; their folder is a model folder (`ecgml.model_folder`).
    The temporary copy is removed when the process exits."""
    import mlflow
    from mlflow.exceptions import MlflowException

    store = configure(root, must_exist=True)
    dst = tempfile.mkdtemp(prefix="ecgml-model-")
    atexit.register(shutil.rmtree, dst, True)  # the copy lives as long as this process, then goes
    try:
        model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=dst))
    except MlflowException as exc:
        raise EcgmlError(
            uri, f"no such model in the MLflow store {store}: {exc.message.splitlines()[0]}"
        ) from exc
    except OSError as exc:
        raise EcgmlError(uri, f"cannot fetch the model from {store}: {exc}") from exc
    artifacts = model_dir / "artifacts"
    if not (artifacts / "digitizer.json").exists():
        raise EcgmlError(uri, "this MLflow model is not an ecgml digitizer (no artifacts/digitizer.json)")
    return artifacts


def local_model(model: str | None, root: str | Path | None = None) -> str | None:
    """A `--model` value inference can read: an MLflow URI becomes the local model folder it was fetched
    to (once per process); anything else is returned as it is. Inference never imports MLflow, so the
    CLI, stages and flows call this before handing the value to `ecgml.digitize`."""
    if not is_model_uri(model):
        return model
    return _fetched(str(model), str(root) if root is not None else None)


@lru_cache(maxsize=8)
def _fetched(uri: str, root: str | None) -> str:
    return str(fetch_model_folder(uri, root))
