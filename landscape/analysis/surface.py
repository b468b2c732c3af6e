"""1-D and 2-D loss surfaces: random filter-normalised directions, and the plane of three models.

A surface is the loss and error on named data at the points

    theta(x, y) = theta_0 + x d_1 + y d_2

of a plane (or ``theta_0 + x d_1`` of a line) through a model's parameters ``theta_0``.

- Random directions (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets"):
  Gaussian, then *filter-normalised*: each output filter (a row of a Linear weight, an
  output channel of a convolution) is rescaled to the norm of the model's filter, so the
  axes mean the same for layers of any scale. Biases and normalisation parameters (1-D
  tensors) get zero (Li et al.'s ``ignore='biasbn'``), or themselves with
  ``keep_vectors=True``. With masks the directions are zero on pruned weights, so every
  point stays in the subnetwork, and the filter norms count unpruned weights only.
- The plane through three models (Garipov et al. 2018, "Loss Surfaces, Mode Connectivity,
  and Fast Ensembling of DNNs", Sec. 4): origin ``theta_a``, ``u = (theta_b - theta_a) /
  |theta_b - theta_a|``, ``v`` the unit part of ``theta_c - theta_a`` orthogonal to ``u``;
  coordinates are distances in parameter space, and each model's coordinates are returned
  so figures can mark them.

The grid is evaluated with the machinery of :func:`landscape.analysis.interpolate`: points
are processed in chunks, each batch of data serves every point of a chunk, and the first
layer's work is shared (its output at ``theta(x, y)`` is ``z_0 + x z_1 + y z_2``, three
evaluations per batch for the whole grid). BatchNorm running statistics are recomputed at
every point on ``train_data`` (``bn_reset``), as on a line.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from landscape.analysis.evaluate import (
    DEFAULT_BATCH,
    as_model,
    as_tensors,
    model_device,
    model_dtype,
)
from landscape.analysis.interpolate import (
    _bn_choice,
    _check_bn_data,
    _check_same_architecture,
    _Line,
    _tensors,
)
from landscape.checks import cpu_generator, integer, number, optional_integer
from landscape.errors import LandscapeError

NORMALIZATIONS = ("filter", "layer", "none")


@dataclass(frozen=True)
class Surface:
    """Loss and error on a grid.

    Attributes:
        xs: the coordinates along the first direction.
        ys: along the second (``None`` for a 1-D slice).
        loss: mean cross-entropy, ``loss[j][i]`` at ``(xs[i], ys[j])`` (``loss[i]`` in 1-D).
        error: fraction misclassified, laid out as ``loss``.
        bn_reset: whether BatchNorm statistics were recomputed at every point.
        count: examples evaluated at each point.
        marks: named points to draw on the surface (the three models of a plane).
    """

    xs: list[float]
    ys: list[float] | None
    loss: list
    error: list
    bn_reset: bool
    count: int
    marks: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-ready data."""
        return asdict(self)

    def rows(self, **extra: Any) -> list[dict[str, Any]]:
        """Tidy rows, one per grid point (``x``, ``y`` (2-D only), ``loss``, ``error``)."""
        if self.ys is None:
            return [
                {**extra, "x": x, "loss": lo, "error": e}
                for x, lo, e in zip(self.xs, self.loss, self.error)
            ]
        return [
            {**extra, "x": x, "y": y, "loss": self.loss[j][i], "error": self.error[j][i]}
            for j, y in enumerate(self.ys)
            for i, x in enumerate(self.xs)
        ]


@dataclass(frozen=True)
class Plane:
    """The plane through three models: ``theta(x, y) = origin + x u + y v``.

    Attributes:
        origin: model A's tensors (parameters and buffers).
        u, v: orthonormal directions over the parameters (flat Euclidean inner product).
        coordinates: ``{"a": (0, 0), "b": (|theta_b - theta_a|, 0), "c": (.., ..)}``.
    """

    origin: dict[str, torch.Tensor]
    u: dict[str, torch.Tensor]
    v: dict[str, torch.Tensor]
    coordinates: dict[str, tuple[float, float]]


def random_direction(
    model: nn.Module,
    *,
    generator: torch.Generator | None = None,
    masks: dict[str, torch.Tensor] | None = None,
    normalization: str = "filter",
    keep_vectors: bool = False,
) -> dict[str, torch.Tensor]:
    """A random direction in ``model``'s parameter space, normalised as Li et al. 2018.

    Args:
        model: the model (its parameters set the filter norms; it is not changed).
        generator: a CPU generator the Gaussian entries come from (default: seeded with 0);
            parameters are drawn in the model's order.
        masks: zero the direction on pruned weights (and count only unpruned weights in the
            norms), so the slice stays in the subnetwork.
        normalization: ``"filter"`` (each output filter to its model filter's norm),
            ``"layer"`` (each tensor to its model tensor's norm) or ``"none"``.
        keep_vectors: for 1-D tensors (biases, normalisation weights): ``False`` gives them
            zero (Li et al.'s ``ignore='biasbn'``), ``True`` the model's own values.

    Returns:
        ``{parameter name: tensor}`` on the model's device and dtype.
    """
    if normalization not in NORMALIZATIONS:
        raise LandscapeError(
            f"unknown normalization {normalization!r}; choose one of {', '.join(NORMALIZATIONS)}"
        )
    if not isinstance(keep_vectors, bool):
        raise LandscapeError(f"keep_vectors must be True or False, got {keep_vectors!r}")
    model = as_model(model)
    gen = cpu_generator(generator)
    masks = _masks(model, masks)
    out = {}
    for name, p in model.named_parameters():
        w = p.detach()
        d = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(w.device, w.dtype)
        if name in masks:
            keep = masks[name].to(w.device, w.dtype)
            w, d = w * keep, d * keep
        if p.dim() <= 1:
            out[name] = w.clone() if keep_vectors else torch.zeros_like(w)
            continue
        if normalization == "filter":
            wn = w.reshape(len(w), -1).norm(dim=1)
            dn = d.reshape(len(d), -1).norm(dim=1)
            scale = torch.where(dn > 0, wn / dn.clamp(min=1e-30), torch.zeros_like(dn))
            d = d * scale.view(-1, *([1] * (d.dim() - 1)))
        elif normalization == "layer":
            dn = d.norm()
            d = d * (w.norm() / dn if dn > 0 else 0.0)
        out[name] = d
    return out


def plane(model_a: Any, model_b: Any, model_c: Any) -> Plane:
    """The plane through three models of one architecture (Garipov et al. 2018).

    Raises:
        LandscapeError: the models differ in architecture, or lie on one line.
    """
    a, b, c = (
        as_model(m, n)
        for m, n in ((model_a, "model_a"), (model_b, "model_b"), (model_c, "model_c"))
    )
    _check_same_architecture(a, b)
    _check_same_architecture(a, c)
    device = model_device(a)
    origin = {k: t.detach().clone() for k, t in _tensors(a).items()}
    names = [n for n, _ in a.named_parameters()]
    pa = {n: t.detach().double() for n, t in a.named_parameters()}
    pb = {n: t.detach().to(device).double() for n, t in b.named_parameters()}
    pc = {n: t.detach().to(device).double() for n, t in c.named_parameters()}
    db = {n: pb[n] - pa[n] for n in names}
    dc = {n: pc[n] - pa[n] for n in names}
    nb = math.sqrt(sum(float((t * t).sum()) for t in db.values()))
    if nb == 0:
        raise LandscapeError("model_a and model_b are the same point; a plane needs three")
    u = {n: t / nb for n, t in db.items()}
    cu = sum(float((dc[n] * u[n]).sum()) for n in names)
    w = {n: dc[n] - cu * u[n] for n in names}
    nw = math.sqrt(sum(float((t * t).sum()) for t in w.values()))
    scale = max(nb, math.sqrt(sum(float((t * t).sum()) for t in dc.values())))
    # within rounding of the models' own precision of a line: no plane to speak of
    if nw <= math.sqrt(torch.finfo(model_dtype(a)).eps) * scale:
        raise LandscapeError(
            "the three models lie on one line (model_c is on the line through model_a and "
            "model_b); a plane needs three models in general position"
        )
    dtype = model_dtype(a)
    return Plane(
        origin=origin,
        u={n: t.to(dtype) for n, t in u.items()},
        v={n: (t / nw).to(dtype) for n, t in w.items()},
        coordinates={"a": (0.0, 0.0), "b": (nb, 0.0), "c": (cu, nw)},
    )


def surface(
    model: Any,
    data: Any,
    directions: Sequence[dict[str, torch.Tensor]],
    *,
    xs: Sequence[float] | None = None,
    ys: Sequence[float] | None = None,
    points: int = 21,
    span: float = 1.0,
    origin: dict[str, torch.Tensor] | None = None,
    bn_reset: bool | None = None,
    train_data: Any = None,
    batch_size: int | None = None,
    bn_batch_size: int = 128,
    point_chunk: int | None = None,
    marks: dict[str, tuple[float, ...]] | None = None,
) -> Surface:
    """Loss and error of ``model`` at the points ``theta_0 + x d_1 (+ y d_2)`` on all of
    ``data``.

    Args:
        model: the model at the origin (or a ``Run``); it is not changed.
        data: where loss and error are measured: ``(x, y)``, a Split, or batches.
        directions: one direction (a 1-D slice) or two (a 2-D surface), each ``{parameter
            name: tensor}`` (e.g. from :func:`random_direction`; parameters it leaves out
            do not move).
        xs, ys: the coordinates; default ``points`` evenly spaced in ``[-span, span]``.
        origin: the tensors at the origin instead of the model's own (a :class:`Plane`'s).
        bn_reset: recompute BatchNorm statistics at every point on ``train_data``
            (default: on for BatchNorm models, which then need ``train_data``).
        batch_size, bn_batch_size, point_chunk: as ``batch_size``, ``bn_batch_size`` and
            ``alpha_chunk`` of :func:`landscape.analysis.interpolate`.
        marks: named points to keep with the result (figures draw them).

    Returns:
        A :class:`Surface`.
    """
    model = as_model(model)
    if isinstance(directions, dict) or not isinstance(directions, Sequence):
        raise LandscapeError("directions must be a list of one or two {name: tensor} dicts")
    if len(directions) not in (1, 2):
        raise LandscapeError(f"a surface takes one or two directions, got {len(directions)}")
    if len(directions) == 1 and ys is not None:
        raise LandscapeError("ys is the second direction's: give two directions, or no ys")
    span = number("span", span, minimum=0.0, strict_minimum=True)
    xs = _coordinates("xs", xs, points, span)
    ys = _coordinates("ys", ys, points, span) if len(directions) == 2 else None
    batch_size = optional_integer("batch_size", batch_size, 1)
    bn_batch_size = integer("bn_batch_size", bn_batch_size, 1)
    point_chunk = optional_integer("point_chunk", point_chunk, 1)
    data = list(data) if isinstance(data, Iterator) else data
    train_data = list(train_data) if isinstance(train_data, Iterator) else train_data
    dirs = [_check_direction(model, d, i) for i, d in enumerate(directions)]
    bn_reset = _bn_choice(model, bn_reset, train_data)
    if bn_reset:
        _check_bn_data(train_data, bn_batch_size)
    grid = _Grid(model, dirs, origin)
    pair = as_tensors(data)
    if pair is not None and len(pair[1]) == 0:
        raise LandscapeError("cannot evaluate a surface on empty data; pass at least one example")
    if batch_size is None:
        probe = pair[0][:1].to(model_device(model), model_dtype(model)) if pair else None
        batch_size = DEFAULT_BATCH if probe is None else grid.auto_batch(probe)
    coords = [(x,) for x in xs] if ys is None else [(x, y) for y in ys for x in xs]
    chunk = point_chunk or max(1, min(len(coords), (64 << 20) // max(1, grid.size)))
    loss, error, count = grid.curves(
        coords, data, chunk, batch_size, train_data if bn_reset else None, bn_batch_size
    )
    if ys is not None:
        loss = [loss[j * len(xs) : (j + 1) * len(xs)] for j in range(len(ys))]
        error = [error[j * len(xs) : (j + 1) * len(xs)] for j in range(len(ys))]
    return Surface(xs, ys, loss, error, bn_reset, count, dict(marks or {}))


def plane_surface(
    model_a: Any,
    model_b: Any,
    model_c: Any,
    data: Any,
    *,
    points: int = 21,
    margin: float = 0.2,
    **options: Any,
) -> Surface:
    """The surface on the plane through three models (two children and their parent, or
    three tickets), on a ``points`` x ``points`` grid covering the three with ``margin``
    (a fraction of the spread) around them; their coordinates are the surface's marks.

    ``options`` go to :func:`surface` (``bn_reset``, ``train_data``, ``batch_size``, ...).
    """
    margin = number("margin", margin, minimum=0.0)
    p = plane(model_a, model_b, model_c)
    cx = [c[0] for c in p.coordinates.values()]
    cy = [c[1] for c in p.coordinates.values()]
    points = integer("points", points, 2)
    wx, wy = max(cx) - min(cx), max(cy) - min(cy)
    xs = np.linspace(min(cx) - margin * wx, max(cx) + margin * wx, points).tolist()
    ys = np.linspace(min(cy) - margin * wy, max(cy) + margin * wy, points).tolist()
    model = as_model(model_a, "model_a")
    return surface(
        model, data, [p.u, p.v], xs=xs, ys=ys, origin=p.origin, marks=p.coordinates, **options
    )


class _Grid(_Line):
    """:class:`_Line`'s evaluation at the points ``origin + sum_k c_k d_k`` of a grid: the
    first layer's output there is ``z_0 + sum_k c_k z_k``, with ``z_k`` the layer applied
    to the direction's own tensors (its weights and bias: the layer is affine in both)."""

    def __init__(self, model: nn.Module, directions: list, origin: dict | None) -> None:
        super().__init__(model, model)
        device = model_device(model)
        if origin is not None:
            if set(origin) != set(self.a) or any(
                origin[k].shape != self.a[k].shape for k in self.a
            ):
                raise LandscapeError(
                    "origin must hold every parameter and buffer of the model, in its shapes"
                )
            self.a = {k: origin[k].detach().to(device, copy=True) for k in self.a}
        self.dirs = directions
        self._matrix: torch.Tensor | None = None

    def states(self, coords):
        out = []
        for c in coords:
            state = {}
            for k, t in self.a.items():
                if t.is_floating_point():
                    t = t.clone()
                    for ck, d in zip(c, self.dirs):
                        if k in d:
                            t.add_(d[k], alpha=ck)
                else:
                    t = t.clone()
                state[k] = t
            out.append((c, state))
        return out

    def _fill(self, coords):
        with torch.no_grad():
            if self.flat is not None:  # origin + directions @ coords, in one pass
                c = torch.tensor(coords, dtype=self.flat.dtype, device=self.flat.device)
                torch.addmv(self._flat_of(self.a), self._directions(), c, out=self.flat)
                return
            for k, t in self.slots.items():
                moves = [(c, d[k]) for c, d in zip(coords, self.dirs) if k in d]
                if not t.is_floating_point() or not moves:
                    t.copy_(self.a[k])
                    continue
                torch.add(self.a[k], moves[0][1], alpha=moves[0][0], out=t)
                for c, d in moves[1:]:
                    t.add_(d, alpha=c)

    def _directions(self) -> torch.Tensor:
        """The directions as the columns of one ``(tensors, directions)`` matrix, in the
        order of :attr:`flat` (zero where a direction leaves a tensor alone)."""
        if self._matrix is None:
            columns = [
                torch.cat([d.get(k, torch.zeros_like(self.a[k])).reshape(-1) for k in self.slots])
                for d in self.dirs
            ]
            self._matrix = torch.stack(columns, dim=1)
        return self._matrix

    def _ends(self, u: torch.Tensor):
        """The first layer at the origin and applied with each direction's tensors."""
        prefix = f"{self.first}."
        layer = {k[len(prefix) :]: v for k, v in self.a.items() if k.startswith(prefix)}
        out = [self._first_out(layer, u)]
        for d in self.dirs:
            own = {name: d.get(prefix + name, torch.zeros_like(t)) for name, t in layer.items()}
            out.append(self._first_out(own, u))
        return tuple(out)

    def _mixed(self, ends, coords):
        z = torch.add(ends[0], ends[1], alpha=coords[0])
        for c, zk in zip(coords[1:], ends[2:]):
            z.add_(zk, alpha=c)
        return z

    def _mixed_stack(self, ends, coords):
        c = torch.tensor(coords, dtype=ends[0].dtype, device=ends[0].device)
        z = torch.stack(ends[1:]).reshape(len(ends) - 1, -1)
        return torch.addmm(ends[0].reshape(1, -1), c, z).view(len(coords), *ends[0].shape)

    def _stack_weights(self, coords):
        out = {}
        for name in self.plan.linears:
            for key in (f"{name}.weight", f"{name}.bias"):
                if key not in self.a:
                    continue
                base = self.a[key]
                c = torch.tensor(coords, dtype=base.dtype, device=base.device)
                z = torch.stack([d.get(key, torch.zeros_like(base)) for d in self.dirs])
                mixed = torch.addmm(base.reshape(1, -1), c, z.reshape(len(self.dirs), -1))
                out[key] = mixed.view(len(coords), *base.shape)
        return out

    def _probe_point(self):
        point = tuple(0.5 for _ in self.dirs)
        return point, self.states([point])[0][1]


def _coordinates(name: str, values, points: int, span: float) -> list[float]:
    if values is None:
        points = integer("points", points, 2)
        return np.linspace(-span, span, points).tolist()
    if isinstance(values, (str, bytes)) or not isinstance(
        values, (Sequence, np.ndarray, torch.Tensor)
    ):
        raise LandscapeError(f"{name} must be a sequence of numbers, got {values!r}")
    values = values.tolist() if hasattr(values, "tolist") else list(values)
    out = [number(f"{name}[{i}]", v) for i, v in enumerate(values)]
    if not out:
        raise LandscapeError(f"{name} is empty")
    return out


def _check_direction(model: nn.Module, d: Any, i: int) -> dict[str, torch.Tensor]:
    if not isinstance(d, dict):
        raise LandscapeError(f"direction {i} must be a dict of parameter name -> tensor")
    params = dict(model.named_parameters())
    device, dtype = model_device(model), model_dtype(model)
    out = {}
    for name, t in d.items():
        if name not in params:
            raise LandscapeError(
                f"direction {i} names {name!r}, which is not a parameter of the model; "
                f"directions move parameters only (buffers stay, or are reset)"
            )
        if not torch.is_tensor(t) or t.shape != params[name].shape:
            raise LandscapeError(
                f"direction {i}'s {name!r} must be a tensor of shape {tuple(params[name].shape)}"
            )
        if not bool(torch.isfinite(t).all()):
            raise LandscapeError(f"direction {i}'s {name!r} holds NaN or inf")
        out[name] = t.detach().to(device, dtype)
    return out


def _masks(model: nn.Module, masks) -> dict[str, torch.Tensor]:
    if masks is None:
        return {}
    from landscape.sparse import check_masks

    check_masks(model, masks)
    return {k: v.bool() for k, v in masks.items()}
