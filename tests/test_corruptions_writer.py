"""`landscape corrupt` and the writer: a corrupted test set in the CIFAR-10-C format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.cli import main
from landscape.corruptions import corrupt
from landscape.corruptions.writer import as_uint8_images, chunk_seed, corrupt_split
from landscape.data import DatasetInfo, get_dataset, read_corrupted, register_dataset
from landscape.errors import LandscapeError


@register_dataset("test-pixels")
def _pixels(root, split):
    rng = np.random.default_rng(0 if split == "train" else 1)
    x = rng.integers(0, 256, size=(6, 3, 16, 16)).astype(np.float32) / 255.0
    y = np.arange(6) % 3
    info = DatasetInfo("test-pixels", 3, (3, 16, 16), (0.5,) * 3, (0.25,) * 3, ("a", "b", "c"))
    return x, y, info


def test_written_files_read_back_as_cifar10_c(tmp_path, capsys):
    out = tmp_path / "pixels-c"
    args = ["corrupt", "--data", "test-pixels", "--out", str(out), "--seed", "3"]
    assert main([*args, "--corruptions", "gaussian_noise,brightness"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "gaussian_noise.npy"), str(out / "brightness.npy")]
    split = get_dataset("test-pixels", split="test", normalize=False)
    images, labels = as_uint8_images(split)
    stored = np.load(out / "gaussian_noise.npy")
    assert stored.shape == (5 * 6, 16, 16, 3) and stored.dtype == np.uint8
    assert np.array_equal(np.load(out / "labels.npy"), np.tile(labels.numpy(), 5))
    for severity in (1, 5):  # severity-major rows, each made with its chunk's generator
        x, y = read_corrupted(out, "gaussian_noise", severity)
        gen = torch.Generator().manual_seed(chunk_seed(3, "gaussian_noise", severity, 0))
        expected = corrupt(images, "gaussian_noise", severity, "auto", gen)
        assert np.array_equal(x, expected.permute(0, 2, 3, 1).numpy())
        assert np.array_equal(y, labels.numpy())
    # the same seed writes the same bytes; another seed other noise
    again = tmp_path / "again"
    corrupt_split(split, again, ["gaussian_noise"], seed=3)
    assert (again / "gaussian_noise.npy").read_bytes() == (out / "gaussian_noise.npy").read_bytes()
    corrupt_split(split, tmp_path / "other", ["gaussian_noise"], seed=4)
    assert not np.array_equal(np.load(tmp_path / "other" / "gaussian_noise.npy"), stored)


def test_corrupt_refuses_what_it_cannot_corrupt(tmp_path, capsys):
    common = ["corrupt", "--out", str(tmp_path / "out")]
    for extra, message in (
        (["--data", "test-pixels", "--corruptions", "rain"], "unknown corruption rain"),
        (["--data", "test-blobs"], "need images"),
        (["--data", "nope"], "unknown dataset"),
    ):
        assert main([*common, *extra]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("landscape corrupt: error:") and message in line
    assert not (tmp_path / "out").exists()
    normalised = get_dataset("test-pixels", split="test")
    with pytest.raises(LandscapeError, match="normalize=False"):
        corrupt_split(normalised, tmp_path / "out", ["brightness"])


def test_each_chunk_draws_from_its_own_generator(tmp_path, monkeypatch):
    from landscape.corruptions import writer

    monkeypatch.setattr(writer, "CHUNK", 4)  # six images: chunks of 4 and 2
    split = get_dataset("test-pixels", split="test", normalize=False)
    corrupt_split(split, tmp_path, ["shot_noise"], seed=7)
    images, _ = as_uint8_images(split)
    x, _ = read_corrupted(tmp_path, "shot_noise", 2)
    for chunk, rows in ((0, slice(0, 4)), (1, slice(4, 6))):
        gen = torch.Generator().manual_seed(chunk_seed(7, "shot_noise", 2, chunk))
        expected = corrupt(images[rows], "shot_noise", 2, "auto", gen)
        assert np.array_equal(x[rows], expected.permute(0, 2, 3, 1).numpy())
