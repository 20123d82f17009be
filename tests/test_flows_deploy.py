"""The scheduled retraining deployment on a real (loopback) Prefect server: it registers with its cron
schedule, and a triggered run of the flow completes on a tiny DVC project.

The tiny project has the flow's contract (a git repo with dvc.yaml, params.yaml and a local remote) but
two trivial stages, so the test checks the orchestration (server, serve process, deployment, schedule,
run, DVC, push, artifacts) and not the digitizer, which has its own tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ecgml.tools import tool_cmd

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.integration]

TINY_DVC = """\
stages:
  data:
    cmd: python -c "import os; os.makedirs('out', exist_ok=True); open('out/a.txt', 'w').write('x')"
    params: [data.seed]
    outs: [out/a.txt]
  evaluate:
    cmd: >-
      python -c "import json, pathlib; p = pathlib.Path('reports/evaluate'); p.mkdir(parents=True);
      (p / 'metrics.json').write_text(json.dumps({'score': 12.5, 'per_type': {'0001': 20.0, '0003': 5.0}}))"
    deps: [out/a.txt]
    outs: [reports/evaluate]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_health(url: str, timeout: float) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(url)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "dvc.yaml").write_text(TINY_DVC)
    (proj / "params.yaml").write_text("data:\n  seed: 0\nevaluate:\n  out: reports\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "DVC_NO_ANALYTICS": "1"}  # fmt: skip
    for cmd in (
        ["git", "init", "-q"],
        tool_cmd("dvc", "init", "-q"),
        tool_cmd("dvc", "config", "core.analytics", "false"),
        tool_cmd("dvc", "remote", "add", "-d", "local", str(tmp_path / "remote")),
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "init"],
    ):
        subprocess.run(cmd, cwd=proj, env=env, check=True, capture_output=True)
    return proj


def test_deployment_schedule_and_one_run(
    tmp_path: Path, tiny_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "DVC_NO_ANALYTICS": "1",
    }
    server = subprocess.Popen(
        tool_cmd("prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    serve = None
    stack = contextlib.ExitStack()
    try:
        _wait_health(f"{api}/health", 90)
        serve = subprocess.Popen(
            [sys.executable, str(REPO / "flows" / "deploy.py"), "--workdir", str(tiny_project),
             "--cron", "17 4 * * 2", "--timezone", "UTC"],
            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        for k in ("PREFECT_HOME", "PREFECT_API_URL"):
            monkeypatch.setenv(k, env[k])
        from prefect.client.orchestration import get_client
        from prefect.deployments import run_deployment
        from prefect.settings import PREFECT_API_URL, temporary_settings

        # Prefect reads its settings when first imported: if an earlier test imported it, the
        # environment above is not seen and the client would start its own ephemeral server (on the
        # same database), so point this process at the server explicitly.
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api}))

        name = "ecgml-retrain/scheduled-retrain"
        deployment = None
        t0 = time.monotonic()
        while deployment is None and time.monotonic() - t0 < 60:
            with get_client(sync_client=True) as client:
                try:
                    deployment = client.read_deployment_by_name(name)
                except Exception:  # noqa: BLE001 - not registered yet
                    time.sleep(1)
        assert deployment is not None, "deployment never registered"
        crons = [s.schedule.cron for s in deployment.schedules]
        assert crons == ["17 4 * * 2"]
        assert deployment.schedules[0].schedule.timezone == "UTC"
        assert deployment.parameters["workdir"] == str(tiny_project)

        run = run_deployment(name, timeout=240, poll_interval=2)
        assert run.state is not None and run.state.is_completed(), run.state
        assert (tiny_project / "reports" / "evaluate" / "metrics.json").exists()
        assert (tiny_project / "dvc.lock").exists()
        assert any((tmp_path / "remote").rglob("*")), "dvc push left nothing in the remote"
        with get_client(sync_client=True) as client:
            art = client.read_latest_artifacts()
        keys = {a.key for a in art}
        assert "per-type-scores" in keys
    finally:
        stack.close()
        if serve is not None:
            _stop(serve)
        _stop(server)
