"""Binary weight masks: which tensors are prunable, drawing masks, applying them, density.

A mask set is a dict ``{parameter name: bool tensor of the parameter's shape}``; ``True``
keeps a weight. Density (the fraction kept) is the one word used for sparsity levels here.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from landscape.checks import number
from landscape.errors import LandscapeError

Masks = dict[str, torch.Tensor]


def prunable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Weights of linear and convolutional layers (biases and norm parameters stay dense)."""
    out: dict[str, nn.Parameter] = {}
    for module_name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            name = f"{module_name}.weight" if module_name else "weight"
            out[name] = module.weight
    return out


def random_masks(model: nn.Module, density: float, generator: torch.Generator) -> Masks:
    """Uniform random masks keeping ``round(density * n)`` weights in every prunable tensor.

    Args:
        model: the model whose prunable weights get masks.
        density: fraction of weights kept in each tensor, in (0, 1].
        generator: a CPU generator; the masks are a pure function of its state.
    """
    density = number("density", density, minimum=0.0, maximum=1.0, strict_minimum=True)
    if not isinstance(generator, torch.Generator):
        raise LandscapeError(
            f"random_masks needs a torch.Generator, e.g. torch.Generator().manual_seed(0), "
            f"got {type(generator).__name__}"
        )
    masks: Masks = {}
    for name, p in prunable_parameters(model).items():
        n = p.numel()
        keep = torch.randperm(n, generator=generator)[: max(1, round(density * n))]
        flat = torch.zeros(n, dtype=torch.bool)
        flat[keep] = True
        masks[name] = flat.view_as(p).to(p.device)
    return masks


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


def mask_digest(masks: Masks) -> str:
    """A short content hash of a mask set, used to name runs that train under it."""
    h = hashlib.sha256()
    for name in sorted(masks):
        h.update(name.encode())
        h.update(masks[name].cpu().to(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:12]
