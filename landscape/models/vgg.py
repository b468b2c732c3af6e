"""VGG-11 and VGG-16 for CIFAR-sized images, with BatchNorm and one linear classifier."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.models._checks import input_shape, positive_float, scaled
from landscape.models._weights import kaiming_init
from landscape.models.registry import register_model

POOL = "M"

# Configurations "A" (VGG-11) and "D" (VGG-16) of Simonyan & Zisserman (2015), Table 1:
# output channels of each 3x3 convolution, POOL for a 2x2 max-pool.
CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL),
    "vgg16": (
        *(64, 64, POOL, 128, 128, POOL),
        *(256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512, POOL),
    ),
}


class VGG(nn.Module):
    """A VGG feature stack, global average pooling and one linear layer.

    The CIFAR adaptation of Simonyan & Zisserman (2015), "Very Deep Convolutional Networks
    for Large-Scale Image Recognition": each 3x3 convolution is followed by BatchNorm (when
    ``batch_norm``) and ReLU, and the three large fully connected layers are replaced by
    a single ``512 -> num_classes`` linear layer. Convolutions followed by BatchNorm have no
    bias (BN's shift makes it redundant). Max-pools round up (``ceil_mode``), so inputs
    smaller than 32x32, e.g. 28x28 MNIST, still reach the classifier with >= 1x1 features.

    Args:
        config: channels per convolution and ``"M"`` for each max-pool (see ``CONFIGS``).
        in_channels: channels of the input images.
        num_classes: number of outputs.
        batch_norm: put BatchNorm after every convolution.
        width: channel multiplier; each convolution has ``round(channels * width)``.

    Shapes:
        ``(B, in_channels, H, W) -> (B, num_classes)`` for any ``H, W >= 1``.
    """

    def __init__(
        self,
        config: Sequence[int | str],
        in_channels: int,
        num_classes: int,
        batch_norm: bool = True,
        width: float = 1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for item in config:
            if item == POOL:
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                continue
            out_channels = scaled(int(item), width)
            layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU())
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_channels, num_classes)
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` images -> ``(B, num_classes)`` logits."""
        return self.fc(self.flatten(self.pool(self.features(x))))


def _vgg(
    name: str, num_classes: int, in_shape: tuple[int, ...], batch_norm: bool, width: float
) -> VGG:
    shape = input_shape(name, in_shape, ndim=3)
    if not isinstance(batch_norm, bool):
        raise LandscapeError(f"{name}: batch_norm must be True or False, got {batch_norm!r}")
    width = positive_float(name, "width", width)
    return VGG(CONFIGS[name], shape[0], num_classes, batch_norm, width)


@register_model("vgg11")
def vgg11(
    num_classes: int, in_shape: tuple[int, ...], batch_norm: bool = True, width: float = 1
) -> nn.Module:
    """VGG-11 (configuration "A": 8 convolutions, 5 max-pools); see :class:`VGG`.

    Args:
        num_classes: number of outputs.
        in_shape: ``(C, H, W)`` of one image.
        batch_norm: BatchNorm after every convolution (default True).
        width: channel multiplier (1 gives 64 ... 512 channels).
    """
    return _vgg("vgg11", num_classes, in_shape, batch_norm, width)


@register_model("vgg16")
def vgg16(
    num_classes: int, in_shape: tuple[int, ...], batch_norm: bool = True, width: float = 1
) -> nn.Module:
    """VGG-16 (configuration "D": 13 convolutions, 5 max-pools); see :class:`VGG`.

    Args:
        num_classes: number of outputs.
        in_shape: ``(C, H, W)`` of one image.
        batch_norm: BatchNorm after every convolution (default True).
        width: channel multiplier (1 gives 64 ... 512 channels).
    """
    return _vgg("vgg16", num_classes, in_shape, batch_norm, width)
