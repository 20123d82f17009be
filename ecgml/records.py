"""The 12-lead record: lead names, WFDB and competition-CSV input and output, resampling."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import signal as sps

from ecgml.atomic import atomic_path
from ecgml.errors import EcgmlError

LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
# The six limb leads (LEADS[:6]) as linear functions of (I, II): Einthoven's and Goldberger's relations.
LIMB_FROM_I_II = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0], [-0.5, -0.5], [1.0, -0.5], [-0.5, 1.0]])
_CANONICAL = {name.lower(): name for name in LEADS}
MIN_DURATION_S = 10.0


def normalise_lead_name(name: str) -> str:
    """Map spellings such as `AVR`, `avr`, ` aVR ` to the canonical lead name; raise on anything else."""
    key = name.strip().lower()
    if key not in _CANONICAL:
        raise KeyError(name)
    return _CANONICAL[key]


@dataclass
class Record:
    """Twelve leads in LEADS order, float32 mV, shape (n_samples, 12), sampled at an integer `fs`."""

    signal: np.ndarray
    fs: int
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.signal = np.asarray(self.signal, dtype=np.float32)
        if self.signal.ndim != 2 or self.signal.shape[1] != len(LEADS):
            raise ValueError(f"record {self.name!r}: signal must have shape (n, 12), got {self.signal.shape}")
        if int(self.fs) != self.fs or self.fs <= 0:
            raise ValueError(f"record {self.name!r}: fs must be a positive integer, got {self.fs}")
        self.fs = int(self.fs)

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[0])

    @property
    def duration(self) -> float:
        return self.n_samples / self.fs

    def lead(self, name: str) -> np.ndarray:
        return self.signal[:, LEADS.index(normalise_lead_name(name))]

    def window(self, start_s: float, duration_s: float = 10.0) -> Record:
        """The `duration_s` seconds starting at `start_s`, exactly round(duration_s * fs) samples."""
        i0 = int(round(start_s * self.fs))
        n = int(round(duration_s * self.fs))
        if i0 < 0 or i0 + n > self.n_samples:
            raise ValueError(
                f"record {self.name!r}: window {start_s}+{duration_s} s exceeds {self.duration} s"
            )
        return Record(self.signal[i0 : i0 + n].copy(), self.fs, self.name, dict(self.meta))


def resample_signal(x: np.ndarray, n_out: int) -> np.ndarray:
    """FFT resampling along axis 0 to exactly `n_out` samples (scipy.signal.resample)."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] == n_out:
        return x.astype(np.float32)
    if x.shape[0] < 2:
        return np.repeat(x[:1], n_out, axis=0).astype(np.float32)
    # Remove the linear trend first so the FFT's implied periodicity does not ring at the ends.
    n = x.shape[0]
    t_in = np.arange(n) / n
    slope = x[-1] - x[0]
    trend = x[0] + np.multiply.outer(t_in, slope)
    y = sps.resample(x - trend, n_out, axis=0)
    t_out = np.arange(n_out) / n_out
    return (y + x[0] + np.multiply.outer(t_out, slope)).astype(np.float32)


def resample(record: Record, fs: int, n_samples: int | None = None) -> Record:
    """The record at a new `fs`; `n_samples` defaults to round(duration * fs)."""
    n_out = n_samples if n_samples is not None else int(round(record.duration * fs))
    return Record(resample_signal(record.signal, n_out), fs, record.name, dict(record.meta))


def _check_signal(path: Path, sig: np.ndarray, fs: float, min_duration: float) -> None:
    if fs <= 0 or int(fs) != fs:
        raise EcgmlError(path, f"sampling rate must be a positive integer, got {fs}")
    if sig.shape[0] / fs < min_duration - 1e-9:
        raise EcgmlError(path, f"record lasts {sig.shape[0] / fs:.2f} s, shorter than {min_duration:.0f} s")
    if not np.all(np.isfinite(sig)):
        raise EcgmlError(path, "record contains NaN or infinite samples")


def read_wfdb(path: str | Path, min_duration: float = MIN_DURATION_S) -> Record:
    """Read a WFDB record (`.hea` with `.dat` or `.mat`), normalise lead names, reorder to LEADS."""
    import wfdb  # imported here: wfdb is slow to import and most commands do not need it

    path = Path(path)
    stem = path.with_suffix("") if path.suffix in {".hea", ".dat", ".mat"} else path
    if not stem.with_suffix(".hea").exists():
        raise EcgmlError(path, "no WFDB header (.hea) found")
    try:
        rec = wfdb.rdrecord(str(stem))
    except Exception as exc:  # wfdb raises many types for malformed files
        raise EcgmlError(path, f"cannot read WFDB record: {exc}") from exc
    if rec.p_signal is None or rec.sig_name is None:
        raise EcgmlError(path, "WFDB record has no physical signal")
    names: dict[str, int] = {}
    for i, raw in enumerate(rec.sig_name):
        try:
            names.setdefault(normalise_lead_name(raw), i)
        except KeyError:
            continue  # extra channels such as Frank leads are ignored
    missing = [lead for lead in LEADS if lead not in names]
    if missing:
        raise EcgmlError(path, f"record lacks leads {missing} (has {list(rec.sig_name)})")
    sig = np.asarray(rec.p_signal, dtype=np.float64)[:, [names[lead] for lead in LEADS]]
    units = [str(u).lower() for u in (rec.units or [])]
    scale = np.array([1e-3 if units and units[names[lead]] in {"uv", "µv"} else 1.0 for lead in LEADS])
    sig = sig * scale
    _check_signal(path, sig, float(rec.fs), min_duration)
    meta = {"source": str(stem), "comments": list(rec.comments or [])}
    return Record(sig.astype(np.float32), int(rec.fs), stem.name, meta)


def record_name(stem: str) -> str:
    """A WFDB-readable record (and output file) name: letters, digits, `_` and `-` only.

    `scan.2024-01-05` → `scan_2024-01-05`, `ECG (2) copy` → `ECG_2_copy`; wfdb refuses the others.
    """
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_") or "record"


def write_wfdb(record: Record, out_dir: str | Path, name: str | None = None) -> Path:
    """Write `{name}.hea`/`{name}.dat` (format 16, 1000 adu/mV); NaN samples are stored as 0.

    The name is made WFDB-safe (`record_name`), and the written path returned."""
    import wfdb

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = record_name(name or record.name or "record")
    sig = np.nan_to_num(record.signal.astype(np.float64), nan=0.0)
    wfdb.wrsamp(
        name,
        fs=record.fs,
        units=["mV"] * len(LEADS),
        sig_name=list(LEADS),
        p_signal=sig,
        fmt=["16"] * len(LEADS),
        adc_gain=[1000.0] * len(LEADS),
        baseline=[0] * len(LEADS),
        write_dir=str(out_dir),
    )
    return out_dir / f"{name}.hea"


def read_csv(path: str | Path, fs: int) -> Record:
    """Read the competition's per-ECG CSV (12 lead columns, NaN where a lead is not plotted)."""
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except Exception as exc:
        raise EcgmlError(path, f"cannot read CSV: {exc}") from exc
    cols: dict[str, str] = {}
    for c in df.columns:
        try:
            cols[normalise_lead_name(str(c))] = str(c)
        except KeyError:
            continue
    missing = [lead for lead in LEADS if lead not in cols]
    if missing:
        raise EcgmlError(path, f"missing lead columns {missing}")
    try:
        sig = df[[cols[lead] for lead in LEADS]].to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise EcgmlError(path, f"non-numeric value: {exc}") from exc
    if np.isinf(sig).any():
        raise EcgmlError(path, "infinite value")
    return Record(sig.astype(np.float32), fs, path.stem)


def write_csv(record: Record, path: str | Path) -> Path:
    """Write the per-ECG CSV atomically (12 columns in LEADS order, mV, NaN kept as empty)."""
    path = Path(path)
    df = pd.DataFrame(record.signal.astype(np.float64), columns=list(LEADS))
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.5f")
    return path


def iter_wfdb_paths(folder: str | Path) -> list[Path]:
    """Every WFDB header under `folder`, sorted, as paths without suffix."""
    return sorted(p.with_suffix("") for p in Path(folder).rglob("*.hea"))
