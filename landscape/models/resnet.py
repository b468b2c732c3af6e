"""ResNet-20 for CIFAR-sized images (He et al. 2016), with a width multiplier."""

from __future__ import annotations

import torch
from torch import nn

from landscape.models._checks import input_shape, positive_float, scaled
from landscape.models._weights import kaiming_init
from landscape.models.registry import register_model


class BasicBlock(nn.Module):
    """``conv3x3 -> BN -> ReLU -> conv3x3 -> BN``, plus the shortcut, then ReLU.

    The shortcut is the identity when shape is kept, else a strided ``conv1x1 -> BN``
    projection (He et al.'s option B).

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        stride: stride of the first convolution and of the projection.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W) -> (B, out_channels, ceil(H / stride), ceil(W / stride))``."""
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """The CIFAR ResNet of He et al. (2016), "Deep Residual Learning for Image Recognition".

    A 3x3 stem convolution, three stages of ``blocks`` basic blocks with ``16, 32, 64``
    channels (times ``width``; stages 2 and 3 halve the resolution), global average pooling
    and one linear layer. Depth is ``6 * blocks + 2``. Downsampling shortcuts are 1x1
    convolutions with BatchNorm (option B), not the parameter-free zero-padding of option A,
    so ResNet-20 at width 1 has 272,474 parameters for 10 classes.

    Args:
        in_channels: channels of the input images.
        num_classes: number of outputs.
        blocks: basic blocks per stage (3 for ResNet-20).
        width: channel multiplier; stage widths are ``round(16 * width)`` etc.

    Shapes:
        ``(B, in_channels, H, W) -> (B, num_classes)`` for any ``H, W >= 1``.
    """

    def __init__(self, in_channels: int, num_classes: int, blocks: int = 3, width: float = 1):
        super().__init__()
        widths = [scaled(c, width) for c in (16, 32, 64)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        stages = []
        channels = widths[0]
        for stage, out_channels in enumerate(widths):
            for b in range(blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                stages.append(BasicBlock(channels, out_channels, stride))
                channels = out_channels
        self.blocks = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` images -> ``(B, num_classes)`` logits."""
        x = self.relu(self.bn1(self.conv1(x)))
        return self.fc(self.flatten(self.pool(self.blocks(x))))


@register_model("resnet20")
def resnet20(num_classes: int, in_shape: tuple[int, ...], width: float = 1) -> nn.Module:
    """ResNet-20 for CIFAR (see :class:`CifarResNet`); option-B (1x1 conv + BN) shortcuts.

    Args:
        num_classes: number of outputs.
        in_shape: ``(C, H, W)`` of one image, e.g. ``(3, 32, 32)``.
        width: channel multiplier (stage widths ``16w, 32w, 64w``), e.g. 4 or 0.5.
    """
    shape = input_shape("resnet20", in_shape, ndim=3)
    return CifarResNet(shape[0], num_classes, 3, positive_float("resnet20", "width", width))
