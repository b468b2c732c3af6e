"""Argument checks shared by the model constructors: bad values raise `LandscapeError`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from landscape.errors import LandscapeError


def positive_int(model: str, name: str, value: Any) -> int:
    """``value`` as an ``int`` if it is a whole number >= 1, else a `LandscapeError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LandscapeError(f"{model}: {name} must be a whole number >= 1, got {value!r}")
    return value


def positive_float(model: str, name: str, value: Any) -> float:
    """``value`` as a ``float`` if it is a finite number > 0, else a `LandscapeError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LandscapeError(f"{model}: {name} must be a number > 0, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise LandscapeError(f"{model}: {name} must be a number > 0, got {value!r}")
    return float(value)


def probability(model: str, name: str, value: Any) -> float:
    """``value`` as a ``float`` if it lies in ``[0, 1)``, else a `LandscapeError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise LandscapeError(f"{model}: {name} must be a number in [0, 1), got {value!r}")
    return float(value)


def scaled(base: int, multiplier: float) -> int:
    """``base`` channels times a width ``multiplier``, rounded, never below one."""
    return max(1, round(base * multiplier))


def input_shape(model: str, in_shape: Sequence[int], ndim: int) -> tuple[int, ...]:
    """Check that ``in_shape`` has ``ndim`` positive entries: ``(C, L)`` or ``(C, H, W)``.

    Args:
        model: model name, for the error message.
        in_shape: shape of one example, without the batch dimension.
        ndim: 2 for sequences ``(C, L)``, 3 for images ``(C, H, W)``.

    Returns:
        ``in_shape`` as a tuple of ints.
    """
    kind = {2: "(channels, length)", 3: "(channels, height, width)"}[ndim]
    shape = tuple(in_shape)
    if len(shape) != ndim or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape
    ):
        raise LandscapeError(
            f"{model} needs in_shape {kind}, got {tuple(in_shape)}; pass the per-example shape "
            "of your data without the batch dimension (see DatasetInfo.in_shape)"
        )
    return shape
