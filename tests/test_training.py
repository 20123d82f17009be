"""Training: a tiny renderer cache; resume equals an uninterrupted run; weights and --init round-trip."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgml.errors import EcgmlError
from ecgml.records import iter_wfdb_paths, read_wfdb
from ecgml.render.presets import render
from ecgml.trace.model import TraceModelConfig, load_extractor
from ecgml.trace.net import load_model
from ecgml.training.dataset import (
    StripSampler,
    TruthPage,
    page_targets,
    read_index,
    stretch_strip,
    write_cached,
)
from ecgml.training.options import TrainOptions, parse_type_mix, portable_path
from ecgml.training.train import train_any

TINY = TraceModelConfig(channels=(4, 8, 8), strip_mm=16.0)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cache")
    rec = read_wfdb(iter_wfdb_paths("data/records")[0])
    for k, (split, kind) in enumerate([("train", "0001"), ("train", "0003"), ("validation", "0001")]):
        out = render(rec, kind, seed=k)
        tp = TruthPage(out.image, out.page_map, out.layout, out.truth.cell, out.truth.xy, out.truth.visible)
        write_cached(
            folder, f"{split}-{k}", page_targets(tp, out.page_map, TINY), {"split": split, "type": kind}
        )
    return folder


def _opts(tmp: Path, cache: Path, **kw) -> TrainOptions:
    base = TrainOptions(
        out=tmp / "w.pt", work=tmp, cache=cache, steps=4, batch_size=2, val_every=2, val_batches=1,
        model=replace(TINY), progress=False, threads=1,
    )  # fmt: skip
    return replace(base, **kw)


def test_sampler_strips_have_targets_inside(cache: Path):
    s = StripSampler(cache, [e for e in read_index(cache) if e["split"] == "train"], TINY)
    x, y = s.batch(np.random.default_rng(0), 3)
    assert x.shape == (3, TINY.strip_px, 512, 3) and x.dtype == np.uint8
    assert y.shape == (3, 512 * TINY.x_up)
    fin = np.isfinite(y)
    assert fin.mean() > 0.3
    assert np.all((y[fin] > 0) & (y[fin] < TINY.strip_px))


@pytest.mark.parametrize("factor", [1.0, 1.23, 1.5])
def test_stretch_moves_the_targets_with_the_ink(factor: float):
    h, w = 256, 48
    strip = np.full((h, w, 3), 255, np.uint8)
    y = np.full(w * 2, np.nan, np.float32)
    rows = np.linspace(60, 200, w).astype(int)  # a sloping trace, one dark pixel per column
    strip[rows, np.arange(w)] = 0
    y[0::2] = y[1::2] = rows + 0.5
    out, ys = stretch_strip(strip, y, factor)
    assert out.shape == strip.shape
    ink = 255.0 - out[..., 0]
    centroid = (ink * (np.arange(h) + 0.5)[:, None]).sum(0) / ink.sum(0)
    fin = np.isfinite(ys[0::2])
    assert fin.all()  # the trace stays inside at these factors
    err = centroid - ys[0::2]
    assert abs(err.mean()) < 0.02  # no bias (a half-pixel slip would be 0.5 * (factor - 1))
    assert np.abs(err).max() < 0.15  # each column: linear interpolation of a 1-px line
    # distances from the centre grow by the factor
    assert np.allclose(ys - h / 2, (y - h / 2) * factor, atol=0.6)


def test_stretch_drops_targets_pushed_out_of_the_strip():
    h = 100
    y = np.array([5.5, 50.5, 94.5], np.float32)
    _, ys = stretch_strip(np.full((h, 3, 3), 255, np.uint8), y, 1.5)
    assert np.isnan(ys[0]) and np.isnan(ys[2]) and abs(ys[1] - 50.75) < 0.6


def test_sampler_with_stretch_keeps_targets_inside(cache: Path):
    s = StripSampler(cache, [e for e in read_index(cache) if e["split"] == "train"], TINY, stretch_p=1.0)
    _, y = s.batch(np.random.default_rng(1), 4)
    fin = np.isfinite(y)
    assert fin.mean() > 0.2
    assert np.all((y[fin] > 0) & (y[fin] < TINY.strip_px))


def test_resume_continues_exactly_where_it_stopped(tmp_path: Path, cache: Path):
    torch.manual_seed(0)
    a = train_any(_opts(tmp_path / "a", cache), build_cache=False)
    train_any(_opts(tmp_path / "b", cache, stop_after=2), build_cache=False)
    ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)  # plain state only
    assert ck["step"] == 2
    b = train_any(_opts(tmp_path / "b", cache, resume=True), build_cache=False)
    ma, _, meta_a = load_model(a)
    mb, _, meta_b = load_model(b)
    assert meta_a["steps"] == meta_b["steps"] == 4
    for (ka, va), (_, vb) in zip(ma.state_dict().items(), mb.state_dict().items(), strict=True):
        assert torch.allclose(va.float(), vb.float(), atol=1e-5), ka
    curve = json.loads((tmp_path / "b" / "curve.json").read_text())
    assert [h["step"] for h in curve if "loss" in h] == [1, 2, 3, 4]
    assert any("val_l1_mm" in h for h in curve)


def test_init_fine_tunes_from_weights_and_extractor_loads_them(tmp_path: Path, cache: Path):
    a = train_any(_opts(tmp_path / "a", cache, steps=2), build_cache=False)
    b = train_any(_opts(tmp_path / "b", cache, steps=1, init=a), build_cache=False)
    _, _, meta = load_model(b)
    assert meta["init"] == portable_path(a)  # relative to the working directory, not a machine path
    ex = load_extractor(b)
    assert ex.cfg.channels == TINY.channels
    # each round is recorded, and the budget that counts is their sum
    assert [r["round"] for r in meta["rounds"]] == [1, 2]
    assert [r["steps"] for r in meta["rounds"]] == [2, 1]
    assert meta["total_train_seconds"] == pytest.approx(
        sum(r["train_seconds"] for r in meta["rounds"]), abs=0.2
    )


def test_init_can_train_on_taller_strips_with_the_same_weights(tmp_path: Path, cache: Path):
    a = train_any(_opts(tmp_path / "a", cache, steps=1), build_cache=False)
    b = train_any(_opts(tmp_path / "b", cache, steps=1, init=a, strip_mm=24.0), build_cache=False)
    _, cfg_a, _ = load_model(a)
    _, cfg_b, meta = load_model(b)
    assert cfg_a.strip_mm == 16.0 and cfg_b.strip_mm == 24.0
    assert meta["rounds"][-1]["strip_mm"] == 24.0
    assert load_extractor(b).cfg.strip_px == cfg_b.strip_px > cfg_a.strip_px
    with pytest.raises(EcgmlError, match="strip height must be positive"):
        train_any(_opts(tmp_path / "c", cache, steps=1, init=a, strip_mm=0.0), build_cache=False)


def test_seed_arch_trains_and_writes_weights(tmp_path: Path, cache: Path):
    from ecgml.trace.seed import load_seed

    for e in read_index(cache):  # the seed baseline reads a small grey page and lead II
        np.save(cache / f"{e['key']}.seed.npy", np.full((256, 320), 200, np.uint8))
        np.save(cache / f"{e['key']}.ii.npy", np.sin(np.linspace(0, 60, 5000)).astype(np.float32))
    p = train_any(_opts(tmp_path, cache, arch="seed", out=tmp_path / "s.pt", steps=3), build_cache=False)
    sb = load_seed(p)
    assert sb.predict_record(np.zeros((100, 120, 3), np.uint8), fs=500).signal.shape == (5000, 12)


@pytest.mark.slow
def test_competition_folder_targets_follow_the_drawn_trace(tmp_path: Path):
    """The competition-folder path (geometry's map + CSV signal) on a renderer-made train folder: its
    targets agree with the renderer's exact ones to a fraction of a millimetre on clean pages."""
    from ecgml.render.truth import read_truth
    from ecgml.synth import synth_dataset
    from ecgml.training.kaggle_source import competition_truth_page, fill_cache_competition

    synth_dataset(iter_wfdb_paths("data/records")[:2], tmp_path / "k", ["0001"], seed=1, progress=False)
    img = tmp_path / "k" / "train" / "1" / "1-0001.png"
    fs = int((tmp_path / "k" / "train.csv").read_text().splitlines()[1].split(",")[1])
    tp, source = competition_truth_page(img, img.parent / "1.csv", fs)
    assert source == "estimated"
    got = page_targets(tp, tp.page_map, TINY).target_px
    t = read_truth(img.with_suffix(""))
    exact = page_targets(
        TruthPage(tp.image, t.page_map, t.layout, t.samples.cell, t.samples.xy, t.samples.visible),
        t.page_map,
        TINY,
    ).target_px
    both = np.isfinite(got) & np.isfinite(exact)
    assert both.mean() > 0.7
    assert np.median(np.abs(got[both] - exact[both])) / TINY.px_per_mm[1] < 0.3  # mm
    entries = fill_cache_competition(
        _opts(tmp_path, tmp_path / "kc", records=tmp_path / "k"), tmp_path / "kc"
    )
    assert {e["split"] for e in entries} <= {"train", "validation"} and len(entries) >= 1


@pytest.mark.slow  # spawning two workers that import torch: ~40 s on a busy 2-core machine
def test_data_workers_give_the_same_weights_as_the_loop(tmp_path: Path, cache: Path):
    """Strips cut and augmented in two DataLoader worker processes are the loop's strips, step for step."""
    a = train_any(_opts(tmp_path / "a", cache, steps=3, val_every=100), build_cache=False)
    b = train_any(_opts(tmp_path / "b", cache, steps=3, val_every=100, workers=2), build_cache=False)
    ma, _, meta_a = load_model(a)
    mb, _, meta_b = load_model(b)
    assert meta_a["workers"] == 0 and meta_b["workers"] == 2
    for (k, va), (_, vb) in zip(ma.state_dict().items(), mb.state_dict().items(), strict=True):
        assert torch.equal(va, vb), k
    curve = json.loads((tmp_path / "b" / "curve.json").read_text())
    assert all(h["data_wait_s"] >= 0 and h["step_s"] >= h["data_wait_s"] for h in curve if "loss" in h)
    assert 0 <= meta_b["data_wait_share"] <= 1 and meta_b["device"] == "cpu" and meta_b["precision"] == "fp32"


def test_a_gpu_asked_for_and_missing_is_one_clear_error(tmp_path: Path, cache: Path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible here")
    with pytest.raises(EcgmlError, match=r"no CUDA GPU visible \(found: torch .* 0 CUDA device"):
        train_any(_opts(tmp_path, cache, device="cuda"), build_cache=False)
    with pytest.raises(EcgmlError, match="expected auto, cpu, cuda"):
        train_any(_opts(tmp_path, cache, device="tpu"), build_cache=False)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_checkpoint_of_another_model_is_refused_naming_both(tmp_path: Path, cache: Path):
    train_any(_opts(tmp_path, cache, steps=1), build_cache=False)
    wider = replace(TINY, channels=(4, 8, 16))
    with pytest.raises(EcgmlError, match=r"channels: checkpoint \(4, 8, 8\), this run \(4, 8, 16\)"):
        train_any(_opts(tmp_path, cache, steps=2, resume=True, model=wider), build_cache=False)


def test_seed_weights_as_init_of_the_trace_model_are_refused(tmp_path: Path, cache: Path):
    from ecgml.trace.seed import SeedCNN, SeedConfig, save_seed

    seed_w = save_seed(SeedCNN(SeedConfig(channels=(4, 4))), SeedConfig(channels=(4, 4)), tmp_path / "s.pt")
    with pytest.raises(EcgmlError, match="init weights are a 'seed' model"):
        train_any(_opts(tmp_path, cache, init=seed_w), build_cache=False)


@pytest.mark.slow  # starts a Dask LocalCluster of two processes
def test_page_cache_rendered_on_dask_equals_the_serial_one(tmp_path: Path):
    from ecgml.training.render_source import fill_cache

    def opts(cache: Path, workers: int) -> TrainOptions:
        return TrainOptions(
            records=Path(__file__).resolve().parents[1] / "data" / "records", cache=cache, work=tmp_path,
            max_records=2, pages_per_record=1, val_pages=0, progress=False, render_workers=workers,
        )  # fmt: skip

    serial = fill_cache(opts(tmp_path / "a", 1), tmp_path / "a")
    parallel = fill_cache(opts(tmp_path / "b", 2), tmp_path / "b")
    assert len(serial) == 2 and serial == parallel
    for e in serial:
        a = np.load(tmp_path / "a" / f"{e['key']}.img.npy")
        assert np.array_equal(a, np.load(tmp_path / "b" / f"{e['key']}.img.npy"))


def test_type_mix_parses_names_and_shares_and_refuses_bad_entries():
    assert parse_type_mix("0001=0.1, realworld=0.3") == (("0001", "realworld"), (0.1, 0.3))
    assert parse_type_mix("0003,lowres") == (("0003", "lowres"), ())
    for bad, why in [
        ("0001=0.1,bogus=1", "unknown image type 'bogus'"),
        ("0001=0.1,0001=0.2", "given twice"),
        ("0001=0.1,0003", "for every type or for none"),
        ("0001=0", "must be positive"),
        (" , ", "no image types"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_type_mix(bad)


def test_type_shares_decide_which_captures_the_cache_renders(tmp_path: Path):
    from ecgml.training.render_source import fill_cache

    opts = TrainOptions(
        records=Path(__file__).resolve().parents[1] / "data" / "records", work=tmp_path, max_records=3,
        pages_per_record=1, val_pages=0, progress=False, types=("0001", "lowres"), type_weights=(1e-9, 1.0),
    )  # fmt: skip
    entries = fill_cache(opts, tmp_path / "cache")
    assert len(entries) == 3 and {e["type"] for e in entries} == {"lowres"}
