"""DVC (and the commands its stages run) come from the running interpreter's environment, not from PATH:
the suite and the flows work from `.venv/bin/python -m pytest` without an activated shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ecgml.tools import scripts_dir, tool_cmd, tool_env

REPO = Path(__file__).resolve().parents[1]

TINY_DVC = """\
stages:
  which:
    cmd: ecgml --help > help.txt && python -c "import sys; open('exe.txt', 'w').write(sys.executable)"
    outs: [help.txt, exe.txt]
"""


def _bare_path() -> str:
    """PATH as a shell that never activated the venv has it: without this environment's scripts."""
    return os.pathsep.join(p for p in ("/usr/local/bin", "/usr/bin", "/bin") if p != scripts_dir())


def test_tool_env_puts_this_environment_first() -> None:
    env = tool_env({"PATH": os.pathsep.join(["/usr/bin", scripts_dir(), "/bin"])})
    assert env["PATH"].split(os.pathsep) == [scripts_dir(), "/usr/bin", "/bin"]
    assert tool_cmd("dvc", "repro") == [sys.executable, "-m", "dvc", "repro"]


@pytest.mark.slow
def test_the_flow_runs_dvc_and_its_stages_without_an_activated_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sys.path.insert(0, str(REPO))
    from flows.retrain import _run

    monkeypatch.setenv("PATH", _bare_path())
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "t")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "t@t")
    (tmp_path / "dvc.yaml").write_text(TINY_DVC)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    _run(tool_cmd("dvc", "init", "-q"), tmp_path)
    out = _run(tool_cmd("dvc", "repro"), tmp_path)
    assert "Running stage 'which'" in out
    assert "digitize" in (tmp_path / "help.txt").read_text()  # `ecgml` of this environment ran
    ran = Path((tmp_path / "exe.txt").read_text())
    assert ran.parent == Path(scripts_dir())  # and its `python`, not the system's
