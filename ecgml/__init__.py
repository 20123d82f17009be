"""ecgml: turn images of 12-lead paper ECGs into signals."""

__version__ = "0.1.0"
