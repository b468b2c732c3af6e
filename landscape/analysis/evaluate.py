"""Fast batched evaluation (loss, error, logits) on whole splits, shared by every analysis.

Data is given as an ``(x, y)`` pair of tensors, an object with ``.x`` and ``.y`` (a
:class:`landscape.data.Split`), or any iterable of ``(x, y)`` batches. Batches move to the
model's device; the model is put in eval mode for the pass and left as it was found.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from landscape.errors import LandscapeError

DEFAULT_BATCH = 2048


@dataclass(frozen=True)
class EvalResult:
    """Mean cross-entropy ``loss``, fraction misclassified ``error``, over ``count`` examples."""

    loss: float
    error: float
    count: int


def as_tensors(data: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(x, y)`` for a tensor pair or a Split; ``None`` for an iterable of batches."""
    if hasattr(data, "x") and hasattr(data, "y"):
        return data.x, data.y
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(map(torch.is_tensor, data)):
        x, y = data
        if y.dim() != 1 or x.dim() == 0 or len(x) != len(y):
            raise LandscapeError(
                f"data (x, y) needs x of shape (N, ...) and labels y of shape (N,); got "
                f"{tuple(x.shape)} and {tuple(y.shape)}"
            )
        return x, y
    return None


def iter_batches(
    data: Any,
    batch_size: int = DEFAULT_BATCH,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` batches of ``data`` in order, on ``device`` if given.

    Floating-point inputs are cast to ``dtype`` if given (so a float64 model evaluates
    float32 data); labels keep theirs.
    """
    pair = as_tensors(data)
    if pair is not None:
        x, y = pair
        for i in range(0, len(y), batch_size):
            yield _to(x[i : i + batch_size], device, dtype), _to(y[i : i + batch_size], device)
        return
    if not isinstance(data, Iterable):
        raise LandscapeError(
            f"cannot evaluate on a {type(data).__name__}: pass (x, y) tensors, a Split, "
            f"or an iterable of (x, y) batches"
        )
    for batch in data:
        x, y = batch[0], batch[1]
        yield _to(x, device, dtype), _to(y, device)


def _to(
    t: torch.Tensor, device: torch.device | None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    if dtype is not None and t.is_floating_point() and t.dtype != dtype:
        t = t.to(dtype)
    return t if device is None else t.to(device, non_blocking=True)


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's first floating parameter (float32 if none)."""
    for t in model.parameters():
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a parameterless model)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode, then restore each one's own flag."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def evaluate(model: nn.Module, data: Any, *, batch_size: int = DEFAULT_BATCH) -> EvalResult:
    """Mean cross-entropy and error of ``model`` on all of ``data``.

    Args:
        model: a classifier returning logits of shape ``(N, classes)``.
        data: ``(x, y)``, a Split, or an iterable of batches; every example counts once.
        batch_size: examples per forward pass when ``data`` is a tensor pair.
    """
    device = model_device(model)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    wrong = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    with torch.inference_mode(), eval_mode(model):
        for x, y in iter_batches(data, batch_size, device, model_dtype(model)):
            logits = model(x)
            loss_sum += F.cross_entropy(logits.double(), y, reduction="sum")
            wrong += (logits.argmax(dim=1) != y).sum()
            count += len(y)
    if count == 0:
        raise LandscapeError("cannot evaluate on empty data")
    return EvalResult(loss=loss_sum.item() / count, error=wrong.item() / count, count=count)


def predict(
    model: nn.Module, data: Any, *, batch_size: int = DEFAULT_BATCH
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, classes)`` and labels ``(N,)`` of ``model`` on all of ``data``."""
    device = model_device(model)
    logits, labels = [], []
    with torch.inference_mode(), eval_mode(model):
        for x, y in iter_batches(data, batch_size, device, model_dtype(model)):
            logits.append(model(x))
            labels.append(y)
    if not labels:
        raise LandscapeError("cannot predict on empty data")
    return torch.cat(logits), torch.cat(labels)
