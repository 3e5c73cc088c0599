"""vitrine: streaming content-based recommendations."""

__version__ = "0.1.0"
