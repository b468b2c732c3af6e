"""The corruption registry, input handling and seeded random draws shared by every corruption.

A corruption is a function ``fn(x, p, draws) -> y`` on float32 images ``x`` of shape
``(B, C, H, W)`` in [0, 1] (``C`` is 1 or 3) with ``p`` its parameters at one severity (from
the table in use) and ``draws`` the batch's random numbers; it returns images of the same
shape (values outside [0, 1] are clipped by :func:`corrupt`). It registers itself with
:func:`register` together with its parameter table: five entries (severities 1-5) for each of
``"cifar"`` (32 px), ``"tiny"`` (Tiny-ImageNet, 64 px), ``"imagenet"`` (224 px) and
``"mnist"`` (28 px greyscale).

A corruption whose result on 8-bit images is cheaper to compute on the 8-bit levels themselves
(salt and pepper, pixelation) may also register a uint8 path with :func:`register_uint8`:
``fn8(x, p, draws) -> y`` on uint8 ``(B, C, H, W)``, drawing the same random numbers as ``fn``
and returning exactly what ``fn`` followed by the truncation to uint8 returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from landscape.checks import cpu_generator
from landscape.data.corrupted import CORRUPTIONS, SEVERITIES  # noqa: F401 (the file format owns the names)
from landscape.errors import LandscapeError

TABLES = ("cifar", "tiny", "imagenet", "mnist")


class Draws:
    """Random numbers for a batch of ``clips`` images (or video clips of ``frames`` frames).

    Every draw is made for the ``clips`` on the CPU from one ``torch.Generator`` (so a seed
    gives the same images on any machine) and repeated for each frame of a clip, so that all
    frames of a clip see the same noise, the same snow and the same displacement field.
    Returned tensors have a leading dimension ``clips * frames`` and live on ``device``.
    """

    def __init__(
        self, generator: torch.Generator, clips: int, frames: int, device: torch.device
    ) -> None:
        self.generator, self.clips, self.frames, self.device = generator, clips, frames, device

    def _out(self, t: torch.Tensor) -> torch.Tensor:
        if self.frames > 1:
            t = t.repeat_interleave(self.frames, dim=0)
        return t.to(self.device)

    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform [0, 1), shape ``(B, *shape)``."""
        return self._out(torch.rand((self.clips, *shape), generator=self.generator))

    def randn(self, *shape: int) -> torch.Tensor:
        """Standard normal, shape ``(B, *shape)``."""
        return self._out(torch.randn((self.clips, *shape), generator=self.generator))

    def uniform(self, low: float, high: float, *shape: int) -> torch.Tensor:
        """Uniform [low, high), shape ``(B, *shape)``."""
        return low + (high - low) * self.rand(*shape)

    def integers(self, low: int, high: int, *shape: int) -> torch.Tensor:
        """Integers in [low, high), shape ``(B, *shape)``."""
        t = torch.randint(low, high, (self.clips, *shape), generator=self.generator)
        return self._out(t)

    def per_clip(self) -> torch.Generator:
        """The generator itself, for draws a corruption makes once per clip on the CPU (e.g.
        a texture); the caller repeats them with :meth:`repeat`."""
        return self.generator

    def repeat(self, t: torch.Tensor) -> torch.Tensor:
        """A tensor drawn per clip ``(clips, ...)`` as one per image ``(B, ...)`` on the device."""
        return self._out(t)


@dataclass(frozen=True)
class Corruption:
    """A registered corruption: its function, its parameters per table and severity."""

    name: str
    fn: Callable[[torch.Tensor, Any, Draws], torch.Tensor]
    params: dict[str, tuple[Any, ...]]
    random: bool
    uint8: Callable[[torch.Tensor, Any, Draws], torch.Tensor] | None = None


_REGISTRY: dict[str, Corruption] = {}


def register(name: str, params: dict[str, Sequence[Any]], *, random: bool = True):
    """Register ``fn`` as the corruption ``name`` with five parameters per table.

    Args:
        name: one of :data:`CORRUPTIONS`.
        params: ``{table: (severity 1, ..., severity 5)}`` for every table in :data:`TABLES`.
        random: whether the corruption draws random numbers (noise, glass, snow, ...).
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"{name!r} is not one of the corruptions")
    missing = [t for t in TABLES if t not in params or len(params[t]) != 5]
    if missing:
        raise ValueError(f"{name}: five parameters needed for tables {missing}")

    def wrap(fn):
        _REGISTRY[name] = Corruption(name, fn, {t: tuple(params[t]) for t in TABLES}, random)
        return fn

    return wrap


def register_uint8(name: str):
    """Register ``fn8`` as the uint8 path of the already registered corruption ``name``: it
    must give, bit for bit, what the float path gives after the truncation to uint8."""

    def wrap(fn8):
        _REGISTRY[name] = replace(_REGISTRY[name], uint8=fn8)
        return fn8

    return wrap


def get_corruption(name: str) -> Corruption:
    """The registered corruption ``name``; an unknown name is one clear error."""
    from landscape import corruptions  # noqa: F401  (importing the package registers all)

    if not isinstance(name, str) or name not in _REGISTRY:
        raise LandscapeError(f"unknown corruption {name!r}; choose one of {', '.join(CORRUPTIONS)}")
    return _REGISTRY[name]


def table_for(size: int) -> str:
    """The parameter table for square images of ``size`` pixels: 28 -> mnist, 32 -> cifar,
    64 -> tiny, 224 -> imagenet, and the nearest of those sizes in between."""
    sizes = {"mnist": 28, "cifar": 32, "tiny": 64, "imagenet": 224}
    return min(sizes, key=lambda t: (abs(np.log(size / sizes[t])), sizes[t]))


def corrupt(
    images: Any,
    name: str,
    severity: int,
    table: str = "auto",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Apply the corruption ``name`` at ``severity`` to a whole batch.

    Args:
        images: ``(N, C, H, W)`` images or ``(N, T, C, H, W)`` video clips, ``C`` 1 or 3,
            uint8 in [0, 255] or float in [0, 1] (a tensor on any device, or a numpy array).
        name: one of :data:`CORRUPTIONS`.
        severity: 1 to 5.
        table: ``"cifar"``, ``"tiny"``, ``"imagenet"``, ``"mnist"``, or ``"auto"`` (chosen from
            the image size by :func:`table_for`).
        generator: a CPU ``torch.Generator``; every random draw comes from it, so a seed gives
            the same images. Default: a new generator seeded with 0 on every call, so two
            calls without one draw the same noise; pass one generator across batches for
            independent draws.

    Returns:
        The corrupted images, with the input's shape, dtype and device. uint8 output is
        truncated after scaling by 255 (``np.uint8`` of the float result), as the published
        generation scripts store CIFAR-10-C.
    """
    corruption = get_corruption(name)
    if (
        isinstance(severity, bool)
        or not isinstance(severity, (int, np.integer))
        or not (1 <= int(severity) <= 5)
    ):
        raise LandscapeError(f"severity must be a whole number from 1 to 5, got {severity!r}")
    x, dtype = _as_float(images, keep_uint8=corruption.uint8 is not None)
    if table == "auto":
        table = table_for(max(x.shape[-2:]))
    if table not in TABLES:
        raise LandscapeError(f"unknown table {table!r}; choose one of auto, {', '.join(TABLES)}")
    generator = cpu_generator(generator)
    shape = x.shape
    frames = shape[1] if x.ndim == 5 else 1
    flat = x.reshape(-1, *shape[-3:])
    draws = Draws(generator, shape[0], frames, x.device)
    params = corruption.params[table][int(severity) - 1]
    if x.dtype == torch.uint8:  # the corruption's own 8-bit path
        return corruption.uint8(flat, params, draws).reshape(shape)
    # full float32 convolutions on GPUs too (cuDNN may use TF32 by default), so a CUDA run
    # writes the same images as a CPU run
    with torch.backends.cudnn.flags(
        enabled=torch.backends.cudnn.enabled,
        benchmark=torch.backends.cudnn.benchmark,
        deterministic=torch.backends.cudnn.deterministic,
        allow_tf32=False,
    ):
        out = corruption.fn(flat, params, draws).clamp_(0.0, 1.0).reshape(shape)
    if dtype == torch.uint8:
        return out.mul_(255).to(torch.uint8)
    return out.to(dtype)


def _as_float(images: Any, keep_uint8: bool = False) -> tuple[torch.Tensor, torch.dtype]:
    """Checked images as float32 in [0, 1] and their dtype (uint8 kept as it is when
    ``keep_uint8``)."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not torch.is_tensor(images):
        raise LandscapeError(
            f"images must be a tensor or numpy array of shape (N, C, H, W) or (N, T, C, H, W), "
            f"got {type(images).__name__}"
        )
    if images.ndim not in (4, 5) or images.shape[-3] not in (1, 3) or images.numel() == 0:
        raise LandscapeError(
            f"images must be (N, C, H, W) or (N, T, C, H, W) with C = 1 or 3 and at least one "
            f"image, got shape {tuple(images.shape)}; for (N, H, W, C) arrays use "
            f"x.permute(0, 3, 1, 2)"
        )
    if images.dtype == torch.uint8:
        return (images if keep_uint8 else images.float().div_(255.0)), torch.uint8
    if not images.is_floating_point():
        raise LandscapeError(f"images must be uint8 or float in [0, 1], got {images.dtype}")
    lo, hi = float(images.min()), float(images.max())
    if lo < 0.0 or hi > 1.0:
        raise LandscapeError(
            f"float images must lie in [0, 1] (found values from {lo:.3g} to {hi:.3g}); "
            f"undo the normalisation first"
        )
    return images.float(), images.dtype
