"""Corrupt a whole test split and write it in the CIFAR-10-C format (``landscape corrupt``).

Each corruption becomes ``<corruption>.npy``: uint8 ``(5 * N, H, W, C)``, severity-major
(rows ``0..N-1`` are severity 1), beside one ``labels.npy`` ``(5 * N,)``, so that anything
that reads CIFAR-10-C (Hendrycks & Dietterich 2019) reads ours. Images are corrupted in
chunks of :data:`CHUNK` with one generator per (seed, corruption, severity, chunk), so a
file is the same whatever else is written beside it and on whatever device it is made.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from landscape.corruptions.core import corrupt, get_corruption
from landscape.data import Split
from landscape.data.corrupted import save_corrupted
from landscape.errors import LandscapeError

CHUNK = 1000


def chunk_seed(seed: int, corruption: str, severity: int, chunk: int) -> int:
    """The generator seed of one chunk: a pure function of its coordinates."""
    key = f"landscape-corrupt:{seed}:{corruption}:{severity}:{chunk}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") & (2**63 - 1)


def as_uint8_images(split: Split, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The split's raw images as uint8 ``(N, C, H, W)`` and its labels."""
    x, y = split.x, split.y
    if limit is not None:
        x, y = x[:limit], y[:limit]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise LandscapeError(
            f"image corruptions need images (N, C, H, W) with 1 or 3 channels; "
            f"{split.info.name} has inputs of shape {tuple(x.shape[1:])}"
        )
    if float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise LandscapeError(
            f"{split.info.name}'s inputs are normalised; load the split with "
            f"get_dataset(..., normalize=False) so the images lie in [0, 1]"
        )
    return (x * 255).round().to(torch.uint8), y


def corrupt_split(
    split: Split,
    out: str | os.PathLike,
    corruptions: Sequence[str],
    *,
    seed: int = 0,
    table: str = "auto",
    limit: int | None = None,
    device: torch.device | None = None,
    progress: bool | None = None,
) -> list[Path]:
    """Write every corruption of ``split`` at severities 1-5 under ``out``; returns the files.

    Args:
        split: a test split loaded with ``normalize=False`` (images in [0, 1]).
        out: the folder (created if needed).
        corruptions: names from :data:`~landscape.corruptions.CORRUPTIONS`.
        seed: the seed of every random draw.
        table: the parameter table (``"auto"`` chooses it from the image size).
        limit: only the first ``limit`` images.
        device: where to corrupt (CPU by default).
        progress: a tqdm bar over corruptions; default only on a terminal.
    """
    for name in corruptions:
        get_corruption(name)  # an unknown name fails before anything is written
    images, labels = as_uint8_images(split, limit)
    device = torch.device("cpu") if device is None else device
    written = []
    bar = tqdm(corruptions, disable=None if progress is None else not progress, desc="corrupt")
    for name in bar:
        severities = []
        for severity in range(1, 6):
            parts = []
            for i, start in enumerate(range(0, len(images), CHUNK)):
                generator = torch.Generator().manual_seed(chunk_seed(seed, name, severity, i))
                batch = images[start : start + CHUNK].to(device)
                parts.append(corrupt(batch, name, severity, table, generator).cpu())
            severities.append(torch.cat(parts).permute(0, 2, 3, 1).numpy())
        written.append(save_corrupted(out, name, np.stack(severities), labels.numpy()))
    return written
