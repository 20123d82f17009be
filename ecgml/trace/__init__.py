"""Trace extraction on the canonical page: where the trace is in each cell, at sub-pixel precision."""
