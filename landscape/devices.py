"""Turn a user's device choice into a ``torch.device`` this machine really has."""

from __future__ import annotations

import operator
from typing import Any

import torch

from landscape.errors import LandscapeError


def resolve_device(device: Any = None) -> torch.device:
    """The device to work on: ``device`` checked, or CUDA when there is one, else the CPU.

    Args:
        device: ``None``, a ``torch.device``, a string such as ``"cpu"``, ``"cuda"`` or
            ``"cuda:1"``, or an int (a CUDA index, as torch reads it).

    Raises:
        LandscapeError: the string names no device, or the device is absent here (CUDA
            asked for on a machine without a usable GPU, an index beyond the GPU count).
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, bool) or not isinstance(device, (str, int, torch.device)):
        raise LandscapeError(
            f"device must be a string such as 'cpu', 'cuda' or 'cuda:1', got {device!r}"
        )
    try:
        dev = torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
    except (RuntimeError, ValueError):
        raise LandscapeError(
            f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N' (N counts from 0)"
        ) from None
    _check_present(dev)
    return dev


def _check_present(dev: torch.device) -> None:
    if dev.type == "cpu":
        return
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise LandscapeError(
                f"device {str(dev)!r} was asked for but this machine has no usable CUDA GPU "
                f"(torch.cuda.is_available() is False); use 'cpu' or leave the device out"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and operator.index(dev.index) >= count:
            raise LandscapeError(
                f"device {str(dev)!r} does not exist: this machine has {count} CUDA "
                f"device(s), cuda:0 to cuda:{count - 1}"
            )
        return
    backend = getattr(torch, dev.type, None) or getattr(torch.backends, dev.type, None)
    available = getattr(backend, "is_available", None)
    if available is None or not available():
        raise LandscapeError(
            f"device {str(dev)!r} is not available on this machine; use 'cpu' or 'cuda'"
        )
