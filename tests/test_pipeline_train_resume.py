"""Issue 16: a killed train stage resumes from its checkpoint (in the DVC-ignored `train.work`) and gives
the weights an uninterrupted run gives; runs stop on steps, so the same params give the same weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

import ecgml.training.trace as trace
from ecgml import stages
from ecgml.config import Params, load_params
from ecgml.records import iter_wfdb_paths, read_wfdb
from ecgml.render.presets import render
from ecgml.trace.model import TraceModelConfig
from ecgml.training.dataset import TruthPage, page_targets, write_cached

REPO = Path(__file__).resolve().parents[1]
TRAIN = {"init": "scratch", "channels": [4, 8], "steps": 4, "batch_size": 2, "checkpoint_every": 2,
         "device": "cpu", "threads": 1}  # fmt: skip


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("prepared")
    rec = read_wfdb(iter_wfdb_paths(REPO / "data" / "records")[0])
    out = render(rec, "0001", seed=0)
    tp = TruthPage(out.image, out.page_map, out.layout, out.truth.cell, out.truth.xy, out.truth.visible)
    write_cached(folder, "train-0", page_targets(tp, out.page_map, TraceModelConfig()), {"split": "train"})
    return folder


def _project(root: Path, prepared: Path) -> Params:
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump({"train": TRAIN}))
    p = load_params(root / "params.yaml")
    shutil.copytree(prepared, p.path(p.prepare.out))
    return p


def _weights(p: Params) -> dict[str, torch.Tensor]:
    return torch.load(p.path(p.train.out) / "trace_unet.pt", weights_only=True)


def test_a_killed_train_stage_resumes_to_the_uninterrupted_weights(
    tmp_path: Path, prepared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _project(tmp_path / "whole", prepared)
    stages.stage_train(whole)
    assert not any(whole.path(whole.train.work).iterdir())  # the finished run's checkpoint is cleared
    tags, metrics = stages.training_figures(whole.path(whole.train.out))  # what MLflow is given
    assert tags["training.device"] == "cpu" and tags["training.precision"] == "fp32"
    assert metrics["train/steps_per_s"] > 0 and 0 <= metrics["train/data_wait_share"] <= 1
    assert metrics["train/peak_rss_mb"] > 0

    killed = _project(tmp_path / "killed", prepared)
    real_loss, calls = trace.trace_loss, []

    def dies_in_step_3(*args: object, **kw: object) -> object:
        calls.append(1)
        if len(calls) == 3:  # after the step-2 checkpoint, before step 3 ends: as a kill would
            raise KeyboardInterrupt
        return real_loss(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(trace, "trace_loss", dies_in_step_3)
    with pytest.raises(KeyboardInterrupt):
        stages.stage_train(killed)
    assert not killed.path(killed.train.out).exists()  # no half-written model folder
    ckpt = stages.train_work_dir(killed) / "checkpoint.pt"
    assert torch.load(ckpt, weights_only=True)["step"] == 2
    resumed: list[int] = []

    def counted(*args: object, **kw: object) -> object:
        resumed.append(1)
        return real_loss(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(trace, "trace_loss", counted)
    r = stages.stage_train(killed)  # the re-run after the kill
    assert r.summary["steps"] == 4 and len(resumed) == 2  # steps 3 and 4 only: it went on from step 2
    a, b = _weights(whole), _weights(killed)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_changed_params_do_not_resume_another_runs_checkpoint(tmp_path: Path, prepared: Path) -> None:
    p = _project(tmp_path / "p", prepared)
    q = load_params(p.root / "params.yaml", {"train.lr": 1e-3})
    assert stages.train_work_dir(p) != stages.train_work_dir(q)
    assert stages.train_work_dir(p) == stages.train_work_dir(load_params(p.root / "params.yaml"))
