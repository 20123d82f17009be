"""Images that are not ECG pages, drawn from a seed: what the digitizer must refuse (issue 16).

Kinds: `blank` (an empty sheet, a little shading and noise), `lined` (ruled notebook paper with a
margin), `graph` (ECG-like grid paper with nothing plotted on it), `shapes` (random circles, boxes,
polygons and strokes), `text` (a page of printed text, photographed: tilted, shaded, blurred, JPEG) and
`texture` (a smooth colour photo-like field). Each is an RGB uint8 image of a Letter-like size.
"""

from __future__ import annotations

import cv2
import numpy as np

from ecgml.render.capture import jpeg
from ecgml.render.effects import smooth_noise

KINDS = ("blank", "lined", "graph", "shapes", "text", "texture")
WORDS = (
    "the", "patient", "was", "seen", "in", "clinic", "today", "history", "of", "present", "illness",
    "chest", "pain", "shortness", "of", "breath", "medication", "list", "allergies", "none", "known",
    "follow", "up", "in", "two", "weeks", "blood", "pressure", "weight", "plan",
)  # fmt: skip


def _paper(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    tone = rng.uniform(225, 252)
    shade = smooth_noise(rng, (h, w), max(h, w) / 3) * rng.uniform(2, 8)
    img = np.clip(tone + shade, 0, 255)[..., None] * np.array([1.0, 0.995, 0.98])
    return np.ascontiguousarray(img.astype(np.uint8))


def _finish(rng: np.random.Generator, img: np.ndarray, photo: bool) -> np.ndarray:
    """Noise and JPEG; a photo is also warped by a small random homography and blurred."""
    h, w = img.shape[:2]
    if photo:
        d = 0.06 * min(h, w)
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
        dst = src + rng.uniform(-d, d, (4, 2)).astype(np.float32)
        hm = cv2.getPerspectiveTransform(src, dst)
        img = cv2.warpPerspective(img, hm, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=(90, 80, 70))
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.6, 1.5))
    noisy = img.astype(np.float32) + rng.normal(0, rng.uniform(1, 4), img.shape).astype(np.float32)
    out = np.clip(noisy, 0, 255).astype(np.uint8)
    return jpeg(out, int(rng.integers(60, 95)))


def _lined(rng: np.random.Generator, img: np.ndarray) -> None:
    h, w = img.shape[:2]
    step = rng.uniform(0.025, 0.04) * h
    blue = (float(rng.uniform(120, 180)), float(rng.uniform(150, 200)), 230.0)
    for y in np.arange(rng.uniform(0.08, 0.15) * h, h, step):
        cv2.line(img, (0, int(y)), (w, int(y)), blue, int(rng.integers(1, 3)), cv2.LINE_AA)
    x = int(rng.uniform(0.08, 0.14) * w)
    cv2.line(img, (x, 0), (x, h), (230.0, 90.0, 90.0), 2, cv2.LINE_AA)


def _graph(rng: np.random.Generator, img: np.ndarray) -> None:
    h, w = img.shape[:2]
    mm = w / rng.uniform(200, 280)
    minor, major = (250.0, 200.0, 195.0), (240.0, 110.0, 100.0)
    for k, x in enumerate(np.arange(0, w, mm)):
        cv2.line(img, (int(x), 0), (int(x), h), major if k % 5 == 0 else minor, 1)
    for k, y in enumerate(np.arange(0, h, mm)):
        cv2.line(img, (0, int(y)), (w, int(y)), major if k % 5 == 0 else minor, 1)


def _shapes(rng: np.random.Generator, img: np.ndarray) -> None:
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(15, 60))):
        colour = tuple(float(c) for c in rng.uniform(0, 230, 3))
        kind = rng.integers(0, 4)
        p = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        t = int(rng.choice([-1, 2, 4, 8]))
        if kind == 0:
            cv2.circle(img, p, int(rng.uniform(0.01, 0.2) * w), colour, t, cv2.LINE_AA)
        elif kind == 1:
            q = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            cv2.rectangle(img, p, q, colour, t)
        elif kind == 2:
            pts = rng.uniform(0, 1, (int(rng.integers(3, 7)), 2)) * (w, h)
            cv2.fillPoly(img, [pts.astype(np.int32)], colour, cv2.LINE_AA)
        else:
            pts = np.cumsum(rng.normal(0, 0.03 * w, (int(rng.integers(5, 40)), 2)), axis=0) + p
            cv2.polylines(img, [pts.astype(np.int32)], False, colour, max(1, abs(t)), cv2.LINE_AA)


def _text(rng: np.random.Generator, img: np.ndarray) -> None:
    h, w = img.shape[:2]
    scale = rng.uniform(0.7, 1.3) * h / 1700
    line = int(36 * scale * rng.uniform(1.1, 1.5))
    font = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_DUPLEX]))
    left = int(0.08 * w)
    for y in range(int(0.08 * h), int(0.93 * h), line):
        words = [str(rng.choice(WORDS)) for _ in range(int(rng.integers(4, 16)))]
        cv2.putText(img, " ".join(words), (left, y), font, scale, (20.0, 20.0, 25.0), max(1, int(2 * scale)))


def non_ecg_image(kind: str, seed: int, size: tuple[int, int] = (2200, 1700)) -> np.ndarray:
    """One image of `kind` (see KINDS) as (H, W, 3) RGB uint8, the same for the same seed."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    img = _paper(rng, size)
    if kind == "texture":
        w, h = size
        img = np.stack([smooth_noise(rng, (h, w), rng.uniform(40, 300)) for _ in range(3)], axis=-1)
        img = np.clip(128 + 45 * img, 0, 255).astype(np.uint8)
    elif kind != "blank":
        {"lined": _lined, "graph": _graph, "shapes": _shapes, "text": _text}[kind](rng, img)
    return _finish(rng, img, photo=kind in ("text", "texture") or rng.random() < 0.3)
