"""Children of a run's checkpoint that differ only in SGD noise (Frankle et al. 2020).

A child copies the parent's weights, optimiser state and controller state at step ``k`` and
trains on to the parent's last step with its own ``noise_seed`` (data order and
augmentation). Its spec records the parent's hash and ``k``, so children are runs like any
other: hashed, reused, resumable.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from landscape.checks import integer
from landscape.errors import LandscapeError
from landscape.specs import ParentRef, RunSpec, Seeds
from landscape.train.loop import Run, train


def child_spec(
    parent: RunSpec, step: int, noise_seed: int, parent_key: str | None = None
) -> RunSpec:
    """The spec of the child of ``parent`` at ``step`` trained with ``noise_seed``.

    Args:
        parent: the parent run's spec.
        step: the parent's step to branch from; must be one of its saved steps.
        noise_seed: the child's data-order and augmentation seed.
        parent_key: the parent's run directory name when it trained under controllers
            (default: the parent spec's hash).
    """
    if not isinstance(parent, RunSpec):
        raise LandscapeError(f"the parent must be a RunSpec, got {type(parent).__name__}")
    step = integer("step", step, 0)
    if step not in parent.train.saved_steps():
        raise LandscapeError(
            f"the parent keeps no checkpoint at step {step}; add it to its "
            f"train.checkpoint_steps (it keeps {list(parent.train.saved_steps())})"
        )
    return dataclasses.replace(
        parent,
        seeds=Seeds(init_seed=parent.seeds.init_seed, noise_seed=noise_seed),
        parent=ParentRef(run_hash=parent_key or parent.run_hash(), step=step),
    )


def spawn(
    parent: RunSpec,
    step: int,
    noise_seeds: Sequence[int],
    root: str | os.PathLike | None = None,
    *,
    controllers_factory=None,
    **train_kwargs,
) -> list[Run]:
    """Train the parent up to ``step`` (if needed) and one child per noise seed from there.

    The parent trains only as far as the children need; asking for a later step, or
    calling :func:`~landscape.train.loop.train` on the parent, resumes it exactly.

    Args:
        parent: the parent's spec; ``step`` must be among its saved steps.
        step: where the children branch off.
        noise_seeds: one child per seed; they must differ from each other.
        root: the runs root.
        controllers_factory: called with no arguments to make fresh controllers for each run
            (controllers hold state, so runs never share instances).
        **train_kwargs: passed to :func:`landscape.train.loop.train` (``data``, ``device``, ...).

    Returns:
        The children's runs, in the order of ``noise_seeds``.
    """
    if isinstance(noise_seeds, (str, bytes)) or not isinstance(noise_seeds, Sequence):
        raise LandscapeError(f"noise_seeds must be a list of seeds, got {noise_seeds!r}")
    noise_seeds = [integer("noise seed", s, 0) for s in noise_seeds]
    if not noise_seeds:
        raise LandscapeError("noise_seeds is empty; give one seed per child, e.g. [1, 2]")
    if len(set(noise_seeds)) != len(noise_seeds):
        raise LandscapeError(f"noise seeds must differ, got {list(noise_seeds)}")
    child_spec(parent, step, noise_seeds[0])  # checks the step before any training
    if step == parent.train.steps:
        raise LandscapeError(
            f"step {step} is the parent's last step, so the children would not train at all; "
            f"branch from an earlier saved step"
        )
    if controllers_factory is not None and (
        isinstance(controllers_factory, type) or not callable(controllers_factory)
    ):
        raise LandscapeError(
            "controllers_factory must be a function that returns fresh controllers, e.g. "
            "lambda: [FixedMask(masks)]"
        )
    make = controllers_factory or (lambda: ())
    parent_run = train(parent, root, controllers=make(), stop_at=step, **train_kwargs)
    key = parent_run.dir.name
    return [
        train(child_spec(parent, step, seed, key), root, controllers=make(), **train_kwargs)
        for seed in noise_seeds
    ]
