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

from landscape.checks import integer, number
from landscape.errors import LandscapeError

SCHEDULES = ("constant", "cosine", "step", "linear")
OPTIMIZERS = ("sgd", "adam")
#: ``TrainSpec.precision``: float32 throughout, or bfloat16 autocast of the forward pass.
PRECISIONS = ("fp32", "bf16")


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

    def __post_init__(self) -> None:
        _text("DataSpec.name", self.name)
        augment = self.augment
        if isinstance(augment, str):  # "crop,flip" as the CLI writes it
            augment = tuple(a for a in augment.split(",") if a)
        if not isinstance(augment, (tuple, list)) or not all(isinstance(a, str) for a in augment):
            raise LandscapeError(
                f"DataSpec.augment must be names such as ('crop', 'flip'), got {self.augment!r}"
            )
        object.__setattr__(self, "augment", tuple(augment))
        if self.root is not None:
            object.__setattr__(self, "root", str(self.root))


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
        _text("ModelSpec.name", self.name)
        pairs = self.kwargs.items() if isinstance(self.kwargs, dict) else self.kwargs
        try:
            pairs = [(k, v) for k, v in pairs]
        except (TypeError, ValueError):
            pairs = None
        if pairs is None or not all(isinstance(k, str) for k, _ in pairs):
            raise LandscapeError(
                f"ModelSpec.kwargs must be a dict of option name -> value, got {self.kwargs!r}"
            )
        reserved = sorted({k for k, _ in pairs} & {"num_classes", "in_shape"})
        if reserved:
            raise LandscapeError(
                f"ModelSpec.kwargs cannot set {', '.join(reserved)}: they come from the dataset "
                f"(DatasetInfo); choose the data instead"
            )
        # values become tuples all the way down, so the spec is hashable and survives JSON;
        # whole-number floats become ints, so width=1 (CLI) and width=1.0 name one run
        pairs = [(k, tuplify(_whole_floats(v))) for k, v in pairs]
        object.__setattr__(self, "kwargs", tuple(sorted(pairs)))


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
        lr_factors: with ``"step"``, the rate after each milestone as a multiple of ``lr``
            (one per milestone) instead of powers of ``gamma``; rates may go up again, as in
            the refinement phases of EDST (FreeTickets).
        warmup_steps: steps of linear warm-up from ``lr / warmup_steps``.
        steps: total optimiser steps.
        batch_size: examples per step.
        eval_every: steps between evaluations written to ``metrics.csv`` (0: only at the end).
        checkpoint_steps: steps whose weights are kept; step 0 and the last are always kept.
        precision: ``"fp32"``, or ``"bf16"``: the forward pass and the loss under bfloat16
            autocast (weights, gradients and the optimiser stay float32; evaluation is in
            float32). It changes the arithmetic, so it is part of the run's name.
    """

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    lr_factors: tuple[float, ...] = ()
    warmup_steps: int = 0
    steps: int = 1000
    batch_size: int = 128
    eval_every: int = 0
    checkpoint_steps: tuple[int, ...] = ()
    precision: str = "fp32"

    def __post_init__(self) -> None:
        # 1 and 1.0 must name the same run, whether it came from Python or the CLI
        lows = {"lr": 0.0, "momentum": 0.0, "weight_decay": 0.0, "gamma": 0.0}
        for name, low in lows.items():
            value = number(f"TrainSpec.{name}", getattr(self, name), minimum=low)
            object.__setattr__(self, name, value)
        lows = {"warmup_steps": 0, "steps": 1, "batch_size": 1, "eval_every": 0}
        for name, low in lows.items():
            object.__setattr__(self, name, integer(f"TrainSpec.{name}", getattr(self, name), low))
        if not isinstance(self.nesterov, bool):
            raise LandscapeError(f"TrainSpec.nesterov must be True or False, got {self.nesterov!r}")
        for name in ("milestones", "checkpoint_steps"):
            values = getattr(self, name)
            if isinstance(values, (str, bytes)) or not isinstance(values, (tuple, list)):
                raise LandscapeError(f"TrainSpec.{name} must be a list of steps, got {values!r}")
            steps = [integer(f"TrainSpec.{name}", v, 0) for v in values]
            steps = sorted(set(steps)) if name == "checkpoint_steps" else steps
            object.__setattr__(self, name, tuple(steps))
        if not isinstance(self.optimizer, str) or self.optimizer not in OPTIMIZERS:
            raise LandscapeError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        if not isinstance(self.precision, str) or self.precision not in PRECISIONS:
            raise LandscapeError(
                f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}"
            )
        if not isinstance(self.schedule, str) or self.schedule not in SCHEDULES:
            raise LandscapeError(
                f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}"
            )
        if not self.lr > 0:
            raise LandscapeError(f"lr must be positive, got {self.lr}")
        if self.momentum >= 1:
            raise LandscapeError(f"TrainSpec.momentum must be below 1, got {self.momentum}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise LandscapeError(
                "TrainSpec.nesterov needs optimizer='sgd' with momentum > 0 "
                f"(got optimizer={self.optimizer!r}, momentum={self.momentum})"
            )
        self._check_lr_factors()
        if self.milestones and self.schedule != "step":
            raise LandscapeError(
                f"TrainSpec.milestones only apply to schedule='step', not {self.schedule!r}"
            )
        late = [m for m in self.milestones if m > self.steps]
        if late:
            raise LandscapeError(
                f"TrainSpec.milestones {late} lie beyond the run's {self.steps} steps"
            )
        if self.warmup_steps > self.steps:
            raise LandscapeError(
                f"warmup_steps ({self.warmup_steps}) exceeds the run's {self.steps} steps"
            )
        bad = [s for s in self.checkpoint_steps if not 0 <= s <= self.steps]
        if bad:
            raise LandscapeError(
                f"checkpoint_steps {bad} lie outside the run; use steps between 0 and {self.steps}"
            )

    def _check_lr_factors(self) -> None:
        factors = self.lr_factors
        if isinstance(factors, (str, bytes)) or not isinstance(factors, (tuple, list)):
            raise LandscapeError(f"TrainSpec.lr_factors must be a list of numbers, got {factors!r}")
        factors = tuple(number("TrainSpec.lr_factors", f, minimum=0.0) for f in factors)
        object.__setattr__(self, "lr_factors", factors)
        if not factors:
            return
        if self.schedule != "step" or len(factors) != len(self.milestones):
            raise LandscapeError(
                f"TrainSpec.lr_factors needs schedule='step' and one factor per milestone "
                f"(got {len(factors)} factors for {len(self.milestones)} milestones, schedule "
                f"{self.schedule!r})"
            )
        if list(self.milestones) != sorted(set(self.milestones)):
            raise LandscapeError(
                f"TrainSpec.milestones must increase when lr_factors are given, got "
                f"{list(self.milestones)}"
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
            passed = sum(step >= m for m in self.milestones)
            if self.lr_factors:
                return self.lr * (self.lr_factors[passed - 1] if passed else 1.0)
            return self.lr * self.gamma**passed
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
        object.__setattr__(self, "init_seed", integer("init_seed", self.init_seed, 0))
        object.__setattr__(self, "noise_seed", integer("noise_seed", self.noise_seed, 0))


@dataclass(frozen=True)
class ParentRef:
    """The checkpoint a child run starts from (Frankle et al. 2020's spawning).

    Attributes:
        run_hash: hash of the parent's :class:`RunSpec`.
        step: the parent's step whose weights and optimiser state the child starts from.
    """

    run_hash: str
    step: int

    def __post_init__(self) -> None:
        _text("ParentRef.run_hash", self.run_hash)
        object.__setattr__(self, "step", integer("ParentRef.step", self.step, 0))


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a training run."""

    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    seeds: Seeds = field(default_factory=Seeds)
    parent: ParentRef | None = None

    def __post_init__(self) -> None:
        kinds = {"data": DataSpec, "model": ModelSpec, "train": TrainSpec, "seeds": Seeds}
        for name, kind in kinds.items():
            if not isinstance(getattr(self, name), kind):
                raise LandscapeError(
                    f"RunSpec.{name} must be a {kind.__name__}, got "
                    f"{getattr(self, name)!r}; e.g. RunSpec({name}={kind.__name__}(...))"
                )
        if self.parent is not None and not isinstance(self.parent, ParentRef):
            raise LandscapeError(f"RunSpec.parent must be a ParentRef, got {self.parent!r}")

    def to_dict(self) -> dict[str, Any]:
        """Every field, as JSON-ready nested dicts."""
        return jsonable(dataclasses.asdict(self))

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
        except (TypeError, AttributeError) as err:
            raise LandscapeError(f"spec does not describe a run: {err}") from None

    def hash_fields(self) -> dict[str, Any]:
        """The fields that differ from the defaults, without those marked ``hash=False``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            sub = {
                g.name: jsonable(getattr(value, g.name))
                for g in dataclasses.fields(value)
                if g.metadata.get("hash", True)
                and jsonable(getattr(value, g.name)) != jsonable(field_default(g))
            }
            if sub or f.name == "parent":
                out[f.name] = sub if f.name != "parent" else jsonable(dataclasses.asdict(value))
        return out

    def run_hash(self) -> str:
        """A 12-hex-digit name that is stable across sessions, machines and Python versions."""
        return digest(self.hash_fields())

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with top-level fields replaced (``data=``, ``train=``, ``seeds=``, ...)."""
        return dataclasses.replace(self, **changes)


def digest(fields: Any) -> str:
    """12 hex digits of the SHA-256 of ``fields`` as canonical JSON: the name of anything
    described by JSON-ready data (a run, a synthetic set)."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _text(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise LandscapeError(f"{name} must be a non-empty string, got {value!r}")


def field_default(f: dataclasses.Field) -> Any:
    """The default value of a dataclass field (``MISSING`` if it has none)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def jsonable(value: Any) -> Any:
    """Dicts and sequences as JSON-ready dicts and lists, recursively."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def _whole_floats(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_whole_floats(v) for v in value]
    return value


def tuplify(value: Any) -> Any:
    """Lists (from JSON) as tuples, recursively, so the value is hashable."""
    if isinstance(value, (list, tuple)):
        return tuple(tuplify(v) for v in value)
    return value


def _build(cls: type, d: dict[str, Any]) -> Any:
    return cls(**{k: tuplify(v) for k, v in d.items()})
