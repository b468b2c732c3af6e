"""Pure analyses: models + data -> result rows. Nothing here trains or plots."""

from landscape.analysis.evaluate import EvalResult, evaluate, iter_batches, predict
from landscape.analysis.interpolate import Interpolation, barriers, interpolate, interpolate_state

__all__ = [
    "EvalResult",
    "Interpolation",
    "barriers",
    "evaluate",
    "interpolate",
    "interpolate_state",
    "iter_batches",
    "predict",
]
