"""Argument checks shared across the library: a bad value raises one clear `LandscapeError`."""

from __future__ import annotations

import math
import operator
from typing import Any

from landscape.errors import LandscapeError


def integer(name: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as an ``int`` if it is a whole number (not a bool) >= ``minimum``.

    Floats are refused even when integral (``2.0``): a float where a count belongs is
    usually a mistake worth naming, and JSON keeps ints as ints.
    """
    if isinstance(value, bool):
        value = None
    try:
        out = operator.index(value)
    except TypeError:
        bound = "" if minimum is None else f" >= {minimum}"
        raise LandscapeError(f"{name} must be a whole number{bound}, got {value!r}") from None
    if minimum is not None and out < minimum:
        raise LandscapeError(f"{name} must be a whole number >= {minimum}, got {out}")
    return out


def optional_integer(name: str, value: Any, minimum: int | None = None) -> int | None:
    """Like :func:`integer`, but ``None`` passes through."""
    return None if value is None else integer(name, value, minimum)


def number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_minimum: bool = False,
) -> float:
    """``value`` as a finite ``float`` within the bounds (``minimum`` excluded if strict)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not _numpy_real(value):
        raise LandscapeError(f"{name} must be a number, got {value!r}")
    out = float(value)
    low_ok = minimum is None or (out > minimum if strict_minimum else out >= minimum)
    if not math.isfinite(out) or not low_ok or (maximum is not None and out > maximum):
        low = "" if minimum is None else f"{'>' if strict_minimum else '>='} {minimum:g}"
        high = "" if maximum is None else f"<= {maximum:g}"
        bounds = " and ".join(b for b in (low, high) if b) or "finite"
        raise LandscapeError(f"{name} must be a number {bounds}, got {value!r}")
    return out


def _numpy_real(value: Any) -> bool:
    """A numpy integer or floating scalar (``np.float32(0.5)``) counts as a number."""
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    return kind in ("i", "u", "f") and getattr(value, "ndim", 1) == 0


def cpu_generator(generator: Any, seed: int = 0) -> Any:
    """``generator`` if it is a CPU ``torch.Generator``; a new one seeded with ``seed`` for
    ``None`` (so a call without one is repeatable); anything else is one clear error."""
    import torch

    if generator is None:
        return torch.Generator().manual_seed(seed)
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise LandscapeError("generator must be a CPU torch.Generator, e.g. torch.Generator()")
    return generator
