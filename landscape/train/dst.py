"""Dynamic sparse training: controllers that prune and regrow a sparse network's mask as it trains.

A sparse network trains at a fixed parameter budget from the first step; every ``update_every``
steps (Delta T) until ``end_step`` (T_end) each layer drops a fraction of its active weights
and grows as many at inactive positions, so the per-layer density is the same before and
after every update while the network explores other connections:

- :class:`SET` (Mocanu et al. 2018): drop the smallest magnitudes, grow uniformly at random
  (magnitude-only dropping, as in the SET baseline of Evci et al. 2020).
- :class:`RigL` (Evci et al. 2020, "Rigging the Lottery"): drop the smallest magnitudes, grow
  where the dense gradient is largest. The dense gradient is read only at update steps.
- :class:`MEST` (Yuan et al. 2021): drop by ``|w| + lambda |g|``, grow at random.
- :class:`GraNet` (Liu et al. 2021): gradual magnitude pruning from a denser start to the
  target density, with RigL-style regrowth at every update.
- :class:`EDST` (Liu et al. 2022, FreeTickets): RigL-style exploration, then ``tickets``
  refinement phases separated by a large drop-and-grow; each phase ends in a ticket.

The drop fraction at step ``t`` follows ``alpha/2 (1 + cos(pi t / T_end))`` (``decay=
"cosine"``) or stays ``alpha`` (``"constant"``). Candidates for growth are all positions
inactive after the drop (a weight just dropped may come back, as in RigL's Algorithm 1).
Grown weights start at zero, and the optimiser state (momentum, Adam moments) of every
weight that was not active both before and after an update is reset to zero.

Each update is recorded (``records``, also written to ``dst.csv`` in the run directory): per
layer the active weights, the dropped and grown counts, the weights moved (active now, not
before), and the in-time over-parameterisation rate (Liu et al. 2021: the fraction of all
prunable weights that have ever been active). Masks, the union of all masks so far and the
records are the controller's state, and every random choice is a pure function of the run's
seeds and the step, so a resumed run ends bitwise equal to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch
from torch import nn

from landscape.checks import integer, number
from landscape.errors import LandscapeError
from landscape.io import write_rows
from landscape.sparse import (
    DISTRIBUTIONS,
    Masks,
    check_density,
    check_masks,
    mask_digest,
    random_masks,
)
from landscape.sparse import density as sparse_density
from landscape.specs import RunSpec
from landscape.train.controller import (
    Controller,
    LoopState,
    mask_optimizer_state,
    mask_targets,
)

DECAYS = ("cosine", "constant")
GROWTHS = ("random", "gradient")
#: T_end as a fraction of the run when ``end_step`` is not given (Evci et al. 2020).
DEFAULT_END_FRACTION = 0.75


def drop_fraction_at(
    step: int, drop_fraction: float, end_step: int, decay: str = "cosine"
) -> float:
    """The fraction of each layer's active weights an update at ``step`` replaces.

    ``alpha/2 (1 + cos(pi t / T_end))`` for ``"cosine"`` (Evci et al. 2020, eq. 1), ``alpha``
    for ``"constant"``; 0 from ``end_step`` on.
    """
    if step >= end_step:
        return 0.0
    if decay == "constant":
        return drop_fraction
    return drop_fraction / 2 * (1 + math.cos(math.pi * step / end_step))


def random_seed(*parts: Any) -> int:
    """A 63-bit seed that is a pure function of ``parts`` (stable across processes)."""
    key = "landscape-dst:" + ":".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") & (2**63 - 1)


class DynamicSparse(Controller):
    """Prune-and-grow dynamic sparse training; :class:`SET` and :class:`RigL` fix ``growth``.

    Args:
        density: fraction of the prunable weights kept, in (0, 1].
        distribution: how ``density`` is spread over layers: ``"uniform"``, ``"er"`` or
            ``"erk"`` (see :func:`~landscape.sparse.layer_densities`).
        update_every: Delta T, optimiser steps between mask updates.
        drop_fraction: alpha, the share of each layer's active weights replaced at the first
            update (then decayed by ``decay``).
        end_step: T_end, the step from which the mask is frozen; default 0.75 of the run.
        decay: ``"cosine"`` or ``"constant"`` drop fraction.
        growth: ``"random"`` (SET) or ``"gradient"`` (RigL: largest dense-gradient magnitude).
        masks: start from these masks instead of a random draw at ``density`` (the draw
            comes from the run's ``init_seed``).
        spare_first, spare_output: keep the first / the output layer dense.
    """

    name = "dst"

    def __init__(
        self,
        density: float = 0.2,
        *,
        distribution: str = "erk",
        update_every: int = 1000,
        drop_fraction: float = 0.5,
        end_step: int | None = None,
        decay: str = "cosine",
        growth: str = "random",
        masks: Masks | None = None,
        spare_first: bool = False,
        spare_output: bool = False,
    ) -> None:
        self.density = check_density(density)
        self.distribution = _choice("distribution", distribution, DISTRIBUTIONS)
        self.update_every = integer("update_every", update_every, 1)
        self.drop_fraction = number("drop_fraction", drop_fraction, minimum=0.0, maximum=1.0)
        if self.drop_fraction >= 1.0:
            raise LandscapeError(
                f"drop_fraction must lie in [0, 1): the share of each layer's active weights "
                f"replaced per update (0.3 in RigL, 0.5 in FreeTickets), got {drop_fraction}"
            )
        self.end_step = None if end_step is None else integer("end_step", end_step, 1)
        self.decay = _choice("decay", decay, DECAYS)
        self.growth = _choice("growth", growth, GROWTHS)
        self.spare_first, self.spare_output = bool(spare_first), bool(spare_output)
        if masks is not None and not (
            isinstance(masks, dict) and all(torch.is_tensor(m) for m in masks.values())
        ):
            raise LandscapeError("masks must be a dict of parameter name -> bool tensor")
        self.start_masks = None if masks is None else {k: v.bool() for k, v in masks.items()}
        if self.start_masks is not None:  # the run's density is the given masks'
            self.density = sparse_density(self.start_masks)
        self.masks: Masks | None = None
        self.ever: Masks | None = None
        self.records: list[dict[str, Any]] = []
        self._targets: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
        self._grads: dict[str, torch.Tensor] | None = None

    # -- description and state ---------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "density": round(self.density, 6),
            "distribution": self.distribution,
            "update_every": self.update_every,
            "drop_fraction": self.drop_fraction,
            "end_step": self.end_step,
            "decay": self.decay,
            "growth": self.growth,
        }
        if self.spare_first or self.spare_output:
            out.update(spare_first=self.spare_first, spare_output=self.spare_output)
        if self.start_masks is not None:
            out["masks"] = mask_digest(self.start_masks)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "masks": dict(self.masks or {}),
            "ever": dict(self.ever or {}),
            "records": [dict(r) for r in self.records],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = {k: v.bool() for k, v in state["masks"].items()} or None
        self.ever = {k: v.bool() for k, v in state["ever"].items()} or None
        self.records = [dict(r) for r in state["records"]]
        self._targets = None

    def check(self, spec: RunSpec) -> None:
        if self.end_step is not None and self.end_step > spec.train.steps:
            raise LandscapeError(
                f"end_step {self.end_step} lies beyond the run's {spec.train.steps} steps; "
                f"choose a step within the run (the mask is frozen from end_step on)"
            )

    @property
    def start_density(self) -> float:
        """The density of the first mask (GraNet starts denser)."""
        return self.density

    # -- the schedule ------------------------------------------------------------------------

    def end(self, steps: int) -> int:
        """T_end of a run of ``steps`` steps."""
        return self.end_step if self.end_step is not None else round(DEFAULT_END_FRACTION * steps)

    def update_due(self, step: int, steps: int) -> bool:
        """Whether the step that brings the count to ``step`` ends with a mask update."""
        return 0 < step < self.end(steps) and step % self.update_every == 0

    def fraction_at(self, step: int, steps: int) -> float:
        """The drop fraction of an update at ``step`` in a run of ``steps`` steps."""
        return drop_fraction_at(step, self.drop_fraction, self.end(steps), self.decay)

    def needs_gradient(self, step: int, steps: int) -> bool:
        """Whether the update at ``step`` reads the dense gradient."""
        return self.growth == "gradient" and self.update_due(step, steps)

    # -- the loop's hooks --------------------------------------------------------------------

    def on_start(self, state: LoopState) -> None:
        model = state.model
        if self.masks is None:
            self.masks = self._initial_masks(model, state)
            self.ever = {k: v.clone() for k, v in self.masks.items()}
        check_masks(model, self.masks)
        params = dict(model.named_parameters())
        device = next(iter(params.values())).device
        self.masks = {k: v.to(device) for k, v in self.masks.items()}
        self.ever = {k: v.to(device) for k, v in (self.ever or self.masks).items()}
        self._refresh(model)
        with torch.no_grad():
            weights, factors = self._targets
            torch._foreach_mul_(weights, factors)
            for w, f in zip(weights, factors):
                mask_optimizer_state(state.optimizer, w, f)
        if not self.records:
            self._record(state, "init", 0.0, {n: (0, 0, 0) for n in self.masks}, False)

    def after_backward(self, state: LoopState) -> None:
        if self.needs_gradient(state.step + 1, state.spec.train.steps):
            self._grads = self._gradients(state.model)

    @torch.no_grad()
    def after_step(self, state: LoopState) -> None:
        if self._targets is None:
            self.on_start(state)
        torch._foreach_mul_(*self._targets)
        self.update(state)

    def update(self, state: LoopState) -> None:
        """The mask update (if any) that ends the step bringing the count to ``state.step``."""
        if self.update_due(state.step, state.spec.train.steps):
            fraction = self.fraction_at(state.step, state.spec.train.steps)
            self.drop_and_grow(state, fraction, self.growth, "update")

    # -- the update --------------------------------------------------------------------------

    def drop_score(self, weight: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
        """Lower scores are dropped first: the weight magnitude."""
        return weight.abs()

    @torch.no_grad()
    def drop_and_grow(
        self,
        state: LoopState,
        fraction: float,
        growth: str,
        event: str,
        *,
        effective: int | None = None,
    ) -> None:
        """Replace ``round(fraction * active)`` weights in every sparse layer.

        ``effective`` is the first step whose forward pass sees the new mask (recorded as the
        event's ``step``): ``state.step`` after an optimiser step, one more when the update
        happens between a step's backward pass and its optimiser step.
        """
        params = dict(state.model.named_parameters())
        grads, self._grads = self._grads, None
        moved: dict[str, tuple[int, int, int]] = {}
        new_masks: Masks = {}
        for name, mask in self.masks.items():
            weight = params[name]
            active = int(mask.sum())
            count = round(fraction * active)
            if count == 0 or active == mask.numel():
                new_masks[name], moved[name] = mask, (0, 0, 0)
                continue
            grad = None if grads is None else grads[name]
            kept = _drop(mask, self.drop_score(weight, grad), count)
            if growth == "gradient":
                if grad is None:
                    raise LandscapeError(
                        f"{type(self).__name__} grows by gradient but no gradient was kept "
                        f"for step {state.step}"
                    )
                grown = _grow_by_score(kept, grad.abs(), count)
            else:
                seed = random_seed("grow", state.spec.seeds.noise_seed, state.step, name)
                grown = _grow_at_random(kept, count, torch.Generator().manual_seed(seed))
            new = kept | grown
            new_masks[name] = new
            moved[name] = (count, count, int((new & ~mask).sum()))
            # grown weights start at zero; state survives only where a weight stayed active
            factor = kept.to(weight.dtype)
            weight.mul_(factor)
            mask_optimizer_state(state.optimizer, weight, factor)
        self.masks = new_masks
        self.ever = {n: self.ever[n] | m for n, m in new_masks.items()}
        self._refresh(state.model)
        self._record(state, event, fraction, moved, growth == "gradient", effective)

    # -- helpers -----------------------------------------------------------------------------

    def _initial_masks(self, model: nn.Module, state: LoopState) -> Masks:
        if self.start_masks is not None:
            check_masks(model, self.start_masks)
            return {k: v.clone() for k, v in self.start_masks.items()}
        generator = torch.Generator().manual_seed(random_seed("init", state.spec.seeds.init_seed))
        return random_masks(
            model,
            self.start_density,
            generator,
            distribution=self.distribution,
            spare_first=self.spare_first,
            spare_output=self.spare_output,
        )

    def _refresh(self, model: nn.Module) -> None:
        self._targets = mask_targets(model, self.masks)

    def _gradients(self, model: nn.Module) -> dict[str, torch.Tensor]:
        params = dict(model.named_parameters())
        return {
            n: torch.zeros_like(params[n]) if params[n].grad is None else params[n].grad.clone()
            for n in self.masks
        }

    def _record(
        self,
        state: LoopState,
        event: str,
        fraction: float,
        moved: dict[str, tuple[int, int, int]],
        dense_gradient: bool,
        effective: int | None = None,
    ) -> None:
        """Append one row per layer: the mask in force for forward passes from ``step`` on;
        ``dense_gradient`` says the gradient of step ``step - 1`` was read densely."""
        size = sum(m.numel() for m in self.masks.values())
        active = sum(int(m.sum()) for m in self.masks.values())
        itop = sum(int(m.sum()) for m in self.ever.values()) / size
        for name, mask in self.masks.items():
            dropped, grown, shifted = moved[name]
            self.records.append(
                {
                    "step": state.step if effective is None else effective,
                    "event": event,
                    "layer": name,
                    "size": mask.numel(),
                    "active": int(mask.sum()),
                    "dropped": dropped,
                    "grown": grown,
                    "moved": shifted,
                    "drop_fraction": fraction,
                    "density": active / size,
                    "itop_rate": itop,
                    "dense_gradient": dense_gradient,
                }
            )
        if state.group.lead:
            write_rows(state.run_dir / "dst.csv", self.records)


class SET(DynamicSparse):
    """Sparse Evolutionary Training (Mocanu et al. 2018): magnitude drop, random growth."""

    name = "set"

    def __init__(self, density: float = 0.2, **kw: Any) -> None:
        super().__init__(density, growth="random", **_no_growth(kw, "SET"))


class RigL(DynamicSparse):
    """Rigged Lottery (Evci et al. 2020): magnitude drop, growth by dense-gradient magnitude."""

    name = "rigl"

    def __init__(self, density: float = 0.2, **kw: Any) -> None:
        super().__init__(density, growth="gradient", **_no_growth(kw, "RigL"))


# -- selection --------------------------------------------------------------------------------


def _drop(mask: torch.Tensor, score: torch.Tensor, count: int) -> torch.Tensor:
    """``mask`` without its ``count`` active positions of lowest ``score``."""
    flat = score.flatten().masked_fill(~mask.flatten(), math.inf)
    drop = torch.topk(flat, count, largest=False).indices
    kept = mask.flatten().clone()
    kept[drop] = False
    return kept.view_as(mask)


def _grow_by_score(kept: torch.Tensor, score: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` positions outside ``kept`` with the highest ``score``."""
    flat = score.flatten().masked_fill(kept.flatten(), -math.inf)
    grow = torch.topk(flat, count).indices
    out = torch.zeros(kept.numel(), dtype=torch.bool, device=kept.device)
    out[grow] = True
    return out.view_as(kept)


def _grow_at_random(kept: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` positions outside ``kept``, uniformly without replacement."""
    candidates = (~kept.flatten()).nonzero().squeeze(1)
    pick = torch.randperm(len(candidates), generator=generator)[:count].to(candidates.device)
    out = torch.zeros(kept.numel(), dtype=torch.bool, device=kept.device)
    out[candidates[pick]] = True
    return out.view_as(kept)


def _choice(what: str, value: Any, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise LandscapeError(f"unknown {what} {value!r}; choose one of {', '.join(options)}")
    return value


def _no_growth(kw: dict[str, Any], who: str) -> dict[str, Any]:
    if "growth" in kw:
        raise LandscapeError(
            f"{who} fixes its growth rule; use DynamicSparse(growth=...) to choose another"
        )
    return kw


class EDST(DynamicSparse):
    """Efficient Dynamic Sparse Training ensembles (Liu et al. 2022, FreeTickets, Sec. 3.3).

    One run yields ``tickets`` subnetworks: an exploration phase of ``explore_steps`` steps of
    dynamic sparse training, then ``tickets`` refinement phases of ``phase_steps`` each. Each
    phase ends in a ticket (a checkpoint at :meth:`ticket_steps`); between phases a large
    drop-and-grow replaces ``large_drop`` of every layer's active weights, which moves the run
    to another subnetwork (right after the ticket is saved: between the backward pass and the
    optimiser step of the phase's first step). Regular updates continue every
    ``update_every`` steps throughout, except at a ticket step,
    with a constant drop fraction by default, as in the FreeTickets code (``main_EDST.py`` with
    ``--decay-schedule constant``). The run must last ``explore_steps + tickets x
    phase_steps`` steps; :func:`landscape.train.ensemble.edst_spec` builds such a spec with
    FreeTickets' learning-rate cycle.

    Args:
        density: fraction of the prunable weights kept by every ticket.
        tickets: M, the number of tickets.
        explore_steps: steps of the exploration phase.
        phase_steps: steps of each refinement phase.
        large_drop: q, the share of active weights replaced between phases (0.8 in the paper).
        growth: ``"gradient"`` (FreeTickets' default, RigL-style) or ``"random"``.
        **kw: the other :class:`DynamicSparse` knobs (``update_every``, ``drop_fraction``, ...).
    """

    name = "edst"

    def __init__(
        self,
        density: float = 0.2,
        *,
        tickets: int = 3,
        explore_steps: int,
        phase_steps: int,
        large_drop: float = 0.8,
        decay: str = "constant",
        growth: str = "gradient",
        **kw: Any,
    ) -> None:
        super().__init__(density, decay=decay, growth=growth, **kw)
        self.tickets = integer("tickets", tickets, 1)
        self.explore_steps = integer("explore_steps", explore_steps, 1)
        self.phase_steps = integer("phase_steps", phase_steps, 1)
        self.large_drop = number("large_drop", large_drop, minimum=0.0, maximum=1.0)
        if not 0.0 < self.large_drop < 1.0:
            raise LandscapeError(
                f"large_drop must lie in (0, 1) (FreeTickets uses 0.8), got {large_drop}"
            )

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "tickets": self.tickets,
            "explore_steps": self.explore_steps,
            "phase_steps": self.phase_steps,
            "large_drop": self.large_drop,
        }

    @property
    def total_steps(self) -> int:
        """The length of the run: exploration plus every refinement phase."""
        return self.explore_steps + self.tickets * self.phase_steps

    def ticket_steps(self) -> list[int]:
        """The steps whose checkpoints are the tickets: the end of every refinement phase."""
        return [self.explore_steps + (i + 1) * self.phase_steps for i in range(self.tickets)]

    def jumps(self) -> list[int]:
        """The steps that begin with the large drop-and-grow: the first of phases 2..M (it
        happens between that step's backward pass and its optimiser step, after the ticket
        of the phase before was saved at the same step count)."""
        return [self.explore_steps + i * self.phase_steps for i in range(1, self.tickets)]

    def end(self, steps: int) -> int:
        return self.end_step if self.end_step is not None else steps

    def check(self, spec: RunSpec) -> None:
        super().check(spec)
        if spec.train.steps != self.total_steps:
            raise LandscapeError(
                f"an EDST run of {self.explore_steps} exploration steps and {self.tickets} "
                f"phases of {self.phase_steps} must last {self.total_steps} steps, but the spec "
                f"has {spec.train.steps}; build it with landscape.train.edst_spec"
            )

    def after_backward(self, state: LoopState) -> None:
        if state.step in self.jumps():
            # the first step of a new phase: the ticket at this step is saved already, so
            # jump now, before the optimiser step, from this step's dense gradient
            if self.growth == "gradient":
                self._grads = self._gradients(state.model)
            with torch.no_grad():
                self.drop_and_grow(
                    state, self.large_drop, self.growth, "refine", effective=state.step + 1
                )
        super().after_backward(state)  # a regular update may end this very step

    def needs_gradient(self, step: int, steps: int) -> bool:
        return step not in self.ticket_steps() and super().needs_gradient(step, steps)

    def update(self, state: LoopState) -> None:
        if state.step not in self.ticket_steps():  # a ticket is saved as trained, not updated
            super().update(state)


class MEST(DynamicSparse):
    """Memory-Economic Sparse Training (Yuan et al. 2021), its elastic-mutation form.

    Drops the active weights of lowest ``|w| + lambda |g|`` (magnitude plus ``gradient_weight``
    times the gradient magnitude at the update step; the gradient of active weights only, so
    no dense backward pass is needed) and grows the same number uniformly at random, at zero
    (``growth="random"``, Wu et al. 2024's MEST_r), or where the dense gradient is largest
    (``growth="gradient"``, their MEST_g).
    The mutation rate decays with the shared ``decay`` schedule. The public MEST code
    (``prune_utils/utils_pr.py``) defaults lambda to 0, i.e. magnitude only; the soft memory
    bound variant (MEST+EM&S, growing above the target density between updates) is not here.
    """

    name = "mest"

    def __init__(
        self,
        density: float = 0.2,
        *,
        gradient_weight: float = 1.0,
        growth: str = "random",
        **kw: Any,
    ) -> None:
        super().__init__(density, growth=growth, **kw)
        self.gradient_weight = number("gradient_weight", gradient_weight, minimum=0.0)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "gradient_weight": self.gradient_weight}

    def needs_gradient(self, step: int, steps: int) -> bool:
        wanted = self.gradient_weight > 0 or self.growth == "gradient"
        return wanted and self.update_due(step, steps)

    def drop_score(self, weight: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
        score = weight.abs()
        return score if grad is None else score + self.gradient_weight * grad.abs()


class GraNet(DynamicSparse):
    """Gradual pruning with zero-cost neuroregeneration (Liu et al. 2021, GraNet).

    The network starts at ``init_density`` (drawn by ``distribution``) and is pruned by global
    weight magnitude at every update between ``prune_start`` and ``prune_end`` along the cubic
    schedule of Zhu & Gupta 2017::

        d_t = d_f + (d_i - d_f) (1 - (t - t_0) / (t_end - t_0))^3

    reaching ``density`` at ``prune_end``. After the pruning of an update (and at every update,
    to the end of the run by default, as in the GraNet code), each layer regenerates: it drops
    the drop fraction of its active weights by magnitude and regrows as many where the dense
    gradient is largest (``growth="gradient"``, or ``"random"``). Defaults follow the GraNet
    code for CIFAR (``VITA-Group/GraNet``): initial density 0.5, pruning over the first half
    of training, regeneration rate 0.5 with cosine decay.

    Args:
        density: the final density d_f.
        init_density: d_i, at least ``density`` (1.0 prunes from a dense network).
        prune_start: t_0, the first step that may prune (default 0).
        prune_end: the step at which ``density`` is reached; default half the run.
        **kw: the other :class:`DynamicSparse` knobs.
    """

    name = "granet"

    def __init__(
        self,
        density: float = 0.2,
        *,
        init_density: float = 0.5,
        prune_start: int = 0,
        prune_end: int | None = None,
        growth: str = "gradient",
        **kw: Any,
    ) -> None:
        super().__init__(density, growth=growth, **kw)
        self.init_density = check_density(init_density, "init_density")
        if self.init_density < self.density:
            raise LandscapeError(
                f"GraNet prunes from init_density {self.init_density} down to density "
                f"{self.density}; init_density must be at least the density"
            )
        self.prune_start = integer("prune_start", prune_start, 0)
        self.prune_end = None if prune_end is None else integer("prune_end", prune_end, 1)
        if self.prune_end is not None and self.prune_end <= self.prune_start:
            raise LandscapeError(
                f"prune_end ({self.prune_end}) must come after prune_start ({self.prune_start})"
            )

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "init_density": self.init_density,
            "prune_start": self.prune_start,
            "prune_end": self.prune_end,
        }

    def end(self, steps: int) -> int:
        return self.end_step if self.end_step is not None else steps

    def check(self, spec: RunSpec) -> None:
        super().check(spec)
        steps = spec.train.steps
        if self.prune_end is not None and self.prune_end > steps:
            raise LandscapeError(f"prune_end {self.prune_end} lies beyond the run's {steps} steps")
        if self.init_density > self.density and not self.last_prune(steps):
            start, end = self.pruning_window(steps)
            raise LandscapeError(
                f"no mask update (every {self.update_every} steps) falls inside GraNet's "
                f"pruning window ({start}, {end}] of this {steps}-step run, so it would never "
                f"reach density {self.density}; update more often or widen the window"
            )

    def pruning_window(self, steps: int) -> tuple[int, int]:
        """``(t_0, t_end)`` of the gradual pruning in a run of ``steps`` steps."""
        end = self.prune_end if self.prune_end is not None else steps // 2
        return self.prune_start, max(end, self.prune_start + 1)

    def last_prune(self, steps: int) -> int:
        """The last update step inside the pruning window: it prunes to ``density`` even
        when ``prune_end`` is not an update step."""
        start, end = self.pruning_window(steps)
        last = min(end, self.end(steps) - 1) // self.update_every * self.update_every
        return last if last > start else 0

    def density_at(self, step: int, steps: int) -> float:
        """The overall density the schedule asks for after the update at ``step``."""
        start, end = self.pruning_window(steps)
        if step >= self.last_prune(steps):
            return self.density
        progress = min(max((step - start) / (end - start), 0.0), 1.0)
        return self.density + (self.init_density - self.density) * (1 - progress) ** 3

    @property
    def start_density(self) -> float:
        return self.init_density

    def update(self, state: LoopState) -> None:
        steps = state.spec.train.steps
        if not self.update_due(state.step, steps):
            return
        start = self.prune_start
        if start < state.step <= self.last_prune(steps):
            self.prune_to(state, self.density_at(state.step, steps))
        self.drop_and_grow(state, self.fraction_at(state.step, steps), self.growth, "update")

    @torch.no_grad()
    def prune_to(self, state: LoopState, target: float) -> None:
        """Remove the smallest-magnitude active weights across all layers down to ``target``."""
        params = dict(state.model.named_parameters())
        size = sum(m.numel() for m in self.masks.values())
        active = sum(int(m.sum()) for m in self.masks.values())
        count = active - round(target * size)
        if count <= 0:
            return
        names = list(self.masks)
        scores = torch.cat(
            [
                params[n].abs().flatten().masked_fill(~self.masks[n].flatten(), math.inf)
                for n in names
            ]
        )
        cut = torch.topk(scores, count, largest=False).indices
        flat = torch.cat([self.masks[n].flatten() for n in names])
        before = {n: int(self.masks[n].sum()) for n in names}
        flat[cut] = False
        offset = 0
        for n in names:
            size_n = self.masks[n].numel()
            self.masks[n] = flat[offset : offset + size_n].view_as(self.masks[n])
            offset += size_n
            factor = self.masks[n].to(params[n].dtype)
            params[n].mul_(factor)
            mask_optimizer_state(state.optimizer, params[n], factor)
        removed = {n: (before[n] - int(self.masks[n].sum()), 0, 0) for n in names}
        self._refresh(state.model)
        self._record(state, "prune", 0.0, removed, False)


#: The prune-and-grow methods by name (EDST is built by :func:`~landscape.train.edst_ensemble`).
DST_METHODS: dict[str, type[DynamicSparse]] = {
    "set": SET,
    "rigl": RigL,
    "mest": MEST,
    "granet": GraNet,
}


def make_dst(method: str, **options: Any) -> DynamicSparse:
    """The DST controller ``method`` (a name from :data:`DST_METHODS`) with ``options``."""
    if not isinstance(method, str) or method not in DST_METHODS:
        raise LandscapeError(
            f"unknown DST method {method!r}; choose one of {', '.join(DST_METHODS)}"
        )
    try:
        return DST_METHODS[method](**options)
    except TypeError as err:
        name = DST_METHODS[method].__name__
        raise LandscapeError(
            f"bad options for {method} ({err}); see help(landscape.train.{name}) for its knobs"
        ) from None
