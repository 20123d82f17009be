"""Fast inference of the trace U-Net (ONNX Runtime / OpenVINO) and the batched path decoder: same numbers
as eager torch and as the one-cell-at-a-time decoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import maximum_filter1d

from ecgml.trace import runtime
from ecgml.trace.model import (
    TraceModelConfig,
    UNetExtractor,
    centroid_from_log_probs,
    load_extractor,
    log_probs_by_column,
    squashed,
    track_paths,
)
from ecgml.trace.net import TraceUNet

TINY = TraceModelConfig(channels=(4, 8, 8), strip_mm=16.0, s2d=(2, 2), x_up=2)
FAST = runtime.available_runtimes()


def _tiny_model() -> TraceUNet:
    torch.manual_seed(0)
    m = TraceUNet(TINY).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so folding them into the convs matters
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
    return m


def test_onnxruntime_is_installed():
    """It is a dependency of the package: without it every page would fall back to slow eager torch."""
    assert "onnxruntime" in FAST


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("shape", [(3, 3, 128, 96), (5, 3, 64, 160)])
def test_runtime_logits_match_torch_at_other_shapes(name, shape):
    """Exported at one shape, run at other batch sizes, heights and widths."""
    m = _tiny_model()
    run = runtime.make_runner(m, (1, 3, TINY.strip_px, 4 * TINY.pool), name, threads=1)
    assert run.runtime == name
    x = np.random.default_rng(1).integers(0, 256, shape).astype(np.float32)
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
    out = run(x)
    assert out.shape == ref.shape == (shape[0], shape[2], shape[3] * TINY.x_up)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)


def test_torch_runtime_and_fallbacks(monkeypatch):
    m = _tiny_model()
    shape = (1, 3, TINY.strip_px, 64)
    assert runtime.make_runner(m, shape, "torch").runtime == "torch"
    with pytest.raises(ValueError, match="unknown inference runtime"):
        runtime.make_runner(m, shape, "tensorrt")

    def broken_export(*_a, **_k):
        raise RuntimeError("exporter broke")

    monkeypatch.setattr(runtime, "export_onnx", broken_export)
    run = runtime.make_runner(m, shape, "auto")
    assert run.runtime == "torch"  # a failed export falls back instead of stopping the digitizer
    x = np.full((2, 3, TINY.strip_px, 64), 128.0, np.float32)
    with torch.no_grad():
        np.testing.assert_array_equal(run(x), m(torch.from_numpy(x)).numpy())
    monkeypatch.setattr(runtime.importlib.util, "find_spec", lambda _name: None)
    assert runtime.make_runner(m, shape, "onnxruntime").runtime == "torch"  # not installed


def test_thread_count_from_argument_environment_or_default(monkeypatch):
    monkeypatch.delenv("ECGML_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert 1 <= runtime.runtime_threads() <= runtime.DEFAULT_THREADS
    assert runtime.runtime_threads(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what Dask sets in its worker processes
    assert runtime.runtime_threads() == 1
    monkeypatch.setenv("ECGML_THREADS", "4")
    assert runtime.runtime_threads() == 4
    monkeypatch.setenv("ECGML_RUNTIME", "TORCH")
    assert runtime.requested_runtime() == "torch"


def _reference_path(logits: np.ndarray, max_step: int) -> np.ndarray:
    """The decoder as first written: one cell, one column at a time."""
    lp = torch.log_softmax(torch.as_tensor(logits), dim=0).numpy().T.copy()
    w, h = lp.shape
    score = np.empty_like(lp)
    score[0] = lp[0]
    for j in range(1, w):
        score[j] = maximum_filter1d(score[j - 1], 2 * max_step + 1, mode="constant", cval=-np.inf) + lp[j]
    path = np.empty(w, np.int64)
    path[-1] = int(np.argmax(score[-1]))
    for j in range(w - 2, -1, -1):
        a, b = max(path[j + 1] - max_step, 0), min(path[j + 1] + max_step + 1, h)
        path[j] = a + int(np.argmax(score[j, a:b]))
    return path


def test_batched_paths_equal_one_cell_at_a_time():
    rng = np.random.default_rng(0)
    h = 48
    cells = [rng.normal(0, 3, (h, w)).astype(np.float32) for w in (40, 7, 40, 1, 120, 39)]
    paths = track_paths([log_probs_by_column(c) for c in cells], max_step=5)
    for c, p in zip(cells, paths, strict=True):
        np.testing.assert_array_equal(p, _reference_path(c, 5))
    assert track_paths([], 5) == []


def _reference_gap_path(lp: np.ndarray, cum: np.ndarray, max_step: int) -> np.ndarray:
    """The gap-cost decoder for one cell, window by window: into column j, y' is reached from y at
    score[j - 1, y] - |cum[j, y'] - cum[j, y]| (as score + cum - cum[y'] from below and score - cum +
    cum[y'] from above, the decoder's own float32 arithmetic); the walk back takes the lowest best y."""
    w, h = lp.shape
    score = np.empty_like(lp)
    score[0] = lp[0]
    for j in range(1, w):
        prev, c = score[j - 1], cum[j]
        for y in range(h):
            lo, hi = max(y - max_step, 0), min(y + max_step + 1, h)
            up = np.max(prev[lo : y + 1] + c[lo : y + 1]) - c[y]
            down = np.max(prev[y:hi] - c[y:hi]) + c[y]
            score[j, y] = max(up, down) + lp[j, y]
    path = np.empty(w, np.int64)
    path[-1] = int(np.argmax(score[-1]))
    for j in range(w - 2, -1, -1):
        nxt = path[j + 1]
        lo, hi = max(nxt - max_step, 0), min(nxt + max_step + 1, h)
        cand = score[j, lo:hi] - np.abs(cum[j + 1, nxt] - cum[j + 1, lo:hi])
        path[j] = lo + int(np.argmax(cand))
    return path


@pytest.mark.parametrize("ties", [False, True])
def test_batched_gap_paths_equal_one_cell_at_a_time(ties):
    """With gap costs, cells of different widths decoded together (padded rows, kept buffers) walk the
    same paths as each cell alone; with coarse values (many equal scores) ties fall the same way."""
    rng = np.random.default_rng(5)
    h, step = 40, 4
    lps, cums = [], []
    for w in (30, 6, 30, 1, 45, 0, 29):
        lp = log_probs_by_column(rng.normal(0, 3, (h, w)).astype(np.float32))
        cost = rng.random((w, h)).astype(np.float32)
        if ties:
            lp, cost = np.round(lp).astype(np.float32), np.round(cost * 2) / 2
        lps.append(lp)
        cums.append(np.cumsum(cost, axis=1, dtype=np.float32))
    paths = track_paths(lps, max_step=step, gaps=cums)
    for lp, cum, p in zip(lps, cums, paths, strict=True):
        ref = _reference_gap_path(lp, cum, step) if lp.shape[0] else np.empty(0, np.int64)
        np.testing.assert_array_equal(p, ref)


def test_centroid_from_log_probs_matches_softmax_centroid():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 4, (64, 30)).astype(np.float32)
    p = torch.softmax(torch.from_numpy(logits), dim=0).numpy()
    centre = rng.integers(0, 64, 30)
    y, conf = centroid_from_log_probs(log_probs_by_column(logits), centre, radius=4)
    for j in range(30):
        rows = np.arange(max(centre[j] - 4, 0), min(centre[j] + 5, 64))
        mass = p[rows, j].sum()
        assert conf[j] == pytest.approx(min(mass, 1.0), abs=1e-6)
        assert y[j] == pytest.approx((p[rows, j] * (rows + 0.5)).sum() / mass, abs=1e-4)


@pytest.mark.skipif(not FAST, reason="no fast runtime installed")
def test_shipped_extractor_reads_the_same_traces_with_the_fast_runtime():
    """The shipped weights on a rendered page: logits to ~1e-5, decoded positions to 1e-3 mm (but for
    near-ties)."""
    from ecgml.digitize import shipped_weights
    from ecgml.geometry.canonical import canonical_page
    from ecgml.records import iter_wfdb_paths, read_wfdb
    from ecgml.render.presets import render

    weights = shipped_weights()
    if weights is None:
        pytest.skip("no shipped trace weights in this install")
    fast = load_extractor(weights, runtime="auto", threads=2)
    slow = load_extractor(weights, runtime="torch")
    assert fast.runner is not None and slow.runner is not None
    assert fast.meta["runtime"] == FAST[0] and slow.meta["runtime"] == "torch"
    out = render(read_wfdb(iter_wfdb_paths("data/records")[0]), "0001", seed=3)
    page = canonical_page(out.image, out.page_map, fast.cfg.px_per_mm)
    baselines = sorted({c.baseline_mm for c in out.layout.cells})
    lf, tops_f = fast.row_logits(page, baselines)
    ls, tops_s = slow.row_logits(page, baselines)
    assert tops_f == tops_s
    np.testing.assert_allclose(lf, ls, atol=2e-4)
    # Decoded positions: the path decoder's choices are discrete, so a column at a near-tie may fall
    # either way under 1e-5 logit differences (torch's own sums differ with its thread count): nearly
    # every column within 1e-3 mm, none far off; the same with the squashed read of tall complexes.
    for cfg in (fast.cfg, squashed(fast.cfg)):
        reads = (fast.read_cells(page, out.layout, cfg), slow.read_cells(page, out.layout, cfg))
        for a, b in zip(*reads, strict=True):
            np.testing.assert_array_equal(np.isfinite(a.y_mm), np.isfinite(b.y_mm))
            assert np.isclose(a.y_mm, b.y_mm, atol=1e-3, equal_nan=True).mean() > 0.995
            np.testing.assert_allclose(a.y_mm, b.y_mm, atol=0.5, equal_nan=True)


def test_extractor_with_a_runner_uses_it():
    m = _tiny_model()
    calls = []

    def runner(x: np.ndarray) -> np.ndarray:
        calls.append(x.shape)
        with torch.no_grad():
            return m(torch.from_numpy(x)).numpy()

    from ecgml.geometry.canonical import CanonicalPage

    page = CanonicalPage(np.full((100, 150, 3), 255, np.uint8), (8.0, 8.0), (18.75, 12.5))
    shape = (2, 3, TINY.strip_px, -(-150 // TINY.pool) * TINY.pool)  # width padded to the pooling
    ex = UNetExtractor(m, TINY, runner=runner, flips=0)
    logits, tops = ex.row_logits(page, [4.0, 9.0])
    assert calls == [shape]
    assert logits.shape == (2, TINY.strip_px, 150 * TINY.x_up) and len(tops) == 2
    calls.clear()
    ex.flips = 1  # the mirrored pass goes through the runner too
    assert ex.row_logits(page, [4.0, 9.0])[0].shape == logits.shape
    assert calls == [shape, shape]


def test_a_strip_of_the_same_page_is_read_once_with_fixed_weights():
    """The layout solver reads a page again for each layout that cuts its rows elsewhere: strips already
    read (same page, baseline, strip settings and flips) come from memory, new ones are read alone."""
    m = _tiny_model()
    calls = []

    def runner(x: np.ndarray) -> np.ndarray:
        calls.append(x.shape[0])
        with torch.no_grad():
            return m(torch.from_numpy(x)).numpy()

    from ecgml.geometry.canonical import CanonicalPage

    rng = np.random.default_rng(3)
    page = CanonicalPage(rng.integers(0, 255, (100, 150, 3), dtype=np.uint8), (8.0, 8.0), (18.75, 12.5))
    ex = UNetExtractor(m, TINY, runner=runner, flips=0)
    first, _ = ex.row_logits(page, [4.0, 9.0])
    again, _ = ex.row_logits(page, [9.0, 4.0, 9.0])
    assert calls == [2]  # nothing read twice
    np.testing.assert_array_equal(again, first[[1, 0, 1]])
    mixed, _ = ex.row_logits(page, [9.0, 11.0])
    assert calls == [2, 1]  # only the new baseline
    np.testing.assert_array_equal(mixed[0], first[1])
    fresh, _ = UNetExtractor(m, TINY, runner=runner, flips=0).row_logits(page, [9.0, 11.0])
    np.testing.assert_allclose(mixed, fresh, atol=1e-5)
    other = CanonicalPage(page.image.copy(), page.px_per_mm, page.paper_mm)
    calls.clear()
    ex.row_logits(other, [4.0])
    assert calls == [1]  # another page (equal pixels or not) is read anew
    ex.forget()  # the page read: its strips are dropped, and read anew if it comes again
    assert ex._memo is None
    ex.row_logits(other, [4.0])
    assert calls == [1, 1]
    trained = UNetExtractor(m, TINY, flips=0)  # no runner: weights may change between reads
    calls.clear()
    trained.row_logits(page, [4.0])
    trained.row_logits(page, [4.0])
    assert calls == [] and trained._memo is None


def test_a_cell_read_before_on_the_page_is_not_decoded_again(monkeypatch):
    """The layout solver's candidate layouts often cut a row alike: a cell on the same strip and columns
    is taken as read (the same numbers a fresh extractor reads), only the others are decoded."""
    from ecgml.geometry.canonical import CanonicalPage
    from ecgml.layout import Cell, PageLayout
    from ecgml.trace import model

    m = _tiny_model()

    def runner(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return m(torch.from_numpy(x)).numpy()

    decoded: list[int] = []
    plain = model.track_paths

    def counting(lps, *a, **k):
        decoded.append(len(lps))
        return plain(lps, *a, **k)

    monkeypatch.setattr(model, "track_paths", counting)
    rng = np.random.default_rng(4)
    page = CanonicalPage(rng.integers(0, 255, (100, 150, 3), dtype=np.uint8), (8.0, 8.0), (18.75, 12.5))

    def cells(*spans: tuple[int, float, float, float]) -> PageLayout:
        made = [Cell("II", r, k, b, x0, x1, 0.0, 1.0) for k, (r, b, x0, x1) in enumerate(spans)]
        return PageLayout("test", (18.75, 12.5), 25.0, 10.0, made)

    first = cells((0, 4.0, 0.0, 9.0), (0, 4.0, 9.0, 18.0), (1, 9.0, 0.0, 18.0))
    second = cells((0, 4.0, 0.0, 9.0), (0, 4.0, 9.0, 14.0), (1, 9.0, 0.0, 18.0), (2, 11.0, 2.0, 12.0))
    ex = UNetExtractor(m, TINY, runner=runner, flips=1)
    ex.read_cells(page, first, TINY)
    got = ex.read_cells(page, second, TINY)
    assert decoded == [3, 2]  # the second layout's first and third cells were read with the first's
    want = UNetExtractor(m, TINY, runner=runner, flips=1).read_cells(page, second, TINY)
    for a, b in zip(got, want, strict=True):
        assert (a.lead, a.row, a.col) == (b.lead, b.row, b.col)
        np.testing.assert_array_equal(a.x_mm, b.x_mm)
        np.testing.assert_array_equal(a.y_mm, b.y_mm)
        np.testing.assert_array_equal(a.confidence, b.confidence)
    got[0].y_mm[:] = 0.0  # a caller changing its trace does not change the page's kept read
    np.testing.assert_array_equal(ex.read_cells(page, second, TINY)[0].y_mm, want[0].y_mm)
    ex.forget()
    decoded.clear()
    ex.read_cells(page, second, TINY)
    assert decoded == [4]  # forgotten with the page
