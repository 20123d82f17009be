"""Batch digitization on Dask through Prefect: every good image gives its outputs, a corrupt one is
reported, and the flow still completes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def prefect_env(tmp_path_factory: pytest.TempPathFactory):
    from prefect.testing.utilities import prefect_test_harness

    mp = pytest.MonkeyPatch()
    mp.setenv("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with prefect_test_harness(server_startup_timeout=90):
        yield
    mp.undo()


def test_batch_flow_reports_corrupt_image(tmp_path: Path, prefect_env: None) -> None:
    import cv2

    from ecgml.records import read_wfdb
    from ecgml.render.presets import render

    sys.path.insert(0, str(REPO))
    from flows.batch import digitize_batch

    images = tmp_path / "in"
    images.mkdir()
    rec = read_wfdb(REPO / "data" / "records" / "cpsc2018_challenge2020" / "A0007").window(0, 10)
    cv2.imwrite(str(images / "good.png"), cv2.cvtColor(render(rec, "0001", seed=1).image, cv2.COLOR_RGB2BGR))
    shutil.copy(images / "good.png", images / "good2.png")
    (images / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    res = digitize_batch(str(images), str(tmp_path / "out"), model="classical", workers=2)
    by_name = {Path(r["image"]).name: r for r in res["rows"]}
    assert set(by_name) == {"good.png", "good2.png", "corrupt.png"}
    assert not by_name["corrupt.png"]["ok"] and "corrupt.png" in by_name["corrupt.png"]["error"]
    for name in ("good", "good2"):
        assert by_name[f"{name}.png"]["ok"], by_name[f"{name}.png"]["error"]
        assert (tmp_path / "out" / f"{name}.csv").exists()
        assert (tmp_path / "out" / f"{name}-overlay.png").exists()
