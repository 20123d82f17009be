"""Page geometry: from any capture to a canonical, upright millimetre page.

Public entry point: `estimate_page(image, path) -> PageEstimate` with `page_map` (paper mm -> input px,
homography + smooth residual, ecgml.page conventions), `layout` (PageLayout: rows, baselines, cells, gain,
speed, pulses), `px_per_mm` (from the grid, never DPI), `orientation` (0/90/180/270: how far the page is
turned counter-clockwise in the input), `confidence` (below 0.5: check the page) and `diagnostics`.
Then `canonical_page(image, estimate.page_map, px_per_mm)` rasterises the paper (default 8 px/mm; the
trace model may ask for a finer x). Bad input raises EcgmlError(path, reason).

Modules: `grid` (darkness, per-tile lattice, coarse frame), `refine` (grid-phase refinement to
homography + residual), `orient` (calibration pulses, rows, quarter turn, layout, 5 mm snapping),
`estimate` (the pipeline), `io` (files, `ecgml geometry` command), `canonical` (resampling).
"""

from ecgml.geometry.canonical import CanonicalPage, canonical_page
from ecgml.geometry.estimate import GridRefuted, PageEstimate, estimate_page, flat_rows_estimate

__all__ = [
    "CanonicalPage",
    "GridRefuted",
    "PageEstimate",
    "canonical_page",
    "estimate_page",
    "flat_rows_estimate",
]
