"""Fast CPU inference for the trace U-Net: the eager torch model exported once to ONNX and run by
OpenVINO or ONNX Runtime.

Why: eager torch spends ~1.5-2 s per page on this small, wide U-Net on 2 cores; the same graph with
batch norm folded runs 4-7x faster in ONNX Runtime (~0.4 s) and OpenVINO (~0.3 s), with logits equal to
~1e-5. The export costs about a second, which a user digitizing one image per process paid every time, so
the exported graph of a weights file is cached (`cached_onnx`), named by a hash of the weights, their
config and the exporter, written whole under a temporary name and renamed (two processes starting at
once both write a complete file; the second rename wins). A cached graph is run without importing torch
(`cached_runner`). Nothing is downloaded. When neither runtime is installed, or the export fails, the
eager model is used.

Where graphs go (`onnx_cache_dirs`): for the weights shipped inside the package (ecgml/weights/, a DVC
dependency of the train stage, which a new file there would make retrain) and for weights in a folder
that cannot be written, the user cache folder: $ECGML_CACHE_DIR, else $XDG_CACHE_HOME/ecgml, else
~/.cache/ecgml, else (unwritable) a per-user folder in the temporary directory; any other weights get
theirs beside them (a model folder carries its graph). `ECGML_RUNTIME` (auto | openvino | onnxruntime |
torch) overrides the choice of runtime, `ECGML_THREADS` the thread count (default: up to 2, the machine
this project is sized for).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
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

from ecgml.atomic import atomic_path

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "openvino", "onnxruntime", "torch")
# The declared dependency first, so a default install behaves the same everywhere; OpenVINO (the extra
# `ecgml[openvino]`, ~0.1 s per page faster here) when asked for or when ONNX Runtime is missing.
AUTO_ORDER = ("onnxruntime", "openvino")
DEFAULT_THREADS = 2
OPSET = 17
ONNX_CACHE_FORMAT = 1  # bump when the export itself changes (names, axes, exporter options)
PACKAGE_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
SHARED_KEEP = 4  # graphs of one weights name kept in a shared cache folder (others may be other weights')


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


def export_onnx(model: Any, example: Any) -> bytes:
    """The torch model as ONNX bytes with dynamic batch, height and width (TorchScript exporter, opset 17)."""
    import torch

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


def _torch_version() -> str:
    """The installed torch's version, read from its metadata (importing torch costs ~1.5 s)."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "none"


def onnx_cache_key(weights: Path, example_shape: tuple[int, ...]) -> str:
    """Hash of what the exported graph depends on: the weights and config files, torch, opset, format."""
    h = hashlib.sha256()
    for f in (weights, weights.with_suffix(".json")):
        h.update(f.read_bytes() if f.exists() else b"")
    h.update(f"{_torch_version()}|{OPSET}|{ONNX_CACHE_FORMAT}|{tuple(example_shape)}".encode())
    return h.hexdigest()[:24]


def user_cache_dir() -> Path:
    """$ECGML_CACHE_DIR, else $XDG_CACHE_HOME/ecgml, else ~/.cache/ecgml."""
    env = os.environ.get("ECGML_CACHE_DIR", "").strip()
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "ecgml"


def temp_cache_dir() -> Path:
    """The last resort when the user cache cannot be written: a per-user folder in the temp directory."""
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"ecgml-cache-{user}"


def onnx_cache_dirs(weights: Path) -> list[Path]:
    """Where the graph of `weights` is looked for and written, in order: beside them (not for the
    package's shipped weights), the user cache folder, the temporary one."""
    shared = [user_cache_dir(), temp_cache_dir()]
    if weights.resolve().parent == PACKAGE_WEIGHTS:
        return shared
    return [weights.parent, *shared]


def cached_graph(weights: Path, example_shape: tuple[int, int, int, int]) -> tuple[Path, bytes] | None:
    """The cached graph of `weights` (path, bytes), or None; reads files only (no torch)."""
    name = f"{weights.stem}.{onnx_cache_key(weights, example_shape)}.onnx"
    for folder in onnx_cache_dirs(weights):
        try:
            data = (folder / name).read_bytes()
        except OSError:
            continue
        if data:
            return folder / name, data
    return None


def _prune(folder: Path, stem: str, keep: str, shared: bool) -> None:
    """Beside the weights: drop graphs of earlier weights of that name. In a shared folder, where graphs
    of other weights of the same name live too, keep the SHARED_KEEP newest."""
    olds = [f for f in folder.glob(f"{stem}.*.onnx") if f.name != keep and len(f.name) == len(keep)]
    if shared:
        olds = sorted(olds, key=lambda f: f.stat().st_mtime, reverse=True)[SHARED_KEEP - 1 :]
    for old in olds:
        old.unlink(missing_ok=True)


def cached_onnx(model: Any, example_shape: tuple[int, int, int, int], weights: Path) -> bytes:
    """The ONNX graph of `model` (loaded from `weights`): read from the cache, else exported and cached.

    The file is written under a temporary name in its folder and renamed, so a reader never sees half a
    file. A folder that cannot be written is skipped; with none writable the graph is just not cached."""
    import torch

    found = cached_graph(weights, example_shape)
    if found is not None:
        return found[1]
    name = f"{weights.stem}.{onnx_cache_key(weights, example_shape)}.onnx"
    data = export_onnx(model, torch.zeros(example_shape))
    dirs = onnx_cache_dirs(weights)
    for folder in dirs:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(folder / name) as tmp:
                tmp.write_bytes(data)
        except OSError as exc:
            log.debug("cannot cache the ONNX graph in %s: %s", folder, exc)
            continue
        _prune(folder, weights.stem, name, shared=folder != weights.parent)
        break
    return data


def cached_runner(
    weights: Path,
    example_shape: tuple[int, int, int, int],
    runtime: str | None = None,
    threads: int | None = None,
) -> LogitsRunner | None:
    """A runner on the cached graph of `weights`, without torch; None when there is no cached graph, the
    runtime asked for is torch or not installed, or the graph does not load (it is then removed, and
    `make_runner` exports it again)."""
    want = requested_runtime(runtime)
    if want == "torch":
        return None
    found = cached_graph(Path(weights), example_shape)
    if found is None:
        return None
    path, onnx = found
    n = runtime_threads(threads)
    makers: dict[str, Any] = {"openvino": _openvino_fn, "onnxruntime": _onnxruntime_fn}
    for name in AUTO_ORDER if want == "auto" else (want,):
        if importlib.util.find_spec(name) is None:
            continue
        try:
            return LogitsRunner(name, n, makers[name](onnx, n))
        except Exception as exc:  # noqa: BLE001 - a damaged cache file must not stop digitizing
            log.warning("cached graph %s does not load in %s (%s); exporting again", path, name, exc)
            path.unlink(missing_ok=True)
            return None
    return None


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


def _torch_fn(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return run


def make_runner(
    model: Any,
    example_shape: tuple[int, int, int, int],
    runtime: str | None = None,
    threads: int | None = None,
    weights: Path | None = None,
) -> LogitsRunner:
    """A runner for `model` on the requested runtime ("auto": ONNX Runtime, else OpenVINO), else eager torch.

    `example_shape` is one (B, 3, H, W) input the model accepts (for the export trace). The runner
    holds a snapshot of the weights: a model trained further needs a new runner. With `weights` (the
    file `model` was loaded from) the exported graph is cached (`cached_onnx`).
    """
    import torch

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
                if weights is None:
                    onnx = export_onnx(model, torch.zeros(example_shape))
                else:
                    onnx = cached_onnx(model, example_shape, Path(weights))
            return LogitsRunner(name, n, makers[name](onnx, n))
        except Exception as exc:  # a failed export or runtime must not stop digitizing
            log.warning("runtime %s failed (%s: %s); trying the next", name, type(exc).__name__, exc)
    torch.set_num_threads(n)
    return LogitsRunner("torch", n, _torch_fn(model))
