"""`params.yaml` → one validated config, grouped by pipeline stage.

Every knob of the pipeline lives in `params.yaml` at the repository root; `dvc.yaml` declares, per stage,
the dotted keys that stage reads, so `dvc exp run -S train.lr=...` reruns exactly what depends on it.
The library never reads YAML itself: callers load a `Params` once and pass the section they need.
Relative paths in the file are relative to the folder that holds it (not to the current directory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ecgml.errors import EcgmlError

CAPTURE_TYPES = ("0001", "0003", "0004", "0005", "0006", "0009", "0010", "0011", "0012", "realworld")
SAMPLING_RATES = (250, 256, 500, 512, 1000, 1025)
MODEL_NAME = "ecgml-digitizer"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _types(v: Any) -> tuple[str, ...]:
    items = v.split(",") if isinstance(v, str) else list(v)
    out = tuple(str(t).strip().zfill(4) if str(t).strip().isdigit() else str(t).strip() for t in items)
    bad = [t for t in out if t not in CAPTURE_TYPES]
    if bad:
        raise ValueError(f"unknown capture type(s) {bad}; known: {', '.join(CAPTURE_TYPES)}")
    if not out:
        raise ValueError("at least one capture type is needed")
    return out


class SplitSizes(_Section):
    """ECGs rendered per record in each split (synthetic source); test/validation ECGs cycle the types.

    The train split is 0 by default: the trainer renders its own pages with exact targets (`prepare`).
    """

    train: int = Field(default=0, ge=0)
    validation: int = Field(default=4, ge=1)
    test: int = Field(default=5, ge=1)


class DataParams(_Section):
    """Where the images come from: rendered from WFDB records, or an existing competition folder."""

    source: Literal["synthetic", "kaggle"] = "synthetic"
    path: Path = Path("data/records")  # WFDB records (synthetic) or a competition folder (kaggle)
    splits: Path = Path("data/splits.csv")
    types: tuple[str, ...] = CAPTURE_TYPES
    per_record: SplitSizes = SplitSizes()
    seed: int = 0
    validation_fraction: float = Field(default=0.1, gt=0, lt=1)  # kaggle: train ids held out to evaluate
    out: Path = Path("data/sets")

    @field_validator("types", mode="before")
    @classmethod
    def _check_types(cls, v: Any) -> tuple[str, ...]:
        return _types(v)


class PrepareParams(_Section):
    """The trainer's page cache: rendered training pages with exact per-column targets (train split)."""

    records: Path = Path("data/records")
    types: tuple[str, ...] = ("0001", "0003", "0004", "0005", "0006", "0009", "0010", "0011", "0012")
    pages_per_record: int = Field(default=1, ge=1)
    max_records: int = Field(default=12, ge=0)  # 0 = every train-split record
    val_pages: int = Field(default=4, ge=0)
    seed: int = 0
    workers: int = Field(default=1, ge=1)  # >1: pages rendered on a Dask LocalCluster of this many processes
    address: str | None = None  # a running Dask scheduler (tcp://host:8786) renders them instead
    out: Path = Path("data/prepared")

    @field_validator("types", mode="before")
    @classmethod
    def _check_types(cls, v: Any) -> tuple[str, ...]:
        return _types(v)


DEVICE_RE = r"^(auto|cpu|mps|cuda(:\d+)?)$"
FULL_CHANNELS = (24, 48, 96, 160, 256)  # the `full` profile's U-Net (GPU-sized; see BENCHMARKS.md)


class TrainParams(_Section):
    """`default` fine-tunes the shipped weights for a few CPU minutes; `full` trains a larger U-Net from
    scratch on one GPU.

    A run stops on `steps` (reproducible: the same params give the same weights); `time_budget_s` is an
    optional wall-time cap that gives that up. `steps: 0` with `init: shipped` registers the shipped
    weights as they are. With no shipped weights and the default profile, the candidate is the classical
    digitizer (nothing to fine-tune). Checkpoints go to `work` (outside DVC), so a killed stage resumes.
    """

    profile: Literal["default", "full"] = "default"
    lr: float = Field(default=3e-4, gt=0)
    steps: int = Field(default=150, ge=0)
    batch_size: int = Field(default=4, ge=1)
    seed: int = 0
    init: Literal["shipped", "scratch"] = "shipped"
    channels: tuple[int, ...] | None = None  # U-Net widths for `init: scratch` (None: the model default)
    time_budget_s: float | None = Field(default=None, gt=0)
    threads: int = Field(default=2, ge=1)
    device: str = Field(default="auto", pattern=DEVICE_RE)  # auto | cpu | cuda | cuda:N | mps
    workers: int = Field(default=0, ge=0)  # DataLoader processes cutting/augmenting strips (0: in-loop)
    checkpoint_every: int = Field(default=25, ge=1)  # steps between checkpoints in `work`
    work: Path = Path("runs/train")  # checkpoints of interrupted runs (git- and DVC-ignored)
    out: Path = Path("models/candidate")

    @field_validator("channels", mode="before")
    @classmethod
    def _check_channels(cls, v: Any) -> tuple[int, ...] | None:
        if v is None:
            return None
        widths = tuple(int(c) for c in (v.split(",") if isinstance(v, str) else v))
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"U-Net channels want 2+ positive widths, got {v!r}")
        return widths

    @model_validator(mode="before")
    @classmethod
    def _full_is_scratch(cls, data: Any) -> Any:
        """The `full` profile trains a larger U-Net from scratch for long, unless the file says otherwise."""
        if isinstance(data, dict) and data.get("profile") == "full":
            full = {"init": "scratch", "steps": 30000, "batch_size": 32, "lr": 2e-3, "workers": 4}
            return {**full, "channels": FULL_CHANNELS, "checkpoint_every": 500, **data}
        return data


class EvaluateParams(_Section):
    """Scores the candidate on the validation set; a few overlays are kept for the MLflow run."""

    n_overlays: int = Field(default=3, ge=0)
    workers: int = Field(default=1, ge=1)
    out: Path = Path("reports")


class RegisterParams(_Section):
    """MLflow registry: every candidate becomes `challenger`; `champion` moves only by `margin` dB."""

    model_name: str = MODEL_NAME
    experiment: str = "ecgml"
    margin: float = Field(default=0.1, ge=0)
    out: Path = Path("reports/register")  # decision.json and decision.md


class SubmitParams(_Section):
    """The competition submission for the test split, made with the champion."""

    model: str = f"models:/{MODEL_NAME}@champion"
    workers: int = Field(default=1, ge=1)
    out: Path = Path("submission")


class Params(_Section):
    """The whole `params.yaml`; `root` is the folder relative paths are resolved against."""

    data: DataParams = DataParams()
    prepare: PrepareParams = PrepareParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    # `register` would shadow ABCMeta.register on the model class, so the attribute is `registry`.
    registry: RegisterParams = Field(default=RegisterParams(), alias="register")
    submit: SubmitParams = SubmitParams()
    root: Path = Path(".")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def path(self, p: Path | str) -> Path:
        """A params path resolved against the params file's folder (absolute paths stay as they are)."""
        p = Path(p)
        return p if p.is_absolute() else self.root / p


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> Params:
    """Read and validate `params.yaml`; `overrides` maps dotted keys (`train.lr`) to values, as `-S` does."""
    path = Path(path)
    if not path.exists():
        raise EcgmlError(path, "params file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise EcgmlError(path, f"not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise EcgmlError(path, "params file must hold a mapping of stage sections")
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value)
    raw.pop("root", None)
    try:
        return Params.model_validate({**raw, "root": path.resolve().parent})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise EcgmlError(path, f"invalid params: {problems}") from exc


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise EcgmlError(None, f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = value


def dump_params(params: Params) -> dict[str, Any]:
    """Params as plain YAML-able data (paths as strings), without `root`: what `params.yaml` would say."""
    data = params.model_dump(mode="json", exclude={"root"}, by_alias=True)
    return data


def flat_params(params: Params) -> dict[str, str]:
    """Dotted key → string, for MLflow's `log_params`."""
    out: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            out[prefix] = ",".join(map(str, node)) if isinstance(node, list) else str(node)

    walk("", dump_params(params))
    return out
