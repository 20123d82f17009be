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

from io import BytesIO
from pathlib import Path

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
    import matplotlib

    matplotlib.use("Agg")  # no display; the figure is only rasterised
    import matplotlib.pyplot as plt

    sig = record.signal[: record.fs * 10].T.astype(np.float64)
    chart = ecg_plot.plot(
        sig, sample_rate=record.fs, lead_names=list(LEADS), layout="12lead", time_mode="sequential",
        rhythm_lead="II", window=(0.0, 10.0), speed=25, gain=10, style="bw" if bw else None,
    )  # fmt: skip
    fig, _ = chart.to_matplotlib()
    buf = BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    finally:
        plt.close(fig)
    img = cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise EcgmlError(None, "ecg_plot's figure did not rasterise")
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
