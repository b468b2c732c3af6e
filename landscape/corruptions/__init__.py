"""Image corruptions at five severities (Hendrycks & Dietterich 2019), batched in PyTorch.

``corrupt(images, name, severity)`` applies one of the 19 :data:`CORRUPTIONS` to a whole
batch on any device; see :mod:`landscape.corruptions.core`.
"""

from landscape.corruptions import blur, digital, noise, weather  # noqa: F401  (registers)
from landscape.corruptions.core import (
    CORRUPTIONS,
    SEVERITIES,
    TABLES,
    corrupt,
    get_corruption,
    table_for,
)

__all__ = ["CORRUPTIONS", "SEVERITIES", "TABLES", "corrupt", "get_corruption", "table_for"]
