"""The learned footer reader: the paper speed and gain a page prints ("25 mm/s", "Chest: 5 mm/mV").

Carts print their settings in a footer or header line: "25mm/s 10mm/mV 0.05-150 Hz", "Speed: 50 mm/sec",
"Limb: 10 mm/mV  Chest: 5 mm/mV". A small fully convolutional network (`FooterNet`) looks at the page
above its first trace row and below its last (where those lines are printed), rectified, grey, at
FOOT_PPM px/mm, and gives every STRIDE_MM the probability that a speed or gain field of each standard
value is centred there, or none. It is trained on the renderer's footer and header fields in every
font, size and cart template it draws (`ecgml.training.footer_reader`): the fields' value-and-unit
tokens are the positives; the rest of the text, the traces, labels and grid are "none".

The page's reading is the surest field of each kind; `ecgml.page_calibration` decides whether to use it.
No weights ship yet: a model ships only when it reads no wrong value on any page of the page-level check
(`benchmarks/footer_check.py`: the digitizer's own geometry and bands, on held-out renderer pages, ecg-plot,
wfdb, Kaggle-type and outside pages), since one confident wrong gain makes a whole page of wrong mV. None
has: the first model (260 pages, 800 steps) read settings pages do not print at >= 0.9; session 30's
(550 pages with ~6x the negatives, 1100 steps, then 300 steps more with 4072 negatives mined on whole
bands) still read a wrong value on 15 of 286 pages - a "5 mm/mV" on wfdb pages that print "I/mV" axis
labels, a "12.5 mm/s" on Kaggle pages that print "25mm/s", a false "5" beside a true "10 mm/mV" read
as the mixed setting - while reading the printed gain right on only 44 of 241 pages (BENCHMARKS.md,
session 30 footer36). So the digitizer reads speed from the pulse and beats (`load_footer_reader`
returns None without weights).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgml.layout import PageLayout
from ecgml.patch_net import class_maps, load_runner, patch_net
from ecgml.patch_net import load_net as load_patch_net

FOOT_PPM = 6.0  # px per mm of the page the reader sees (a 6.5 pt footer's digits are ~10 px tall)
PATCH_MM = (32.0, 8.0)  # (w, h) the network sees around a field's centre
STRIDE_MM = 8 / FOOT_PPM  # one output every 8 px
SPEED_VALUES = (25.0, 50.0, 12.5)  # mm/s
GAIN_VALUES = (5.0, 10.0, 20.0)  # mm/mV
CLASSES = ("25 mm/s", "50 mm/s", "12.5 mm/s", "5 mm/mV", "10 mm/mV", "20 mm/mV", "none")
WEIGHTS = Path(__file__).resolve().parent / "weights" / "footer_reader.pt"
ROW_CLEAR_MM = 4.0  # the bands read start this far above the first baseline and below the last
MIN_BAND_MM = 6.0  # a band thinner than this has no room for a printed line
READ_AT = 0.9  # a field read with this probability counts as printed
OTHER_AT = 0.5  # ... when no other value of its kind reaches this
# a field's text: a standard value, then its unit ("25mm/s", "25 mm/sec", "10 mm/mV")
FIELD = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*mm/(sec|s|mV)\b")


def field_class(value: str, unit: str) -> int | None:
    """The class of a printed value and unit ("25", "s") -> 0, or None when it is no standard one."""
    v = float(value)
    vals, first = (SPEED_VALUES, 0) if unit in ("s", "sec") else (GAIN_VALUES, len(SPEED_VALUES))
    return first + vals.index(v) if v in vals else None


def _net() -> Any:
    """The untrained footer network (`ecgml.patch_net`)."""
    return patch_net((EXAMPLE_SHAPE[2], EXAMPLE_SHAPE[3]), 48, len(CLASSES))


EXAMPLE_SHAPE = (1, 1, int(PATCH_MM[1] * FOOT_PPM), int(PATCH_MM[0] * FOOT_PPM))


@functools.lru_cache(maxsize=2)
def load_footer_reader(path: str | None = None) -> Any:
    """The shipped reader as a runner of (1, 1, H, W) ink -> class logits, or None without weights
    (`ecgml.patch_net.load_runner`)."""
    return load_runner(Path(path) if path else WEIGHTS, EXAMPLE_SHAPE, _net)


def load_net(path: Path) -> Any:
    """The torch network of `path` in eval mode (training and evaluation)."""
    return load_patch_net(path, _net())


@dataclass
class FooterReading:
    """The surest probability of each class on the page's text bands, and what they say."""

    best: dict[str, float] = field(default_factory=dict)  # class -> highest probability on the page
    speed_mm_s: float | None = None  # a speed printed (read surely, no other speed near it)
    gain_mm_mv: float | None = None  # a gain printed (limb gain when two are: 10 and 5 = mixed)
    chest_gain_mm_mv: float = 0.0  # > 0: a second, chest gain printed (10 and 5 mm/mV)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "best": {k: round(v, 3) for k, v in self.best.items()},
            "speed_mm_s": self.speed_mm_s,
            "gain_mm_mv": self.gain_mm_mv,
            "chest_gain_mm_mv": self.chest_gain_mm_mv,
            "seconds": round(self.seconds, 3),
        }


def text_bands(layout: PageLayout, paper_h_mm: float) -> list[tuple[float, float]]:
    """(y0, y1) mm of the page above the first trace row and below the last, where carts print their
    settings (each clear of the rows' baselines by ROW_CLEAR_MM)."""
    base = [c.baseline_mm for c in layout.cells]
    if not base:
        return [(0.0, paper_h_mm)]
    out = []
    top, bottom = min(base) - ROW_CLEAR_MM, max(base) + ROW_CLEAR_MM
    if top >= MIN_BAND_MM:
        out.append((0.0, top))
    if paper_h_mm - bottom >= MIN_BAND_MM:
        out.append((bottom, paper_h_mm))
    return out


def decide(best: dict[str, float]) -> tuple[float | None, float | None, float]:
    """(speed, gain, chest gain) the surest fields say: one value of a kind read at READ_AT with no other
    value of that kind at OTHER_AT; two gains, 10 and 5 mm/mV, are the mixed setting (limb, chest)."""
    speeds = [(v, best.get(c, 0.0)) for v, c in zip(SPEED_VALUES, CLASSES[:3], strict=True)]
    gains = [(v, best.get(c, 0.0)) for v, c in zip(GAIN_VALUES, CLASSES[3:6], strict=True)]
    sure_s = [v for v, p in speeds if p >= READ_AT]
    near_s = [v for v, p in speeds if p >= OTHER_AT]
    speed = sure_s[0] if len(sure_s) == 1 and len(near_s) == 1 else None
    sure_g = sorted(v for v, p in gains if p >= READ_AT)
    near_g = sorted(v for v, p in gains if p >= OTHER_AT)
    if len(sure_g) == 1 and len(near_g) == 1:
        return speed, sure_g[0], 0.0
    if sure_g == [5.0, 10.0] and near_g == [5.0, 10.0]:
        return speed, 10.0, 5.0
    return speed, None, 0.0


def band_inks(page_ink: np.ndarray, layout: PageLayout) -> list[np.ndarray]:
    """The page's text bands (`text_bands`) cut from its ink at FOOT_PPM, half a patch more each side so
    that a line at a band's edge is centred in some patch; bands too small for a patch are left out."""
    ph = int(PATCH_MM[1] * FOOT_PPM)
    out = []
    for y0, y1 in text_bands(layout, page_ink.shape[0] / FOOT_PPM):
        a = max(0, int(y0 * FOOT_PPM) - ph // 2)
        b = min(page_ink.shape[0], int(y1 * FOOT_PPM) + ph // 2)
        if b - a < ph or page_ink.shape[1] < int(PATCH_MM[0] * FOOT_PPM):
            continue
        out.append(page_ink[a:b])
    return out


def best_fields(bands: list[np.ndarray], net: Any) -> dict[str, float]:
    """The highest probability of each field class anywhere on `bands` (`band_inks`)."""
    best = dict.fromkeys(CLASSES[:-1], 0.0)
    for band in bands:
        prob = class_maps(net, band)
        for k, c in enumerate(CLASSES[:-1]):
            best[c] = max(best[c], float(prob[k].max()))
    return best


def read_footer(page_ink: np.ndarray, layout: PageLayout, net: Any = None) -> FooterReading | None:
    """The speed and gain printed on the page: `page_ink` is the rectified page's ink (1 = black) at
    FOOT_PPM; None when this install has no reader weights."""
    import time

    net = net if net is not None else load_footer_reader()
    if net is None:
        return None
    t0 = time.perf_counter()
    best = best_fields(band_inks(page_ink, layout), net)
    speed, gain, chest = decide(best)
    return FooterReading(best, speed, gain, chest, time.perf_counter() - t0)
