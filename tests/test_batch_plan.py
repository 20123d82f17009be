"""Which images a batch takes and where their outputs go: relative paths kept, collisions refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgml.batch import collect_images, plan_jobs
from ecgml.errors import EcgmlError
from ecgml.records import LEADS, Record, record_name, write_wfdb


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"image")
    return path


def test_same_file_name_in_two_folders_keeps_both(tmp_path: Path) -> None:
    _touch(tmp_path / "in" / "site1" / "1.png")
    _touch(tmp_path / "in" / "site2" / "1.png")
    found = collect_images([tmp_path / "in"])
    jobs = plan_jobs(found.images, tmp_path / "out")
    assert not found.problems and not any(j.error for j in jobs)
    assert sorted(str(j.out_dir.relative_to(tmp_path / "out")) for j in jobs) == ["site1", "site2"]
    assert len({o for j in jobs for o in j.outputs()}) == 10  # no output file shared


def test_outputs_that_would_collide_are_an_error_not_an_overwrite(tmp_path: Path) -> None:
    a = _touch(tmp_path / "a" / "scan 1.png")
    b = _touch(tmp_path / "b" / "scan_1.jpg")  # another folder, the same safe name
    c = _touch(tmp_path / "a" / "scan 1.jpg")  # the same folder and stem
    jobs = plan_jobs(collect_images([a, b, c]).images, tmp_path / "out")
    assert [bool(j.error) for j in jobs] == [False, True, True]
    assert "would overwrite those of" in jobs[1].error and str(a) in jobs[1].error


def test_existing_outputs_are_kept_unless_overwrite(tmp_path: Path) -> None:
    img = _touch(tmp_path / "in" / "p.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "p.json").write_text("{}")
    [job] = plan_jobs(collect_images([img]).images, tmp_path / "out")
    assert "already exists" in job.error and "--overwrite" in job.error
    [job] = plan_jobs(collect_images([img]).images, tmp_path / "out", overwrite=True)
    assert not job.error
    (tmp_path / "file").write_text("x")
    with pytest.raises(EcgmlError, match="existing file"):
        plan_jobs(collect_images([img]).images, tmp_path / "file")


def test_globs_folders_and_bad_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _touch(tmp_path / "scans" / "x" / "1.jpg")
    _touch(tmp_path / "scans" / "y" / "1.jpg")
    _touch(tmp_path / "scans" / "notes.txt")
    _touch(tmp_path / "scans" / "y" / "1-overlay.png")  # an earlier run's outputs are not inputs
    _touch(tmp_path / "scans" / "y" / "1.json")
    (tmp_path / "empty").mkdir()
    found = collect_images(["scans/*/*.jpg", "scans/**/*.jpg", "nothing/*.png", "empty", "missing.png"])
    assert [(str(i), str(s)) for i, s in found.images] == [("scans/x/1.jpg", "x"), ("scans/y/1.jpg", "y")]
    lines = [line for _, line in found.problems]
    assert lines == [
        "nothing/*.png: no image matches this pattern",
        f"empty: folder has no images ({lines[1].split('(')[1]}",
        "missing.png: file not found",
    ]
    assert [r["ok"] for r in found.problem_rows()] == [False] * 3
    assert [str(i) for i, _ in collect_images(["scans/y"]).images] == ["scans/y/1.jpg"]
    (tmp_path / "scans" / "y" / "1.json").unlink()  # without its JSON it is someone's image
    assert len(collect_images(["scans/y"]).images) == 2


@pytest.mark.parametrize(
    ("stem", "name"),
    [("scan.2024-01-05", "scan_2024-01-05"), ("ECG (2) copy", "ECG_2_copy"), ("...", "record")],
)
def test_record_names_are_wfdb_readable(tmp_path: Path, stem: str, name: str) -> None:
    import wfdb

    assert record_name(stem) == name
    rec = Record(np.zeros((5000, len(LEADS)), np.float32), 500, stem)
    hea = write_wfdb(rec, tmp_path)
    assert hea == tmp_path / f"{name}.hea"
    assert wfdb.rdrecord(str(hea.with_suffix(""))).sig_name == list(LEADS)
