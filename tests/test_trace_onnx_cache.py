"""The exported ONNX graph is cached beside the weights (in the user cache for the package's shipped
weights, or when that folder cannot be written; a temporary folder when neither can), named by the weights'
hash, rebuilt when they change, written whole even by two processes starting at once, and run from the
cache without importing torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgml.geometry.canonical import CanonicalPage
from ecgml.layout import make_layout
from ecgml.trace import runtime
from ecgml.trace.model import DEFAULT_WEIGHTS, TraceModelConfig, load_extractor
from ecgml.trace.net import TraceUNet, save_weights

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
from ecgml.trace.net import load_model
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


def _unwritable(monkeypatch: pytest.MonkeyPatch, *folders: Path) -> None:
    real = runtime.atomic_path

    def refuse(target):
        if Path(target).parent in folders:
            raise PermissionError(13, "Permission denied", str(target))
        return real(target)

    monkeypatch.setattr(runtime, "atomic_path", refuse)


def test_the_shipped_weights_get_their_graph_in_the_user_cache_not_the_package(
    tmp_path: Path, exports: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """ecgml/weights is a dependency of the DVC train stage: a graph written there made it retrain."""
    assert DEFAULT_WEIGHTS.parent not in runtime.onnx_cache_dirs(DEFAULT_WEIGHTS)
    pkg = tmp_path / "ecgml" / "weights"
    m, w = _weights(pkg, 0)
    monkeypatch.setattr(runtime, "PACKAGE_WEIGHTS", pkg.resolve())
    monkeypatch.setenv("ECGML_CACHE_DIR", str(tmp_path / "cache"))
    runtime.make_runner(m, SHAPE, "onnxruntime", 1, weights=w)
    runtime.make_runner(m, SHAPE, "onnxruntime", 1, weights=w)
    assert len(exports) == 1
    assert sorted(f.name for f in pkg.iterdir()) == ["trace_unet.json", "trace_unet.pt"]
    assert len(list((tmp_path / "cache").glob("trace_unet.*.onnx"))) == 1


def test_an_unwritable_user_cache_falls_back_to_a_temporary_folder(
    tmp_path: Path, exports: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    m, w = _weights(tmp_path / "ro-model", 0)
    monkeypatch.setenv("ECGML_CACHE_DIR", str(tmp_path / "ro-cache"))
    monkeypatch.setattr(runtime, "temp_cache_dir", lambda: tmp_path / "tmp-cache")
    _unwritable(monkeypatch, w.parent, tmp_path / "ro-cache")
    runtime.make_runner(m, SHAPE, "onnxruntime", 1, weights=w)
    runtime.make_runner(m, SHAPE, "onnxruntime", 1, weights=w)
    assert len(exports) == 1
    assert len(list((tmp_path / "tmp-cache").glob("trace_unet.*.onnx"))) == 1


def test_the_user_cache_keeps_the_graphs_of_other_weights_of_the_same_name(
    tmp_path: Path, exports: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beside the weights an older graph is removed; in the shared cache it may be another model's."""
    a, wa = _weights(tmp_path / "a", 0)
    b, wb = _weights(tmp_path / "b", 1)
    monkeypatch.setenv("ECGML_CACHE_DIR", str(tmp_path / "cache"))
    _unwritable(monkeypatch, wa.parent, wb.parent)
    for m, w in ((a, wa), (b, wb), (a, wa), (b, wb)):
        runtime.make_runner(m, SHAPE, "onnxruntime", 1, weights=w)
    assert len(exports) == 2
    assert len(list((tmp_path / "cache").glob("trace_unet.*.onnx"))) == 2


def test_a_cached_graph_is_run_without_the_torch_model_and_reads_the_same(
    tmp_path: Path, exports: list[int]
) -> None:
    _, w = _weights(tmp_path / "model", 0)
    first = load_extractor(w, "onnxruntime", 1)
    second = load_extractor(w, "onnxruntime", 1)
    assert len(exports) == 1
    assert first.model is not None and second.model is None  # the weights were not loaded into torch
    assert second.meta["runtime"] == "onnxruntime"
    rng = np.random.default_rng(0)
    layout = make_layout()
    img = rng.integers(0, 256, (int(layout.paper_mm[1] * 8), int(layout.paper_mm[0] * 8), 3), np.uint8)
    page = CanonicalPage(img, (8.0, 8.0), layout.paper_mm)
    for ta, tb in zip(first.extract(page, layout), second.extract(page, layout), strict=True):
        np.testing.assert_array_equal(ta.y_mm, tb.y_mm)
        np.testing.assert_array_equal(ta.confidence, tb.confidence)


def test_a_damaged_cached_graph_is_exported_again(tmp_path: Path, exports: list[int]) -> None:
    m, w = _weights(tmp_path / "model", 0)
    load_extractor(w, "onnxruntime", 1)
    (graph,) = (tmp_path / "model").glob("trace_unet.*.onnx")
    graph.write_bytes(b"half a graph")
    ext = load_extractor(w, "onnxruntime", 1)
    assert ext.meta["runtime"] == "onnxruntime" and len(exports) == 2
    assert graph.read_bytes() != b"half a graph"


DIGITIZE_CHILD = """
import sys
from ecgml.digitize import digitize_file
result, _ = digitize_file(sys.argv[1], sys.argv[2])
print(result.model, "torch" in sys.modules)
"""


@pytest.mark.slow  # two processes digitizing a page
def test_a_digitize_with_the_graph_cached_never_imports_torch(tmp_path: Path) -> None:
    """Issue 17: start-up paid ~1.5 s for `import torch` even when the exported graph was cached."""
    import os

    import cv2

    from ecgml.page_reader import WEIGHTS as READER_WEIGHTS
    from ecgml.records import read_wfdb, resample
    from ecgml.render.presets import render

    record = Path(__file__).parents[1] / "data" / "records" / "cpsc2018_challenge2020" / "A0010"
    page = render(resample(read_wfdb(record).window(0, 10), 500, 5000), "0001", 3).image
    png = tmp_path / "page.png"
    cv2.imwrite(str(png), cv2.cvtColor(page, cv2.COLOR_RGB2BGR))
    env = {**os.environ, "ECGML_CACHE_DIR": str(tmp_path / "cache"), "ECGML_RUNTIME": "onnxruntime"}
    outs = []
    for run in ("first", "second"):
        res = subprocess.run(
            [sys.executable, "-c", DIGITIZE_CHILD, str(png), str(tmp_path / run)],
            env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        outs.append(res.stdout.split())
    assert outs[0] == ["unet:" + str(DEFAULT_WEIGHTS), "True"]  # exported the graph: torch was needed
    assert outs[1] == ["unet:" + str(DEFAULT_WEIGHTS), "False"]
    assert len(list((tmp_path / "cache").glob("trace_unet.*.onnx"))) == 1
    # the label reader's graph is cached the same way (it runs without torch too)
    assert len(list((tmp_path / "cache").glob("label_reader.*.onnx"))) == int(READER_WEIGHTS.exists())
