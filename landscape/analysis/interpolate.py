"""Loss and error along the straight line between two models, and the barriers on it.

For two models of one architecture with parameters theta_A and theta_B, the line is
``theta(a) = (1 - a) theta_A + a theta_B``. Following Frankle et al. 2020 ("Linear Mode
Connectivity and the Lottery Ticket Hypothesis", Sec. 2), the *instability* (error barrier)
is ``max_a E(a) - (E(0) + E(1)) / 2``; the height above the straight line between the
endpoints, ``max_a [E(a) - ((1 - a) E(0) + a E(1))]``, is reported beside it.

Speed: all alphas are evaluated at once. The models' parameters are stacked along a new
leading dimension of size ``len(alphas)`` and one vectorised forward (``torch.func.vmap``
over ``functional_call``) serves every alpha for each data batch, so each batch is read
once rather than once per alpha. For BatchNorm models the running statistics at each alpha
are recomputed on training data (Frankle et al. 2020, App. on BatchNorm; Jordan et al. 2023
"REPAIR" show why stale statistics inflate barriers), also vectorised across alphas.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from landscape.analysis.evaluate import DEFAULT_BATCH, eval_mode, iter_batches, model_device
from landscape.errors import LandscapeError

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@dataclass(frozen=True)
class Interpolation:
    """Loss and error at each alpha, and the barriers derived from them.

    Attributes:
        alphas: the points on the line, ``0`` is model A and ``1`` model B.
        loss: mean cross-entropy at each alpha.
        error: fraction misclassified at each alpha.
        loss_barrier: ``max_a L(a) - (L(0) + L(1)) / 2``.
        error_barrier: ``max_a E(a) - (E(0) + E(1)) / 2`` (Frankle's instability).
        loss_barrier_linear: ``max_a [L(a) - ((1 - a) L(0) + a L(1))]``.
        error_barrier_linear: ``max_a [E(a) - ((1 - a) E(0) + a E(1))]``.
        bn_reset: whether BatchNorm running statistics were recomputed at each alpha.
        count: examples evaluated at each alpha.
    """

    alphas: list[float]
    loss: list[float]
    error: list[float]
    loss_barrier: float
    error_barrier: float
    loss_barrier_linear: float
    error_barrier_linear: float
    bn_reset: bool
    count: int

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-ready data."""
        return asdict(self)

    def rows(self, **extra: Any) -> list[dict[str, Any]]:
        """Tidy rows, one per alpha, with ``extra`` columns (e.g. ``rewind_step=...``)."""
        return [
            {**extra, "alpha": a, "loss": lo, "error": e, "bn_reset": self.bn_reset}
            for a, lo, e in zip(self.alphas, self.loss, self.error)
        ]


def barriers(alphas: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """Frankle's barrier and the barrier above the straight line, for one curve.

    Args:
        alphas: points in [0, 1]; must contain 0 and 1.
        values: the loss or error at each alpha.

    Returns:
        ``(max_a v(a) - (v(0) + v(1)) / 2, max_a [v(a) - ((1 - a) v(0) + a v(1))])``.
    """
    a = torch.as_tensor(list(alphas), dtype=torch.float64)
    v = torch.as_tensor(list(values), dtype=torch.float64)
    if a.shape != v.shape or a.numel() == 0:
        raise LandscapeError("barriers need one value per alpha")
    ends = [(a == end).nonzero() for end in (0.0, 1.0)]
    if any(e.numel() == 0 for e in ends):
        raise LandscapeError("alphas must include 0 and 1 (the two endpoint models)")
    v0, v1 = v[ends[0][0, 0]], v[ends[1][0, 0]]
    mean_barrier = (v.max() - (v0 + v1) / 2).item()
    linear_barrier = (v - ((1 - a) * v0 + a * v1)).max().item()
    return mean_barrier, linear_barrier


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` has a BatchNorm layer that tracks running statistics."""
    return any(isinstance(m, _BN) and m.track_running_stats for m in model.modules())


def interpolate(
    model_a: nn.Module,
    model_b: nn.Module,
    data: Any,
    *,
    alphas: Sequence[float] | None = None,
    points: int = 21,
    bn_reset: bool | None = None,
    train_data: Any = None,
    batch_size: int = DEFAULT_BATCH,
    bn_batch_size: int = 128,
    alpha_chunk: int | None = None,
) -> Interpolation:
    """Evaluate every model on the line from ``model_a`` to ``model_b``.

    Neither input model is changed.

    Args:
        model_a: the model at alpha = 0.
        model_b: a model of the same architecture, at alpha = 1.
        data: where loss and error are measured: ``(x, y)``, a Split or batches.
        alphas: points on the line; default ``points`` evenly spaced in [0, 1].
        points: number of alphas when ``alphas`` is not given.
        bn_reset: recompute BatchNorm running statistics at each alpha on ``train_data``;
            default: on for models with BatchNorm (then ``train_data`` is required), off
            otherwise. With it off, running statistics are interpolated like parameters.
        train_data: the data for the BatchNorm reset (the training split, as in the paper).
        batch_size: examples per vectorised forward (each carries every alpha of a chunk).
        bn_batch_size: batch size of the BatchNorm reset; the recomputed variance depends
            on it (a mean of per-batch variances), so it is fixed, never derived from chunks.
        alpha_chunk: alphas evaluated together; default keeps the stacked parameters
            under about 256 MiB.

    Returns:
        An :class:`Interpolation` with the curves and the four barriers.
    """
    alpha_list = _alphas(alphas, points)
    # one-shot iterators are read once per chunk of alphas, so keep their batches
    data = list(data) if isinstance(data, Iterator) else data
    train_data = list(train_data) if isinstance(train_data, Iterator) else train_data
    _check_same_architecture(model_a, model_b)
    has_bn = has_batchnorm(model_a)
    bn_reset = has_bn if bn_reset is None else bool(bn_reset)
    if bn_reset and not has_bn:
        bn_reset = False  # nothing to reset: an MLP's line is the same either way
    if bn_reset and train_data is None:
        raise LandscapeError(
            "the model has BatchNorm, so its running statistics must be recomputed at each "
            "alpha: pass train_data=(x, y) (the training split), or bn_reset=False to "
            "interpolate the stored statistics instead"
        )
    device = model_device(model_a)
    model_b = model_b.to(device)
    size = sum(p.numel() for p in model_a.parameters()) + sum(b.numel() for b in model_a.buffers())
    chunk = alpha_chunk or max(1, min(len(alpha_list), (64 << 20) // max(1, size)))
    loss_sum = torch.zeros(len(alpha_list), dtype=torch.float64, device=device)
    wrong = torch.zeros(len(alpha_list), dtype=torch.int64, device=device)
    count = 0
    for lo in range(0, len(alpha_list), chunk):
        part = torch.tensor(alpha_list[lo : lo + chunk], device=device)
        stacked = _line(model_a, model_b, part)
        if bn_reset:
            _reset_bn_stats(model_a, stacked, train_data, bn_batch_size)
        n = 0
        for x, y in iter_batches(data, max(1, batch_size // len(part)), device):
            losses, errors = _eval_stack(model_a, stacked, x, y)
            loss_sum[lo : lo + len(part)] += losses
            wrong[lo : lo + len(part)] += errors
            n += len(y)
        count = n
    if count == 0:
        raise LandscapeError("cannot interpolate on empty data")
    loss = (loss_sum / count).tolist()
    error = (wrong.double() / count).tolist()
    loss_barrier, loss_linear = barriers(alpha_list, loss)
    error_barrier, error_linear = barriers(alpha_list, error)
    return Interpolation(
        alphas=alpha_list,
        loss=loss,
        error=error,
        loss_barrier=loss_barrier,
        error_barrier=error_barrier,
        loss_barrier_linear=loss_linear,
        error_barrier_linear=error_linear,
        bn_reset=bn_reset,
        count=count,
    )


def interpolate_state(
    state_a: dict[str, torch.Tensor], state_b: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """The state_dict at ``alpha`` on the line: floating tensors mix, integer ones come from A."""
    return {
        k: torch.lerp(v, state_b[k], alpha) if v.is_floating_point() else v.clone()
        for k, v in state_a.items()
    }


def _alphas(alphas: Sequence[float] | None, points: int) -> list[float]:
    if alphas is None:
        if points < 2:
            raise LandscapeError(f"points must be at least 2, got {points}")
        return torch.linspace(0, 1, points, dtype=torch.float64).tolist()
    out = [float(a) for a in alphas]
    if not out:
        raise LandscapeError("alphas is empty")
    return out


def _check_same_architecture(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        raise LandscapeError(
            "the two models differ in architecture (state_dict names or shapes); "
            "interpolation needs two models built the same way"
        )


def _line(a: nn.Module, b: nn.Module, alphas: torch.Tensor) -> dict[str, torch.Tensor]:
    """Parameters and buffers at every alpha, stacked along a new first dimension."""
    sa = dict(a.named_parameters()) | dict(a.named_buffers())
    sb = dict(b.named_parameters()) | dict(b.named_buffers())
    out = {}
    for k, va in sa.items():
        va, vb = va.detach(), sb[k].detach().to(va.device)
        if va.is_floating_point():
            w = alphas.to(va.dtype).view(-1, *([1] * va.dim()))
            out[k] = va.unsqueeze(0) + w * (vb - va).unsqueeze(0)
        else:
            out[k] = va.unsqueeze(0).expand(len(alphas), *va.shape).clone()
    return out


def _eval_stack(
    model: nn.Module, stacked: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss and error count of every stacked model on one batch."""

    def one(state: dict[str, torch.Tensor]) -> torch.Tensor:
        return functional_call(model, state, (x,))

    with torch.inference_mode(), eval_mode(model):
        logits = vmap(one)(stacked)  # (alphas, batch, classes)
        k, n, c = logits.shape
        losses = F.cross_entropy(
            logits.reshape(k * n, c).double(), y.repeat(k), reduction="none"
        ).view(k, n)
        errors = (logits.argmax(dim=2) != y.unsqueeze(0)).sum(dim=1)
    return losses.sum(dim=1), errors


def _reset_bn_stats(
    model: nn.Module, stacked: dict[str, torch.Tensor], train_data: Any, batch_size: int
) -> None:
    """Recompute every BatchNorm's running mean/var at each alpha, in ``stacked``, in place.

    Uses PyTorch's cumulative average (``momentum=None``) over all of ``train_data``,
    i.e. the mean over batches of the batch means and (unbiased) batch variances.
    """
    work = copy.deepcopy(model)
    shared: dict[str, torch.Tensor] = {}
    for name, m in work.named_modules():
        if isinstance(m, _BN) and m.track_running_stats:
            m.momentum = None
            prefix = f"{name}." if name else ""
            stacked[prefix + "running_mean"].zero_()
            stacked[prefix + "running_var"].fill_(1.0)
            # the batch counter is the same at every alpha; it stays outside the vmap because
            # BatchNorm reads it as a Python float
            shared[prefix + "num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    per_alpha = {k: v for k, v in stacked.items() if k not in shared}
    device = model_device(model)
    work.train()

    def one(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(work, (state, shared), (x,))

    with torch.no_grad():
        for x, _ in iter_batches(train_data, batch_size, device):
            vmap(one, in_dims=(0, None))(per_alpha, x)
    for name, count in shared.items():
        stacked[name].copy_(count.expand_as(stacked[name]))
