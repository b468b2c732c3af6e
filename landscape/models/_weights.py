"""Weight initialisation shared by the CIFAR residual networks and VGGs."""

from __future__ import annotations

from torch import nn


def kaiming_init(model: nn.Module) -> None:
    """Initialise a freshly built ``model`` in place, as the ResNet reference code does.

    Convolutions get He-normal weights (fan-out, ReLU gain) and zero biases; norm layers get
    unit scales and zero shifts, following He et al. (2015), "Delving Deep into Rectifiers".
    Linear layers keep PyTorch's default. Draws from the global torch RNG.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
