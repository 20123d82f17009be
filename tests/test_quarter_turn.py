"""`Digitizer._read_upright`: when the page is re-read turned a quarter and which reading is kept."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

import ecgml.digitize as dg
from ecgml.digitize import (
    Digitizer,
    DigitizeResult,
    Geometry,
    axis_unsure,
    boxes_unnamed,
    flat_page_estimate,
    flat_page_turn,
    lattice_turned_upright,
    names_unconfirmed,
)
from ecgml.errors import EcgmlError
from ecgml.label_grid import NameGrid
from ecgml.layout_solve import Solved
from ecgml.records import Record

UNSURE = {"orient_from": "rows", "axis_ratio": 1.4}


def _result(labels: dict[str, Any], turn: int, diag: dict[str, Any]) -> DigitizeResult:
    geo = flat_page_estimate(np.zeros((10, 10)))
    geo = Geometry(geo.page_map, geo.layout, 0.5, "estimated", diag, False, 90 * turn)
    rec = Record(np.zeros((10, 12)), 500, "page")
    ev: dict[str, Any] = {"labels": {k: v for k, v in labels.items() if k != "name_grid"}}
    if "name_grid" in labels:  # the names' lattice (`rows_from_names`, `turned_grid`) rides with the labels
        ev["name_grid"] = labels["name_grid"]
    return DigitizeResult(rec, {}, geo, [], "test", {}, (10, 10), [], None, ev)


class _Fake(Digitizer):
    """A digitizer whose readings per quarter turn are given (None: refused)."""

    def __init__(self, readings: dict[int, dict[str, Any] | None], diag: dict[str, Any] | None = None):
        super().__init__(None, "fake")
        self.readings = readings
        self.diag = UNSURE if diag is None else diag
        self.turns: list[int] = []

    def _digitize(self, image: Any, fs: int, path: Any, geometry: Any, turn: int = 0) -> DigitizeResult:
        self.turns.append(turn)
        labels = self.readings.get(turn)
        if labels is None:
            raise EcgmlError(path, "no trace on it")
        return _result(labels, turn, self.diag)


def _read(dig: Digitizer) -> DigitizeResult:
    return dig._read_upright(np.zeros((10, 10)), 500, None, None)


def test_refused_as_it_lies_read_turned_a_quarter():
    # validation seed 14002 realworld panels-3x4+1R_001: turned 90, read as 0 and refused ("no trace on
    # it"); turned a quarter either way its names read upright (3.5 and 4.5) and name the layout (1.0)
    dig = _Fake({0: None, 1: {"upright": 3.499, "agree": 1.0}, 3: {"upright": 4.487, "agree": 1.0}})
    res = _read(dig)
    assert dig.turns == [0, 1, 3] and res.geometry.orientation == 270
    assert any("quarter" in n for n in res.notes)


def test_refused_and_no_names_read_upright_stays_refused():
    dig = _Fake({0: None, 1: {"upright": 0.7, "agree": 0.0}, 3: None})
    with pytest.raises(EcgmlError):
        _read(dig)


def test_unsure_axis_names_unread_turns_when_names_read_a_quarter_off():
    dig = _Fake({0: {"upright": 0.5, "agree": 0.0}, 1: {"upright": 4.0, "agree": 0.9}, 3: {"upright": -4.0}})
    assert _read(dig).geometry.orientation == 90


def test_unsure_axis_names_no_better_a_quarter_off_keep_the_page():
    # validation seed 14002 realworld 12x1-bottom_001 (upright; axis 1.41): names 0.79 / 0.99 / 0.74
    dig = _Fake(
        {0: {"upright": 0.789, "agree": 0.0}, 1: {"upright": 0.994, "agree": 0.167}, 3: {"upright": 0.742}}
    )
    res = _read(dig)
    assert dig.turns == [0, 1, 3] and res.geometry.orientation == 0


def test_sure_axis_or_names_read_no_quarter_reading():
    dig = _Fake(
        {0: {"upright": 0.5, "agree": 0.0}, 1: {"upright": 4.0, "agree": 0.9}},
        {"orient_from": "rows", "axis_ratio": 2.0},
    )
    assert _read(dig).geometry.orientation == 0 and dig.turns == [0]
    dig = _Fake(
        {0: {"upright": 0.5, "agree": 0.0}, 1: {"upright": 4.0, "agree": 0.9}},
        {"orient_from": "pulses", "axis_ratio": 1.0},
    )
    assert _read(dig).geometry.orientation == 0 and dig.turns == [0]
    dig = _Fake({0: {"upright": 3.0, "agree": 0.8}, 1: {"upright": 6.0, "agree": 0.9}})
    assert _read(dig).geometry.orientation == 0 and dig.turns == [0]


def test_axis_unsure_and_names_unconfirmed():
    geo = _result({}, 0, UNSURE).geometry
    assert axis_unsure(geo)
    assert not axis_unsure(_result({}, 0, {"orient_from": "pulses+profile", "axis_ratio": 1.0}).geometry)
    assert not axis_unsure(_result({}, 0, {"orient_from": "rows", "axis_ratio": 1.6}).geometry)
    assert names_unconfirmed({"labels": {"upright": 0.4, "agree": None}})
    assert not names_unconfirmed({"labels": {"upright": 0.4, "agree": 0.8}})
    assert not names_unconfirmed({"labels": {"upright": 3.0, "agree": 0.0}})
    assert not names_unconfirmed({"labels": {"upright": -3.0, "agree": 0.0}})
    assert not names_unconfirmed({"labels": {"upright": 0.0, "agree": 0.0}, "name_grid": {"grid": {}}})
    assert not names_unconfirmed({"labels": {"upright": 0.0}, "name_grid": {"turned_grid": {}}})
    assert not names_unconfirmed({})


BOXES = {"source": "panels"}


def test_boxes_whose_names_name_no_lead_are_read_turned_half():
    # validation 0005 panels-12x1_003 (upright, read upside down): every box's name read "aVL" (upright
    # 5.6, agree 0.0); turned 180 degrees 7 names read, all the 12x1 layout's (upright 5.3, agree 1.0)
    dig = _Fake({0: {"upright": 5.621, "agree": 0.0}, 2: {"upright": 5.256, "agree": 1.0}}, BOXES)
    res = _read(dig)
    assert dig.turns == [0, 2] and res.geometry.orientation == 180
    assert any("boxes turned 180" in n for n in res.notes)


def test_boxes_whose_turned_names_name_no_lead_either_keep_the_page():
    dig = _Fake({0: {"upright": 0.5, "agree": 0.0}, 2: {"upright": 4.0, "agree": 0.2}}, BOXES)
    assert _read(dig).geometry.orientation == 0 and dig.turns == [0, 2]
    dig = _Fake({0: {"upright": 0.5, "agree": None}, 2: None}, BOXES)
    assert _read(dig).geometry.orientation == 0 and dig.turns == [0, 2]


def test_boxes_named_as_they_lie_or_no_boxes_no_half_turn():
    dig = _Fake({0: {"upright": 5.0, "agree": 0.8}, 2: {"upright": 5.0, "agree": 1.0}}, BOXES)
    assert _read(dig).geometry.orientation == 0 and dig.turns == [0]
    dig = _Fake(
        {0: {"upright": 5.0, "agree": 0.0}, 2: {"upright": 5.0, "agree": 1.0}}, {"orient_from": "pulses"}
    )
    assert _read(dig).geometry.orientation == 0 and dig.turns == [0]
    assert boxes_unnamed(_result({}, 0, BOXES))
    assert not boxes_unnamed(_result({"agree": 0.5}, 0, BOXES))


DOWN_12X1 = {"turned_grid": {"base": "12x1", "distinct": 5}}
UP_12X1 = {"grid": {"base": "12x1", "distinct": 8}}


def test_lattice_upside_down_then_upright_on_the_turned_page_turns_it():
    # validation seed 14002 panels-12x1_002 (upright, read 180): a 12x1 lattice of 5 names stood only upside
    # down; turned, one of 8 names stands upright, though the turned layout (3x4+3R) names 0.14 of them
    dig = _Fake(
        {
            0: {"upright": -3.342, "agree": 0.0, "name_grid": DOWN_12X1},
            2: {"upright": -1.09, "agree": 0.143, "name_grid": UP_12X1},
        },
        {},
    )
    res = _read(dig)
    assert dig.turns == [0, 2] and res.geometry.orientation == 180
    assert any("stand upside down" in n for n in res.notes)


def test_lattice_turned_upright_needs_the_same_lattice_at_least_as_full():
    before = {"name_grid": DOWN_12X1}
    assert lattice_turned_upright(before, {"name_grid": UP_12X1, "labels": {"agree": 0.1}})
    other = {"grid": {"base": "3x4", "distinct": 8}}
    assert not lattice_turned_upright(before, {"name_grid": other, "labels": {"agree": 0.1}})
    fewer = {"grid": {"base": "12x1", "distinct": 4}}
    assert not lattice_turned_upright(before, {"name_grid": fewer, "labels": {"agree": 0.1}})
    assert not lattice_turned_upright(before, {"labels": {"agree": 1.0}})  # no lattice upright: no word
    assert lattice_turned_upright({}, {"name_grid": other, "labels": {"agree": 0.6}})  # names agree
    assert not lattice_turned_upright({}, {"name_grid": other, "labels": {"agree": 0.4}})
    dig = _Fake(
        {
            0: {"upright": 0.0, "agree": 0.0, "name_grid": DOWN_12X1},
            2: {"upright": 0.0, "agree": 0.1, "name_grid": {"grid": {"base": "6x2", "distinct": 6}}},
        },
        {},
    )
    assert _read(dig).geometry.orientation == 0 and dig.turns == [0, 2]


def _flat_solved(labels: dict[str, Any]) -> tuple[Geometry, Solved]:
    geo = flat_page_estimate(np.zeros((10, 10)), "no ECG grid found")
    return geo, Solved(geo.layout, [], evidence={"labels": labels})


def test_flat_page_turn_from_names_read_upright(monkeypatch: pytest.MonkeyPatch):
    # test realworld 3x4_009: geometry refused, the flat page as it lies read names upright (6.1, agree 0.67)
    monkeypatch.setattr(dg, "read_grid", lambda ink, net, prob: (None, []))
    geo, solved = _flat_solved({"upright": 6.088, "agree": 0.667})
    assert geo.orientation is None
    got = flat_page_turn(geo, solved, np.zeros((8, 8)), None, np.zeros((1, 1, 1)))
    assert got.orientation == 0 and any("as it lies" in n for n in solved.notes)
    geo, solved = _flat_solved({"upright": 1.967, "agree": 0.0})
    assert flat_page_turn(geo, solved, np.zeros((8, 8)), None, np.zeros((1, 1, 1))).orientation is None
    assert not solved.notes


def test_flat_page_turn_from_a_lattice_of_names(monkeypatch: pytest.MonkeyPatch):
    # validation seed 14002 realworld 12x1_009: names beside the template's cells 1.97 upright, agree 0;
    # a 12x1 lattice of 11 names stands upright over the page
    g = NameGrid("12x1", [20.0 + 15 * k for k in range(12)], [15.0], 15.0, distinct=11)
    monkeypatch.setattr(dg, "read_grid", lambda ink, net, prob: (g, []))
    geo, solved = _flat_solved({"upright": 1.967, "agree": 0.0})
    assert flat_page_turn(geo, solved, np.zeros((8, 8)), None, np.zeros((1, 1, 1))).orientation == 0
    assert solved.evidence["name_grid"]["grid"]["base"] == "12x1"


def test_quarter_reading_on_the_flat_page_is_not_called_turned():
    # a quarter re-read whose geometry fell back to the flat page (which ignores the turn) is the image as
    # it lies: kept on its names, but not noted as turned
    class _Flat(_Fake):
        def _digitize(self, image: Any, fs: int, path: Any, geometry: Any, turn: int = 0) -> DigitizeResult:
            res = super()._digitize(image, fs, path, geometry, turn)
            flat = flat_page_estimate(np.zeros((10, 10)), "no ECG grid found")
            res.geometry = replace(flat, orientation=0)
            return res

    dig = _Flat({0: None, 1: {"upright": 6.0, "agree": 0.7}, 3: None})
    res = _read(dig)
    assert res.geometry.orientation == 0 and not any("page turned a quarter" in n for n in res.notes)
    assert any("as the image lies" in n for n in res.notes)
