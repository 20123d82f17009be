"""Every `ecgml` command given bad arguments: one clear line naming the problem, a non-zero exit, no
Python traceback, and no work done first (issue 16: errors after finished work threw it away)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecgml.cli import app
from ecgml.kaggle import write_test_table

RECORD = Path(__file__).resolve().parents[1] / "data" / "records" / "cpsc2018_challenge2020" / "A0007"

# (arguments, text the one error line must hold); paths are relative to a prepared folder (see `work`)
CASES: list[tuple[list[str], str]] = [
    (["score", "nosuch.csv", "sub.csv"], "nosuch.csv: file not found"),
    (["score", "solution.csv", "header_only.csv"], "header_only.csv: no rows (a header only)"),
    (["score", "solution.csv", "folder"], "folder: cannot read table"),
    (["stage", "nosuch", "--params", "params.yaml"], "unknown stage 'nosuch'"),
    (["stage", "data", "--params", "nope.yaml"], "nope.yaml: params file not found"),
    (["stage", "data", "--params", "broken.yaml"], "broken.yaml"),
    (["stage", "register", "--params", "params.yaml"], "missing: run `ecgml stage evaluate`"),
    (["train", "--records", "nosuch", "--work", "w"], "nosuch: no train-split WFDB records found"),
    (["train", "--arch", "bogus", "--work", "w"], "unknown architecture 'bogus'"),
    (["train", "--type-mix", "0001=0.5,bogus=0.5", "--work", "w"], "--type-mix: unknown image type 'bogus'"),
    (["digitize", "junk.png", "--fs", "0"], "--fs must be between 1 and"),
    (["digitize", "junk.png", "--fs", "-500"], "--fs must be between 1 and"),
    (["digitize", "junk.png", "--out", "a_file"], "a_file: --out is an existing file"),
    (["digitize", "junk.png", "--workers", "0"], "--workers must be at least 1"),
    (["digitize", "junk.png", "--out", "o", "--model", "corrupt.pt"], "corrupt.pt: cannot load the model"),
    (
        ["digitize", "junk.png", "--out", "o", "--model", "badjson"],
        "badjson/digitizer.json: unreadable model spec",
    ),
    (["digitize", "junk.png", "--out", "o", "--model", "classical"], "junk.png: not an image"),
    (["digitize", "huge.png", "--out", "o", "--model", "classical"], "huge.png: image too large"),
    (["digitize", "nothing/*.png", "--out", "o"], "nothing/*.png: no image matches"),
    (["digitize", "folder", "--out", "o"], "folder: folder has no images"),
    (["submit", "nosuch"], "nosuch/test.csv: file not found"),
    (["submit", "data", "--out", "folder", "--model", "classical"], "folder: is a folder"),
    (["submit", "data", "--out", "a_file/sub.csv", "--model", "classical"], "cannot write the submission"),
    (["submit", "data", "--out", "s.csv", "--model", "corrupt.pt"], "corrupt.pt: cannot load the model"),
    (["submit", "data", "--workers", "0"], "--workers must be at least 1"),
    (["synth", "folder", "out"], "folder: no WFDB records"),
    (["synth", "folder", "a_file", "--record", str(RECORD)], "a_file: is an existing file"),
    (["synth", "folder", "out", "--record", str(RECORD), "--layout", "bogus"], "unknown layout 'bogus'"),
    (
        ["synth", "folder", "out", "--record", str(RECORD), "--per-record", "0"],
        "per_record must be at least 1",
    ),
    (["synth", "folder", "out", "--record", "nosuch"], "no ECG written (every record was skipped)"),
    (["geometry", "nosuch.png"], "nosuch.png: file not found"),
    (["geometry", "junk.png"], "junk.png: not an image"),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_images import _png_header_only

    d = tmp_path_factory.mktemp("bad-args")
    (d / "folder").mkdir()
    (d / "a_file").write_text("x")
    (d / "junk.png").write_bytes(b"not a png")
    _png_header_only(d / "huge.png", 40_000, 40_000)
    (d / "solution.csv").write_text("id,fs,value\n1_0_I,500,0.1\n")
    (d / "header_only.csv").write_text("id,value\n")
    (d / "params.yaml").write_text("{}\n")
    (d / "broken.yaml").write_text("data: [1\n")
    (d / "corrupt.pt").write_bytes(b"garbage, not a torch file")
    (d / "corrupt.json").write_text((Path(__file__).parents[1] / "ecgml/weights/trace_unet.json").read_text())
    (d / "badjson").mkdir()
    (d / "badjson" / "digitizer.json").write_text("{not json")
    write_test_table([(1, 500)], d / "data" / "test.csv")
    (d / "data" / "test").mkdir()
    (d / "data" / "test" / "1.png").write_bytes(b"junk")
    return d


def test_every_command_is_driven_here() -> None:
    commands = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    assert commands == {args[0] for args, _ in CASES}


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_arguments_give_one_clear_line(
    work: Path, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(work)
    res = CliRunner().invoke(app, args)
    assert res.exit_code in (1, 2), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    assert message in " ".join(res.output.split()), res.output  # rich may wrap a long line
    assert not (work / "s.csv").exists() and not (work / "submission.csv").exists()
