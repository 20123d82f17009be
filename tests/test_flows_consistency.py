"""One stage list: dvc.yaml, ecgml.stages and the retraining flow agree, and dvc.yaml's order is a valid
topological order of its own dependency graph."""

from __future__ import annotations

from pathlib import Path

import yaml

from ecgml.config import load_params
from ecgml.stages import STAGE_FUNCS, STAGES

REPO = Path(__file__).resolve().parents[1]


def _resolve(text: str, params: dict) -> str:
    """`${a.b}` from params.yaml, as DVC templating does."""
    while "${" in text:
        start = text.index("${")
        end = text.index("}", start)
        node = params
        for part in text[start + 2 : end].split("."):
            node = node[part]
        text = text[:start] + str(node) + text[end + 1 :]
    return text


def _paths(entries: list, params: dict) -> list[str]:
    out = []
    for e in entries or []:
        key = next(iter(e)) if isinstance(e, dict) else e
        out.append(_resolve(key, params).rstrip("/"))
    return out


def test_flow_stage_list_is_dvc_yaml_and_library() -> None:
    from flows.retrain import dvc_stages

    assert dvc_stages(REPO) == list(STAGES) == list(STAGE_FUNCS)


def test_dvc_yaml_order_is_topological_and_cmds_call_the_stage() -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    produced: dict[str, str] = {}
    for name, st in stages.items():
        assert st["cmd"] == f"ecgml stage {name}"
        for out in _paths(st.get("outs"), params):
            produced[out] = name
    order = list(stages)
    links = 0
    for name, st in stages.items():
        for dep in _paths(st.get("deps"), params):
            for out, owner in produced.items():
                if dep == out or dep.startswith(out + "/"):
                    assert order.index(owner) < order.index(name), f"{name} depends on {owner}'s {out}"
                    links += 1
    assert links >= len(order) - 1  # every stage after the first consumes an earlier one's output


def test_stage_params_sections_exist() -> None:
    p = load_params(REPO / "params.yaml")
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for st in stages.values():
        for key in st.get("params", []):
            section = key.split(".")[0]
            attr = "registry" if section == "register" else section
            assert hasattr(p, attr), key
