"""The small 1-D CNN of MNIST-1D (Greydanus 2020)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from landscape.errors import LandscapeError
from landscape.models._checks import input_shape, positive_int
from landscape.models.registry import register_model

# (kernel, stride, padding) of the three convolutions of the MNIST-1D reference CNN.
_LAYERS = ((5, 2, 1), (3, 2, 1), (3, 2, 1))


class Conv1dNet(nn.Sequential):
    """Three strided ``Conv1d -> ReLU`` layers, flatten, one linear classifier.

    The CNN of Greydanus (2020), "Scaling down deep learning" (MNIST-1D): kernels 5, 3, 3,
    all with stride 2 and padding 1, ``channels`` filters each. On a length-40 signal the
    feature lengths are 19, 10, 5, so the classifier sees ``5 * channels`` features and
    the model has 5,210 parameters at ``channels=25`` and 10 classes.

    Args:
        in_shape: ``(C, L)``, channels and length of one signal.
        num_classes: number of outputs.
        channels: filters per convolution.

    Shapes:
        ``(B, C, L) -> (B, num_classes)``.
    """

    def __init__(self, in_shape: tuple[int, int], num_classes: int, channels: int = 25) -> None:
        in_channels, length = in_shape
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (kernel, stride, padding) in enumerate(_LAYERS, start=1):
            layers[f"conv{i}"] = nn.Conv1d(in_channels, channels, kernel, stride, padding)
            layers[f"relu{i}"] = nn.ReLU()
            in_channels = channels
            length = (length + 2 * padding - kernel) // stride + 1
            if length < 1:
                raise LandscapeError(
                    f"conv1d: a signal of length {in_shape[1]} is too short for three stride-2 "
                    "convolutions; use signals of length >= 3 or another model (mlp)"
                )
        layers["flatten"] = nn.Flatten()
        layers["out"] = nn.Linear(channels * length, num_classes)
        super().__init__(layers)


@register_model("conv1d")
def conv1d(num_classes: int, in_shape: tuple[int, ...], channels: int = 25) -> nn.Module:
    """The MNIST-1D CNN (see :class:`Conv1dNet`); ``in_shape`` is ``(C, L)``, e.g. ``(1, 40)``."""
    shape = input_shape("conv1d", in_shape, ndim=2)
    return Conv1dNet(shape, num_classes, positive_int("conv1d", "channels", channels))
