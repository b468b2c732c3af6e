"""The dataset registry: a name -> loader map, and the tensors-plus-metadata it hands out."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from landscape.checks import integer, number
from landscape.devices import resolve_device
from landscape.errors import LandscapeError

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and an analysis need to know about a dataset.

    Attributes:
        name: registry name, e.g. ``"cifar10"``.
        num_classes: number of labels; labels are ``0 .. num_classes - 1``.
        in_shape: shape of one example, e.g. ``(1, 40)``, ``(1, 28, 28)``, ``(3, 32, 32)``.
        mean: per-channel mean of the raw training inputs (images scaled to [0, 1]).
        std: per-channel standard deviation of the raw training inputs.
        classes: human-readable label names, ``len(classes) == num_classes``.
        augment: augmentations that make sense for this data (``"crop"``, ``"flip"``).
    """

    name: str
    num_classes: int
    in_shape: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    augment: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = f"DatasetInfo({self.name!r})"
        if not isinstance(self.name, str) or not self.name:
            raise LandscapeError(f"DatasetInfo.name must be a non-empty string, got {self.name!r}")
        integer(f"{where}: num_classes", self.num_classes, 1)
        if not isinstance(self.in_shape, (tuple, list)) or not self.in_shape:
            raise LandscapeError(f"{where}: in_shape must be a tuple such as (1, 28, 28)")
        object.__setattr__(
            self, "in_shape", tuple(integer(f"{where}: in_shape", d, 1) for d in self.in_shape)
        )
        for name in ("mean", "std", "classes", "augment"):
            if not isinstance(getattr(self, name), (tuple, list)):
                raise LandscapeError(
                    f"{where}: {name} must be a tuple, got {getattr(self, name)!r}"
                )
        for name in ("mean", "std"):
            values = tuple(number(f"{where}: {name}", v) for v in getattr(self, name))
            object.__setattr__(self, name, values)
        channels = self.in_shape[0]
        if len(self.mean) != channels or len(self.std) != channels:
            raise LandscapeError(
                f"DatasetInfo({self.name!r}): mean/std need one value per channel "
                f"({channels}), got {len(self.mean)} and {len(self.std)}"
            )
        if any(s <= 0 for s in self.std):
            raise LandscapeError(f"DatasetInfo({self.name!r}): std must be positive: {self.std}")
        if len(self.classes) != self.num_classes:
            raise LandscapeError(
                f"DatasetInfo({self.name!r}): {len(self.classes)} class names for "
                f"{self.num_classes} classes"
            )


@dataclass(frozen=True, eq=False)
class Split:
    """One split of a dataset, held as two tensors.

    ``eq=False`` because element-wise tensor comparison has no single truth value; compare
    ``x`` and ``y`` with ``torch.equal`` instead.

    Attributes:
        x: inputs, float32, shape ``(N, *info.in_shape)``.
        y: labels, int64, shape ``(N,)``.
        info: the dataset's metadata.
        origin: where the tensors came from: ``"<name>/<split>"`` for a whole split from
            :func:`get_dataset` (``" raw"`` appended when not normalised, a subset note when
            :meth:`subset` drew from it), ``None`` for a split built by hand. Training checks
            it, because a run is stored under the name of the data its spec gives.
    """

    x: torch.Tensor
    y: torch.Tensor
    info: DatasetInfo
    origin: str | None = None

    def __post_init__(self) -> None:
        if not (torch.is_tensor(self.x) and torch.is_tensor(self.y)):
            raise LandscapeError(
                f"Split({self.info.name!r}) holds tensors; got {type(self.x).__name__} and "
                f"{type(self.y).__name__} (convert numpy arrays with torch.as_tensor)"
            )
        if self.x.dtype != torch.float32 or self.y.dtype != torch.int64:
            raise LandscapeError(
                f"Split({self.info.name!r}) needs float32 x and int64 y, "
                f"got {self.x.dtype} and {self.y.dtype}"
            )
        if tuple(self.x.shape[1:]) != tuple(self.info.in_shape) or self.y.shape != (
            self.x.shape[0],
        ):
            raise LandscapeError(
                f"Split({self.info.name!r}): x has shape {tuple(self.x.shape)} and y "
                f"{tuple(self.y.shape)}; expected (N, *{self.info.in_shape}) and (N,)"
            )
        if len(self.y) and self.y.device.type != "meta":
            low, high = (int(v) for v in torch.aminmax(self.y))
            if low < 0 or high >= self.info.num_classes:
                raise LandscapeError(
                    f"Split({self.info.name!r}): labels span {low}..{high} but the dataset has "
                    f"{self.info.num_classes} classes (0..{self.info.num_classes - 1}): relabel "
                    f"them (y - 1 for labels that count from 1), or fetch corrupt files again"
                )
        if self.x.device != self.y.device:
            raise LandscapeError(
                f"Split({self.info.name!r}): x is on {self.x.device} but y on {self.y.device}"
            )

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def device(self) -> torch.device:
        """The device both tensors live on."""
        return self.x.device

    def subset(self, n: int, seed: int = 0) -> Split:
        """A fixed random subset of ``n`` examples (drawn from ``seed``); all if ``n`` is 0
        or at least the split's size."""
        n = integer("subset size", n, 0)
        seed = integer("subset seed", seed, 0)
        if n == 0 or n >= len(self):
            return self
        pick = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        pick = pick.to(self.x.device)
        origin = None if self.origin is None else f"{self.origin} subset({n}, seed={seed})"
        return replace(self, x=self.x[pick], y=self.y[pick], origin=origin)

    def to(self, device: torch.device | str) -> Split:
        """Return a copy of this split with both tensors on ``device``."""
        device = resolve_device(device)
        return replace(self, x=self.x.to(device), y=self.y.to(device))


Loader = Callable[[Path | None, str], tuple[np.ndarray, np.ndarray, DatasetInfo]]
FamilyLoader = Callable[[str, Path | None, str], tuple[np.ndarray, np.ndarray, DatasetInfo]]
_REGISTRY: dict[str, Loader] = {}
_FAMILIES: dict[str, FamilyLoader] = {}
_FAMILY_KEYS: dict[str, str] = {}


def origin_of(name: str, split: str, normalize: bool = True) -> str:
    """The :attr:`Split.origin` that :func:`get_dataset` gives a whole split."""
    return f"{name}/{split}" + ("" if normalize else " raw")


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Register ``fn(root, split) -> (x_raw, y, info)`` under ``name``.

    The loader returns raw inputs (images scaled to [0, 1], float32, ``(N, *in_shape)``),
    int64 labels ``(N,)`` and the :class:`DatasetInfo`. ``root`` is ``None`` when the
    caller gave none; the loader then applies its own default search.
    """

    def decorator(fn: Loader) -> Loader:
        if name in _REGISTRY:
            raise LandscapeError(f"dataset {name!r} is registered twice; pick another name")
        _REGISTRY[name] = fn
        return fn

    return decorator


def register_dataset_family(
    prefix: str, key: str = "<key>"
) -> Callable[[FamilyLoader], FamilyLoader]:
    """Register ``fn(key, root, split) -> (x_raw, y, info)`` for every name ``prefix:<key>``.

    A family is a set of datasets named by a key, such as the synthetic sets of dataset
    distillation (``distilled:<key>``, a content hash) or the corrupted test sets
    (``cifar10-c:<corruption>:<severity>``). ``key`` is how :func:`list_datasets` shows it.
    """

    def decorator(fn: FamilyLoader) -> FamilyLoader:
        if prefix in _FAMILIES or ":" in prefix:
            raise LandscapeError(f"dataset family {prefix!r} is registered twice or has a ':'")
        _FAMILIES[prefix] = fn
        _FAMILY_KEYS[prefix] = key
        return fn

    return decorator


def list_datasets() -> list[str]:
    """Names of every registered dataset, sorted, then each family as ``prefix:<key>``."""
    return sorted(_REGISTRY) + [f"{p}:{_FAMILY_KEYS[p]}" for p in sorted(_FAMILIES)]


def is_dataset(name: str) -> bool:
    """Whether ``name`` is a registered dataset or a member of a registered family."""
    if not isinstance(name, str):
        return False
    prefix, sep, key = name.partition(":")
    return name in _REGISTRY or bool(sep and key and prefix in _FAMILIES)


def get_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    split: str = "train",
    normalize: bool = True,
) -> Split:
    """Load one split of a registered dataset as CPU tensors.

    Args:
        name: a name from :func:`list_datasets`.
        root: where the files are; ``None`` lets the loader search its defaults
            (``$LANDSCAPE_DATA``, system packages, ``~/data``).
        split: ``"train"`` or ``"test"``.
        normalize: return ``(x - mean) / std`` per channel; ``False`` returns raw inputs
            (images in [0, 1]), which image corruptions need.

    Returns:
        The split: ``x`` float32 ``(N, *info.in_shape)``, ``y`` int64 ``(N,)``.

    Raises:
        LandscapeError: unknown name or split, missing or corrupt files.
    """
    if not is_dataset(name):
        raise LandscapeError(
            f"unknown dataset {name!r}; valid names are: {', '.join(list_datasets())}"
        )
    if not isinstance(split, str) or split not in SPLITS:
        raise LandscapeError(f"unknown split {split!r} for {name!r}; use one of {SPLITS}")
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise LandscapeError(f"a data root must be a path, got {root!r}")
    path = None if root is None else Path(root).expanduser()
    if path is not None and path.exists() and not path.is_dir():
        raise LandscapeError(f"the data root {path} is a file; give the folder that holds the data")
    if name in _REGISTRY:
        x_raw, y_raw, info = _REGISTRY[name](path, split)
    else:
        prefix, _, key = name.partition(":")
        x_raw, y_raw, info = _FAMILIES[prefix](key, path, split)
    x = torch.as_tensor(np.ascontiguousarray(x_raw), dtype=torch.float32)
    y = torch.as_tensor(np.ascontiguousarray(y_raw), dtype=torch.int64)
    if normalize:
        x = _normalize(x, info)
    return Split(x=x, y=y, info=info, origin=origin_of(name, split, normalize))


def normalize(x: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """Standardise each channel with the dataset's training statistics.

    Args:
        x: raw inputs ``(N, C, ...)`` with ``C == len(info.mean)``; any trailing dims.
        info: the dataset whose ``mean``/``std`` to use.

    Returns:
        ``(x - mean[c]) / std[c]``, same shape, dtype and device as ``x``.
    """
    return _normalize(x, info)


def denormalize(x: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """Undo :func:`normalize`: ``x * std[c] + mean[c]``, shape ``(N, C, ...)`` kept."""
    mean, std = _channel_stats(x, info, "denormalize")
    return x * std + mean


def _normalize(x: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    mean, std = _channel_stats(x, info, "normalize")
    return (x - mean) / std


def _channel_stats(
    x: torch.Tensor, info: DatasetInfo, fn: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std as ``(C, 1, ..., 1)`` tensors that broadcast over ``(N, C, ...)``."""
    channels = len(info.mean)
    if not torch.is_tensor(x):
        raise LandscapeError(
            f"{fn}: expected a tensor, got {type(x).__name__} (use torch.as_tensor first)"
        )
    if not x.is_floating_point():
        raise LandscapeError(f"{fn}: expected floating-point inputs, got {x.dtype}")
    if x.dim() < 2 or x.shape[1] != channels:
        raise LandscapeError(
            f"{fn}: expected inputs of shape (N, {channels}, ...) for {info.name!r}, "
            f"got {tuple(x.shape)}"
        )
    view = (channels,) + (1,) * (x.dim() - 2)
    mean = torch.tensor(info.mean, dtype=x.dtype, device=x.device).view(view)
    std = torch.tensor(info.std, dtype=x.dtype, device=x.device).view(view)
    return mean, std
