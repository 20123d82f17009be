"""`mlflow models serve -m models:/ecgml-digitizer@champion` on loopback: post an image, get 12 leads back.

Also the in-process pyfunc (`mlflow.pyfunc.load_model`) on the same model, with a bad row in the batch.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from ecgml import model_folder, tracking
from ecgml.records import LEADS
from ecgml.tools import tool_cmd, tool_env

pytestmark = [pytest.mark.slow, pytest.mark.integration]
NAME = "ecgml-digitizer"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rendered Kaggle-style 0001 page (the renderer's own output) of a test-split record."""
    import cv2

    from ecgml.records import read_wfdb
    from ecgml.render.presets import render

    records = Path(__file__).resolve().parents[1] / "data" / "records"
    rec = read_wfdb(records / "cpsc2018_challenge2020" / "A0007")
    out = tmp_path_factory.mktemp("page") / "page.png"
    cv2.imwrite(str(out), cv2.cvtColor(render(rec.window(0, 10), "0001", seed=0).image, cv2.COLOR_RGB2BGR))
    return out


@pytest.fixture(scope="module")
def champion_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve")
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    model = root / "model"
    model.mkdir()
    model_folder.write_spec("classical", model)
    rec = tracking.log_candidate(
        experiment="serve", model_dir=model, params={}, metrics={"score": 1.0}, root=root
    )
    version = tracking.register(rec.model_uri, NAME)
    assert tracking.promote(NAME, version, "s", 1.0, margin=0.0).promoted
    yield root
    mp.undo()


def test_pyfunc_in_process(champion_store: Path, page: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.pyfunc
    import pandas as pd

    from ecgml.serving import encode_image

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.tracking_uri(champion_store))
    tracking.configure(champion_store)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    df = pd.DataFrame({"image": [encode_image(page), "bm90IGFuIGltYWdl"], "fs": [500, 500]})
    out = model.predict(df)
    good = out[out["item"] == 0]
    assert list(good["lead"]) == list(LEADS)
    assert all(len(v) > 0 for v in good["values"]) and (good["error"] == "").all()
    bad = out[out["item"] == 1]
    assert len(bad) == 1 and bad["error"].iloc[0] != ""


def test_mlflow_models_serve(champion_store: Path, page: Path) -> None:
    from ecgml.serving import encode_image

    port = _free_port()
    # the scoring server mlflow starts (uvicorn) comes from this environment too
    env = tool_env({**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri(champion_store)})
    cmd = tool_cmd("mlflow", "models", "serve", "-m", f"models:/{NAME}@champion")
    cmd += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, **quiet)
    try:
        t0 = time.monotonic()
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, "mlflow models serve exited"
            assert time.monotonic() - t0 < 120, "server did not come up"
            time.sleep(0.5)
        body = json.dumps({"dataframe_records": [{"image": encode_image(page), "fs": 500}]}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=300) as r:
            preds = json.loads(r.read())["predictions"]
        assert [row["lead"] for row in preds] == list(LEADS)
        assert all(len(row["values"]) > 0 and row["error"] == "" for row in preds)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
