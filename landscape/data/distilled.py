"""Synthetic training sets from dataset distillation, as the datasets ``distilled:<key>``.

A synthetic set lives in ``<root>/<key>/``::

    synthetic.pt   {"images": float32 (M, *stored shape), "labels": int64 (M,),
                    "factor": int}; loaded with ``weights_only=True``
    spec.json      what made it: method, IPC, factor, source dataset (name and root), ...

``<key>`` is a hash of the spec that made the set, so a set is named by how it was made,
like a run. ``root`` is the folder holding such sets: ``DataSpec.root`` when given, else
``<runs root>/distilled`` (``$LANDSCAPE_RUNS`` or ``./runs``). The ``train`` split is the
decoded synthetic set; the ``test`` split is the source dataset's real test split, so a
network trained on the synthetic set is evaluated on real data.

Images are stored in raw input space (the source's ``[0, 1]`` scale; the optimisation may
leave it), so ``get_dataset`` normalises them with the source's statistics like real data.
With multi-formation (Kim et al. 2022, IDC) each stored image holds ``factor x factor``
tiles at lower resolution, and decoding upsamples every tile to the full size: one stored
image yields ``factor**2`` training images.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from landscape.checks import integer
from landscape.data.paths import runs_root
from landscape.data.registry import DatasetInfo, get_dataset, register_dataset_family
from landscape.errors import LandscapeError
from landscape.io import atomic_write, read_json, write_json

PREFIX = "distilled"


def distilled_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding synthetic sets: ``root``, else ``<$LANDSCAPE_RUNS or runs>/distilled``."""
    return Path(root).expanduser() if root is not None else runs_root() / "distilled"


def decode(images: torch.Tensor, labels: torch.Tensor, factor: int) -> tuple[torch.Tensor, ...]:
    """Multi-formation decoding (Kim et al. 2022): split each image into ``factor`` tiles
    along every spatial axis and upsample each tile back to the full size.

    Differentiable in ``images``, so distillation optimises the stored images through it.

    Args:
        images: ``(M, C, *spatial)`` with one or two spatial axes, each divisible by
            ``factor``.
        labels: ``(M,)``.
        factor: tiles per spatial axis; 1 returns the inputs unchanged.

    Returns:
        ``(M * factor**d, C, *spatial)`` images and their ``(M * factor**d,)`` labels, where
        ``d`` is the number of spatial axes; tiles of one image are consecutive.
    """
    factor = integer("formation factor", factor, 1)
    if factor == 1:
        return images, labels
    spatial = tuple(images.shape[2:])
    if len(spatial) not in (1, 2) or any(s % factor for s in spatial):
        raise LandscapeError(
            f"multi-formation with factor {factor} needs 1 or 2 spatial axes divisible by it; "
            f"images have shape {tuple(images.shape[1:])}"
        )
    m, c = images.shape[:2]
    if len(spatial) == 1:
        (length,) = spatial
        tiles = images.reshape(m, c, factor, length // factor).permute(0, 2, 1, 3)
        tiles = tiles.reshape(m * factor, c, length // factor)
        mode = "linear"
    else:
        h, w = spatial
        tiles = images.reshape(m, c, factor, h // factor, factor, w // factor)
        tiles = tiles.permute(0, 2, 4, 1, 3, 5).reshape(m * factor**2, c, h // factor, w // factor)
        mode = "bilinear"
    out = F.interpolate(tiles, size=spatial, mode=mode, align_corners=False)
    return out, labels.repeat_interleave(factor ** len(spatial))


def save_distilled(
    folder: str | os.PathLike,
    images: torch.Tensor,
    labels: torch.Tensor,
    factor: int,
    record: dict[str, Any],
) -> Path:
    """Write a synthetic set into ``folder`` (tensors first, then ``spec.json``, each
    atomically, so a folder with ``spec.json`` always holds a whole set).

    Args:
        folder: ``<root>/<key>``.
        images: stored images in raw input space, ``(M, *stored shape)``.
        labels: ``(M,)`` int64.
        factor: the multi-formation factor (1: none).
        record: JSON-ready description; must name ``source`` as ``{"name", "root"}``.
    """
    folder = Path(folder)
    blob = {
        "images": images.detach().to("cpu", torch.float32).contiguous(),
        "labels": labels.detach().to("cpu", torch.int64).contiguous(),
        "factor": int(factor),
    }
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "synthetic.pt", lambda f: torch.save(blob, f))
    write_json(folder / "spec.json", record)
    return folder


def load_synthetic(folder: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, int, dict]:
    """The stored images, labels, factor and record of the synthetic set in ``folder``."""
    folder = Path(folder)
    spec_path, blob_path = folder / "spec.json", folder / "synthetic.pt"
    if not spec_path.is_file() or not blob_path.is_file():
        raise LandscapeError(
            f"no synthetic set in {folder} (expected spec.json and synthetic.pt); make it "
            f"with `landscape distill` or landscape.train.distill.distill, or give the folder "
            f"that holds it as the data root"
        )
    record = read_json(spec_path)
    try:
        blob = torch.load(blob_path, map_location="cpu", weights_only=True)
        images, labels, factor = blob["images"], blob["labels"], int(blob["factor"])
    except Exception as err:  # any unreadable or foreign file: one message
        raise LandscapeError(
            f"{blob_path} is not a synthetic set this package wrote ({type(err).__name__}: "
            f"{err}); make it again with `landscape distill`"
        ) from None
    if not isinstance(record, dict) or not isinstance(record.get("source"), dict):
        raise LandscapeError(f"{spec_path} does not name its source dataset; make the set again")
    return images, labels, factor, record


@register_dataset_family(PREFIX)
def load_distilled(
    key: str, root: Path | None, split: str
) -> tuple[np.ndarray, np.ndarray, DatasetInfo]:
    """``distilled:<key>``: the decoded synthetic set (train) or the source's test split."""
    folder = distilled_root(root) / key
    images, labels, factor, record = load_synthetic(folder)
    source = record["source"]
    real = get_dataset(source["name"], source.get("root"), split="test", normalize=False)
    info = replace(real.info, name=f"{PREFIX}:{key}")
    if split == "test":
        return real.x.numpy(), real.y.numpy(), info
    x, y = decode(images, labels, factor)
    if tuple(x.shape[1:]) != info.in_shape:
        raise LandscapeError(
            f"the synthetic set in {folder} decodes to examples of shape "
            f"{tuple(x.shape[1:])}, but its source {source['name']!r} has {info.in_shape}"
        )
    return x.numpy(), y.numpy(), info
