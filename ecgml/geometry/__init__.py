"""Page geometry: from any capture to a canonical, upright millimetre page."""
