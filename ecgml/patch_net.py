"""The small fully convolutional patch classifier behind the printed-text readers (lead labels, footers).

Both readers ask one question of every position of a rectified page: which of a few printed tokens is
centred here, if any. Three conv blocks bring the ink to 1/8 resolution; one conv as large as the token's
patch then gives the class logits, so a whole band of the page is classified in one pass. The readers
differ only in the patch, the resolution, the hidden width and the classes; building, loading and
running the network is the same and lives here once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def patch_net(patch_px: tuple[int, int], hidden: int, n_classes: int) -> Any:
    """A torch network for patches of (height, width) px (multiples of 8) -> `n_classes` logits."""
    import torch
    from torch import nn

    class PatchNet(nn.Module):
        """conv trunk to 1/8 resolution, then one conv spanning the patch -> class logits."""

        def __init__(self) -> None:
            super().__init__()

            def block(i: int, o: int) -> nn.Sequential:
                return nn.Sequential(
                    nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)
                )

            self.trunk = nn.Sequential(block(1, 8), block(8, 16), block(16, 24))
            kh, kw = patch_px[0] // 8, patch_px[1] // 8
            head = (nn.Conv2d(24, hidden, (kh, kw)), nn.ReLU(), nn.Conv2d(hidden, n_classes, 1))
            self.head = nn.Sequential(*head)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.trunk(x))

    return PatchNet()


def load_net(path: Path, net: Any) -> Any:
    """`net` with the weights of `path`, in eval mode (training, evaluation and the first export)."""
    import torch

    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    net.eval()
    return net


def load_runner(path: Path, example_shape: tuple[int, int, int, int], build: Any) -> Any:
    """The reader of `path` as a runner of ink -> class logits, or None when this install has no such
    weights. Its exported graph is cached like the trace model's (`ecgml.trace.runtime`): once cached it
    runs in ONNX Runtime without importing torch; the first run exports it (torch, about a second).
    `build`: makes the untrained network."""
    from ecgml.trace.runtime import cached_runner, make_runner

    if not path.exists():
        return None
    runner = cached_runner(path, example_shape)
    if runner is not None:
        return runner
    return make_runner(load_net(path, build()), example_shape, weights=path)


def class_maps(net: Any, ink: np.ndarray) -> np.ndarray:
    """(classes, H', W') probabilities, one every 8 px, for ink (H, W) (1 = black).

    `net`: a runner (`load_runner`) or a torch network. Output (i, j) is the patch whose top-left corner
    is at (8 i, 8 j) px."""
    x = np.ascontiguousarray(ink, dtype=np.float32)[None, None]
    if hasattr(net, "runtime"):
        logits = np.asarray(net(x), np.float32)[0]
    else:
        import torch

        with torch.inference_mode():
            logits = net(torch.from_numpy(x))[0].numpy()
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    return np.asarray(e / e.sum(axis=0, keepdims=True))
