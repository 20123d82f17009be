"""The contract between trace extractors (classical or learned) and layout assembly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ecgml.geometry.canonical import CanonicalPage
from ecgml.layout import PageLayout


@dataclass
class CellTrace:
    """The trace of one layout cell in paper millimetres: y(x) sampled at increasing x, with confidence.

    NaN in `y_mm` marks columns where nothing could be read; assembly interpolates them and keeps
    the low confidence.
    """

    lead: str
    row: int
    col: int
    x_mm: np.ndarray
    y_mm: np.ndarray
    confidence: np.ndarray  # in [0, 1], one per x
    # (y_mm, confidence) read before neighbouring rows' shared ink was repaired (`trace.shared_ink`), or None:
    # a repair must not lift a doubt the page had before it
    plain: tuple[np.ndarray, np.ndarray] | None = None


class TraceExtractor(Protocol):
    """Anything that reads every cell of a canonical page: the classical baseline or a trained model."""

    name: str

    def extract(self, page: CanonicalPage, layout: PageLayout) -> list[CellTrace]: ...

    def read_tall(self, page: CanonicalPage, layout: PageLayout, traces: list[CellTrace]) -> list[CellTrace]:
        """The final layout's traces with complexes taller than what one read covers read again."""
        ...

    def forget(self) -> None:
        """Drop whatever was kept from the page just read (a served model waits between requests)."""
        ...
