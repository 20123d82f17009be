"""The Kaggle "PhysioNet - Digitization of ECG Images" modified SNR, exactly as METRIC.md states it.

Per lead: mean-centred cross-correlation picks an integer lag within +-int(0.2 fs) (ties to the smallest
|lag|), the prediction is shifted (uncovered ends become NaN), a constant offset is removed (Brent),
NaN counts as 0, then signal and noise powers are summed over the 12 leads of an ECG. The ECG's ratio
is capped at 384; the score is 10 log10 of the mean of the ratios, floored at -384.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.signal import correlate, correlation_lags

from ecgml.errors import EcgmlError
from ecgml.records import LEADS

PERFECT_SCORE = 384.0
MAX_TIME_SHIFT = 0.2
UNCAPPED_DB_LIMIT = 200.0  # a perfect lead has infinite SNR; report it as this many dB


def align_signals(label: np.ndarray, pred: np.ndarray, max_shift: float = math.inf) -> np.ndarray:
    """Shift `pred` by the best integer lag and remove the constant offset; uncovered samples are NaN."""
    label = np.asarray(label, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if np.any(~np.isfinite(pred)):
        raise ValueError("prediction contains NaN or inf")
    corr = correlate(label - label.mean(), pred - pred.mean(), mode="full")
    lags = correlation_lags(label.size, pred.size, mode="full")
    keep = np.abs(lags) <= max_shift
    corr, lags = corr[keep], lags[keep]
    best = np.flatnonzero(corr == corr.max())
    lag = int(lags[best[np.argmin(np.abs(lags[best]))]])
    aligned = np.full(label.size, np.nan)
    # aligned[i] = pred[i - lag] wherever that index exists
    lo, hi = max(0, lag), min(label.size, pred.size + lag)
    if hi > lo:
        aligned[lo:hi] = pred[lo - lag : hi - lag]

    def cost(v: float) -> float:
        return float(np.nansum((label - (aligned - v)) ** 2))

    offset = minimize_scalar(cost, method="brent").x
    return aligned - offset


def lead_powers(label: np.ndarray, pred: np.ndarray, fs: int) -> tuple[float, float]:
    """(signal power, noise power) of one lead after alignment."""
    aligned = align_signals(label, pred, int(fs * MAX_TIME_SHIFT))
    aligned = np.where(np.isfinite(aligned), aligned, 0.0)
    label = np.asarray(label, dtype=np.float64)
    return float(np.sum(label**2)), float(np.sum((label - aligned) ** 2))


def capped_ratio(p_signal: float, p_noise: float) -> float:
    if p_noise == 0:  # checked first: all-zero against all-zero is perfect (METRIC.md)
        return PERFECT_SCORE
    if p_signal == 0:
        return 0.0
    return min(p_signal / p_noise, PERFECT_SCORE)


def ratio_db(p_signal: float, p_noise: float, limit: float = UNCAPPED_DB_LIMIT) -> float:
    if p_noise == 0:
        return limit
    if p_signal == 0:
        return -limit
    return float(np.clip(10 * math.log10(p_signal / p_noise), -limit, limit))


def score_from_ratios(ratios: Sequence[float]) -> float:
    mean = float(np.mean(ratios)) if len(ratios) else 0.0
    return max(10 * math.log10(mean), -PERFECT_SCORE) if mean > 0 else -PERFECT_SCORE


@dataclass
class EcgScore:
    id: int
    fs: int
    ratio: float
    db: float
    db_uncapped: float
    lead_signal: dict[str, float]
    lead_noise: dict[str, float]
    snr2024_db: dict[str, float]
    type: str = ""


@dataclass
class ScoreReport:
    score: float
    per_ecg: list[EcgScore]
    per_type: dict[str, float] = field(default_factory=dict)
    per_lead_db: dict[str, float] = field(default_factory=dict)
    snr2024_db: float = float("nan")

    @property
    def frac_ge_25db(self) -> float:
        return float(np.mean([e.db >= 25 for e in self.per_ecg])) if self.per_ecg else 0.0

    @property
    def frac_lt_10db(self) -> float:
        return float(np.mean([e.db < 10 for e in self.per_ecg])) if self.per_ecg else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "per_type": self.per_type,
            "per_lead_db": self.per_lead_db,
            "snr2024_db": self.snr2024_db,
            "frac_ge_25db": self.frac_ge_25db,
            "frac_lt_10db": self.frac_lt_10db,
            "n_ecgs": len(self.per_ecg),
            "per_ecg": [
                {"id": e.id, "type": e.type, "ratio": e.ratio, "db": e.db, "db_uncapped": e.db_uncapped}
                for e in self.per_ecg
            ],
        }


def score_ecg(ecg_id: int, fs: int, labels: dict[str, np.ndarray], preds: dict[str, np.ndarray]) -> EcgScore:
    """Score one ECG from per-lead label and prediction arrays (same length per lead)."""
    if int(len(labels["II"]) / 10) != fs:
        raise ValueError(f"ECG {ecg_id}: lead II has {len(labels['II'])} rows, inconsistent with fs={fs}")
    sig: dict[str, float] = {}
    noise: dict[str, float] = {}
    snr24: dict[str, float] = {}
    for lead in LEADS:
        x, y = np.asarray(labels[lead], dtype=np.float64), np.asarray(preds[lead], dtype=np.float64)
        if x.shape != y.shape:
            raise ValueError(f"ECG {ecg_id} lead {lead}: {y.size} predicted rows for {x.size} label rows")
        sig[lead], noise[lead] = lead_powers(x, y, fs)
        snr24[lead] = ratio_db(float(np.sum(x**2)), float(np.sum((x - y) ** 2)))
    ps, pn = sum(sig.values()), sum(noise.values())
    ratio = capped_ratio(ps, pn)
    db = 10 * math.log10(ratio) if ratio > 0 else -PERFECT_SCORE
    return EcgScore(ecg_id, fs, ratio, db, ratio_db(ps, pn), sig, noise, snr24)


def score_tables(
    solution: pd.DataFrame,
    submission: pd.DataFrame,
    types: dict[str, str] | None = None,
    solution_path: str | Path | None = None,
    submission_path: str | Path | None = None,
) -> ScoreReport:
    """Score long tables as `ecgml.kaggle.read_long_table` returns them (id, value, ecg, row, lead)."""
    if "fs" not in solution.columns:
        raise EcgmlError(solution_path, "solution has no 'fs' column")
    if not np.all(np.isfinite(submission["value"].to_numpy())):
        bad = submission.loc[~np.isfinite(submission["value"].to_numpy()), "id"].iloc[0]
        raise EcgmlError(submission_path, f"NaN or inf in submission (first at id {bad})")
    if submission["id"].duplicated().any():
        raise EcgmlError(
            submission_path, f"duplicate id {submission.loc[submission['id'].duplicated(), 'id'].iloc[0]}"
        )
    merged = solution.merge(submission[["id", "value"]], on="id", how="left", suffixes=("", "_pred"))
    missing = merged["value_pred"].isna()
    if missing.any():
        raise EcgmlError(
            submission_path,
            f"{int(missing.sum())} solution rows missing, e.g. {merged.loc[missing, 'id'].iloc[0]}",
        )
    per_ecg: list[EcgScore] = []
    types = types or {}
    for ecg_id, g in merged.groupby("ecg", sort=True):
        fs_values = g["fs"].unique()
        if len(fs_values) != 1:
            raise EcgmlError(solution_path, f"ECG {ecg_id}: fs is not constant")
        g = g.sort_values(["lead", "row"])
        labels = {lead: part["value"].to_numpy() for lead, part in g.groupby("lead")}
        preds = {lead: part["value_pred"].to_numpy() for lead, part in g.groupby("lead")}
        absent = [lead for lead in LEADS if lead not in labels]
        if absent:
            raise EcgmlError(solution_path, f"ECG {ecg_id}: no rows for lead(s) {absent}")
        try:
            s = score_ecg(int(ecg_id), int(fs_values[0]), labels, preds)  # type: ignore[arg-type]
        except ValueError as exc:
            raise EcgmlError(solution_path, str(exc)) from exc
        s.type = types.get(str(ecg_id), "")
        per_ecg.append(s)
    return summarise(per_ecg)


def summarise(per_ecg: list[EcgScore]) -> ScoreReport:
    """Overall, per-type, per-lead and 2024-style figures from per-ECG scores."""
    report = ScoreReport(score_from_ratios([e.ratio for e in per_ecg]), per_ecg)
    for t in sorted({e.type for e in per_ecg if e.type}):
        report.per_type[t] = score_from_ratios([e.ratio for e in per_ecg if e.type == t])
    for lead in LEADS:
        ps = sum(e.lead_signal[lead] for e in per_ecg)
        pn = sum(e.lead_noise[lead] for e in per_ecg)
        report.per_lead_db[lead] = ratio_db(ps, pn)
    if per_ecg:
        report.snr2024_db = float(np.mean([v for e in per_ecg for v in e.snr2024_db.values()]))
    return report


def score_files(
    solution_path: str | Path, submission_path: str | Path, types_path: str | Path | None = None
) -> ScoreReport:
    from ecgml.kaggle import read_long_table, read_types

    solution = read_long_table(solution_path)
    submission = read_long_table(submission_path)
    types = read_types(types_path) if types_path else None
    return score_tables(solution, submission, types, solution_path, submission_path)
