"""Where training runs: `--device auto|cpu|cuda|cuda:N|mps`, and the precision that device trains in.

`auto` takes a visible GPU (CUDA, else Apple MPS) and falls back to the CPU. On CUDA the forward pass
runs under autocast in bf16 where the GPU supports it (Ampere and later: no loss scaling needed), else
fp16 with a gradient scaler; the CPU and MPS train in fp32. Weights are saved in fp32 on the CPU
whatever the device, so a GPU-trained checkpoint loads on a CPU-only install.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ecgml.errors import EcgmlError

DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def found_devices() -> str:
    """What this install can see, for error messages and the run's log."""
    cuda = torch.version.cuda
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    build = f"torch {torch.__version__} built {'with CUDA ' + cuda if cuda else 'without CUDA'}"
    return f"{build}, {n} CUDA device(s){', MPS' if has_mps else ''}, CPU"


def resolve_device(spec: str, local_rank: int | None = None) -> torch.device:
    """The torch device for `spec`; a GPU asked for and not found is one clear error naming what was.

    Under `torchrun` on CUDA, `auto`/`cuda` mean this process's GPU (`cuda:LOCAL_RANK`).
    """
    spec = (spec or "auto").strip().lower()
    if not DEVICE_RE.match(spec):
        raise EcgmlError(None, f"--device {spec!r}: expected auto, cpu, cuda, cuda:N or mps")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if spec == "auto":
        if torch.cuda.is_available():
            spec = "cuda"
        elif has_mps:
            return torch.device("mps")
        else:
            return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not has_mps:
            raise EcgmlError(None, f"--device mps: no Apple GPU visible (found: {found_devices()})")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise EcgmlError(None, f"--device {spec}: no CUDA GPU visible (found: {found_devices()})")
    index = int(spec.split(":")[1]) if ":" in spec else (local_rank or 0)
    if index >= torch.cuda.device_count():
        raise EcgmlError(
            None, f"--device cuda:{index}: only {torch.cuda.device_count()} CUDA device(s) visible"
        )
    return torch.device("cuda", index)


def precision_for(device: torch.device) -> str:
    """bf16 on CUDA GPUs that support it, fp16 (with a gradient scaler) on older ones, else fp32."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


@dataclass(frozen=True)
class Placement:
    """A device and its training precision: autocast context, gradient scaler, host-memory pinning."""

    device: torch.device
    precision: str = "fp32"

    @classmethod
    def choose(cls, spec: str, local_rank: int | None = None) -> Placement:
        device = resolve_device(spec, local_rank)
        return cls(device, precision_for(device))

    @property
    def pin_memory(self) -> bool:
        return self.device.type == "cuda"

    @property
    def channels_last(self) -> bool:
        """NHWC activations: what tensor cores want; on the CPU it only costs a copy."""
        return self.device.type == "cuda"

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.precision == "fp32":
            yield
            return
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.autocast(self.device.type, dtype=dtype):
            yield

    def scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, active only for fp16 (bf16 has fp32's range and needs none)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def describe(self) -> dict[str, str]:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else self.device.type
        return {"device": str(self.device), "device_name": name, "precision": self.precision}


def peak_memory(device: torch.device) -> dict[str, float]:
    """This process's peak resident memory (MB) and, on CUDA, the peak tensor memory on the GPU (MB)."""
    import resource

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out
