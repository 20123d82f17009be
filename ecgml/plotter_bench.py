"""A second plotter we did not write: test-split records drawn by the `ecg-plot` package (PyPI, MIT).

Issue 15 asks for a generator gap measured inside the project. `ecg_plot` 0.3's `12lead` layout with
`time_mode="sequential"` and a lead II rhythm strip plots the Kaggle windows (I/II/III 0-2.5 s, aVR/aVL/aVF
2.5-5 s, V1-V3 5-7.5 s, V4-V6 7.5-10 s, II 0-10 s) at 25 mm/s and 10 mm/mV, but in its own style: separate
panels with 6 mm gaps between columns and rows sized to the tallest lead, a grid only inside panels, its
own pulse, labels and footer. The set is written in the competition's test layout (`test.csv`,
`test/{id}.png`, `solution.csv`, `types.csv` with type `ecgplot` or `ecgplot-bw`, and `0001` for this
project's renderer on the same ECGs), so `ecgml.digitize_bench.run_bench` scores it like the renderer's
sets. `ecg-plot` is a `dev` extra only (benchmarks and tests), never a runtime dependency.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ecgml.errors import EcgmlError
from ecgml.kaggle import test_image_path, write_solution, write_test_table, write_types
from ecgml.records import LEADS, Record, read_wfdb, resample
from ecgml.synth import SYNTH_FS, ecg_windows, write_image

PLOTTER_DPI = 200  # the Kaggle pages' resolution
STYLES = ("ecgplot", "ecgplot-bw")  # ecg_plot's default red grid, and its "bw" style; alternating


def draw_ecg_plot(record: Record, bw: bool = False, dpi: int = PLOTTER_DPI) -> np.ndarray:
    """The first 10 s of `record` as an RGB page drawn by ecg_plot (3x4 sequential + II strip)."""
    import ecg_plot

    sig = record.signal[: record.fs * 10].T.astype(np.float64)
    chart = ecg_plot.plot(
        sig, sample_rate=record.fs, lead_names=list(LEADS), layout="12lead", time_mode="sequential",
        rhythm_lead="II", window=(0.0, 10.0), speed=25, gain=10, style="bw" if bw else None,
    )  # fmt: skip
    return rasterised(chart, dpi)


def rasterised(chart: Any, dpi: int) -> np.ndarray:
    """An ecg_plot chart as an RGB page at `dpi` (Matplotlib, no display)."""
    import matplotlib

    matplotlib.use("Agg")  # no display; the figure is only rasterised

    fig, _ = chart.to_matplotlib()
    return figure_rgb(fig, dpi, "ecg_plot")


def figure_rgb(fig: Any, dpi: int, plotter: str) -> np.ndarray:
    """A Matplotlib figure as an RGB page at `dpi`, closed afterwards (`plotter` names it in the error)."""
    import matplotlib.pyplot as plt

    buf = BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    finally:
        plt.close(fig)
    img = cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise EcgmlError(None, f"{plotter}'s figure did not rasterise")
    return np.ascontiguousarray(img[..., ::-1])


def make_plotter_set(
    out_dir: str | Path, records: list[Path], per_record: int = 1, seed: int = 0, ours: bool = True
) -> Path:
    """`per_record` ECGs per record (10 s windows at an fs drawn from SYNTH_FS), each drawn by ecg_plot
    (styles alternating) and, with `ours`, also as this project's type-0001 page under another id, so the
    two generators are scored on the same ECGs. Competition test layout; kept when `solution.csv` exists."""
    from ecgml.render.presets import render
    from ecgml.synth import image_seed, save_rendered

    out_dir = Path(out_dir)
    if (out_dir / "solution.csv").exists():
        return out_dir
    rng = np.random.default_rng(seed)
    ecgs: list[tuple[int, int]] = []
    solution: list[tuple[int, Record]] = []
    types: dict[int, str] = {}
    n_plotted = 0
    for path in records:
        try:
            wins = ecg_windows(read_wfdb(path), per_record, rng)
        except (EcgmlError, ValueError) as exc:
            print(f"skip {path}: {exc}")
            continue
        for win in wins:
            fs = int(rng.choice(SYNTH_FS))
            ecg = resample(win, fs, fs * 10)
            style = STYLES[n_plotted % len(STYLES)]
            n_plotted += 1
            pages = [(style, draw_ecg_plot(ecg, bw=style.endswith("bw")))]
            if ours:
                pages.append(("0001", np.empty(0)))
            for kind, image in pages:
                ecg_id = len(ecgs) + 1
                if kind == "0001":
                    out = render(ecg, "0001", image_seed(seed, ecg_id, "0001"))
                    save_rendered(out, test_image_path(out_dir, ecg_id), out_dir / "truth" / f"{ecg_id}-0001")
                else:
                    write_image(test_image_path(out_dir, ecg_id), image)
                ecgs.append((ecg_id, fs))
                solution.append((ecg_id, ecg))
                types[ecg_id] = kind
    if not ecgs:
        raise EcgmlError(out_dir, "no ECG drawn (every record was skipped)")
    write_test_table(ecgs, out_dir / "test.csv")
    write_types(types, out_dir / "types.csv")
    write_solution(solution, out_dir / "solution.csv")
    return out_dir


# ------------------------------------------------------------- ecg_plot's layouts, for the layout benchmark

# the page layouts ecg_plot draws, as ecg_plot's own options: a lead's plotted window comes from the
# chart's panels (what the plotter says it drew), never from this project's layout templates
PLOTTER_LAYOUTS: dict[str, dict[str, Any]] = {
    "3x4+1R": {"layout": "12lead", "time_mode": "sequential", "rhythm_lead": "II", "window": (0.0, 10.0)},
    "3x4": {"layout": "12lead", "time_mode": "sequential", "window": (0.0, 10.0)},
    "6x2": {"layout": "columns", "columns": 2, "time_mode": "simultaneous", "window": (0.0, 5.0)},
    "6x2-seq": {"layout": "columns", "columns": 2, "time_mode": "sequential", "window": (0.0, 10.0)},
    "12x1": {"layout": "stacked", "window": (0.0, 10.0)},
}
PLOTTER_DPIS = (100, 150, 200, 300)  # exports and scans of them, small to large
FIXED_ROWS_MV = (1.0, 1.5)  # rows of a fixed height (+-this, a cart's pitch: tall complexes cross rows)
PLOTTER_GAINS = (5.0, 10.0, 20.0)  # mm/mV: with the calibration pulse drawn, else 10


def plotter_page(record: Record, layout: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(RGB page, truth at the record's rate with NaN where the page plots nothing) of the first 10 s
    of `record` drawn by ecg_plot in `layout` (PLOTTER_LAYOUTS), its style drawn from `rng`: red or
    black-and-white grid, pulse and names shown or not, rows sized to the tallest lead or fixed, gain
    and resolution."""
    import ecg_plot
    from ecg_plot.chart import Style

    pulse = bool(rng.random() < 0.8)
    bw = {"line_color": "black", "major_color": "#999999", "minor_color": "#dddddd"}  # ecg_plot's "bw"
    base = Style() if rng.random() < 0.5 else Style(**bw)
    style = Style(**{**base.__dict__, "calibration": pulse, "lead_names": bool(rng.random() < 0.85)})
    gain = float(rng.choice(PLOTTER_GAINS, p=(0.15, 0.7, 0.15))) if pulse else 10.0
    fixed = float(rng.choice(FIXED_ROWS_MV)) if rng.random() < 0.4 else None
    sig = record.signal[: record.fs * 10].T.astype(np.float64)
    chart = ecg_plot.plot(
        sig, sample_rate=record.fs, lead_names=list(LEADS), speed=25, gain=gain, style=style,
        amplitude_range=None if fixed is None else (-fixed, fixed), **PLOTTER_LAYOUTS[layout],
    )  # fmt: skip
    truth = np.full(sig.T.shape, np.nan)
    t = np.arange(sig.shape[1]) / record.fs
    for p in chart.panels:
        on = (t >= p.start) & (t < p.end)
        truth[on, p.lead] = sig[p.lead, on]
    return rasterised(chart, int(rng.choice(PLOTTER_DPIS))), truth


def plotter_pages(
    folder: str | Path, records: list[Path], per_layout: int, seed: int
) -> Iterator[tuple[str, str, Path, np.ndarray, int | None]]:
    """`per_layout` pages per ecg_plot layout (name, family "ecgplot <layout>", png, truth at 500 Hz,
    orientation 0), drawn when first reached and kept in `folder`; page i of every layout before page
    i + 1, page k from record k and its own seed, as the layout benchmark's renderer set."""
    from ecgml.records import read_wfdb

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(per_layout):
        for j, layout in enumerate(PLOTTER_LAYOUTS):
            k = j * per_layout + i
            name = f"ecgplot-{layout}_{i:03d}"
            png, npz = folder / f"{name}.png", folder / f"{name}.npz"
            if not (png.exists() and npz.exists()):
                rec = resample(read_wfdb(records[k % len(records)]).window(0, 10), 500, 5000)
                image, truth = plotter_page(rec, layout, np.random.default_rng(seed * 1000 + k))
                write_image(png, image)
                tmp = npz.with_name(npz.stem + ".tmp.npz")
                np.savez_compressed(tmp, truth=truth)
                tmp.replace(npz)
            yield name, f"ecgplot {layout}", png, np.load(npz)["truth"], 0
