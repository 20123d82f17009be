"""Weights metadata names its data by paths relative to the project, never a machine's absolute paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecgml.training.options import portable_path

WEIGHTS = Path(__file__).resolve().parents[1] / "ecgml" / "weights"


def _strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def test_paths_are_recorded_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert portable_path(tmp_path / "data" / "records") == "data/records"
    assert portable_path("data/records") == "data/records"
    assert portable_path(tmp_path.parent / "shared" / "ecg") == "../shared/ecg"


@pytest.mark.parametrize("meta", sorted(WEIGHTS.glob("*.json")), ids=lambda p: p.name)
def test_shipped_weights_metadata_has_no_absolute_paths(meta: Path) -> None:
    for text in _strings(json.loads(meta.read_text())):
        assert not text.startswith(("/", "~")) and ":\\" not in text, f"{meta.name}: {text}"
