"""The exported ONNX graph is cached beside the weights (or in the user cache when that folder cannot be
written), named by the weights' hash, rebuilt when they change, and written whole even by two processes
starting at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgml.trace import runtime
from ecgml.trace.model import TraceModelConfig, TraceUNet, save_weights

TINY = TraceModelConfig(channels=(4, 8, 8), strip_mm=16.0, s2d=(2, 2), x_up=2)
SHAPE = (1, 3, TINY.strip_px, 4 * TINY.pool)
pytestmark = pytest.mark.skipif("onnxruntime" not in runtime.available_runtimes(), reason="no ONNX Runtime")


def _weights(folder: Path, seed: int) -> tuple[TraceUNet, Path]:
    torch.manual_seed(seed)
    m = TraceUNet(TINY).eval()
    return m, save_weights(m, TINY, folder / "trace_unet.pt")


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the real exports; the cache folders are the weights' folder, then XDG_CACHE_HOME/ecgml."""
    monkeypatch.delenv("ECGML_CACHE_DIR", raising=False)
    calls: list[int] = []
    real = runtime.export_onnx

    def counting(model, example):
        calls.append(1)
        return real(model, example)

    monkeypatch.setattr(runtime, "export_onnx", counting)
    return calls


def _logits(run: runtime.LogitsRunner) -> np.ndarray:
    return run(np.full((1, 3, TINY.strip_px, 64), 100.0, np.float32))


def test_exported_once_beside_the_weights_and_again_when_they_change(
    tmp_path: Path, exports: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    m, w = _weights(tmp_path / "model", 0)
    first = runtime.make_runner(m, SHAPE, "onnxruntime", 1, weights=w)
    assert first.runtime == "onnxruntime" and len(exports) == 1
    cached = sorted((tmp_path / "model").glob("trace_unet.*.onnx"))
    assert len(cached) == 1
    second = runtime.make_runner(m, SHAPE, "onnxruntime", 1, weights=w)
    assert len(exports) == 1  # read back, not exported again
    np.testing.assert_array_equal(_logits(first), _logits(second))
    m2, _ = _weights(tmp_path / "model", 1)  # new weights under the same name
    third = runtime.make_runner(m2, SHAPE, "onnxruntime", 1, weights=w)
    assert len(exports) == 2
    now = sorted((tmp_path / "model").glob("trace_unet.*.onnx"))
    assert len(now) == 1 and now != cached  # the old graph is gone
    with torch.no_grad():
        ref = m2(torch.full((1, 3, TINY.strip_px, 64), 100.0)).numpy()
    np.testing.assert_allclose(_logits(third), ref, atol=1e-4, rtol=1e-4)
    assert not (tmp_path / "user-cache" / "ecgml").exists()


def test_a_folder_that_cannot_be_written_sends_the_graph_to_the_user_cache(
    tmp_path: Path, exports: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    m, w = _weights(tmp_path / "site-packages", 0)
    real = runtime.atomic_path

    def read_only_package(target):
        if Path(target).parent == w.parent:
            raise PermissionError(13, "Permission denied", str(target))
        return real(target)

    monkeypatch.setattr(runtime, "atomic_path", read_only_package)
    runtime.make_runner(m, SHAPE, "onnxruntime", 1, weights=w)
    runtime.make_runner(m, SHAPE, "onnxruntime", 1, weights=w)
    assert len(exports) == 1
    assert len(list((tmp_path / "user-cache" / "ecgml").glob("trace_unet.*.onnx"))) == 1
    assert not list(w.parent.glob("*.onnx"))


CHILD = """
import sys
from pathlib import Path
import torch
from ecgml.trace import runtime
from ecgml.trace.model import TraceModelConfig, TraceUNet, load_model
w = Path(sys.argv[1])
m, cfg, _ = load_model(w)
data = runtime.cached_onnx(m, (1, 3, cfg.strip_px, 4 * cfg.pool), w)
run = runtime.LogitsRunner("onnxruntime", 1, runtime._onnxruntime_fn(data, 1))
print(float(run(torch.full((1, 3, cfg.strip_px, 64), 100.0).numpy()).sum()))
"""


@pytest.mark.slow  # two processes importing torch
def test_two_processes_starting_at_once_both_get_a_whole_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ECGML_CACHE_DIR", raising=False)
    _, w = _weights(tmp_path / "model", 0)
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(w)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1]
    files = list((tmp_path / "model").iterdir())
    assert sorted(f.suffix for f in files) == [".json", ".onnx", ".pt"]  # no temporary file left behind
