"""Fully connected classifiers: a configurable MLP and LeNet-300-100."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from landscape.errors import LandscapeError
from landscape.models._checks import positive_int
from landscape.models.registry import register_model


class MLP(nn.Sequential):
    """Flatten, then ``Linear -> ReLU`` per hidden layer, then a linear classifier.

    A flat ``nn.Sequential`` of standard layers, so per-layer tools (BackPACK, curvlinops,
    pruning masks) see every layer. Parameter names are ``fc1.weight``, ``fc2.weight``, ...,
    ``out.weight``.

    Args:
        in_features: length of one flattened example, ``prod(in_shape)``.
        widths: hidden layer sizes, first to last; empty gives a linear (softmax) classifier.
        num_classes: number of outputs.

    Shapes:
        ``(B, *in_shape) -> (B, num_classes)``.
    """

    def __init__(self, in_features: int, widths: Sequence[int], num_classes: int) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        fan_in = in_features
        for i, width in enumerate(widths, start=1):
            layers[f"fc{i}"] = nn.Linear(fan_in, width)
            layers[f"relu{i}"] = nn.ReLU()
            fan_in = width
        layers["out"] = nn.Linear(fan_in, num_classes)
        super().__init__(layers)


def _widths(value: object) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise LandscapeError(
            f"mlp: widths must be a sequence of ints such as (100,), got {value!r}"
        )
    return tuple(positive_int("mlp", "widths[i]", w) for w in value)


@register_model("mlp")
def mlp(num_classes: int, in_shape: tuple[int, ...], widths: Sequence[int] = (100,)) -> nn.Module:
    """A ReLU MLP on the flattened input.

    Args:
        num_classes: number of outputs.
        in_shape: shape of one example; any shape, it is flattened.
        widths: hidden layer sizes, e.g. ``(100,)`` (default) or ``(300, 100)``.
    """
    return MLP(math.prod(in_shape), _widths(widths), num_classes)


@register_model("lenet300-100")
def lenet300_100(num_classes: int, in_shape: tuple[int, ...]) -> nn.Module:
    """LeNet-300-100: flatten -> 300 -> 100 -> ``num_classes`` with ReLU.

    The fully connected network of LeCun et al. (1998), "Gradient-based learning applied to
    document recognition", as used for MNIST lottery tickets by Frankle & Carbin (2019),
    "The Lottery Ticket Hypothesis". On MNIST (``(1, 28, 28)``, 10 classes) it has
    266,610 parameters.
    """
    return MLP(math.prod(in_shape), (300, 100), num_classes)
