"""The package's layering (pyproject `[tool.importlinter]`): inference never imports training or MLflow,
and no module cycles. Checked with import-linter, which reads every import, lazy ones included."""

from __future__ import annotations

from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_a_broken_contract_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker can fail: the CLI does import the digitizer, so forbidding it must break."""
    cfg = tmp_path / "contracts.toml"
    cfg.write_text(
        '[tool.importlinter]\nroot_package = "ecgml"\n\n[[tool.importlinter.contracts]]\n'
        'name = "cli without digitize"\ntype = "forbidden"\n'
        'source_modules = ["ecgml.cli"]\nforbidden_modules = ["ecgml.digitize"]\n'
    )
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(cfg), no_cache=True, no_logo=True) == 1
