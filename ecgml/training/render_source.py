"""Fill the trace model's page cache from WFDB records through the renderer (train and validation splits).

Pages are keyed by split, record and page index and seeded from (seed, record name, page index), so a
cache is reproducible and an interrupted fill resumes where it stopped. Each page is rendered with a
capture type drawn from the renderer's suggested training mix (RENDERER.md §5.13), warped to the
canonical page through the truth map (70 % of the time through a slightly perturbed one), and stored
with its per-row targets, plus a small whole-page image and lead II for the seed baseline.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ecgml.errors import EcgmlError
from ecgml.records import LEADS, Record, iter_wfdb_paths, read_wfdb, resample_signal
from ecgml.splits import load_split_file, records_in_split
from ecgml.training.dataset import TruthPage, page_targets, perturb_map, read_index, write_cached

if TYPE_CHECKING:
    from ecgml.training.options import TrainOptions

TYPE_MIX: dict[str, float] = {
    "0001": 0.10,
    "0003": 0.08,
    "0004": 0.07,
    "0011": 0.07,
    "0012": 0.08,
    "0005": 0.12,
    "0009": 0.12,
    "0010": 0.11,
    "0006": 0.10,
    "realworld": 0.15,
}
PERTURB_P = 0.7
SEED_IMAGE_HW = (256, 320)  # the seed baseline's reduced whole-image input (H, W), grayscale
SEED_N = 5000  # lead II samples the seed baseline regresses (10 s at 500 Hz)
SPLITS_FILE = Path(__file__).resolve().parents[2] / "data" / "splits.csv"


def _seed_of(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:4], "big")


def truth_page(record: Record, image_type: str, seed: int) -> TruthPage:
    """Render one page with the renderer and keep what the trace model needs."""
    from ecgml.render.presets import render

    out = render(record, image_type, seed=seed)
    t = out.truth
    return TruthPage(
        out.image,
        out.page_map,
        out.layout,
        np.asarray(t.cell),
        np.asarray(t.xy, np.float64),
        np.asarray(t.visible, bool),
        image_type,
        record.name,
    )


def seed_inputs(image: np.ndarray, record: Record) -> tuple[np.ndarray, np.ndarray]:
    """The seed baseline's (H, W) uint8 grey whole image and its 5000-sample lead II target (mV)."""
    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    small = cv2.resize(g, SEED_IMAGE_HW[::-1], interpolation=cv2.INTER_AREA)
    ii = record.signal[: record.fs * 10, LEADS.index("II")].astype(np.float64)
    return small, resample_signal(ii, SEED_N).astype(np.float32)


def _window(record: Record, rng: np.random.Generator) -> Record:
    dur = record.n_samples / record.fs
    start = float(rng.uniform(0, dur - 10.0)) if dur > 10.5 else 0.0
    return record.window(start, 10.0)


def split_records(folder: Path) -> dict[str, list[Path]]:
    """WFDB record paths of `folder` by split (the committed split table wins over the name hash)."""
    paths = iter_wfdb_paths(folder)
    table = load_split_file(SPLITS_FILE) if SPLITS_FILE.exists() else {}
    return {s: records_in_split(paths, s, table) for s in ("train", "validation", "test")}


def fill_cache(opts: TrainOptions, cache: Path) -> list[dict[str, Any]]:
    """Render missing pages into `cache` (train: pages_per_record per record; validation: val_pages).

    A competition training folder (one with train.csv) is read instead of rendered.
    """
    if (Path(opts.records) / "train.csv").exists():
        from ecgml.training.kaggle_source import fill_cache_competition

        return fill_cache_competition(opts, cache)
    by_split = split_records(Path(opts.records))
    train = by_split["train"][: opts.max_records or None]
    if not train:
        raise EcgmlError(opts.records, "no train-split WFDB records found")
    types = list(opts.types) if opts.types else list(TYPE_MIX)
    shares = opts.type_weights if opts.types and opts.type_weights else [TYPE_MIX.get(t, 0.1) for t in types]
    probs = np.array(shares, float)
    probs /= probs.sum()
    jobs: list[tuple[str, Path, int]] = [("train", p, k) for p in train for k in range(opts.pages_per_record)]
    val = by_split["validation"]
    if val and opts.val_pages:
        per = int(np.ceil(opts.val_pages / len(val)))
        jobs += [("validation", p, k) for k in range(per) for p in val][: opts.val_pages]
    done = {e["key"] for e in read_index(cache)}
    todo = [j for j in jobs if _key(*j) not in done]
    if not todo:
        return read_index(cache)
    page = functools.partial(render_page, cache=cache, types=tuple(types), probs=tuple(probs), opts=opts)
    progress = None
    if opts.progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(
            TextColumn("render pages"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
        )
        task = progress.add_task("render", total=len(todo))
        progress.start()

    def tick() -> None:
        if progress is not None:
            progress.advance(task)

    try:
        if opts.render_workers > 1 or opts.dask_address:
            from ecgml.cluster import map_on_dask

            skipped = map_on_dask(page, todo, opts.render_workers, opts.dask_address, tick)
        else:
            skipped = []
            for job in todo:
                skipped.append(page(job))
                tick()
    finally:
        if progress is not None:
            progress.stop()
    for msg in skipped:
        if msg:
            print(msg)
    return read_index(cache)


def render_page(
    job: tuple[str, Path, int],
    cache: Path,
    types: tuple[str, ...],
    probs: tuple[float, ...],
    opts: TrainOptions,
) -> str:
    """Render one training/validation page with its exact targets into `cache` (a Dask task: it needs
    only its arguments and a cache folder every worker can write). Returns "" or why it was skipped."""
    split, path, k = job
    s = _seed_of(opts.seed, path.name, k)
    rng = np.random.default_rng(s)
    try:
        rec = _window(read_wfdb(path), rng)
        if split == "validation":
            image_type = types[(k * 7 + _seed_of(path.name)) % len(types)]
        else:
            image_type = str(rng.choice(list(types), p=np.asarray(probs)))
        tp = truth_page(rec, image_type, s)
        used = perturb_map(tp.page_map, rng) if split == "train" and rng.random() < PERTURB_P else tp.page_map
        pt = page_targets(tp, used, opts.model)
        small, ii = seed_inputs(tp.image, rec)
        key = _key(split, path, k)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(cache / f"{key}.seed.npy", small)
        np.save(cache / f"{key}.ii.npy", ii)
        meta = {"split": split, "type": image_type, "record": path.name, "layout": tp.layout.name, "seed": s}
        write_cached(cache, key, pt, meta)
    except (EcgmlError, ValueError) as exc:
        return f"skip {path}: {exc}"
    return ""


def _key(split: str, path: Path, k: int) -> str:
    return f"{split}-{path.parent.name}-{path.name}-{k:02d}"
