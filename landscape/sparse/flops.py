"""Forward FLOPs of a network's linear and convolutional layers, dense or under a mask.

Only the weights of prunable layers (:data:`~landscape.sparse.masks.PRUNABLE`) are counted:
a multiply and an add per active weight per output position, so ``2 x positions x active
weights`` per example. Biases, normalisation and activations are left out, as in the FLOPs
accounting of Evci et al. 2020 (RigL, Appendix H) that FreeTickets follows; they are a small,
density-independent share of a convolutional network's cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.sparse.masks import PRUNABLE, Masks, check_masks


def layer_positions(model: nn.Module, in_shape: Sequence[int]) -> dict[str, int]:
    """Output positions per example of every prunable layer, keyed by its weight's name.

    A linear layer on a vector has one position; a convolution has one per output pixel.
    A layer used twice in a forward pass counts twice. The model runs once on zeros of
    shape ``(1, *in_shape)`` in eval mode and is left as found.
    """
    if not isinstance(model, nn.Module):
        raise LandscapeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    positions: dict[str, int] = {}
    hooks = []
    for module_name, module in model.named_modules():
        if isinstance(module, PRUNABLE):
            name = f"{module_name}.weight" if module_name else "weight"
            positions[name] = 0

            def hook(mod, args, out, name=name):
                positions[name] += out.numel() // (out.shape[0] * mod.weight.shape[0])

            hooks.append(module.register_forward_hook(hook))
    param = next(model.parameters(), None)
    x = torch.zeros(
        (1, *in_shape),
        device=None if param is None else param.device,
        dtype=None if param is None else param.dtype,
    )
    training = model.training
    try:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model(x)
    finally:
        model.train(training)
        for h in hooks:
            h.remove()
    return positions


def layer_flops(
    model: nn.Module, in_shape: Sequence[int], masks: Masks | None = None
) -> dict[str, float]:
    """Forward FLOPs per example of each prunable layer: ``2 x positions x active weights``."""
    if masks is not None:
        check_masks(model, masks)
    params = dict(model.named_parameters())
    out = {}
    for name, count in layer_positions(model, in_shape).items():
        active = params[name].numel() if masks is None or name not in masks else masks[name].sum()
        out[name] = 2.0 * count * float(active)
    return out


def forward_flops(model: nn.Module, in_shape: Sequence[int], masks: Masks | None = None) -> float:
    """Forward FLOPs per example of the whole network (dense, or the subnetwork ``masks``)."""
    return float(sum(layer_flops(model, in_shape, masks).values()))
