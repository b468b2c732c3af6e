"""Data-parallel training on several processes (``torchrun``): who writes, what each one sees.

The loop stays one loop. When ``torch.distributed`` is initialised with more than one
process, every process draws the same global batch (the batch plan is a pure function of
``noise_seed`` and the epoch), keeps its own contiguous shard of it, and
``DistributedDataParallel`` averages the gradients, so a step is the step of the global
batch, as in a single process (up to the order of floating-point sums). Process 0 alone
writes checkpoints, metrics and the run's spec.

    torchrun --nproc_per_node 4 my_study.py     # my_study.py calls landscape.train.train
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from landscape.errors import LandscapeError


@dataclass(frozen=True)
class Group:
    """This process's place among the training processes.

    Attributes:
        rank: this process, from 0.
        world_size: how many processes train together (1 without ``torch.distributed``).
    """

    rank: int = 0
    world_size: int = 1

    @property
    def lead(self) -> bool:
        """Whether this process writes the run's files."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        """Whether more than one process trains."""
        return self.world_size > 1


def current_group() -> Group:
    """The group of the initialised default process group, or a group of one."""
    if dist.is_available() and dist.is_initialized():
        return Group(dist.get_rank(), dist.get_world_size())
    return Group()


def check_batch(batch_size: int, group: Group) -> None:
    """A global batch must split evenly, or the averaged gradient is not the batch's."""
    if batch_size % group.world_size:
        raise LandscapeError(
            f"batch_size {batch_size} does not split evenly over {group.world_size} "
            f"processes; use a multiple of {group.world_size}"
        )


def shard(x: torch.Tensor, y: torch.Tensor, group: Group) -> tuple[torch.Tensor, torch.Tensor]:
    """This process's contiguous share of a global batch."""
    if not group.parallel:
        return x, y
    size = len(y) // group.world_size
    part = slice(group.rank * size, (group.rank + 1) * size)
    return x[part], y[part]


def wrap(model: nn.Module, group: Group, device: torch.device) -> nn.Module:
    """``model`` itself, or wrapped in DistributedDataParallel when several processes train."""
    if not group.parallel:
        return model
    ids = [device.index if device.index is not None else 0] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def mean(value: torch.Tensor, group: Group) -> float:
    """The mean of a 0-d tensor over the processes (every process gets the same number)."""
    if group.parallel:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= group.world_size
    return value.item()


def barrier(group: Group) -> None:
    """Wait until every process is here (no-op for a group of one)."""
    if group.parallel:
        dist.barrier()
