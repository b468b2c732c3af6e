"""Tiny-ImageNet (200 classes of 64x64 colour images) from its own folder layout.

Le & Yang (2015), "Tiny ImageNet Visual Recognition Challenge" (CS231n). The archive
``tiny-imagenet-200.zip`` (http://cs231n.stanford.edu/tiny-imagenet-200.zip) extracts to::

    tiny-imagenet-200/wnids.txt                       the 200 class ids
    tiny-imagenet-200/train/<wnid>/images/*.JPEG      500 training images per class
    tiny-imagenet-200/val/images/*.JPEG               10,000 labelled validation images
    tiny-imagenet-200/val/val_annotations.txt         file <tab> wnid <tab> box

The ``test`` split here is the labelled validation set (the archive's own ``test/`` has no
labels), as in the literature and in Tiny-ImageNet-C, whose images are that set corrupted.
Class ``k`` is the ``k``-th wnid in sorted order, the order Tiny-ImageNet-C uses
(:mod:`landscape.data.corrupted`), so a model trained here evaluates there directly.
Nothing downloads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from landscape.data.corrupted import TINY_IMAGENET_MEAN, TINY_IMAGENET_STD
from landscape.data.paths import DATA_ENV, data_root, default_data_root
from landscape.data.registry import DatasetInfo, register_dataset
from landscape.errors import LandscapeError

FOLDER = "tiny-imagenet-200"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
SHAPE = (64, 64, 3)
_SUFFIXES = (".jpeg", ".jpg", ".png")


@register_dataset("tiny-imagenet")
def load_tiny_imagenet(root: Path | None, split: str) -> tuple[np.ndarray, np.ndarray, DatasetInfo]:
    """Tiny-ImageNet: 100,000 training and 10,000 (validation) test images, 64x64, in [0, 1]."""
    folder = tiny_imagenet_folder(root)
    wnids = tuple(sorted(set((folder / "wnids.txt").read_text().split())))
    index = {w: k for k, w in enumerate(wnids)}
    if split == "train":
        files = []
        for wnid in wnids:
            found = _images(folder / "train" / wnid / "images")
            files += [(p, index[wnid]) for p in found]
        if not files:
            raise LandscapeError(
                f"{folder / 'train'} holds no images: expected <wnid>/images/*.JPEG"
            )
    else:
        files = _validation(folder, index)
    x = np.empty((len(files), 3, 64, 64), dtype=np.float32)
    for i, (path, _) in enumerate(files):
        x[i] = _read(path).transpose(2, 0, 1) / np.float32(255)
    y = np.asarray([label for _, label in files], dtype=np.int64)
    info = DatasetInfo(
        name="tiny-imagenet",
        num_classes=len(wnids),
        in_shape=(3, 64, 64),
        mean=TINY_IMAGENET_MEAN,
        std=TINY_IMAGENET_STD,
        classes=wnids,
        augment=("crop", "flip"),
    )
    return x, y, info


def tiny_imagenet_folder(root: str | Path | None = None) -> Path:
    """``<root>/tiny-imagenet-200``, or ``root`` itself when it is that folder; ``root``
    defaults to ``$LANDSCAPE_DATA``, else ``~/data``."""
    base = Path(root).expanduser() if root is not None else data_root() or default_data_root()
    for folder in (base / FOLDER, base):
        if (folder / "wnids.txt").is_file() and (folder / "train").is_dir():
            return folder
    raise LandscapeError(
        f"Tiny-ImageNet not found: expected {base / FOLDER}/ with wnids.txt, train/<wnid>/images/ "
        f"and val/images/ plus val/val_annotations.txt. Download {URL} and extract it in "
        f"{base}, or pass root=ROOT (or set {DATA_ENV}=ROOT) for the folder that holds {FOLDER}/."
    )


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise LandscapeError(f"{folder} not found: the archive has train/<wnid>/images/ per class")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _SUFFIXES)


def _validation(folder: Path, index: dict[str, int]) -> list[tuple[Path, int]]:
    notes = folder / "val" / "val_annotations.txt"
    if not notes.is_file():
        raise LandscapeError(
            f"{notes} not found: the test split is the labelled validation set, whose labels "
            f"are in val/val_annotations.txt"
        )
    files = []
    for number, line in enumerate(notes.read_text().splitlines(), start=1):
        cells = line.split("\t")
        if not line.strip():
            continue
        if len(cells) < 2 or cells[1] not in index:
            raise LandscapeError(
                f"{notes}, line {number}: expected 'file<TAB>wnid' with a wnid of wnids.txt, "
                f"got {line[:80]!r}"
            )
        files.append((folder / "val" / "images" / cells[0], index[cells[1]]))
    if not files:
        raise LandscapeError(f"{notes} lists no images")
    return sorted(files)


def _read(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError  # deferred; Pillow comes with torchvision

    try:
        with Image.open(path) as file:
            image = np.asarray(file.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise LandscapeError(f"{path} is not a readable image ({err})") from None
    if image.shape != SHAPE:
        raise LandscapeError(f"{path} is a {image.shape[:2]} image; Tiny-ImageNet's are 64x64")
    return image
