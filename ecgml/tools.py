"""Command-line tools (DVC, MLflow, Prefect) run from the running interpreter's environment, not from PATH.

A shell that has not activated the venv (`.venv/bin/python -m pytest`, cron, an IDE) has no `dvc` on PATH,
or a different one. So tools run as `sys.executable -m TOOL`, and their children (DVC stage commands such as
`ecgml stage data` or `python -c ...`) get this environment's scripts folder first on PATH.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Mapping


def tool_cmd(tool: str, *args: str) -> list[str]:
    """`python -m TOOL ARGS...` with the running interpreter (tool: "dvc", "mlflow", "prefect")."""
    return [sys.executable, "-m", tool, *args]


def scripts_dir() -> str:
    """The folder holding this environment's console scripts (`ecgml`, `python`): `.venv/bin` in a venv."""
    return sysconfig.get_path("scripts")


def tool_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (default: os.environ) with this environment's scripts folder first on PATH, as an activated
    shell would have it, so commands a tool starts resolve to the same environment."""
    out = dict(os.environ if env is None else env)
    first = scripts_dir()
    rest = [p for p in out.get("PATH", "").split(os.pathsep) if p and p != first]
    out["PATH"] = os.pathsep.join([first, *rest])
    return out
