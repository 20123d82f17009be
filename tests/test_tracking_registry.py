"""MLflow registry: aliases, promotion by margin on the same evaluation set, clear errors on loading."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ecgml import model_folder, tracking
from ecgml.errors import EcgmlError

NAME = "ecgml-digitizer"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private SQLite store with one logged classical model (logging once keeps the file fast)."""
    root = tmp_path_factory.mktemp("mlflow")
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    model = root / "model"
    model.mkdir()
    model_folder.write_spec("classical", model)
    rec = tracking.log_candidate(
        experiment="test",
        model_dir=model,
        params={"train.lr": "0.001"},
        metrics={"score": 7.5, "per_type/0001": 9.0},
        loss_curve=[(0, 1.0), (1, 0.4)],
        root=root,
    )
    (root / "model_uri").write_text(rec.model_uri)
    yield root
    mp.undo()


def _new_version(store: Path, name: str) -> str:
    tracking.configure(store)
    return tracking.register((store / "model_uri").read_text(), name)


def test_decide_never_promotes_worse_or_non_finite() -> None:
    assert tracking.decide(10.0, None, 0.1)[0]
    assert tracking.decide(10.2, 10.0, 0.1)[0]
    assert not tracking.decide(10.05, 10.0, 0.1)[0]
    assert not tracking.decide(9.0, 10.0, 0.0)[0]
    assert not tracking.decide(math.nan, None, 0.1)[0]


def test_challenger_alias_and_promotion_by_margin(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    name = "promo-model"
    v1 = _new_version(store, name)
    d1 = tracking.promote(name, v1, "evalset-a", 8.0, margin=0.5)
    assert d1.promoted and d1.reason == "no champion yet"
    assert str(tracking.alias_version(name, "champion").version) == v1

    # a worse challenger gets `challenger` but never `champion`
    v2 = _new_version(store, name)
    assert str(tracking.alias_version(name, "challenger").version) == v2
    d2 = tracking.promote(name, v2, "evalset-a", 7.0, margin=0.5)
    assert not d2.promoted and d2.champion_score == pytest.approx(8.0)
    assert str(tracking.alias_version(name, "champion").version) == v1

    # better, but by less than the margin: stays
    v3 = _new_version(store, name)
    assert not tracking.promote(name, v3, "evalset-a", 8.3, margin=0.5).promoted
    assert str(tracking.alias_version(name, "champion").version) == v1

    # better by the margin: moves, and tags record the decision
    v4 = _new_version(store, name)
    d4 = tracking.promote(name, v4, "evalset-a", 8.6, margin=0.5)
    assert d4.promoted
    assert str(tracking.alias_version(name, "champion").version) == v4
    client = tracking._client()
    assert client.get_model_version(name, v4).tags["promotion_decision"] == "promoted"
    assert client.get_model_version(name, v2).tags["promotion_decision"] == "rejected"
    assert client.get_model_version(name, v1).tags["superseded_by"] == v4
    assert "promoted" in d4.markdown()


def test_champion_rescored_on_a_new_evaluation_set(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    name = "rescore-model"
    v1 = _new_version(store, name)
    tracking.promote(name, v1, "set-1", 5.0, margin=0.0)
    v2 = _new_version(store, name)
    # on set-2 the champion is unknown: without a way to score it, it is kept
    assert not tracking.promote(name, v2, "set-2", 50.0, margin=0.0).promoted
    v3 = _new_version(store, name)
    scored: list[str] = []

    def score(version: str) -> float:
        scored.append(version)
        return 12.0

    d = tracking.promote(name, v3, "set-2", 11.0, margin=0.0, score_version=score)
    assert scored == [v1] and not d.promoted and d.champion_score == 12.0
    assert tracking.recorded_score(name, v1, "set-2") == 12.0


def test_load_digitizer_by_alias_and_missing_alias(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    name = "load-model"
    v = _new_version(store, name)
    tracking.promote(name, v, "s", 3.0, margin=0.0)
    spec = tracking.load_digitizer(f"models:/{name}@champion", root=store)
    assert spec.kind == "classical" and spec.weights is None and spec.version == v
    with pytest.raises(EcgmlError, match="no such model"):
        tracking.load_digitizer(f"models:/{name}@nosuchalias", root=store)
    with pytest.raises(EcgmlError, match="no such model"):
        tracking.load_digitizer("models:/never-registered@champion", root=store)


def test_fetched_model_copies_are_removed_at_exit(store: Path, tmp_path: Path) -> None:
    """Issue 16: every registry load left an `ecgml-model-*` copy in the temp folder."""
    import os
    import subprocess
    import sys

    name = "cleanup-model"
    tracking.configure(store)
    tracking.promote(name, _new_version(store, name), "s", 3.0, margin=0.0)
    code = (
        "import sys; from pathlib import Path; from ecgml import tracking; "
        f"d = tracking.fetch_model_folder('models:/{name}@champion', root=sys.argv[1]); "
        "assert (d / 'digitizer.json').exists(); "
        "assert tracking.fetch_model_folder('models:/never@champion', root=sys.argv[1]) is None"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = subprocess.run([sys.executable, "-c", code, str(store)], env=env, capture_output=True, text=True)
    assert "no such model" in out.stderr  # the second fetch failed after the first succeeded
    assert not list(tmp_path.glob("ecgml-model-*")), "fetched model copies left behind"


def test_missing_store_and_unreachable_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(EcgmlError, match="no MLflow store"):
        tracking.load_digitizer("models:/ecgml-digitizer@champion", root=tmp_path)
    assert not (tmp_path / "mlflow.db").exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(EcgmlError, match="unreachable"):
        tracking.load_digitizer("models:/ecgml-digitizer@champion")


def test_spec_roundtrip_and_bad_kind(tmp_path: Path) -> None:
    (tmp_path / "w.pt").write_bytes(b"x")
    model_folder.write_spec("learned", tmp_path, tmp_path / "w.pt")
    spec = model_folder.read_spec(tmp_path)
    assert spec.kind == "learned" and spec.weights == tmp_path / "w.pt"
    with pytest.raises(EcgmlError, match="unknown digitizer kind"):
        model_folder.write_spec("magic", tmp_path)
    (tmp_path / "w.pt").unlink()
    with pytest.raises(EcgmlError, match="missing"):
        model_folder.read_spec(tmp_path)


def test_learned_model_roundtrip_keeps_weights_and_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A learned candidate's weights and their .json config both come back from the registry."""
    from ecgml.trace.model import TraceModelConfig
    from ecgml.trace.net import build_model, save_weights

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    model_dir = tmp_path / "cand"
    cfg = TraceModelConfig(channels=(4, 8))
    weights = save_weights(build_model(cfg), cfg, model_dir / "trace_unet.pt")
    model_folder.write_spec("learned", model_dir, weights)
    rec = tracking.log_candidate(
        experiment="learned", model_dir=model_dir, params={}, metrics={}, root=tmp_path
    )
    v = tracking.register(rec.model_uri, "learned-model")
    tracking.promote("learned-model", v, "s", 1.0, margin=0.0)
    spec = tracking.load_digitizer("models:/learned-model@champion", root=tmp_path)
    assert spec.kind == "learned" and spec.weights is not None
    assert spec.weights.read_bytes() == weights.read_bytes()
    assert spec.weights.with_suffix(".json").read_text() == weights.with_suffix(".json").read_text()
    folder = Path(tracking.local_model("models:/learned-model@champion", root=tmp_path) or "")
    assert model_folder.read_spec(folder).weights.read_bytes() == weights.read_bytes()  # type: ignore[union-attr]
    assert tracking.local_model("classical") == "classical"


def test_inference_refuses_a_registry_uri_it_cannot_fetch() -> None:
    """digitize never imports MLflow: a URI reaching it unresolved is one clear error."""
    from ecgml.digitize import load_digitizer

    with pytest.raises(EcgmlError, match="fetch it first"):
        load_digitizer("models:/ecgml-digitizer@champion")
