"""Load a study script from analyses/ as a module, as `python analyses/<name>.py` runs it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"


def load_study(name: str) -> ModuleType:
    """``analyses/<name>.py`` as the module ``<name>_study``."""
    spec = importlib.util.spec_from_file_location(f"{name}_study", ANALYSES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module
