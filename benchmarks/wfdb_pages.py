"""A third plotter we did not write: test-split records drawn by `wfdb`'s own `plot_items` (evaluation only).

Why: ECG-Image-Kit and ecg-plot both draw cart-like pages. Many copies that reach users are instead what
PhysioNet's Python tools draw: one lead per Matplotlib subplot, stacked in one column, each boxed with
axis ticks and a "I/mV" y label, `ecg_grids='all'` laying wfdb's grey grid (major 0.2 s x 0.5 mV, minor
0.04 s x 0.125 mV: four minor lines a major box vertically, five horizontally), no calibration pulse, no
printed speed or gain. wfdb is a runtime dependency already (no new package). Two ways the world sizes such a
figure, both drawn:
- `page`: the figure is a Letter or A4 sheet (landscape, or portrait for 12 leads) and wfdb autoscales each
  subplot, so a major box is 0.2 s by 0.5 mV but neither 5 mm wide nor square; with `sharey` off each lead
  has its own gain. The grid still tells the units: a reader that measures its two pitches apart reads it.
- `paper`: the same figure resized (as a user printing to scale does) so the grid is the paper convention,
  25 mm/s and 10 mm/mV, with one y range for every lead (`sharey`), each lead less its median (as a cart
  draws each on its own baseline; else one lead's offset would make every row as tall as the page).
The truth is what is plotted: the record's first 10 s (less each lead's median on `paper` pages), NaN for
leads not on the page.
This module lives in `benchmarks/` (not `ecgml/`): it is evaluation, and never feeds training.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ecgml.plotter_bench import figure_rgb
from ecgml.records import LEADS, read_wfdb, resample
from ecgml.synth import write_image

# the pages wfdb draws: one column of subplots, each lead the whole 10 s
WFDB_LAYOUTS: dict[str, tuple[str, ...]] = {
    "12x1": LEADS,
    "6x1-limb": LEADS[:6],
    "6x1-chest": LEADS[6:],
}
SCALES = ("page", "paper")
SHEETS_IN = {"letter": (11.0, 8.5), "a4": (11.69, 8.27)}  # landscape, inches (12 leads: portrait too)
WFDB_DPIS = (100, 150, 200)  # small web copies to scans
MM_PER_IN = 25.4
# not a page the world sends: wfdb's subplots are all as tall as the page's largest range, so 12 leads to
# scale made figures 0.4-1.3 m tall (seed 34, test records)
SKIPPED = {("paper", "12x1")}


def wfdb_figure(
    sig: np.ndarray, fs: int, leads: tuple[str, ...], figsize: tuple[float, float], sharey: bool, style: str
) -> Any:
    """wfdb's own figure of `sig` ((n, len(leads)) mV): stacked subplots and ECG grid, as users call it."""
    import matplotlib

    matplotlib.use("Agg")  # no display; the figure is only rasterised
    import wfdb

    return wfdb.plot_items(
        signal=sig, fs=fs, time_units="seconds", sig_name=list(leads), sig_units=["mV"] * len(leads),
        ecg_grids="all", figsize=figsize, sharex=True, sharey=sharey, sig_style=[style], return_fig=True,
    )  # fmt: skip


def to_paper_scale(fig: Any, speed: float = 25.0, gain: float = 10.0) -> None:
    """Resize `fig` so its subplots plot `speed` mm/s and `gain` mm/mV (the subplot fractions and the data
    limits unchanged; wfdb's grid lines are in data units, so they become 5 mm boxes)."""
    ax = fig.axes[0]
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    _, _, fw, fh = ax.get_position().bounds  # fractions of the figure
    fig.set_size_inches((x1 - x0) * speed / MM_PER_IN / fw, (y1 - y0) * gain / MM_PER_IN / fh)


def wfdb_page(
    signal: np.ndarray, fs: int, layout: str, scale: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(RGB page, truth (n, 12) with NaN for leads not on the page, the style drawn) of `signal` ((n, 12)
    mV, 10 s) drawn by wfdb in `layout` (WFDB_LAYOUTS) at `scale` (SCALES); sheet, DPI, trace colour
    (wfdb's default blue or black) and `sharey` drawn from `rng`."""
    leads = WFDB_LAYOUTS[layout]
    cols = [LEADS.index(lead) for lead in leads]
    sheet = str(rng.choice(sorted(SHEETS_IN)))
    w, h = SHEETS_IN[sheet]
    portrait = layout == "12x1" and bool(rng.random() < 0.5)
    style = "" if rng.random() < 0.5 else "k"  # "": Matplotlib's default colour, what plot_wfdb draws
    sharey = True if scale == "paper" else bool(rng.random() < 0.5)
    dpi = int(rng.choice(WFDB_DPIS))
    shown = signal[:, cols] - (np.median(signal[:, cols], axis=0) if scale == "paper" else 0.0)
    fig = wfdb_figure(shown, fs, leads, (h, w) if portrait else (w, h), sharey, style)
    if scale == "paper":
        to_paper_scale(fig)
        sheet, portrait = "to scale", False
    truth = np.full(signal.shape, np.nan)
    truth[:, cols] = shown
    inches = [round(float(v), 2) for v in fig.get_size_inches()]
    info = {"sheet": sheet + (" portrait" if portrait else ""), "dpi": dpi, "sharey": sharey,
            "colour": style or "default", "scale": scale, "inches": inches}  # fmt: skip
    return figure_rgb(fig, dpi, "wfdb"), truth, info


def wfdb_pages(
    folder: str | Path, records: list[Path], per_family: int, seed: int
) -> Iterator[tuple[str, str, Path, np.ndarray, int | None]]:
    """`per_family` pages per (scale, layout) family (name, family "wfdb-SCALE LAYOUT", png, truth at
    500 Hz, orientation 0), drawn when first reached and kept in `folder` (with the style drawn, as JSON);
    page i of every family before page i + 1, page k from record k and its own seed."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fams = [(scale, layout) for scale in SCALES for layout in WFDB_LAYOUTS if (scale, layout) not in SKIPPED]
    for i in range(per_family):
        for j, (scale, layout) in enumerate(fams):
            k = j * per_family + i
            name = f"wfdb-{scale}-{layout}_{i:03d}"
            png, npz = folder / f"{name}.png", folder / f"{name}.npz"
            if not (png.exists() and npz.exists()):
                rec = resample(read_wfdb(records[k % len(records)]).window(0, 10), 500, 5000)
                image, truth, info = wfdb_page(
                    rec.signal, rec.fs, layout, scale, np.random.default_rng(seed * 1000 + k)
                )
                write_image(png, image)
                (folder / f"{name}.json").write_text(
                    json.dumps({"record": records[k % len(records)].name, **info})
                )
                tmp = npz.with_name(npz.stem + ".tmp.npz")
                np.savez_compressed(tmp, truth=truth)
                tmp.replace(npz)
            yield name, f"wfdb-{scale} {layout}", png, np.load(npz)["truth"], 0
