"""Frozen dataclasses that describe a run, and the stable hash that names its directory.

A :class:`RunSpec` fully determines a training run: data, model, optimiser and schedule,
the two seeds, and (for a child of another run) the parent checkpoint it starts from. Its
:meth:`RunSpec.run_hash` hashes only the fields that differ from the defaults, so adding a
new field with a default never renames existing runs (the open_lth convention).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from landscape.errors import LandscapeError

SCHEDULES = ("constant", "cosine", "step", "linear")
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class DataSpec:
    """Which dataset to train on and how to augment it.

    Attributes:
        name: a name from :func:`landscape.data.list_datasets`.
        augment: augmentations applied to whole training batches, e.g. ``("crop", "flip")``.
        root: where the files live; not part of the hash (it says where, not what).
    """

    name: str = "mnist1d"
    augment: tuple[str, ...] = ()
    root: str | None = field(default=None, metadata={"hash": False})


@dataclass(frozen=True)
class ModelSpec:
    """Which architecture to build: a name from :func:`landscape.models.list_models`.

    Attributes:
        name: registry name, or ``tv:<torchvision name>``.
        kwargs: extra constructor arguments as sorted ``(key, value)`` pairs.
    """

    name: str = "conv1d"
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        pairs = self.kwargs.items() if isinstance(self.kwargs, dict) else self.kwargs
        # values become tuples all the way down, so the spec is hashable and survives JSON
        object.__setattr__(self, "kwargs", tuple(sorted((k, _tuplify(v)) for k, v in pairs)))


@dataclass(frozen=True)
class TrainSpec:
    """Optimiser, learning-rate schedule and length of a run, counted in optimiser steps.

    The learning rate at step ``s`` (the step about to be taken, from 0) is given by
    :meth:`lr_at`: a linear warm-up over ``warmup_steps``, then the chosen schedule.

    Attributes:
        optimizer: ``"sgd"`` (with momentum/nesterov) or ``"adam"``.
        lr: peak learning rate.
        momentum: SGD momentum.
        nesterov: Nesterov momentum for SGD.
        weight_decay: L2 coefficient passed to the optimiser.
        schedule: ``"constant"``, ``"cosine"`` (to zero), ``"linear"`` (to zero) or ``"step"``.
        milestones: steps at which ``"step"`` multiplies the rate by ``gamma``.
        gamma: decay factor of the ``"step"`` schedule.
        warmup_steps: steps of linear warm-up from ``lr / warmup_steps``.
        steps: total optimiser steps.
        batch_size: examples per step.
        eval_every: steps between evaluations written to ``metrics.csv`` (0: only at the end).
        checkpoint_steps: steps whose weights are kept; step 0 and the last are always kept.
    """

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    warmup_steps: int = 0
    steps: int = 1000
    batch_size: int = 128
    eval_every: int = 0
    checkpoint_steps: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        # 1 and 1.0 must name the same run, whether it came from Python or the CLI
        for name in ("lr", "momentum", "weight_decay", "gamma"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("warmup_steps", "steps", "batch_size", "eval_every"):
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "nesterov", bool(self.nesterov))
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        object.__setattr__(
            self, "checkpoint_steps", tuple(sorted({int(s) for s in self.checkpoint_steps}))
        )
        if self.optimizer not in OPTIMIZERS:
            raise LandscapeError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        if self.schedule not in SCHEDULES:
            raise LandscapeError(
                f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}"
            )
        if self.steps < 1 or self.batch_size < 1:
            raise LandscapeError("steps and batch_size must both be at least 1")
        if not self.lr > 0:
            raise LandscapeError(f"lr must be positive, got {self.lr}")
        bad = [s for s in self.checkpoint_steps if not 0 <= s <= self.steps]
        if bad:
            raise LandscapeError(
                f"checkpoint_steps {bad} lie outside the run; use steps between 0 and {self.steps}"
            )

    def lr_at(self, step: int) -> float:
        """Learning rate for the optimiser step taken at ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        t = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * t))
        if self.schedule == "linear":
            return self.lr * (1.0 - t)
        if self.schedule == "step":
            return self.lr * self.gamma ** sum(step >= m for m in self.milestones)
        return self.lr

    def saved_steps(self) -> tuple[int, ...]:
        """Every step whose checkpoint the run keeps: 0, the requested ones, and the last."""
        return tuple(sorted({0, self.steps, *self.checkpoint_steps}))


@dataclass(frozen=True)
class Seeds:
    """The two independent sources of randomness of a run.

    Attributes:
        init_seed: draws the initial weights.
        noise_seed: draws the data order and augmentation: the *SGD noise*.
    """

    init_seed: int = 0
    noise_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "init_seed", int(self.init_seed))
        object.__setattr__(self, "noise_seed", int(self.noise_seed))


@dataclass(frozen=True)
class ParentRef:
    """The checkpoint a child run starts from (Frankle et al. 2020's spawning).

    Attributes:
        run_hash: hash of the parent's :class:`RunSpec`.
        step: the parent's step whose weights and optimiser state the child starts from.
    """

    run_hash: str
    step: int


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a training run."""

    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    seeds: Seeds = field(default_factory=Seeds)
    parent: ParentRef | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every field, as JSON-ready nested dicts."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`LandscapeError`."""
        try:
            parent = d.get("parent")
            return cls(
                data=_build(DataSpec, d.get("data", {})),
                model=_build(ModelSpec, d.get("model", {})),
                train=_build(TrainSpec, d.get("train", {})),
                seeds=_build(Seeds, d.get("seeds", {})),
                parent=None if parent is None else _build(ParentRef, parent),
            )
        except TypeError as err:
            raise LandscapeError(f"spec does not describe a run: {err}") from None

    def hash_fields(self) -> dict[str, Any]:
        """The fields that differ from the defaults, without those marked ``hash=False``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            sub = {
                g.name: _jsonable(getattr(value, g.name))
                for g in dataclasses.fields(value)
                if g.metadata.get("hash", True)
                and _jsonable(getattr(value, g.name)) != _jsonable(_default(g))
            }
            if sub or f.name == "parent":
                out[f.name] = sub if f.name != "parent" else _jsonable(dataclasses.asdict(value))
        return out

    def run_hash(self) -> str:
        """A 12-hex-digit name that is stable across sessions, machines and Python versions."""
        text = json.dumps(self.hash_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with top-level fields replaced (``data=``, ``train=``, ``seeds=``, ...)."""
        return dataclasses.replace(self, **changes)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _tuplify(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_tuplify(v) for v in value)
    return value


def _build(cls: type, d: dict[str, Any]) -> Any:
    return cls(**{k: _tuplify(v) for k, v in d.items()})
