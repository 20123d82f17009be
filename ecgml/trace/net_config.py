"""What fixes the trace U-Net and the strips it reads (saved beside its weights), and where the shipped
weights are: plain data, read without torch, so inference from a cached ONNX graph never imports it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgml.errors import EcgmlError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "trace_unet.pt"


@dataclass
class TraceModelConfig:
    """Everything that fixes the network and the strips it reads; saved next to the weights."""

    arch: str = "unet"
    px_per_mm: tuple[float, float] = (8.0, 8.0)  # canonical raster the model reads
    # strip height, centred on the row baseline: ±32 mm = ±3.2 mV at 10 mm/mV. 48 mm clipped the large
    # precordial QRS complexes; 80 mm let neighbouring rows in (BENCHMARKS.md, "strip height"), and so did
    # 100 mm after a 400-step fine-tune from 64 mm (round 6: -0.34 dB, "Trace model (what ships)").
    strip_mm: float = 64.0
    channels: tuple[int, ...] = (16, 24, 32, 48, 64)  # one per level; len-1 poolings
    s2d: tuple[int, int] = (2, 2)  # (y, x) space-to-depth of the input; the head shuffles back
    x_up: int = 2  # output sub-columns per input column
    sigma_px: float = 1.0  # width of the Gaussian target over y (CoordLoss)
    l1_weight: float = 1.0  # weight of the soft-argmax L1 term (in mm)

    @property
    def pool(self) -> int:
        """Total downsampling factor (the strip's height and width are padded to a multiple of it)."""
        return 2 ** (len(self.channels) - 1) * max(self.s2d)

    @property
    def strip_px(self) -> int:
        """Strip height in px, rounded up to a multiple of the total pooling factor."""
        return int(np.ceil(self.strip_mm * self.px_per_mm[1] / self.pool) * self.pool)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TraceModelConfig:
        d = dict(d)
        d["px_per_mm"] = tuple(d["px_per_mm"])
        d["channels"] = tuple(d["channels"])
        d["s2d"] = tuple(d.get("s2d", (1, 1)))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def read_weights_info(path: Path) -> dict[str, Any]:
    """The .json beside a weights file ({"config", "meta"}), without loading the weights."""
    cfg_path = path.with_suffix(".json")
    try:
        return dict(json.loads(cfg_path.read_text()))
    except (OSError, ValueError) as exc:
        raise EcgmlError(cfg_path, f"cannot read the weights' config: {exc}") from exc
