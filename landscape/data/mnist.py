"""MNIST and Fashion-MNIST from local IDX files (plain or ``.gz``), never downloaded.

Fashion-MNIST: Xiao, Rasul & Vollgraf (2017), arXiv:1708.07747. Debian/Ubuntu ship it as
``apt-get install dataset-fashion-mnist`` in ``/usr/share/datasets/fashion-mnist``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landscape.data.idx import read_idx
from landscape.data.paths import DATA_ENV, cache_dir, data_root, default_data_root
from landscape.data.registry import DatasetInfo, register_dataset
from landscape.errors import LandscapeError

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DIGIT_CLASSES = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class _Source:
    """How to find one IDX dataset: sub-folder names under a root, and where else to look."""

    name: str
    subdirs: tuple[str, ...]  # tried under a root, after the root itself
    system_dirs: tuple[Path, ...]  # tried when neither ``root`` nor $LANDSCAPE_DATA is set
    classes: tuple[str, ...]
    how_to_get: str


_FASHION = _Source(
    name="fashion-mnist",
    subdirs=("fashion-mnist", "FashionMNIST/raw"),
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    classes=FASHION_CLASSES,
    how_to_get="install it with `apt-get install dataset-fashion-mnist`",
)
_MNIST = _Source(
    name="mnist",
    subdirs=("mnist", "MNIST/raw"),
    system_dirs=(),
    classes=DIGIT_CLASSES,
    how_to_get=(
        'fetch it once by hand with `python -c "import torchvision; '
        "torchvision.datasets.MNIST('~/data', download=True)\"` (it lands in ~/data/MNIST/raw)"
    ),
)


@register_dataset("fashion-mnist")
def load_fashion_mnist(root: Path | None, split: str) -> tuple[np.ndarray, np.ndarray, DatasetInfo]:
    """Fashion-MNIST: 60000/10000 grey 28x28 images of 10 kinds of clothing, in [0, 1]."""
    return _load(_FASHION, root, split)


@register_dataset("mnist")
def load_mnist(root: Path | None, split: str) -> tuple[np.ndarray, np.ndarray, DatasetInfo]:
    """MNIST: 60000/10000 grey 28x28 images of handwritten digits, in [0, 1]."""
    return _load(_MNIST, root, split)


def _load(
    source: _Source, root: Path | None, split: str
) -> tuple[np.ndarray, np.ndarray, DatasetInfo]:
    folder = _find_folder(source, root, split)
    images, y = _read_split(folder, split)
    # Computed, not hard-coded, so files a user drops in get their own statistics; on the
    # real data they match the published values (MNIST 0.1307/0.3081, Fashion-MNIST
    # 0.2860/0.3530), which the tests check.
    if split == "train":
        mean, std = _stats(images)
    else:
        # Statistics always come from the training images, which live beside the test ones.
        train_folder = _find_folder(source, root, "train")
        mean, std = _train_stats(*_fingerprint(train_folder))
    info = DatasetInfo(
        name=source.name,
        num_classes=len(source.classes),
        in_shape=(1, 28, 28),
        mean=(mean,),
        std=(std,),
        classes=source.classes,
        augment=(),
    )
    x = images.astype(np.float32)[:, None]  # (N, 1, 28, 28)
    x /= 255.0
    return x, y, info


def _candidates(source: _Source, root: Path | None) -> list[Path]:
    """Folders to search, in order: ``root`` (or ``$LANDSCAPE_DATA``) and its sub-folders;
    with neither, the system package folder, ``~/data`` sub-folders and the cache."""
    root = root if root is not None else data_root()
    if root is None:
        home = [default_data_root() / s for s in source.subdirs]
        return [*source.system_dirs, *home, cache_dir() / source.name]
    return [root, *(root / s for s in source.subdirs)]


def _find_folder(source: _Source, root: Path | None, split: str) -> Path:
    candidates = _candidates(source, root)
    for folder in candidates:
        if all(_file(folder, stem) is not None for stem in _FILES[split]):
            return folder
    names = ", ".join(f"{stem}[.gz]" for stem in _FILES[split])
    where = ", ".join(str(c) for c in candidates)
    raise LandscapeError(
        f"{source.name} ({split}) not found: looked for {names} in {where}. "
        f"To get it, {source.how_to_get}; or put the four IDX files in a folder ROOT and pass "
        f"root=ROOT or set {DATA_ENV}=ROOT."
    )


def _file(folder: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64, checked against each other."""
    image_path, label_path = (_file(folder, stem) for stem in _FILES[split])
    images, labels = read_idx(image_path), read_idx(label_path)
    if (
        images.dtype != np.uint8
        or images.ndim != 3
        or images.shape[1:] != (28, 28)
        or not len(images)
    ):
        raise LandscapeError(
            f"{image_path} holds {images.dtype} of shape {images.shape}; expected uint8 "
            f"images of shape (N, 28, 28) with N > 0"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
        raise LandscapeError(
            f"{label_path} holds {labels.dtype} of shape {labels.shape}; expected "
            f"{len(images)} uint8 labels to match {image_path}"
        )
    return images, labels.astype(np.int64)


def _stats(images: np.ndarray) -> tuple[float, float]:
    """Exact mean and std of uint8 images scaled to [0, 1], from a 256-bin histogram (no
    float copy of the 47M pixels)."""
    flat = images.ravel()
    chunk = 1 << 22  # bincount casts to int64; chunks keep that copy small
    counts = np.zeros(256, dtype=np.float64)
    for start in range(0, flat.size, chunk):
        counts += np.bincount(flat[start : start + chunk], minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    mean = counts @ values / counts.sum()
    var = counts @ (values - mean) ** 2 / counts.sum()
    return float(mean), float(np.sqrt(var))


def _fingerprint(folder: Path) -> tuple[str, int, int]:
    path = _file(folder, _FILES["train"][0])
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=8)
def _train_stats(path: str, size: int, mtime_ns: int) -> tuple[float, float]:
    """Mean/std of a training-image file, memoised on (path, size, mtime) within a process."""
    del size, mtime_ns  # part of the cache key only: a replaced file is re-read
    return _stats(read_idx(path))
