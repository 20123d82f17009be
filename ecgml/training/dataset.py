"""Training data for the trace model: rendered pages -> canonical pages + per-column targets -> row strips.

A rendered page comes with exact truth (image px of every plotted sample and the page map). It is
warped to the canonical page through the map, optionally through a slightly perturbed map so the model
learns to live with geometry error; the targets are the truth samples pushed through the *same* map
(image px -> paper mm by the map used for the warp), so they follow whatever the warp did. Pages are
cached to disk as .npy (canonical RGB page + per-row target y per output sub-column) and strips are
cut from them at random with photometric augmentation and target-following flips / vertical jitter.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ecgml.geometry.canonical import canonical_page
from ecgml.layout import PageLayout
from ecgml.page import PageMap
from ecgml.trace.model import TraceModelConfig, cut_strip

CROP_W = 512  # training strip width in input px (a multiple of the model's pooling factor)
JITTER_MM = 1.5  # std of the vertical offset of a training strip from the true baseline
MAX_JITTER_MM = 4.0
STRETCH_MAX = 1.5  # largest vertical stretch of a strip (taller complexes than the records hold)


@dataclass
class TruthPage:
    """An image with exact truth: where every plotted sample of every layout cell landed (image px)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    page_map: PageMap  # paper mm -> image px
    layout: PageLayout
    cell: np.ndarray  # (N,) index into layout.cells
    xy: np.ndarray  # (N, 2) image px (x, y), centre convention of ecgml.page
    visible: np.ndarray  # (N,) bool
    kind: str = ""
    name: str = ""


@dataclass
class PageTargets:
    """A canonical page at the model's raster and, per layout row, the target y (page px) per sub-column."""

    image: np.ndarray  # (H, W, 3) uint8
    baselines_mm: np.ndarray  # (R,)
    target_px: np.ndarray  # (R, W * x_up) float32 page px (centre convention), NaN where no target


def perturb_map(page_map: PageMap, rng: np.random.Generator, scale: float = 1.0) -> PageMap:
    """The map after a small random paper-space similarity (shift ~0.5 mm, turn ~0.2°, scale ~0.3 %).

    Warping through it mimics the residual error of a geometry stage; targets computed through it
    stay exact because they go through the same map.
    """
    w, h = page_map.paper_mm
    ang = np.deg2rad(rng.normal(0, 0.2 * scale))
    s = 1.0 + rng.normal(0, 0.003 * scale)
    tx, ty = rng.normal(0, 0.5 * scale, 2)
    c, si = np.cos(ang) * s, np.sin(ang) * s
    # rotate/scale about the page centre, then shift (all in mm)
    a = np.array([[c, -si, 0], [si, c, 0], [0, 0, 1.0]])
    centre = np.array([[1, 0, w / 2], [0, 1, h / 2], [0, 0, 1.0]])
    back = np.array([[1, 0, -w / 2 + tx], [0, 1, -h / 2 + ty], [0, 0, 1.0]])
    m = centre @ a @ back
    return PageMap(
        page_map.homography @ m,
        page_map.image_size,
        page_map.paper_mm,
        page_map.residual,
        page_map.residual_step_mm,
    )


def page_targets(truth: TruthPage, used_map: PageMap, cfg: TraceModelConfig) -> PageTargets:
    """Warp `truth.image` through `used_map` onto the model's canonical raster and build the row targets."""
    canon = canonical_page(truth.image, used_map, cfg.px_per_mm)
    img = canon.image if canon.image.ndim == 3 else np.repeat(canon.image[..., None], 3, axis=2)
    w_out = img.shape[1] * cfg.x_up
    xs = (np.arange(w_out) + 0.5) / (cfg.px_per_mm[0] * cfg.x_up)
    mm = used_map.px_to_mm(truth.xy.astype(np.float64))
    rows = sorted({c.row for c in truth.layout.cells})
    base = {c.row: c.baseline_mm for c in truth.layout.cells}
    target = np.full((len(rows), w_out), np.nan, np.float32)
    for k, cell in enumerate(truth.layout.cells):
        sel = truth.cell == k
        if sel.sum() < 2:
            continue
        x, y, vis = mm[sel, 0], mm[sel, 1], truth.visible[sel].astype(np.float64)
        order = np.argsort(x, kind="stable")
        x, y, vis = x[order], y[order], vis[order]
        cols = (xs >= x[0]) & (xs <= x[-1])
        yi = np.interp(xs[cols], x, y) * cfg.px_per_mm[1]
        vi = np.interp(xs[cols], x, vis)
        yi[vi < 0.999] = np.nan
        r = rows.index(cell.row)
        target[r, cols] = yi
    return PageTargets(img, np.array([base[r] for r in rows], np.float64), target)


# ---------------------------------------------------------------- on-disk cache


def write_cached(folder: Path, key: str, pt: PageTargets, meta: dict[str, Any]) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{key}.img.npy", pt.image)
    np.save(folder / f"{key}.y.npy", pt.target_px)
    entry = {"key": key, "baselines_mm": [float(b) for b in pt.baselines_mm], **meta}
    (folder / f"{key}.json").write_text(json.dumps(entry))
    return entry


def read_index(folder: Path) -> list[dict[str, Any]]:
    """Entries of every complete cached page (its .json is written last)."""
    if not folder.exists():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


# ---------------------------------------------------------------- strip sampling + augmentation


def photometric(strength: float = 1.0) -> Callable[[np.ndarray, int], np.ndarray]:
    """Albumentations photometric effects only (the targets do not move); seeded per call."""
    import albumentations as A

    t = A.Compose(
        [
            A.RandomBrightnessContrast(0.25 * strength, 0.3 * strength, p=0.7),
            A.RandomGamma((70, 150), p=0.3),
            A.OneOf(
                [A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.2, 1.1)), A.MotionBlur(blur_limit=(3, 5))],
                p=0.35,
            ),
            A.GaussNoise(std_range=(0.01, 0.06), p=0.4),
            A.ImageCompression(quality_range=(30, 95), p=0.4),
            A.OneOf([A.HueSaturationValue(15, 30, 20), A.RGBShift(20, 20, 20), A.ChannelShuffle()], p=0.4),
            A.ToGray(p=0.15),
            A.CLAHE(p=0.05),
        ]
    )

    def apply(img: np.ndarray, seed: int) -> np.ndarray:
        t.set_random_seed(seed)
        return t(image=img)["image"]

    return apply


def stretch_strip(strip: np.ndarray, y: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """The strip stretched vertically by `factor` about its centre, and its targets moved with it.

    Records rarely hold complexes beyond ±2.5 mV, yet real pages do (and they cost the most): stretching
    about the row's baseline makes them without re-rendering. Targets leaving the strip become NaN.
    """
    h, w = strip.shape[:2]
    hs = int(round(h * factor))
    big = cv2.resize(strip, (w, hs), interpolation=cv2.INTER_LINEAR)
    top = (hs - h) // 2
    out = np.ascontiguousarray(big[top : top + h])
    # centre convention: pixel i covers [i, i+1), so a target at y maps to y * hs / h - top
    ys = y * (hs / h) - top
    ys = np.where((ys > 0.5) & (ys < h - 0.5), ys, np.nan).astype(np.float32)
    return out, ys


class StripSampler:
    """Random training strips (image, target y per sub-column, valid mask) from cached pages."""

    def __init__(
        self,
        folder: Path,
        entries: list[dict[str, Any]],
        cfg: TraceModelConfig,
        crop_w: int = CROP_W,
        augment: bool = True,
        stretch_p: float = 0.0,
    ) -> None:
        if not entries:
            raise ValueError(f"no cached pages in {folder}")
        self.folder, self.entries, self.cfg, self.crop_w, self.augment = folder, entries, cfg, crop_w, augment
        self.stretch_p = stretch_p
        self._aug = photometric() if augment else None
        self._mm: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Picklable for spawned data workers: the augmenter and open memory maps are rebuilt there."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_aug", "_mm")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._aug = photometric() if self.augment else None
        self._mm = {}

    def _load(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        if key not in self._mm:
            if len(self._mm) > 64:
                self._mm.clear()
            self._mm[key] = (
                np.load(self.folder / f"{key}.img.npy", mmap_mode="r"),
                np.load(self.folder / f"{key}.y.npy"),
            )
        return self._mm[key]

    def strip(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
        e = self.entries[rng.integers(len(self.entries))]
        img, tgt = self._load(e["key"])
        r = int(rng.integers(len(e["baselines_mm"])))
        row = tgt[r]
        ok = np.flatnonzero(np.isfinite(row)) // cfg.x_up
        w = img.shape[1]
        cw = min(self.crop_w, w)
        if ok.size:
            centre = int(rng.choice(ok))
            x0 = int(np.clip(centre - rng.integers(cw), 0, w - cw))
        else:
            x0 = int(rng.integers(0, w - cw + 1))
        jitter = np.clip(rng.normal(0, JITTER_MM), -MAX_JITTER_MM, MAX_JITTER_MM) if self.augment else 0.0
        top = int(round((e["baselines_mm"][r] + jitter) * cfg.px_per_mm[1] - cfg.strip_px / 2))
        h = cfg.strip_px
        s = cut_strip(np.asarray(img[:, x0 : x0 + cw]), top, h, cw)
        y = row[x0 * cfg.x_up : (x0 + cw) * cfg.x_up] - top
        y = np.where((y > 0.5) & (y < h - 0.5), y, np.nan).astype(np.float32)
        if self.augment:
            if rng.random() < self.stretch_p:
                s, y = stretch_strip(s, y, float(rng.uniform(1.0, STRETCH_MAX)))
            if rng.random() < 0.5:
                s, y = s[:, ::-1], y[::-1]
            if rng.random() < 0.2:
                s, y = s[::-1], h - y
            assert self._aug is not None
            s = self._aug(np.ascontiguousarray(s), int(rng.integers(2**31)))
        return np.ascontiguousarray(s), np.ascontiguousarray(y)

    def batch(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = zip(*(self.strip(rng) for _ in range(n)), strict=True)
        return np.stack(xs), np.stack(ys)

    def step_strips(self, seed: int, step: int, first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Strips first..first+n-1 of training step `step`: strip j drawn from an RNG seeded by
        (seed, step, j), so a step's strips are the same whichever process or worker draws them."""
        xs, ys = zip(
            *(self.strip(np.random.default_rng([seed, step, j])) for j in range(first, first + n)),
            strict=True,
        )
        return np.stack(xs), np.stack(ys)


def iter_batches(
    sampler: StripSampler, rng: np.random.Generator, n: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    while True:
        yield sampler.batch(rng, n)
