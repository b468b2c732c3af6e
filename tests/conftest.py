"""Shared fixtures: small fabricated datasets registered under test names."""

from __future__ import annotations

import numpy as np
import pytest

from landscape.data import DatasetInfo, register_dataset
from tests._models import register as register_test_models


def _blobs(n: int, shape: tuple[int, ...], seed: int, classes: int = 4):
    """Gaussian class blobs: learnable in a few dozen SGD steps."""
    rng = np.random.default_rng(seed)
    dim = int(np.prod(shape))
    centers = np.random.default_rng(1234).normal(size=(classes, dim)).astype(np.float32)
    y = rng.integers(0, classes, size=n)
    x = centers[y] + 0.8 * rng.normal(size=(n, dim)).astype(np.float32)
    return x.reshape(n, *shape).astype(np.float32), y.astype(np.int64)


def _info(name: str, shape: tuple[int, ...], augment: tuple[str, ...] = ()) -> DatasetInfo:
    c = shape[0]
    return DatasetInfo(name, 4, shape, (0.0,) * c, (1.0,) * c, ("a", "b", "c", "d"), augment)


@register_dataset("test-blobs")
def _test_blobs(root, split):
    x, y = _blobs(256 if split == "train" else 128, (1, 12), seed=0 if split == "train" else 1)
    return x, y, _info("test-blobs", (1, 12))


@register_dataset("test-images")
def _test_images(root, split):
    x, y = _blobs(192 if split == "train" else 64, (3, 6, 6), seed=2 if split == "train" else 3)
    return x, y, _info("test-images", (3, 6, 6), ("crop", "flip"))


@pytest.fixture(autouse=True)
def _no_caller_environment(monkeypatch):
    """Tests never depend on the caller's environment: where runs and data go is theirs."""
    for name in ("LANDSCAPE_RUNS", "LANDSCAPE_DATA"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def runs(tmp_path):
    """A fresh runs root."""
    return tmp_path / "runs"


register_test_models()
