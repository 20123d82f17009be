"""Every layout family the renderer draws: its truth (labels, cells, pulses, windows) against the picture."""

from __future__ import annotations

import numpy as np
import pytest

from ecgml.errors import EcgmlError
from ecgml.layout import PageLayout
from ecgml.page import scale_map
from ecgml.records import LEADS, Record
from ecgml.render.annotate import page_annotations
from ecgml.render.layouts import (
    FAMILIES,
    MIXES,
    build_layout,
    parse_gain,
    parse_layout,
    parse_mix,
    parse_speed,
    with_extra_leads,
)
from ecgml.render.page import MASK_PULSE, MASK_TEXT, draw_page, plotted_mask
from ecgml.render.presets import render
from ecgml.render.style import kaggle_style
from ecgml.render.text import draw_text_coverage
from ecgml.render.truth import sample_truth, signal_from_coords

PPM = 100 / 25.4


def _record(seed: int = 0) -> Record:
    t = np.arange(5000) / 500
    rng = np.random.default_rng(seed)
    sig = np.stack([np.sin(2 * np.pi * (0.7 + 0.13 * j) * t + j) * (0.4 + 0.05 * j) for j in range(12)], 1)
    return Record((sig + rng.normal(0, 0.02, sig.shape)).astype(np.float32), 500, f"rec{seed}")


def _draw(name: str, **kw: object) -> tuple[Record, PageLayout, object, dict]:
    rec = _record()
    spec = parse_layout(name)
    rec, how = with_extra_leads(rec, spec)
    lay = build_layout(spec, derived=how, **kw)  # type: ignore[arg-type]
    flat = draw_page(rec, lay, kaggle_style(), PPM)
    pm = scale_map(PPM, flat.size, lay.paper_mm)
    ann = page_annotations(lay, flat.text_items, [b for _, b in flat.text_boxes], pm, rec.fs)
    return rec, lay, flat, ann


def _px(box: list[float]) -> tuple[slice, slice]:
    x0, y0, x1, y1 = box
    return slice(int(np.floor(y0)), int(np.ceil(y1))), slice(int(np.floor(x0)), int(np.ceil(x1)))


@pytest.mark.parametrize("name", FAMILIES)
def test_family_truth_matches_picture(name):
    rec, lay, flat, ann = _draw(name)
    text = (flat.masks & MASK_TEXT) != 0
    labels = ann["labels"]
    assert sorted(lb["cell"] for lb in labels) == list(range(len(lay.cells)))  # one label per cell
    for lb in labels:
        cell = lay.cells[lb["cell"]]
        assert lb["text"] == cell.text
        # the box holds this label's ink: drawn alone, all of its ink is in the box, and the page has it there
        item = next(it for it in flat.text_items if it.kind == "label" and it.cell == lb["cell"])
        alone, _ = draw_text_coverage([item], flat.size, PPM)
        ys, xs = np.nonzero(alone >= 64)
        x0, y0, x1, y1 = lb["box_px"]
        assert xs.size > 5 and xs.min() >= x0 - 1 and xs.max() <= x1 and ys.min() >= y0 - 1 and ys.max() <= y1
        assert text[ys, xs].mean() > 0.95
    # no text ink outside the boxes of the page's text items
    covered = np.zeros_like(text)
    for e in labels + ann["texts"]:
        covered[_px(e["box_px"])] = True
    assert not (text & ~covered).any()
    # each lead's window lies in its cell, and its trace is drawn there
    for cs, c, e in zip(flat.samples, lay.cells, ann["cells"], strict=True):
        assert cs.x_mm.min() >= c.x0_mm - 1e-9 and cs.x_mm.max() <= c.x1_mm + 1e-9
        assert abs(cs.x_mm[0] - c.x0_mm) < 1e-9 and cs.start == e["first_sample"] and cs.n == e["n_samples"]
        assert abs(cs.start / rec.fs - c.t0_s) < 1.0 / rec.fs
        sl = _px(e["box_px"])
        assert ((flat.rows[sl] >> c.row) & 1).sum() > 0.5 * (sl[1].stop - sl[1].start)
    for p in ann["pulses"]:
        assert ((flat.masks[_px(p["box_px"])] & MASK_PULSE) != 0).sum() > 10
    assert ann["layout"]["rhythm_leads"] == parse_layout(name).rhythm
    assert len(ann["rows"]) == lay.n_rows


@pytest.mark.parametrize("name", ["cabrera-12x1", "cabrera-6x2", "cabrera-3x4+1R"])
def test_cabrera_inverts_avr(name):
    rec, lay, flat, ann = _draw(name)
    k = next(i for i, c in enumerate(lay.cells) if c.lead == "aVR")
    c, cs = lay.cells[k], flat.samples[k]
    assert c.sign == -1 and c.text == "-aVR" and ann["cells"][k]["sign"] == -1
    assert ann["layout"]["cabrera"] and ann["layout"]["inverted_leads"] == ["aVR"]
    drawn_mv = (c.baseline_mm - cs.y_mm) / lay.cell_gain(c)
    avr = rec.signal[cs.start : cs.start + cs.n, LEADS.index("aVR")]
    assert np.allclose(drawn_mv, -avr, atol=1e-5)
    order = [lay.cells[i].text for i in range(len(lay.cells)) if lay.cells[i].col == 0][:6]
    assert order == ["aVL", "I", "-aVR", "II", "aVF", "III"][: len(order)]
    # read back through the truth: aVR comes out as aVR (the sign undone)
    st = sample_truth(flat.samples, scale_map(PPM, flat.size, lay.paper_mm), flat.masks, lay.paper_mm)
    back = signal_from_coords(st, lay, scale_map(PPM, flat.size, lay.paper_mm), rec.fs, rec.n_samples)
    ok = np.isfinite(back[:, LEADS.index("aVR")])
    assert ok.sum() > 100
    assert np.allclose(back[ok, LEADS.index("aVR")], rec.signal[ok, LEADS.index("aVR")], atol=1e-3)


def test_outside_generator_windows():
    """6x2: both columns the first 5 s; 12x1: every lead 10 s; 3x4: 2.5 s columns; strips 10 s."""
    lay = build_layout(parse_layout("6x2+II"))
    for c in lay.cells:
        assert (c.t0_s, c.t1_s) == ((0.0, 10.0) if c.row == 6 else (0.0, 5.0))
    assert all((c.t0_s, c.t1_s) == (0.0, 10.0) for c in build_layout(parse_layout("12x1")).cells)
    three = build_layout(parse_layout("3x4+V1"))
    assert [c.t0_s for c in three.cells if c.row == 0] == [0.0, 2.5, 5.0, 7.5]
    assert three.cells[-1].lead == "V1" and three.cells[-1].t1_s == 10.0
    # row pitch H/(rows+2), pulse only at the first column
    base = build_layout(parse_layout("6x2")).row_baselines()
    assert np.allclose(np.diff(base), 215.9 / 8)
    assert len(three.pulses) == three.n_rows and all(p.x1_mm == three.cells[0].x0_mm for p in three.pulses)


def test_mixed_gain_speed_and_footer():
    rec = _record(1)
    out = render(rec, "realworld", 4, layout="3x4+1R", speed=50, gain="mixed")
    lay = out.layout
    for c in lay.cells:
        assert lay.cell_gain(c) == (5.0 if c.lead.startswith("V") else 10.0)
    assert lay.speed_mm_s == 50 and all(p.step_mm == 5.0 for p in lay.pulses if p.row < 3)
    assert all(abs((p.x1_mm - p.x0_mm) - 20.0) < 1e-9 for p in lay.pulses)  # 0.4 s at 50 mm/s
    footer = [t["text"] for t in out.meta["annotations"]["texts"] if t["kind"] == "footer"]
    if footer:  # the printed settings are what is drawn
        joined = " ".join(footer)
        assert "50 mm/s" in joined and "10 mm/mV" in joined and "5 mm/mV" in joined
    # the per-sample truth reads back with each cell's own gain
    back = signal_from_coords(out.truth, lay, out.page_map, rec.fs, rec.n_samples)
    m = plotted_mask(lay, rec.fs, rec.n_samples)
    err = np.abs(back[m] - rec.signal[m])
    assert np.nanmax(err) < 0.01


@pytest.mark.parametrize("speed", [25.0, 50.0, 12.5])
def test_kaggle_pages_keep_their_pulse_on_the_paper(speed):
    from ecgml.render.presets import kaggle_layout

    lay = kaggle_layout("3x4+1R", speed)
    first = min(c.x0_mm for c in lay.cells)
    for p in lay.pulses:  # 10 mm margin, then the pulse (20 mm wide at 50 mm/s), then the rows
        assert p.x0_mm == pytest.approx(10.0) and p.x1_mm == pytest.approx(first)
    assert max(c.x1_mm for c in lay.cells) <= lay.paper_mm[0]


def test_fifteen_lead_page_derives_or_refuses():
    rec = _record(2)
    with pytest.raises(EcgmlError, match=r"rec2.*V4R, V8, V9"):
        render(rec, "0001", 0, layout="3x5", derive_leads=False)
    out = render(rec, "0001", 0, layout="3x5")
    derived = {c.lead for c in out.layout.cells if c.derived}
    assert derived == {"V4R", "V8", "V9"}
    assert out.meta["annotations"]["layout"]["derived_leads"] == sorted(derived)
    assert not plotted_mask(out.layout, rec.fs, rec.n_samples)[:, :].all()  # no truth column invented
    k = next(i for i, c in enumerate(out.layout.cells) if c.lead == "V4R")
    assert out.meta["annotations"]["cells"][k]["truth"] is False
    # a record that carries V4R etc. is drawn from them, not derived
    extra = {lead: np.zeros(5000, np.float32) for lead in ("V4R", "V8", "V9")}
    rec2 = Record(rec.signal, 500, "rec2", {"extra_leads": extra})
    out2 = render(rec2, "0001", 0, layout="3x5")
    assert not any(c.derived for c in out2.layout.cells)


def test_bad_names_list_the_known_ones():
    with pytest.raises(EcgmlError, match="known: bases 3x4"):
        parse_layout("4x3")
    with pytest.raises(EcgmlError, match="V7"):
        parse_layout("3x4+V7")
    with pytest.raises(EcgmlError, match="at most 3"):
        parse_layout("3x4+II+V1+V5+V2")
    with pytest.raises(EcgmlError, match="known: 25, 50, 12.5"):
        parse_speed(30)
    with pytest.raises(EcgmlError, match="known: 10, 5, 20, mixed"):
        parse_gain("15")
    assert parse_gain("mixed") == (10.0, 5.0) and parse_gain(5) == (5.0, 0.0)
    with pytest.raises(EcgmlError, match="unknown layout"):
        parse_mix("3x4+1R,7x7")
    assert parse_mix("training") == MIXES["training"]
    assert abs(sum(MIXES["training"].values()) - 1.0) < 1e-9


def test_layout_round_trips_through_json():
    _, lay, _, _ = _draw("cabrera-6x2+II", gain="mixed")
    assert PageLayout.from_dict(lay.to_dict()) == lay


@pytest.mark.parametrize("image_type,seed", [("lowres", 1), ("lowres", 6), ("0005", 2), ("0003", 3)])
def test_boxes_follow_every_capture(image_type, seed):
    """Label boxes mapped through the capture's map hold the label's ink in the final image's text mask."""
    out = render(_record(3), image_type, seed, layout="3x4+V1+II")
    while not out.style.labels:  # a few per cent of pages print no names: then no label boxes either
        assert out.meta["annotations"]["labels"] == []
        seed += 100
        out = render(_record(3), image_type, seed, layout="3x4+V1+II")
    text = (out.masks & MASK_TEXT) != 0
    w, h = out.page_map.image_size
    hits = []
    for lb in out.meta["annotations"]["labels"]:
        x0, y0, x1, y1 = lb["box_px"]
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            continue
        hits.append(text[_px(lb["box_px"])].any())
    assert len(hits) >= 10 and all(hits)
    if image_type == "lowres":
        assert 600 <= max(out.image.shape[:2]) <= 1400 or out.meta["params"]["lowres"]["crop_px"]


def test_sampled_pages_fit_their_paper():
    """Real-world placement: every row on the paper, below the header room (up to 110 mm), and the
    header pushes the plot down; every family, paper size, speed and gain."""
    from ecgml.render.layouts import sample_page

    headers, papers, speeds = [], set(), set()
    for seed in range(120):
        rng = np.random.default_rng(seed)
        lay, p = sample_page(rng, mix=MIXES["families"])
        w, h = lay.paper_mm
        base = lay.row_baselines()
        assert base[0] > 0 and base[-1] < h, (seed, p)
        assert all(0 <= c.x0_mm < c.x1_mm <= w for c in lay.cells)
        assert all(0 <= q.x0_mm < q.x1_mm <= w for q in lay.pulses)
        assert 0 <= p["header_mm"] <= 110 and base[0] > p["header_mm"]
        headers.append(p["header_mm"])
        papers.add(p["paper"])
        speeds.add(p["speed_mm_s"])
    assert max(headers) > 60 and min(headers) == 0
    assert papers == {"letter", "a4", "letter-portrait", "a4-portrait"} and speeds == {25.0, 50.0, 12.5}


PLACES = [("above", "cmb10.ttf", 16.0), ("left", "DejaVuSerif.ttf", 7.0), ("below", "cmtt10.ttf", 12.0)]


@pytest.mark.parametrize("place,font,pt", PLACES)
def test_label_places_and_fonts(place, font, pt):
    """Above-left, left of the trace and below-left: each label's box holds all of its ink."""
    from ecgml.render.style import PageStyle

    rec = _record(4)
    lay = build_layout(parse_layout("3x4+V1+II"), x0_mm=40.0)
    style = PageStyle(label_place=place, label_font=font, label_pt=pt, label_offset_mv=0.6)
    flat = draw_page(rec, lay, style, PPM)
    pm = scale_map(PPM, flat.size, lay.paper_mm)
    ann = page_annotations(lay, flat.text_items, [b for _, b in flat.text_boxes], pm, rec.fs)
    for lb in ann["labels"]:
        c = lay.cells[lb["cell"]]
        x0, y0, x1, y1 = lb["box_mm"]
        if place == "left" and c.col == 0:
            assert x1 <= lay.pulses[0].x0_mm and y0 < c.baseline_mm < y1  # before the pulse, on the baseline
        elif place == "below":
            assert y0 > c.baseline_mm
        else:
            assert y1 < c.baseline_mm
        item = next(it for it in flat.text_items if it.kind == "label" and it.cell == lb["cell"])
        alone, _ = draw_text_coverage([item], flat.size, PPM)
        ys, xs = np.nonzero(alone >= 64)
        bx = lb["box_px"]
        assert xs.min() >= bx[0] - 1 and xs.max() <= bx[2] and ys.min() >= bx[1] - 1 and ys.max() <= bx[3]
