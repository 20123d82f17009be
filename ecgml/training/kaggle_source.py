"""Fill the trace model's page cache from a competition training folder (train.csv, train/{id}/...).

A real competition image has no drawn truth, only its signal CSV. Its page map is recovered by
geometry (`ecgml.digitize.estimate_geometry`), the signal is drawn into paper mm through the layout
geometry found (Kaggle pages: the standard 3x4+1R), and the targets come from the same map that
warps the image, so they sit wherever geometry puts the paper. Records are split by ECG id.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecgml.errors import EcgmlError
from ecgml.records import LEADS, read_csv
from ecgml.splits import split_of
from ecgml.training.dataset import TruthPage, page_targets, read_index, write_cached

if TYPE_CHECKING:
    from ecgml.training.options import TrainOptions


def competition_truth_page(image_path: Path, signal_csv: Path, fs: int) -> tuple[TruthPage, str]:
    """A TruthPage for one competition image: geometry's map + the CSV signal drawn through its layout."""
    from ecgml.digitize import estimate_geometry, load_image
    from ecgml.render.page import cell_samples

    image = load_image(image_path)
    geo = estimate_geometry(image, image_path)
    rec = read_csv(signal_csv, fs)
    raw = rec.signal.copy()
    rec.signal = np.nan_to_num(raw, nan=0.0)  # NaN samples are kept out by `visible` below
    samples = cell_samples(rec, geo.layout)
    cells, xy, vis = [], [], []
    for cs in samples:
        lead = LEADS.index(cs.lead)
        v = np.isfinite(raw[cs.start : cs.start + cs.n, lead])
        cells.append(np.full(cs.n, cs.cell, np.int32))
        xy.append(geo.page_map.mm_to_px(np.stack([cs.x_mm, cs.y_mm], axis=1)))
        vis.append(v)
    kind = image_path.stem.split("-")[-1] if "-" in image_path.stem else ""
    tp = TruthPage(
        image,
        geo.page_map,
        geo.layout,
        np.concatenate(cells),
        np.concatenate(xy),
        np.concatenate(vis),
        kind,
        image_path.stem,
    )
    return tp, geo.source


def fill_cache_competition(opts: TrainOptions, cache: Path) -> list[dict[str, Any]]:
    """Cache every image of the folder's train.csv ECGs (split by id: train / validation)."""
    from ecgml.kaggle import read_train_table

    folder = Path(opts.records)
    table = read_train_table(folder / "train.csv")
    done = {e["key"] for e in read_index(cache)}
    for ecg, fs in zip(table["id"].astype(int).tolist(), table["fs"].astype(int).tolist(), strict=True):
        split = split_of(str(ecg))
        if split == "test":
            continue
        d = folder / "train" / str(ecg)
        for img in sorted(d.glob(f"{ecg}-*.png")):
            key = f"{split}-kaggle-{img.stem}"
            if key in done:
                continue
            try:
                tp, source = competition_truth_page(img, d / f"{ecg}.csv", fs)
                if not source.startswith("estimated"):
                    print(f"skip {img}: geometry {source}")
                    continue
                write_cached(
                    cache,
                    key,
                    page_targets(tp, tp.page_map, opts.model),
                    {"split": split, "type": tp.kind, "record": str(ecg), "source": "kaggle"},
                )
            except EcgmlError as exc:
                print(f"skip {img}: {exc}")
    return read_index(cache)
