"""landscape: loss landscapes and mode connectivity of sparse neural networks."""

from __future__ import annotations

from landscape.errors import LandscapeError

__all__ = ["LandscapeError", "__version__"]
__version__ = "0.1.0"
