"""Page geometry: from any capture to a canonical, upright millimetre page.

Public entry point: `estimate_page(image, path) -> PageEstimate`; then `canonical_page(image,
estimate.page_map)` rasterises the paper.
"""

from ecgml.geometry.canonical import CanonicalPage, canonical_page
from ecgml.geometry.estimate import PageEstimate, estimate_page

__all__ = ["CanonicalPage", "PageEstimate", "canonical_page", "estimate_page"]
