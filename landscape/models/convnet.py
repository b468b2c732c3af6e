"""ConvNet-D, the standard small CNN of the dataset-distillation literature."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from torch import nn

from landscape.errors import LandscapeError
from landscape.models._checks import input_shape, positive_int
from landscape.models.registry import register_model

GROUPS = 4  # groups of the "group" norm, as in the dataset-distillation reference code

NORMS: dict[str, Callable[[int], nn.Module] | None] = {
    # "instance" norm in the DD literature is GroupNorm with one channel per group: it
    # normalises each channel of each example and keeps a per-channel affine map.
    "instance": lambda c: nn.GroupNorm(c, c, affine=True),
    "group": lambda c: nn.GroupNorm(GROUPS, c, affine=True),
    "batch": lambda c: nn.BatchNorm2d(c),
    "none": None,
}


class ConvNet(nn.Sequential):
    """``depth`` blocks of ``conv3x3 -> norm -> ReLU -> avgpool2x2``, flatten, linear.

    ConvNet-D of Gidaris & Komodakis (2018) as used for dataset distillation by Zhao et al.
    (2021), "Dataset Condensation with Gradient Matching", and Cazenavette et al. (2022),
    "Dataset Distillation by Matching Training Trajectories". Convolutions keep their bias,
    as in the reference code. Layers are named ``conv1, norm1, relu1, pool1, ...``, ``out``.

    Args:
        in_shape: ``(C, H, W)`` of one image.
        num_classes: number of outputs.
        width: channels of every convolution (128 in the papers).
        depth: number of blocks; each halves the spatial size (rounding down).
        norm: ``"instance"``, ``"group"`` (``GROUPS`` groups), ``"batch"`` or ``"none"``.
        first_padding: padding of the first convolution; the reference code pads
            single-channel images by 3, which turns 28x28 MNIST into 32x32 features.

    Shapes:
        ``(B, C, H, W) -> (B, num_classes)``.
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        num_classes: int,
        width: int = 128,
        depth: int = 3,
        norm: str = "instance",
        first_padding: int = 1,
    ) -> None:
        in_channels, height, width_px = in_shape
        make_norm = NORMS[norm]
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i in range(1, depth + 1):
            padding = first_padding if i == 1 else 1
            layers[f"conv{i}"] = nn.Conv2d(in_channels, width, 3, padding=padding)
            if make_norm is not None:
                layers[f"norm{i}"] = make_norm(width)
            layers[f"relu{i}"] = nn.ReLU()
            layers[f"pool{i}"] = nn.AvgPool2d(2, stride=2)
            in_channels = width
            height = (height + 2 * padding - 2) // 2
            width_px = (width_px + 2 * padding - 2) // 2
            if height < 1 or width_px < 1:
                raise LandscapeError(
                    f"convnet: {in_shape[1]}x{in_shape[2]} images shrink to nothing after "
                    f"{i} of {depth} pooling blocks; lower depth or use larger images"
                )
        layers["flatten"] = nn.Flatten()
        layers["out"] = nn.Linear(width * height * width_px, num_classes)
        super().__init__(layers)


@register_model("convnet")
def convnet(
    num_classes: int,
    in_shape: tuple[int, ...],
    width: int = 128,
    depth: int = 3,
    norm: str = "instance",
    first_padding: int | None = None,
) -> nn.Module:
    """ConvNet-D (see :class:`ConvNet`); ``first_padding=None`` follows the reference code.

    Args:
        num_classes: number of outputs.
        in_shape: ``(C, H, W)`` of one image.
        width: channels per convolution.
        depth: number of conv/pool blocks.
        norm: one of ``"instance"`` (default), ``"group"``, ``"batch"``, ``"none"``.
        first_padding: padding of the first convolution; ``None`` means 3 for
            single-channel images and 1 otherwise, as in Zhao et al.'s code.
    """
    shape = input_shape("convnet", in_shape, ndim=3)
    width = positive_int("convnet", "width", width)
    depth = positive_int("convnet", "depth", depth)
    if not isinstance(norm, str) or norm not in NORMS:
        raise LandscapeError(f"convnet: unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    if norm == "group" and width % GROUPS:
        raise LandscapeError(
            f"convnet: norm='group' splits channels into {GROUPS} groups, so width must be a "
            f"multiple of {GROUPS}, got {width}"
        )
    if first_padding is None:
        first_padding = 3 if shape[0] == 1 else 1
    elif isinstance(first_padding, bool) or not isinstance(first_padding, int) or first_padding < 0:
        raise LandscapeError(f"convnet: first_padding must be an int >= 0, got {first_padding!r}")
    return ConvNet(shape, num_classes, width, depth, norm, first_padding)
