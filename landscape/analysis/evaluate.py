"""Fast batched evaluation (loss, error, logits) on whole splits, shared by every analysis.

Data is given as an ``(x, y)`` pair of tensors, an object with ``.x`` and ``.y`` (a
:class:`landscape.data.Split`), or any iterable of ``(x, y)`` batches. Batches move to the
model's device; the model is put in eval mode for the pass and left as it was found.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from landscape.checks import integer
from landscape.errors import LandscapeError

DEFAULT_BATCH = 2048


@dataclass(frozen=True)
class EvalResult:
    """Mean cross-entropy ``loss``, fraction misclassified ``error``, over ``count`` examples."""

    loss: float
    error: float
    count: int


def as_model(obj: Any, name: str = "model", device: Any = None) -> nn.Module:
    """The module to analyse: ``obj`` itself, or the model a run (``Run``) loads.

    Args:
        obj: an ``nn.Module``, or an object with ``load_model(device=...)`` such as the
            :class:`landscape.train.Run` that ``train`` and ``spawn`` return (its last step).
        name: how the error messages call the argument.
        device: where a run's model is loaded (modules stay where they are).

    Raises:
        LandscapeError: ``obj`` is a state_dict, a path or anything else that is not a model.
    """
    if isinstance(obj, nn.Module):
        if any(t.is_meta for t in (*obj.parameters(), *obj.buffers())):
            raise LandscapeError(
                f"{name} is on the meta device (shapes, no weights); build it on a real "
                f"device or load weights into it (model.to_empty(device=...))"
            )
        return obj
    if callable(getattr(obj, "load_model", None)):
        model = obj.load_model(device=device)
        if isinstance(model, nn.Module):
            return model
    if isinstance(obj, Mapping):
        raise LandscapeError(
            f"{name} is a dict (a state_dict?), not a model: build the model and load the "
            f"weights into it, e.g. landscape.io.load_weights(create_model(...), state)"
        )
    if isinstance(obj, (str, os.PathLike)):
        raise LandscapeError(
            f"{name} is a path, not a model: load it with "
            f"landscape.io.load_weights(create_model(...), {str(obj)!r})"
        )
    raise LandscapeError(
        f"{name} must be a torch.nn.Module (or a Run from train/spawn), got {type(obj).__name__}"
    )


def as_tensors(data: Any, name: str = "data") -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(x, y)`` for a tensor pair (numpy arrays too) or a Split; ``None`` for batches.

    Raises:
        LandscapeError: the pair's shapes or dtypes cannot be a classification dataset.
    """
    if hasattr(data, "x") and hasattr(data, "y"):
        return _pair(data.x, data.y, name)
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(map(_is_array, data)):
        return _pair(data[0], data[1], name)
    return None


def _is_array(t: Any) -> bool:
    return torch.is_tensor(t) or isinstance(t, np.ndarray)


def _pair(x: Any, y: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Check one ``(x, y)`` pair: floating inputs, integer labels, matching lengths."""
    if not (_is_array(x) and _is_array(y)):
        raise LandscapeError(
            f"{name}: x and y must be tensors (or numpy arrays), got "
            f"{type(x).__name__} and {type(y).__name__}"
        )
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if y.dim() != 1 or x.dim() == 0 or len(x) != len(y):
        raise LandscapeError(
            f"{name} (x, y) needs x of shape (N, ...) and labels y of shape (N,); got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if not x.is_floating_point():
        hint = " (x.float() / 255 for 8-bit images)" if x.dtype == torch.uint8 else ""
        raise LandscapeError(
            f"{name}: inputs x have dtype {x.dtype}, but models take floating-point inputs; "
            f"convert them{hint} and normalise them as in training (landscape.data.normalize)"
        )
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise LandscapeError(
            f"{name}: labels y must be integer class indices, got dtype {y.dtype}; for "
            f"one-hot or soft labels pass y.argmax(1), for whole-number floats y.long()"
        )
    return x, y if y.dtype == torch.int64 else y.long()


def iter_batches(
    data: Any,
    batch_size: int = DEFAULT_BATCH,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` batches of ``data`` in order, on ``device`` if given.

    Floating-point inputs are cast to ``dtype`` if given (so a float64 model evaluates
    float32 data); labels come as int64.

    Raises:
        LandscapeError: ``data`` is no dataset, or a batch has unusable shapes or dtypes.
    """
    batch_size = integer("batch_size", batch_size, 1)
    pair = as_tensors(data)
    if pair is not None:
        x, y = pair
        for i in range(0, len(y), batch_size):
            yield _to(x[i : i + batch_size], device, dtype), _to(y[i : i + batch_size], device)
        return
    if isinstance(data, (str, bytes, Mapping)) or not isinstance(data, Iterable):
        raise LandscapeError(
            f"cannot evaluate on a {type(data).__name__}: pass (x, y) tensors, a Split, "
            f"or an iterable of (x, y) batches"
        )
    for i, batch in enumerate(data):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise LandscapeError(
                f"batch {i} of the data is a {type(batch).__name__}; each batch must be an "
                f"(x, y) pair, as a DataLoader over a TensorDataset yields"
            )
        x, y = _pair(batch[0], batch[1], f"batch {i} of the data")
        yield _to(x, device, dtype), _to(y, device)


def _to(
    t: torch.Tensor, device: torch.device | None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    if dtype is not None and t.is_floating_point() and t.dtype != dtype:
        t = t.to(dtype)
    return t if device is None else t.to(device, non_blocking=True)


def check_logits(logits: Any, y: torch.Tensor) -> None:
    """The model's output must be ``(N, classes)`` logits and every label a valid class.

    Checked before the loss: on CUDA an out-of-range label is a device-side assert that
    leaves the GPU unusable for the rest of the process.
    """
    if not torch.is_tensor(logits) or logits.dim() != 2 or len(logits) != len(y):
        shape = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
        raise LandscapeError(
            f"the model returned {shape} for a batch of {len(y)}; analyses need logits of "
            f"shape (N, classes). Wrap the model so that forward returns only the logits"
        )
    if len(y):
        low, high = torch.aminmax(y)
        if int(low) < 0 or int(high) >= logits.shape[1]:
            raise LandscapeError(
                f"labels span {int(low)}..{int(high)} but the model has {logits.shape[1]} "
                f"outputs (classes 0..{logits.shape[1] - 1}); check that the data and the "
                f"model belong together"
            )


@contextmanager
def forward_errors(x: torch.Tensor) -> Iterator[None]:
    """Turn a forward pass that fails on the data (wrong shape, device, dtype) into one
    :class:`LandscapeError`; running out of memory stays what it is."""
    try:
        yield
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError, AssertionError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LandscapeError(
            f"the model cannot run on inputs of shape {tuple(x.shape)} ({x.dtype}, "
            f"{x.device}): {first}. Check that the model was built for this dataset"
        ) from err


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's parameters (float32 if it has none).

    Raises:
        LandscapeError: the parameters mix floating dtypes, so no single input dtype fits.
    """
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if len(dtypes) > 1:
        names = ", ".join(sorted(str(d) for d in dtypes))
        raise LandscapeError(
            f"the model's parameters mix dtypes ({names}); convert it to one, e.g. "
            f"model.float() or model.double()"
        )
    return dtypes.pop() if dtypes else torch.float32


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


def scores(
    logits: torch.Tensor, y: torch.Tensor, check: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy (float64) and the number misclassified, for one batch.

    ``check=False`` skips :func:`check_logits` (a device sync) for outputs already checked.
    """
    if check:
        check_logits(logits, y)
    loss = F.cross_entropy(logits.double(), y, reduction="sum")
    return loss, (logits.argmax(dim=1) != y).sum()


def evaluate(model: Any, data: Any, *, batch_size: int = DEFAULT_BATCH) -> EvalResult:
    """Mean cross-entropy and error of ``model`` on all of ``data``.

    Args:
        model: a classifier returning logits of shape ``(N, classes)``, or a ``Run``
            (its last checkpoint, loaded on the CPU).
        data: ``(x, y)`` (tensors or numpy arrays), a Split, or an iterable of batches;
            every example counts once.
        batch_size: examples per forward pass when ``data`` is a tensor pair.
    """
    model = as_model(model)
    device = model_device(model)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    wrong = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    with torch.inference_mode(), eval_mode(model):
        for x, y in iter_batches(data, batch_size, device, model_dtype(model)):
            with forward_errors(x):
                logits = model(x)
            loss, miss = scores(logits, y)
            loss_sum += loss
            wrong += miss
            count += len(y)
    if count == 0:
        raise LandscapeError("cannot evaluate on empty data")
    return EvalResult(loss=loss_sum.item() / count, error=wrong.item() / count, count=count)


def predict(
    model: Any, data: Any, *, batch_size: int = DEFAULT_BATCH
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, classes)`` and labels ``(N,)`` of ``model`` (or a ``Run``) on ``data``."""
    model = as_model(model)
    device = model_device(model)
    logits, labels = [], []
    with torch.inference_mode(), eval_mode(model):
        for x, y in iter_batches(data, batch_size, device, model_dtype(model)):
            with forward_errors(x):
                out = model(x)
            check_logits(out, y)
            logits.append(out)
            labels.append(y)
    if not labels:
        raise LandscapeError("cannot predict on empty data")
    return torch.cat(logits), torch.cat(labels)
