"""Loss and error along the straight line between two models, and the barriers on it.

For two models of one architecture with parameters theta_A and theta_B, the line is
``theta(a) = (1 - a) theta_A + a theta_B``. Following Frankle et al. 2020 ("Linear Mode
Connectivity and the Lottery Ticket Hypothesis", Sec. 2), the *instability* (error barrier)
is ``max_a E(a) - (E(0) + E(1)) / 2``; the height above the straight line between the
endpoints, ``max_a [E(a) - ((1 - a) E(0) + a E(1))]``, is reported beside it.

Speed: the data is read in batches sized to the CPU caches, each batch serves every alpha,
and the first layer's work is shared across alphas (it is affine in its weights, see
:class:`_Line`), so the arithmetic per alpha is that of the network above its first layer.
For an MLP (a plain chain of Linear layers and elementwise activations) every alpha of a chunk runs
in one batched pass (:func:`_stack_plan`), so a tiny model pays Python's per-call cost once
per layer, not once per layer and alpha.
For BatchNorm models the running statistics at each alpha are recomputed on training data:
interpolated weights with the endpoints' statistics give inflated barriers (Jordan et al.
2023, "REPAIR: REnormalizing Permuted Activations for Interpolation Repair").

With ``align=True`` model B's hidden units are first permuted onto model A's by weight
matching (Ainsworth et al. 2023, "Git Re-Basin"; see :mod:`landscape.analysis.align`), and
the line without alignment is reported beside the aligned one.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import cached_property, partial
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from landscape.analysis.align import align as align_models
from landscape.analysis.evaluate import (
    DEFAULT_BATCH,
    as_model,
    as_tensors,
    check_logits,
    eval_mode,
    forward_errors,
    iter_batches,
    model_device,
    model_dtype,
    scores,
)
from landscape.checks import integer, number, optional_integer
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
        unaligned: with ``interpolate(..., align=True)``, the line to the unaligned model B
            (the fields above are then those of the line to the aligned B); else ``None``.
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
    unaligned: Interpolation | None = None

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-ready data; ``unaligned`` (a nested dict) only when aligned."""
        out = asdict(self)
        if self.unaligned is None:
            del out["unaligned"]
        else:
            out["unaligned"] = self.unaligned.to_dict()
        return out

    def rows(self, **extra: Any) -> list[dict[str, Any]]:
        """Tidy rows, one per alpha, with ``extra`` columns (e.g. ``rewind_step=...``).

        After alignment, the aligned and the unaligned line each give one row per alpha,
        told apart by an ``aligned`` column (True / False).
        """
        if self.unaligned is not None:
            return self.unaligned.rows(**extra, aligned=False) + self._rows(extra, aligned=True)
        return self._rows(extra)

    def _rows(self, extra: dict[str, Any], **more: Any) -> list[dict[str, Any]]:
        return [
            {**extra, **more, "alpha": a, "loss": lo, "error": e, "bn_reset": self.bn_reset}
            for a, lo, e in zip(self.alphas, self.loss, self.error)
        ]


def barriers(alphas: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """Frankle's barrier and the barrier above the straight line, for one curve.

    Args:
        alphas: points on the line; must contain 0 and 1. Only those in [0, 1] count
            towards the maximum.
        values: the loss or error at each alpha.

    Returns:
        ``(max_a v(a) - (v(0) + v(1)) / 2, max_a [v(a) - ((1 - a) v(0) + a v(1))])``.
    """
    try:
        a = torch.as_tensor(list(alphas), dtype=torch.float64)
        v = torch.as_tensor(list(values), dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise LandscapeError("barriers take two equal-length sequences of numbers") from None
    if a.shape != v.shape or a.numel() == 0:
        raise LandscapeError("barriers need one value per alpha")
    ends = [(a == end).nonzero() for end in (0.0, 1.0)]
    if any(e.numel() == 0 for e in ends):
        raise LandscapeError("alphas must include 0 and 1 (the two endpoint models)")
    v0, v1 = v[ends[0][0, 0]], v[ends[1][0, 0]]
    inside = (a >= 0) & (a <= 1)  # points outside the segment are extrapolation, not barrier
    mean_barrier = (v[inside].max() - (v0 + v1) / 2).item()
    linear_barrier = (v - ((1 - a) * v0 + a * v1))[inside].max().item()
    return mean_barrier, linear_barrier


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` has a BatchNorm layer that tracks running statistics."""
    return any(isinstance(m, _BN) and m.track_running_stats for m in model.modules())


def interpolate(
    model_a: nn.Module | Any,
    model_b: nn.Module | Any,
    data: Any,
    *,
    alphas: Sequence[float] | None = None,
    points: int = 21,
    bn_reset: bool | None = None,
    train_data: Any = None,
    batch_size: int | None = None,
    bn_batch_size: int = 128,
    alpha_chunk: int | None = None,
    align: bool = False,
) -> Interpolation:
    """Evaluate every model on the line from ``model_a`` to ``model_b``.

    Neither input model is changed.

    Args:
        model_a: the model at alpha = 0, or a ``Run`` (from ``train``/``spawn``), whose last
            checkpoint is loaded onto ``model_b``'s device when that is a module, else the CPU.
        model_b: a model of the same architecture and dtype (or a ``Run``), at alpha = 1;
            it may sit on another device (its weights are copied to ``model_a``'s).
        data: where loss and error are measured: ``(x, y)`` (tensors or numpy arrays), a
            Split, or batches.
        alphas: points on the line; default ``points`` evenly spaced in [0, 1].
        points: number of alphas when ``alphas`` is not given.
        bn_reset: recompute BatchNorm running statistics at each alpha on ``train_data``;
            default: on for models with BatchNorm (then ``train_data`` is required), off
            otherwise. With it off, running statistics are interpolated like parameters.
        train_data: the data for the BatchNorm reset: the training split, or a fixed subset
            of it (a few thousand examples pin the statistics down at a fraction of the
            cost).
        batch_size: examples per forward pass when ``data`` is a tensor pair; default: as
            many as keep the widest activation near 8 MiB (see :meth:`_Line.auto_batch`).
        bn_batch_size: batch size of the BatchNorm reset; the recomputed variance depends
            on it (a mean of per-batch variances), so it is fixed, never derived from chunks.
        alpha_chunk: alphas whose weights are held in memory at once; default keeps them
            under about 256 MiB (float32).
        align: first permute ``model_b``'s hidden units onto ``model_a``'s by weight
            matching (:func:`landscape.analysis.align.align`, sweep order seeded with 0),
            then interpolate to the aligned B; the line to the unaligned B is evaluated
            too and returned as ``.unaligned``. Needs a model family with a permutation
            spec (``mlp``, ``lenet300-100``, ``conv1d``, ``convnet``, VGG, ResNet-20, WRN).

    Returns:
        An :class:`Interpolation` with the curves and the four barriers.
    """
    if not isinstance(align, bool):
        raise LandscapeError(f"align must be True or False, got {align!r}")
    alpha_list = _alphas(alphas, points)
    batch_size = optional_integer("batch_size", batch_size, 1)
    bn_batch_size = integer("bn_batch_size", bn_batch_size, 1)
    alpha_chunk = optional_integer("alpha_chunk", alpha_chunk, 1)
    model_a, model_b = _as_models(model_a, model_b)
    # one-shot iterators are read once per chunk of alphas, so keep their batches
    data = list(data) if isinstance(data, Iterator) else data
    train_data = list(train_data) if isinstance(train_data, Iterator) else train_data
    _check_same_architecture(model_a, model_b)
    if align:
        options = dict(
            alphas=alpha_list,
            bn_reset=bn_reset,
            train_data=train_data,
            batch_size=batch_size,
            bn_batch_size=bn_batch_size,
            alpha_chunk=alpha_chunk,
        )
        aligned = align_models(model_a, model_b).model  # first: it refuses unknown families
        unaligned = interpolate(model_a, model_b, data, **options)
        return replace(interpolate(model_a, aligned, data, **options), unaligned=unaligned)
    bn_reset = _bn_choice(model_a, bn_reset, train_data)
    if bn_reset:
        _check_bn_data(train_data, bn_batch_size)
    line = _Line(model_a, model_b)
    pair = as_tensors(data)
    if pair is not None and len(pair[1]) == 0:
        raise LandscapeError("cannot interpolate on empty data; pass at least one example")
    if batch_size is None:  # batches given as an iterable keep their own size
        probe = pair[0][:1].to(model_device(model_a), model_dtype(model_a)) if pair else None
        batch_size = DEFAULT_BATCH if probe is None else line.auto_batch(probe)
    chunk = alpha_chunk or max(1, min(len(alpha_list), (64 << 20) // max(1, line.size)))
    loss, error, count = line.curves(
        alpha_list, data, chunk, batch_size, train_data if bn_reset else None, bn_batch_size
    )
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


def _bn_choice(model: nn.Module, bn_reset: bool | None, train_data: Any) -> bool:
    """Whether to recompute BatchNorm statistics; an error if that needs missing data."""
    if bn_reset is not None and not isinstance(bn_reset, bool):
        raise LandscapeError(f"bn_reset must be True, False or None, got {bn_reset!r}")
    has_bn = has_batchnorm(model)
    bn_reset = has_bn if bn_reset is None else bn_reset and has_bn
    if bn_reset and train_data is None:
        raise LandscapeError(
            "the model has BatchNorm, so its running statistics must be recomputed at each "
            "alpha: pass train_data=(x, y) (the training split), or bn_reset=False to "
            "interpolate the stored statistics instead"
        )
    return bn_reset


def _check_bn_data(train_data: Any, batch_size: int) -> None:
    """The BatchNorm reset's data must exist, and no batch of it may hold one example."""
    pair = as_tensors(train_data, "train_data")
    if pair is None:
        return  # batches: checked as they come
    n = len(pair[1])
    if n == 0:
        raise LandscapeError("train_data is empty; the BatchNorm reset needs training examples")
    if n % batch_size == 1:
        raise LandscapeError(
            f"train_data has {n} examples, so its last BatchNorm batch of bn_batch_size "
            f"{batch_size} holds a single one, which BatchNorm cannot normalise; use "
            f"{n - 1} examples or another bn_batch_size"
        )


def interpolate_state(
    state_a: dict[str, torch.Tensor], state_b: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """The state_dict at ``alpha`` on the line: floating tensors mix, integer ones come from A."""
    alpha = number("alpha", alpha)
    if not (isinstance(state_a, Mapping) and isinstance(state_b, Mapping)):
        raise LandscapeError("interpolate_state takes two state_dicts (name -> tensor)")
    if state_a.keys() != state_b.keys():
        odd = sorted(set(state_a) ^ set(state_b))
        raise LandscapeError(
            f"the two state_dicts hold different entries ({', '.join(odd[:4])}); "
            f"interpolation needs two models built the same way"
        )
    odd = [k for k, v in state_a.items() if not _same_kind(v, state_b[k])]
    if odd:
        raise LandscapeError(
            f"the two state_dicts differ in the shape or dtype of {', '.join(odd[:4])}; "
            f"interpolation needs two models built the same way, in one dtype"
        )
    return {
        k: torch.lerp(v, state_b[k], alpha) if v.is_floating_point() else v.clone()
        for k, v in state_a.items()
    }


def _same_kind(a: Any, b: Any) -> bool:
    return torch.is_tensor(a) and torch.is_tensor(b) and (a.shape, a.dtype) == (b.shape, b.dtype)


def _alphas(alphas: Sequence[float] | None, points: int) -> list[float]:
    if alphas is None:
        points = integer("points", points, 2)
        # i / (points - 1) is the float nearest each point, so 0.3 prints as 0.3
        return [i / (points - 1) for i in range(points)]
    arrays = (Sequence, torch.Tensor, np.ndarray)
    if isinstance(alphas, (str, bytes)) or not isinstance(alphas, arrays):
        raise LandscapeError(f"alphas must be a sequence of numbers, got {alphas!r}")
    if isinstance(alphas, (torch.Tensor, np.ndarray)) and alphas.ndim != 1:
        raise LandscapeError(f"alphas must be one-dimensional, got shape {tuple(alphas.shape)}")
    values = alphas.tolist() if isinstance(alphas, (torch.Tensor, np.ndarray)) else list(alphas)
    out = [number(f"alphas[{i}]", a) for i, a in enumerate(values)]
    if not out:
        raise LandscapeError("alphas is empty; give the points on the line, 0 and 1 included")
    return out


def _as_models(a: Any, b: Any) -> tuple[nn.Module, nn.Module]:
    """Both endpoints as modules (runs load next to the other model), of one dtype."""
    if isinstance(a, nn.Module) or not isinstance(b, nn.Module):
        a = as_model(a, "model_a")
        b = as_model(b, "model_b", device=model_device(a))
    else:
        a = as_model(a, "model_a", device=model_device(b))
    for name, model in (("model_a", a), ("model_b", b)):
        tensors = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
        if tensors and not bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):
            raise LandscapeError(
                f"{name} has non-finite weights (NaN or inf): its run diverged, so no line "
                f"through it means anything; take an earlier checkpoint"
            )
    da, db = model_dtype(a), model_dtype(b)
    if da != db:
        raise LandscapeError(
            f"model_a holds {da} weights but model_b {db}; convert one so both match, "
            f"e.g. model_b.to({da})"
        )
    return a, b


def _check_same_architecture(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        raise LandscapeError(
            "the two models differ in architecture (state_dict names or shapes); "
            "interpolation needs two models built the same way"
        )


class _StopForward(Exception):
    """Raised inside the first layer to end a forward pass that only captures its input."""


class _Line:
    """Runs the model at points of a line, sharing the first layer's work across alphas.

    The first parametrised layer L0 (a Linear or Conv layer that every forward pass reaches
    before any other parameter or buffer) is affine in its weights while its input, a
    parameter-free function of the data, does not depend on alpha. So
    ``L0_alpha(u) = (1 - alpha) L0_A(u) + alpha L0_B(u)``: two evaluations of L0 per batch
    serve every alpha. For an MLP on images this layer holds most of the arithmetic. A
    probe at construction checks the shortcut against the plain forward pass and turns it
    off if they disagree (a model that uses a raw parameter before its first layer).
    """

    def __init__(self, model_a: nn.Module, model_b: nn.Module) -> None:
        self.source = model_a
        # copies, so that no pass here can touch the callers' BatchNorm buffers
        self.a = {k: v.detach().clone() for k, v in _tensors(model_a).items()}
        device = model_device(model_a)
        self.b = {k: v.detach().to(device, copy=True) for k, v in _tensors(model_b).items()}
        self.size = sum(t.numel() for t in self.a.values())
        self.first = _first_layer(model_a)
        self.plan = _stack_plan(model_a, self.first)  # reads the model, changes nothing
        # floats of one example's widest activation in a stacked pass
        self.widest = max(
            (m.out_features for m in model_a.modules() if type(m) is nn.Linear), default=1
        )
        self.reference = None if self.first is None else model_a.get_submodule(self.first)
        if self.reference is not None and type(self.reference) is not nn.Linear:
            self.reference = copy.deepcopy(self.reference)  # run by functional_call
        self._flat_cache: dict[int, tuple] = {}
        self.mode = "plain"
        self.captured: torch.Tensor | None = None
        self.mix: torch.Tensor | None = None  # the first layer's output at the current point
        self.checked = False

    @cached_property
    def work(self) -> nn.Module:
        """The private copy of model A that evaluates points one at a time, built when
        first needed (a stacked MLP pass never needs it): its first layer's forward can
        capture its input or return the mixed output, and its convolutions run
        channels-last on the CPU."""
        work = copy.deepcopy(self.source)
        every = [
            *work.named_parameters(remove_duplicate=False),
            *work.named_buffers(remove_duplicate=False),
        ]
        self._tied = len(every) != len(_tensors(work))
        self._flat = None if self._tied else _flatten(work)
        self._slots = _tensors(work)  # after _flatten, which replaces the buffers
        self._layout = _ChannelsLast(work, enabled=model_device(work).type == "cpu")
        _relu_in_place(work)
        if self.first is not None:
            layer = work.get_submodule(self.first)
            plain = layer.forward

            def forward(u: torch.Tensor) -> torch.Tensor:
                if self.mode == "capture":
                    self.captured = u
                    raise _StopForward
                if self.mode == "mix":
                    return self.mix
                return plain(u)

            layer.forward = forward  # only on the private copy
        return work

    @property
    def slots(self) -> dict[str, torch.Tensor]:
        """The private model's parameters and buffers, by name."""
        _ = self.work  # built on first use
        return self._slots

    @property
    def flat(self) -> torch.Tensor | None:
        """All the private model's tensors as one vector (they are views of it), or
        ``None`` where they do not share one dtype and device, or are tied."""
        _ = self.work
        return self._flat

    def _flat_of(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """``tensors`` in the order of :attr:`flat`, as one vector (made once per dict)."""
        key = id(tensors)
        cached = self._flat_cache.get(key)
        if cached is None or cached[0] is not tensors:
            vector = torch.cat([tensors[k].reshape(-1) for k in self.slots])
            self._flat_cache[key] = cached = (tensors, vector)
        return cached[1]

    @property
    def layout(self) -> _ChannelsLast:
        """The private model's channels-last switch."""
        _ = self.work
        return self._layout

    def curves(
        self,
        alphas: list[Any],
        data: Any,
        chunk: int,
        batch_size: int,
        train_data: Any,
        bn_batch_size: int,
    ) -> tuple[list[float], list[float], int]:
        """Mean loss and error at each alpha over all of ``data``, and the example count.

        Alphas go ``chunk`` at a time (their weights are held in memory together); with
        ``train_data`` the BatchNorm statistics are recomputed at each alpha first.
        """
        device, dtype = model_device(self.source), model_dtype(self.source)
        loss_sum = torch.zeros(len(alphas), dtype=torch.float64, device=device)
        wrong = torch.zeros(len(alphas), dtype=torch.int64, device=device)
        # the first batch's layer outputs serve every chunk when the batches are fixed (a
        # DataLoader may shuffle or augment anew on every pass)
        fixed = as_tensors(data) is not None or isinstance(data, (list, tuple))
        first = (
            self._probe(data, batch_size, device, dtype)
            if self.plan is not None and fixed
            else None
        )
        count = 0
        for lo in range(0, len(alphas), chunk):
            points = alphas[lo : lo + chunk]
            count = 0
            if self.plan is not None:  # an MLP: every point of the chunk in one pass
                # (not probed against the plain forward pass: _stack_plan admits only
                # models whose forward pass it knows)
                weights = self._stack_weights(points)
                for b, (x, y) in enumerate(iter_batches(data, batch_size, device, dtype)):
                    ends = first if b == 0 else None
                    check = lo == 0  # every batch's labels, once
                    for i, losses, misses in self._stacked_scores(
                        points, weights, x, y, ends, check
                    ):
                        loss_sum[lo + i : lo + i + len(losses)] += losses
                        wrong[lo + i : lo + i + len(misses)] += misses
                    count += len(y)
                continue
            if train_data is not None:
                states = self.states(points)
                self.reset_bn(states, train_data, bn_batch_size)
            else:  # each point's tensors are written straight into the private model
                states = [(point, None) for point in points]
            for x, y in iter_batches(data, batch_size, device, dtype):
                for i, logits in enumerate(self.logits(states, x)):
                    # checked once per batch: the check costs a device sync
                    loss, miss = scores(logits, y, check=lo == 0 and i == 0)
                    loss_sum[lo + i] += loss
                    wrong[lo + i] += miss
                count += len(y)
        if count == 0:
            raise LandscapeError("cannot interpolate on empty data")
        return (loss_sum / count).tolist(), (wrong.double() / count).tolist(), count

    def _probe(self, data: Any, batch_size: int, device, dtype) -> tuple | None:
        """The first layer's outputs at the ends on the first batch (kept for reuse)."""
        for x, _ in iter_batches(data, batch_size, device, dtype):
            return self._plan_ends(x)
        return None

    def _plan_ends(self, x: torch.Tensor) -> tuple | None:
        """The first layer's outputs at the ends for a stacked MLP pass, or ``None`` (and
        no stacked pass from here on) when its input is not a matrix."""
        u = x.flatten(1) if self.plan.flatten else x
        if u.dim() != 2:
            self.plan = None
            return None
        with torch.inference_mode(), forward_errors(x):
            return self._ends(u)

    def states(self, alphas: Sequence[float]) -> list[tuple[float, dict[str, torch.Tensor]]]:
        """Parameters and buffers at each alpha (integer buffers come from model A)."""
        return [(a, interpolate_state(self.a, self.b, a)) for a in alphas]

    def logits(self, states, x: torch.Tensor):
        """Yield the model's output (eval mode) on ``x`` at each of ``states``, in order.

        Each state is copied into the private model's own tensors, which costs less than
        ``functional_call`` for the small models this runs most.
        """
        with eval_mode(self.work):
            with torch.inference_mode(), forward_errors(x):
                ends = self._endpoints(x) if self.first is not None else None
                if ends is not None and not self.checked:
                    self._check(x, ends)
            for alpha, state in states:
                if state is None:
                    self._fill(alpha)
                else:
                    self._load(state)
                if self.first is not None and ends is not None:
                    self.mode, self.mix = "mix", self._mixed(ends, alpha)
                try:
                    with torch.inference_mode(), forward_errors(x):
                        out = self.work(x)
                finally:
                    self.mode, self.mix = "plain", None
                yield out

    def _mixed(self, ends: tuple[torch.Tensor, ...], alpha: float) -> torch.Tensor:
        """The first layer's output at ``alpha`` from its outputs at the ends."""
        return torch.lerp(ends[0], ends[1], alpha)

    def _mixed_stack(self, ends: tuple[torch.Tensor, ...], alphas: list) -> torch.Tensor:
        """The first layer's outputs at all ``alphas``, stacked: ``(alphas, *output)``."""
        w = torch.tensor(alphas, dtype=ends[0].dtype, device=ends[0].device)
        return torch.lerp(ends[0], ends[1], w.view(-1, *[1] * ends[0].dim()))

    def _stack_weights(self, alphas: list) -> dict[str, torch.Tensor]:
        """The plan's Linear weights and biases at all ``alphas``, stacked."""
        keys = [f"{name}.{t}" for name in self.plan.linears for t in _AFFINE]
        out = {}
        for k in (k for k in keys if k in self.a):
            a = self.a[k]
            w = torch.tensor(alphas, dtype=a.dtype, device=a.device)
            out[k] = torch.lerp(a, self.b[k], w.view(-1, *[1] * a.dim()))
        return out

    def _stacked_logits(self, points: list, weights: dict, ends: tuple, lo: int = 0):
        """The logits at ``points`` (from index ``lo`` of ``weights``) in one batched pass,
        shape ``(points, N, classes)``."""
        h = self._mixed_stack(ends, points)
        hi = lo + len(points)
        for kind, op in self.plan.steps:
            if kind == "fn":
                h = op(h)
                continue
            weight = weights[f"{op}.weight"][lo:hi].transpose(1, 2)
            bias = weights.get(f"{op}.bias")
            if bias is None:
                h = torch.bmm(h, weight)
            else:
                h = torch.baddbmm(bias[lo:hi].unsqueeze(1), h, weight)
        return h

    def _stacked_scores(self, points, weights, x, y, ends, check: bool):
        """Yield ``(offset, summed losses, misses)`` for groups of ``points`` on one batch;
        a group's activations stay within :data:`_STACK_FLOATS`."""
        ends = ends or self._plan_ends(x)
        if ends is None:  # this batch is no matrix: the points one at a time
            for i, logits in enumerate(self.logits([(p, None) for p in points], x)):
                loss, miss = scores(logits, y, check=check and i == 0)
                yield i, loss.view(1), miss.view(1)
            return
        with torch.inference_mode(), forward_errors(x):
            group = max(1, _STACK_FLOATS // max(1, len(y) * self.widest))
            for lo in range(0, len(points), group):
                logits = self._stacked_logits(points[lo : lo + group], weights, ends, lo)
                k, n, c = logits.shape
                if check and lo == 0:
                    check_logits(logits[0], y)
                # per-example losses in float32 at least, summed in float64
                flat = logits.reshape(k * n, c)
                flat = flat.float() if flat.dtype in (torch.float16, torch.bfloat16) else flat
                each = F.cross_entropy(flat, y.repeat(k), reduction="none")
                loss = each.view(k, n).sum(dim=1, dtype=torch.float64)
                yield lo, loss, (logits.argmax(dim=2) != y).sum(dim=1)

    def auto_batch(self, x: torch.Tensor, budget: int = 1 << 21) -> int:
        """A batch size whose widest activation holds about ``budget`` floats (8 MiB).

        Big batches amortise per-call overhead, but on a CPU a batch whose activations
        overflow the caches runs slower: a BatchNorm ConvNet on Fashion-MNIST evaluates
        twice as fast at 256 as at 2048, an MLP twice as fast at 2048 as at 128.
        """
        widest = x[0].numel()
        if self.plan is not None:  # an MLP's widest activation is its widest layer
            return _batch_for(budget, max(widest, self.widest))

        def hook(module: nn.Module, inputs: Any, out: Any) -> None:
            nonlocal widest
            if torch.is_tensor(out):
                widest = max(widest, out[0].numel())

        leaves = [m for m in self.work.modules() if not any(m.children())]
        handles = [m.register_forward_hook(hook) for m in leaves]
        try:
            with torch.inference_mode(), eval_mode(self.work), self._plain(), forward_errors(x):
                self.work(x[:1])
        finally:
            for handle in handles:
                handle.remove()
        return _batch_for(budget, widest)

    def _load(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, t in self.slots.items():
                t.copy_(state[name])

    def _fill(self, alpha: float) -> None:
        """Write the tensors at ``alpha`` into the private model (as :meth:`states`)."""
        with torch.no_grad():
            if self.flat is not None:  # one pass over all floating tensors
                torch.lerp(self._flat_of(self.a), self._flat_of(self.b), alpha, out=self.flat)
                return
            for name, t in self.slots.items():
                if t.is_floating_point():
                    torch.lerp(self.a[name], self.b[name], alpha, out=t)
                else:
                    t.copy_(self.a[name])

    def reset_bn(self, states, train_data: Any, batch_size: int) -> None:
        """Recompute BatchNorm running statistics at each alpha, into ``states`` in place.

        Uses PyTorch's cumulative average (``momentum=None``) over all of ``train_data``,
        i.e. the mean over batches of the batch means and (unbiased) batch variances. The
        pass runs alpha by alpha on the plain model: with the small batches BatchNorm
        wants, sharing the first layer and channels-last layouts cost more than they save.
        """
        norms = [m for m in self.work.modules() if isinstance(m, _BN) and m.track_running_stats]
        saved = [m.momentum for m in norms]
        device, dtype = model_device(self.work), model_dtype(self.work)
        try:
            with torch.no_grad(), eval_mode(self.work), self._plain():
                self.work.train()
                for _, state in states:
                    self._load(state)
                    for m in norms:
                        m.momentum = None
                        m.reset_running_stats()
                    for x, _ in iter_batches(train_data, batch_size, device, dtype):
                        with forward_errors(x):
                            self.work(x)
                    for name, buf in self.work.named_buffers():
                        state[name].copy_(buf)
        finally:
            for m, momentum in zip(norms, saved):
                m.momentum = momentum

    @contextmanager
    def _plain(self):
        """Run the private model as it was built: no first-layer shortcut, no layouts."""
        first, self.first = self.first, None
        self.layout.enabled = False
        try:
            yield
        finally:
            self.first = first
            self.layout.enabled = True

    def _endpoints(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The first layer's output at A and at B on this batch."""
        self.mode = "capture"
        try:
            self._functional(self.a, x)
        except _StopForward:
            pass
        finally:
            self.mode = "plain"
        u, self.captured = self.captured, None
        if u is None:
            self.first = None
            return None
        return self._ends(u)

    def _functional(self, state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The private model run with ``state``'s tensors (every one of them).

        A model that uses one module or tensor twice gets them copied in instead:
        ``functional_call`` would put new parameter objects back into it (inference
        tensors, under inference mode), which the points' writes could not reach.
        """
        if not self._tied:
            return functional_call(self.work, state, (x,))
        self._load(state)  # every point loads its own tensors afterwards
        return self.work(x)

    def _ends(self, u: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The first layer (input ``u``) at A and at B."""
        prefix = f"{self.first}."
        own = {k[len(prefix) :]: v for k, v in self.a.items() if k.startswith(prefix)}
        z_a = self._first_out(own, u)
        own = {k[len(prefix) :]: v for k, v in self.b.items() if k.startswith(prefix)}
        return z_a, self._first_out(own, u)

    def _first_out(self, tensors: dict[str, torch.Tensor], u: torch.Tensor) -> torch.Tensor:
        """The first layer with ``tensors`` (its weight and bias) applied to ``u``."""
        if type(self.reference) is nn.Linear:
            return F.linear(u, tensors["weight"], tensors.get("bias"))
        if u.device.type == "cpu" and _channels_last_ok(self.reference):
            # channels-last outputs: the mixed outputs feed the next convolution uncopied
            weight, bias = tensors["weight"], tensors.get("bias")
            return _conv_channels_last(self.reference, weight, bias, u)
        return functional_call(self.reference, tensors, (u,))

    def _probe_point(self) -> tuple[Any, dict[str, torch.Tensor]]:
        """A point inside the line (and its state) for the shortcut's check."""
        return 0.5, interpolate_state(self.a, self.b, 0.5)

    def _check(self, x: torch.Tensor, ends: tuple[torch.Tensor, ...]) -> None:
        """Compare the shortcut with the plain forward pass once; drop it if they differ."""
        self.checked = True
        probe = x[:8]
        short_ends = tuple(e[:8] for e in ends)
        point, mid = self._probe_point()
        plain = self._functional(mid, probe)
        self.mode, self.mix = "mix", self._mixed(short_ends, point)
        try:
            short = self._functional(mid, probe)
        finally:
            self.mode, self.mix = "plain", None
        if not torch.allclose(short, plain, rtol=1e-4, atol=1e-4 * (1 + plain.abs().max())):
            self.first = None


def _batch_for(budget: int, widest: int) -> int:
    """The power of two (32 to 4096) of examples whose widest activation holds about
    ``budget`` floats."""
    return max(32, min(4096, 1 << max(0, (budget // widest).bit_length() - 1)))


class _ChannelsLast:
    """Runs the convolutions of a (private) model on channels-last data while enabled.

    oneDNN, PyTorch's CPU convolution backend, is faster on channels-last (NHWC) data for
    the large evaluation batches used here: 1.3x on the MNIST-1D CNN
    (``benchmarks/interpolation.py``). A Conv1d runs as the equivalent Conv2d over a
    height-1 image. The arithmetic is the same convolution; results agree to float rounding.
    """

    def __init__(self, model: nn.Module, enabled: bool) -> None:
        self.enabled = enabled
        for m in model.modules():
            if _channels_last_ok(m):
                m.forward = partial(self._forward, m, m.forward)

    def _forward(self, m: nn.Conv1d | nn.Conv2d, plain, u: torch.Tensor) -> torch.Tensor:
        return _conv_channels_last(m, m.weight, m.bias, u) if self.enabled else plain(u)


def _channels_last_ok(m: nn.Module) -> bool:
    """Whether ``m`` is a plain Conv1d/Conv2d that :func:`_conv_channels_last` can run."""
    plain = type(m) in (nn.Conv1d, nn.Conv2d) and m.padding_mode == "zeros"
    return plain and not isinstance(m.padding, str)


def _conv_channels_last(m, weight: torch.Tensor, bias, u: torch.Tensor) -> torch.Tensor:
    """Convolution ``m`` with ``weight`` and ``bias`` on channels-last data (a Conv1d as a
    Conv2d over a height-1 image); the output stays channels-last, so the next convolution
    needs no copy."""
    cl = torch.channels_last
    if isinstance(m, nn.Conv1d):
        out = F.conv2d(
            u.unsqueeze(2).contiguous(memory_format=cl),
            weight.unsqueeze(2).contiguous(memory_format=cl),
            bias,
            (1, m.stride[0]),
            (0, m.padding[0]),
            (1, m.dilation[0]),
            m.groups,
        )
        # oneDNN answers a one-channel input in the standard layout
        return out.contiguous(memory_format=cl).squeeze(2)
    return F.conv2d(
        u.contiguous(memory_format=cl),
        weight.contiguous(memory_format=cl),
        bias,
        m.stride,
        m.padding,
        m.dilation,
        m.groups,
    ).contiguous(memory_format=cl)


#: Layers whose output is a fresh tensor, so a ReLU right after one may overwrite it.
_FRESH = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.GroupNorm,
    nn.LayerNorm,
)


def _relu_in_place(model: nn.Module) -> None:
    """Make the ReLUs of a (private) top-level ``nn.Sequential`` that follow a layer with a
    fresh output work in place. In a plain chain that output feeds only the ReLU, so
    nothing else reads what it overwrites (after a Flatten or Identity it could be the
    caller's data, and in a nested Sequential a residual block may add its input back:
    those are left alone)."""
    if not isinstance(model, nn.Sequential) or type(model).forward is not nn.Sequential.forward:
        return
    names = list(model._modules)
    for before, name in zip(names, names[1:]):
        module, fresh = model._modules[name], model._modules[before]
        quiet = not (_hooks(module) or _hooks(fresh))  # a hook may keep the fresh output
        if type(module) is nn.ReLU and isinstance(fresh, _FRESH) and quiet:
            # a new module at this place only: the same ReLU may serve elsewhere too
            model._modules[name] = nn.ReLU(inplace=True)


def _plain_call(module: nn.Module) -> bool:
    """Whether calling ``module`` runs its class's own ``forward`` (not one set on the
    instance, nor a class that overrides ``__call__``)."""
    return "forward" not in vars(module) and type(module).__call__ is nn.Module.__call__


def _flatten(model: nn.Module) -> torch.Tensor | None:
    """Make every parameter and buffer of a (private) model a view of one vector, and
    return it; ``None`` (nothing changed) unless all are floating, of one dtype and on one
    device. A point is then written into the model in one pass."""
    tensors = _tensors(model)
    if not tensors:
        return None
    kinds = {(t.dtype, t.device) for t in tensors.values()}
    if len(kinds) != 1 or not all(t.is_floating_point() for t in tensors.values()):
        return None
    dtype, device = kinds.pop()
    flat = torch.empty(sum(t.numel() for t in tensors.values()), dtype=dtype, device=device)
    start = 0
    with torch.no_grad():
        for name, t in tensors.items():
            view = flat[start : start + t.numel()].view(t.shape)
            view.copy_(t)
            start += t.numel()
            owner, _, attr = name.rpartition(".")
            module = model.get_submodule(owner)
            if attr in module._parameters:
                module._parameters[attr].data = view
            else:
                module._buffers[attr] = view
    return flat


def _hooks(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.named_parameters()) | dict(model.named_buffers())


def _first_layer(model: nn.Module) -> str | None:
    """Name of the first Linear/Conv layer, if it is the first module holding any tensor.

    Found statically from the registration order, then confirmed by the probe in
    :class:`_Line` (registration order is not always execution order).
    """
    for name, m in model.named_modules():
        if m._parameters or m._buffers:
            affine = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
            plain = type(m) in affine and not hasattr(m, "parametrizations")
            return name if plain else None
    return None


#: Elementwise activations a stacked MLP pass applies to all points at once, in place (the
#: stacked activations are always fresh tensors).
_ACTIVATIONS = {nn.ReLU: torch.relu_, nn.Tanh: torch.tanh_, nn.Sigmoid: torch.sigmoid_}
_AFFINE = ("weight", "bias")
#: Floats of the activations of one stacked pass (points x batch x widest layer, 16 MiB).
_STACK_FLOATS = 1 << 22


class _Plan(NamedTuple):
    """A plain MLP above its first layer: whether the input is flattened first, the steps
    (``("linear", name)`` or ``("fn", in-place activation)``) and the Linear layers' names."""

    flatten: bool
    steps: list[tuple[str, Any]]
    linears: list[str]


def _stack_plan(model: nn.Module, first: str | None) -> _Plan | None:
    """How to evaluate a (private) plain MLP at many points in one batched pass (the first
    layer's mixed outputs stacked, then ``baddbmm`` with each layer's stacked weights), or
    ``None`` for any other model.

    An MLP here is a top-level ``nn.Sequential`` without buffers, hooks or
    parametrizations, made of Flattens before its first Linear (which must be ``first``),
    Linear layers, ReLU / LeakyReLU / tanh / sigmoid, and Dropout / Identity (no-ops in
    eval mode): a model whose forward pass is fully known from its modules.
    """
    if first is None or not isinstance(model, nn.Sequential) or not _plain_call(model):
        return None
    kind = type(model)
    if kind.forward is not nn.Sequential.forward or kind.__iter__ is not nn.Sequential.__iter__:
        return None
    if any(True for _ in model.buffers()) or _hooks(model):
        return None
    if nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks:
        return None
    children = list(model._modules.values())
    shared = len({id(m) for m in children}) < len(children)
    tied = len(list(model.named_parameters(remove_duplicate=False))) != len(
        list(model.named_parameters())
    )
    if shared or tied:  # a layer or weight serving twice: the plain path handles it
        return None
    steps: list[tuple[str, Any]] = []
    linears: list[str] = []
    flatten = seen = False
    for name, m in model._modules.items():
        if _hooks(m) or hasattr(m, "parametrizations") or not _plain_call(m):
            return None
        kind = type(m)
        if kind is nn.Linear:
            if not seen and name != first:
                return None
            if seen:
                steps.append(("linear", name))
                linears.append(name)
            seen = True
        elif kind is nn.Flatten and not seen and (m.start_dim, m.end_dim) == (1, -1):
            flatten = True
        elif kind in (nn.Dropout, nn.Identity):
            continue
        elif kind in _ACTIVATIONS and seen:
            steps.append(("fn", _ACTIVATIONS[kind]))
        elif kind is nn.LeakyReLU and seen:
            steps.append(("fn", partial(F.leaky_relu_, negative_slope=m.negative_slope)))
        else:
            return None
    return _Plan(flatten, steps, linears) if seen else None
