"""CIFAR-10 and CIFAR-100 read through torchvision from a local root (md5-checked, no download).

Krizhevsky (2009), "Learning Multiple Layers of Features from Tiny Images". torchvision reads
the python-pickle batches (``cifar-10-batches-py/``, ``cifar-100-python/``) after checking
their md5 sums, so only the official files are unpickled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from landscape.data.paths import DATA_ENV, data_root, default_data_root
from landscape.data.registry import DatasetInfo, register_dataset
from landscape.errors import LandscapeError

# The standard per-channel statistics of the CIFAR training images scaled to [0, 1], as
# used throughout the literature (e.g. the pytorch-cifar and timm recipes).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


@register_dataset("cifar10")
def load_cifar10(root: Path | None, split: str) -> tuple[np.ndarray, np.ndarray, DatasetInfo]:
    """CIFAR-10: 50000/10000 colour 32x32 images in 10 classes, in [0, 1]."""
    return _load("cifar10", 10, root, split, CIFAR10_MEAN, CIFAR10_STD)


@register_dataset("cifar100")
def load_cifar100(root: Path | None, split: str) -> tuple[np.ndarray, np.ndarray, DatasetInfo]:
    """CIFAR-100: 50000/10000 colour 32x32 images in 100 fine classes, in [0, 1]."""
    return _load("cifar100", 100, root, split, CIFAR100_MEAN, CIFAR100_STD)


def _load(
    name: str,
    num_classes: int,
    root: Path | None,
    split: str,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> tuple[np.ndarray, np.ndarray, DatasetInfo]:
    from torchvision import datasets  # deferred: torchvision's import is slow

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    root = root if root is not None else data_root() or default_data_root()
    try:
        ds = cls(str(root), train=split == "train", download=False)
    except RuntimeError as err:
        raise LandscapeError(
            f"{name} not found or corrupted in {root / cls.base_folder} ({err}). Fetch it "
            f'once by hand with `python -c "import torchvision; torchvision.datasets.'
            f"{cls.__name__}('{root}', download=True)\"`, or pass root=ROOT (or set "
            f"{DATA_ENV}=ROOT) for a folder that holds {cls.base_folder}/."
        ) from None
    # torchvision keeps (N, 32, 32, 3) uint8; models want (N, 3, 32, 32) in [0, 1].
    x = np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)).astype(np.float32) / 255.0
    y = np.asarray(ds.targets, dtype=np.int64)
    info = DatasetInfo(
        name=name,
        num_classes=num_classes,
        in_shape=(3, 32, 32),
        mean=mean,
        std=std,
        classes=tuple(ds.classes),
        augment=("crop", "flip"),
    )
    return x, y, info
