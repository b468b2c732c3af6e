"""Tests for landscape.data.corrupted: CIFAR-10/100-C and Tiny-ImageNet-C from fabricated files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from landscape.data import (
    CORRUPTIONS,
    available_corruptions,
    corrupted,
    corrupted_layout,
    get_dataset,
    load_corrupted,
    normalize,
    read_corrupted,
    save_corrupted,
)
from landscape.data.cifar import CIFAR10_MEAN, CIFAR10_STD
from landscape.errors import LandscapeError

N = 4  # images per severity


def severity_images(n: int = N, shape=(32, 32, 3), offset: int = 0) -> np.ndarray:
    """uint8 ``(5, n, *shape)`` whose every pixel is ``offset + 40 * severity + image``."""
    values = offset + 40 * np.arange(1, 6)[:, None] + np.arange(n)[None, :]
    return np.broadcast_to(values[:, :, None, None, None], (5, n, *shape)).astype(np.uint8)


def write_c_folder(
    folder: Path, corruptions=("gaussian_noise", "fog"), n: int = N, classes: int = 10
) -> np.ndarray:
    """A CIFAR-10-C-format folder written with plain numpy (not save_corrupted); returns the
    clean labels."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.random.default_rng(0).integers(0, classes, size=n).astype(np.uint8)
    for i, c in enumerate(corruptions):
        np.save(folder / f"{c}.npy", severity_images(n, offset=i).reshape(5 * n, 32, 32, 3))
    np.save(folder / "labels.npy", np.tile(labels, 5))
    return labels.astype(np.int64)


@pytest.fixture
def c10(tmp_path):
    """``(root, labels)`` with ``root/CIFAR-10-C`` holding gaussian_noise and fog."""
    return tmp_path, write_c_folder(tmp_path / "CIFAR-10-C")


# ----------------------------------------------------------------------------- CIFAR-C


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_cifar10c_reads_one_severity_of_the_severity_major_rows(c10, severity):
    root, labels = c10
    raw = load_corrupted("cifar10-c", "fog", severity, root, normalize=False)
    expected = (1 + 40 * severity + torch.arange(N)).float() / 255  # fog was written with offset 1
    assert raw.x.shape == (N, 3, 32, 32) and raw.x.dtype == torch.float32
    assert torch.equal(raw.x.amin(dim=(1, 2, 3)), expected)
    assert torch.equal(raw.x.amax(dim=(1, 2, 3)), expected)
    assert torch.equal(raw.y, torch.as_tensor(labels))
    assert raw.info.num_classes == 10 and raw.info.classes[0] == "airplane"
    assert raw.origin == f"cifar10-c:fog:{severity}/test raw"


def test_normalised_with_the_clean_cifar10_statistics(c10):
    root, _ = c10
    split = load_corrupted("cifar10-c", "gaussian_noise", 2, root)
    raw = load_corrupted("cifar10-c", "gaussian_noise", 2, root, normalize=False)
    assert (split.info.mean, split.info.std) == (CIFAR10_MEAN, CIFAR10_STD)
    assert torch.allclose(split.x, normalize(raw.x, raw.info))
    mean = torch.tensor(CIFAR10_MEAN).view(3, 1, 1)
    assert torch.allclose(split.x[0], (80 / 255 - mean) / torch.tensor(CIFAR10_STD).view(3, 1, 1))
    assert split.origin == "cifar10-c:gaussian_noise:2/test"


def test_get_dataset_family_name_and_train_refused(c10):
    root, _ = c10
    by_name = get_dataset("cifar10-c:gaussian_noise:3", root, split="test")
    direct = load_corrupted("cifar10-c", "gaussian_noise", 3, root)
    assert torch.equal(by_name.x, direct.x) and torch.equal(by_name.y, direct.y)
    assert by_name.origin == direct.origin
    with pytest.raises(LandscapeError, match="only a test split.*'cifar10'"):
        get_dataset("cifar10-c:gaussian_noise:3", root, split="train")
    with pytest.raises(LandscapeError, match="no severity"):
        get_dataset("cifar10-c:gaussian_noise", root, split="test")


def test_root_is_the_folder_itself_or_found_through_landscape_data(c10, monkeypatch):
    root, _ = c10
    a = load_corrupted("cifar10-c", "fog", 1, root / "CIFAR-10-C")
    monkeypatch.setenv("LANDSCAPE_DATA", str(root))
    b = load_corrupted("cifar10-c", "fog", 1)
    assert torch.equal(a.x, b.x)


def test_one_severity_is_memory_mapped(c10, monkeypatch):
    root, _ = c10
    opened = []
    real = corrupted._open_npy

    def spy(path, hint):
        array = real(path, hint)
        opened.append(type(array))
        return array

    monkeypatch.setattr(corrupted, "_open_npy", spy)
    load_corrupted("cifar10-c", "fog", 4, root)
    assert opened == [np.memmap, np.memmap]


def test_cifar100c_has_100_classes(tmp_path):
    labels = write_c_folder(tmp_path / "CIFAR-100-C", ("snow",), classes=100)
    split = load_corrupted("cifar100-c", "snow", 5, tmp_path)
    assert split.info.num_classes == 100 and len(split.info.classes) == 100
    assert split.info.classes[:2] == ("apple", "aquarium_fish")
    assert torch.equal(split.y, torch.as_tensor(labels))


def test_available_corruptions_in_canonical_order(tmp_path):
    write_c_folder(tmp_path / "CIFAR-10-C", ("saturate", "fog", "gaussian_noise"))
    (tmp_path / "CIFAR-10-C" / "notes.npy").write_bytes(b"")
    assert available_corruptions("cifar10-c", tmp_path) == ("gaussian_noise", "fog", "saturate")


def test_layouts():
    layout = corrupted_layout("tiny-imagenet-c")
    assert (layout.folder, layout.in_shape, layout.clean) == (
        "Tiny-ImageNet-C",
        (3, 64, 64),
        "tiny-imagenet",
    )
    assert corrupted_layout("cifar100-c").url == "https://zenodo.org/record/3555552"
    assert len(CORRUPTIONS) == 19 and CORRUPTIONS[15:] == (
        "speckle_noise",
        "gaussian_blur",
        "spatter",
        "saturate",
    )


def test_corruption_names_match_the_corruptions_package():
    # skipped while landscape.corruptions is being written (it may not import yet)
    generated = pytest.importorskip("landscape.corruptions", exc_type=ImportError).CORRUPTIONS
    assert CORRUPTIONS == tuple(generated)


# ----------------------------------------------------------------------------- writer


def test_save_corrupted_round_trips_and_writes_labels_once(tmp_path):
    folder = tmp_path / "CIFAR-10-C"
    labels = np.array([3, 1, 4, 1])
    images = severity_images()
    save_corrupted(folder, "frost", images, labels)
    save_corrupted(folder, "snow", [torch.from_numpy(a.copy()) for a in images + 1], labels)
    stored = np.load(folder / "frost.npy")
    assert stored.shape == (20, 32, 32, 3) and stored.dtype == np.uint8
    assert np.array_equal(stored, images.reshape(20, 32, 32, 3))
    assert np.load(folder / "labels.npy").dtype == np.uint8  # as in the published files
    for s in (1, 5):
        split = load_corrupted("cifar10-c", "snow", s, tmp_path, normalize=False)
        assert torch.equal(split.y, torch.as_tensor(labels))
        assert torch.equal(
            (split.x * 255).round().to(torch.uint8),
            torch.as_tensor(images[s - 1] + 1).permute(0, 3, 1, 2),
        )
    assert sorted(p.name for p in folder.iterdir()) == ["frost.npy", "labels.npy", "snow.npy"]
    with pytest.raises(LandscapeError, match="other labels.*fresh folder"):
        save_corrupted(folder, "fog", images, labels[::-1].copy())
    assert not (folder / "fog.npy").exists()


def test_save_and_read_any_image_size(tmp_path):
    images = severity_images(3, (28, 28, 1))
    save_corrupted(tmp_path, "pixelate", images, [0, 9, 2])
    x, y = read_corrupted(tmp_path, "pixelate", 2)
    assert x.shape == (3, 28, 28, 1) and np.array_equal(x, images[1])
    assert y.dtype == np.int64 and y.tolist() == [0, 9, 2]


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (severity_images()[:4], np.zeros(N, int), r"\(5, N, H, W, C\)"),
        (severity_images().astype(np.float32), np.zeros(N, int), "uint8"),
        (list(severity_images()[:, :, :, :, 0]), np.zeros(N, int), "uint8 of shape"),
        (severity_images(), np.zeros(N + 1, int), "4 integer class indices"),
        (severity_images(), np.zeros(N), "integer class indices"),
        (severity_images(), -np.ones(N, int), ">= 0"),
    ],
)
def test_save_corrupted_refuses_bad_input(tmp_path, images, labels, match):
    with pytest.raises(LandscapeError, match=match):
        save_corrupted(tmp_path, "fog", images, labels)
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- errors


def test_missing_folder_names_what_goes_where_and_the_zenodo_record(tmp_path):
    with pytest.raises(LandscapeError) as err:
        load_corrupted("cifar100-c", "fog", 1, tmp_path)
    message = str(err.value)
    assert str(tmp_path / "CIFAR-100-C" / "<corruption>.npy") in message
    assert "labels.npy" in message and "https://zenodo.org/record/3555552" in message
    with pytest.raises(LandscapeError, match="zenodo.org/record/2536630"):
        load_corrupted("tiny-imagenet-c", "fog", 1, tmp_path)
    with pytest.raises(LandscapeError, match="zenodo.org/record/2535967"):
        available_corruptions("cifar10-c", tmp_path)


def test_missing_corruption_file_names_the_file_and_what_is_there(c10):
    root, _ = c10
    expected = root / "CIFAR-10-C" / "snow.npy"
    with pytest.raises(LandscapeError, match=f"{expected} not found.*gaussian_noise, fog.*zenodo"):
        load_corrupted("cifar10-c", "snow", 1, root)


@pytest.mark.parametrize(
    "name, corruption, severity, match",
    [
        (
            "cifar10-c",
            "gaussian",
            1,
            "unknown corruption 'gaussian'; valid names are: gaussian_noise",
        ),
        ("cifar10-c", "fog", 0, "severity must be one of 1, 2, 3, 4, 5, got 0"),
        ("cifar10-c", "fog", 6, "severity must be one of"),
        ("cifar10-c", "fog", 2.0, "whole number in 1..5"),
        ("cifar10-c", "fog", True, "whole number in 1..5"),
        ("imagenet-c", "fog", 1, "unknown corrupted test set 'imagenet-c'.*cifar10-c, cifar100-c"),
    ],
)
def test_bad_names_and_severities(c10, name, corruption, severity, match):
    with pytest.raises(LandscapeError, match=match):
        load_corrupted(name, corruption, severity, c10[0])


def test_bad_names_through_get_dataset(c10):
    with pytest.raises(LandscapeError, match="unknown corruption 'mist'"):
        get_dataset("cifar10-c:mist:1", c10[0], split="test")
    with pytest.raises(LandscapeError, match="severity must be"):
        get_dataset("cifar10-c:fog:9", c10[0], split="test")


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros((20, 32, 32, 1), np.uint8), r"shape \(5 \* N, 32, 32, 3\)"),
        (np.zeros((21, 32, 32, 3), np.uint8), "severities 1..5 one after the other"),
        (np.zeros((20, 32, 32, 3), np.float32), "float32"),
        (np.zeros((20, 3072), np.uint8), "expected uint8 images"),
    ],
)
def test_wrong_array_shapes(c10, array, match):
    root, _ = c10
    np.save(root / "CIFAR-10-C" / "fog.npy", array)
    with pytest.raises(LandscapeError, match=match):
        load_corrupted("cifar10-c", "fog", 1, root)


def test_wrong_labels_and_unreadable_files(c10):
    root, _ = c10
    folder = root / "CIFAR-10-C"
    np.save(folder / "labels.npy", np.zeros(5 * N + 5, np.uint8))
    with pytest.raises(LandscapeError, match="labels.npy holds.*expected 20 integer labels"):
        load_corrupted("cifar10-c", "fog", 1, root)
    (folder / "labels.npy").write_bytes(pickle.dumps(list(range(20))))
    with pytest.raises(LandscapeError, match="not a readable .npy.*download CIFAR-10-C.tar again"):
        load_corrupted("cifar10-c", "fog", 1, root)


# ----------------------------------------------------------------------------- Tiny-ImageNet-C


def write_tiny(root: Path, wnids=("n02", "n01"), per_class: int = 2, size: int = 64) -> None:
    """``Tiny-ImageNet-C/fog/<1..5>/<wnid>/<k>.JPEG``: flat colour ``20 * (class + 1) +
    severity`` in every channel (class = sorted wnid order)."""
    for s in range(1, 6):
        for c, wnid in enumerate(sorted(wnids)):
            folder = root / "Tiny-ImageNet-C" / "fog" / str(s) / wnid
            folder.mkdir(parents=True)
            for k in range(per_class):
                image = np.full((size, size, 3), 20 * (c + 1) + s, dtype=np.uint8)
                Image.fromarray(image).save(folder / f"val_{k}.JPEG", quality=95)


def test_tiny_imagenet_c_from_a_jpeg_tree(tmp_path):
    write_tiny(tmp_path)
    split = load_corrupted("tiny-imagenet-c", "fog", 3, tmp_path, normalize=False)
    assert split.x.shape == (4, 3, 64, 64)
    assert split.y.tolist() == [0, 0, 1, 1]
    assert split.info.classes == ("n01", "n02") and split.info.mean == (0.4802, 0.4481, 0.3975)
    colour = (split.x * 255).mean(dim=(1, 2, 3))
    assert torch.allclose(colour, torch.tensor([23.0, 23.0, 43.0, 43.0]), atol=1.0)
    assert available_corruptions("tiny-imagenet-c", tmp_path) == ("fog",)
    by_name = get_dataset("tiny-imagenet-c:fog:3", tmp_path, split="test")
    assert by_name.origin == "tiny-imagenet-c:fog:3/test" and len(by_name) == 4


def test_tiny_imagenet_c_classes_from_wnids_txt_beside_it(tmp_path):
    write_tiny(tmp_path, wnids=("n03", "n01"))
    (tmp_path / "tiny-imagenet-200").mkdir()
    (tmp_path / "tiny-imagenet-200" / "wnids.txt").write_text("n03\nn02\nn01\n")
    split = load_corrupted("tiny-imagenet-c", "fog", 1, tmp_path)
    assert split.info.classes == ("n01", "n02", "n03")  # sorted, with n02 absent from the tree
    assert split.y.tolist() == [0, 0, 2, 2]
    (tmp_path / "tiny-imagenet-200" / "wnids.txt").write_text("n03\n")
    with pytest.raises(
        LandscapeError, match=r"class folders \['n01'\] that \S*tiny-imagenet-200/wnids.txt does"
    ):
        load_corrupted("tiny-imagenet-c", "fog", 1, tmp_path)


def test_tiny_imagenet_c_errors(tmp_path):
    write_tiny(tmp_path, size=32)
    with pytest.raises(LandscapeError, match=r"\(32, 32\) image; Tiny-ImageNet-C holds \(64, 64\)"):
        load_corrupted("tiny-imagenet-c", "fog", 1, tmp_path)
    with pytest.raises(LandscapeError, match=r"Tiny-ImageNet-C/snow/2 not found.*present: fog"):
        load_corrupted("tiny-imagenet-c", "snow", 2, tmp_path)
    broken = next((tmp_path / "Tiny-ImageNet-C" / "fog" / "4").glob("*/*.JPEG"))
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(LandscapeError, match="not a readable image"):
        load_corrupted("tiny-imagenet-c", "fog", 4, tmp_path)
