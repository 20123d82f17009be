"""Prefect sends no telemetry: not from the tests' temporary servers, not from the flows by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_tests_run_without_prefect_telemetry() -> None:
    from prefect._internal.analytics.enabled import is_telemetry_enabled
    from prefect.settings import get_current_settings

    assert not get_current_settings().server.analytics_enabled
    assert not is_telemetry_enabled()


def test_flows_turn_telemetry_off_by_default() -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED")
    }
    env = {k: v for k, v in env.items() if k not in ("CI", "GITHUB_ACTIONS")}  # CI alone would disable it
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import flows.retrain, flows.batch; "
        "from prefect.settings import get_current_settings as s; "
        "from prefect._internal.analytics.enabled import is_telemetry_enabled as t; "
        "print(s().server.analytics_enabled, t())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO)], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "False"]
