"""Tests for landscape.data: registry, IDX/CIFAR/MNIST-1D loaders, and BatchIterator."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import landscape.data as data
from landscape.data import (
    BatchIterator,
    DatasetInfo,
    Split,
    denormalize,
    generated,
    get_dataset,
    list_datasets,
    normalize,
    read_idx,
    register_dataset,
    registry,
)
from landscape.errors import LandscapeError

FASHION_SYSTEM = Path("/usr/share/datasets/fashion-mnist")


# --------------------------------------------------------------------------- fabricated data


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, sizes: dict[str, int], gz: bool, seed: int = 0) -> dict:
    """Write MNIST-layout IDX files with random pixels; return the arrays by split."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    prefixes = {"train": "train", "test": "t10k"}
    arrays = {}
    for split, n in sizes.items():
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        arrays[split] = (images, labels)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefixes[split]}-{kind}-ubyte"
            raw = idx_bytes(arr)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
    return arrays


@pytest.fixture
def fake_cifar(tmp_path, monkeypatch):
    """Tiny CIFAR-10 and CIFAR-100 trees in the real pickle layout; md5 checks bypassed."""
    from torchvision.datasets import cifar as tv_cifar

    # The standard way to test with fabricated files: our bytes can't match the real md5s.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    rng = np.random.default_rng(1)

    def batch(n: int, key: str, classes: int) -> dict:
        return {
            "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            key: rng.integers(0, classes, size=n).tolist(),
        }

    def dump(path: Path, obj: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(obj, protocol=2))

    c10 = tmp_path / "cifar-10-batches-py"
    made = {"cifar10": {"train": [], "test": []}, "cifar100": {}}
    for i in range(1, 6):
        b = batch(2, "labels", 10)
        made["cifar10"]["train"].append(b)
        dump(c10 / f"data_batch_{i}", b)
    made["cifar10"]["test"] = [batch(3, "labels", 10)]
    dump(c10 / "test_batch", made["cifar10"]["test"][0])
    names10 = [f"class{i}" for i in range(10)]
    dump(c10 / "batches.meta", {"label_names": names10})

    c100 = tmp_path / "cifar-100-python"
    made["cifar100"] = {
        "train": [batch(4, "fine_labels", 100)],
        "test": [batch(2, "fine_labels", 100)],
    }
    dump(c100 / "train", made["cifar100"]["train"][0])
    dump(c100 / "test", made["cifar100"]["test"][0])
    names100 = [f"fine{i}" for i in range(100)]
    dump(c100 / "meta", {"fine_label_names": names100, "coarse_label_names": ["c"] * 20})
    return tmp_path, made, {"cifar10": names10, "cifar100": names100}


def tiny_split(n: int = 37, shape: tuple[int, ...] = (3, 8, 8), seed: int = 0) -> Split:
    """Random inputs whose label is the example's index, so batches reveal the order."""
    gen = torch.Generator().manual_seed(seed)
    info = DatasetInfo(
        name="tiny",
        num_classes=n,
        in_shape=shape,
        mean=(0.0,) * shape[0],
        std=(1.0,) * shape[0],
        classes=tuple(str(i) for i in range(n)),
        augment=("crop", "flip"),
    )
    return Split(x=torch.randn(n, *shape, generator=gen), y=torch.arange(n), info=info)


# --------------------------------------------------------------------------- registry


def test_registry_lists_every_dataset():
    builtin = ["cifar10", "cifar100", "fashion-mnist", "mnist", "mnist1d", "tiny-imagenet"]
    builtin += [f"{c}:<corruption>:<severity>" for c in ("cifar10-c", "cifar100-c")]
    builtin += ["distilled:<key>", "tiny-imagenet-c:<corruption>:<severity>"]
    # conftest registers fabricated datasets named test-*
    assert [n for n in list_datasets() if not n.startswith("test-")] == builtin


def test_unknown_name_lists_valid_names():
    with pytest.raises(LandscapeError) as err:
        get_dataset("imagenet")
    for name in list_datasets():
        assert name in str(err.value)


def test_bad_split_raises():
    with pytest.raises(LandscapeError, match="split"):
        get_dataset("mnist", split="validation")


def test_register_dataset_and_label_range_check(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    info = DatasetInfo("toy", 2, (1, 3), (0.5,), (0.25,), ("a", "b"))

    @register_dataset("toy")
    def load(root, split):
        x = np.full((4, 1, 3), 0.75, dtype=np.float32)
        return x, np.array([0, 1, 1, 0 if split == "train" else 2]), info

    train = get_dataset("toy")
    assert torch.allclose(train.x, torch.ones(4, 1, 3))  # (0.75 - 0.5) / 0.25
    assert "toy" in list_datasets()
    with pytest.raises(LandscapeError, match="labels"):
        get_dataset("toy", split="test")
    with pytest.raises(LandscapeError, match="twice"):
        register_dataset("toy")(load)


def test_split_validates_and_moves():
    s = tiny_split()
    assert len(s) == 37 and s.device.type == "cpu"
    moved = s.to("cpu")
    assert isinstance(moved, Split) and torch.equal(moved.x, s.x) and moved.info is s.info
    with pytest.raises(LandscapeError, match="int64"):
        Split(x=s.x, y=s.y.int(), info=s.info)
    with pytest.raises(LandscapeError, match="shape"):
        Split(x=s.x[:, :2], y=s.y, info=s.info)


def test_normalize_is_per_channel_for_any_trailing_dims():
    info = DatasetInfo("c2", 1, (2, 5), (1.0, -2.0), (2.0, 4.0), ("a",))
    x = torch.tensor([[[3.0] * 5, [2.0] * 5]])  # (1, 2, 5)
    out = normalize(x, info)
    assert torch.equal(out, torch.tensor([[[1.0] * 5, [1.0] * 5]]))
    assert torch.equal(denormalize(out, info), x)
    images = torch.rand(4, 2, 3, 3, dtype=torch.float64)
    out = normalize(images, info)
    assert out.dtype == torch.float64 and out.shape == images.shape
    assert torch.allclose(out[:, 1], (images[:, 1] + 2.0) / 4.0)
    with pytest.raises(LandscapeError, match="shape"):
        normalize(torch.rand(4, 3, 5), info)


# --------------------------------------------------------------------------- IDX / MNIST


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_idx_round_trip_exact(tmp_path, gz):
    arrays = write_idx_set(tmp_path, {"train": 12, "test": 5}, gz=gz)
    for split, (images, labels) in arrays.items():
        s = get_dataset("mnist", root=tmp_path, split=split, normalize=False)
        assert s.x.shape == (len(images), 1, 28, 28) and s.x.dtype == torch.float32
        assert torch.equal((s.x * 255).round().to(torch.uint8)[:, 0], torch.from_numpy(images))
        assert torch.equal(s.y, torch.from_numpy(labels).long())
        assert s.info.classes == tuple("0123456789") and s.info.augment == ()
    # Statistics come from the training images, for both splits.
    train_x = arrays["train"][0] / 255.0
    test = get_dataset("mnist", root=tmp_path, split="test")
    assert test.info.mean[0] == pytest.approx(train_x.mean(), abs=1e-12)
    assert test.info.std[0] == pytest.approx(train_x.std(), abs=1e-12)
    raw = arrays["test"][0][:, None] / 255.0
    expected = (raw - train_x.mean()) / train_x.std()
    assert np.allclose(test.x.numpy(), expected, atol=1e-5)


def test_fashion_mnist_found_under_landscape_data(tmp_path, monkeypatch):
    arrays = write_idx_set(tmp_path / "fashion-mnist", {"train": 6, "test": 4}, gz=True)
    monkeypatch.setenv("LANDSCAPE_DATA", str(tmp_path))
    s = get_dataset("fashion-mnist", split="test", normalize=False)
    assert torch.equal(s.y, torch.from_numpy(arrays["test"][1]).long())
    assert s.info.classes[0] == "T-shirt/top" and s.info.classes[9] == "Ankle boot"


def test_read_idx_rejects_truncated_and_bad_magic(tmp_path):
    raw = idx_bytes((np.arange(2 * 28 * 28) % 256).astype(np.uint8).reshape(2, 28, 28))
    good = tmp_path / "good"
    good.write_bytes(raw)
    assert read_idx(good).shape == (2, 28, 28)
    cases = {
        "short": raw[:-7],
        "padded": raw + b"\0",
        "magic": b"\x01\x02" + raw[2:],
        "header": raw[:9],
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(LandscapeError, match=name):
            read_idx(tmp_path / name)
    (tmp_path / "cut.gz").write_bytes(gzip.compress(raw)[:-30])
    with pytest.raises(LandscapeError, match="cut.gz"):
        read_idx(tmp_path / "cut.gz")


def test_truncated_dataset_file_names_the_file(tmp_path):
    write_idx_set(tmp_path, {"train": 3, "test": 2}, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(LandscapeError, match="t10k-images-idx3-ubyte"):
        get_dataset("mnist", root=tmp_path, split="test")


def test_label_count_mismatch_raises(tmp_path):
    write_idx_set(tmp_path, {"train": 3}, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(2, np.uint8)))
    with pytest.raises(LandscapeError, match="labels"):
        get_dataset("mnist", root=tmp_path)


def test_missing_root_names_path_and_remedy(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(LandscapeError) as err:
        get_dataset("fashion-mnist", root=missing)
    assert str(missing) in str(err.value) and "apt-get install dataset-fashion-mnist" in str(
        err.value
    )
    with pytest.raises(LandscapeError, match="nowhere") as err:
        get_dataset("mnist", root=missing, split="test")
    assert "download=True" in str(err.value)


def test_default_search_without_root(tmp_path, monkeypatch):
    monkeypatch.delenv("LANDSCAPE_DATA", raising=False)
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(LandscapeError) as err:
        get_dataset("mnist")
    for where in ("home/data/mnist", "home/data/MNIST/raw", "cache/mnist"):
        assert str(tmp_path / where) in str(err.value)
    arrays = write_idx_set(tmp_path / "home" / "data" / "MNIST" / "raw", {"train": 3}, gz=True)
    assert torch.equal(get_dataset("mnist").y, torch.from_numpy(arrays["train"][1]).long())


@pytest.mark.skipif(
    not (FASHION_SYSTEM / "train-images-idx3-ubyte.gz").is_file(),
    reason="real Fashion-MNIST absent (apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.delenv("LANDSCAPE_DATA", raising=False)
    train = get_dataset("fashion-mnist", split="train", normalize=False)
    test = get_dataset("fashion-mnist", split="test")
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert torch.equal(torch.bincount(train.y), torch.full((10,), 6000))
    assert float(train.x.min()) == 0.0 and float(train.x.max()) == 1.0
    # The published per-channel statistics of the training images.
    assert train.info.mean[0] == pytest.approx(0.2860, abs=1e-4)
    assert train.info.std[0] == pytest.approx(0.3530, abs=1e-4)
    assert test.info == train.info


# --------------------------------------------------------------------------- CIFAR


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_fabricated_pickles_round_trip(fake_cifar, name):
    root, made, names = fake_cifar
    for split in ("train", "test"):
        s = get_dataset(name, root=root, split=split, normalize=False)
        batches = made[name][split]
        pixels = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32)
        key = "labels" if name == "cifar10" else "fine_labels"
        labels = sum((b[key] for b in batches), [])
        assert s.x.shape == (len(labels), 3, 32, 32)
        assert torch.equal((s.x * 255).round().to(torch.uint8), torch.from_numpy(pixels))
        assert s.y.tolist() == labels
        assert s.info.classes == tuple(names[name])
        assert s.info.num_classes == len(names[name]) and s.info.augment == ("crop", "flip")
    normed = get_dataset(name, root=root, split="test")
    assert torch.allclose(normed.x, normalize(s.x, s.info))


def test_cifar_missing_explains_download(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_DATA", str(tmp_path))
    with pytest.raises(LandscapeError) as err:
        get_dataset("cifar10")
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg and "download=True" in msg


# --------------------------------------------------------------------------- MNIST-1D


@pytest.fixture(scope="module")
def mnist1d_cache(tmp_path_factory):
    """Generate MNIST-1D once into a private cache; record the global RNG around it."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LANDSCAPE_CACHE", str(cache))
        before = np.random.get_state()[1].copy()
        train = get_dataset("mnist1d", split="train", normalize=False)
        rng_kept = np.array_equal(before, np.random.get_state()[1])
    return cache, train, rng_kept


def test_mnist1d_shapes_labels_and_rng(mnist1d_cache, monkeypatch):
    cache, train, rng_kept = mnist1d_cache
    monkeypatch.setenv("LANDSCAPE_CACHE", str(cache))
    test = get_dataset("mnist1d", split="test", normalize=False)
    assert train.x.shape == (4000, 1, 40) and test.x.shape == (1000, 1, 40)
    assert train.x.dtype == torch.float32 and test.y.dtype == torch.int64
    assert set(train.y.unique().tolist()) == set(range(10)) and int(test.y.max()) <= 9
    assert train.info.in_shape == (1, 40) and train.info.classes == tuple("0123456789")
    assert rng_kept, "generating MNIST-1D must not change numpy's global random state"


def test_mnist1d_second_load_hits_cache(mnist1d_cache, monkeypatch):
    cache, train, _ = mnist1d_cache
    assert len(list(cache.glob("mnist1d-*.npz"))) == 1
    assert not list(cache.glob(".*tmp"))  # the atomic write left no temp file

    def refuse(args):
        raise AssertionError("regenerated instead of reading the cache")

    monkeypatch.setattr(generated, "_generate", refuse)
    monkeypatch.setenv("LANDSCAPE_CACHE", str(cache))
    again = get_dataset("mnist1d", split="train", normalize=False)
    assert torch.equal(again.x, train.x) and torch.equal(again.y, train.y)
    assert again.info == train.info


def test_mnist1d_normalized_train_is_standard(mnist1d_cache, monkeypatch):
    cache, raw, _ = mnist1d_cache
    monkeypatch.setenv("LANDSCAPE_CACHE", str(cache))
    x = get_dataset("mnist1d", split="train").x.double()
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1.0) < 1e-3
    assert torch.allclose(normalize(raw.x, raw.info).double(), x)


# --------------------------------------------------------------------------- BatchIterator


def collect(it: BatchIterator, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(it.epoch(epoch))


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_epoch_is_pure_function_of_seed_and_epoch():
    s = tiny_split()
    it = BatchIterator(s, 8, augment=("crop", "flip"), seed=3)
    first = collect(it, 2)
    collect(it, 5)  # visiting another epoch in between changes nothing
    assert_same_batches(first, collect(it, 2))
    assert_same_batches(first, collect(BatchIterator(s, 8, augment=("crop", "flip"), seed=3), 2))
    assert len(first) == len(it) == it.steps_per_epoch == 4


def test_batch_matches_epoch_and_resume():
    s = tiny_split()
    batches = collect(BatchIterator(s, 8, augment=("crop", "flip"), seed=1), 4)
    fresh = BatchIterator(s, 8, augment=("crop", "flip"), seed=1)
    for i in reversed(range(len(batches))):
        x, y = fresh.batch(4, i)
        assert torch.equal(x, batches[i][0]) and torch.equal(y, batches[i][1])
    assert_same_batches(batches[2:], list(fresh.epoch(4, start=2)))
    with pytest.raises(LandscapeError, match="out of range"):
        fresh.batch(4, len(batches))
    with pytest.raises(LandscapeError, match="epoch"):
        fresh.batch(-1, 0)


def test_seeds_and_epochs_change_the_order():
    s = tiny_split()
    order = {
        (seed, e): torch.cat([y for _, y in collect(BatchIterator(s, 8, seed=seed), e)])
        for seed in (0, 1)
        for e in (0, 1)
    }
    assert not torch.equal(order[0, 0], order[1, 0])
    assert not torch.equal(order[0, 0], order[0, 1])
    plain = torch.cat([y for _, y in collect(BatchIterator(s, 8, shuffle=False), 0)])
    assert torch.equal(plain, torch.arange(32))


@pytest.mark.parametrize("drop_last", [False, True])
def test_each_epoch_is_a_permutation(drop_last):
    s = tiny_split()
    it = BatchIterator(s, 8, drop_last=drop_last, seed=7)
    batches = collect(it, 0)
    sizes = [len(y) for _, y in batches]
    assert sizes == ([8, 8, 8, 8, 5] if not drop_last else [8, 8, 8, 8])
    seen = torch.cat([y for _, y in batches])
    assert len(set(seen.tolist())) == len(seen)
    if not drop_last:
        assert torch.equal(seen.sort().values, torch.arange(37))
    for x, y in batches:  # no augmentation: batches are the examples themselves
        assert torch.equal(x, s.x[y])


def test_augmentation_never_changes_the_order():
    s = tiny_split()
    ys = [
        torch.cat([y for _, y in collect(BatchIterator(s, 8, augment=aug, seed=2), 1)])
        for aug in ((), ("flip",), ("crop", "flip"))
    ]
    assert torch.equal(ys[0], ys[1]) and torch.equal(ys[0], ys[2])


def test_crop_is_a_window_of_the_zero_padded_image():
    s, pad = tiny_split(n=24, shape=(2, 6, 5)), 2
    batches = collect(BatchIterator(s, 6, augment=("crop",), pad=pad, seed=0), 0)
    corners = set()
    for x, y in batches:
        assert x.shape == (6, 2, 6, 5)
        for out, label in zip(x, y):
            padded = F.pad(s.x[label], (pad, pad, pad, pad))
            matches = [
                (dy, dx)
                for dy in range(2 * pad + 1)
                for dx in range(2 * pad + 1)
                if torch.equal(out, padded[:, dy : dy + 6, dx : dx + 5])
            ]
            assert len(matches) == 1
            corners.add(matches[0])
    assert len(corners) > 5  # offsets really vary across examples


def test_flip_mirrors_exactly_where_the_bit_is_set():
    s = tiny_split(n=64)
    it = BatchIterator(s, 16, augment=("flip",), seed=5)
    flipped = 0
    for x, y in collect(it, 0):
        for out, label in zip(x, y):
            orig = s.x[label]
            is_flip = torch.equal(out, orig.flip(-1))
            assert is_flip or torch.equal(out, orig)
            flipped += is_flip
    assert 16 < flipped < 48  # about half
    # Crop-then-flip uses the same flip bits: undoing the flip gives the crop-only batch.
    both = collect(BatchIterator(s, 16, augment=("crop", "flip"), seed=5), 0)
    crop = collect(BatchIterator(s, 16, augment=("crop",), seed=5), 0)
    flips = collect(it, 0)
    for (xb, yb), (xc, _), (xf, _) in zip(both, crop, flips):
        bits = torch.tensor([not torch.equal(f, s.x[label]) for f, label in zip(xf, yb)])
        assert torch.equal(xb, torch.where(bits[:, None, None, None], xc.flip(-1), xc))


def test_iterator_rejects_bad_arguments():
    s = tiny_split()
    with pytest.raises(LandscapeError, match="cutout"):
        BatchIterator(s, 8, augment=("cutout",))
    signal = tiny_split(shape=(1, 40))
    with pytest.raises(LandscapeError, match="crop"):
        BatchIterator(signal, 8, augment=("crop",))
    assert collect(BatchIterator(signal, 8, augment=("flip",)), 0)[0][0].shape == (8, 1, 40)
    with pytest.raises(LandscapeError, match="drop_last"):
        BatchIterator(s, 64)


def _devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _devices())
def test_batches_stay_on_the_split_device(device):
    s = tiny_split().to(device)
    it = BatchIterator(s, 8, augment=("crop", "flip"), seed=0)
    assert it.device.type == device
    for x, y in collect(it, 0):
        assert x.device.type == device and y.device.type == device
    # Every device sees the same numbers, since all draws happen on a CPU generator.
    cpu = collect(BatchIterator(tiny_split(), 8, augment=("crop", "flip"), seed=0), 0)
    assert_same_batches([(x.cpu(), y.cpu()) for x, y in collect(it, 0)], cpu)
    moved = BatchIterator(tiny_split(), 8, device=device)
    assert moved.batch(0, 0)[0].device.type == device


def test_public_api_is_exported():
    for name in ("BatchIterator", "DatasetInfo", "Split", "get_dataset", "normalize"):
        assert name in data.__all__


def test_labels_beyond_the_classes_are_refused(tmp_path):
    write_idx_set(tmp_path, {"train": 3}, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([0, 10, 2], np.uint8)))
    with pytest.raises(LandscapeError, match=r"labels span 0\.\.10 but the dataset has 10"):
        get_dataset("mnist", root=tmp_path)


def test_multi_formation_decodes_each_tile_into_a_full_size_example():
    """IDC's decoding: a stored image of 2 x 2 constant tiles gives four constant images,
    tile by tile in row-major order, each with the stored image's label."""
    from landscape.data.distilled import decode

    tiles = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    image = tiles.repeat_interleave(3, 0).repeat_interleave(3, 1)  # 6 x 6 of four blocks
    x, y = decode(torch.stack([image, -image])[:, None], torch.tensor([7, 2]), 2)
    assert x.shape == (8, 1, 6, 6) and y.tolist() == [7] * 4 + [2] * 4
    assert [float(t.mean()) for t in x] == [1, 2, 3, 4, -1, -2, -3, -4]
    assert all(torch.allclose(t, t.mean().expand_as(t)) for t in x)
    signal = torch.tensor([[[5.0, 5.0, 9.0, 9.0]]])  # 1-D: halves
    x, y = decode(signal, torch.tensor([1]), 2)
    assert x.tolist() == [[[5.0] * 4], [[9.0] * 4]] and y.tolist() == [1, 1]
    with pytest.raises(LandscapeError, match="divisible"):
        decode(torch.zeros(1, 1, 5, 6), torch.tensor([0]), 2)
