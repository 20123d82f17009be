"""Pipeline config and stages that need no digitizer: params validation, train (classical fallback),
register (MLflow, promotion), atomic outputs when a stage dies half-way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from ecgml import model_folder, stages, tracking
from ecgml.config import Params, TrainParams, flat_params, load_params
from ecgml.errors import EcgmlError
from ecgml.evalkey import EvalKey, evaluation_key

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_validate_and_match_defaults() -> None:
    p = load_params(REPO / "params.yaml")
    assert p == Params(root=REPO)  # params.yaml states the defaults; code and file do not drift apart
    assert p.registry.model_name == "ecgml-digitizer"
    assert p.path(p.data.out) == REPO / "data" / "sets"
    assert "train.lr" in flat_params(p)


def test_overrides_and_bad_values(tmp_path: Path) -> None:
    f = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", f)
    assert load_params(f, {"train.lr": 1e-3}).train.lr == 1e-3
    with pytest.raises(EcgmlError, match="train.lr"):
        load_params(f, {"train.lr": -1})
    with pytest.raises(EcgmlError, match="unknown capture type"):
        load_params(f, {"data.types": ["0001", "0002"]})
    with pytest.raises(EcgmlError, match="Extra inputs"):
        load_params(f, {"train.learning_rate": 1.0})
    with pytest.raises(EcgmlError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("data: [1, 2")
    with pytest.raises(EcgmlError, match="YAML"):
        load_params(tmp_path / "bad.yaml")
    full = TrainParams(profile="full")
    assert full.init == "scratch" and full.steps > TrainParams().steps


def _project(tmp_path: Path) -> Params:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump({"register": {"margin": 0.5}}))
    return load_params(root / "params.yaml")


def _validation_set(p: Params, image: bytes = b"page-1") -> Path:
    """A stand-in validation set: what the evaluation key hashes (no image is decoded here)."""
    val = p.path(p.data.out) / "validation"
    (val / "test").mkdir(parents=True, exist_ok=True)
    (val / "test" / "1.png").write_bytes(image)
    (val / "solution.csv").write_text("id,value\n1_0_I,0.0\n")
    return val


def _fake_evaluation(p: Params, score: float, key: EvalKey | None = None) -> None:
    """The evaluate stage's outputs for a score made on the current validation set (or under `key`)."""
    val = p.path(p.data.out) / "validation"
    key = key or evaluation_key(val if val.is_dir() else _validation_set(p))
    ev = p.path(p.evaluate.out) / "evaluate"
    ev.mkdir(parents=True, exist_ok=True)
    metrics = {
        "score": score,
        "per_type": {"0001": score + 1},
        "per_lead_db": {"II": score},
        "frac_ge_25db": 0.0,
    }
    (ev / "metrics.json").write_text(json.dumps(metrics))
    (ev / "evaluation.json").write_text(json.dumps({"eval_set": key.id, "eval_key": key.to_json()}))


def test_train_without_shipped_weights_gives_classical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _project(tmp_path)
    monkeypatch.setattr(stages, "SHIPPED_WEIGHTS", tmp_path / "none.pt")
    r = stages.stage_train(p)
    assert r.summary["kind"] == "classical"
    assert model_folder.read_spec(p.path(p.train.out)).kind == "classical"
    assert (p.path(p.train.out) / "train_curve.csv").read_text().startswith("step,loss")


def test_register_promotes_first_and_refuses_worse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    p = _project(tmp_path)
    monkeypatch.setattr(stages, "SHIPPED_WEIGHTS", tmp_path / "none.pt")
    stages.stage_train(p)
    _fake_evaluation(p, 10.0)
    r1 = stages.stage_register(p)
    assert r1.summary["promoted"] and r1.summary["version"] == "1"
    decision = json.loads((p.path(p.registry.out) / "decision.json").read_text())
    assert decision["promoted"] and decision["tracking_uri"].endswith("proj/mlflow.db")
    _fake_evaluation(p, 9.0)
    r2 = stages.stage_register(p)
    assert not r2.summary["promoted"]
    tracking.configure(p.root)
    assert str(tracking.alias_version("ecgml-digitizer", "champion").version) == "1"
    assert str(tracking.alias_version("ecgml-digitizer", "challenger").version) == "2"
    assert "not promoted" in (p.path(p.registry.out) / "decision.md").read_text()


def test_worse_model_never_champion_when_images_or_code_differ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16: a score on other images or by other code is never compared with today's."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    p = _project(tmp_path)
    monkeypatch.setattr(stages, "SHIPPED_WEIGHTS", tmp_path / "none.pt")
    stages.stage_train(p)
    _fake_evaluation(p, 5.0)  # v1 became champion on yesterday's (broken) images
    assert stages.stage_register(p).summary["promoted"]
    truth = {"models:/ecgml-digitizer/1": 18.5, str(p.path(p.train.out)): 10.4}  # today's images
    scored: list[str] = []

    def score_set(set_dir: Path, model: str, submission: Path, workers: int = 1) -> object:
        scored.append(model)
        return type("Report", (), {"score": truth[model]})()

    monkeypatch.setattr(stages, "score_set", score_set)
    # same solution.csv, new images: the champion is re-scored (18.5) and the 10.4 challenger loses
    _validation_set(p, image=b"page-1 re-rendered")
    _fake_evaluation(p, 10.4)
    r = stages.stage_register(p)
    assert not r.summary["promoted"] and scored == ["models:/ecgml-digitizer/1"]
    decision = json.loads((p.path(p.registry.out) / "decision.json").read_text())
    assert decision["champion_score"] == 18.5 and decision["challenger_score"] == 10.4
    # new code (a different package hash) after evaluate ran: the stale 30 dB is not believed either
    old = evaluation_key(p.path(p.data.out) / "validation")
    _fake_evaluation(p, 30.0, EvalKey(old.images, old.tables, "other-code", old.libraries))
    scored.clear()
    r = stages.stage_register(p)
    assert not r.summary["promoted"] and scored == [str(p.path(p.train.out))]
    tracking.configure(p.root)
    assert str(tracking.alias_version("ecgml-digitizer", "champion").version) == "1"


def test_evaluation_key_covers_images_tables_and_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _project(tmp_path)
    a = evaluation_key(_validation_set(p))
    assert evaluation_key(p.path(p.data.out) / "validation") == a  # stable
    b = evaluation_key(_validation_set(p, image=b"other"))
    assert b.differences(a) == ["images"] and b.id != a.id
    (p.path(p.data.out) / "validation" / "types.csv").write_text("id,type\n1,0001\n")
    assert evaluation_key(p.path(p.data.out) / "validation").differences(b) == ["tables"]
    from ecgml import evalkey

    monkeypatch.setattr(evalkey, "code_digest", lambda: "changed")
    assert evaluation_key(p.path(p.data.out) / "validation").differences(b) == ["tables", "code"]


def test_stage_killed_half_way_leaves_old_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _project(tmp_path)
    monkeypatch.setattr(stages, "SHIPPED_WEIGHTS", tmp_path / "none.pt")
    stages.stage_train(p)
    out = p.path(p.train.out)
    before = {f.name: f.read_bytes() for f in out.iterdir()}

    def die(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # as a SIGINT half-way through writing the model folder

    monkeypatch.setattr(stages, "_write_curve", die)
    with pytest.raises(KeyboardInterrupt):
        stages.stage_train(p)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    assert not [f for f in out.parent.iterdir() if f.name.startswith(".")], "temporary folder left behind"


def test_unknown_stage() -> None:
    with pytest.raises(EcgmlError, match="unknown stage"):
        stages.run_stage("deploy", Params())


def test_kaggle_source_ingest(tmp_path: Path) -> None:
    """A competition folder: train ids split into train/validation (scorable), test linked as it is."""
    from ecgml.kaggle import read_test_table
    from ecgml.metric import score_files
    from ecgml.synth import synth_dataset

    comp = tmp_path / "comp"
    rec = REPO / "data" / "records" / "cpsc2018_challenge2020" / "A0002"
    synth_dataset([rec], comp, ["0001"], per_record=3, seed=0, progress=False)
    t = tmp_path / "t"
    synth_dataset([rec], t, ["0001"], per_record=1, seed=1, test=True, first_id=50, progress=False)
    shutil.copytree(tmp_path / "t" / "test", comp / "test")
    shutil.copy(tmp_path / "t" / "test.csv", comp / "test.csv")
    root = tmp_path / "proj"
    root.mkdir()
    (root / "params.yaml").write_text(
        yaml.safe_dump({"data": {"source": "kaggle", "path": str(comp), "validation_fraction": 0.5}})
    )
    p = load_params(root / "params.yaml")
    counts = stages.stage_data(p).summary
    sets = p.path(p.data.out)
    assert counts["train"] + counts["validation"] == 3 and counts["test"] == 1
    assert counts["validation"] >= 1, "with half held out, 3 ids should give at least one validation ECG"
    val = sets / "validation"
    assert len(read_test_table(val / "test.csv")["id"].unique()) == counts["validation"]
    # the validation solution scores itself perfectly: it is a well-formed, scorable set
    assert score_files(val / "solution.csv", val / "solution.csv").score > 25
    assert (sets / "test" / "test" / "50.png").exists()
    with pytest.raises(EcgmlError, match="not a competition folder"):
        stages.stage_data(load_params(root / "params.yaml", {"data.path": str(tmp_path)}))


def test_evaluate_outputs_identical_for_an_unchanged_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16: timings in evaluate's outputs made DVC re-run register (a new MLflow version) each time."""
    import cv2

    from ecgml.metric import ScoreReport
    from ecgml.records import read_wfdb
    from ecgml.render.presets import render

    p = _project(tmp_path)
    monkeypatch.setattr(stages, "SHIPPED_WEIGHTS", tmp_path / "none.pt")
    stages.stage_train(p)
    val = _validation_set(p)
    rec = read_wfdb(REPO / "data" / "records" / "cpsc2018_challenge2020" / "A0007").window(0, 10)
    cv2.imwrite(
        str(val / "test" / "1.png"), cv2.cvtColor(render(rec, "0001", seed=1).image, cv2.COLOR_RGB2BGR)
    )
    monkeypatch.setattr(stages, "score_set", lambda *a, **k: ScoreReport(12.0, []))
    runs = []
    for _ in range(2):
        stages.stage_evaluate(p)
        ev = p.path(p.evaluate.out) / "evaluate"
        runs.append({str(f.relative_to(ev)): f.read_bytes() for f in sorted(ev.rglob("*")) if f.is_file()})
    assert "overlays/1-overlay.png" in runs[0]
    assert runs[0] == runs[1]


def test_submit_score_keeps_failed_ecgs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from ecgml import digitize, metric

    p = _project(tmp_path)
    test = p.path(p.data.out) / "test"
    test.mkdir(parents=True)
    (test / "solution.csv").write_text("id,fs,value\n")

    def fake_submit(data_dir: Path, out: Path, *args: object) -> SimpleNamespace:
        Path(out).write_text("id,value\n")
        return SimpleNamespace(n_failed=2)

    monkeypatch.setattr(digitize, "submit", fake_submit)
    monkeypatch.setattr(metric, "score_files", lambda *a: metric.ScoreReport(3.0, []))
    stages.stage_submit(p.model_copy(update={"submit": p.submit.model_copy(update={"model": "classical"})}))
    score = json.loads((p.path(p.submit.out) / "score.json").read_text())
    assert score["failed_ecgs"] == 2 and score["score"] == 3.0


def test_train_output_holds_the_inference_graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ONNX graph cached beside the weights is written by train, not later by evaluate: a file
    appearing in train's DVC output after the stage made every second `dvc repro` train again."""
    from ecgml.trace.model import load_extractor

    monkeypatch.delenv("ECGML_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    root = tmp_path / "proj"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump({"train": {"steps": 0, "init": "shipped"}}))
    p = load_params(root / "params.yaml")
    stages.stage_train(p)
    out = p.path(p.train.out)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    assert any(name.endswith(".onnx") for name in before)
    load_extractor(out / "trace_unet.pt")  # what evaluate and submit do
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
