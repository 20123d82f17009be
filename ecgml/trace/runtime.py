"""Fast CPU inference for the trace U-Net: the eager torch model exported once to ONNX and run by
OpenVINO or ONNX Runtime.

Why: eager torch spends ~1.5-2 s per page on this small, wide U-Net on 2 cores; the same graph with
batch norm folded runs 4-7x faster in ONNX Runtime (~0.4 s) and OpenVINO (~0.3 s), with logits equal to
~1e-5. The export happens once when a digitizer is loaded (about a second, through a temporary file that
is removed at once); nothing is downloaded or cached. When neither runtime is installed, or the export
fails, the eager model is used.

`ECGML_RUNTIME` (auto | openvino | onnxruntime | torch) overrides the choice and `ECGML_THREADS` the
thread count (default: up to 2, the machine this project is sized for).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "openvino", "onnxruntime", "torch")
# The declared dependency first, so a default install behaves the same everywhere; OpenVINO (the extra
# `ecgml[openvino]`, ~0.1 s per page faster here) when asked for or when ONNX Runtime is missing.
AUTO_ORDER = ("onnxruntime", "openvino")
DEFAULT_THREADS = 2
OPSET = 17


@dataclass
class LogitsRunner:
    """(B, 3, H, W) float32 strips (0-255) -> (B, H, W * x_up) float32 logits, by the named runtime."""

    runtime: str
    threads: int
    fn: Callable[[np.ndarray], np.ndarray]

    def __call__(self, strips: np.ndarray) -> np.ndarray:
        return self.fn(np.ascontiguousarray(strips, dtype=np.float32))


def runtime_threads(threads: int | None = None) -> int:
    """`threads`, else $ECGML_THREADS, else $OMP_NUM_THREADS (Dask sets 1 in its worker processes), else
    min(2, CPUs): the intra-op threads of one digitizer."""
    if threads is None:
        for var in ("ECGML_THREADS", "OMP_NUM_THREADS"):
            env = os.environ.get(var, "").strip()
            if env.isdigit() and int(env) > 0:
                return int(env)
        threads = min(DEFAULT_THREADS, os.cpu_count() or 1)
    return max(1, int(threads))


def requested_runtime(runtime: str | None = None) -> str:
    """`runtime`, else $ECGML_RUNTIME, else "auto"; ValueError for an unknown name."""
    name = (runtime or os.environ.get("ECGML_RUNTIME", "") or "auto").strip().lower()
    if name not in RUNTIMES:
        raise ValueError(f"unknown inference runtime {name!r}; known: {', '.join(RUNTIMES)}")
    return name


def available_runtimes() -> list[str]:
    """The fast runtimes importable here, in the order `auto` tries them."""
    return [r for r in AUTO_ORDER if importlib.util.find_spec(r) is not None]


def export_onnx(model: nn.Module, example: torch.Tensor) -> bytes:
    """The model as ONNX bytes with dynamic batch, height and width (TorchScript exporter, opset 17)."""
    model.eval()
    with tempfile.TemporaryDirectory(prefix="ecgml-onnx-") as tmp, warnings.catch_warnings(), torch.no_grad():
        path = Path(tmp) / "trace.onnx"
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices
        torch.onnx.export(
            model,
            (example,),
            path,
            dynamo=False,
            input_names=["strips"],
            output_names=["logits"],
            dynamic_axes={"strips": {0: "b", 2: "h", 3: "w"}, "logits": {0: "b", 1: "h", 2: "w"}},
            opset_version=OPSET,
        )
        return path.read_bytes()


def _onnxruntime_fn(onnx: bytes, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    # Busy-waiting worker threads only steal time from other processes on a shared 2-core machine.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(onnx, so, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(sess.run(None, {"strips": x})[0])

    return run


def _openvino_fn(onnx: bytes, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(onnx),
        "CPU",
        {
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
            # Without this OpenVINO runs in bf16 on CPUs that have it, which moves decoded positions.
            "INFERENCE_PRECISION_HINT": "f32",
        },
    )
    request = compiled.create_infer_request()
    lock = threading.Lock()  # one infer request: not to be used by two threads at once

    def run(x: np.ndarray) -> np.ndarray:
        with lock:
            return np.array(request.infer([x])[0], copy=True)

    return run


def _torch_fn(model: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def run(x: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return run


def make_runner(
    model: nn.Module,
    example_shape: tuple[int, int, int, int],
    runtime: str | None = None,
    threads: int | None = None,
) -> LogitsRunner:
    """A runner for `model` on the requested runtime ("auto": ONNX Runtime, else OpenVINO), else eager torch.

    `example_shape` is one (B, 3, H, W) input the model accepts (for the export trace). The runner
    holds a snapshot of the weights: a model trained further needs a new runner.
    """
    want = requested_runtime(runtime)
    n = runtime_threads(threads)
    order = AUTO_ORDER if want == "auto" else ((want,) if want != "torch" else ())
    makers: dict[str, Any] = {"openvino": _openvino_fn, "onnxruntime": _onnxruntime_fn}
    onnx: bytes | None = None
    for name in order:
        if importlib.util.find_spec(name) is None:
            if want != "auto":
                log.warning("inference runtime %s is not installed; using eager torch", name)
            continue
        try:
            if onnx is None:
                onnx = export_onnx(model, torch.zeros(example_shape))
            return LogitsRunner(name, n, makers[name](onnx, n))
        except Exception as exc:  # a failed export or runtime must not stop digitizing
            log.warning("runtime %s failed (%s: %s); trying the next", name, type(exc).__name__, exc)
    torch.set_num_threads(n)
    return LogitsRunner("torch", n, _torch_fn(model))
