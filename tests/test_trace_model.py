"""The trace model: shapes, decoding, loss, targets, the extractor contract and the seed baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgml.geometry.canonical import CanonicalPage, canonical_page
from ecgml.records import read_wfdb
from ecgml.render.presets import render
from ecgml.trace.model import TraceModelConfig, UNetExtractor, local_centroid, log_probs_by_column
from ecgml.trace.net import TraceUNet, soft_argmax
from ecgml.trace.seed import SeedBaseline, SeedCNN, SeedConfig
from ecgml.training.dataset import TruthPage, page_targets, perturb_map
from ecgml.training.trace import trace_loss

TINY = TraceModelConfig(channels=(4, 8, 8), strip_mm=16.0, s2d=(2, 2), x_up=2)


def _record():
    from ecgml.records import iter_wfdb_paths

    return read_wfdb(iter_wfdb_paths("data/records")[0])


def test_forward_shape_is_height_by_upsampled_width():
    torch.manual_seed(0)
    m = TraceUNet(TINY)
    h = TINY.strip_px
    assert h % TINY.pool == 0
    out = m(torch.rand(2, 3, h, 64) * 255)
    assert out.shape == (2, h, 64 * TINY.x_up)
    assert torch.isfinite(out).all()


def test_head_unfolds_subpixels_in_place():
    """Output (y, 2x+k) must come from the head's channel for that sub-pixel: check by poking the bias."""
    m = TraceUNet(TINY).eval()
    with torch.no_grad():
        m.head.weight.zero_()
        m.head.bias.zero_()
        m.head.bias[1] = 1.0  # channel (dy=0, dx=0, k=1)
        out = m(torch.zeros(1, 3, TINY.strip_px, 32))[0]
    assert torch.all(out[0::2, 1::4] == 1.0)
    assert out.sum() == out[0::2, 1::4].sum()


@pytest.mark.parametrize("y0", [10.5, 23.27, 40.81])
def test_decoding_recovers_subpixel_position(y0):
    pos = torch.arange(64, dtype=torch.float32).view(1, -1, 1) + 0.5
    logits = -((pos - y0) ** 2) / (2 * 1.2**2)
    logits = logits.expand(1, 64, 5).clone()
    assert torch.allclose(soft_argmax(logits), torch.full((1, 5), y0), atol=1e-3)
    y, conf = local_centroid(logits, radius=6)
    assert np.allclose(y, y0, atol=0.02)
    assert np.all((conf > 0.9) & (conf <= 1.0))


def test_local_centroid_ignores_a_distant_second_trace():
    pos = torch.arange(80, dtype=torch.float32).view(1, -1, 1) + 0.5
    logits = torch.logaddexp(-((pos - 20.3) ** 2) / 2, -((pos - 60.0) ** 2) / 2 - 0.5)
    y, _ = local_centroid(logits, radius=4)
    assert abs(float(y[0, 0]) - 20.3) < 0.05
    assert abs(float(soft_argmax(logits)[0, 0]) - 20.3) > 5  # the global mean is fooled


def test_training_steps_reduce_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    m = TraceUNet(TINY)
    h = TINY.strip_px
    x = torch.full((2, 3, h, 64), 255.0)
    y = torch.full((2, 128), 40.3)
    for i in range(128):  # a dark line along the target
        x[:, :, 40, i // 2] = 0.0
    valid = torch.ones_like(y, dtype=torch.bool)
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    losses = []
    for _ in range(4):
        loss, parts = trace_loss(m(x), y, valid, TINY)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(parts["loss"])
    assert losses[-1] < losses[0]


def test_loss_ignores_invalid_columns():
    logits = torch.randn(1, 32, 10)
    y = torch.full((1, 10), 16.0)
    valid = torch.zeros(1, 10, dtype=torch.bool)
    valid[0, :5] = True
    a, _ = trace_loss(logits, y, valid, TINY)
    y2 = y.clone()
    y2[0, 5:] = float("nan")
    b, _ = trace_loss(logits, y2, valid, TINY)
    assert torch.isfinite(a) and torch.allclose(a, b)


@pytest.mark.parametrize("perturbed", [False, True])
def test_targets_lie_on_the_drawn_trace(perturbed):
    """On a clean 0001 page the canonical pixel under each target is dark (the trace), even through a
    perturbed map: the targets follow the warp."""
    rec = _record()
    out = render(rec, "0001", seed=3)
    tp = TruthPage(out.image, out.page_map, out.layout, out.truth.cell, out.truth.xy, out.truth.visible)
    used = perturb_map(out.page_map, np.random.default_rng(1), scale=3.0) if perturbed else out.page_map
    cfg = TraceModelConfig()
    pt = page_targets(tp, used, cfg)
    grey = pt.image.mean(axis=2)
    ok = np.isfinite(pt.target_px)
    assert ok.mean() > 0.7
    r, k = np.nonzero(ok)
    cols = k // cfg.x_up
    rows = np.floor(pt.target_px[r, k]).astype(int)
    assert np.median(grey[rows, cols]) < 100  # trace pixels are dark; paper/grid are light
    if perturbed:  # and the unperturbed targets would miss the trace noticeably more often
        pt0 = page_targets(tp, out.page_map, cfg)
        assert np.nanmean(np.abs(pt0.target_px - pt.target_px)) > 1.0


def test_extractor_returns_one_trace_per_cell_inside_its_cell():
    torch.manual_seed(0)
    rec = _record()
    out = render(rec, "0001", seed=5)
    page = canonical_page(out.image, out.page_map, (4.0, 4.0))  # the extractor rescales to its raster
    ex = UNetExtractor(TraceUNet(TINY).eval(), TINY)
    traces = ex.extract(page, out.layout)
    assert len(traces) == len(out.layout.cells)
    for cell, tr in zip(out.layout.cells, traces, strict=True):
        assert (tr.lead, tr.row, tr.col) == (cell.lead, cell.row, cell.col)
        assert tr.x_mm.size > 100 and np.all(np.diff(tr.x_mm) > 0)
        assert tr.x_mm[0] >= cell.x0_mm and tr.x_mm[-1] < cell.x1_mm
        assert tr.y_mm.shape == tr.x_mm.shape == tr.confidence.shape
        assert np.all((tr.confidence >= 0) & (tr.confidence <= 1))
        fin = np.isfinite(tr.y_mm)
        assert np.all(np.abs(tr.y_mm[fin] - cell.baseline_mm) <= TINY.strip_mm / 2 + 1)


def test_flip_averaging_maps_a_mirrored_page_to_mirrored_logits():
    """The left-right test-time pass is flipped back onto the page's columns: with it, a mirrored page gives
    exactly the mirrored log-probabilities; without it the (untrained, asymmetric) net does not."""
    torch.manual_seed(0)
    out = render(_record(), "0001", seed=5)
    page = canonical_page(out.image, out.page_map, TINY.px_per_mm)
    w = page.image.shape[1] // TINY.pool * TINY.pool  # no right-hand padding, so mirroring is exact
    page = CanonicalPage(page.image[:, :w], page.px_per_mm, (w / TINY.px_per_mm[0], page.paper_mm[1]))
    mirrored = CanonicalPage(np.ascontiguousarray(page.image[:, ::-1]), page.px_per_mm, page.paper_mm)
    base = [out.layout.cells[0].baseline_mm]
    ex = UNetExtractor(TraceUNet(TINY).eval(), TINY, flips=1)
    a, _ = ex.row_logits(page, base)
    b, _ = ex.row_logits(mirrored, base)
    np.testing.assert_allclose(b, a[:, :, ::-1], atol=1e-4)
    ex.flips = 0
    a0, _ = ex.row_logits(page, base)
    b0, _ = ex.row_logits(mirrored, base)
    assert np.abs(b0 - a0[:, :, ::-1]).max() > 1e-2


def test_seed_baseline_shapes_and_record():
    torch.manual_seed(0)
    cfg = SeedConfig(channels=(4, 8, 8, 8, 8))
    m = SeedCNN(cfg)
    assert m(torch.rand(2, 1, *cfg.input_hw) * 255).shape == (2, cfg.n_out)
    rec = SeedBaseline(m, cfg).predict_record(np.full((300, 400, 3), 200, np.uint8), fs=256)
    assert rec.signal.shape == (2560, 12) and rec.fs == 256
    assert np.all(np.isfinite(rec.signal))
    assert np.all(rec.signal == rec.signal[:, [1]])  # the same prediction for every lead


def test_track_path_stays_on_a_continuous_trace():
    """A stronger, distant trace in some columns fools per-column argmax but not the path decoder."""
    from ecgml.trace.model import track_path

    pos = np.arange(100)[:, None] + 0.5
    ours = 20.0 + 3 * np.sin(np.arange(120) / 10.0)[None, :]
    logits = -((pos - ours) ** 2) / 2.0
    logits[:, 40:60] = np.logaddexp(logits[:, 40:60], -((pos - 80.0) ** 2) / 2.0 + 3.0)
    assert np.all(np.argmax(logits[:, 40:60], axis=0) > 70)
    path = track_path(logits.astype(np.float32), max_step=10)
    assert np.all(np.abs(path + 0.5 - ours[0]) <= 1.0)
    y, _ = local_centroid(torch.from_numpy(logits[None].astype(np.float32)), 4, path[None])
    assert np.all(np.abs(y[0] - ours[0]) < 0.2)


def test_path_pays_for_blank_paper_between_traces_not_for_its_own_stroke():
    """With ink gap costs the decoder keeps to the ink it is on: a stronger neighbouring trace across blank
    paper no longer pulls the path over, while a steep stroke of its own (ink all the way) is followed."""
    from ecgml.trace.model import ink_gap_costs, track_paths

    h, w = 100, 120
    own = np.full(w, 20)
    own[70:] = 60  # a vertical step of the own trace at column 70, drawn as ink
    strip = np.full((h, w, 3), 255, np.uint8)
    strip[own, np.arange(w)] = 0
    strip[20:61, 70] = 0
    strip[85, :] = 0  # a neighbouring row's trace
    pos = np.arange(h)[:, None] + 0.5
    logits = -((pos - own[None, :] - 0.5) ** 2) / 2.0
    logits[:, 30:40] = np.logaddexp(logits[:, 30:40], -((pos - 85.5) ** 2) / 2.0 + 3.0)
    lp = log_probs_by_column(logits.astype(np.float32))
    free = track_paths([lp], max_step=80)[0]
    assert np.all(free[30:40] == 85)  # without costs: the stronger neighbour wins those columns
    paid = track_paths([lp], max_step=80, gaps=[ink_gap_costs(strip, own, 1, 1.0)])[0]
    np.testing.assert_array_equal(paid, own)  # with them: the own trace, step included


def test_strip_ink_keeps_a_coloured_trace_and_drops_a_red_grid():
    """The ink a path may climb for free is the trace's own: a blue trace counts (ink_map's chroma rule
    alone would drop it), a red grid line beside a black trace does not."""
    from ecgml.trace.model import strip_ink

    trace_y = np.full(40, 10)
    blue = np.full((30, 40, 3), 235, np.uint8)
    blue[:, 20] = (150, 150, 160)  # a grey grid line
    blue[10, :] = (50, 60, 180)  # the trace
    ink = strip_ink(blue, trace_y)
    assert ink[10, 5] > 150 and ink[10, 5] > ink[20, 20]
    black = np.full((30, 40, 3), 250, np.uint8)
    black[:, 20] = (230, 60, 60)  # a red grid line
    black[10, :] = (40, 40, 40)
    ink = strip_ink(black, trace_y)
    assert ink[10, 5] > 150 and ink[20, 20] == 0


def test_canonical_page_knows_how_sharp_its_source_was():
    """A page cut from a small copy carries the copy's own px/mm, whatever raster it is resampled to."""
    from ecgml.page import scale_map

    small = canonical_page(np.full((200, 300, 3), 255, np.uint8), scale_map(3.0, (300, 200), (100.0, 66.0)))
    assert small.px_per_mm == (8.0, 8.0)
    assert small.source_px_per_mm == pytest.approx(3.0)


def test_blank_paper_is_charged_per_source_pixel():
    """On a page resampled up from 4 px/mm a strip px is half a source px: a step across blank paper pays
    half of what it pays on a sharp page; a page sharper than the raster (or of unknown source) pays all."""
    torch.manual_seed(0)
    out = render(_record(), "0001", seed=5)
    page = canonical_page(out.image, out.page_map, TINY.px_per_mm)
    base = [out.layout.cells[0].baseline_mm]
    costs = {}
    for src in (0.0, 4.0, 20.0):
        sized = CanonicalPage(page.image, page.px_per_mm, page.paper_mm, src)
        ex = UNetExtractor(TraceUNet(TINY).eval(), TINY)
        logits, tops = ex.row_logits(sized, base)
        costs[src] = ex._gap_costs(sized, tops, log_probs_by_column(logits), TINY)[0]
    assert costs[0.0].max() > 0
    np.testing.assert_allclose(costs[4.0], costs[0.0] * 4.0 / TINY.px_per_mm[1], rtol=1e-5)
    np.testing.assert_array_equal(costs[20.0], costs[0.0])
