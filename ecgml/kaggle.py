"""The competition's data layout: train/test tables, per-ECG CSVs, solutions and streamed submissions."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ecgml.atomic import atomic_path
from ecgml.errors import EcgmlError
from ecgml.layout import lead_window
from ecgml.records import LEADS, Record

log = logging.getLogger(__name__)

TRAIN_COLUMNS = ("id", "fs", "sig_len")
TEST_COLUMNS = ("id", "lead", "fs", "number_of_rows")


def masked_signal(record: Record) -> np.ndarray:
    """The 10 s record with NaN outside each lead's plotted window on the standard 3x4+1R page."""
    if record.n_samples != record.fs * 10:
        raise ValueError(f"record {record.name!r} has {record.n_samples} samples, expected {record.fs * 10}")
    out = np.full(record.signal.shape, np.nan, dtype=np.float32)
    for j, lead in enumerate(LEADS):
        start, n = lead_window(lead, record.fs)
        out[start : start + n, j] = record.signal[start : start + n, j]
    return out


def lead_segments(record: Record) -> dict[str, np.ndarray]:
    """Each lead's plotted window as its own array (what the submission holds)."""
    out = {}
    for j, lead in enumerate(LEADS):
        start, n = lead_window(lead, record.fs)
        out[lead] = record.signal[start : start + n, j]
    return out


def _read_table(path: Path, columns: tuple[str, ...], text: tuple[str, ...] = ("lead",)) -> pd.DataFrame:
    """A CSV with `columns`; those in `text` are kept as written, the others must be positive integers."""
    if not path.exists():
        raise EcgmlError(path, "file not found")
    try:
        df = pd.read_csv(path, dtype={"type": str, **dict.fromkeys(text, str)}, keep_default_na=False)
    except Exception as exc:
        raise EcgmlError(path, f"cannot read CSV: {exc}") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise EcgmlError(path, f"missing column(s) {missing}; has {list(df.columns)}")
    for c in columns:
        if c in text:
            continue
        values = pd.to_numeric(df[c], errors="coerce")
        if values.isna().any():
            bad = df.loc[values.isna(), c].iloc[0]
            raise EcgmlError(path, f"column {c!r} has a non-integer value {bad!r}")
        if (values <= 0).any() or (values != values.round()).any():
            raise EcgmlError(path, f"column {c!r} must hold positive integers")
        df[c] = values.astype(np.int64)
    return df


def read_train_table(path: str | Path) -> pd.DataFrame:
    return _read_table(Path(path), TRAIN_COLUMNS)


def read_test_table(path: str | Path) -> pd.DataFrame:
    """test.csv: one row per (ECG, lead); checks lead names and the row counts of the windows.

    Ids stay text as written (`1e3` is ECG `1e3`, image `test/1e3.png`, never 1000); a repeated
    (id, lead) row is warned about and its first occurrence used."""
    path = Path(path)
    df = _read_table(path, TEST_COLUMNS, text=("id", "lead"))
    df["id"] = df["id"].str.strip()
    bad_id = df["id"][~df["id"].str.fullmatch(r"[^\s_/\\]+")]
    if len(bad_id):
        raise EcgmlError(path, f"id {bad_id.iloc[0]!r} is empty or holds a space, '_' or a slash")
    bad = sorted(set(df["lead"]) - set(LEADS))
    if bad:
        raise EcgmlError(path, f"unknown lead name(s) {bad}")
    dup = df.duplicated(["id", "lead"])
    if dup.any():
        first = df[dup].iloc[0]
        log.warning(
            "%s: %d repeated (id, lead) row(s), e.g. ECG %s lead %s; the first of each is used",
            path, int(dup.sum()), first["id"], first["lead"],
        )  # fmt: skip
        df = df[~dup].reset_index(drop=True)
    for ecg, lead, fs, n in zip(df["id"], df["lead"], df["fs"], df["number_of_rows"], strict=True):
        expected = lead_window(str(lead), int(fs))[1]
        if int(n) != expected:
            raise EcgmlError(path, f"ECG {ecg} lead {lead}: number_of_rows {n}, expected {expected}")
    return df


def _write_rows(path: Path, header: Iterable[str], rows: Iterable[Iterable[object]]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_train_table(rows: Iterable[dict[str, int]], path: str | Path) -> Path:
    return _write_rows(Path(path), TRAIN_COLUMNS, ([r["id"], r["fs"], r["sig_len"]] for r in rows))


def write_test_table(ecgs: Iterable[tuple[int | str, int]], path: str | Path) -> Path:
    """test.csv for (id, fs) pairs: 12 rows per ECG with the standard window lengths."""
    rows = ([i, lead, fs, lead_window(lead, fs)[1]] for i, fs in ecgs for lead in LEADS)
    return _write_rows(Path(path), TEST_COLUMNS, rows)


def write_types(mapping: dict[int, str], path: str | Path) -> Path:
    return _write_rows(Path(path), ("id", "type"), sorted(mapping.items()))


def read_types(path: str | Path) -> dict[str, str]:
    path = Path(path)
    df = _read_table(path, ("id",))
    if "type" not in df.columns:
        raise EcgmlError(path, "missing column 'type'")
    return {str(i): str(t) for i, t in zip(df["id"], df["type"], strict=True)}


def _long_rows(ecg_id: int | str, segments: dict[str, np.ndarray]) -> Iterator[tuple[str, float]]:
    for lead in LEADS:
        for r, v in enumerate(segments[lead]):
            yield f"{ecg_id}_{r}_{lead}", float(v)


@dataclass
class SubmissionWriter:
    """Stream `id,value` rows ECG by ECG to CSV or parquet; the file appears only when closed cleanly.

    Values must be finite: a NaN that reaches here is a bug upstream, so it raises rather than writes.
    """

    path: Path
    with_fs: bool = False  # solution files carry fs

    def __enter__(self) -> SubmissionWriter:
        """Checks the target before any work is done: a folder or an unwritable place is refused."""
        if self.path.is_dir():
            raise EcgmlError(self.path, "is a folder; name the submission file (.csv or .parquet)")
        self._ctx = atomic_path(self.path)
        try:
            self._tmp = self._ctx.__enter__()
        except OSError as exc:
            raise EcgmlError(self.path, f"cannot write the submission here ({exc.strerror or exc})") from exc
        self._parquet = self.path.suffix == ".parquet"
        self._n = 0
        if self._parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            fields = [("id", pa.string())] + ([("fs", pa.int64())] if self.with_fs else [])
            self._schema = pa.schema(fields + [("value", pa.float64())])
            self._pq = pq.ParquetWriter(self._tmp, self._schema)
        else:
            self._fh = open(self._tmp, "w", newline="")
            self._fh.write("id,fs,value\n" if self.with_fs else "id,value\n")
        return self

    def add(self, ecg_id: int | str, fs: int, segments: dict[str, np.ndarray]) -> None:
        for lead in LEADS:
            if not np.all(np.isfinite(segments[lead])):
                raise ValueError(f"ECG {ecg_id} lead {lead}: non-finite value in submission")
        rows = list(_long_rows(ecg_id, segments))
        self._n += len(rows)
        if self._parquet:
            import pyarrow as pa

            cols: dict[str, list[object]] = {"id": [r[0] for r in rows]}
            if self.with_fs:
                cols["fs"] = [fs] * len(rows)
            cols["value"] = [r[1] for r in rows]
            self._pq.write_table(pa.table(cols, schema=self._schema))
        else:
            prefix = f",{fs}," if self.with_fs else ","
            self._fh.write("".join(f"{i}{prefix}{v:.6g}\n" for i, v in rows))

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._parquet:
            self._pq.close()
        else:
            self._fh.close()
        self._ctx.__exit__(exc_type, exc, tb)  # type: ignore[arg-type]

    @property
    def n_rows(self) -> int:
        return self._n


def write_solution(items: Iterable[tuple[int, Record]], path: str | Path) -> Path:
    """solution.csv (id, fs, value) for our own scored test sets."""
    path = Path(path)
    with SubmissionWriter(path, with_fs=True) as w:
        for ecg_id, rec in items:
            w.add(ecg_id, rec.fs, lead_segments(rec))
    return path


def read_long_table(path: str | Path) -> pd.DataFrame:
    """A solution or submission (CSV or parquet) with `id` and `value` columns, validated."""
    path = Path(path)
    if not path.exists():
        raise EcgmlError(path, "file not found")
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"id": str})
    except Exception as exc:
        raise EcgmlError(path, f"cannot read table: {exc}") from exc
    for c in ("id", "value"):
        if c not in df.columns:
            raise EcgmlError(path, f"missing column {c!r}; has {list(df.columns)}")
    if df.empty:
        raise EcgmlError(path, "no rows (a header only)")
    values = pd.to_numeric(df["value"], errors="coerce")
    if values.isna().any() and not df["value"].isna().equals(values.isna()):
        bad = df.loc[values.isna() & df["value"].notna(), "value"].iloc[0]
        raise EcgmlError(path, f"non-numeric value {bad!r}")
    df["value"] = values.astype(np.float64)
    parts = df["id"].astype(str).str.split("_", n=2, expand=True)
    if parts.shape[1] != 3 or parts.isna().any().any():
        raise EcgmlError(path, f"id {df['id'].iloc[0]!r} does not parse as {{ecg}}_{{row}}_{{lead}}")
    ecg = pd.to_numeric(parts[0], errors="coerce")
    row = pd.to_numeric(parts[1], errors="coerce")
    bad_id = ecg.isna() | row.isna() | ~parts[2].isin(LEADS)
    if bad_id.any():
        raise EcgmlError(path, f"id {df['id'][bad_id].iloc[0]!r} does not parse as {{ecg}}_{{row}}_{{lead}}")
    df["ecg"] = ecg.astype(np.int64)
    df["row"] = row.astype(np.int64)
    df["lead"] = parts[2]
    return df


def train_image_path(root: str | Path, ecg_id: int, image_type: str) -> Path:
    return Path(root) / "train" / str(ecg_id) / f"{ecg_id}-{image_type}.png"


def test_image_path(root: str | Path, ecg_id: int | str) -> Path:
    return Path(root) / "test" / f"{ecg_id}.png"
