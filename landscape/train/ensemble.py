"""Ensembles of dense and sparse networks (FreeTickets), and the training FLOPs of any run.

Liu et al. 2022 ("Deep Ensembling with No Overhead for either Training or Testing: The
All-Round Blessings of Dynamic Sparsity", ICLR; FreeTickets) ensemble the subnetworks that
dynamic sparse training (DST) finds:

- :func:`dst_ensemble`: M independent DST runs (member i has ``init_seed + i`` and
  ``noise_seed + i``);
- :func:`edst_ensemble`: one EDST run (:class:`~landscape.train.dst.EDST`) whose M
  refinement phases each end in a ticket;
- :func:`dense_ensemble`: M independently trained dense networks, the reference.

Every member is a run of the one loop, so ensembles are reused, resumed and hashed like any
run. :func:`training_flops` counts what a run cost to train, as the paper does (Appendix,
following Evci et al. 2020): a training step costs three forward passes (the forward, and
a backward pass of twice its cost), each at the network's current density; a step whose
gradient is read densely (RigL's and EDST's gradient-based growth) pays ``2 f_S + f_D``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from landscape.checks import integer, number
from landscape.errors import LandscapeError
from landscape.io import Checkpoint, load_checkpoint
from landscape.sparse import Masks, layer_positions, load_masks
from landscape.specs import RunSpec, Seeds
from landscape.train.dst import EDST, make_dst
from landscape.train.loop import Run, build_model, train

#: FreeTickets' EDST learning rates in each refinement phase, as multiples of the
#: exploration rate: 0.01 then 0.001 after 0.1 (``main_EDST.py``).
REFINE_FACTORS = (0.1, 0.01)


@dataclass(frozen=True)
class Member:
    """One member of an ensemble: a run's checkpoint at ``step``, and its masks if sparse."""

    run: Run
    step: int
    masks: Masks | None

    def load_model(self, device: Any = None) -> nn.Module:
        """The member's network (pruned weights are zero in the checkpoint)."""
        return self.run.load_model(self.step, device)


@dataclass(frozen=True)
class Ensemble:
    """An ensemble: its method, its members and the distinct runs that trained them.

    Attributes:
        method: ``"dense"``, ``"dst-<set|rigl|mest|granet>"`` or ``"edst"``.
        members: the members, in order.
        runs: the runs that trained them (one for EDST, M otherwise).
    """

    method: str
    members: tuple[Member, ...]
    runs: tuple[Run, ...]

    def models(self, device: Any = None) -> list[nn.Module]:
        """Every member's network."""
        return [m.load_model(device) for m in self.members]

    def training_flops(self) -> float:
        """Training FLOPs of all the runs together (see :func:`training_flops`)."""
        return sum(training_flops(run) for run in self.runs)

    def relative_flops(self, steps: int) -> float:
        """Training FLOPs relative to one dense run of ``steps`` steps at the same batch size
        (the paper's "1x"): what the dense network costs per step, times ``steps``."""
        run = self.runs[0]
        taken = run.spec.train.steps - (run.spec.parent.step if run.spec.parent else 0)
        per_step = training_flops(run, dense=True) / taken
        return self.training_flops() / (per_step * integer("steps", steps, 1))


def member_spec(spec: RunSpec, index: int) -> RunSpec:
    """Member ``index`` of an ensemble of ``spec``: both seeds shifted by ``index``."""
    index = integer("index", index, 0)
    seeds = Seeds(init_seed=spec.seeds.init_seed + index, noise_seed=spec.seeds.noise_seed + index)
    return spec.replace(seeds=seeds)


def dense_ensemble(
    spec: RunSpec, members: int = 3, root: str | os.PathLike | None = None, **train_kwargs: Any
) -> Ensemble:
    """M dense runs of ``spec`` with different seeds; member 0 is ``spec`` itself."""
    members = _members(members)
    runs = [train(member_spec(spec, i), root, **train_kwargs) for i in range(members)]
    out = [Member(run, run.spec.train.steps, None) for run in runs]
    return Ensemble("dense", tuple(out), tuple(runs))


def dst_ensemble(
    spec: RunSpec,
    method: str = "rigl",
    members: int = 3,
    root: str | os.PathLike | None = None,
    *,
    options: dict[str, Any] | None = None,
    **train_kwargs: Any,
) -> Ensemble:
    """M independent dynamic sparse training runs (FreeTickets' "DST Ensemble").

    Args:
        spec: the run each member repeats with its own seeds.
        method: a name from :data:`~landscape.train.dst.DST_METHODS`.
        members: M.
        root: the runs root.
        options: keyword arguments of the DST controller (``density``, ``update_every``...).
        **train_kwargs: passed to :func:`~landscape.train.loop.train`.
    """
    members = _members(members)
    options = dict(options or {})
    make_dst(method, **options)  # bad options fail before any training
    runs, out = [], []
    for i in range(members):
        controller = make_dst(method, **options)
        run = train(member_spec(spec, i), root, controllers=[controller], **train_kwargs)
        runs.append(run)
        out.append(Member(run, run.spec.train.steps, final_masks(run, run.spec.train.steps)))
    return Ensemble(f"dst-{method}", tuple(out), tuple(runs))


def edst_spec(
    spec: RunSpec,
    tickets: int = 3,
    *,
    explore_steps: int,
    phase_steps: int,
    refine_factors: Sequence[float] = REFINE_FACTORS,
) -> RunSpec:
    """``spec`` reshaped into an EDST run with FreeTickets' learning-rate cycle.

    The run lasts ``explore_steps + tickets x phase_steps`` steps at ``spec.train.lr`` during
    exploration; each refinement phase runs its first half at ``refine_factors[0] x lr`` and
    its second half at ``refine_factors[1] x lr``, and the rate goes back up when the next
    phase begins. Every ticket step is kept as a checkpoint.
    """
    tickets = _members(tickets, "tickets")
    phase = integer("phase_steps", phase_steps, 2)
    explore = integer("explore_steps", explore_steps, 1)
    factors = [number("refine_factors", f, minimum=0.0) for f in refine_factors]
    if len(factors) != 2:
        raise LandscapeError(
            f"refine_factors are two multiples of lr (first and second half of every phase), "
            f"got {list(refine_factors)}"
        )
    milestones, lr_factors = [], []
    for i in range(tickets):
        start = explore + i * phase
        milestones += [start, start + phase // 2]
        lr_factors += list(factors)
    ends = [explore + (i + 1) * phase for i in range(tickets)]
    t = dataclasses.replace(
        spec.train,
        schedule="step",
        milestones=tuple(milestones),
        lr_factors=tuple(lr_factors),
        steps=ends[-1],
        checkpoint_steps=tuple(sorted({*spec.train.checkpoint_steps, *ends} - {ends[-1]})),
        warmup_steps=min(spec.train.warmup_steps, explore),
    )
    return spec.replace(train=t)


def edst_ensemble(
    spec: RunSpec,
    tickets: int = 3,
    root: str | os.PathLike | None = None,
    *,
    explore_steps: int,
    phase_steps: int,
    refine_factors: Sequence[float] = REFINE_FACTORS,
    options: dict[str, Any] | None = None,
    **train_kwargs: Any,
) -> Ensemble:
    """One EDST run and its M tickets (FreeTickets' "EDST Ensemble").

    Args:
        spec: the run's data, model, optimiser and seeds; its schedule and length are
            replaced by :func:`edst_spec`.
        tickets: M.
        root: the runs root.
        explore_steps, phase_steps: the exploration and each refinement phase, in steps.
        refine_factors: learning-rate multiples in the two halves of each refinement phase.
        options: other :class:`~landscape.train.dst.EDST` knobs (``density``,
            ``large_drop``, ``update_every``, ``drop_fraction``, ``growth``, ...).
    """
    run_spec = edst_spec(
        spec,
        tickets,
        explore_steps=explore_steps,
        phase_steps=phase_steps,
        refine_factors=refine_factors,
    )
    try:
        controller = EDST(
            tickets=tickets, explore_steps=explore_steps, phase_steps=phase_steps, **(options or {})
        )
    except TypeError as err:
        raise LandscapeError(
            f"bad EDST options ({err}); tickets and phases are edst_ensemble's own arguments, "
            f"see help(landscape.train.EDST) for the rest"
        ) from None
    run = train(run_spec, root, controllers=[controller], **train_kwargs)
    out = [Member(run, s, final_masks(run, s)) for s in controller.ticket_steps()]
    return Ensemble("edst", tuple(out), (run,))


def final_masks(run: Run, step: int) -> Masks | None:
    """The masks a run trained under at ``step``: a DST controller's, or ``masks.pt``."""
    return checkpoint_masks(load_checkpoint(run.checkpoint_path(step)), run.dir)


def checkpoint_masks(ckpt: Checkpoint, run_dir: Path) -> Masks | None:
    """The masks a checkpoint of the run in ``run_dir`` was trained under: a DST
    controller's (saved in the checkpoint), else the run's ``masks.pt`` (IMP, fixed masks);
    ``None`` for a dense run."""
    for state in ckpt.controllers.values():
        if isinstance(state, dict) and isinstance(state.get("masks"), dict) and state["masks"]:
            return {k: v.bool() for k, v in state["masks"].items()}
    if (Path(run_dir) / "masks.pt").is_file():
        return load_masks(Path(run_dir) / "masks.pt")
    return None


# -- training FLOPs -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cost:
    positions: dict[str, int]
    sizes: dict[str, int]
    batch: int

    def forward(self, active: dict[str, int] | None = None) -> float:
        """Forward FLOPs of one batch with ``active`` weights per layer (default: all)."""
        active = active or {}
        return self.batch * sum(
            2.0 * p * active.get(n, self.sizes[n]) for n, p in self.positions.items()
        )


def training_flops(run: Run, *, dense: bool = False) -> float:
    """FLOPs spent training ``run`` (every step it took, not its parent's).

    A step costs ``3 f`` on a batch, where ``f`` is the forward FLOPs at the network's density
    at that step (:mod:`landscape.sparse.flops`): dense for a run without masks, the mask's for
    a fixed mask, and the recorded masks between updates for dynamic sparse training. A step
    whose gradient is read densely costs ``2 f_S + f_D``.

    Args:
        run: a finished run.
        dense: the cost of the same steps in the dense network instead (the reference that
            relative FLOPs divide by).
    """
    spec = run.spec
    first = spec.parent.step if spec.parent is not None else 0
    steps = spec.train.steps - first
    ckpt = load_checkpoint(run.checkpoint_path(spec.train.steps))  # read once
    cost = _cost(run, ckpt)
    full = cost.forward()
    if dense:
        return 3.0 * full * steps
    records = _dst_records(ckpt)
    if records is None:
        masks = checkpoint_masks(ckpt, run.dir)
        active = None if masks is None else {n: int(m.sum()) for n, m in masks.items()}
        return 3.0 * cost.forward(active) * steps
    events: dict[int, dict[str, Any]] = {}
    for row in records:  # an event at step s: the mask of forward passes s, s + 1, ...
        event = events.setdefault(int(row["step"]), {"active": {}, "dense": False})
        event["active"][row["layer"]] = int(row["active"])
        event["dense"] = event["dense"] or bool(row["dense_gradient"])
    marks = sorted(events)
    total = 0.0
    for i, step in enumerate(marks):
        start = max(step, first)  # a child pays only for its own steps, not its parent's
        until = marks[i + 1] if i + 1 < len(marks) else spec.train.steps
        sparse = cost.forward(events[step]["active"])
        total += 3.0 * sparse * max(0, until - start)
        if events[step]["dense"] and step > first and i > 0:
            before = cost.forward(events[marks[i - 1]]["active"])
            total += full - before  # step s - 1 computed its weight gradient densely
    return total


def _cost(run: Run, ckpt: Checkpoint) -> _Cost:
    model = build_model(run.spec, ckpt.meta["num_classes"], ckpt.meta["in_shape"])
    params = dict(model.named_parameters())
    positions = layer_positions(model, ckpt.meta["in_shape"])
    sizes = {n: params[n].numel() for n in positions}
    return _Cost(positions, sizes, run.spec.train.batch_size)


def _dst_records(ckpt: Checkpoint) -> list[dict[str, Any]] | None:
    """The mask-update records a dynamic sparse controller keeps in its state (``dst.csv``
    is the same table, for people); ``None`` for a run without one."""
    for state in ckpt.controllers.values():
        if isinstance(state, dict) and isinstance(state.get("records"), list):
            return state["records"]
    return None


def _members(value: Any, what: str = "members") -> int:
    return integer(what, value, 1)
