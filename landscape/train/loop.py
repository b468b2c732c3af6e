"""The one SGD training loop: seeds, schedule, checkpoints at given steps, resume, children.

A run lives in ``<runs root>/<run key>/``::

    spec.json                 the RunSpec (and controller descriptions) that made it
    checkpoints/step_<k>.pt   weights, optimiser and controller state at each saved step
    checkpoints/resume.pt     the latest resume point (removed when the run finishes)
    metrics.csv               step, lr, train_loss, test_loss, test_error

A run whose last checkpoint exists is reused as it is; an interrupted run resumes from its
latest checkpoint and ends with bitwise the same weights as an uninterrupted one, because
every random draw is a pure function of the seeds and the step: the initial weights of
``init_seed``, the data order and augmentation of ``(noise_seed, epoch)``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from landscape.analysis.evaluate import check_logits, eval_mode, evaluate, forward_errors
from landscape.checks import integer, optional_integer
from landscape.data import BatchIterator, Split, get_dataset, origin_of
from landscape.data.paths import runs_root
from landscape.devices import resolve_device
from landscape.errors import LandscapeError
from landscape.io import (
    Checkpoint,
    load_checkpoint,
    load_weights,
    read_json,
    read_rows,
    save_checkpoint,
    step_checkpoints,
    write_json,
    write_rows,
)
from landscape.models import create_model
from landscape.specs import RunSpec, digest
from landscape.train import distributed
from landscape.train.controller import Controller, LoopState

log = logging.getLogger(__name__)


class TrainingDiverged(LandscapeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


def run_key(spec: RunSpec, controllers: Sequence[Controller] = ()) -> str:
    """The directory name of a run: its spec hash, extended by any controllers' descriptions."""
    if not controllers:
        return spec.run_hash()

    return digest({"spec": spec.hash_fields(), "controllers": [c.describe() for c in controllers]})


@dataclass(frozen=True)
class Run:
    """A finished (or existing) run on disk."""

    spec: RunSpec
    dir: Path

    def checkpoint_path(self, step: int) -> Path:
        """Path of the checkpoint saved at ``step``; :class:`LandscapeError` if absent."""
        path = self.dir / "checkpoints" / f"step_{step}.pt"
        if not path.is_file():
            have = ", ".join(str(s) for s in self.saved_steps()) or "none"
            if step in self.spec.train.saved_steps():
                advice = "the run has not reached it yet; train(spec) resumes the run"
            else:
                advice = f"add {step} to TrainSpec.checkpoint_steps and train again"
            raise LandscapeError(
                f"run {self.dir} has no checkpoint at step {step} (saved steps: {have}); " + advice
            )
        return path

    def saved_steps(self) -> list[int]:
        """Steps that have a checkpoint on disk, ascending."""
        return sorted(step_checkpoints(self.dir / "checkpoints"))

    def load_model(self, step: int | None = None, device: Any = None) -> nn.Module:
        """The model at ``step`` (default: the last step), on ``device``."""
        step = self.spec.train.steps if step is None else integer("step", step, 0)
        ckpt = load_checkpoint(self.checkpoint_path(step))
        model = build_model(self.spec, ckpt.meta["num_classes"], ckpt.meta["in_shape"])
        load_weights(model, ckpt)
        return model.to(resolve_device(device)) if device is not None else model

    def metrics(self) -> list[dict[str, Any]]:
        """Rows of ``metrics.csv``."""
        path = self.dir / "metrics.csv"
        return read_rows(path) if path.is_file() else []


def load_splits(spec: RunSpec) -> tuple[Split, Split]:
    """The train and test splits named by ``spec.data``."""
    return (
        get_dataset(spec.data.name, spec.data.root, split="train"),
        get_dataset(spec.data.name, spec.data.root, split="test"),
    )


def build_model(spec: RunSpec, num_classes: int, in_shape: tuple[int, ...]) -> nn.Module:
    """The spec's model, with initial weights drawn from ``init_seed`` alone.

    The global RNG is forked, so building a model never disturbs the caller's randomness.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seeds.init_seed)
        return create_model(
            spec.model.name,
            num_classes=num_classes,
            in_shape=tuple(in_shape),
            **dict(spec.model.kwargs),
        )


def _make_optimizer(spec: RunSpec, model: nn.Module) -> torch.optim.Optimizer:
    t = spec.train
    if t.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.SGD(
        model.parameters(),
        lr=t.lr,
        momentum=t.momentum,
        nesterov=t.nesterov,
        weight_decay=t.weight_decay,
    )


def train(
    spec: RunSpec,
    root: str | os.PathLike | None = None,
    *,
    controllers: Sequence[Controller] = (),
    data: tuple[Split, Split] | None = None,
    device: str | torch.device | None = None,
    resume_every: int = 1000,
    stop_at: int | None = None,
    progress: bool | None = None,
    sync_batchnorm: bool = True,
    channels_last: bool | None = None,
    compile: bool = False,
) -> Run:
    """Train ``spec`` (or reuse/resume it) and return the run.

    Args:
        spec: the run. With ``spec.parent`` set, training starts from the parent's
            checkpoint at ``parent.step`` (weights, optimiser and controller state) and runs
            from that step to ``spec.train.steps``; the parent must exist under ``root``.
        root: the runs root (see :func:`runs_root`).
        controllers: sparsity methods steering the loop (see :mod:`landscape.train.controller`).
        data: preloaded ``(train, test)`` splits; loaded from ``spec.data`` when omitted.
        device: where to train; default CUDA if available, else CPU.
        resume_every: also write ``resume.pt`` every this many steps (0: never), so an
            interrupted run loses at most that much work; it costs disk writes, not results.
        stop_at: stop after this step without finishing (the run can be resumed later).
        progress: show a tqdm bar; default only when stderr is a terminal.
        sync_batchnorm: under ``torchrun``, normalise BatchNorm by the global batch's
            statistics, so N processes train like one (see
            :mod:`landscape.train.distributed`); ``False`` keeps per-process statistics.
        channels_last: train image models in the channels-last memory layout (faster
            convolutions on GPUs); default: on CUDA for 4-D inputs. The same arithmetic, so
            not part of the run's name; results agree to float rounding.
        compile: run the training step's forward through ``torch.compile`` (a warm-up of
            seconds to minutes, then faster steps on GPUs); not part of the run's name.

    Raises:
        TrainingDiverged: the loss became NaN/inf; checkpoints already written are kept.
        LandscapeError: the run directory holds a different spec, or the parent is missing.
    """
    controllers = _check_arguments(spec, root, controllers, data)
    for c in controllers:
        c.check(spec)
    resume_every = integer("resume_every", resume_every, 0)
    stop_at = optional_integer("stop_at", stop_at, 0)
    root = runs_root(root)
    run = Run(spec, root / run_key(spec, controllers))
    t = spec.train
    device = resolve_device(device)
    if (run.dir / "checkpoints" / f"step_{t.steps}.pt").is_file():
        _claim_dir(run, controllers)  # checks that the directory holds this very run
        return run

    group = distributed.current_group()
    distributed.check_batch(t.batch_size, group)
    train_split, test_split = data if data is not None else load_splits(spec)
    _check_splits(spec, train_split, test_split)
    info = train_split.info
    model = build_model(spec, info.num_classes, info.in_shape).to(device)
    optimizer = _make_optimizer(spec, model)
    stream = BatchIterator(
        train_split.to(device),
        t.batch_size,
        shuffle=True,
        augment=tuple(spec.data.augment),
        seed=spec.seeds.noise_seed,
        device=device,
    )
    _probe(model, stream.split)
    if group.lead:
        _claim_dir(run, controllers)  # only once the spec is known to build and run
    start, meta = _restore(run, root, model, optimizer, controllers)
    test_split = test_split.to(device)
    per_epoch = len(stream)
    if per_epoch == 0:
        raise LandscapeError(
            f"batch_size {t.batch_size} exceeds the {len(train_split)} training examples"
        )

    rows = [r for r in run.metrics() if r["step"] <= start]
    loss_sum, loss_count = meta.get("loss_sum", 0.0), meta.get("loss_count", 0)
    state = LoopState(
        spec, run.dir, model, optimizer, start, start // per_epoch, per_epoch, group=group
    )
    saved = set(t.saved_steps())
    end = t.steps if stop_at is None else min(stop_at, t.steps)

    def checkpoint(name: str) -> None:
        if not group.lead:
            return
        save_checkpoint(
            run.dir / "checkpoints" / name,
            model,
            optimizer,
            meta={
                "step": state.step,
                "run_key": run.dir.name,
                "model": spec.model.name,
                "model_kwargs": dict(spec.model.kwargs),
                "num_classes": info.num_classes,
                "in_shape": list(info.in_shape),
                "loss_sum": loss_sum,
                "loss_count": loss_count,
                "processes": group.world_size,  # that wrote this step's weights together
            },
            controllers={c.name: c.state_dict() for c in controllers},
        )

    def record(train_loss: float | None, lr: float) -> None:
        if group.lead:
            rows.append(_eval_row(model, test_split, state.step, train_loss, lr))
            write_rows(run.dir / "metrics.csv", rows)

    wanted = device.type == "cuda" if channels_last is None else bool(channels_last)
    layout = wanted and len(info.in_shape) == 3  # only 4-D batches have a channels-last layout
    if layout:
        model.to(memory_format=torch.channels_last)  # parameters keep their identity
    # the model itself in a single process
    net = distributed.wrap(model, group, device, sync_batchnorm=bool(sync_batchnorm))
    if compile:
        net = torch.compile(net)
    autocast = t.precision == "bf16"
    model.train()
    for c in controllers:
        c.on_start(state)
    if start == _first_step(spec) and not (run.dir / "checkpoints" / f"step_{start}.pt").exists():
        checkpoint(f"step_{start}.pt")
        if t.eval_every:
            record(None, t.lr_at(start))
    rng_devices = [device] if device.type == "cuda" else []
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=t.steps, initial=start, disable=not show, desc=run.dir.name, leave=False)
    for step in range(start, end):
        state.epoch, index = divmod(step, per_epoch)
        x, y = stream.batch(state.epoch, index)
        lr = t.lr_at(step)
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr
        with torch.random.fork_rng(devices=rng_devices):
            # stochastic layers (dropout) draw from a seed of (noise_seed, step): part of
            # the SGD noise, and reproduced exactly on resume
            _seed(step_seed(spec.seeds.noise_seed, step, group.rank), device)
            xs, ys = distributed.shard(x, y, group)
            if layout:
                xs = xs.contiguous(memory_format=torch.channels_last)
            with (
                forward_errors(xs),
                torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast),
            ):
                logits = net(xs)
                loss = F.cross_entropy(logits.float(), ys)
            value = distributed.mean(loss, group)  # the same on every process
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"training loss became {value} at step {step} of run {run.dir}; "
                    f"checkpoints kept: steps {_listing(run)}. Lower the learning rate (now "
                    f"{lr:g}) or add warm-up."
                )
            state.loss = loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        for c in controllers:
            c.after_backward(state)
        optimizer.step()
        state.step = step + 1
        loss_sum, loss_count = loss_sum + value, loss_count + 1
        for c in controllers:
            c.after_step(state)
        if index == per_epoch - 1:
            for c in controllers:
                c.on_epoch_end(state)
        state.loss = None
        bar.update(1)
        evaluate_now = state.step == t.steps or (t.eval_every and state.step % t.eval_every == 0)
        keep = state.step in saved or (resume_every and state.step % resume_every == 0)
        if (evaluate_now or keep or state.step == end) and not _finite(model):
            raise TrainingDiverged(
                f"the weights became non-finite at step {state.step} of run {run.dir}; "
                f"checkpoints kept: steps {_listing(run)}. Lower the learning rate (now "
                f"{lr:g}) or add warm-up."
            )
        if evaluate_now:
            record(loss_sum / loss_count, lr)
            loss_sum, loss_count = 0.0, 0
        if state.step in saved:
            checkpoint(f"step_{state.step}.pt")
        elif keep or state.step == end:
            checkpoint("resume.pt")
    bar.close()
    if state.step == t.steps and group.lead:
        (run.dir / "checkpoints" / "resume.pt").unlink(missing_ok=True)
    distributed.barrier(group)  # every process returns once the files are written
    return run


def _check_arguments(spec: Any, root: Any, controllers: Any, data: Any) -> tuple[Controller, ...]:
    """Refuse arguments of the wrong kind before anything touches the disk."""
    if not isinstance(spec, RunSpec):
        raise LandscapeError(
            f"train needs a landscape.specs.RunSpec, got {type(spec).__name__}; build one "
            f"with RunSpec(data=DataSpec(...), model=ModelSpec(...), train=TrainSpec(...))"
        )
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise LandscapeError(f"the runs root must be a path, got {root!r}")
    if root is not None and Path(root).exists() and not Path(root).is_dir():
        raise LandscapeError(f"the runs root {root} is a file; give a folder")
    if controllers is None:
        controllers = ()
    if isinstance(controllers, Controller):
        controllers = [controllers]
    controllers = tuple(controllers)
    odd = [type(c).__name__ for c in controllers if not isinstance(c, Controller)]
    if odd:
        raise LandscapeError(
            f"controllers must be landscape.train.Controller instances, got {', '.join(odd)}"
        )
    names = [c.name for c in controllers]
    if len(set(names)) != len(names):
        raise LandscapeError(
            f"two controllers share a name ({names}); their states would overwrite each "
            f"other in checkpoints, so give each class its own name"
        )
    if data is not None and (
        not isinstance(data, (tuple, list))
        or len(data) != 2
        or not all(isinstance(d, Split) for d in data)
    ):
        raise LandscapeError(
            "data must be a (train, test) pair of landscape.data.Split, e.g. "
            "load_splits(spec), or None to load spec.data"
        )
    return controllers


def _check_splits(spec: RunSpec, train_split: Split, test_split: Split) -> None:
    """The data must be the whole of the spec's dataset, with one shape and class count.

    A run is named by its spec, so training it on other data (another dataset, a subset,
    unnormalised inputs) would store another run's weights under this one's name. Data of
    your own is named by registering it (:func:`landscape.data.register_dataset`); a
    synthetic set from :mod:`landscape.train.distill` is the dataset ``distilled:<key>``.
    """
    for split, part in ((train_split, "train"), (test_split, "test")):
        if split.info.name != spec.data.name:
            raise LandscapeError(
                f"the data given is {split.info.name!r} but the spec names "
                f"{spec.data.name!r}; a run is stored under its spec, so train on the data "
                f"it names (or name the data in DataSpec)"
            )
        expected = origin_of(spec.data.name, part)
        if split.origin != expected:
            found = "a Split built by hand" if split.origin is None else repr(split.origin)
            raise LandscapeError(
                f"the {part} data given is {found}, not the whole {part} split of "
                f"{spec.data.name!r} that the spec names; a run is stored under its spec, so "
                f"pass get_dataset({spec.data.name!r}, split={part!r}) (or load_splits(spec)), "
                f"or register your data as a dataset and name it in DataSpec"
            )
    a, b = train_split.info, test_split.info
    if (a.num_classes, a.in_shape) != (b.num_classes, b.in_shape):
        raise LandscapeError(
            f"the train split has {a.num_classes} classes of shape {a.in_shape} but the "
            f"test split {b.num_classes} of shape {b.in_shape}; pass splits of one dataset"
        )


def _probe(model: nn.Module, split: Split) -> None:
    """One forward pass on two examples: a model that cannot train on the data fails here,
    before the run directory is written."""
    x, y = split.x[:2], split.y[:2]
    with torch.no_grad(), eval_mode(model), forward_errors(x):
        check_logits(model(x), y)


def step_seed(noise_seed: int, step: int, rank: int = 0) -> int:
    """The seed of the global RNG during step ``step`` on process ``rank``: a 63-bit hash."""
    key = f"landscape-step:{noise_seed}:{step}" + (f":{rank}" if rank else "")
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _listing(run: Run) -> str:
    return ", ".join(str(s) for s in run.saved_steps()) or "none"


def _first_step(spec: RunSpec) -> int:
    return spec.parent.step if spec.parent is not None else 0


def _eval_row(
    model: nn.Module, test: Split, step: int, train_loss: float | None, lr: float
) -> dict[str, Any]:
    result = evaluate(model, test)
    return {
        "step": step,
        "lr": lr,
        "train_loss": "" if train_loss is None else train_loss,
        "test_loss": result.loss,
        "test_error": result.error,
    }


def _claim_dir(run: Run, controllers: Sequence[Controller]) -> None:
    """Write spec.json into a new run directory, or check an existing one holds this run.

    Only what the hash covers is compared: the same run read from another data root, or
    after the runs folder moved, is still the same run.
    """
    record = {"spec": run.spec.to_dict(), "controllers": [c.describe() for c in controllers]}
    path = run.dir / "spec.json"
    if path.is_file():
        found = read_json(path)
        try:
            same = RunSpec.from_dict(found["spec"]).hash_fields() == run.spec.hash_fields()
        except (LandscapeError, KeyError, TypeError):
            same = False
        if not same or found.get("controllers") != record["controllers"]:
            raise LandscapeError(
                f"{run.dir} holds a different run than the one asked for; move it away or "
                f"choose another runs root"
            )
        return
    write_json(path, record)


def _restore(
    run: Run,
    root: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    controllers: Sequence[Controller],
) -> tuple[int, dict[str, Any]]:
    """Load the latest checkpoint of this run, else the parent's, else keep the initial state."""
    latest: tuple[int, Checkpoint] | None = None
    steps = run.saved_steps()
    resume = run.dir / "checkpoints" / "resume.pt"
    if resume.is_file():
        ckpt = load_checkpoint(resume)
        latest = (int(ckpt.meta["step"]), ckpt)
    if steps and (latest is None or steps[-1] > latest[0]):
        latest = (steps[-1], load_checkpoint(run.checkpoint_path(steps[-1])))
    parent = run.spec.parent
    if latest is None and parent is not None:
        ppath = root / parent.run_hash / "checkpoints" / f"step_{parent.step}.pt"
        if not ppath.is_file():
            raise LandscapeError(
                f"the parent checkpoint {ppath} does not exist; train the parent run with "
                f"{parent.step} in its checkpoint_steps first (landscape.train.spawn does this)"
            )
        ckpt = load_checkpoint(ppath)
        # a child continues the parent's controllers only where it runs the same ones
        described = read_json(root / parent.run_hash / "spec.json").get("controllers", [])
        inherited = {
            c.name: ckpt.controllers[c.name]
            for c in controllers
            if c.name in ckpt.controllers and c.describe() in described
        }
        latest = (parent.step, Checkpoint(ckpt.model, ckpt.optimizer, {}, inherited))
    if latest is None:
        return 0, {}
    step, ckpt = latest
    load_weights(model, ckpt)  # a foreign file under the run's name is one clear error
    if ckpt.optimizer is not None:
        optimizer.load_state_dict(ckpt.optimizer)
    for c in controllers:
        if c.name in ckpt.controllers:
            c.load_state_dict(ckpt.controllers[c.name])
    return step, ckpt.meta


def _seed(seed: int, device: torch.device) -> None:
    """Seed the generators a step draws from: the CPU's and, on CUDA, the device's own.

    ``torch.manual_seed`` would also seed every other backend's generators, which costs
    about a millisecond per call on a CUDA build without a GPU (a third of a small
    network's step on the CPU); the draws are the same.
    """
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)
