"""Iterative magnitude pruning with rewinding, on real or on distilled data.

Frankle & Carbin 2019 (the lottery ticket: rewind to initialisation) and Frankle et al.
2020 (rewind to an early step k): train, remove ``rate`` of the remaining weights by
magnitude, rewind the survivors to step k, and train again; level L keeps ``(1 - rate)^L``
of the prunable weights. McDermott & Cummings 2023 find the masks by training on a
*distilled* set instead (``find_on``) and train the subnetwork on the real data.

Every training here is a run of the one loop. Level 0 is the dense run; level L >= 1 is a
child of the dense run at step k (weights and optimiser state as they were at k, the same
noise seed) trained under :class:`~landscape.train.controller.FixedMask`, so its directory
is named by its spec and its mask's digest, and it holds ``masks.pt``. A call that was cut
short finishes on a second call: finished levels are reused, the interrupted one resumes
from its last checkpoint, and the masks are recomputed from the saved weights.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch

from landscape.checks import integer, number
from landscape.errors import LandscapeError
from landscape.sparse import (
    Masks,
    check_scope,
    density,
    magnitude_prune,
    random_masks,
    save_masks,
    shuffle_masks,
)
from landscape.sparse.masks import check_masks
from landscape.specs import RunSpec
from landscape.train import distributed
from landscape.train.controller import FixedMask
from landscape.train.loop import Run, build_model, load_splits, train
from landscape.train.spawn import child_spec


@dataclass(frozen=True)
class Level:
    """One level of IMP.

    Attributes:
        level: 0 for the start (dense, or the given start masks), L after L prunings.
        density: fraction of the prunable weights kept (1.0 for the dense level).
        masks: the level's masks, ``None`` for the dense level.
        run: the subnetwork trained on ``spec``'s data (the real data).
        search_run: the run whose final weights ranked the next level's mask (``run``
            itself when the masks are found on the real data).
        examples_seen: training examples the mask search processed to reach this level's
            mask (steps x batch size of every search run before it, in this call).
    """

    level: int
    density: float
    masks: Masks | None
    run: Run
    search_run: Run
    examples_seen: int


def with_checkpoint(spec: RunSpec, step: int) -> RunSpec:
    """``spec`` keeping a checkpoint at ``step`` (unchanged, and so the same run, when it
    already does)."""
    step = integer("rewind_step", step, 0)
    if step > spec.train.steps:
        raise LandscapeError(
            f"rewind_step {step} lies beyond the run's {spec.train.steps} steps; rewind to an "
            f"early step (0 is the original lottery ticket)"
        )
    if step in spec.train.saved_steps():
        return spec
    steps = (*spec.train.checkpoint_steps, step)
    return spec.replace(train=dataclasses.replace(spec.train, checkpoint_steps=steps))


def train_masked(
    spec: RunSpec,
    masks: Masks | None,
    rewind_step: int = 0,
    root: str | os.PathLike | None = None,
    *,
    noise_seed: int | None = None,
    **train_kwargs,
) -> Run:
    """Train the subnetwork ``masks`` from ``spec``'s dense run rewound to ``rewind_step``.

    The dense run (``spec`` with a checkpoint at ``rewind_step``) trains only as far as
    the rewind step needs; the subnetwork is its child at that step under
    :class:`FixedMask`, with the same noise seed, or ``noise_seed`` for a child that
    differs in SGD noise (the stability test). ``masks=None`` trains the dense run itself,
    or with ``noise_seed``, its dense child.

    Args:
        spec: the dense run's spec; its data trains the subnetwork.
        masks: ``{name: bool tensor}`` for ``spec``'s model.
        rewind_step: the dense run's step whose weights (and optimiser state) the survivors
            start from; 0 rewinds to the initialisation.
        root: the runs root.
        **train_kwargs: passed to :func:`~landscape.train.loop.train`.
    """
    parent = with_checkpoint(spec, rewind_step)
    noise_seed = (
        parent.seeds.noise_seed if noise_seed is None else integer("noise_seed", noise_seed, 0)
    )
    if masks is None and noise_seed == parent.seeds.noise_seed:
        return train(parent, root, **train_kwargs)
    if rewind_step == parent.train.steps:
        raise LandscapeError(
            f"rewind_step {rewind_step} is the run's last step, so the subnetwork would not "
            f"train at all; rewind to an earlier step"
        )
    train(parent, root, stop_at=rewind_step, **train_kwargs)
    child = child_spec(parent, rewind_step, noise_seed)
    controllers = [] if masks is None else [FixedMask(masks)]
    run = train(child, root, controllers=controllers, **train_kwargs)
    if (
        masks is not None
        and not (run.dir / "masks.pt").is_file()
        and distributed.current_group().lead
    ):
        save_masks(run.dir / "masks.pt", masks)
    return run


def imp(
    spec: RunSpec,
    levels: int = 10,
    rate: float = 0.2,
    rewind_step: int = 0,
    find_on: RunSpec | None = None,
    scope: str = "global",
    *,
    find_rewind_step: int = 0,
    start_masks: Masks | None = None,
    spare_first: bool = False,
    spare_output: bool = False,
    root: str | os.PathLike | None = None,
    data=None,
    find_data=None,
    **train_kwargs,
) -> list[Level]:
    """Iterative magnitude pruning with rewinding, levels 0..``levels``.

    Args:
        spec: the dense run on the real data; every level's subnetwork trains like it.
        levels: prunings after level 0; level L keeps ``(1 - rate)^L`` of the weights.
        rate: share of the remaining weights removed per level, in (0, 1).
        rewind_step: the step of ``spec``'s dense run the survivors rewind to.
        find_on: a spec whose runs *find* the masks (e.g. on ``distilled:<key>`` data, with
            its own steps and batch size); it must build the same network from the same
            ``init_seed``. ``None``: the masks are found on ``spec`` itself.
        scope: ``"global"`` or ``"layer"`` magnitude ranking.
        find_rewind_step: the rewind step of the search runs when ``find_on`` is given.
        start_masks: begin from these masks instead of the dense network (the hybrid:
            real-data IMP from a distilled-data mask).
        spare_first, spare_output: keep the first / the output layer dense.
        root: the runs root.
        data: preloaded ``(train, test)`` splits of ``spec.data``.
        find_data: preloaded splits of ``find_on.data``.
        **train_kwargs: passed to every :func:`~landscape.train.loop.train` call.

    Returns:
        One :class:`Level` per level, from 0.
    """
    levels = integer("levels", levels, 0)
    rate = number("rate", rate, minimum=0.0, maximum=1.0)
    if not 0.0 < rate < 1.0:
        raise LandscapeError(f"rate must lie in (0, 1) (0.2 prunes 20% per level), got {rate}")
    search = _search_spec(spec, find_on)
    check_scope(scope)
    _check_rewind(spec, rewind_step)
    k_search = rewind_step if find_on is None else integer("find_rewind_step", find_rewind_step, 0)
    _check_rewind(search, k_search)
    if start_masks is not None:
        check_masks(_blank_model(spec, data), start_masks)
    real_kw = {**train_kwargs, "data": data}
    search_kw = {**train_kwargs, "data": find_data if find_on is not None else data}
    out: list[Level] = []
    masks, seen = start_masks, 0
    for level in range(levels + 1):
        search_run = train_masked(search, masks, k_search, root, **search_kw)
        run = search_run
        if find_on is not None:
            run = train_masked(spec, masks, rewind_step, root, **real_kw)
        kept = 1.0 if masks is None else density(masks)
        out.append(Level(level, kept, masks, run, search_run, seen))
        if level == levels:
            break
        seen += _examples(search_run.spec)
        model = search_run.load_model()
        masks = magnitude_prune(
            model, rate, masks, scope, spare_first=spare_first, spare_output=spare_output
        )
    return out


def one_shot(
    spec: RunSpec,
    target_density: float,
    rewind_step: int = 0,
    scope: str = "global",
    *,
    find_on: RunSpec | None = None,
    root: str | os.PathLike | None = None,
    **train_kwargs,
) -> Level:
    """The one-shot control: prune the trained dense network to ``target_density`` in a
    single step, rewind and train (Frankle & Carbin 2019's one-shot pruning)."""
    search = _search_spec(spec, find_on)
    check_scope(scope)
    _check_rewind(spec, rewind_step)
    target_density = number("target_density", target_density, minimum=0.0, maximum=1.0)
    if not 0.0 < target_density < 1.0:
        raise LandscapeError(
            f"target_density must lie in (0, 1) (the fraction of weights kept), got "
            f"{target_density}"
        )
    k = rewind_step if find_on is None else 0
    dense = train_masked(search, None, k, root, **train_kwargs)
    fraction = 1.0 - target_density
    masks = magnitude_prune(dense.load_model(), fraction, None, scope)
    run = train_masked(spec, masks, rewind_step, root, **train_kwargs)
    return Level(1, density(masks), masks, run, dense, _examples(dense.spec))


def random_control(
    spec: RunSpec,
    masks: Masks,
    seed: int = 0,
    rewind_step: int = 0,
    *,
    root: str | os.PathLike | None = None,
    **train_kwargs,
) -> Run:
    """The random-mask control: a mask with the same number of weights in every layer as
    ``masks``, drawn from ``seed``, rewound and trained like the IMP subnetwork."""
    shuffled = shuffle_masks(masks, torch.Generator().manual_seed(integer("seed", seed, 0)))
    return train_masked(spec, shuffled, rewind_step, root, **train_kwargs)


def reinit_control(
    spec: RunSpec,
    masks: Masks,
    init_seed: int,
    *,
    root: str | os.PathLike | None = None,
    **train_kwargs,
) -> Run:
    """The random re-initialisation control: the IMP mask trained from the weights of
    another ``init_seed`` (Frankle & Carbin 2019)."""
    init_seed = integer("init_seed", init_seed, 0)
    if init_seed == spec.seeds.init_seed:
        raise LandscapeError(
            f"re-initialisation needs another init_seed than the run's own ({init_seed})"
        )
    seeds = dataclasses.replace(spec.seeds, init_seed=init_seed)
    return train_masked(spec.replace(seeds=seeds), masks, 0, root, **train_kwargs)


def random_at_density(
    spec: RunSpec,
    target_density: float,
    distribution: str = "erk",
    seed: int = 0,
    *,
    root: str | os.PathLike | None = None,
    **train_kwargs,
) -> Run:
    """A random mask of ``target_density`` spread by ``distribution`` (uniform / ER / ERK),
    trained from the initialisation: sparse training without any search."""
    model = _blank_model(spec, train_kwargs.get("data"))
    generator = torch.Generator().manual_seed(integer("seed", seed, 0))
    masks = random_masks(model, target_density, generator, distribution=distribution)
    return train_masked(spec, masks, 0, root, **train_kwargs)


def summary_rows(levels: list[Level]) -> list[dict]:
    """One tidy row per level: level, density, run key, examples seen, final test error."""
    rows = []
    for lv in levels:
        metrics = lv.run.metrics()
        rows.append(
            {
                "level": lv.level,
                "density": lv.density,
                "run": lv.run.dir.name,
                "search_run": lv.search_run.dir.name,
                "examples_seen": lv.examples_seen,
                "test_error": metrics[-1]["test_error"] if metrics else "",
            }
        )
    return rows


def _search_spec(spec: RunSpec, find_on: RunSpec | None) -> RunSpec:
    if not isinstance(spec, RunSpec):
        raise LandscapeError(f"imp needs a RunSpec, got {type(spec).__name__}")
    if spec.parent is not None:
        raise LandscapeError("imp starts from a run's initialisation; give a spec without parent")
    if find_on is None:
        return spec
    if not isinstance(find_on, RunSpec):
        raise LandscapeError(
            f"find_on must be a RunSpec for the mask search (e.g. on distilled:<key> data), "
            f"got {type(find_on).__name__}"
        )
    if find_on.model != spec.model or find_on.seeds.init_seed != spec.seeds.init_seed:
        raise LandscapeError(
            "find_on must build the same network from the same init_seed as spec (model "
            f"{find_on.model.name} seed {find_on.seeds.init_seed} vs {spec.model.name} seed "
            f"{spec.seeds.init_seed}); a mask rewound to another initialisation is another "
            "experiment (reinit_control)"
        )
    return find_on


def _check_rewind(spec: RunSpec, step: int) -> None:
    """Refuse, before any training, a rewind step the level runs could not train from."""
    step = integer("rewind_step", step, 0)
    if step >= spec.train.steps:
        raise LandscapeError(
            f"rewind_step {step} is not before the run's last step ({spec.train.steps}), so "
            f"the subnetworks would not train; rewind to an early step (0: the lottery ticket)"
        )


def _examples(spec: RunSpec) -> int:
    start = spec.parent.step if spec.parent is not None else 0
    return (spec.train.steps - start) * spec.train.batch_size


def _blank_model(spec: RunSpec, data) -> torch.nn.Module:
    """The spec's network at its initialisation, shaped by preloaded data or the dataset."""
    info = (data if data is not None else load_splits(spec))[0].info
    return build_model(spec, info.num_classes, info.in_shape)
