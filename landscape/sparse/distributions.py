"""Per-layer densities that reach a target overall density: uniform, ER and ERK.

Evci et al. 2020 ("Rigging the Lottery: Making All Tickets Winners", ICML, Sec. 3 and
App. D) scale each layer's density with its shape: Erdos-Renyi (ER, Mocanu et al. 2018)
gives a layer with ``n_in`` inputs and ``n_out`` outputs a density proportional to
``(n_in + n_out) / (n_in * n_out)``; ERK (Erdos-Renyi-Kernel) adds the kernel dimensions,
``sum(shape) / prod(shape)``. One factor ``eps`` scales every layer so the kept weights add
up to ``density`` times the prunable weights; a layer the formula would make denser than 1
is kept dense and ``eps`` is solved again for the rest, until none exceeds 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from landscape.checks import number
from landscape.errors import LandscapeError
from landscape.sparse.masks import prunable_parameters

DISTRIBUTIONS = ("uniform", "er", "erk")


def check_density(value: float, name: str = "density") -> float:
    """``value`` as a float in (0, 1], else one clear error."""
    return number(name, value, minimum=0.0, maximum=1.0, strict_minimum=True)


def shape_score(shape: torch.Size | tuple[int, ...], distribution: str) -> float:
    """The unnormalised density of a weight of ``shape``: 1 (uniform), ER or ERK.

    Args:
        shape: ``(n_out, n_in)`` or ``(n_out, n_in, *kernel)``.
        distribution: ``"uniform"``, ``"er"`` or ``"erk"``.
    """
    if distribution == "uniform":
        return 1.0
    if distribution == "er":
        n_out, n_in = shape[0], shape[1]
        return (n_in + n_out) / (n_in * n_out)
    return sum(shape) / math.prod(shape)


def layer_densities(
    model: nn.Module,
    density: float,
    distribution: str = "uniform",
    *,
    spare_first: bool = False,
    spare_output: bool = False,
) -> dict[str, float]:
    """Densities per prunable weight whose weighted mean is ``density``.

    Args:
        model: the network; its prunable weights are
            :func:`~landscape.sparse.masks.prunable_parameters` (spared layers stay dense
            and outside the count).
        density: the overall fraction of prunable weights kept, in (0, 1].
        distribution: ``"uniform"`` (every layer ``density``), ``"er"`` or ``"erk"``.

    Returns:
        ``{parameter name: density in (0, 1]}``; ``sum(d_l * n_l) == density * sum(n_l)``
        up to float rounding.
    """
    density = check_density(density)
    if not isinstance(distribution, str) or distribution not in DISTRIBUTIONS:
        raise LandscapeError(
            f"unknown distribution {distribution!r}; choose one of {', '.join(DISTRIBUTIONS)}"
        )
    params = prunable_parameters(model, spare_first=spare_first, spare_output=spare_output)
    if not params:
        raise LandscapeError(f"{type(model).__name__} has no linear or convolutional weights")
    sizes = {name: p.numel() for name, p in params.items()}
    scores = {name: shape_score(p.shape, distribution) for name, p in params.items()}
    dense: set[str] = set()
    while True:
        budget = density * sum(sizes.values()) - sum(sizes[n] for n in dense)
        free = [n for n in params if n not in dense]
        if not free:  # density 1: every layer dense
            return {n: 1.0 for n in params}
        eps = budget / sum(scores[n] * sizes[n] for n in free)
        over = [n for n in free if eps * scores[n] > 1.0]
        if not over:
            break
        dense.update(over)  # these layers stay dense; solve again for the others
    return {n: 1.0 if n in dense else eps * scores[n] for n in params}
