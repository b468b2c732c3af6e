"""The exact Hessian diagonal of a sequential network by forward tangents, without
Hessian-vector products.

For a network ``f = f_K o ... o f_1`` and a parameter ``theta_p`` of layer ``l``, the second
derivative of the loss along ``e_p`` is the second-order chain rule

    H_pp = sum_n [ t_n^T S_n t_n + sum_{m > l} delta_{m,n} . (u'_{m,n}^T (d^2 f_m) u'_{m,n}) ],

where ``u'_m = d u_m / d theta_p`` is the forward tangent at layer ``m``'s input,
``delta_m`` the gradient of the loss at its output, ``t = u'_{K+1}`` the tangent of the
logits and ``S = diag(p) - p p^T`` the Hessian of cross-entropy in the logits. Layer ``l``'s
own term is zero (every supported layer is linear in its own parameters), and so are the terms
of layers linear in their input (convolutions, linear maps, pooling, eval BatchNorm) or
piecewise linear (ReLU, LeakyReLU). Tanh and the sigmoid add ``delta . f''(u) t^2``
elementwise, GroupNorm a closed form per group of ``m`` entries (below). One diagonal entry
therefore costs one forward tangent through the layers *above* its own, with the primal
activations cached once per batch: no reverse pass, no work below the layer, and a block of
columns travels together as one batch.

GroupNorm, per example and group, ``x_hat = (u - mean u) / sigma`` with
``sigma^2 = var u + eps`` (biased variance) and ``d = gamma * delta`` (the gradient at
``x_hat``): with ``a = d . x_hat / m`` and ``h = d - mean d - a x_hat``,

    d^2 (d . x_hat) / du^2 = (1 / sigma^2) [ -a I + (a/m) (1 1^T + x_hat x_hat^T)
                                             - (x_hat h^T + h x_hat^T) / m ],

and the tangent map is ``du -> gamma * (du - mean du - x_hat (x_hat . du) / m) / sigma``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

#: Elements of one block's tangents at their widest layer. Small enough that the allocator
#: reuses memory rather than mapping fresh pages for every intermediate (glibc maps blocks
#: over 32 MiB anew each time, and those page faults cost more than the arithmetic).
TANGENT_ELEMENTS = 2**22

_CONVS = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d}
_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.MaxPool1d, nn.MaxPool2d)
_PASS = (nn.Identity, nn.Dropout)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_SMOOTH = (nn.Tanh, nn.Sigmoid)  # elementwise, with a second derivative
_SIMPLE = (nn.Linear, nn.GroupNorm, nn.ReLU, nn.LeakyReLU, nn.Flatten, *_SMOOTH, *_POOLS, *_PASS)


def sequential_layers(model: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The layers of a plain ``nn.Sequential`` (nested ones flattened) with their qualified
    names, or ``None`` if this method does not handle the model: a layer of another kind (a
    subclass with its own forward included), a module or parameter used twice (shared
    activations, tied weights), a parametrization or a hook."""
    layers = _layers(model, "")
    if layers is None or shares(model):
        return None
    return layers


def shares(model: nn.Module) -> bool:
    """Whether a module or a parameter of ``model`` is used in two places (a shared
    activation, tied weights): per-layer methods would count it once."""
    modules, params = [], []

    def walk(module: nn.Module) -> None:
        modules.append(module)
        params.extend(module._parameters.values())
        for child in module._modules.values():
            if child is not None:
                walk(child)

    walk(model)
    params = [p for p in params if p is not None]
    return len({id(m) for m in modules}) < len(modules) or len({id(p) for p in params}) < len(
        params
    )


def _layers(model: nn.Module, prefix: str) -> list[tuple[str, nn.Module]] | None:
    if type(model).forward is not nn.Sequential.forward or hooked(model):
        return None
    out = []
    for name, module in model._modules.items():  # repeats too: a shared module counts twice
        qualified = f"{prefix}{name}"
        if isinstance(module, nn.Sequential):
            inner = _layers(module, qualified + ".")
            if inner is None:
                return None
            out.extend(inner)
        elif module is not None and _supported(module) and not hooked(module):
            out.append((qualified, module))
        else:
            return None
    return out or None


def hooked(module: nn.Module) -> bool:
    """Whether ``module`` runs hooks or parametrizations around its own forward."""
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or getattr(module, "parametrizations", None)
    )


def tangent_layers(model: nn.Module, names: list[str]) -> list[tuple[str, nn.Module]] | None:
    """The layers :func:`tangent_diagonal` runs on, or ``None`` where it does not apply:
    :func:`sequential_layers`, and every variable (``names``) one of their own parameters."""
    layers = sequential_layers(model)
    if layers is None:
        return None
    own = {f"{n}.{p}" for n, m in layers for p, _ in m.named_parameters(recurse=False)}
    return layers if set(names) <= own else None


def _supported(module: nn.Module) -> bool:
    kind = type(module)  # exact types: a subclass may compute something else
    if kind in _CONVS:
        return module.groups == 1 and module.padding_mode == "zeros"
    if kind in _NORMS:
        return module.running_mean is not None  # eval mode uses the running statistics
    return kind in _SIMPLE


def tangent_diagonal(problem, layers: list[tuple[str, nn.Module]], block: int) -> torch.Tensor:
    """The exact diagonal of ``problem``'s Hessian (a ``_Problem``; ``layers`` from
    :func:`tangent_layers` on its model), as a flat vector over ``problem.params``; zero
    outside the mask's coordinates."""
    offsets, start = {}, 0
    for name, p in zip(problem.names, problem.params):
        offsets[name] = start
        start += p.numel()
    coords = problem.coordinates()
    flat = torch.zeros(problem.size, device=problem.device, dtype=problem.dtype)
    with torch.no_grad():
        for x, y in problem.data:
            cache = _forward(layers, x, y)
            for index, (name, module) in enumerate(layers):
                step = max(1, min(block, TANGENT_ELEMENTS // _widest(cache, index)))
                for pname, param in module.named_parameters(recurse=False):
                    full = f"{name}.{pname}"
                    if full not in offsets:
                        continue  # frozen: not a variable
                    lo = offsets[full]
                    mine = coords[(coords >= lo) & (coords < lo + param.numel())] - lo
                    for s in range(0, len(mine), step):
                        cols = mine[s : s + step]
                        tangent = _seed(module, pname, cols, cache, index)
                        flat[lo + cols] += _propagate(layers, cache, index + 1, tangent)
    return flat / problem.count


@dataclass
class _Cache:
    inputs: list[torch.Tensor]  # each layer's input; inputs[-1] the logits
    extra: dict[int, dict[str, torch.Tensor]]  # per layer: masks, indices, norm statistics
    probs: torch.Tensor  # softmax of the logits


def _forward(layers, x: torch.Tensor, y: torch.Tensor) -> _Cache:
    """Primal activations, per-layer quantities of the tangent maps, and the curved layers'
    second-order coefficients (one backward pass of the summed per-example losses gives
    the gradients at their outputs)."""
    inputs, extra, outputs = [x], {}, {}
    with torch.enable_grad():
        h = x
        for i, (_, module) in enumerate(layers):
            curved = isinstance(module, (nn.GroupNorm, *_SMOOTH))
            if curved and not h.requires_grad:  # frozen layers below: start the graph here
                h = h.detach().requires_grad_(True)
            if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d)):
                out, idx = _max_pool(module, h)
                extra[i] = {"indices": idx}
            elif isinstance(module, nn.ReLU):  # never in place: a curved layer's output
                out = F.relu(h)  # below must keep its value for the gradient taken at it
            elif isinstance(module, nn.LeakyReLU):
                out = F.leaky_relu(h, module.negative_slope)
            else:
                out = module(h)
            if curved:
                outputs[i] = out
            if isinstance(module, nn.GroupNorm):
                extra[i] = _group_stats(module, h.detach())
            elif isinstance(module, nn.ReLU):
                extra[i] = {"slope": (h > 0).to(h.dtype)}
            elif isinstance(module, nn.LeakyReLU):
                slope = torch.full_like(h, module.negative_slope)
                extra[i] = {"slope": torch.where(h > 0, torch.ones_like(h), slope)}
            elif isinstance(module, _NORMS):
                extra[i] = _batch_norm_stats(module, h.detach())
            elif isinstance(module, _SMOOTH):
                extra[i] = _smooth_derivatives(module, out.detach())
            inputs.append(out)
            h = out
        if outputs:
            loss = F.cross_entropy(h, y, reduction="sum")
            grads = torch.autograd.grad(loss, list(outputs.values()))
            for (i, stats), g in zip(((i, extra[i]) for i in outputs), grads):
                if isinstance(layers[i][1], nn.GroupNorm):
                    _group_residual(layers[i][1], stats, g)
                else:  # sum_n delta . f''(u) t^2: fold delta into the curvature
                    stats["curvature"] = stats["curvature"] * g.detach()
    inputs = [t.detach() for t in inputs]
    return _Cache(inputs, extra, torch.softmax(inputs[-1], dim=1))


def _smooth_derivatives(module: nn.Module, out: torch.Tensor) -> dict[str, torch.Tensor]:
    """``f'`` and ``f''`` of tanh and the logistic sigmoid, from their output."""
    if isinstance(module, nn.Tanh):
        slope = 1 - out * out
        return {"slope": slope, "curvature": -2 * out * slope}
    slope = out * (1 - out)
    return {"slope": slope, "curvature": slope * (1 - 2 * out)}


def _widest(cache: _Cache, index: int) -> int:
    """Elements per column of the largest tangent from layer ``index`` up (its output, the
    layers above, the logits)."""
    return max(1, *(t.numel() for t in cache.inputs[index + 1 :]))


def _max_pool(module, h):
    fn = F.max_pool1d if isinstance(module, nn.MaxPool1d) else F.max_pool2d
    return fn(
        h,
        module.kernel_size,
        module.stride,
        module.padding,
        module.dilation,
        ceil_mode=module.ceil_mode,
        return_indices=True,
    )


def _group_stats(module: nn.GroupNorm, u: torch.Tensor) -> dict[str, torch.Tensor]:
    n, groups = u.shape[0], module.num_groups
    z = u.reshape(n, groups, -1)
    mean = z.mean(-1, keepdim=True)
    sigma = torch.sqrt(((z - mean) ** 2).mean(-1, keepdim=True) + module.eps)
    return {"xhat": (z - mean) / sigma, "sigma": sigma}


def _group_residual(module: nn.GroupNorm, stats: dict, grad_out: torch.Tensor) -> None:
    """Adds ``a`` and ``h`` (module docstring) from the gradient at GroupNorm's output."""
    n, groups = grad_out.shape[0], module.num_groups
    d = grad_out.detach()
    if module.weight is not None:
        d = d * _channel_view(module.weight, d.dim())
    d = d.reshape(n, groups, -1)
    xhat = stats["xhat"]
    a = (d * xhat).mean(-1, keepdim=True)
    stats["a"] = a
    stats["h"] = d - d.mean(-1, keepdim=True) - a * xhat


def _batch_norm_stats(module, u: torch.Tensor) -> dict[str, torch.Tensor]:
    inv = torch.rsqrt(module.running_var + module.eps)
    scale = inv if module.weight is None else module.weight * inv
    xhat = (u - _channel_view(module.running_mean, u.dim())) * _channel_view(inv, u.dim())
    return {"scale": _channel_view(scale, u.dim()), "xhat": xhat}


def _channel_view(v: torch.Tensor, dims: int) -> torch.Tensor:
    return v.reshape(1, -1, *([1] * (dims - 2)))


def _seed(module, pname: str, cols: torch.Tensor, cache: _Cache, index: int):
    """The tangents of layer ``index``'s output along the unit vectors of its parameter
    ``pname`` at flat positions ``cols``: shape ``(len(cols), *output shape)``."""
    u, out, b = cache.inputs[index], cache.inputs[index + 1], len(cols)
    if type(module) in _CONVS:
        if pname == "bias":
            channel, value = cols, None
        else:
            per_out = module.weight[0].numel()
            channel, within = cols // per_out, cols % per_out
            kernel = torch.zeros(b, per_out, device=u.device, dtype=u.dtype)
            kernel[torch.arange(b), within] = 1.0
            kernel = kernel.reshape(b, *module.weight.shape[1:])
            value = _CONVS[type(module)](
                u, kernel, None, module.stride, module.padding, module.dilation
            ).transpose(0, 1)  # (b, N, *spatial)
        return _place(value, channel, out)
    if isinstance(module, nn.Linear):
        if pname == "bias":
            channel, value = cols, None
        else:
            channel, within = cols // module.in_features, cols % module.in_features
            value = u[..., within].movedim(-1, 0)  # (b, N, ...)
        return _place_last(value, channel, out)
    # GroupNorm / BatchNorm affine parameters: the tangent of the weight is x_hat's channel
    value = None
    if pname != "bias":
        value = cache.extra[index]["xhat"].reshape(u.shape)[:, cols].transpose(0, 1)
    return _place(value, cols, out)


def _place(value, channel: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(b, *like.shape)`` zeros with ``value[j]`` (or ones) in channel ``channel[j]``
    (dimension 1 of ``like``) of column ``j``."""
    out = like.new_zeros(len(channel), *like.shape)
    rows = torch.arange(len(channel), device=like.device)
    out[rows, :, channel] = 1.0 if value is None else value
    return out


def _place_last(value, channel: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """As :func:`_place`, for the last dimension (a linear layer's features)."""
    out = like.new_zeros(len(channel), *like.shape)
    rows = torch.arange(len(channel), device=like.device)
    out[rows, ..., channel] = 1.0 if value is None else value
    return out


def _propagate(layers, cache: _Cache, start: int, tangent: torch.Tensor) -> torch.Tensor:
    """Carries a block of tangents ``(b, N, ...)`` from layer ``start`` to the logits and
    returns each column's ``sum_n`` of the second-order terms met on the way."""
    b, n = tangent.shape[:2]
    total = torch.zeros(b, device=tangent.device, dtype=tangent.dtype)
    t = tangent.flatten(0, 1)  # (b * N, ...): the block rides in the batch dimension
    for i in range(start, len(layers)):
        module = layers[i][1]
        extra = cache.extra.get(i)
        if type(module) in _CONVS:
            t = _CONVS[type(module)](
                t, module.weight, None, module.stride, module.padding, module.dilation
            )
        elif isinstance(module, nn.Linear):
            t = t @ module.weight.T
        elif isinstance(module, nn.GroupNorm):
            t, term = _group_tangent(module, extra, t, b, n)
            total += term
        elif isinstance(module, _NORMS):
            t = t.mul_(extra["scale"])
        elif isinstance(module, _SMOOTH):
            u = t.unflatten(0, (b, n))
            total += torch.einsum("bn...,n...,bn...->b", u, extra["curvature"], u)
            t = u.mul_(extra["slope"]).flatten(0, 1)
        elif isinstance(module, (nn.ReLU, nn.LeakyReLU)):
            t = t.unflatten(0, (b, n)).mul_(extra["slope"]).flatten(0, 1)
        elif isinstance(module, (nn.MaxPool1d, nn.MaxPool2d)):
            idx = extra["indices"]
            flat = t.flatten(2).unflatten(0, (b, n))
            picked = flat.gather(3, idx.flatten(2).expand(b, *idx.flatten(2).shape))
            t = picked.reshape(b * n, *idx.shape[1:])
        elif isinstance(module, (nn.AvgPool1d, nn.AvgPool2d, nn.Flatten)):
            t = module(t)
        # Identity and Dropout (eval) pass the tangent through
    t = t.unflatten(0, (b, n))  # (b, N, classes)
    p = cache.probs
    total += ((p * t * t).sum(-1) - (p * t).sum(-1) ** 2).sum(1)
    return total


def _group_tangent(module: nn.GroupNorm, stats, t, b, n):
    """GroupNorm's tangent map (in place on ``t``) and each column's second-order term
    (module docstring)."""
    shape = t.shape
    z = t.reshape(b, n, module.num_groups, -1)
    m = z.shape[-1]
    xhat, inv, a, h = stats["xhat"], 1.0 / stats["sigma"], stats["a"], stats["h"]
    s1 = z.sum(-1, keepdim=True)
    sx = torch.einsum("bngm,ngm->bng", z, xhat).unsqueeze(-1)
    sh = torch.einsum("bngm,ngm->bng", z, h).unsqueeze(-1)
    s2 = torch.einsum("bngm,bngm->bng", z, z).unsqueeze(-1)
    term = (-a * s2 + (a / m) * (s1 * s1 + sx * sx) - 2.0 * sx * sh / m) * (inv * inv)
    # in place: tangents are the block's own, and fresh tensors of this size cost page faults
    z.mul_(inv).sub_(s1 * (inv / m)).addcmul_(xhat * inv, sx / m, value=-1.0)
    out = z.reshape(shape)
    if module.weight is not None:
        out.mul_(_channel_view(module.weight, out.dim()))
    return out, term.sum(dim=(1, 2, 3))
