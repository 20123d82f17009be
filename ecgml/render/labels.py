"""Where the lead names are printed: below-left (Kaggle, GE), above-left (Mortara) or left of the trace."""

from __future__ import annotations

from ecgml.layout import PageLayout
from ecgml.render.style import PageStyle
from ecgml.render.text import TextItem

LABEL_PLACES = ("below", "above", "left")


def row_is_rhythm(layout: PageLayout) -> dict[int, bool]:
    """Rows of one cell on a page whose other rows have several (the rhythm strips)."""
    cols: dict[int, int] = {}
    for c in layout.cells:
        cols[c.row] = cols.get(c.row, 0) + 1
    most = max(cols.values())
    return {r: (n == 1 and most > 1) for r, n in cols.items()}


def label_items(layout: PageLayout, style: PageStyle) -> list[TextItem]:
    """One text item per cell, its baseline `label_offset_mv` (at the cell's gain) below the trace's.

    "above" puts it as far above, "left" right-aligns it 1.5 mm before the row's first mark (its pulse
    or its trace) centred on the baseline, where the margin holds it (otherwise above, like later columns).
    """
    rhythm = row_is_rhythm(layout)
    starts: dict[int, float] = {}
    for p in layout.pulses:
        if p.x1_mm <= min(c.x0_mm for c in layout.cells if c.row == p.row) + 1e-6:
            starts[p.row] = p.x0_mm
    out = []
    for k, c in enumerate(layout.cells):
        g = layout.cell_gain(c)
        off = style.rhythm_label_offset_mv if rhythm[c.row] else style.label_offset_mv
        place = style.label_place or ("below" if off >= 0 else "above")
        x, anchor = c.x0_mm + style.label_dx_mm, "ls"
        if place == "left" and c.col == 0:
            x_end = starts.get(c.row, c.x0_mm) - 1.5
            if x_end > 0.35 * style.label_pt * len(c.text) * 0.6:  # roughly the text's width in mm
                out.append(TextItem(c.text, x_end, c.baseline_mm, style.label_pt, style.label_font, "rm",
                                    "label", k))  # fmt: skip
                continue
        off = abs(off) if place == "below" else -abs(off)
        out.append(TextItem(c.text, x, c.baseline_mm + off * g, style.label_pt, style.label_font, anchor,
                            "label", k))  # fmt: skip
    return out
