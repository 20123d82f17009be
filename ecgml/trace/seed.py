"""The seed baseline (issue 5, item 3a): one CNN regresses 10 s of lead II from the whole resized image.

Kept only to show, in the same table, what the trace model buys. Its design is the one the project
started from: whole image (here reduced to 256 x 320 grey) -> CNN -> 5000 samples of lead II, trained
with an SNR loss plus a smoothness term; at inference a 0.5-40 Hz band-pass, and the same prediction
is used for every lead. It ignores layout and geometry entirely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import butter, sosfiltfilt
from torch import nn

from ecgml.records import LEADS, Record, resample_signal
from ecgml.trace.net import load_state, read_weights, save_weights
from ecgml.trace.net_config import WEIGHTS_DIR

SEED_WEIGHTS = WEIGHTS_DIR / "seed_cnn.pt"
SEED_HW = (256, 320)
SEED_N = 5000
SEED_FS = 500
SMOOTH_WEIGHT = 0.05


@dataclass
class SeedConfig:
    arch: str = "seed"
    input_hw: tuple[int, int] = SEED_HW
    n_out: int = SEED_N
    coarse: int = 1250  # the head predicts this many samples, linearly upsampled to n_out
    channels: tuple[int, ...] = (16, 32, 64, 96, 128)
    smooth_weight: float = SMOOTH_WEIGHT

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeedConfig:
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["input_hw"] = tuple(d.get("input_hw", SEED_HW))
        d["channels"] = tuple(d.get("channels", (16, 32, 64, 96, 128)))
        return cls(**d)


class SeedCNN(nn.Module):
    """(B, 1, H, W) grey in [0, 255] -> (B, n_out) lead II in mV."""

    def __init__(self, cfg: SeedConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        cin = 1
        for c in cfg.channels:
            layers += [
                nn.Conv2d(cin, c, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.Conv2d(c, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
            ]
            cin = c
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d((2, 10))
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(cin * 20, 512), nn.ReLU(inplace=True), nn.Linear(512, cfg.coarse)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.head(self.pool(self.features(x / 127.5 - 1.0)))
        return F.interpolate(z[:, None], size=self.cfg.n_out, mode="linear", align_corners=False)[:, 0]


def bandpass(x: np.ndarray, fs: float, lo: float = 0.5, hi: float = 40.0) -> np.ndarray:
    sos = butter(2, [lo, hi], btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, x)


def seed_input(image: np.ndarray, hw: tuple[int, int] = SEED_HW) -> np.ndarray:
    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    return cv2.resize(g, hw[::-1], interpolation=cv2.INTER_AREA)


@dataclass
class SeedBaseline:
    """The seed approach as a digitizer-like object: `predict_record(image)` -> a 12-lead Record."""

    model: nn.Module
    cfg: SeedConfig
    name: str = "seed"
    meta: dict[str, Any] = field(default_factory=dict)

    @torch.no_grad()
    def predict_lead_ii(self, image: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(seed_input(image, self.cfg.input_hw)).float()[None, None]
        self.model.eval()
        y = self.model(x)[0].numpy().astype(np.float64)
        return bandpass(y, SEED_FS)

    def predict_record(self, image: np.ndarray, fs: int = SEED_FS, name: str = "") -> Record:
        ii = resample_signal(self.predict_lead_ii(image), fs * 10)
        sig = np.repeat(np.nan_to_num(ii)[:, None], len(LEADS), axis=1).astype(np.float32)
        return Record(sig, int(fs), name, {"model": "seed"})


def save_seed(
    model: nn.Module, cfg: SeedConfig, path: str | Path, meta: dict[str, Any] | None = None
) -> Path:
    return save_weights(model, cfg, path, meta)


def load_seed(path: str | Path | None = None) -> SeedBaseline:
    """The shipped seed baseline (ecgml/weights/seed_cnn.pt) unless `path` names other weights."""
    path = Path(path) if path is not None else SEED_WEIGHTS
    state, info = read_weights(path, "seed baseline")
    cfg = SeedConfig.from_dict(info["config"])
    model = load_state(SeedCNN(cfg), state, path, "seed baseline")
    return SeedBaseline(model, cfg, meta=info.get("meta", {}))
