"""`paper_box`: where a small bright page lies in a large photo, so geometry can look at it up close.

A phone photo of a monitor that shows a whole ECG page zoomed out (or of a printout lying on a desk, far
away) holds the page in a third of its width: on the reduced copy geometry works on, the page's 1 mm lines
are ~1.5 px apart and the grid lattice locks onto the screen's frame instead. The paper is the brightest
large region of such a photo; cropped to it, the same page is read at 4-5 px/mm.
"""

from __future__ import annotations

import cv2
import numpy as np

BOX_LONG_SIDE = 600  # the search runs on a copy this size: the paper is a large region
MAX_AREA = 0.5  # a region covering more of the image is the whole image's content: no crop helps
MIN_AREA = 0.02  # a region covering less is a label, a lamp's reflection or a window
MIN_FILL = 0.6  # the region fills this share of its box (a page, even tilted by 20 degrees, fills ~0.75)
MARGIN = 0.08  # the crop reaches this share of the box's size past each side (pulses, names, edges)


def paper_box(image: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) px of the crop around a page that covers 2-50 % of `image` (RGB), else None."""
    h, w = image.shape[:2]
    r = min(1.0, BOX_LONG_SIDE / max(h, w))
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, None, fx=r, fy=r, interpolation=cv2.INTER_AREA) if r < 1.0 else grey
    small = cv2.GaussianBlur(small, (0, 0), 3.0)
    _, bright = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # close the grid lines and traces printed on the paper, so the page is one region
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    if n < 2:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh, area = (int(v) for v in stats[k])
    if not MIN_AREA <= area / bright.size <= MAX_AREA or area / float(bw * bh) < MIN_FILL:
        return None
    mx, my = MARGIN * bw, MARGIN * bh
    x0, y0 = max(0, int((x - mx) / r)), max(0, int((y - my) / r))
    x1, y1 = min(w, int((x + bw + mx) / r) + 1), min(h, int((y + bh + my) / r) + 1)
    return x0, y0, x1, y1
