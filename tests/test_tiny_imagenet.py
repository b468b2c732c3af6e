"""Tiny-ImageNet from a fabricated copy of its folder layout (wnids.txt, train/, val/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from landscape.data import get_dataset
from landscape.errors import LandscapeError


def write_tiny_imagenet(root: Path, wnids=("n03", "n01"), per_class: int = 3, size: int = 64):
    """Training images of flat colour ``10 * (class + 1) + k`` (class = sorted wnid order);
    validation images ``val_<i>.JPEG`` of colour ``100 + class``, listed out of order."""
    folder = root / "tiny-imagenet-200"
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    lines = []
    for c, wnid in enumerate(sorted(wnids)):
        images = folder / "train" / wnid / "images"
        images.mkdir(parents=True)
        for k in range(per_class):
            pixels = np.full((size, size, 3), 10 * (c + 1) + k, dtype=np.uint8)
            Image.fromarray(pixels).save(images / f"{wnid}_{k}.JPEG", quality=95)
        for k in range(2):
            name = f"val_{2 * (1 - c) + k}.JPEG"  # the last class's images come first
            pixels = np.full((size, size, 3), 100 + c, dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "val" / "images" / name, quality=95)
            lines.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_train_and_test_splits_from_the_folder_layout(tmp_path):
    write_tiny_imagenet(tmp_path)
    train = get_dataset("tiny-imagenet", tmp_path, split="train", normalize=False)
    assert train.x.shape == (6, 3, 64, 64) and train.x.dtype == torch.float32
    assert train.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert train.info.classes == ("n01", "n03") and train.info.num_classes == 2
    assert train.info.augment == ("crop", "flip")
    colour = (train.x * 255).mean(dim=(1, 2, 3))
    assert torch.allclose(colour, torch.tensor([10.0, 11, 12, 20, 21, 22]), atol=1.0)
    test = get_dataset("tiny-imagenet", tmp_path / "tiny-imagenet-200", split="test")
    assert test.origin == "tiny-imagenet/test" and len(test) == 4
    assert test.y.tolist() == [1, 1, 0, 0]  # val_0, val_1 belong to n03 (class 1)
    raw = get_dataset("tiny-imagenet", tmp_path, split="test", normalize=False)
    assert torch.allclose(
        (raw.x * 255).mean(dim=(1, 2, 3)), torch.tensor([101.0, 101, 100, 100]), atol=1.0
    )


def test_bad_layouts_get_one_clear_error(tmp_path):
    with pytest.raises(LandscapeError, match="Tiny-ImageNet not found.*tiny-imagenet-200.zip"):
        get_dataset("tiny-imagenet", tmp_path, split="train")
    folder = write_tiny_imagenet(tmp_path / "small", size=32)
    with pytest.raises(LandscapeError, match=r"\(32, 32\) image; Tiny-ImageNet's are 64x64"):
        get_dataset("tiny-imagenet", tmp_path / "small", split="train")
    folder = write_tiny_imagenet(tmp_path / "a")
    notes = folder / "val" / "val_annotations.txt"
    notes.write_text("val_0.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(LandscapeError, match="line 1: expected 'file<TAB>wnid' with a wnid"):
        get_dataset("tiny-imagenet", tmp_path / "a", split="test")
    notes.unlink()
    with pytest.raises(LandscapeError, match="val_annotations.txt not found"):
        get_dataset("tiny-imagenet", tmp_path / "a", split="test")
    (folder / "wnids.txt").write_text("n01\nn03\nn05\n")
    with pytest.raises(LandscapeError, match="n05/images not found"):
        get_dataset("tiny-imagenet", tmp_path / "a", split="train")
