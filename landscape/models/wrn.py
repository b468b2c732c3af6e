"""Wide residual networks (Zagoruyko & Komodakis 2016) for CIFAR-sized images."""

from __future__ import annotations

import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.models._checks import input_shape, positive_int, probability
from landscape.models._weights import kaiming_init
from landscape.models.registry import register_model


class PreActBlock(nn.Module):
    """Pre-activation block: ``BN -> ReLU -> conv3x3 -> BN -> ReLU -> dropout -> conv3x3``.

    When the block changes shape, the shortcut is a strided 1x1 convolution applied to the
    pre-activated input (the first ``BN -> ReLU`` is shared by both branches, as in the
    WRN reference code); otherwise it is the identity on the raw input.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        stride: stride of the first convolution and of the projection.
        dropout: drop probability between the two convolutions.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W) -> (B, out_channels, ceil(H / stride), ceil(W / stride))``."""
        pre = self.relu1(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.dropout(self.relu2(self.bn2(out))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    """WRN-``depth``-``width`` of Zagoruyko & Komodakis (2016), "Wide Residual Networks".

    A 3x3 stem convolution with 16 channels; three groups of ``(depth - 4) / 6``
    pre-activation blocks with ``16k, 32k, 64k`` channels (``k = width``; groups 2 and 3
    halve the resolution); a final ``BN -> ReLU``, global average pooling and one linear
    layer. WRN-28-10 has 36,479,194 parameters for 10 classes.

    Args:
        in_channels: channels of the input images.
        num_classes: number of outputs.
        depth: total depth, ``6 n + 4`` for ``n`` blocks per group.
        width: widening factor ``k``.
        dropout: drop probability inside every block (0 disables it).

    Shapes:
        ``(B, in_channels, H, W) -> (B, num_classes)`` for any ``H, W >= 1``.
    """

    def __init__(
        self, in_channels: int, num_classes: int, depth: int, width: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        blocks_per_group = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        blocks = []
        channels = 16
        for group, base in enumerate((16, 32, 64)):
            for b in range(blocks_per_group):
                stride = 2 if group > 0 and b == 0 else 1
                blocks.append(PreActBlock(channels, base * width, stride, dropout))
                channels = base * width
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` images -> ``(B, num_classes)`` logits."""
        x = self.relu(self.bn(self.blocks(self.conv1(x))))
        return self.fc(self.flatten(self.pool(x)))


@register_model("wrn")
def wrn(
    num_classes: int,
    in_shape: tuple[int, ...],
    depth: int = 28,
    width: int = 10,
    dropout: float = 0.0,
) -> nn.Module:
    """A wide ResNet (see :class:`WideResNet`).

    Args:
        num_classes: number of outputs.
        in_shape: ``(C, H, W)`` of one image.
        depth: total depth; ``(depth - 4)`` must be a positive multiple of 6 (10, 16, 22,
            28, 40, ...).
        width: widening factor ``k`` (channels ``16k, 32k, 64k``).
        dropout: drop probability between the convolutions of each block (default 0).
    """
    shape = input_shape("wrn", in_shape, ndim=3)
    depth = positive_int("wrn", "depth", depth)
    if depth < 10 or (depth - 4) % 6:
        raise LandscapeError(
            f"wrn: depth must be 6n + 4 for some n >= 1 (10, 16, 22, 28, 40, ...), got {depth}"
        )
    width = positive_int("wrn", "width", width)
    dropout = probability("wrn", "dropout", dropout)
    return WideResNet(shape[0], num_classes, depth, width, dropout)


@register_model("wrn28-10")
def wrn28_10(num_classes: int, in_shape: tuple[int, ...], dropout: float = 0.0) -> nn.Module:
    """WRN-28-10, i.e. ``wrn`` with ``depth=28, width=10`` (36.5M parameters)."""
    return wrn(num_classes, in_shape, depth=28, width=10, dropout=dropout)
