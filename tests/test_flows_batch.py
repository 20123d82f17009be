"""Batch digitization on Dask through Prefect: every good image gives its outputs, a corrupt one is
reported, and the flow still completes."""

from __future__ import annotations

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
    (images / "site1").mkdir(parents=True)
    (images / "site2").mkdir()
    rec = read_wfdb(REPO / "data" / "records" / "cpsc2018_challenge2020" / "A0007").window(0, 10)
    page = cv2.cvtColor(render(rec, "0001", seed=1).image, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(images / "site1" / "1.png"), page)
    cv2.imwrite(str(images / "site2" / "1.png"), page)  # the same file name in another folder
    (images / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    out = tmp_path / "out"
    res = digitize_batch(str(images), str(out), model="classical", workers=2)
    by_name = {str(Path(r["image"]).relative_to(images)): r for r in res["rows"]}
    assert set(by_name) == {"site1/1.png", "site2/1.png", "corrupt.png"}
    assert not by_name["corrupt.png"]["ok"] and "corrupt.png" in by_name["corrupt.png"]["error"]
    for site in ("site1", "site2"):  # both kept: outputs keep the relative path
        assert by_name[f"{site}/1.png"]["ok"], by_name[f"{site}/1.png"]["error"]
        assert (out / site / "1.csv").exists() and (out / site / "1-overlay.png").exists()
    # a second run into the same folder does not overwrite silently
    again = digitize_batch(str(images / "site1"), str(out / "site1"), model="classical", workers=1)
    assert [r["ok"] for r in again["rows"]] == [False] and "already exists" in again["rows"][0]["error"]
