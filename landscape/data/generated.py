"""MNIST-1D, generated locally by the ``mnist1d`` package and cached as an ``.npz``.

Greydanus & Kobak (2024), "Scaling Down Deep Learning with MNIST-1D", ICML. The package's
default arguments (seed 42, 5000 examples, 80/20 split) give 4000 train / 1000 test signals
of length 40. We call its generator, never its download path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import zipfile
from pathlib import Path

import numpy as np

from landscape.data.paths import cache_dir
from landscape.data.registry import DatasetInfo, register_dataset
from landscape.errors import LandscapeError
from landscape.io import atomic_write

log = logging.getLogger(__name__)

_KEYS = ("x", "y", "x_test", "y_test")


@register_dataset("mnist1d")
def load_mnist1d(root: Path | None, split: str) -> tuple[np.ndarray, np.ndarray, DatasetInfo]:
    """MNIST-1D: 4000/1000 signals of shape (1, 40) in 10 classes (raw generator values).

    ``root`` is where the generated cache goes; ``None`` means :func:`cache_dir`.
    """
    if root is not None and not root.is_dir():
        raise LandscapeError(
            f"the mnist1d root {root} is not a folder; give an existing folder for its cache, "
            f"or leave the root out to use {cache_dir()}"
        )
    arrays = _cached_arrays(root if root is not None else cache_dir())
    x_train = arrays["x"]
    x, y = (x_train, arrays["y"]) if split == "train" else (arrays["x_test"], arrays["y_test"])
    info = DatasetInfo(
        name="mnist1d",
        num_classes=10,
        in_shape=(1, 40),
        mean=(float(x_train.mean(dtype=np.float64)),),
        std=(float(x_train.std(dtype=np.float64)),),
        classes=tuple(str(d) for d in range(10)),
        augment=(),
    )
    return x[:, None, :].astype(np.float32), y.astype(np.int64), info


def _dataset_args() -> dict:
    from mnist1d.data import get_dataset_args  # deferred: mnist1d imports matplotlib

    args = get_dataset_args(as_dict=True)
    args.pop("url", None)  # generation never uses it; keep it out of the cache key
    return args


def _cached_arrays(folder: Path) -> dict[str, np.ndarray]:
    """The generated arrays, read from ``folder`` or generated once and written there."""
    args = _dataset_args()
    key = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:12]
    path = folder / f"mnist1d-{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in _KEYS}
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
            log.warning("mnist1d cache %s is unreadable (%s); generating it again", path, err)
    arrays = _generate(args)
    atomic_write(path, lambda f: np.savez(f, **arrays))
    log.info("generated MNIST-1D and cached it in %s", path)
    return arrays


def _generate(args: dict) -> dict[str, np.ndarray]:
    """Run the package's generator; it seeds the global ``random``/``numpy`` RNGs, which we
    save and restore so that loading data never changes a caller's random stream."""
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {k: np.asarray(data[k]) for k in _KEYS}
