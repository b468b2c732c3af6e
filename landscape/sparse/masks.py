"""Binary weight masks: which tensors are prunable, drawing, applying, saving and comparing
masks, and their density.

A mask set is a dict ``{parameter name: bool tensor of the parameter's shape}``; ``True``
keeps a weight. Density (the fraction kept) is the one word used for sparsity levels here;
a tensor without a mask is dense.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.io import atomic_write

Masks = dict[str, torch.Tensor]
PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def prunable_parameters(
    model: nn.Module, *, spare_first: bool = False, spare_output: bool = False
) -> dict[str, nn.Parameter]:
    """Weights of linear and convolutional layers, in module order.

    Biases and normalisation parameters are never prunable.

    Args:
        model: any module.
        spare_first: leave the first such layer (in ``named_modules`` order: the input
            layer of a feed-forward network) dense.
        spare_output: leave the last such layer (the classifier) dense.
    """
    if not isinstance(model, nn.Module):
        raise LandscapeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    out: dict[str, nn.Parameter] = {}
    for module_name, module in model.named_modules():
        if isinstance(module, PRUNABLE):
            name = f"{module_name}.weight" if module_name else "weight"
            out[name] = module.weight
    names = list(out)
    spared = ([names[0]] if spare_first and names else []) + (
        [names[-1]] if spare_output and names else []
    )
    return {k: v for k, v in out.items() if k not in spared}


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> nn.Module:
    """Zero the masked-out weights of ``model`` in place, and return it."""
    check_masks(model, masks)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        params[name].mul_(mask.to(params[name].device, params[name].dtype))
    return model


def check_masks(model: nn.Module, masks: Masks) -> None:
    """Every mask must name a parameter of ``model`` and have its shape.

    Raises:
        LandscapeError: a mask for another architecture, or not a tensor.
    """
    if not isinstance(masks, dict):
        raise LandscapeError(f"masks must be a dict of name -> bool tensor, got {masks!r}")
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params:
            raise LandscapeError(
                f"mask names parameter {name!r}, which the model lacks; the masks were made "
                f"for another architecture"
            )
        if not torch.is_tensor(mask) or mask.shape != params[name].shape:
            shape = tuple(mask.shape) if torch.is_tensor(mask) else type(mask).__name__
            raise LandscapeError(
                f"mask {name!r} has shape {shape} but the parameter has "
                f"{tuple(params[name].shape)}; the masks were made for another architecture"
            )


def density(masks: Masks) -> float:
    """Fraction of weights kept over all masked tensors."""
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    return kept / total if total else 1.0


def layer_density(masks: Masks) -> dict[str, float]:
    """Fraction of weights kept in each masked tensor."""
    return {name: float(m.float().mean()) if m.numel() else 1.0 for name, m in masks.items()}


def full_masks(model: nn.Module, *, spare_first: bool = False, spare_output: bool = False) -> Masks:
    """All-``True`` masks for the prunable weights (density 1): the start of pruning."""
    params = prunable_parameters(model, spare_first=spare_first, spare_output=spare_output)
    return {name: torch.ones_like(p, dtype=torch.bool) for name, p in params.items()}


def _same_keys(a: Masks, b: Masks, what: str) -> None:
    for masks in (a, b):
        if not isinstance(masks, dict) or not all(torch.is_tensor(m) for m in masks.values()):
            raise LandscapeError(f"{what} needs two mask sets (dicts of name -> bool tensor)")
    if set(a) != set(b):
        odd = sorted(set(a) ^ set(b))
        raise LandscapeError(
            f"{what}: the mask sets cover different tensors ({', '.join(odd[:4])}); compare "
            f"masks of one architecture made with the same spared layers"
        )
    for name in a:
        if a[name].shape != b[name].shape:
            raise LandscapeError(
                f"{what}: mask {name!r} has shape {tuple(a[name].shape)} in one set and "
                f"{tuple(b[name].shape)} in the other; they come from different architectures"
            )


def union(a: Masks, b: Masks) -> Masks:
    """Weights kept by either mask set."""
    _same_keys(a, b, "union")
    return {name: a[name].bool() | b[name].bool().to(a[name].device) for name in a}


def intersection(a: Masks, b: Masks) -> Masks:
    """Weights kept by both mask sets."""
    _same_keys(a, b, "intersection")
    return {name: a[name].bool() & b[name].bool().to(a[name].device) for name in a}


def hamming_distance(a: Masks, b: Masks, *, normalized: bool = True) -> float:
    """Weights kept by exactly one of the two sets; as a fraction of all masked weights when
    ``normalized`` (the mask distance of Liu et al. 2021, FreeTickets), else a count."""
    _same_keys(a, b, "hamming_distance")
    differ = sum(int((a[n].bool() ^ b[n].bool().to(a[n].device)).sum()) for n in a)
    total = sum(m.numel() for m in a.values())
    return differ / total if normalized and total else float(differ)


def jaccard_distance(a: Masks, b: Masks) -> float:
    """``1 - |a & b| / |a | b|`` over the kept weights (0 for identical sets; 0 if both
    keep nothing)."""
    _same_keys(a, b, "jaccard_distance")
    both = sum(int((a[n].bool() & b[n].bool().to(a[n].device)).sum()) for n in a)
    either = sum(int((a[n].bool() | b[n].bool().to(a[n].device)).sum()) for n in a)
    return 1.0 - both / either if either else 0.0


def save_masks(path: str | os.PathLike, masks: Masks) -> Path:
    """Write a mask set atomically, as bool CPU tensors that load with ``weights_only``."""
    if not isinstance(masks, dict) or not all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in masks.items()
    ):
        raise LandscapeError("save_masks needs a dict of parameter name -> bool tensor")
    blob = {"masks": {k: v.detach().to("cpu", torch.bool).contiguous() for k, v in masks.items()}}
    return atomic_write(path, lambda f: torch.save(blob, f))


def load_masks(path: str | os.PathLike, model: nn.Module | None = None) -> Masks:
    """Read a mask set written by :func:`save_masks` (never executing code in the file).

    Args:
        path: the file.
        model: when given, the masks are checked against it and moved to its device.
    """
    path = Path(path)
    if not path.is_file():
        raise LandscapeError(f"no mask file at {path}; write one with save_masks(path, masks)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        masks = {str(k): v.bool() for k, v in blob["masks"].items()}
    except Exception as err:  # a foreign or damaged file: one message
        raise LandscapeError(
            f"{path} is not a mask file written by save_masks ({type(err).__name__}: {err})"
        ) from None
    if model is not None:
        check_masks(model, masks)
        devices = {n: p.device for n, p in model.named_parameters()}
        masks = {n: m.to(devices[n]) for n, m in masks.items()}
    return masks


def mask_digest(masks: Masks) -> str:
    """A short content hash of a mask set, used to name runs that train under it."""
    h = hashlib.sha256()
    for name in sorted(masks):
        h.update(name.encode())
        h.update(masks[name].cpu().to(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:12]
