"""Datasets by name -> tensors plus metadata, and device-resident batch iteration.

>>> from landscape.data import get_dataset, BatchIterator
>>> train = get_dataset("cifar10", split="train")  # x: (50000, 3, 32, 32), normalised
>>> batches = BatchIterator(train, 512, augment=train.info.augment, seed=0)
"""

from __future__ import annotations

# Importing the loader modules registers their datasets.
from landscape.data import cifar, corrupted, distilled, generated, mnist, tiny_imagenet  # noqa: F401
from landscape.data.corrupted import (
    BENCHMARK_CORRUPTIONS,
    CORRUPTIONS,
    CorruptedLayout,
    available_corruptions,
    corrupted_folder,
    corrupted_layout,
    list_corrupted,
    load_corrupted,
    read_corrupted,
    save_corrupted,
)
from landscape.data.idx import parse_idx, read_idx
from landscape.data.loader import BatchIterator, epoch_seed, flip_where, random_crop
from landscape.data.registry import (
    DatasetInfo,
    Split,
    denormalize,
    get_dataset,
    is_dataset,
    list_datasets,
    normalize,
    origin_of,
    register_dataset,
    register_dataset_family,
)

__all__ = [
    "BENCHMARK_CORRUPTIONS",
    "CORRUPTIONS",
    "CorruptedLayout",
    "available_corruptions",
    "corrupted_folder",
    "corrupted_layout",
    "list_corrupted",
    "load_corrupted",
    "read_corrupted",
    "save_corrupted",
    "BatchIterator",
    "DatasetInfo",
    "Split",
    "denormalize",
    "epoch_seed",
    "flip_where",
    "get_dataset",
    "list_datasets",
    "is_dataset",
    "normalize",
    "origin_of",
    "parse_idx",
    "random_crop",
    "read_idx",
    "register_dataset",
    "register_dataset_family",
]
