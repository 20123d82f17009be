"""The trace U-Net in torch: the network, its training-time soft-argmax, and saving and loading weights.

Only training, the ONNX export and the eager fallback need it; `ecgml.trace.model` decodes its output with
numpy, so a digitizer running a cached ONNX graph never imports torch (about 1.5 s of start-up).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ecgml.errors import EcgmlError
from ecgml.trace.net_config import DEFAULT_WEIGHTS, TraceModelConfig


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, dilation: int = 1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TraceUNet(nn.Module):
    """(B, 3, H, W) uint8-range RGB strips -> (B, H, W * x_up) logits over y for every output column.

    The input is folded space-to-depth by `s2d` (lossless: neighbouring pixels become channels) so the
    network runs at a coarser raster, and the head unfolds its output back (sub-pixel convolution) to
    full height and `x_up` times the width: most of the cost of a full-resolution U-Net is avoided.
    """

    def __init__(self, cfg: TraceModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        sy, sx = cfg.s2d
        self.enc = nn.ModuleList()
        cin = 3 * sy * sx + 1  # folded RGB + signed distance from the strip centre
        for i, c in enumerate(ch):
            self.enc.append(_Block(cin, c, dilation=2 if i == len(ch) - 1 else 1))
            cin = c
        self.dec = nn.ModuleList()
        for i in range(len(ch) - 2, -1, -1):
            self.dec.append(_Block(ch[i + 1] + ch[i], ch[i]))
        self.head = nn.Conv2d(ch[0], sy * sx * cfg.x_up, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        sy, sx = self.cfg.s2d
        hs, ws = h // sy, w // sx
        x = x / 127.5 - 1.0
        # (B, 3, hs*sy, ws*sx) -> (B, 3*sy*sx, hs, ws)
        x = x.view(b, 3, hs, sy, ws, sx).permute(0, 1, 3, 5, 2, 4).reshape(b, 3 * sy * sx, hs, ws)
        yy = (
            torch.linspace(-1.0, 1.0, hs, device=x.device, dtype=x.dtype)
            .view(1, 1, hs, 1)
            .expand(b, 1, hs, ws)
        )
        x = torch.cat([x, yy], dim=1)
        skips = []
        for i, blk in enumerate(self.enc):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = blk(x)
            skips.append(x)
        for j, blk in enumerate(self.dec):
            skip = skips[-2 - j]
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = blk(torch.cat([x, skip], dim=1))
        out = self.head(x)  # (B, sy*sx*x_up, hs, ws): channel = (dy, dx, k)
        out = out.view(b, sy, sx * self.cfg.x_up, hs, ws).permute(0, 3, 1, 4, 2)
        return out.reshape(b, h, w * self.cfg.x_up)


def soft_argmax(logits: torch.Tensor) -> torch.Tensor:
    """Expected y (px, centre convention i + 0.5) of each column of (B, H, W) logits; differentiable."""
    p = torch.softmax(logits, dim=1)
    pos = torch.arange(logits.shape[1], device=logits.device, dtype=logits.dtype).view(1, -1, 1) + 0.5
    return (p * pos).sum(dim=1)


def build_model(cfg: TraceModelConfig) -> nn.Module:
    if cfg.arch != "unet":
        raise ValueError(f"unknown trace architecture {cfg.arch!r}")
    return TraceUNet(cfg)


class _Config(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def save_weights(
    model: nn.Module, cfg: _Config, path: str | Path, meta: dict[str, Any] | None = None
) -> Path:
    """A plain state_dict at `path` and its config (plus `meta`) at `path` with suffix .json."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps({"config": cfg.to_dict(), "meta": meta or {}}, indent=2))
    return path


def read_weights(path: Path, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A weights file and the .json config beside it, as (state_dict, {"config", "meta"}); clear errors."""
    cfg_path = path.with_suffix(".json")
    if not path.exists() or not cfg_path.exists():
        raise EcgmlError(path, f"{what} weights or their .json config are missing")
    info = json.loads(cfg_path.read_text())
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise EcgmlError(path, f"cannot load {what} weights: {exc}") from exc
    return state, info


def load_state(model: nn.Module, state: dict[str, Any], path: Path, what: str) -> nn.Module:
    try:
        model.load_state_dict(state)
    except (RuntimeError, ValueError) as exc:
        raise EcgmlError(path, f"cannot load {what} weights: {exc}") from exc
    return model.eval()


def load_model(path: str | Path | None = None) -> tuple[nn.Module, TraceModelConfig, dict[str, Any]]:
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    state, info = read_weights(path, "trace model")
    cfg = TraceModelConfig.from_dict(info["config"])
    model = load_state(build_model(cfg), state, path, "trace model")
    return model, cfg, info.get("meta", {})
