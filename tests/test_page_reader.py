"""The label reader: its network's geometry, its training patches, and the shipped weights reading the
printed lead names of rendered pages (and telling upright from upside down)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgml.layout import make_layout
from ecgml.page_reader import CLASSES, PATCH_MM, READ_PPM, LabelReading, _net, conflicts, label_factors
from ecgml.records import LEADS

RECORDS = Path(__file__).parent.parent / "data" / "records" / "cpsc2018_challenge2020"


def test_one_patch_gives_one_reading_and_a_page_a_map():
    import torch

    net = _net().eval()
    h, w = int(PATCH_MM[1] * READ_PPM), int(PATCH_MM[0] * READ_PPM)
    with torch.inference_mode():
        assert tuple(net(torch.zeros(2, 1, h, w)).shape) == (2, len(CLASSES), 1, 1)
        out = net(torch.zeros(1, 1, h + 80, w + 40))
    assert tuple(out.shape[2:]) == (1 + 80 // 8, 1 + 40 // 8)  # one reading every 2 mm


def test_training_patches_are_centred_labels_and_none():
    from ecgml.training.page_reader import page_patches

    xs, ys = page_patches(RECORDS / "A0010", np.random.default_rng(3))
    ys_arr = np.array(ys)
    assert all(x.shape == (int(PATCH_MM[1] * READ_PPM), int(PATCH_MM[0] * READ_PPM)) for x in xs)
    assert (ys_arr == len(CLASSES) - 1).sum() > (ys_arr < len(LEADS)).sum() > 10
    lab = [x for x, y in zip(xs, ys, strict=True) if y < len(LEADS)]
    centre = np.mean([x[12:28, 28:68].mean() for x in lab])
    edge = np.mean([np.r_[x[:, :16].ravel(), x[:, -16:].ravel()].mean() for x in lab])
    assert centre > 1.3 * edge  # the printed name sits in the middle of its patch (grid lines fill both)


def test_a_conflicting_label_lowers_only_its_lead_and_neighbour_rows_are_ambiguous():
    lay = make_layout("3x4+1R")
    reading = LabelReading(cells={(0, 0): ("aVL", 0.95), (0, 1): ("aVL", 0.99), (1, 0): ("II", 0.97)})
    # (0, 0) is I, read aVL: another lead -> conflict; (0, 1) aVR read aVL, the lead just below: ambiguous
    assert [(c.lead, got) for c, got in conflicts(reading, lay)] == [("I", "aVL")]
    assert label_factors(reading, lay) == {"I": 0.2}
