"""A page small in a large photo (a monitor showing the page zoomed out): geometry reads it on a crop."""

from __future__ import annotations

import numpy as np
from geometry_pages import draw_page

from ecgml.geometry import estimate_page
from ecgml.geometry.paper import paper_box


def _on_screen(img: np.ndarray, at: tuple[int, int]) -> np.ndarray:
    """`img` pasted at (x, y) into a 3000x4000 photo of a dark monitor inside a lighter bezel."""
    photo = np.full((4000, 3000, 3), 45, np.uint8)
    photo[200:3800, 300:2700] = 30
    x, y = at
    photo[y : y + img.shape[0], x : x + img.shape[1]] = img
    return photo


def test_small_page_in_a_large_photo_is_mapped_through_a_crop() -> None:
    img, truth, layout = draw_page(ppm=4.0, seed=2)
    at = (800, 1500)
    est = estimate_page(_on_screen(img, at), "screen.png")
    assert "paper_crop" in est.diagnostics  # the whole-photo attempts found no grid
    assert est.layout.name == layout.name and est.orientation == 0
    pts = np.array([[x, c.baseline_mm] for c in layout.cells for x in (c.x0_mm, c.x1_mm)])
    err_px = est.page_map.mm_to_px(pts) - (truth.mm_to_px(pts) + np.array(at))
    assert np.abs(err_px).max() < 0.5
    assert est.page_map.image_size == (3000, 4000)


def test_paper_box_leaves_full_frame_pages_and_blank_images_alone() -> None:
    img, _, _ = draw_page(ppm=4.0, seed=3)
    assert paper_box(img) is None  # the page is the whole image: nothing to crop
    assert paper_box(np.full((800, 600, 3), 40, np.uint8)) is None
    box = paper_box(_on_screen(img, (900, 1600)))
    assert box is not None
    x0, y0, x1, y1 = box
    assert x0 <= 900 and y0 <= 1600 and x1 >= 900 + img.shape[1] and y1 >= 1600 + img.shape[0]
