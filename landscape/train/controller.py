"""The controller interface through which sparsity methods steer the one training loop.

The loop calls every controller at fixed points of each step::

    check(spec)                          before anything touches the disk: refuse a bad run
    on_start(state)                      once, after weights/optimiser are in place (init, parent
                                         checkpoint or resume) and before the first step
    for each step:
        forward, loss, backward
        after_backward(state)            gradients are dense and untouched: RigL reads them here
        optimiser step
        after_step(state)                IMP re-applies its mask; DST updates masks every Delta T
        on_epoch_end(state)              when the step closes an epoch: expert trajectories
    state_dict() / load_state_dict()     saved in every checkpoint, restored on resume and spawn

A controller may change the weights, the gradients and the optimiser state (all reachable
through :class:`LoopState`) and must keep all of its own state in ``state_dict`` so that a
resumed run is bitwise identical to an uninterrupted one. ``describe()`` names what the
controller does; it becomes part of the run's hash, so a masked run never reuses a dense
run's directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.sparse import Masks, apply_masks, density, mask_digest
from landscape.specs import RunSpec
from landscape.train.distributed import Group


@dataclass
class LoopState:
    """What the loop exposes to controllers at each call.

    Attributes:
        spec: the run's spec.
        run_dir: the run's directory (controllers may write files under it).
        model: the model being trained (in train mode during steps).
        optimizer: its optimiser.
        step: optimiser steps taken so far (after ``after_step`` it counts the new step).
        epoch: the epoch the current step belongs to.
        steps_per_epoch: batches per epoch.
        loss: the current step's training loss (a 0-d tensor), ``None`` outside steps.
        group: this process among the training processes; only ``group.lead`` should write
            files. The gradients a controller reads are already averaged over processes.
    """

    spec: RunSpec
    run_dir: Path
    model: nn.Module
    optimizer: torch.optim.Optimizer
    step: int
    epoch: int
    steps_per_epoch: int
    loss: torch.Tensor | None = None
    group: Group = field(default_factory=Group)


class Controller:
    """Base class: every hook does nothing. Subclasses override what they need."""

    name: str = "controller"

    def describe(self) -> dict[str, Any]:
        """What this controller does, as JSON-ready data that enters the run hash."""
        return {"name": self.name}

    def check(self, spec: RunSpec) -> None:
        """Refuse a run this controller cannot steer, before anything is written to disk."""

    def on_start(self, state: LoopState) -> None:
        """Called once before the first step of this call to ``train``."""

    def after_backward(self, state: LoopState) -> None:
        """Called after ``loss.backward()`` and before ``optimizer.step()``."""

    def after_step(self, state: LoopState) -> None:
        """Called after ``optimizer.step()``; ``state.step`` already counts the new step."""

    def on_epoch_end(self, state: LoopState) -> None:
        """Called after the step that completes an epoch."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly; tensors and plain containers only."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""


class FixedMask(Controller):
    """Train a sparse subnetwork under a mask that never changes.

    The mask is applied to the weights (and to SGD's momentum buffers) at the start and
    after every optimiser step, so pruned weights stay exactly zero whatever momentum or
    weight decay do. This is the training half of IMP (which adds pruning and rewinding
    between rounds).

    Args:
        masks: ``{parameter name: bool tensor}``, ``True`` keeps the weight.
    """

    name = "fixed_mask"

    def __init__(self, masks: Masks) -> None:
        if not isinstance(masks, dict) or not all(torch.is_tensor(v) for v in masks.values()):
            raise LandscapeError(
                "FixedMask needs masks as a dict of parameter name -> bool tensor, e.g. "
                "from landscape.sparse.random_masks"
            )
        self.masks = {k: v.bool() for k, v in masks.items()}
        self._targets: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "density": round(density(self.masks), 6),
            "masks": mask_digest(self.masks),
        }

    def on_start(self, state: LoopState) -> None:
        apply_masks(state.model, self.masks)  # checks the masks fit the model
        self._targets = mask_targets(state.model, self.masks)
        with torch.no_grad():
            for w, f in zip(*self._targets):  # a rewound optimiser state: pruned momentum is gone
                mask_optimizer_state(state.optimizer, w, f)

    @torch.no_grad()
    def after_step(self, state: LoopState) -> None:
        if self._targets is None:
            self.on_start(state)
        weights, factors = self._targets
        torch._foreach_mul_(weights, factors)

    def state_dict(self) -> dict[str, Any]:
        return {"masks": dict(self.masks)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = {k: v.bool() for k, v in state["masks"].items()}
        self._targets = None


def mask_targets(model: nn.Module, masks: Masks) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The masked weights and their masks in each weight's dtype and device, made once, so
    that masking a step is one fused multiply (``torch._foreach_mul_``)."""
    params = dict(model.named_parameters())
    weights = [params[n] for n in masks]
    return weights, [masks[n].to(params[n].device, params[n].dtype) for n in masks]


def mask_optimizer_state(
    optimizer: torch.optim.Optimizer, weight: torch.Tensor, factor: torch.Tensor
) -> None:
    """Multiply every per-weight optimiser buffer of ``weight`` (SGD's momentum, Adam's
    moments) by ``factor``, so no state survives at a masked position."""
    for value in optimizer.state.get(weight, {}).values():
        if torch.is_tensor(value) and value.shape == weight.shape:
            value.mul_(factor)
