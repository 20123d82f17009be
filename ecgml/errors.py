"""One error type for bad input, so every entry point can name the file and the problem."""

from __future__ import annotations

from pathlib import Path

# geometry found the page's grid but no trace row on it (callers tell this apart from "no grid")
GRID_NO_ROWS = "no ECG trace found on the grid"


class EcgmlError(Exception):
    """Bad input or an unrecoverable condition, always tied to the file it came from."""

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = str(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class ImageTooSmall(EcgmlError):
    """The image holds the page at fewer px per mm than can be read (`ecgml.images.MIN_PX_PER_MM`): a
    refusal, never a flat-page guess (the digitizer's fallback for a page whose grid was not found)."""
