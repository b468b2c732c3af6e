"""Device-resident batches whose order and augmentation are a pure function of (seed, epoch).

In the style of airbench (Keller Jordan): the whole split sits on the device, an epoch's
permutation and every augmentation parameter are drawn up front from one CPU
``torch.Generator``, and crops and flips are applied to whole batches by indexing, never by a
Python loop over examples. Because batch ``i`` of epoch ``e`` depends only on
``(seed, e, i)``, a run resumed mid-epoch sees bitwise the same batches, and two runs that
differ only in ``seed`` differ only in SGD noise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from landscape.checks import integer
from landscape.data.registry import Split
from landscape.errors import LandscapeError

AUGMENTATIONS = ("crop", "flip")


@dataclass(frozen=True)
class _EpochPlan:
    """Everything random about one epoch, on the data's device.

    Attributes:
        order: example indices in visiting order, ``(N,)`` int64.
        offsets: crop corner ``(dy, dx)`` in ``[0, 2 * pad]`` per visited position, ``(N, 2)``.
        flips: horizontal-flip bit per visited position, ``(N,)`` bool.
    """

    epoch: int
    order: torch.Tensor
    offsets: torch.Tensor
    flips: torch.Tensor


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit generator seed derived from ``(seed, epoch)``, stable across processes."""
    digest = hashlib.sha256(f"landscape-batches:{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class BatchIterator:
    """Shuffled, augmented mini-batches of a :class:`Split`, kept on one device.

    Args:
        split: the data; copied once to ``device``.
        batch_size: examples per batch.
        shuffle: visit examples in a fresh random order each epoch (else in index order).
        augment: any of ``"crop"`` (random crop of 2-D images after zero-padding by ``pad``)
            and ``"flip"`` (horizontal flip of the last dim with probability 1/2).
        drop_last: drop the final incomplete batch.
        pad: zero padding on each side for ``"crop"``.
        seed: the SGD-noise seed; order and augmentation depend on nothing else.
        device: where batches live; ``None`` keeps the split's device.

    Example:
        >>> it = BatchIterator(train, 512, augment=("crop", "flip"), seed=noise_seed)
        >>> for x, y in it.epoch(3):  # x: (512, 3, 32, 32), y: (512,)
        ...     ...
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        shuffle: bool = True,
        augment: tuple[str, ...] = (),
        drop_last: bool = True,
        pad: int = 4,
        seed: int = 0,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(split, Split):
            raise LandscapeError(
                f"BatchIterator needs a landscape.data.Split, got {type(split).__name__}"
            )
        batch_size, pad = integer("batch_size", batch_size, 1), integer("pad", pad, 0)
        seed = integer("seed", seed, 0)
        augment = (augment,) if isinstance(augment, str) else tuple(augment or ())
        unknown = [a for a in augment if a not in AUGMENTATIONS]
        if unknown:
            raise LandscapeError(
                f"unknown augmentation(s) {unknown}; valid ones are {list(AUGMENTATIONS)}"
            )
        if "crop" in augment and split.x.dim() != 4:
            raise LandscapeError(
                f"'crop' needs 2-D images (N, C, H, W); {split.info.name} has examples of "
                f"shape {split.info.in_shape}. Drop 'crop' from augment."
            )
        if drop_last and batch_size > len(split):
            raise LandscapeError(
                f"batch_size {batch_size} exceeds the {len(split)} examples, so drop_last "
                f"would leave no batch; lower batch_size or pass drop_last=False"
            )
        self.split = split if device is None else split.to(device)  # checks the device
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.drop_last = drop_last
        self.pad = pad
        self.seed = seed
        self._plan: _EpochPlan | None = None

    @property
    def device(self) -> torch.device:
        """Where the data and every batch live."""
        return self.split.x.device

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch."""
        n, b = len(self.split), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the batches of one epoch, from batch ``start`` on (to resume mid-epoch).

        Args:
            epoch: epoch number, ``>= 0``.
            start: index of the first batch to yield.

        Yields:
            ``(x, y)``: ``x`` float32 ``(B, *in_shape)``, ``y`` int64 ``(B,)``, on
            :attr:`device`; ``B == batch_size`` except possibly the last when
            ``drop_last=False``.
        """
        plan = self._plan_for(epoch)
        start = integer("start", start, 0)
        for index in range(start, self.steps_per_epoch):
            yield self._batch(plan, index)

    def batch(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``index``-th batch of ``epoch``, identical to what :meth:`epoch` yields."""
        index = integer("batch index", index, 0)
        if index >= self.steps_per_epoch:
            raise LandscapeError(
                f"batch index {index} out of range; an epoch has {self.steps_per_epoch} batches"
            )
        return self._batch(self._plan_for(epoch), index)

    def _plan_for(self, epoch: int) -> _EpochPlan:
        epoch = integer("epoch", epoch, 0)
        if self._plan is None or self._plan.epoch != epoch:
            self._plan = self._draw(epoch)
        return self._plan

    def _draw(self, epoch: int) -> _EpochPlan:
        """Draw the epoch's order and augmentation, always in the same sequence on the CPU so
        that switching ``shuffle`` or ``augment`` never changes the other draws, and CPU and
        CUDA runs see the same numbers."""
        n = len(self.split)
        gen = torch.Generator(device="cpu").manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(n, generator=gen)
        offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=gen)
        flips = torch.randint(0, 2, (n,), generator=gen).bool()
        if not self.shuffle:
            order = torch.arange(n)
        return _EpochPlan(
            epoch=epoch,
            order=order.to(self.device),
            offsets=offsets.to(self.device),
            flips=flips.to(self.device),
        )

    def _batch(self, plan: _EpochPlan, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        window = slice(index * self.batch_size, (index + 1) * self.batch_size)
        idx = plan.order[window]
        x, y = self.split.x[idx], self.split.y[idx]
        if "crop" in self.augment and self.pad > 0:
            x = random_crop(x, plan.offsets[window], self.pad)
        if "flip" in self.augment:
            x = flip_where(x, plan.flips[window])
        return x, y


def random_crop(x: torch.Tensor, offsets: torch.Tensor, pad: int) -> torch.Tensor:
    """Crop each image at its own offset from a zero-padded copy, with one gather.

    Args:
        x: images ``(B, C, H, W)``.
        offsets: top-left corners ``(B, 2)`` as ``(dy, dx)`` in ``[0, 2 * pad]``.
        pad: zero padding added on each side before cropping.

    Returns:
        ``(B, C, H, W)``: ``out[b] = padded[b, :, dy:dy + H, dx:dx + W]``.
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = offsets[:, 0, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = offsets[:, 1, None] + torch.arange(w, device=x.device)  # (B, W)
    return padded[
        torch.arange(b, device=x.device)[:, None, None, None],
        torch.arange(c, device=x.device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def flip_where(x: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Mirror the last dim of the examples whose bit is set.

    Args:
        x: examples ``(B, ...)``.
        flips: ``(B,)`` bool.

    Returns:
        Same shape as ``x``.
    """
    mask = flips.view(-1, *([1] * (x.dim() - 1)))
    return torch.where(mask, x.flip(-1), x)
