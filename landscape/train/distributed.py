"""Data-parallel training on several processes (``torchrun``): who writes, what each one sees.

The loop stays one loop. When ``torch.distributed`` is initialised with more than one
process, every process draws the same global batch (the batch plan is a pure function of
``noise_seed`` and the epoch), keeps its own contiguous shard of it, and
``DistributedDataParallel`` averages the gradients, so a step is the step of the global
batch, as in a single process (up to the order of floating-point sums). Process 0 alone
writes checkpoints, metrics and the run's spec.

What matches one process, and what does not:

- BatchNorm normalises by the statistics of the *global* batch, as one process would: on
  CUDA through ``torch.nn.SyncBatchNorm``, on the CPU (gloo), where ``SyncBatchNorm`` does
  not run, through :func:`_global_batch_norm`, which all-reduces the per-channel sums with
  differentiable collectives. ``sync_batchnorm=False`` keeps each process's own shard
  statistics instead (and says so once): then N processes do not equal one.
- Dropout masks are drawn per process, from a seed of ``(noise_seed, step, rank)``: an
  N-process run is reproducible and resumes exactly, but its masks differ from those of
  the one-process run, so the two end with different weights.

    torchrun --nproc_per_node 4 my_study.py     # my_study.py calls landscape.train.train
    torchrun --nproc_per_node 4 -m landscape train --model resnet20 --data cifar10 ...
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_reduce
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from landscape.errors import LandscapeError

log = logging.getLogger(__name__)


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


def wrap(
    model: nn.Module, group: Group, device: torch.device, sync_batchnorm: bool = True
) -> nn.Module:
    """``model`` itself, or wrapped in DistributedDataParallel when several processes train.

    With several processes, BatchNorm layers are first made to use the global batch's
    statistics (see :func:`synchronise_batchnorm`); parameters and buffers stay the same
    objects, so the optimiser and the checkpoints of ``model`` are unaffected.
    """
    if not group.parallel:
        return model
    model = synchronise_batchnorm(model, device, sync_batchnorm)
    ids = [device.index if device.index is not None else 0] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def synchronise_batchnorm(model: nn.Module, device: torch.device, enabled: bool) -> nn.Module:
    """Make every BatchNorm of ``model`` normalise by the global batch (in place).

    On CUDA the layers become ``torch.nn.SyncBatchNorm``; elsewhere their forward pass
    becomes :func:`_global_batch_norm`. With ``enabled=False`` nothing changes, and a
    warning says that the statistics are those of each process's shard.
    """
    norms = [m for m in model.modules() if _plain_batchnorm(m)]
    if not norms:
        return model
    if not enabled:
        if dist.is_initialized() and dist.get_rank() != 0:
            return model  # said once, by process 0
        log.warning(
            "sync_batchnorm is off: each of the %d processes normalises by its own shard's "
            "BatchNorm statistics, so this run will not equal a one-process run",
            dist.get_world_size() if dist.is_initialized() else 1,
        )
        return model
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for m in norms:
        m.forward = partial(_global_batch_norm, m, m.forward)
    return model


def _plain_batchnorm(m: nn.Module) -> bool:
    return isinstance(m, _BatchNorm) and not isinstance(m, nn.SyncBatchNorm)


def _global_batch_norm(m: _BatchNorm, plain, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm over the union of every process's shard, for devices SyncBatchNorm refuses.

    In training mode the per-channel sum, count and centred sum of squares are
    all-reduced with ``torch.distributed.nn.functional.all_reduce``, whose backward pass
    all-reduces the gradients too, so each process's gradient is that of the global
    batch's normalisation (what ``SyncBatchNorm`` computes on GPUs). The running
    statistics take the global mean and the unbiased global variance, as one process
    would. Evaluation uses the running statistics and communicates nothing.
    """
    if not m.training:
        return plain(x)
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    count = torch.full((1,), x.numel() // x.shape[1], dtype=x.dtype, device=x.device)
    totals = all_reduce(torch.cat([x.sum(dims), count]))
    n = totals[-1]
    mean = totals[:-1] / n
    centred = x - mean.view(shape)
    var = all_reduce(centred.square().sum(dims)) / n
    out = centred * torch.rsqrt(var + m.eps).view(shape)
    if m.affine:
        out = out * m.weight.view(shape) + m.bias.view(shape)
    if m.track_running_stats:
        with torch.no_grad():
            m.num_batches_tracked.add_(1)
            factor = 1.0 / float(m.num_batches_tracked) if m.momentum is None else m.momentum
            m.running_mean.lerp_(mean.detach(), factor)
            m.running_var.lerp_(var.detach() * n / (n - 1), factor)
    return out


def mean(value: torch.Tensor, group: Group) -> float:
    """The mean of a 0-d tensor over the processes (every process gets the same number)."""
    if group.parallel:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= group.world_size
    return value.item()


def from_lead(value: Any, group: Group) -> Any:
    """Process 0's ``value`` on every process (a picklable object; a no-op for one process):
    decisions that read the disk are taken once, where the writing happens."""
    if not group.parallel:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(group: Group) -> None:
    """Wait until every process is here (no-op for a group of one)."""
    if group.parallel:
        dist.barrier()


@contextmanager
def torchrun_group(device: str | None) -> Iterator[str | None]:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), join its process group
    for the duration and yield this process's device; otherwise yield ``device`` as given.

    NCCL with one GPU per process (``cuda:$LOCAL_RANK``) where CUDA is available and
    ``device`` does not ask for the CPU; gloo on the CPU. The rendezvous is torchrun's own
    (``env://``: ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``), so ``--nnodes`` and its
    rendezvous options work as torchrun documents them.
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        yield device
        return
    if not dist.is_available():  # pragma: no cover - builds without torch.distributed
        raise LandscapeError("this PyTorch build has no torch.distributed; run one process")
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    if cuda:
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    elif device is None:
        device = "cpu"
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield device
    finally:
        dist.destroy_process_group()
