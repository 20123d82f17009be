"""The lock file: exact versions of everything pyproject.toml asks for (runtime and `dev`), within its ranges,
with the CPU torch; README's set-up and `.ci/run` install from it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"


def _locked() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        assert m, f"requirements.lock: not an exact pin: {line!r}"
        pins[canonicalize_name(m.group(1))] = Version(m.group(2))
    return pins


def _wanted() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_every_dependency_is_pinned_within_its_range() -> None:
    pins = _locked()
    for req in _wanted():
        name = canonicalize_name(req.name)
        missing = f"{req.name} is in pyproject.toml but not in requirements.lock (re-run pip-compile)"
        assert name in pins, missing
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} outside {req}"


def test_torch_is_the_cpu_build_the_machine_has() -> None:
    """A newer torch is a multi-GB CUDA build (docs ENVIRONMENT.md); the lock must not drift there."""
    assert _locked()["torch"] == Version("2.13.0+cpu")


def test_setup_and_ci_install_from_the_lock() -> None:
    install = "pip install -r requirements.lock && pip install --no-deps -e ."
    assert install in (REPO / ".ci" / "run").read_text()
    assert install in (REPO / "README.md").read_text()
