"""Permutation alignment of two networks by weight matching (Git Re-Basin, Algorithm 2).

Permuting the hidden units of a network leaves its function unchanged: for a layer
``z_l = sigma(W_l z_{l-1} + b_l)`` and a permutation matrix ``P_l`` of its units,

    W_l -> P_l W_l P_{l-1}^T,    b_l -> P_l b_l

(``P_0 = P_L = I``: inputs and classes keep their order) computes the same outputs, because
elementwise activations, per-channel norms and pools commute with ``P_l``. Two networks
trained from different seeds usually sit in different "permutation copies" of the same basin;
aligning one onto the other before interpolating removes that symmetry (Entezari et al.
2022, "The Role of Permutation Invariance in Linear Mode Connectivity"; Ainsworth, Hayase &
Srinivasa 2023, "Git Re-Basin: Merging Models modulo Permutation Symmetries").

*Weight matching* (Ainsworth et al., Sec. 3.2) picks the permutations of model B that
maximise the inner product of the weights,

    J(P) = sum_l <W_l^A, P_l W_l^B P_{l-1}^T>_F,

summed over every parameter (biases and norm scales included). ``J`` is not jointly
tractable, but it is linear in any one ``P_l`` with the others fixed:
``J = <P_l, C_l>_F + const`` with ``C_l = sum_{W touching P_l} W^A (W^B with every other
permutation applied)^T``, an ``n_l x n_l`` matrix. Algorithm 2 therefore sweeps the
permutations in random order, solving each as a linear assignment problem
(:func:`scipy.optimize.linear_sum_assignment`, maximising), until a whole sweep changes none.

Which tensor axes each permutation acts on is a :class:`PermutationSpec`, built per model
family by a function registered for the model's class (:func:`register_permutation_spec`).
Residual networks share one permutation per stage across their skip connections, as the
ResNet spec of Ainsworth et al. does. GroupNorm with ``1 < groups < channels`` mixes the
statistics of the channels in a group, so its permutation is block-diagonal: units move only
within their group, and each block is its own assignment problem.

Permutations are stored as index tensors: ``perm[i]`` is the unit of B that lands at
position ``i``, i.e. the permuted tensor is ``w.index_select(axis, perm)``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from landscape.analysis.evaluate import as_model, model_device
from landscape.checks import cpu_generator, integer
from landscape.errors import LandscapeError
from landscape.models.conv1d import Conv1dNet
from landscape.models.convnet import ConvNet
from landscape.models.mlp import MLP
from landscape.models.resnet import CifarResNet
from landscape.models.vgg import VGG
from landscape.models.wrn import WideResNet
from landscape.sparse.masks import Masks, check_masks

log = logging.getLogger(__name__)

_AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class PermutationSpec:
    """Which axes of which state_dict entries each hidden-unit permutation acts on.

    Attributes:
        family: the model family, for messages (e.g. ``"resnet20"``).
        axes: state_dict name -> one entry per axis: the name of the permutation acting on
            it, or ``None``. An axis of length ``k * n`` under a permutation of ``n`` units
            is a flattened ``(n, k)`` block (a linear layer after ``Flatten`` of ``n``
            channels of ``k`` positions each): whole blocks of ``k`` move together.
        sizes: permutation name -> number of units ``n`` it permutes.
        blocks: permutation name -> number of contiguous, equal blocks its units must stay
            in (GroupNorm groups); 1 when any permutation is allowed.
    """

    family: str
    axes: dict[str, tuple[str | None, ...]]
    sizes: dict[str, int]
    blocks: dict[str, int]

    def perm_to_axes(self) -> dict[str, list[tuple[str, int]]]:
        """Permutation name -> the ``(state_dict name, axis)`` pairs it acts on."""
        out: dict[str, list[tuple[str, int]]] = {p: [] for p in self.sizes}
        for name, axes in self.axes.items():
            for axis, p in enumerate(axes):
                if p is not None:
                    out[p].append((name, axis))
        return out


@dataclass(frozen=True, eq=False)
class Alignment:
    """Model B permuted onto model A by weight matching.

    Attributes:
        model: a permuted copy of model B; it computes the same function as B.
        perms: permutation name -> ``LongTensor`` of shape ``(n,)`` (CPU); position ``i``
            of the aligned model holds unit ``perms[name][i]`` of B.
        masks: B's masks permuted with its weights, when ``masks_b`` was given.
        objective_before: ``J(I) = sum_W <W^A, W^B>`` over all parameters.
        objective_after: ``J(P)`` at the permutations found (never below ``J(I)``).
        iterations: sweeps over all permutations that were run.
        converged: whether the last sweep changed no permutation (else ``max_iter`` hit).
    """

    model: nn.Module
    perms: dict[str, torch.Tensor]
    masks: Masks | None
    objective_before: float
    objective_after: float
    iterations: int
    converged: bool

    def to_dict(self) -> dict[str, Any]:
        """The numbers and permutations as JSON-ready data (the model and masks left out)."""
        return {
            "perms": {k: v.tolist() for k, v in self.perms.items()},
            "objective_before": self.objective_before,
            "objective_after": self.objective_after,
            "iterations": self.iterations,
            "converged": self.converged,
        }


# --- the registry of permutation specs, keyed by model class -----------------------------

_SPECS: dict[type, tuple[tuple[str, ...], Callable[[nn.Module], PermutationSpec]]] = {}


def register_permutation_spec(
    cls: type, *families: str
) -> Callable[[Callable[[nn.Module], PermutationSpec]], Callable[[nn.Module], PermutationSpec]]:
    """Register ``fn(model) -> PermutationSpec`` for models of exactly class ``cls``.

    Subclasses are not covered: a subclass may change ``forward``, and a wrong spec would
    silently change the function. ``families`` are the model names it covers, for messages.

    Example::

        @register_permutation_spec(MyNet, "mynet")
        def _mynet_spec(model):
            ...
    """
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise LandscapeError(f"register_permutation_spec needs an nn.Module class, got {cls!r}")

    def wrap(fn: Callable[[nn.Module], PermutationSpec]) -> Callable[[nn.Module], PermutationSpec]:
        _SPECS[cls] = (families or (cls.__name__,), fn)
        return fn

    return wrap


def supported_families() -> list[str]:
    """The model families with a permutation spec, e.g. ``["mlp", "lenet300-100", ...]``."""
    return [f for families, _ in _SPECS.values() for f in families]


def permutation_spec(model: nn.Module) -> PermutationSpec:
    """The :class:`PermutationSpec` of ``model``, from the function registered for its class.

    Raises:
        LandscapeError: no spec is registered for the model's class.
    """
    if not isinstance(model, nn.Module):
        raise LandscapeError(
            f"permutation alignment needs an nn.Module, got {type(model).__name__}"
        )
    entry = _SPECS.get(type(model))
    if entry is None:
        raise LandscapeError(
            f"no permutation spec for {type(model).__name__}: weight matching supports "
            f"{', '.join(supported_families())}; for another architecture register one with "
            f"landscape.analysis.register_permutation_spec"
        )
    return entry[1](model)


class _Builder:
    """Collects a spec layer by layer, then checks it against the model's state_dict."""

    def __init__(self, model: nn.Module, family: str) -> None:
        self.model, self.family = model, family
        self.axes: dict[str, tuple[str | None, ...]] = {}
        self.sizes: dict[str, int] = {}
        self.blocks: dict[str, int] = {}

    def layer(self, prefix: str, module: nn.Module, out: str | None, inp: str | None) -> None:
        """Declare ``module``'s tensors: output units permuted by ``out``, inputs by ``inp``.

        Norm layers have no input axis; their per-channel tensors follow ``out``.
        """
        if isinstance(module, _AFFINE):
            self._size(out, module.weight.shape[0])
            rest = (None,) * (module.weight.dim() - 2)
            self.axes[f"{prefix}.weight"] = (out, inp, *rest)
            if module.bias is not None:
                self.axes[f"{prefix}.bias"] = (out,)
        elif isinstance(module, (*_BN, nn.GroupNorm)):
            channels = module.num_channels if isinstance(module, nn.GroupNorm) else None
            self._size(out, channels or module.num_features)
            names = ["weight", "bias", "running_mean", "running_var"]
            for name in names:
                if getattr(module, name, None) is not None:
                    self.axes[f"{prefix}.{name}"] = (out,)
            if getattr(module, "num_batches_tracked", None) is not None:
                self.axes[f"{prefix}.num_batches_tracked"] = ()
            if isinstance(module, nn.GroupNorm) and 1 < module.num_groups < channels:
                self.blocks[out] = module.num_groups  # permute within groups only
        else:  # a spec function's mistake, not the user's
            raise TypeError(f"no permutation rule for {type(module).__name__} at {prefix!r}")

    def _size(self, perm: str | None, n: int) -> None:
        if perm is not None and self.sizes.setdefault(perm, n) != n:
            raise LandscapeError(
                f"{self.family}: permutation {perm!r} acts on {self.sizes[perm]} and on {n} "
                f"units; the model does not have the layout its permutation spec expects"
            )

    def build(self) -> PermutationSpec:
        """The spec, after checking that it covers exactly the model's state_dict."""
        state = self.model.state_dict()
        odd = sorted(set(state) ^ set(self.axes))
        if odd:
            raise LandscapeError(
                f"{self.family}: the permutation spec and the model disagree about "
                f"{', '.join(odd[:4])}; the model was changed after it was built, so weight "
                f"matching cannot tell which axes to permute"
            )
        for name, axes in self.axes.items():
            shape = state[name].shape
            bad = len(axes) != len(shape) or any(
                p is not None and shape[i] % self.sizes[p] for i, p in enumerate(axes)
            )
            if bad:
                raise LandscapeError(
                    f"{self.family}: {name} has shape {tuple(shape)}, which its permutation "
                    f"spec does not fit; the model does not have the expected layout"
                )
        for p in self.sizes:
            self.blocks.setdefault(p, 1)
        return PermutationSpec(self.family, self.axes, self.sizes, self.blocks)


def _chain(builder: _Builder, layers: list[tuple[str, nn.Module]]) -> PermutationSpec:
    """Spec of a feed-forward chain: each hidden Linear/Conv layer's outputs get their own
    permutation (named after the layer), norms follow it, the last layer's outputs stay."""
    affine = [name for name, m in layers if isinstance(m, _AFFINE)]
    current: str | None = None
    for name, module in layers:
        if isinstance(module, _AFFINE):
            out = None if name == affine[-1] else name
            builder.layer(name, module, out, current)
            current = out
        elif isinstance(module, (*_BN, nn.GroupNorm)):
            builder.layer(name, module, current, None)
    return builder.build()


@register_permutation_spec(MLP, "mlp", "lenet300-100")
def _mlp_spec(model: MLP) -> PermutationSpec:
    """``fc1 .. fcN``: one permutation per hidden layer, named ``fc<i>``."""
    return _chain(_Builder(model, "mlp"), list(model.named_children()))


@register_permutation_spec(Conv1dNet, "conv1d")
def _conv1d_spec(model: Conv1dNet) -> PermutationSpec:
    """``conv1 .. conv3``; the classifier's input is the flattened ``(channels, length)``."""
    return _chain(_Builder(model, "conv1d"), list(model.named_children()))


@register_permutation_spec(ConvNet, "convnet")
def _convnet_spec(model: ConvNet) -> PermutationSpec:
    """``conv<i>`` and ``norm<i>`` share a permutation; GroupNorm with 1 < groups < width
    restricts it to within-group moves (instance norm, one channel per group, does not)."""
    return _chain(_Builder(model, "convnet"), list(model.named_children()))


@register_permutation_spec(VGG, "vgg11", "vgg16")
def _vgg_spec(model: VGG) -> PermutationSpec:
    """``features.<k>`` per convolution (its BatchNorm follows), then ``fc``."""
    layers = [(f"features.{name}", m) for name, m in model.features.named_children()]
    return _chain(_Builder(model, "vgg"), [*layers, ("fc", model.fc)])


@register_permutation_spec(CifarResNet, "resnet20")
def _resnet_spec(model: CifarResNet) -> PermutationSpec:
    """One permutation per residual stream (``stage1 .. stage3``: the stem, every block's
    ``conv2``/``bn2`` and each projection shortcut write into it) and one per block for the
    units between its two convolutions (``blocks.<i>.conv1``)."""
    b = _Builder(model, "resnet20")
    stage = 1
    stream = f"stage{stage}"
    b.layer("conv1", model.conv1, stream, None)
    b.layer("bn1", model.bn1, stream, None)
    for i, block in enumerate(model.blocks):
        p = f"blocks.{i}"
        out = stream
        if not isinstance(block.shortcut, nn.Identity):  # a projection starts a new stream
            stage += 1
            out = f"stage{stage}"
            b.layer(f"{p}.shortcut.0", block.shortcut[0], out, stream)
            b.layer(f"{p}.shortcut.1", block.shortcut[1], out, None)
        b.layer(f"{p}.conv1", block.conv1, f"{p}.conv1", stream)
        b.layer(f"{p}.bn1", block.bn1, f"{p}.conv1", None)
        b.layer(f"{p}.conv2", block.conv2, out, f"{p}.conv1")
        b.layer(f"{p}.bn2", block.bn2, out, None)
        stream = out
    b.layer("fc", model.fc, None, stream)
    return b.build()


@register_permutation_spec(WideResNet, "wrn", "wrn28-10")
def _wrn_spec(model: WideResNet) -> PermutationSpec:
    """Pre-activation blocks: ``bn1`` reads the stream, ``conv2`` and the shortcut write the
    next one; one stream permutation per stage, one inner permutation per block."""
    b = _Builder(model, "wrn")
    stage = 1
    stream = f"stage{stage}"
    b.layer("conv1", model.conv1, stream, None)
    for i, block in enumerate(model.blocks):
        p = f"blocks.{i}"
        out = stream
        if block.shortcut is not None:
            stage += 1
            out = f"stage{stage}"
            b.layer(f"{p}.shortcut", block.shortcut, out, stream)
        b.layer(f"{p}.bn1", block.bn1, stream, None)
        b.layer(f"{p}.conv1", block.conv1, f"{p}.conv1", stream)
        b.layer(f"{p}.bn2", block.bn2, f"{p}.conv1", None)
        b.layer(f"{p}.conv2", block.conv2, out, f"{p}.conv1")
        stream = out
    b.layer("bn", model.bn, stream, None)
    b.layer("fc", model.fc, None, stream)
    return b.build()


# --- applying permutations --------------------------------------------------------------


def _permute_tensor(
    t: torch.Tensor,
    axes: tuple[str | None, ...],
    perms: Mapping[str, torch.Tensor],
    sizes: Mapping[str, int],
    skip: int | None = None,
) -> torch.Tensor:
    """``t`` with every permuted axis (but ``skip``) reordered; flattened axes move in blocks."""
    for axis, p in enumerate(axes):
        if p is None or axis == skip:
            continue
        index = perms[p].to(t.device)
        k = t.shape[axis] // sizes[p]
        if k > 1:  # unit c of a flattened (n, k) axis covers entries c*k .. c*k + k - 1
            index = (index[:, None] * k + torch.arange(k, device=t.device)).reshape(-1)
        t = t.index_select(axis, index)
    return t


def _check_perms(spec: PermutationSpec, perms: Any) -> dict[str, torch.Tensor]:
    """``perms`` as CPU ``LongTensor``s, after checking they are valid for ``spec``."""
    if not isinstance(perms, Mapping):
        raise LandscapeError(
            f"perms must be a dict of permutation name -> index tensor (as weight_matching "
            f"returns), got {type(perms).__name__}"
        )
    if set(perms) != set(spec.sizes):
        missing = sorted(set(spec.sizes) - set(perms))
        extra = sorted(set(perms) - set(spec.sizes))
        raise LandscapeError(
            f"perms do not fit this {spec.family}: missing {missing[:4]}, unknown {extra[:4]}; "
            f"pass the dict weight_matching returns for two models of this architecture"
        )
    out = {}
    for name, n in spec.sizes.items():
        try:
            perm = torch.as_tensor(perms[name]).cpu()
        except (TypeError, ValueError, RuntimeError):
            perm = None
        integral = perm is not None and not perm.is_floating_point() and perm.dtype != torch.bool
        if not integral or perm.dim() != 1 or perm.numel() != n:
            got = type(perms[name]).__name__
            if perm is not None:
                got = f"a {perm.dtype} tensor of shape {tuple(perm.shape)}"
            raise LandscapeError(
                f"perms[{name!r}] must be an integer tensor of shape ({n},), a permutation of "
                f"0..{n - 1}; got {got}"
            )
        perm = perm.long()
        if not torch.equal(perm.sort().values, torch.arange(n)):
            raise LandscapeError(
                f"perms[{name!r}] is not a permutation of 0..{n - 1}: it repeats or skips "
                f"units; pass what weight_matching or random_permutations returns"
            )
        size = n // spec.blocks[name]
        if not torch.equal(perm // size, torch.arange(n) // size):
            raise LandscapeError(
                f"perms[{name!r}] moves units between GroupNorm groups, which changes the "
                f"function; permute only within each block of {size} units"
            )
        out[name] = perm
    return out


def permute(model: nn.Module, perms: Mapping[str, torch.Tensor]) -> nn.Module:
    """A copy of ``model`` with its hidden units permuted; it computes the same function.

    Args:
        model: a model whose family has a permutation spec; it is left as found.
        perms: permutation name -> index tensor of shape ``(n,)`` (see
            :func:`weight_matching`); every permutation of the spec must be given.

    Returns:
        A deep copy (same device, dtype, modes and ``requires_grad``) whose every tensor is
        ``w.index_select(axis, perm)`` along each axis its spec permutes.
    """
    spec = permutation_spec(model)
    perms = _check_perms(spec, perms)
    new = copy.deepcopy(model)
    tensors = dict(new.named_parameters()) | dict(new.named_buffers())
    with torch.no_grad():
        for name, t in tensors.items():
            t.copy_(_permute_tensor(t, spec.axes[name], perms, spec.sizes))
    return new


def permute_masks(model: nn.Module, masks: Masks, perms: Mapping[str, torch.Tensor]) -> Masks:
    """``masks`` of ``model`` permuted like its weights (a new dict; the input is kept).

    ``apply_masks(permute(model, perms), permute_masks(model, masks, perms))`` equals
    ``permute(apply_masks(model, masks), perms)``.

    Args:
        model: the model the masks belong to (for its spec and the masks' check).
        masks: parameter name -> bool tensor of that parameter's shape.
        perms: as for :func:`permute`.
    """
    spec = permutation_spec(model)
    check_masks(model, masks)
    perms = _check_perms(spec, perms)
    return {k: _permute_tensor(m, spec.axes[k], perms, spec.sizes) for k, m in masks.items()}


def random_permutations(
    model: nn.Module, *, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Uniformly random valid permutations for ``model``'s spec (within GroupNorm groups).

    Args:
        model: a model whose family has a permutation spec.
        generator: a CPU ``torch.Generator`` (default: one seeded with 0).
    """
    spec = permutation_spec(model)
    gen = cpu_generator(generator)
    out = {}
    for name in sorted(spec.sizes):
        n, blocks = spec.sizes[name], spec.blocks[name]
        size = n // blocks
        parts = [torch.randperm(size, generator=gen) + g * size for g in range(blocks)]
        out[name] = torch.cat(parts)
    return out


# --- weight matching ---------------------------------------------------------------------


def weight_matching(
    model_a: nn.Module,
    model_b: nn.Module,
    *,
    generator: torch.Generator | None = None,
    max_iter: int = 100,
) -> dict[str, torch.Tensor]:
    """Permutations of ``model_b``'s units that best match its weights to ``model_a``'s.

    Algorithm 2 of Ainsworth et al. (2023): start from the identity; sweep the permutations
    in an order drawn from ``generator``, replacing each by the solution of the linear
    assignment problem ``max_P <P, C_l>`` (see the module docstring); stop after a sweep
    that changes none, or after ``max_iter`` sweeps. Each step can only raise ``J``.

    Args:
        model_a: the reference model (or a ``Run``); left as found.
        model_b: the model to align, same architecture; left as found.
        generator: CPU ``torch.Generator`` for the sweep order (default: seeded with 0).
        max_iter: the most sweeps.

    Returns:
        Permutation name -> CPU ``LongTensor`` of shape ``(n,)``; ``permute(model_b, perms)``
        is B aligned to A.
    """
    model_a, model_b = _models(model_a, model_b)
    return _match(model_a, model_b, generator, max_iter)[0]


def align(
    model_a: nn.Module,
    model_b: nn.Module,
    *,
    generator: torch.Generator | None = None,
    max_iter: int = 100,
    masks_b: Masks | None = None,
) -> Alignment:
    """``model_b`` permuted onto ``model_a`` by weight matching, with the objective before
    and after (see :func:`weight_matching`).

    Args:
        model_a: the reference model; left as found.
        model_b: the model to align; left as found.
        generator: CPU ``torch.Generator`` for the sweep order (default: seeded with 0).
        max_iter: the most sweeps.
        masks_b: ``model_b``'s masks (parameter name -> bool tensor), permuted along.

    Returns:
        An :class:`Alignment` holding the aligned copy of B and its permutations.
    """
    model_a, model_b = _models(model_a, model_b)
    if masks_b is not None:
        check_masks(model_b, masks_b)
    perms, iterations, converged, (before, after) = _match(
        model_a, model_b, generator, max_iter, report=True
    )
    masks = None if masks_b is None else permute_masks(model_b, masks_b, perms)
    return Alignment(
        model=permute(model_b, perms),
        perms=perms,
        masks=masks,
        objective_before=before,
        objective_after=after,
        iterations=iterations,
        converged=converged,
    )


def _models(model_a: Any, model_b: Any) -> tuple[nn.Module, nn.Module]:
    """Both models as modules (a ``Run`` loads next to ``model_a``)."""
    model_a = as_model(model_a, "model_a")
    return model_a, as_model(model_b, "model_b", device=model_device(model_a))


def _match(
    model_a: nn.Module, model_b: nn.Module, generator: Any, max_iter: Any, report: bool = False
):
    """Algorithm 2; returns ``(perms, sweeps, converged, (J before, J after))`` when
    ``report``, else ``(perms,)``."""
    max_iter = integer("max_iter", max_iter, 1)
    gen = cpu_generator(generator)
    if type(model_a) is not type(model_b):
        raise LandscapeError(
            f"model_a is a {type(model_a).__name__} but model_b a {type(model_b).__name__}; "
            f"weight matching needs two models of one architecture"
        )
    spec = permutation_spec(model_a)
    a, b = _weights(model_a, "model_a"), _weights(model_b, "model_b")
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise LandscapeError(
            "the two models differ in architecture (parameter names or shapes); weight "
            "matching needs two models built the same way"
        )
    spec_b = permutation_spec(model_b)
    if spec_b != spec:
        raise LandscapeError(
            "the two models have different permutation specs (e.g. another GroupNorm "
            "grouping); weight matching needs two models built the same way"
        )
    device = model_device(model_a)
    b = {k: v.to(device) for k, v in b.items()}
    perms = {p: torch.arange(n, device=device) for p, n in spec.sizes.items()}
    touching = {
        p: [(t, axis) for t, axis in pairs if t in a] for p, pairs in spec.perm_to_axes().items()
    }
    names = sorted(spec.sizes)
    before = _objective(spec, a, b, perms)
    converged, sweeps = not names, 0
    while not converged and sweeps < max_iter:
        sweeps += 1
        converged = True
        for i in torch.randperm(len(names), generator=gen).tolist():
            p, n = names[i], spec.sizes[names[i]]
            cost = torch.zeros(n, n, dtype=torch.float64, device=device)
            for t, axis in touching[p]:
                w_a = a[t].movedim(axis, 0).reshape(n, -1)
                w_b = _permute_tensor(b[t], spec.axes[t], perms, spec.sizes, skip=axis)
                cost += w_a @ w_b.movedim(axis, 0).reshape(n, -1).T
            new = _assign(cost, spec.blocks[p]).to(device)
            rows = torch.arange(n, device=device)
            old_score, new_score = cost[rows, perms[p]].sum(), cost[rows, new].sum()
            # ties and rounding must not count as progress, or sweeps could cycle forever
            if new_score > old_score + 1e-10 * max(1.0, old_score.abs().item()):
                perms[p] = new
                converged = False
    if not converged:
        log.warning("weight matching stopped after max_iter=%d sweeps, unconverged", max_iter)
    perms = {p: v.cpu() for p, v in perms.items()}
    if not report:
        return (perms,)
    return perms, sweeps, converged, (before, _objective(spec, a, b, perms))


def _assign(cost: torch.Tensor, blocks: int) -> torch.Tensor:
    """The maximising assignment of each diagonal block of ``cost`` (``(n, n)`` -> ``(n,)``)."""
    c = cost.cpu().numpy()
    n = c.shape[0]
    size = n // blocks
    out = np.empty(n, dtype=np.int64)
    for g in range(blocks):
        block = slice(g * size, (g + 1) * size)
        rows, cols = linear_sum_assignment(c[block, block], maximize=True)
        out[rows + g * size] = cols + g * size
    return torch.from_numpy(out)


def _objective(spec, a, b, perms) -> float:
    """``J(P) = sum over parameters <W^A, W^B permuted>`` in float64."""
    total = sum(
        (a[k] * _permute_tensor(b[k], spec.axes[k], perms, spec.sizes)).sum().item() for k in a
    )
    return float(total)


def _weights(model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """The floating parameters as detached float64 copies; non-finite ones are refused."""
    out = {}
    for k, v in model.named_parameters():
        if v.is_floating_point():
            out[k] = v.detach().to(torch.float64, copy=True)
    if not all(bool(torch.isfinite(v).all()) for v in out.values()):
        raise LandscapeError(
            f"{name} has non-finite weights (NaN or inf): its run diverged, so there is "
            f"nothing to align; take an earlier checkpoint"
        )
    return out
