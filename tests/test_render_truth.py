"""Truth agrees with pixels for every capture type; read-back through the inverse map; sidecars."""

from __future__ import annotations

import numpy as np
import pytest

from ecgml.layout import LAYOUT_NAMES, make_layout
from ecgml.page import scale_map
from ecgml.records import Record, iter_wfdb_paths, read_wfdb, resample
from ecgml.render.page import MASK_PAPER, draw_page, plotted_mask
from ecgml.render.presets import TYPES, render
from ecgml.render.style import kaggle_style
from ecgml.render.truth import read_truth, signal_from_coords, signal_from_mask, snr_db, write_truth

RECORDS = iter_wfdb_paths("data/records")


@pytest.fixture(scope="module")
def record() -> Record:
    return read_wfdb(RECORDS[3]).window(0, 10)


def _truth_signal(rec: Record, layout) -> np.ndarray:
    return np.where(plotted_mask(layout, rec.fs, rec.n_samples), rec.signal, np.nan)


@pytest.mark.parametrize("image_type", TYPES)
def test_truth_matches_pixels(record, image_type):
    out = render(record, image_type, seed=5)
    t, pm = out.truth, out.page_map
    h, w = out.image.shape[:2]
    assert (w, h) == pm.image_size
    vis = t.visible
    assert vis.mean() > 0.5
    # every visible sample lies on its row's drawn stroke (the warp and the truth agree)
    rows = np.array([out.layout.cells[c].row for c in t.cell[vis]])
    ix = np.clip(np.floor(t.xy[vis, 0]).astype(int), 0, w - 1)
    iy = np.clip(np.floor(t.xy[vis, 1]).astype(int), 0, h - 1)
    on = np.zeros(ix.size, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            yy, xx = np.clip(iy + dy, 0, h - 1), np.clip(ix + dx, 0, w - 1)
            on |= ((out.rows[yy, xx] >> rows) & 1).astype(bool)
    assert on.mean() > 0.97
    # ... and the image is darker there than on the paper around it
    grey = out.image.astype(np.float32).mean(-1)
    paper = np.median(grey[(out.masks & MASK_PAPER) != 0])
    assert np.median(grey[iy, ix]) < paper - 30
    # the map inverts (strong crumples need ~20 fixed-point iterations, not the default 8)
    mm = pm.px_to_mm(t.xy[vis].astype(np.float64), iterations=20)
    assert np.abs(pm.mm_to_px(mm) - t.xy[vis]).max() < 0.05
    # the stored coordinates read back through the inverse map give the signal
    est = signal_from_coords(t, out.layout, pm, record.fs, record.n_samples)
    assert snr_db(_truth_signal(record, out.layout), est) >= 40
    # the image-space centreline mask read back through the inverse map (pixels, not bookkeeping)
    est = signal_from_mask(out.centre, out.layout, pm, record.fs, record.n_samples)
    # a low-resolution copy's 1-px centreline is 0.2-0.45 mm tall (2.2-5 px/mm): coarser read-back
    assert snr_db(_truth_signal(record, out.layout), est) >= (8 if image_type == "lowres" else 12)


def test_type_sizes(record):
    sizes = {t: render(record, t, seed=1).image.shape[:2] for t in ("0001", "0003", "0004", "0011")}
    assert sizes["0001"] == (1700, 2200)
    for t in ("0003", "0004", "0011"):
        assert sizes[t][0] == 1652 and 2130 <= sizes[t][1] <= 2140
    grey = render(record, "0004", seed=1).image
    assert np.array_equal(grey[..., 0], grey[..., 1])


def test_photo_frames_and_rotation(record):
    frames, angles = set(), []
    for s in range(3):
        out = render(record, "0005", seed=s)
        frames.add(tuple(out.image.shape[:2]))
        angles.append(out.meta["params"]["camera"]["angle_deg"])
        assert out.page_map.residual is not None  # curvature lives in the map
    assert frames <= {(3024, 4032), (4032, 3024), (1008, 1344), (1344, 1008)}
    assert max(abs(a) for a in angles) <= 100


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_clean_page_readback_every_layout(record, name):
    lay = make_layout(name)
    ppm = 200 / 25.4
    flat = draw_page(record, lay, kaggle_style(), ppm)
    pm = scale_map(ppm, flat.size, lay.paper_mm)
    truth = _truth_signal(record, lay)
    est = signal_from_mask(flat.centre, lay, pm, record.fs, record.n_samples)
    covered = np.isfinite(est).sum() / np.isfinite(truth).sum()
    assert covered > 0.95
    assert snr_db(truth, est) >= 20  # 1-px centreline at 200 DPI (see the module note in truth.py)
    from ecgml.render.truth import sample_truth

    st = sample_truth(flat.samples, pm, flat.masks, lay.paper_mm)
    assert snr_db(truth, signal_from_coords(st, lay, pm, record.fs, record.n_samples)) >= 40


@pytest.mark.slow
@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_clean_page_readback_high_dpi(record, name):
    """At 1200 DPI the centreline mask carries the 1 kHz signal: >= 40 dB read back from pixels alone."""
    lay = make_layout(name)
    ppm = 1200 / 25.4
    rec = resample(record, 1000)
    flat = draw_page(rec, lay, kaggle_style(), ppm, supersample=1)
    pm = scale_map(ppm, flat.size, lay.paper_mm)
    est = signal_from_mask(flat.centre, lay, pm, rec.fs, rec.n_samples)
    assert snr_db(_truth_signal(rec, lay), est) >= 40


def test_sidecars_round_trip(record, tmp_path):
    out = render(record, "0010", seed=3)
    write_truth(tmp_path / "1-0010", out.meta, out.truth, out.masks, out.rows, out.centre)
    back = read_truth(tmp_path / "1-0010")
    assert back.layout == out.layout
    pts = np.array([[10.0, 10.0], [150.0, 100.0], [270.0, 200.0]])
    assert np.allclose(back.page_map.mm_to_px(pts), out.page_map.mm_to_px(pts), atol=1e-3)
    assert np.array_equal(back.masks, out.masks) and np.array_equal(back.centre, out.centre)
    assert np.array_equal(back.samples.visible, out.truth.visible)
    assert back.meta["params"]["torn"]["torn_corner"] in (0, 1, 2, 3)
    assert back.meta["gain_mm_mv"] == 10.0 and back.meta["speed_mm_s"] == 25.0
    assert (~out.truth.visible).any() or back.meta["visible_fraction"] == 1.0
