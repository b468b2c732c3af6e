"""Pruning: remove a fraction of the remaining weights by magnitude or at random, and draw
random masks of given layer densities (the controls of every pruning study)."""

from __future__ import annotations

import torch
from torch import nn

from landscape.checks import number
from landscape.errors import LandscapeError
from landscape.sparse.distributions import check_density, layer_densities
from landscape.sparse.masks import Masks, check_masks, full_masks, prunable_parameters

SCOPES = ("global", "layer")


@torch.no_grad()
def magnitude_prune(
    model: nn.Module,
    fraction: float,
    masks: Masks | None = None,
    scope: str = "global",
    *,
    spare_first: bool = False,
    spare_output: bool = False,
) -> Masks:
    """Remove ``fraction`` of the *remaining* weights, those of smallest magnitude.

    Han et al. 2015; Frankle & Carbin 2019 (IMP prunes 20% of the remaining weights per
    round, globally across layers in the authors' later code for deep networks).

    Args:
        model: the trained network whose weights rank the survivors.
        fraction: share of the remaining weights to remove, in [0, 1).
        masks: the current masks (``None``: every prunable weight remains). Their keys say
            which tensors are pruned; ``spare_first``/``spare_output`` apply only without.
        scope: ``"global"`` ranks all remaining weights together (layers end at different
            densities), ``"layer"`` removes ``fraction`` of each tensor's survivors.

    Returns:
        New masks (the inputs are not changed) that remove ``round(fraction * remaining)``
        weights, globally or per tensor; ties fall on the lower flat index.
    """
    masks = _remaining(model, masks, spare_first, spare_output)
    params = dict(model.named_parameters())
    scores = {n: params[n].detach().abs().float() for n in masks}
    return _prune(scores, masks, _fraction(fraction), check_scope(scope))


@torch.no_grad()
def random_prune(
    model: nn.Module,
    fraction: float,
    masks: Masks | None = None,
    scope: str = "global",
    *,
    generator: torch.Generator,
    spare_first: bool = False,
    spare_output: bool = False,
) -> Masks:
    """Remove ``fraction`` of the remaining weights chosen at random: the control for
    :func:`magnitude_prune`, with the same arguments plus a CPU ``generator``."""
    masks = _remaining(model, masks, spare_first, spare_output)
    _generator(generator, "random_prune")
    scores = {n: torch.rand(m.shape, generator=generator).to(m.device) for n, m in masks.items()}
    return _prune(scores, masks, _fraction(fraction), check_scope(scope))


def random_masks(
    model: nn.Module,
    density: float | dict[str, float],
    generator: torch.Generator,
    *,
    distribution: str = "uniform",
    spare_first: bool = False,
    spare_output: bool = False,
) -> Masks:
    """Random masks keeping ``round(d_l * n_l)`` weights (at least one) of every tensor.

    Args:
        model: the model whose prunable weights get masks.
        density: the overall density in (0, 1], spread over layers by ``distribution``
            (see :func:`~landscape.sparse.distributions.layer_densities`), or a dict of
            per-tensor densities (e.g. another mask set's :func:`layer_density`).
        generator: a CPU generator; the masks are a pure function of its state.
    """
    _generator(generator, "random_masks")
    if isinstance(density, dict):
        params = dict(model.named_parameters())
        missing = sorted(set(density) - set(params))
        if missing:
            raise LandscapeError(
                f"densities name {', '.join(missing[:4])}, which the model lacks; the densities "
                f"were made for another architecture"
            )
        targets = {n: check_density(d, f"density of {n}") for n, d in density.items()}
        params = {n: params[n] for n in targets}
    else:
        targets = layer_densities(
            model, density, distribution, spare_first=spare_first, spare_output=spare_output
        )
        params = prunable_parameters(model, spare_first=spare_first, spare_output=spare_output)
    masks: Masks = {}
    for name, d in targets.items():
        p = params[name]
        n = p.numel()
        keep = torch.randperm(n, generator=generator)[: max(1, round(d * n))]
        flat = torch.zeros(n, dtype=torch.bool)
        flat[keep] = True
        masks[name] = flat.view_as(p).to(p.device)
    return masks


def shuffle_masks(masks: Masks, generator: torch.Generator) -> Masks:
    """A random mask set with exactly the same number of kept weights in every tensor."""
    _generator(generator, "shuffle_masks")
    out: Masks = {}
    for name, m in masks.items():
        flat = torch.zeros(m.numel(), dtype=torch.bool)
        flat[torch.randperm(m.numel(), generator=generator)[: int(m.sum())]] = True
        out[name] = flat.view(m.shape).to(m.device)
    return out


def _prune(scores: dict[str, torch.Tensor], masks: Masks, fraction: float, scope: str) -> Masks:
    """Drop the ``round(fraction * remaining)`` lowest-scoring survivors (per tensor for
    ``scope="layer"``); a weight already pruned is never counted or revived."""
    out = {n: m.clone() for n, m in masks.items()}
    groups = [[n] for n in masks] if scope == "layer" else [list(masks)]
    for names in groups:
        alive = [torch.nonzero(masks[n].flatten()).flatten() for n in names]
        values = torch.cat([scores[n].flatten()[i] for n, i in zip(names, alive)])
        k = round(fraction * values.numel())
        if k == 0:
            continue
        drop = torch.sort(values, stable=True).indices[:k]
        offsets = torch.tensor([0] + [len(i) for i in alive], device=values.device).cumsum(0)
        for j, n in enumerate(names):
            mine = drop[(drop >= offsets[j]) & (drop < offsets[j + 1])] - offsets[j]
            flat = out[n].view(-1)
            flat[alive[j][mine]] = False
    return out


def _remaining(model: nn.Module, masks: Masks | None, spare_first: bool, spare_output: bool):
    if masks is None:
        return full_masks(model, spare_first=spare_first, spare_output=spare_output)
    check_masks(model, masks)
    devices = {n: p.device for n, p in model.named_parameters()}
    return {n: m.to(devices[n]).bool() for n, m in masks.items()}


def _fraction(value: float) -> float:
    value = number("fraction", value, minimum=0.0, maximum=1.0)
    if value >= 1.0:
        raise LandscapeError(
            "fraction must be below 1 (it is the share of the remaining weights removed; "
            "removing all leaves no network), got 1"
        )
    return value


def check_scope(scope: str) -> str:
    """``scope`` if it is ``"global"`` or ``"layer"``, else one clear error."""
    if not isinstance(scope, str) or scope not in SCOPES:
        raise LandscapeError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
    return scope


def _generator(generator, who: str) -> None:
    if not isinstance(generator, torch.Generator):
        raise LandscapeError(
            f"{who} needs a torch.Generator, e.g. torch.Generator().manual_seed(0), got "
            f"{type(generator).__name__}"
        )
