"""Several processes, one model: a two-rank DistributedDataParallel run on gloo (CPU), resumed on one
process; and a few steps on CUDA where a GPU exists (skipped elsewhere)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ecgml.records import iter_wfdb_paths, read_wfdb
from ecgml.render.presets import render
from ecgml.trace.model import TraceModelConfig, load_extractor
from ecgml.trace.net import load_model
from ecgml.training.dataset import TruthPage, page_targets, write_cached
from ecgml.training.options import TrainOptions
from ecgml.training.train import train_any

TINY = TraceModelConfig(channels=(4, 8, 8), strip_mm=16.0)
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cache")
    rec = read_wfdb(iter_wfdb_paths(HERE.parent / "data" / "records")[0])
    for k, (split, kind) in enumerate([("train", "0001"), ("validation", "0001")]):
        out = render(rec, kind, seed=k)
        tp = TruthPage(out.image, out.page_map, out.layout, out.truth.cell, out.truth.xy, out.truth.visible)
        write_cached(
            folder, f"{split}-{k}", page_targets(tp, out.page_map, TINY), {"split": split, "type": kind}
        )
    return folder


@pytest.mark.slow  # two processes importing torch and joining a gloo group: ~20-40 s here
def test_two_ranks_on_gloo_stay_identical_and_only_rank0_writes(tmp_path: Path, cache: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "ddp_train.py"), str(cache), str(tmp_path), "4", "3"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s0 = torch.load(tmp_path / "state-rank0.pt", weights_only=True)
    s1 = torch.load(tmp_path / "state-rank1.pt", weights_only=True)
    assert s0.keys() == s1.keys()
    for k in s0:
        assert torch.equal(s0[k], s1[k]), k
    assert (tmp_path / "work-0" / "checkpoint.pt").exists() and (tmp_path / "out-0" / "w.pt").exists()
    assert not (tmp_path / "work-1").exists() and not (tmp_path / "out-1").exists()  # rank 1 wrote nothing
    ck = torch.load(tmp_path / "work-0" / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 3 and ck["world_size"] == 2
    # the two-rank run's checkpoint resumes on one process (a change of device count) and finishes
    one = TrainOptions(
        out=tmp_path / "one.pt", work=tmp_path / "work-0", cache=cache, steps=4, batch_size=4, val_every=2,
        val_batches=1, device="cpu", model=replace(TINY), progress=False, threads=1, resume=True,
    )  # fmt: skip
    _, _, meta = load_model(train_any(one, build_cache=False))
    assert meta["steps"] == 4 and meta["world_size"] == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_few_steps_on_cuda_give_weights_that_run_on_the_cpu(tmp_path: Path, cache: Path) -> None:
    opts = TrainOptions(
        out=tmp_path / "w.pt", work=tmp_path, cache=cache, steps=3, batch_size=4, val_every=3,
        val_batches=1, device="cuda", model=replace(TINY), progress=False, threads=1, workers=1,
    )  # fmt: skip
    _, _, meta = load_model(train_any(opts, build_cache=False))
    assert meta["device"].startswith("cuda") and meta["precision"] in ("bf16", "fp16")
    state = torch.load(tmp_path / "w.pt", map_location="cpu", weights_only=True)
    assert all(v.device.type == "cpu" for v in state.values())
    ex = load_extractor(tmp_path / "w.pt")  # the CPU inference path (ONNX export included)
    assert ex.cfg.channels == TINY.channels
