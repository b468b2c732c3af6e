"""The published corrupted test sets (CIFAR-10-C, CIFAR-100-C, Tiny-ImageNet-C) from local roots.

Hendrycks & Dietterich (2019), "Benchmarking Neural Network Robustness to Common Corruptions
and Perturbations", ICLR. Nothing downloads; the files come from Zenodo:

- ``CIFAR-10-C/`` (https://zenodo.org/record/2535967) and ``CIFAR-100-C/``
  (https://zenodo.org/record/3555552): ``<corruption>.npy``, uint8 ``(5 * N, 32, 32, 3)``
  holding severities 1..5 one after the other (rows ``0 .. N-1`` are severity 1, ``N = 10000``
  test images), and ``labels.npy`` ``(5 * N,)`` (the test labels, repeated per severity).
- ``Tiny-ImageNet-C/`` (https://zenodo.org/record/2536630):
  ``<corruption>/<severity>/<wnid>/*.JPEG``, 64x64 colour images of the Tiny-ImageNet
  validation set. Class ``k`` is the ``k``-th wnid in sorted order (torchvision's
  ``ImageFolder`` order, which Hendrycks' own evaluation code uses), taken from
  ``wnids.txt`` when one lies in ``Tiny-ImageNet-C/`` or in ``tiny-imagenet-200/`` beside it,
  else from the folder names of the severity being read.

Each ``(corruption, severity)`` is the dataset ``<name>:<corruption>:<severity>``, e.g.
``get_dataset("cifar10-c:gaussian_noise:3", root, split="test")``; it has only a test split.
Inputs are normalised with the *clean* training set's statistics, so a model trained on
``cifar10`` evaluates on ``cifar10-c:...`` directly. A ``.npy`` file is memory-mapped, so one
severity is read without loading the other four. :func:`save_corrupted` writes the ``.npy``
format for any image size (``landscape corrupt`` uses it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.data.cifar import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD
from landscape.data.paths import DATA_ENV, data_root, default_data_root
from landscape.data.registry import (
    DatasetInfo,
    Split,
    get_dataset,
    register_dataset_family,
)
from landscape.errors import LandscapeError
from landscape.io import atomic_write

#: The 15 benchmark corruptions of Hendrycks & Dietterich (2019), then the 4 extra ones
#: they hold out for validation, in the order of their paper and files.
CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
    "speckle_noise",
    "gaussian_blur",
    "spatter",
    "saturate",
)
BENCHMARK_CORRUPTIONS = CORRUPTIONS[:15]
EXTRA_CORRUPTIONS = CORRUPTIONS[15:]
SEVERITIES = (1, 2, 3, 4, 5)
LABELS_FILE = "labels.npy"

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
# The fine label names of CIFAR-100's ``meta`` file, in label order (alphabetical).
CIFAR100_CLASSES = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch
    crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
    keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse
    mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
    porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper
    snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television
    tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split()
)
# Tiny-ImageNet's training statistics as the field uses them (e.g. tjmoon0104's
# pytorch-tiny-imagenet recipe); the clean set is landscape.data.tiny_imagenet's.
TINY_IMAGENET_MEAN = (0.4802, 0.4481, 0.3975)
TINY_IMAGENET_STD = (0.2302, 0.2265, 0.2262)
_IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


@dataclass(frozen=True)
class CorruptedLayout:
    """How one published corrupted test set is laid out on disk.

    Attributes:
        name: the dataset family, e.g. ``"cifar10-c"``.
        folder: the folder under a data root, e.g. ``"CIFAR-10-C"``.
        clean: the clean dataset whose models it tests, e.g. ``"cifar10"``.
        storage: ``"npy"`` (``<corruption>.npy`` + ``labels.npy``) or ``"images"``
            (``<corruption>/<severity>/<wnid>/*.JPEG``).
        image_shape: one stored image, ``(H, W, C)``.
        mean: per-channel mean of the clean training images in [0, 1].
        std: per-channel standard deviation of the clean training images.
        classes: label names; empty when they come from the files (Tiny-ImageNet's wnids).
        url: where to download it.
    """

    name: str
    folder: str
    clean: str
    storage: str
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    url: str

    @property
    def in_shape(self) -> tuple[int, int, int]:
        """One model input, ``(C, H, W)``."""
        h, w, c = self.image_shape
        return (c, h, w)

    def describe(self, folder: Path) -> str:
        """What files the layout expects in ``folder``, in words."""
        if self.storage == "npy":
            return f"{folder}/<corruption>.npy and {folder}/{LABELS_FILE}"
        return f"{folder}/<corruption>/<severity 1-5>/<wnid>/*.JPEG"


_LAYOUTS = {
    layout.name: layout
    for layout in (
        CorruptedLayout(
            name="cifar10-c",
            folder="CIFAR-10-C",
            clean="cifar10",
            storage="npy",
            image_shape=(32, 32, 3),
            mean=CIFAR10_MEAN,
            std=CIFAR10_STD,
            classes=CIFAR10_CLASSES,
            url="https://zenodo.org/record/2535967",
        ),
        CorruptedLayout(
            name="cifar100-c",
            folder="CIFAR-100-C",
            clean="cifar100",
            storage="npy",
            image_shape=(32, 32, 3),
            mean=CIFAR100_MEAN,
            std=CIFAR100_STD,
            classes=CIFAR100_CLASSES,
            url="https://zenodo.org/record/3555552",
        ),
        CorruptedLayout(
            name="tiny-imagenet-c",
            folder="Tiny-ImageNet-C",
            clean="tiny-imagenet",
            storage="images",
            image_shape=(64, 64, 3),
            mean=TINY_IMAGENET_MEAN,
            std=TINY_IMAGENET_STD,
            classes=(),
            url="https://zenodo.org/record/2536630",
        ),
    )
}


def list_corrupted() -> list[str]:
    """Names of the corrupted test sets :func:`load_corrupted` reads."""
    return list(_LAYOUTS)


def corrupted_layout(name: str) -> CorruptedLayout:
    """The on-disk layout of the corrupted test set ``name`` (``"cifar10-c"``, ...).

    Raises:
        LandscapeError: ``name`` is not one of :func:`list_corrupted`.
    """
    if not isinstance(name, str) or name not in _LAYOUTS:
        raise LandscapeError(
            f"unknown corrupted test set {name!r}; valid names are: {', '.join(_LAYOUTS)}"
        )
    return _LAYOUTS[name]


def check_corruption(corruption: Any) -> str:
    """``corruption`` if it is one of the 19 :data:`CORRUPTIONS`, else a LandscapeError."""
    if not isinstance(corruption, str) or corruption not in CORRUPTIONS:
        raise LandscapeError(
            f"unknown corruption {corruption!r}; valid names are: {', '.join(CORRUPTIONS)}"
        )
    return corruption


def check_severity(severity: Any) -> int:
    """``severity`` as an int in 1..5 (a digit string such as ``"3"`` too)."""
    if isinstance(severity, str) and severity.isdigit():
        severity = int(severity)
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)):
        raise LandscapeError(f"severity must be a whole number in 1..5, got {severity!r}")
    if int(severity) not in SEVERITIES:
        raise LandscapeError(f"severity must be one of 1, 2, 3, 4, 5, got {int(severity)}")
    return int(severity)


def corrupted_folder(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder holding the set ``name``: ``<root>/<layout.folder>``, or ``root`` itself
    when it is that folder; ``root`` defaults to ``$LANDSCAPE_DATA``, else ``~/data``.

    Raises:
        LandscapeError: neither holds the set; the message says what goes where.
    """
    layout = corrupted_layout(name)
    base = Path(root).expanduser() if root is not None else data_root() or default_data_root()
    for folder in (base / layout.folder, base):
        if _holds(layout, folder):
            return folder
    expected = base / layout.folder
    raise LandscapeError(
        f"{layout.folder} not found: expected {layout.describe(expected)}. Download "
        f"{layout.folder}.tar from {layout.url} and extract it in {base} (so that {expected} "
        f"exists), or pass root=ROOT (or set {DATA_ENV}=ROOT) for the folder that holds "
        f"{layout.folder}/."
    )


def _holds(layout: CorruptedLayout, folder: Path) -> bool:
    if layout.storage == "npy":
        return (folder / LABELS_FILE).is_file()
    return folder.is_dir() and any((folder / c).is_dir() for c in CORRUPTIONS)


def available_corruptions(name: str, root: str | os.PathLike | None = None) -> tuple[str, ...]:
    """The corruptions present for the set ``name`` in ``root``, in :data:`CORRUPTIONS` order.

    Raises:
        LandscapeError: the set's folder is not there (see :func:`corrupted_folder`).
    """
    layout = corrupted_layout(name)
    folder = corrupted_folder(name, root)
    if layout.storage == "npy":
        return tuple(c for c in CORRUPTIONS if (folder / f"{c}.npy").is_file())
    return tuple(c for c in CORRUPTIONS if (folder / c).is_dir())


def load_corrupted(
    name: str,
    corruption: str,
    severity: int,
    root: str | os.PathLike | None = None,
    *,
    normalize: bool = True,
) -> Split:
    """One corruption at one severity of a published corrupted test set.

    Same as ``get_dataset(f"{name}:{corruption}:{severity}", root, split="test")``.

    Args:
        name: ``"cifar10-c"``, ``"cifar100-c"`` or ``"tiny-imagenet-c"``.
        corruption: one of the 19 :data:`CORRUPTIONS`.
        severity: 1..5.
        root: the folder holding ``CIFAR-10-C/`` (etc.), or that folder itself; ``None``:
            ``$LANDSCAPE_DATA``, else ``~/data``.
        normalize: standardise with the clean training set's mean/std (as models trained
            on it expect); ``False`` gives raw inputs in [0, 1].

    Returns:
        The split: ``x`` float32 ``(N, C, H, W)``, ``y`` int64 ``(N,)``, ``origin``
        ``"<name>:<corruption>:<severity>/test"``.

    Raises:
        LandscapeError: unknown name, corruption or severity; missing or malformed files.
    """
    layout = corrupted_layout(name)
    key = f"{check_corruption(corruption)}:{check_severity(severity)}"
    return get_dataset(f"{layout.name}:{key}", root, split="test", normalize=normalize)


def read_corrupted(
    folder: str | os.PathLike, corruption: str, severity: int
) -> tuple[np.ndarray, np.ndarray]:
    """One severity of ``<folder>/<corruption>.npy`` (the CIFAR-10-C format, any image size),
    memory-mapped so that only its rows are read.

    Returns:
        Images uint8 ``(N, H, W, C)`` and labels int64 ``(N,)`` (rows ``(s-1) N .. s N - 1``
        of the files).

    Raises:
        LandscapeError: a file is missing, unreadable or of the wrong shape.
    """
    hint = "write it with landscape.data.save_corrupted or `landscape corrupt`"
    return _read_npy(Path(folder), check_corruption(corruption), check_severity(severity), hint)


def _read_npy(
    folder: Path, corruption: str, severity: int, hint: str, image_shape: tuple | None = None
) -> tuple[np.ndarray, np.ndarray]:
    path, labels_path = folder / f"{corruption}.npy", folder / LABELS_FILE
    for p in (labels_path, path):
        if not p.is_file():
            present = ", ".join(c for c in CORRUPTIONS if (folder / f"{c}.npy").is_file())
            raise LandscapeError(
                f"{p} not found (present: {present or 'no corruption files'}); {hint}"
            )
    images, labels = _open_npy(path, hint), _open_npy(labels_path, hint)
    shape = (
        "(5 * N, H, W, C)"
        if image_shape is None
        else f"(5 * N, {', '.join(map(str, image_shape))})"
    )
    if (
        images.dtype != np.uint8
        or images.ndim != 4
        or not len(images)
        or len(images) % len(SEVERITIES)
        or (image_shape is not None and images.shape[1:] != tuple(image_shape))
    ):
        raise LandscapeError(
            f"{path} holds {images.dtype} of shape {images.shape}; expected uint8 images of "
            f"shape {shape}, severities 1..5 one after the other; {hint}"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(images):
        raise LandscapeError(
            f"{labels_path} holds {labels.dtype} of shape {labels.shape}; expected "
            f"{len(images)} integer labels to match {path}; {hint}"
        )
    n = len(images) // len(SEVERITIES)
    rows = slice((severity - 1) * n, severity * n)
    return np.array(images[rows]), np.asarray(labels[rows], dtype=np.int64)


def _open_npy(path: Path, hint: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise LandscapeError(f"{path} is not a readable .npy array ({err}); {hint}") from None


def _read_images(
    layout: CorruptedLayout, folder: Path, corruption: str, severity: int, hint: str
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Images ``(N, H, W, C)`` uint8, labels ``(N,)`` and the wnids of one severity folder."""
    from PIL import Image, UnidentifiedImageError  # deferred; Pillow comes with torchvision

    where = folder / corruption / str(severity)
    if not where.is_dir():
        present = ", ".join(c for c in CORRUPTIONS if (folder / c).is_dir())
        raise LandscapeError(
            f"{where} not found (corruptions present: {present or 'none'}); expected "
            f"{where}/<wnid>/*.JPEG; {hint}"
        )
    found = sorted(p.name for p in where.iterdir() if p.is_dir())
    listed, wnids_path = _wnids(folder)
    wnids = listed or tuple(found)
    unknown = sorted(set(found) - set(wnids))
    if unknown:
        raise LandscapeError(
            f"{where} has class folders {unknown[:4]} that {wnids_path} does not list; use "
            f"the wnids.txt of the same Tiny-ImageNet release, or remove it to index the folders"
        )
    images, labels = [], []
    for label, wnid in enumerate(wnids):
        files = sorted(p for p in (where / wnid).glob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
        for p in files:
            try:
                with Image.open(p) as file:
                    image = np.asarray(file.convert("RGB"))
            except (UnidentifiedImageError, OSError) as err:
                raise LandscapeError(f"{p} is not a readable image ({err}); {hint}") from None
            if image.shape != layout.image_shape:
                raise LandscapeError(
                    f"{p} is a {image.shape[:2]} image; {layout.folder} holds "
                    f"{layout.image_shape[:2]} images; {hint}"
                )
            images.append(image)
            labels.append(label)
    if not images:
        raise LandscapeError(f"{where} holds no images (expected <wnid>/*.JPEG); {hint}")
    return np.stack(images), np.asarray(labels, dtype=np.int64), wnids


def _wnids(folder: Path) -> tuple[tuple[str, ...], Path | None]:
    """Sorted wnids from ``wnids.txt`` in ``folder`` or in ``tiny-imagenet-200/`` beside it,
    and that file; ``((), None)`` when there is none."""
    for path in (folder / "wnids.txt", folder.parent / "tiny-imagenet-200" / "wnids.txt"):
        if path.is_file():
            return tuple(sorted(set(path.read_text().split()))), path
    return (), None


def _family(layout: CorruptedLayout):
    def load(key: str, root: Path | None, split: str) -> tuple[np.ndarray, np.ndarray, DatasetInfo]:
        corruption, _, severity = key.partition(":")
        if not severity:
            raise LandscapeError(
                f"{layout.name}:{key} names no severity; use {layout.name}:<corruption>:<1-5>, "
                f"e.g. {layout.name}:gaussian_noise:3"
            )
        corruption, severity = check_corruption(corruption), check_severity(severity)
        name = f"{layout.name}:{corruption}:{severity}"
        if split != "test":
            raise LandscapeError(
                f"{name} has only a test split (the corrupted test images); train on "
                f"{layout.clean!r} and evaluate with split='test'"
            )
        folder = corrupted_folder(layout.name, root)
        hint = f"download {layout.folder}.tar again from {layout.url}"
        classes = layout.classes
        if layout.storage == "npy":
            images, y = _read_npy(folder, corruption, severity, hint, layout.image_shape)
        else:
            images, y, classes = _read_images(layout, folder, corruption, severity, hint)
        images = images.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        info = DatasetInfo(
            name=name,
            num_classes=len(classes),
            in_shape=layout.in_shape,
            mean=layout.mean,
            std=layout.std,
            classes=classes,
            augment=("crop", "flip"),
        )
        x = np.ascontiguousarray(images).astype(np.float32)
        x /= 255.0
        return x, y, info

    return load


for _layout in _LAYOUTS.values():
    register_dataset_family(_layout.name, "<corruption>:<severity>")(_family(_layout))


def save_corrupted(
    folder: str | os.PathLike,
    corruption: str,
    images_by_severity: Any,
    labels: Any,
) -> Path:
    """Write one corruption in the CIFAR-10-C format: ``<folder>/<corruption>.npy`` and,
    once, ``<folder>/labels.npy``; each file atomically.

    Args:
        folder: the set's folder (e.g. ``.../CIFAR-10-C``); made if missing.
        corruption: one of the 19 :data:`CORRUPTIONS`.
        images_by_severity: uint8 ``(5, N, H, W, C)`` (numpy or torch), or a list of five
            ``(N, H, W, C)`` arrays for severities 1..5.
        labels: ``(N,)`` integer labels of the clean images; stored repeated per severity,
            as uint8 when they fit (as in the published files).

    Returns:
        The path of ``<corruption>.npy``.

    Raises:
        LandscapeError: bad name, shapes or dtypes, or a ``labels.npy`` already in ``folder``
            that holds other labels (nothing is written then).
    """
    corruption = check_corruption(corruption)
    stack = _severity_stack(images_by_severity)
    n = len(stack[0])
    labels = _as_numpy(labels, "labels")
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != n:
        raise LandscapeError(
            f"labels must be {n} integer class indices (one per image of a severity), got "
            f"{labels.dtype} of shape {labels.shape}"
        )
    if n and labels.min() < 0:
        raise LandscapeError(f"labels must be >= 0, got {int(labels.min())}")
    repeated = np.tile(labels.astype(np.int64), len(SEVERITIES))
    folder = Path(folder)
    labels_path = folder / LABELS_FILE
    if labels_path.is_file():
        old = _open_npy(labels_path, f"remove it or write to another folder than {folder}")
        if old.shape != repeated.shape or not np.array_equal(old, repeated):
            raise LandscapeError(
                f"{labels_path} holds other labels ({old.shape[0]} rows) than these "
                f"({len(repeated)} = 5 x {n}): the folder holds another test set; write to "
                f"a fresh folder"
            )
    else:
        small = repeated.max(initial=0) < 256
        stored = repeated.astype(np.uint8 if small else np.int64)
        atomic_write(labels_path, lambda f: np.save(f, stored, allow_pickle=False))
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
        "fortran_order": False,
        "shape": (len(SEVERITIES) * n, *stack[0].shape[1:]),
    }

    def write(f: Any) -> None:  # header, then each severity's bytes: no 5x copy in memory
        np.lib.format.write_array_header_1_0(f, header)
        for images in stack:
            f.write(memoryview(np.ascontiguousarray(images)).cast("B"))

    return atomic_write(folder / f"{corruption}.npy", write)


def _severity_stack(images: Any) -> list[np.ndarray]:
    if isinstance(images, (list, tuple)):
        stack = [_as_numpy(a, f"images of severity {s}") for s, a in enumerate(images, 1)]
    else:
        array = _as_numpy(images, "images_by_severity")
        stack = list(array) if array.ndim == 5 else [array]
    shapes = {a.shape for a in stack}
    if (
        len(stack) != len(SEVERITIES)
        or len(shapes) != 1
        or stack[0].ndim != 4
        or not len(stack[0])
        or any(a.dtype != np.uint8 for a in stack)
    ):
        got = sorted({(str(a.dtype), a.shape) for a in stack})
        raise LandscapeError(
            f"images_by_severity must be uint8 of shape (5, N, H, W, C) or five (N, H, W, C) "
            f"arrays with N > 0, one per severity 1..5; got {len(stack)} of {got} (convert "
            f"[0, 1] floats with (x * 255).to(torch.uint8), channels last, as corrupt() does)"
        )
    return stack


def _as_numpy(a: Any, what: str) -> np.ndarray:
    if torch.is_tensor(a):
        return a.detach().cpu().numpy()
    if isinstance(a, np.ndarray):
        return a
    if isinstance(a, Sequence) and not isinstance(a, str):
        return np.asarray(a)
    raise LandscapeError(f"{what} must be a numpy array or a tensor, got {type(a).__name__}")
