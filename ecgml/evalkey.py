"""What decides an evaluation score, as one comparable key.

Two scores may be compared (for promotion) only when they were made on the same images with the same
truth, by the same digitizer code and library versions, with the same metric. A key of the solution
file alone let a model scored on other images, or by other code, be promoted over a better one
(issue 16). The key hashes every one of those inputs; `differences` says which part changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path

import ecgml

TABLES = ("solution.csv", "types.csv", "test.csv")
METRIC = "kaggle-modified-snr-2025"  # ecgml.metric; its code is part of `code` as well
LIBRARIES = ("numpy", "scipy", "opencv-python-headless", "torch", "onnxruntime", "pandas")


@dataclass(frozen=True)
class EvalKey:
    """Hashes of an evaluation's inputs: set images, truth tables, package code, libraries, metric."""

    images: str
    tables: str
    code: str
    libraries: str
    metric: str = METRIC

    @property
    def id(self) -> str:
        """The short id that names this evaluation in the registry's score tags."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def differences(self, other: EvalKey) -> list[str]:
        """The parts that differ from `other` (empty when both keys are equal)."""
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]

    def to_json(self) -> dict[str, str]:
        return {**asdict(self), "id": self.id}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> EvalKey:
        return cls(**{f.name: str(data[f.name]) for f in fields(cls)})


def _hash_files(root: Path, files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())  # read_bytes follows linked images
    return h.hexdigest()[:16]


def images_digest(set_dir: Path) -> str:
    """Every file under the set's `test/` folder, by relative path and content."""
    images = set_dir / "test"
    files = sorted(p for p in images.rglob("*") if p.is_file()) if images.is_dir() else []
    return _hash_files(images, files)


def tables_digest(set_dir: Path) -> str:
    return _hash_files(set_dir, [set_dir / n for n in TABLES if (set_dir / n).is_file()])


def code_digest() -> str:
    """The installed package's Python sources: the digitizer, the metric and everything they use."""
    pkg = Path(ecgml.__file__).resolve().parent
    return _hash_files(pkg, sorted(p for p in pkg.rglob("*.py") if "__pycache__" not in p.parts))


def libraries_digest() -> str:
    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name}=absent")
    return hashlib.sha256(";".join(versions).encode()).hexdigest()[:16]


def evaluation_key(set_dir: str | Path) -> EvalKey:
    """The key of scoring the test-layout set `set_dir` with this installation."""
    set_dir = Path(set_dir)
    return EvalKey(images_digest(set_dir), tables_digest(set_dir), code_digest(), libraries_digest())
