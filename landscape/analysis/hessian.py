"""Hessian diagonal, trace and eigenvalues of the mean loss over a whole split: a thin layer on
curvlinops and BackPACK.

Everything here is about the Hessian of the mean cross-entropy over *all* of ``data``,

    L(theta) = 1/N sum_n CE(f(x_n; theta), y_n),    H = d^2 L / d theta^2,

taken in batches (a batch of ``n_b`` examples weighs ``n_b / N``), with the model in eval mode
(BatchNorm uses its running statistics) and with respect to the parameters that require a
gradient. ``batches=k`` keeps only the first ``k`` batches: McDermott & Cummings' code took
the exact diagonal on one mini-batch, which ``batches=1, batch_size=B`` reproduces.

With ``masks`` (name -> bool tensor, as :mod:`landscape.sparse` makes them) the Hessian is
the *subnetwork's*: pruned weights are set to zero and only the unpruned coordinates are
variables, so the operator is the submatrix of ``H`` on the kept coordinates and the
diagonal is zero outside the mask. Parameters without a mask (biases, norms) are kept whole.

The curvature itself comes from the libraries that do it well:

- ``curvlinops`` (Dangel et al.): the Hessian as a linear operator over a data loader
  (:class:`curvlinops.HessianLinearOperator`, Hessian-vector products batched with
  ``torch.func.vmap``), its submatrix on the mask, Hutch++ traces, Lanczos spectral densities
  (Papyan 2020);
- BackPACK (Dangel, Kunstner & Hennig 2020): the exact Hessian diagonal in one backward pass
  per batch (``DiagHessian``), for ``nn.Sequential`` models of the layers it supports.

What they lack is built here: one call that picks the method (:func:`hessian_diagonal`), an
exact diagonal for small models BackPACK refuses (normalisation layers, residual blocks): by
forward tangents for sequential networks (:mod:`landscape.analysis._tangents`, GroupNorm and
eval BatchNorm included), else by brute force (Hessian columns in blocks), Hutchinson's
estimator with its standard error and a seeded ``torch.Generator``, masks, whole-split data,
and leaving the caller's model as found (all work happens on a private copy, so BackPACK's
hooks never touch it).
"""

from __future__ import annotations

import copy
import functools
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from landscape.analysis._tangents import hooked, shares, tangent_diagonal, tangent_layers
from landscape.analysis.evaluate import (
    DEFAULT_BATCH,
    as_model,
    check_logits,
    forward_errors,
    iter_batches,
    model_device,
    model_dtype,
)
from landscape.checks import cpu_generator, integer, optional_integer
from landscape.errors import LandscapeError

#: ``method`` values of :func:`hessian_diagonal`.
DIAGONAL_METHODS = ("auto", "exact", "backpack", "hutchinson")
#: ``method`` values of :func:`hessian_trace`.
TRACE_METHODS = ("auto", "exact", "hutchinson", "hutchpp")
#: "auto" computes the exact diagonal without BackPACK up to this many (unpruned) parameters.
EXACT_LIMIT = 10_000
#: Hessian columns (or probes) per batched product: memory grows with it, speed too.
DEFAULT_BLOCK = 64
#: Hutchinson probes "auto" takes for a model too large for the exact diagonal.
DEFAULT_PROBES = 100

#: The layers BackPACK's ``DiagHessian`` handles (its module extensions, backpack 1.7), for
#: models that are ``nn.Sequential`` containers of these and nothing else.
_BACKPACK_LAYERS = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.Sigmoid,
    nn.LogSigmoid,
    nn.Tanh,
    nn.Flatten,
    nn.Dropout,
    nn.ZeroPad2d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
)


@dataclass(frozen=True)
class HessianDiagonal:
    """The diagonal of the Hessian, one tensor per parameter.

    Attributes:
        diagonal: ``{parameter name: tensor of the parameter's shape}`` (zero where masked).
        method: which method ran: ``"backpack"``, ``"exact"`` or ``"hutchinson"``.
        count: the examples the Hessian averages over.
        stderr: Hutchinson only: the standard error of each entry (the sample standard
            deviation of ``v * Hv`` over probes, over ``sqrt(probes)``); ``None`` if exact.
        probes: Hutchinson only: the number of probe vectors.
        masks: the masks the diagonal is restricted to (``None``: the whole network).
        trace_stderr: Hutchinson only: the standard error of :attr:`trace`, from the probes'
            ``v^T H v`` (0 for exact methods).
    """

    diagonal: dict[str, torch.Tensor]
    method: str
    count: int
    stderr: dict[str, torch.Tensor] | None = None
    probes: int | None = None
    masks: dict[str, torch.Tensor] | None = None
    trace_stderr: float = 0.0

    def flat(self) -> torch.Tensor:
        """All entries as one vector, parameters in the model's order."""
        return torch.cat([d.reshape(-1) for d in self.diagonal.values()])

    @property
    def trace(self) -> float:
        """The sum of the diagonal: the trace of the (masked) Hessian."""
        return float(sum(float(d.double().sum()) for d in self.diagonal.values()))

    def active(self, name: str) -> torch.Tensor:
        """The entries of parameter ``name`` inside the mask (all of them without one)."""
        d = self.diagonal[name]
        mask = (self.masks or {}).get(name)
        return d.reshape(-1) if mask is None else d[mask.to(d.device, torch.bool)]


def backpack_supports(model: nn.Module) -> bool:
    """Whether BackPACK's exact ``DiagHessian`` handles ``model``: an ``nn.Sequential``
    (nested ones too) whose layers are all among the ones it extends."""
    if not isinstance(model, nn.Sequential) or hooked(model) or shares(model):
        return False
    for module in model.children():
        if hooked(module):  # BackPACK's extensions see neither hooks nor parametrizations
            return False
        if isinstance(module, nn.Sequential):
            if not backpack_supports(module):
                return False
        elif not isinstance(module, _BACKPACK_LAYERS):
            return False
    return True


def hessian_diagonal(
    model: Any,
    data: Any,
    method: str = "auto",
    *,
    masks: dict[str, torch.Tensor] | None = None,
    batch_size: int = DEFAULT_BATCH,
    batches: int | None = None,
    probes: int | None = None,
    generator: torch.Generator | None = None,
    block: int = DEFAULT_BLOCK,
    exact_limit: int = EXACT_LIMIT,
) -> HessianDiagonal:
    """The diagonal of the Hessian of the mean cross-entropy over all of ``data``.

    Args:
        model: a classifier (logits ``(N, classes)``) or a ``Run``; it is left as found.
        data: ``(x, y)`` tensors, a Split, or an iterable of ``(x, y)`` batches.
        method: ``"backpack"`` (BackPACK's exact diagonal; Sequential models of supported
            layers), ``"exact"`` (a forward tangent per parameter through the layers above it
            for sequential networks, else ``P`` Hessian-vector products; in blocks of
            ``block`` columns; for models of a few thousand parameters), ``"hutchinson"``
            (``E[v * Hv]`` over Rademacher probes ``v``, with standard errors), or ``"auto"``:
            BackPACK where it applies, else exact up to ``exact_limit`` unpruned parameters,
            else Hutchinson.
        masks: restrict to the subnetwork (see the module docstring).
        batch_size: examples per batch when ``data`` is a tensor pair.
        batches: use only the first this many batches (``None``: all of them).
        probes: Hutchinson's probe count (default :data:`DEFAULT_PROBES`); refused for exact
            methods.
        generator: the CPU generator the probes come from (default: seeded with 0).
        block: Hessian columns or probes per batched product.
        exact_limit: the most unpruned parameters "auto" computes exactly without BackPACK.

    Returns:
        A :class:`HessianDiagonal` on the model's device and dtype.
    """
    if method not in DIAGONAL_METHODS:
        raise LandscapeError(
            f"unknown Hessian diagonal method {method!r}; choose one of "
            f"{', '.join(DIAGONAL_METHODS)}"
        )
    block = integer("block", block, 1)
    exact_limit = integer("exact_limit", exact_limit, 0)
    probes = optional_integer("probes", probes, 1)
    with _problem(model, data, masks, batch_size, batches) as problem:
        if method == "auto":
            if backpack_supports(problem.model):
                method = "backpack"
            elif problem.active_count <= exact_limit:
                method = "exact"
            else:
                method = "hutchinson"
        if probes is not None and method != "hutchinson":
            raise LandscapeError(
                f"probes= is for Hutchinson's estimator; method {method!r} is exact and "
                f"takes none (pass method='hutchinson' to estimate)"
            )
        if method == "backpack":
            flat = _backpack_diagonal(problem)
            return problem.result(flat, "backpack")
        if method == "exact":
            return problem.result(_exact_diagonal(problem, block), "exact")
        probes = DEFAULT_PROBES if probes is None else probes
        flat, stderr, trace_stderr = _hutchinson_diagonal(problem, probes, block, generator)
        return problem.result(flat, "hutchinson", stderr, probes, trace_stderr)


@dataclass(frozen=True)
class TraceEstimate:
    """A Hessian trace: ``value``, its standard error (0 if exact), how, from how many
    probes (``None`` if exact) and over how many examples."""

    value: float
    stderr: float
    method: str
    probes: int | None
    count: int


def hessian_trace(
    model: Any,
    data: Any,
    method: str = "auto",
    *,
    masks: dict[str, torch.Tensor] | None = None,
    batch_size: int = DEFAULT_BATCH,
    batches: int | None = None,
    probes: int | None = None,
    generator: torch.Generator | None = None,
    block: int = DEFAULT_BLOCK,
    exact_limit: int = EXACT_LIMIT,
) -> TraceEstimate:
    """The trace of the (masked) Hessian of the mean cross-entropy over ``data``.

    ``"exact"`` sums the exact diagonal (BackPACK's or ours); ``"hutchinson"`` is
    ``mean(v^T H v)`` over Rademacher probes with its standard error; ``"hutchpp"`` is
    curvlinops' Hutch++ (Meyer et al. 2021: ``probes`` products, a third of them spent on a
    low-rank sketch; no standard error), seeded from ``generator``. ``"auto"`` is exact up to
    ``exact_limit`` unpruned parameters (or where BackPACK applies), else Hutchinson.
    """
    if method not in TRACE_METHODS:
        raise LandscapeError(
            f"unknown trace method {method!r}; choose one of {', '.join(TRACE_METHODS)}"
        )
    if method == "hutchpp":
        probes = DEFAULT_PROBES if probes is None else integer("probes", probes, 3)
        curvlinops = _curvlinops()
        with _problem(model, data, masks, batch_size, batches) as problem:
            if probes >= problem.active_count:
                raise LandscapeError(
                    f"Hutch++ needs fewer probes than the {problem.active_count} (unpruned) "
                    f"parameters, got {probes}; use method='exact' at this size"
                )
            with _seeded(generator, problem.device):
                value = float(curvlinops.hutchpp_trace(problem.operator(), probes))
            return TraceEstimate(value, 0.0, "hutchpp", probes, problem.count)
    diag_method = {"exact": "auto", "hutchinson": "hutchinson", "auto": "auto"}[method]
    options = dict(masks=masks, batch_size=batch_size, batches=batches, block=block)
    if method == "exact":
        options["exact_limit"] = 2**62  # exact whatever the size
    else:
        options.update(probes=probes, generator=generator, exact_limit=exact_limit)
    d = hessian_diagonal(model, data, diag_method, **options)
    return TraceEstimate(d.trace, d.trace_stderr, d.method, d.probes, d.count)


def hessian_eigenvalues(
    model: Any,
    data: Any,
    k: int = 1,
    *,
    which: str = "LA",
    masks: dict[str, torch.Tensor] | None = None,
    batch_size: int = DEFAULT_BATCH,
    batches: int | None = None,
    generator: torch.Generator | None = None,
    tol: float = 1e-6,
) -> np.ndarray:
    """The ``k`` extreme eigenvalues of the (masked) Hessian, by Lanczos (SciPy's ``eigsh``
    on curvlinops' operator, started from a vector drawn from ``generator``).

    Args:
        which: ``"LA"`` the largest (algebraic), ``"SA"`` the smallest, ``"LM"`` the largest
            in magnitude.
        tol: ``eigsh``'s relative accuracy.

    Returns:
        float64 eigenvalues, in descending order (ascending for ``"SA"``).
    """
    from scipy.sparse.linalg import eigsh

    if which not in ("LA", "SA", "LM"):
        raise LandscapeError(f"which must be 'LA', 'SA' or 'LM', got {which!r}")
    k = integer("k", k, 1)
    with _problem(model, data, masks, batch_size, batches) as problem:
        dim = problem.active_count
        if k >= dim:
            raise LandscapeError(
                f"k={k} eigenvalues of a {dim}-parameter Hessian: Lanczos needs k < {dim}; "
                f"build the dense Hessian for all of them"
            )
        gen = cpu_generator(generator)
        v0 = torch.randn(dim, generator=gen, dtype=torch.float64).numpy()
        values = eigsh(
            problem.operator().to_scipy(np.float64),
            k=k,
            which=which,
            v0=v0,
            tol=tol,
            return_eigenvectors=False,
        )
    values = np.sort(values.astype(np.float64))
    return values if which == "SA" else values[::-1].copy()


def hessian_spectrum(
    model: Any,
    data: Any,
    *,
    masks: dict[str, torch.Tensor] | None = None,
    batch_size: int = DEFAULT_BATCH,
    batches: int | None = None,
    lanczos_steps: int = 64,
    repeats: int = 1,
    points: int = 512,
    kappa: float = 3.0,
    generator: torch.Generator | None = None,
) -> list[dict]:
    """The eigenvalue density of the (masked) Hessian by stochastic Lanczos quadrature
    (Papyan 2020, curvlinops' ``lanczos_approximate_spectrum``): ``repeats`` Lanczos runs of
    ``lanczos_steps`` steps from random starts, each Ritz value a Gaussian bump whose width
    is ``kappa`` grid spacings.

    Returns:
        Tidy rows ``{"eigenvalue", "density"}`` on a grid of ``points`` values spanning the
        spectrum (its ends found by Lanczos); the density integrates to 1.
    """
    curvlinops = _curvlinops()
    lanczos_steps = integer("lanczos_steps", lanczos_steps, 2)
    repeats = integer("repeats", repeats, 1)
    points = integer("points", points, 2)
    with _problem(model, data, masks, batch_size, batches) as problem:
        dim = problem.active_count
        if lanczos_steps >= dim:
            raise LandscapeError(
                f"lanczos_steps={lanczos_steps} for a {dim}-parameter Hessian: use fewer steps "
                f"than parameters"
            )
        top = _extreme_eigenvalue(problem, "LA", generator)
        low = _extreme_eigenvalue(problem, "SA", generator)
        with _seeded(generator, problem.device):
            grid, density = curvlinops.lanczos_approximate_spectrum(
                problem.operator(),
                lanczos_steps,
                num_points=points,
                num_repeats=repeats,
                kappa=kappa,
                boundaries=(low, top),
            )
    grid, density = np.asarray(grid, dtype=np.float64), np.asarray(density, dtype=np.float64)
    return [{"eigenvalue": float(g), "density": float(d)} for g, d in zip(grid, density)]


def _extreme_eigenvalue(problem: _Problem, which: str, generator) -> float:
    """One extreme eigenvalue of a prepared problem's operator (for the density's ends)."""
    from scipy.sparse.linalg import eigsh

    v0 = torch.randn(problem.active_count, generator=cpu_generator(generator), dtype=torch.float64)
    (value,) = eigsh(
        problem.operator().to_scipy(np.float64),
        k=1,
        which=which,
        v0=v0.numpy(),
        tol=1e-3,
        return_eigenvectors=False,
    )
    return float(value)


def hessian_operator(
    model: Any,
    data: Any,
    *,
    masks: dict[str, torch.Tensor] | None = None,
    batch_size: int = DEFAULT_BATCH,
    batches: int | None = None,
):
    """curvlinops' Hessian operator of the mean cross-entropy over ``data`` (the submatrix
    on the unpruned coordinates with ``masks``), for any curvlinops estimator.

    It works on a private eval-mode copy of the model (masked weights zeroed), held by the
    operator; the caller's model is not touched. Vectors are flat over the parameters that
    require a gradient, in the model's order (unpruned coordinates only, with masks).
    """
    problem = _Problem.build(model, data, masks, batch_size, batches)
    return problem.operator()


def diagonal_rows(result: HessianDiagonal, **keys: Any) -> list[dict]:
    """Per-parameter summaries of a Hessian diagonal (unpruned entries only), as tidy rows:
    count, mean, mean |.|, median, the 5/25/75/95% quantiles, min, max and the fraction
    negative, plus ``keys`` (e.g. ``network="IMP-distilled"``) in every row."""
    rows = []
    for name in result.diagonal:
        values = result.active(name).detach().double().cpu()
        if values.numel() == 0:
            continue
        # numpy: torch.quantile refuses tensors of more than 2^24 entries
        q = np.quantile(values.numpy(), [0.05, 0.25, 0.5, 0.75, 0.95])
        rows.append(
            {
                **keys,
                "method": result.method,
                "parameter": name,
                "count": int(values.numel()),
                "mean": float(values.mean()),
                "mean_abs": float(values.abs().mean()),
                "median": float(q[2]),
                "q05": float(q[0]),
                "q25": float(q[1]),
                "q75": float(q[3]),
                "q95": float(q[4]),
                "min": float(values.min()),
                "max": float(values.max()),
                "fraction_negative": float((values < 0).double().mean()),
            }
        )
    return rows


def diagonal_histogram(
    result: HessianDiagonal,
    edges: Any = None,
    *,
    bins: int = 60,
    **keys: Any,
) -> list[dict]:
    """Counts of the unpruned diagonal entries by magnitude, positive and negative apart,
    on logarithmic bins: what a log-scale histogram of the Hessian diagonal draws.

    Args:
        result: a :class:`HessianDiagonal`.
        edges: increasing positive bin edges of ``|H_ii|`` (share them across networks drawn
            side by side); default ``bins`` log-spaced edges from the smallest nonzero
            magnitude to the largest.
        bins: the number of bins when ``edges`` is not given.
        keys: columns added to every row (e.g. ``network="dense"``).

    Returns:
        Rows ``{sign ("positive" / "negative"), low, high, count, fraction}`` per bin (the
        fraction of all unpruned entries), per sign one row ``[0, edges[0])`` for smaller
        magnitudes and one ``(edges[-1], inf)`` for larger, and one row of sign ``"zero"``
        for exact zeros (units the mask cuts off have a zero diagonal).
    """
    values = torch.cat([result.active(n).detach().double().cpu() for n in result.diagonal])
    magnitude = values.abs()
    if edges is None:
        bins = integer("bins", bins, 1)
        nonzero = magnitude[magnitude > 0]
        if len(nonzero) == 0:
            raise LandscapeError("every diagonal entry is zero: nothing to draw on a log scale")
        lo, hi = float(nonzero.min()), float(nonzero.max())
        edges = np.geomspace(lo, hi * (1 + 1e-9) if hi > lo else lo * 10, bins + 1)
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or (edges <= 0).any() or (np.diff(edges) <= 0).any():
        raise LandscapeError("edges must be at least two increasing positive numbers")
    total = len(values)
    rows = [{**keys, "sign": "zero", "low": 0.0, "high": 0.0, "count": int((values == 0).sum())}]
    for sign, part in (("positive", magnitude[values > 0]), ("negative", magnitude[values < 0])):
        counts, _ = np.histogram(part.numpy(), bins=edges)
        low, high = int((part < edges[0]).sum()), int((part > edges[-1]).sum())
        rows.append({**keys, "sign": sign, "low": 0.0, "high": float(edges[0]), "count": low})
        rows += [
            {**keys, "sign": sign, "low": float(a), "high": float(b), "count": int(c)}
            for a, b, c in zip(edges[:-1], edges[1:], counts)
        ]
        rows.append(
            {**keys, "sign": sign, "low": float(edges[-1]), "high": math.inf, "count": high}
        )
    for row in rows:
        row["fraction"] = row["count"] / total
    return rows


# ---------------------------------------------------------------------------------------------
# The prepared problem: a private copy, its parameters, the mask's coordinates, the batches


@dataclass
class _Problem:
    model: nn.Module  # the private eval-mode copy
    names: list[str]  # parameters that require a gradient, in order
    params: list[nn.Parameter]
    masks: dict[str, torch.Tensor] | None
    active: torch.Tensor | None  # flat indices of unpruned coordinates (None: all)
    data: list[tuple[torch.Tensor, torch.Tensor]]
    count: int
    _forward_mode: bool | None = None  # whether forward-over-reverse products work

    @property
    def device(self) -> torch.device:
        return self.params[0].device

    @property
    def dtype(self) -> torch.dtype:
        return self.params[0].dtype

    @property
    def size(self) -> int:
        return sum(p.numel() for p in self.params)

    @property
    def active_count(self) -> int:
        return self.size if self.active is None else len(self.active)

    @classmethod
    def build(cls, model, data, masks, batch_size, batches) -> _Problem:
        model = as_model(model)
        batch_size = integer("batch_size", batch_size, 1)
        batches = optional_integer("batches", batches, 1)
        dtype, device = model_dtype(model), model_device(model)
        work = copy.deepcopy(model).eval()  # hooks, modes and weights stay the caller's
        named = [(n, p) for n, p in work.named_parameters() if p.requires_grad]
        if not named:
            raise LandscapeError(
                "the model has no parameters that require a gradient; the Hessian is taken "
                "with respect to those (set requires_grad=True on the ones to analyse)"
            )
        names = [n for n, _ in named]
        masks = _check_masks(model, names, masks, device)
        active = None
        if masks is not None:
            with torch.no_grad():
                for n, p in named:
                    if n in masks:
                        p.mul_(masks[n].to(p.dtype))
            flags = [
                (masks[n] if n in masks else torch.ones_like(p, dtype=torch.bool)).reshape(-1)
                for n, p in named
            ]
            active = torch.cat(flags).nonzero().squeeze(1).to(device)
            if len(active) == 0:
                raise LandscapeError("the masks prune every parameter: nothing is left to analyse")
        kept = []
        for i, (x, y) in enumerate(iter_batches(data, batch_size, device, dtype)):
            if batches is not None and i >= batches:
                break
            kept.append((x, y))
        count = sum(len(y) for _, y in kept)
        if count == 0:
            raise LandscapeError("the data is empty: the Hessian needs at least one example")
        with torch.no_grad(), forward_errors(kept[0][0]):
            check_logits(work(kept[0][0][:2]), kept[0][1][:2])
        return cls(work, names, [p for _, p in named], masks, active, kept, count)

    def operator(self):
        """curvlinops' Hessian operator over the batches (the mask's submatrix if masked)."""
        op = self.full_operator()
        if self.active is None:
            return op
        idx = self.active.tolist()
        return _curvlinops().SubmatrixLinearOperator(op, idx, idx)

    def full_operator(self):
        """The Hessian operator on every coordinate (masked weights still zero): the data's
        batches weigh ``n_b / N`` (curvlinops' ``reduction="mean"`` normalisation).

        curvlinops' products are forward-over-reverse (``jvp`` of ``jacrev``); a model with a
        layer whose backward has no forward-mode derivative (GroupNorm's, in torch 2.x)
        gets :class:`_DoubleBackwardHessian` instead, found by one product on two examples.
        """
        cls = _curvlinops().HessianLinearOperator
        if not self.forward_mode_ok():
            cls = _double_backward_class()
        return cls(
            self.model,
            nn.CrossEntropyLoss(reduction="mean"),
            self.params,
            self.data,
            num_data=self.count,
            check_deterministic=False,
        )

    def forward_mode_ok(self) -> bool:
        if self._forward_mode is None:
            x, y = self.data[0]
            op = _curvlinops().HessianLinearOperator(
                self.model,
                nn.CrossEntropyLoss(reduction="mean"),
                self.params,
                [(x[:2], y[:2])],
                check_deterministic=False,
            )
            probe = [torch.zeros(*p.shape, 1, dtype=p.dtype, device=p.device) for p in self.params]
            try:
                op._matmat_batch(x[:2], y[:2], probe)
                self._forward_mode = True
            except NotImplementedError as err:
                if "forward AD" not in str(err):
                    raise
                self._forward_mode = False
        return self._forward_mode

    def coordinates(self) -> torch.Tensor:
        """Flat indices of the variables: the unpruned coordinates, or all."""
        if self.active is not None:
            return self.active
        return torch.arange(self.size, device=self.device)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        out, start = {}, 0
        for name, p in zip(self.names, self.params):
            out[name] = flat[start : start + p.numel()].reshape(p.shape).detach().clone()
            start += p.numel()
        return out

    def result(self, flat, method, stderr=None, probes=None, trace_stderr=0.0) -> HessianDiagonal:
        return HessianDiagonal(
            diagonal=self.unflatten(flat),
            method=method,
            count=self.count,
            stderr=None if stderr is None else self.unflatten(stderr),
            probes=probes,
            masks=self.masks,
            trace_stderr=float(trace_stderr),
        )


@contextmanager
def _problem(model, data, masks, batch_size, batches) -> Iterator[_Problem]:
    yield _Problem.build(model, data, masks, batch_size, batches)


def _check_masks(model, names, masks, device) -> dict[str, torch.Tensor] | None:
    if masks is None:
        return None
    from landscape.sparse import check_masks

    check_masks(model, masks)
    frozen = sorted(set(masks) - set(names))
    if frozen:
        raise LandscapeError(
            f"masks name parameters that do not require a gradient ({', '.join(frozen)}); "
            f"the Hessian is taken only with respect to trainable parameters"
        )
    return {n: m.to(device=device, dtype=torch.bool) for n, m in masks.items()}


@functools.cache
def _double_backward_class():
    """curvlinops' Hessian operator with reverse-over-reverse products (defined on first
    use, so importing this module does not import curvlinops)."""

    class _DoubleBackwardHessian(_curvlinops().HessianLinearOperator):
        """The Hessian operator with each batch's product by double backward: the batch's
        gradient graph is built once and differentiated again for every column. Slower than
        forward-over-reverse where both work, but it needs no forward-mode derivatives."""

        def _matmat_batch(self, X, y, M):
            with torch.enable_grad():
                loss = self._loss_func(self._model_func(X), y)
                grads = torch.autograd.grad(loss, self._params, create_graph=True)
                out = [torch.zeros_like(m) for m in M]
                columns = M[0].shape[-1]
                for k in range(columns):
                    dot = sum((g * m[..., k]).sum() for g, m in zip(grads, M))
                    hv = torch.autograd.grad(
                        dot, self._params, retain_graph=k + 1 < columns, allow_unused=True
                    )
                    for o, h in zip(out, hv):
                        if h is not None:
                            o[..., k] = h
            return out

    return _DoubleBackwardHessian


# ---------------------------------------------------------------------------------------------
# The methods


def _backpack_diagonal(problem: _Problem) -> torch.Tensor:
    """BackPACK's exact ``DiagHessian`` of each batch, weighted by its size."""
    try:
        from backpack import backpack, extend
        from backpack.extensions import DiagHessian
    except ImportError as err:  # pragma: no cover - a runtime dependency
        raise LandscapeError(
            "BackPACK is not installed: pip install backpack-for-pytorch, or pass "
            "method='exact' or 'hutchinson'"
        ) from err
    if not backpack_supports(problem.model):
        raise LandscapeError(
            f"BackPACK's exact Hessian diagonal needs an nn.Sequential of the layers it "
            f"supports; {type(problem.model).__name__} is not one (normalisation layers and "
            f"residual blocks are not). Use method='exact' (small models) or 'hutchinson'"
        )
    net = extend(problem.model)  # the private copy: its hooks die with it
    loss_fn = extend(nn.CrossEntropyLoss(reduction="mean"))
    params = [p for p in net.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    for x, y in problem.data:
        loss = loss_fn(net(x), y)
        with backpack(DiagHessian()), warnings.catch_warnings(), _default_dtype(problem.dtype):
            # BackPACK's hooks fire on module outputs (no input requires a gradient): harmless
            warnings.filterwarnings("ignore", "Full backward hook is firing")
            loss.backward()
        for t, p in zip(total, params):
            t.add_(p.diag_h, alpha=len(y) / problem.count)
            p.grad = None
    flat = torch.cat([t.reshape(-1) for t in total])
    if problem.active is not None:
        keep = torch.zeros_like(flat, dtype=torch.bool)
        keep[problem.active] = True
        flat = torch.where(keep, flat, torch.zeros_like(flat))
    return flat


def _exact_diagonal(problem: _Problem, block: int) -> torch.Tensor:
    """The exact diagonal: by forward tangents for a sequential network of the layers
    :mod:`landscape.analysis._tangents` handles (GroupNorm and eval BatchNorm included), else
    by brute force, Hessian columns ``H e_i`` for every variable ``i``, ``block`` at a time
    (curvlinops multiplies a block of columns with one vmapped product per batch), keeping
    ``H_ii``."""
    layers = tangent_layers(problem.model, problem.names)
    if layers is not None:
        return tangent_diagonal(problem, layers, block)
    return _column_diagonal(problem, block)


def _column_diagonal(problem: _Problem, block: int) -> torch.Tensor:
    op = problem.full_operator()
    coords = problem.coordinates()
    flat = torch.zeros(problem.size, device=problem.device, dtype=problem.dtype)
    for start in range(0, len(coords), block):
        idx = coords[start : start + block]
        cols = torch.arange(len(idx), device=problem.device)
        m = torch.zeros(problem.size, len(idx), device=problem.device, dtype=problem.dtype)
        m[idx, cols] = 1.0
        flat[idx] = (op @ m)[idx, cols]
    return flat


def _hutchinson_diagonal(
    problem: _Problem, probes: int, block: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Hutchinson (Bekas, Kokiopoulou & Saad 2007): ``mean(v * Hv)`` over Rademacher probes
    ``v`` on the variables (zero on pruned coordinates), its per-entry standard error, and the
    trace estimate's standard error from the probes' ``v^T H v``."""
    op = problem.full_operator()
    coords = problem.coordinates()
    gen = cpu_generator(generator)
    total = torch.zeros(len(coords), dtype=torch.float64, device=problem.device)
    squares = torch.zeros_like(total)
    quad = []
    for start in range(0, probes, block):
        k = min(block, probes - start)
        signs = torch.randint(0, 2, (len(coords), k), generator=gen).to(problem.device)
        v = signs.to(problem.dtype).mul_(2).sub_(1)
        m = torch.zeros(problem.size, k, device=problem.device, dtype=problem.dtype)
        m[coords] = v
        samples = (v * (op @ m)[coords]).double()
        total += samples.sum(1)
        squares += (samples * samples).sum(1)
        quad.append(samples.sum(0))
    mean = total / probes
    flat = torch.zeros(problem.size, device=problem.device, dtype=problem.dtype)
    err = torch.zeros_like(flat)
    flat[coords] = mean.to(problem.dtype)
    quad = torch.cat(quad)
    if probes > 1:
        var = (squares - probes * mean * mean).clamp_(min=0) / (probes - 1)
        err[coords] = (var / probes).sqrt().to(problem.dtype)
        trace_stderr = float(quad.std() / math.sqrt(probes))
    else:
        err[coords] = float("inf")
        trace_stderr = float("inf")
    return flat, err, trace_stderr


@contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """torch's default dtype set to ``dtype`` for a while: BackPACK builds helper layers
    (the transposed convolution of its AvgPool derivative) in the default dtype, which fails
    on float64 models otherwise."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def _curvlinops():
    """curvlinops, imported without the deprecation warnings its dependencies raise (and
    torch's forward-mode decompositions loaded once, quietly: their first use warns that
    ``torch.jit.script`` is deprecated, which is torch's business, not the user's)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import curvlinops

        one = torch.ones(1)
        torch.func.jvp(torch.sin, (one,), (one,))
    return curvlinops


@contextmanager
def _seeded(generator: torch.Generator | None, device: torch.device) -> Iterator[None]:
    """Run library code that draws from torch's global generator with a seed drawn from
    ``generator``, restoring the global state afterwards (the caller's stream is untouched)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=cpu_generator(generator)))
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
