"""`ecgml synth`: WFDB records -> a dataset in the competition's layout, with exact truth beside each image.

Train layout: `train.csv`, `train/{id}/{id}.csv` (NaN outside the windows plotted by the ECG's images),
`train/{id}/{id}-{type}.png` plus `{id}-{type}.json` / `.npz` truth (ecgml.render.truth).
Test layout (`test=True`): `test.csv`, `test/{id}.png` (one type per ECG, cycling through `types`),
`solution.csv`, `types.csv`, truth sidecars in `truth/{id}-{type}.json|npz`. In the test layout the
`realworld` type only uses layouts that plot every standard window (solution.csv scores those).

Each ECG: the k-th consecutive 10 s window of its record (a random window when the record is too
short for k windows), resampled to an fs drawn from SYNTH_FS. Ids are consecutive integers from
`first_id`. A record that cannot be read or rendered is reported and skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ecgml.atomic import atomic_path
from ecgml.errors import EcgmlError
from ecgml.kaggle import (
    test_image_path,
    train_image_path,
    write_solution,
    write_test_table,
    write_train_table,
    write_types,
)
from ecgml.records import Record, iter_wfdb_paths, read_wfdb, resample, write_csv
from ecgml.render.layouts import parse_gain, parse_layout, parse_mix, parse_speed, pick
from ecgml.render.page import check_record, plotted_mask
from ecgml.render.presets import TYPES, Rendered, render
from ecgml.render.truth import write_truth

SYNTH_FS: tuple[int, ...] = (250, 256, 500, 512, 1000, 1025)
PNG_COMPRESSION = 1  # fast; 12 MP photos are ~15-25 MB either way


@dataclass
class SynthReport:
    out_dir: Path
    n_ecgs: int = 0
    n_images: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (record path, reason)
    ids: list[int] = field(default_factory=list)


def image_seed(seed: int, ecg_id: int, image_type: str) -> int:
    """A stable per-image seed from the dataset seed, the ECG id and the type."""
    ss = np.random.SeedSequence([int(seed), int(ecg_id), TYPES.index(image_type)])
    return int(ss.generate_state(1)[0])


def parse_types(text: str | Sequence[str]) -> list[str]:
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    bad = [t for t in items if t not in TYPES]
    if bad or not items:
        raise EcgmlError(None, f"unknown image type(s) {bad or text!r}; choose from {', '.join(TYPES)}")
    return items


def ecg_windows(record: Record, per_record: int, rng: np.random.Generator) -> list[Record]:
    """`per_record` 10 s windows: consecutive while the record lasts, then random ones."""
    check_record(record)
    n10 = record.fs * 10
    out = []
    for k in range(per_record):
        if (k + 1) * n10 <= record.n_samples:
            start = k * n10
        else:
            start = int(rng.integers(0, record.n_samples - n10 + 1))
        out.append(
            Record(record.signal[start : start + n10].copy(), record.fs, record.name, dict(record.meta))
        )
    return out


def write_image(path: Path, image_rgb: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        ok, buf = cv2.imencode(".png", image_rgb[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
        if not ok:
            raise EcgmlError(path, "PNG encoding failed")
        tmp.write_bytes(buf.tobytes())


def save_rendered(out: Rendered, image_path: Path, truth_stem: Path) -> None:
    """Write one rendered image and its `.json` / `.npz` truth."""
    write_image(image_path, out.image)
    write_truth(truth_stem, out.meta, out.truth, out.masks, out.rows, out.centre)


def synth_dataset(
    records: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    types: Sequence[str],
    per_record: int = 1,
    seed: int = 0,
    test: bool = False,
    layout: str | None = None,
    first_id: int = 1,
    progress: bool = True,
    layouts: str | None = None,
    speed: float | str | None = None,
    gain: str | float | None = None,
    derive_leads: bool = True,
) -> SynthReport:
    """Render a dataset; `records` is a folder of WFDB records or a list of record paths.

    `layout` forces one layout; `layouts` is a mix name or comma-separated layout names
    (ecgml.render.layouts) each image draws from (`realworld`/`lowres` default to the training mix,
    Kaggle types to 3x4+1R). `speed` and `gain` force the settings. Without `derive_leads`, a record
    lacking leads a layout draws (V4R, V8, V9) is skipped with the leads named.
    """
    types = parse_types(types)
    mix = parse_mix(layouts) if layouts else None
    if layout is not None:
        parse_layout(layout)
    if speed is not None:
        parse_speed(speed)
    if gain is not None:
        parse_gain(gain)

    def one(ecg: Record, t: str, ecg_id: int, standard: bool = False) -> Rendered:
        s_img = image_seed(seed, ecg_id, t)
        name = layout
        if name is None and mix is not None and t not in ("realworld", "lowres"):
            name = pick(mix, np.random.default_rng([s_img, 1]))
        return render(
            ecg, t, s_img, name, standard_windows=standard, speed=speed, gain=gain, mix=mix,
            derive_leads=derive_leads,
        )  # fmt: skip

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise EcgmlError(out_dir, "is an existing file; the dataset needs a folder")
    if per_record < 1:
        raise EcgmlError(None, f"per_record must be at least 1, got {per_record}")
    if isinstance(records, str | Path) and Path(records).is_dir():
        paths: list[Path] = iter_wfdb_paths(records)
        if not paths:
            raise EcgmlError(records, "no WFDB records (.hea) found")
    elif isinstance(records, str | Path):
        paths = [Path(records)]
    else:
        paths = [Path(p) for p in records]
    rng = np.random.default_rng(seed)
    report = SynthReport(out_dir)
    train_rows: list[dict[str, int]] = []
    test_ecgs: list[tuple[int, int]] = []
    solution: list[tuple[int, Record]] = []
    type_of: dict[int, str] = {}
    next_id = first_id
    n_jobs = len(paths) * per_record * (1 if test else len(types))

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), disable=not progress
    ) as bar:
        task = bar.add_task("images", total=n_jobs)
        for path in paths:
            try:
                rec = read_wfdb(path)
                windows = ecg_windows(rec, per_record, rng)
            except (EcgmlError, ValueError) as exc:
                report.skipped.append((str(path), str(exc)))
                bar.advance(task, per_record * (1 if test else len(types)))
                continue
            for win in windows:
                fs = int(rng.choice(SYNTH_FS))
                ecg = resample(win, fs, fs * 10)
                ecg_id = next_id
                next_id += 1
                try:
                    if test:
                        t = types[len(test_ecgs) % len(types)]
                        out = one(ecg, t, ecg_id, standard=True)
                        save_rendered(
                            out, test_image_path(out_dir, ecg_id), out_dir / "truth" / f"{ecg_id}-{t}"
                        )
                        test_ecgs.append((ecg_id, fs))
                        solution.append((ecg_id, ecg))
                        type_of[ecg_id] = t
                        report.n_images += 1
                        bar.advance(task)
                    else:
                        plotted = np.zeros(ecg.signal.shape, dtype=bool)
                        for t in types:
                            out = one(ecg, t, ecg_id)
                            img_path = train_image_path(out_dir, ecg_id, t)
                            save_rendered(out, img_path, img_path.with_suffix(""))
                            plotted |= plotted_mask(out.layout, fs, ecg.n_samples)
                            report.n_images += 1
                            bar.advance(task)
                        masked = Record(np.where(plotted, ecg.signal, np.nan), fs, str(ecg_id))
                        write_csv(masked, out_dir / "train" / str(ecg_id) / f"{ecg_id}.csv")
                        train_rows.append({"id": ecg_id, "fs": fs, "sig_len": ecg.n_samples})
                except (EcgmlError, ValueError) as exc:
                    report.skipped.append((str(path), str(exc)))
                    continue
                report.n_ecgs += 1
                report.ids.append(ecg_id)
    if test:
        write_test_table(test_ecgs, out_dir / "test.csv")
        write_solution(solution, out_dir / "solution.csv")
        write_types(type_of, out_dir / "types.csv")
    else:
        write_train_table(train_rows, out_dir / "train.csv")
    return report
