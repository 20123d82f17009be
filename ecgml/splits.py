"""Split by record, never by image: a stable hash of the record's name picks train/validation/test."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

SPLITS = ("train", "validation", "test")


def split_of(record_name: str, fractions: tuple[float, float] = (0.8, 0.1)) -> str:
    """80/10/10 by default; the same name always lands in the same split, on any machine."""
    h = int.from_bytes(hashlib.sha256(record_name.encode()).digest()[:8], "big") / 2**64
    if h < fractions[0]:
        return "train"
    if h < fractions[0] + fractions[1]:
        return "validation"
    return "test"


def load_split_file(path: str | Path) -> dict[str, str]:
    """The committed split table (record,split); it wins over the hash for any record it lists."""
    with open(path, newline="") as fh:
        return {row["record"]: row["split"] for row in csv.DictReader(fh)}


def records_in_split(paths: list[Path], split: str, table: dict[str, str] | None = None) -> list[Path]:
    table = table or {}
    return [p for p in paths if table.get(p.name, split_of(p.name)) == split]
