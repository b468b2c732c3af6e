"""Where datasets and generated caches live: environment variables first, then defaults."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "LANDSCAPE_DATA"
CACHE_ENV = "LANDSCAPE_CACHE"
RUNS_ENV = "LANDSCAPE_RUNS"


def runs_root(root: str | os.PathLike | None = None) -> Path:
    """Where runs (and the synthetic sets made for them) live: ``root``, else
    ``$LANDSCAPE_RUNS``, else ``./runs``."""
    return Path(root or os.environ.get(RUNS_ENV) or "runs")


def data_root() -> Path | None:
    """``$LANDSCAPE_DATA`` as a path, or ``None`` when it is unset or empty."""
    value = os.environ.get(DATA_ENV, "")
    return Path(value).expanduser() if value else None


def default_data_root() -> Path:
    """``~/data``: where torchvision's ``download=True`` is conventionally pointed."""
    return Path.home() / "data"


def cache_dir() -> Path:
    """``$LANDSCAPE_CACHE``, else ``~/.cache/landscape``; for data this package generates."""
    value = os.environ.get(CACHE_ENV, "")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "landscape"
