"""Synthetic ECG pages: draw a record on paper in mm, capture it (scan, photo, screen), keep exact truth.

Modules: `style` (how a page looks), `text` (fonts and text), `page` (flat page raster), `effects` (paper
state), `capture` (scanner, phone, screen; the final page map), `truth` (sidecars, read-back),
`presets` (the Kaggle types and `realworld`), `sheet` (contact sheet). Nothing runs on import.
"""
