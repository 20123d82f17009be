"""The label reader: its network's geometry, its training patches, and the shipped weights reading the
printed lead names of rendered pages (and telling upright from upside down)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgml.layout import make_layout
from ecgml.page_reader import CLASSES, PATCH_MM, READ_PPM, LabelReading, _net, conflicts, label_factors
from ecgml.records import LEADS

RECORDS = Path(__file__).parent.parent / "data" / "records" / "cpsc2018_challenge2020"


def test_one_patch_gives_one_reading_and_a_page_a_map():
    import torch

    net = _net().eval()
    h, w = int(PATCH_MM[1] * READ_PPM), int(PATCH_MM[0] * READ_PPM)
    with torch.inference_mode():
        assert tuple(net(torch.zeros(2, 1, h, w)).shape) == (2, len(CLASSES), 1, 1)
        out = net(torch.zeros(1, 1, h + 80, w + 40))
    assert tuple(out.shape[2:]) == (1 + 80 // 8, 1 + 40 // 8)  # one reading every 2 mm


def test_training_patches_are_centred_labels_and_none():
    from ecgml.training.page_reader import page_patches

    xs, ys, kinds = page_patches(RECORDS / "A0010", np.random.default_rng(3))
    ys_arr, kinds_arr = np.array(ys), np.array(kinds)
    assert all(x.shape == (int(PATCH_MM[1] * READ_PPM), int(PATCH_MM[0] * READ_PPM)) for x in xs)
    assert (ys_arr == len(CLASSES) - 1).sum() > (ys_arr < len(LEADS)).sum() > 10
    assert (ys_arr[kinds_arr == 0] < len(CLASSES) - 1).all()  # centred names are names
    assert (ys_arr[kinds_arr >= 2] == len(CLASSES) - 1).all()  # moved names and the rest of the page: none
    lab = [x for x, y, k in zip(xs, ys, kinds, strict=True) if k == 0]
    centre = np.mean([x[12:28, 28:68].mean() for x in lab])
    edge = np.mean([np.r_[x[:, :16].ravel(), x[:, -16:].ravel()].mean() for x in lab])
    assert centre > 1.3 * edge  # the printed name sits in the middle of its patch (grid lines fill both)


def test_an_off_page_map_moves_the_printed_text_where_the_rectified_page_shows_it():
    from ecgml.page import PageMap
    from ecgml.training.page_reader import _off_map

    h = np.array([[3.0, 0.2, 40.0], [-0.1, 3.1, 25.0], [0.0, 0.0, 1.0]])
    true_map = PageMap(h, (900, 700), (280.0, 216.0))
    off, to_off = _off_map(true_map, np.random.default_rng(1))
    p = np.array([[20.0, 30.0], [250.0, 190.0]])
    q = (to_off @ np.c_[p, np.ones(2)].T).T
    assert np.abs(q - p).max() > 0.5  # moved...
    assert np.allclose(off.mm_to_px(q), true_map.mm_to_px(p))  # ...to where the off map shows that ink


def test_header_text_and_the_traces_of_a_real_cart_page_are_none_patches():
    from ecgml.training.page_reader import KIND_LABEL, cut_patches

    ink = np.zeros((int(216 * READ_PPM), int(280 * READ_PPM)), np.float32)
    lay = make_layout("3x4+1R")
    boxes = [("V1", (100.0, 60.0, 104.0, 63.0)), ("Vent. rate 72 BPM", (20.0, 10.0, 60.0, 14.0))]
    xs, ys, kinds = cut_patches(ink, boxes, lay, np.random.default_rng(0))
    ys_arr, kinds_arr = np.array(ys), np.array(kinds)
    assert set(ys_arr[kinds_arr == KIND_LABEL]) == {CLASSES.index("V1")}
    assert (ys_arr[kinds_arr != KIND_LABEL] != CLASSES.index("V1")).all()
    # the header line gives "none" patches centred on it
    assert len(xs) > 20 and (ys_arr == len(CLASSES) - 1).sum() > 20


def test_real_cart_training_patches_are_centred_names_and_none():
    from ecgml.training.page_reader import cart_patches

    rng = np.random.default_rng(5)
    xs, ys, kinds = cart_patches(RECORDS / "A0010", rng)
    ys_arr, kinds_arr = np.array(ys), np.array(kinds)
    assert all(x.shape == (int(PATCH_MM[1] * READ_PPM), int(PATCH_MM[0] * READ_PPM)) for x in xs)
    assert (ys_arr[kinds_arr == 0] < len(CLASSES) - 1).all() and (kinds_arr == 0).sum() >= 4
    assert (ys_arr[kinds_arr >= 2] == len(CLASSES) - 1).all()
    lab = [x for x, k in zip(xs, kinds, strict=True) if k == 0]
    centre = np.mean([x[12:28, 28:68].mean() for x in lab])
    edge = np.mean([np.r_[x[:, :16].ravel(), x[:, -16:].ravel()].mean() for x in lab])
    assert centre > 1.3 * edge  # the name sits in the middle of its patch after the capture and rectification


def test_a_conflicting_label_lowers_only_its_lead_and_neighbour_rows_are_ambiguous():
    lay = make_layout("3x4+1R")
    reading = LabelReading(cells={(0, 0): ("aVL", 0.95), (0, 1): ("aVL", 0.99), (1, 0): ("II", 0.97)})
    # (0, 0) is I, read aVL: another lead -> conflict; (0, 1) aVR read aVL, the lead just below: ambiguous
    assert [(c.lead, got) for c, got in conflicts(reading, lay)] == [("I", "aVL")]
    assert label_factors(reading, lay) == {"I": 0.2}


def _solved(name: str):
    from ecgml.layout_solve import Solved

    lay = make_layout(name)
    return Solved(lay, [])


def test_printed_cabrera_names_relabel_a_standard_12x1_page():
    from ecgml.page_reader import CABRERA, apply_labels

    solved = _solved("12x1")
    # ten of the twelve names read (two rows unreadable): the Cabrera order explains them, the template not
    reads = {(r, 0): (name, 0.95) for r, name in enumerate(CABRERA) if r not in (3, 7)}
    out = apply_labels(solved, LabelReading(cells=reads, read=len(reads)))
    got = [(c.lead, c.sign) for c in sorted(out.layout.cells, key=lambda c: c.row)]
    assert got[:6] == [("aVL", 1.0), ("I", 1.0), ("aVR", -1.0), ("II", 1.0), ("aVF", 1.0), ("III", 1.0)]
    assert out.layout.cabrera and out.evidence["label_decision"]["order"] == "cabrera"


def test_a_few_stray_names_do_not_switch_the_order():
    from ecgml.page_reader import apply_labels

    solved = _solved("12x1")
    reads = {(0, 0): ("aVL", 0.9), (1, 0): ("II", 0.9), (4, 0): ("aVL", 0.85)}
    out = apply_labels(solved, LabelReading(cells=reads, read=3))
    assert [c.lead for c in sorted(out.layout.cells, key=lambda c: c.row)] == list(LEADS)


def test_a_strip_name_read_less_surely_counts_when_it_names_the_traces_best_match():
    from ecgml.page_reader import STRIP_BY_LABEL, apply_labels

    # validation realworld 3x4+V1_001: strip printed "V1" read at 0.81, its trace V1 r = 0.98 (V2 0.93)
    match = {
        "lead": "V1",
        "corr": 0.98,
        "distance_ratio": 1.89,
        "by_lead": {"V1": 0.98, "V2": 0.93, "II": -0.1},
    }
    reads = {(0, 0): ("I", 0.97), (1, 0): ("II", 0.96), (2, 1): ("aVF", 0.9), (3, 0): ("V1", 0.81)}
    solved = _solved("3x4+1R")
    solved.evidence["strip_row3"] = dict(match)
    out = apply_labels(solved, LabelReading(cells=reads, read=4))
    assert next(c for c in out.layout.cells if c.row == 3).lead == "V1"
    assert out.lead_factor["strip3"] == STRIP_BY_LABEL
    # ... but a name read that unsurely, naming another lead than the trace's best match, is not taken
    solved = _solved("3x4+1R")
    solved.evidence["strip_row3"] = dict(match, lead="V2", by_lead={"V2": 0.98, "V1": 0.93})
    out = apply_labels(solved, LabelReading(cells=reads, read=4))
    assert next(c for c in out.layout.cells if c.row == 3).lead == "II"


def test_a_strip_printed_v1_is_read_as_v1_when_its_trace_matched_nothing_surely():
    from ecgml.page_reader import apply_labels

    solved = _solved("3x4+1R")
    solved.evidence["strip_row3"] = {"lead": "II", "corr": 0.4, "distance_ratio": 1.1}
    solved.lead_factor["strip3"] = 0.1
    reads = {(0, 0): ("I", 0.97), (1, 0): ("II", 0.96), (2, 1): ("aVF", 0.9), (3, 0): ("V1", 0.97)}
    out = apply_labels(solved, LabelReading(cells=reads, read=4))
    strip = next(c for c in out.layout.cells if c.row == 3)
    assert strip.lead == "V1" and out.lead_factor["strip3"] == 0.85
    # ... but not when its trace matched another lead clearly better than V1 (the name was misread)
    solved = _solved("3x4+1R")
    solved.evidence["strip_row3"] = {"lead": "V5", "corr": 0.99, "distance_ratio": 1.3,
                                     "by_lead": {"V5": 0.99, "V4": 0.97, "V1": 0.35}}  # fmt: skip
    out = apply_labels(solved, LabelReading(cells=reads, read=4))
    assert next(c for c in out.layout.cells if c.row == 3).lead == "II"
    # a strip whose trace surely matched II keeps II, and the printed V1 is a conflict that lowers it
    solved = _solved("3x4+1R")
    solved.evidence["strip_row3"] = {"lead": "II", "corr": 0.95, "distance_ratio": 4.0}
    out = apply_labels(solved, LabelReading(cells=reads, read=4))
    assert next(c for c in out.layout.cells if c.row == 3).lead == "II"
    assert [(c.lead, got) for c, got in conflicts(LabelReading(cells=reads, read=4), out.layout)] == [
        ("II", "V1")
    ]


def test_a_lone_disagreeing_name_on_a_page_whose_names_confirm_the_layout_lowers_its_lead_less():
    from ecgml.page_reader import CONFLICT_FACTOR, LONE_CONFLICT_FACTOR

    lay = make_layout("3x4+1R")
    reads = {(c.row, c.col): (c.lead, 0.99) for c in lay.cells}
    reads[(0, 1)] = ("I", 0.99)  # aVR's cell read as I (a separator tick can look like one)
    assert label_factors(LabelReading(cells=reads), lay) == {"aVR": LONE_CONFLICT_FACTOR}
    few = {k: v for k, v in reads.items() if k in ((0, 0), (1, 0), (0, 1))}
    assert label_factors(LabelReading(cells=few), lay) == {"aVR": CONFLICT_FACTOR}


def test_a_page_without_readable_names_says_so_and_lowers_every_lead_a_little():
    from ecgml.page_reader import NO_LABELS_FACTOR, apply_labels

    lay = make_layout("3x4+1R")
    reading = LabelReading(cells={(0, 0): ("I", 0.4)}, read=0)
    out = apply_labels(_solved("3x4+1R"), reading)
    assert out.evidence["label_decision"]["labels"] == "none read"
    assert any("no printed lead name" in n for n in out.notes)
    assert set(label_factors(reading, lay).values()) == {NO_LABELS_FACTOR}


def test_maps_near_the_cells_equal_the_whole_page_map_where_names_may_be():
    import torch

    from ecgml.page_reader import _cell_reads, class_maps, maps_near

    torch.manual_seed(0)
    net = _net().eval()
    lay = make_layout("3x4+1R")
    ink = np.random.default_rng(0).random((int(215.9 * READ_PPM), int(279.4 * READ_PPM))).astype(np.float32)
    full, near = class_maps(net, ink), maps_near(net, ink, lay)
    assert full.shape == near.shape
    computed = near[-1] < 1.0
    assert computed.mean() < 0.7  # a part of the page only
    assert np.allclose(full[:, computed], near[:, computed], atol=1e-5)
    assert _cell_reads(full, lay, 0.0, 0.0) == _cell_reads(near, lay, 0.0, 0.0)


def test_a_cells_name_is_the_one_its_neighbouring_steps_agree_on_not_one_steps_best():
    """A name crossed off its centre reads as another name at one step (V5 as V2 at 0.995) while the
    steps around it read the printed name: the cell is read as the printed name."""
    from ecgml.page_reader import NAMES, STRIDE_MM, _cell_reads

    lay = make_layout("3x4+1R")
    prob = np.zeros((len(CLASSES), 104, 128), np.float32)
    prob[-1] = 1.0

    def step(c, dx_mm: float, dy_mm: float) -> tuple[int, int]:
        i = round((c.baseline_mm + dy_mm - PATCH_MM[1] / 2) / STRIDE_MM)
        return i, round((c.x0_mm + dx_mm - PATCH_MM[0] / 2) / STRIDE_MM)

    for c in lay.cells:  # every name printed 4 mm right of its cell's start, 4 mm above its baseline
        i, j = step(c, 4.0, -4.0)
        prob[NAMES.index(c.lead), i, j] = 0.97
    v5 = next(c for c in lay.cells if c.lead == "V5")
    i, j = step(v5, 4.0, -4.0)
    for ii, jj in ((i - 1, j), (i + 1, j), (i, j + 1)):
        prob[NAMES.index("V5"), ii, jj] = 0.95
    prob[NAMES.index("V2"), i, j - 1] = 0.995  # the one step 2 mm off reads V2 surer than any
    got = _cell_reads(prob, lay, 0.0, 0.0)
    assert got[(v5.row, v5.col)][0] == "V5"
    assert all(got[(c.row, c.col)][0] == c.lead for c in lay.cells)
    assert all(abs(p - 0.97) < 1e-6 for _, p in got.values())  # as surely as its best step reads it


def test_a_boxs_name_is_read_about_its_top_edge_not_on_the_time_ticks_under_the_boxes():
    """A page of short boxes prints time ticks ("0", "1", ...) under every box, 30 mm window's worth from
    the next name: read surer than the names (as "V5"), they won the page's offset and every box was
    "printed V5". A box's name is read about its own top edge only (validation panels-12x1_000)."""
    from dataclasses import replace

    from ecgml.page_reader import NAMES, STRIDE_MM, _cell_reads, label_anchors

    plain = make_layout("12x1")
    cells = [
        replace(
            c,
            baseline_mm=25.0 + 28.0 * c.row,
            box_top_mm=20.0 + 28.0 * c.row,
            box_bottom_mm=30.0 + 28.0 * c.row,
        )
        for c in plain.cells
    ]
    lay = label_anchors(replace(plain, cells=cells, paper_mm=(280.0, 360.0)))
    prob = np.zeros((len(CLASSES), 180, 140), np.float32)
    prob[-1] = 1.0

    def step(c, dx_mm: float, y_mm: float) -> tuple[int, int]:
        return round((y_mm - PATCH_MM[1] / 2) / STRIDE_MM), round(
            (c.x0_mm + dx_mm - PATCH_MM[0] / 2) / STRIDE_MM
        )

    for c in lay.cells:
        i, j = step(c, 2.0, c.box_top_mm - 4.0)  # the name just above the box
        prob[NAMES.index(c.lead), i, j] = 0.95
        i, j = step(c, 2.0, c.box_bottom_mm + 4.0)  # the tick under it, read surer
        prob[NAMES.index("V5"), i, j] = 0.99
    got = _cell_reads(prob, lay, 0.0, 0.0)
    assert {k: v[0] for k, v in got.items()} == {(c.row, c.col): c.lead for c in lay.cells}


def test_the_reader_runs_its_exported_graph_like_the_network(tmp_path):
    """Digitizing needs no torch once the graph is cached (issue 17): the graph gives the network's maps."""
    import torch

    from ecgml.page_reader import class_maps, load_net, load_reader

    torch.manual_seed(2)
    weights = tmp_path / "reader.pt"
    torch.save(_net().state_dict(), weights)
    runner = load_reader(str(weights))
    load_reader.cache_clear()
    assert runner.runtime != "torch" and list(tmp_path.glob("reader.*.onnx"))  # cached beside the weights
    ink = np.random.default_rng(1).random((200, 300)).astype(np.float32)
    assert np.allclose(class_maps(runner, ink), class_maps(load_net(weights), ink), atol=1e-4)


def _drawn_page(layout_name: str, seed: int):
    from ecgml.records import read_wfdb, resample
    from ecgml.render.page import draw_page
    from ecgml.render.presets import kaggle_layout
    from ecgml.render.style import kaggle_style

    rec = resample(read_wfdb(RECORDS / "A0010").window(0, 10), 250, 2500)
    lay = kaggle_layout(layout_name)
    return draw_page(rec, lay, kaggle_style(np.random.default_rng(seed)), READ_PPM, supersample=2).image, lay


def test_the_shipped_reader_reads_a_freshly_drawn_page_and_its_orientation():
    from ecgml.page_reader import UPSIDE_DOWN_AT, WEIGHTS, _turned, load_reader, read_labels

    assert WEIGHTS.exists() and WEIGHTS.with_suffix(".json").exists()
    net = load_reader()
    img, lay = _drawn_page("3x4+1R", 5)
    reading = read_labels(img, lay, net)
    assert reading is not None
    lead_at = {(c.row, c.col): c.lead for c in lay.cells}
    right = [k for k, (name, p) in reading.cells.items() if p >= 0.8 and name == lead_at[k]]
    wrong = [k for k, (name, p) in reading.cells.items() if p >= 0.8 and name != lead_at[k]]
    assert len(right) >= 11 and not wrong, reading.cells
    assert reading.upright > UPSIDE_DOWN_AT
    # the page turned 180 degrees, with the layout geometry would fit to its traces that way up: the
    # names now read upside down
    turned = np.ascontiguousarray(img[::-1, ::-1])
    size = (img.shape[1] / READ_PPM, img.shape[0] / READ_PPM)
    upside = read_labels(turned, _turned(lay, size), net)
    assert upside is not None and upside.upright < -UPSIDE_DOWN_AT


def test_printed_cabrera_names_on_a_drawn_page_put_its_leads_in_the_cabrera_order():
    from dataclasses import replace

    from ecgml.layout_solve import Solved
    from ecgml.page_reader import apply_labels, load_reader, read_labels

    img, lay = _drawn_page("cabrera-12x1", 6)
    # the cells where geometry finds them, holding the standard 12x1 template's leads
    template = replace(lay, cells=[replace(c, lead=LEADS[c.row], sign=1.0) for c in lay.cells], cabrera=False)
    reading = read_labels(img, template, load_reader())
    out = apply_labels(Solved(template, []), reading)
    assert [c.text for c in sorted(out.layout.cells, key=lambda c: c.row)] == [c.text for c in lay.cells]


def test_names_that_are_all_the_row_aboves_mean_rows_one_off_and_every_such_lead_conflicts():
    """A page placed a row off reads each cell's name as its upper neighbour's: that must lower those
    leads and never confirm the layout (before, each was excused as a label between two rows)."""
    from ecgml.page_reader import CONFLICT_FACTOR, apply_labels, rows_shifted

    lay = make_layout("6x2+1R")
    above = {(c.row - 1, c.col): c.lead for c in lay.cells}
    shifted = {(c.row, c.col): (above[(c.row, c.col)], 0.99) for c in lay.cells if (c.row, c.col) in above}
    reading = LabelReading(cells=shifted)
    assert rows_shifted(reading, lay)
    bad = {c.lead for c, _ in conflicts(reading, lay)}
    assert len(bad) >= 6 and set(label_factors(reading, lay).values()) == {CONFLICT_FACTOR}
    out = apply_labels(_solved("6x2+1R"), reading)
    assert out.evidence["label_decision"]["labels"] == "rows one off"
    # the same page read right, with one name taken from the row above: not shifted
    right = {(c.row, c.col): (c.lead, 0.99) for c in lay.cells}
    right[(1, 0)] = (above[(1, 0)], 0.99)
    assert not rows_shifted(LabelReading(cells=right), lay)


def test_small_copy_degrade_loses_fine_detail():
    """`small`: every page is a small copy (2.2-3.2 px/mm) brought back to READ_PPM, so 1-px strokes blur."""
    import numpy as np

    from ecgml.training.page_reader import _degrade

    img = np.full((80, 160), 255, np.uint8)
    img[:, ::4] = 0  # 1-px strokes 4 px apart: gone at 0.8x or less
    for seed in range(5):
        out = _degrade(img, np.random.default_rng(seed), small=True)
        assert out.shape == img.shape
        assert float(out[:, ::4].mean()) > 60  # strokes no longer black
