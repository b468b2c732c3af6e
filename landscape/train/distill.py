"""Dataset distillation: learn a small synthetic training set that trains a network well.

Every method starts from ``ipc`` real examples of each class and stores its result as the
dataset ``distilled:<key>`` (:mod:`landscape.data.distilled`), so networks train on it
through the one loop like on any dataset, and are tested on the source's real test split:

- ``random``: a class-balanced random real subset, no optimisation: the baseline that
  every paper below reports.
- ``dm``: distribution matching. Zhao & Bilen, "Dataset Condensation with Distribution
  Matching", WACV 2023.
- ``dc``: gradient matching. Zhao, Mopuri & Bilen, "Dataset Condensation with Gradient
  Matching", ICLR 2021.
- ``dsa``: gradient matching under differentiable Siamese augmentation. Zhao & Bilen,
  "Dataset Condensation with Differentiable Siamese Augmentation", ICML 2021.
- ``idc``: multi-formation, and gradient matching on networks trained on real data. Kim
  et al., "Dataset Condensation via Efficient Synthetic-Data Parameterization", ICML 2022.
- ``mtt``: matching training trajectories of experts that the loop trains. Cazenavette
  et al., "Dataset Distillation by Matching Training Trajectories", CVPR 2022.

>>> s = distill(DistillSpec(DataSpec("fashion-mnist"), "dm", iterations=50, batch_real=64))
>>> rows = evaluate_distilled(s, TrainSpec(lr=0.01, steps=300, batch_size=100))
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import statistics
import sys
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from tqdm.auto import tqdm

from landscape.checks import integer, number
from landscape.data import denormalize, get_dataset, normalize
from landscape.data.distilled import PREFIX, decode, distilled_root, save_distilled
from landscape.devices import resolve_device
from landscape.errors import LandscapeError
from landscape.io import load_checkpoint, read_json
from landscape.models import create_model
from landscape.specs import (
    DataSpec,
    ModelSpec,
    RunSpec,
    Seeds,
    TrainSpec,
    digest,
    field_default,
    jsonable,
    tuplify,
)
from landscape.train import distributed
from landscape.train.loop import Run, runs_root, train

log = logging.getLogger(__name__)

METHODS = ("random", "dm", "dc", "dsa", "idc", "mtt")

# Real test accuracy (%) of ConvNet-3 trained on the published sets, by dataset, method and
# images per class: the anchors to compare with (the papers distil far longer than a demo).
PUBLISHED: dict[str, dict[str, dict[int, float]]] = {
    "fashion-mnist": {
        "random": {1: 51.4, 10: 73.8, 50: 82.5},  # Zhao, Mopuri & Bilen, ICLR 2021, Table 1
        "dc": {1: 70.5, 10: 82.3, 50: 83.6},  # Zhao, Mopuri & Bilen, ICLR 2021, Table 1
        "dsa": {1: 70.6, 10: 84.6, 50: 88.7},  # Zhao & Bilen, ICML 2021, Table 1
    },
    "cifar10": {
        "random": {1: 14.4, 10: 26.0, 50: 43.4},  # Zhao, Mopuri & Bilen, ICLR 2021, Table 1
        "dc": {1: 28.3, 10: 44.9, 50: 53.9},  # Zhao, Mopuri & Bilen, ICLR 2021, Table 1
        "dsa": {1: 28.8, 10: 52.1, 50: 60.6},  # Zhao & Bilen, ICML 2021, Table 1
        "dm": {1: 26.0, 10: 48.9, 50: 63.0},  # Zhao & Bilen, WACV 2023, Table 1
        "idc": {1: 50.0, 10: 67.5, 50: 74.5},  # Kim et al., ICML 2022, Table 1 (factor 2)
        "mtt": {1: 46.3, 10: 65.3, 50: 71.6},  # Cazenavette et al., CVPR 2022, Table 1
    },
}

# The knobs that only some methods read; another method must leave them None.
_KNOBS: dict[str, tuple[str, ...]] = {
    "iterations": ("dm", "dc", "dsa", "idc", "mtt"),
    "lr_images": ("dm", "dc", "dsa", "idc", "mtt"),
    "batch_real": ("dm", "dc", "dsa", "idc"),
    "augment": ("dm", "mtt"),  # DC never augments; DSA and IDC always do
    "outer_loop": ("dc", "dsa", "idc"),
    "inner_loop": ("dc", "dsa", "idc"),
    "lr_net": ("dc", "dsa", "idc"),
    "expert_epochs": ("mtt",),
    "syn_steps": ("mtt",),
    "max_start_epoch": ("mtt",),
    "lr_lr": ("mtt",),
    "lr_expert": ("mtt",),
    "num_experts": ("mtt",),
    "expert_batch": ("mtt",),
}
_RATES = ("lr_images", "lr_net", "lr_lr", "lr_expert")

# DC's (outer_loop, inner_loop) by IPC, from its reference code; other IPCs take the nearest.
_DC_LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}
_CPU_CHUNK = 64  # examples per forward pass of DM's real embedding on the CPU
_IMAGE_MOMENTUM = 0.5  # SGD momentum on the images (and MTT's lr) in every reference code
_IDC_NET = {"momentum": 0.9, "weight_decay": 5e-4, "batch": 64}  # IDC's real-data training


def _defaults(method: str, ipc: int) -> dict[str, Any]:
    """The papers' settings of every knob ``method`` reads, at ``ipc`` images per class."""
    if method == "dm":  # Zhao & Bilen 2023, Sec. 4 and reference code
        return {"iterations": 20_000, "lr_images": 1.0, "batch_real": 256, "augment": True}
    if method in ("dc", "dsa"):  # Zhao et al. 2021, reference code
        outer, inner = _DC_LOOPS[min(_DC_LOOPS, key=lambda k: (abs(k - ipc), k))]
        return {
            "iterations": 1000,
            "lr_images": 0.1,
            "batch_real": 256,
            "outer_loop": outer,
            "inner_loop": inner,
            "lr_net": 0.01,
        }
    if method == "idc":  # Kim et al. 2022, reference code: niter, inner_loop, n_data / batch
        return {
            "iterations": 500,
            "lr_images": 5e-3 * ipc / 10,  # its tune_lr_img: the L1 loss grows with IPC
            "batch_real": 64,
            "outer_loop": 100,
            "inner_loop": 8,
            "lr_net": 0.01,
        }
    if method == "mtt":  # Cazenavette et al. 2022, CIFAR-10 hyper-parameters (appendix)
        return {
            "iterations": 5000,
            "lr_images": 1000.0,
            "augment": True,
            "expert_epochs": 2,
            "syn_steps": 50 if ipc == 1 else 30,
            "max_start_epoch": 2 if ipc == 1 else 20 if ipc <= 10 else 40,
            "lr_lr": 1e-7 if ipc == 1 else 1e-5,
            "lr_expert": 0.01,
            "num_experts": 100,
            "expert_batch": 256,
        }
    return {}


@dataclass(frozen=True)
class DistillSpec:
    """Everything that determines a synthetic set; its :meth:`key` names the set's folder.

    Knobs left ``None`` take the method's published defaults (:func:`_defaults`); a knob
    the method does not read must stay ``None``.

    Attributes:
        data: the real source dataset.
        method: one of :data:`METHODS`.
        ipc: stored images per class.
        factor: multi-formation factor (each stored image decodes into ``factor**d``
            training examples); ``None``: 2 for ``idc`` on images, else 1.
        model: the matching network; ``None``: ConvNet-3 (``convnet``, instance norm) for
            images, ``conv1d`` for 1-D signals, ``mlp`` otherwise.
        iterations: outer iterations (a fresh network, or an expert segment, each).
        lr_images: learning rate of the images (SGD, momentum 0.5, normalised space).
        batch_real: real examples per class per matching step.
        seed: draws the initial real examples, the networks and the batches.
        augment: DM/MTT: differentiable augmentation of real and synthetic batches.
        outer_loop: DC/DSA/IDC: image updates per network.
        inner_loop: DC/DSA: network steps on the synthetic set between image updates;
            IDC: network steps on real batches of 64.
        lr_net: DC/DSA/IDC: the matching network's learning rate.
        expert_epochs: MTT: epochs between an expert's start and target checkpoints.
        syn_steps: MTT: student steps on the synthetic set per iteration.
        max_start_epoch: MTT: start epochs are drawn from ``0 .. max_start_epoch - 1``.
        lr_lr: MTT: learning rate of the learnable student learning rate.
        lr_expert: MTT: the experts' learning rate, and the student's initial one.
        num_experts: MTT: expert trajectories (runs of the loop, seeds ``0 ..``).
        expert_batch: MTT: the experts' batch size.
    """

    data: DataSpec = field(default_factory=DataSpec)
    method: str = "dm"
    ipc: int = 10
    factor: int | None = None
    model: ModelSpec | None = None
    iterations: int | None = None
    lr_images: float | None = None
    batch_real: int | None = None
    seed: int = 0
    augment: bool | None = None
    outer_loop: int | None = None
    inner_loop: int | None = None
    lr_net: float | None = None
    expert_epochs: int | None = None
    syn_steps: int | None = None
    max_start_epoch: int | None = None
    lr_lr: float | None = None
    lr_expert: float | None = None
    num_experts: int | None = None
    expert_batch: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, DataSpec):
            raise LandscapeError(f"DistillSpec.data must be a DataSpec, got {self.data!r}")
        if self.model is not None and not isinstance(self.model, ModelSpec):
            raise LandscapeError(f"DistillSpec.model must be a ModelSpec, got {self.model!r}")
        if not isinstance(self.method, str) or self.method not in METHODS:
            raise LandscapeError(
                f"unknown distillation method {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        object.__setattr__(self, "ipc", integer("DistillSpec.ipc", self.ipc, 1))
        object.__setattr__(self, "seed", integer("DistillSpec.seed", self.seed, 0))
        if self.factor is None and self.method != "idc":
            object.__setattr__(self, "factor", 1)  # only IDC's default depends on the data
        if self.factor is not None:
            object.__setattr__(self, "factor", integer("DistillSpec.factor", self.factor, 1))
        defaults = _defaults(self.method, self.ipc)
        for name, readers in _KNOBS.items():
            value = getattr(self, name)
            if self.method not in readers:
                if value is not None:
                    raise LandscapeError(
                        f"DistillSpec.{name} does not apply to method {self.method!r}; it is "
                        f"read by {', '.join(readers)}: leave it None"
                    )
                continue
            object.__setattr__(self, name, _knob(name, defaults[name] if value is None else value))

    def to_dict(self) -> dict[str, Any]:
        """Every field, as JSON-ready data."""
        return jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DistillSpec:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`LandscapeError`."""
        try:
            d = dict(d)
            data = DataSpec(**{k: tuplify(v) for k, v in d.pop("data", {}).items()})
            model = d.pop("model", None)
            model = None if model is None else ModelSpec(model["name"], tuplify(model["kwargs"]))
            return cls(data=data, model=model, **d)
        except (TypeError, KeyError, AttributeError) as err:
            raise LandscapeError(f"not a DistillSpec: {err}") from None

    def hash_fields(self) -> dict[str, Any]:
        """Fields that differ from their defaults (the method's, for knobs); no data root."""
        defaults = {f.name: field_default(f) for f in dataclasses.fields(self)}
        defaults |= _defaults(self.method, self.ipc) | {
            "factor": None if self.method == "idc" else 1
        }
        out: dict[str, Any] = {}
        for name, value in self.to_dict().items():
            if name == "data":
                value.pop("root", None)
                value = {k: v for k, v in value.items() if v != jsonable(getattr(DataSpec(), k))}
                if value:
                    out[name] = value
            elif value != jsonable(defaults[name]):
                out[name] = value
        return out

    def key(self) -> str:
        """A 12-hex-digit name: adding a field with a default later renames no set."""
        return digest(self.hash_fields())

    def replace(self, **changes: Any) -> DistillSpec:
        """A copy with fields replaced."""
        return dataclasses.replace(self, **changes)


def _knob(name: str, value: Any) -> Any:
    if name == "augment":
        if not isinstance(value, bool):
            raise LandscapeError(f"DistillSpec.augment must be True or False, got {value!r}")
        return value
    if name in _RATES:
        return number(f"DistillSpec.{name}", value, minimum=0.0, strict_minimum=True)
    return integer(f"DistillSpec.{name}", value, 1)


@dataclass(frozen=True)
class DistilledSet:
    """A synthetic set on disk.

    Attributes:
        key: the :meth:`DistillSpec.key` that names it.
        folder: ``<sets root>/<key>``, holding ``synthetic.pt`` and ``spec.json``.
        record: the contents of ``spec.json``.
    """

    key: str
    folder: Path
    record: dict[str, Any]

    @property
    def data_spec(self) -> DataSpec:
        """The set as a dataset for a :class:`RunSpec`: ``distilled:<key>``."""
        return DataSpec(f"{PREFIX}:{self.key}", root=str(self.folder.parent))

    @property
    def size(self) -> int:
        """Decoded training examples (``ipc * factor**d * classes``)."""
        return int(self.record["size"])

    @property
    def spec(self) -> DistillSpec:
        """The spec that made the set."""
        return DistillSpec.from_dict(self.record["distill"])

    @property
    def model_spec(self) -> ModelSpec:
        """The matching network the set was made with."""
        m = self.record["model"]
        return ModelSpec(m["name"], tuplify(m["kwargs"]))


def distill(
    spec: DistillSpec,
    root: str | os.PathLike | None = None,
    *,
    runs: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> DistilledSet:
    """Make the synthetic set of ``spec``, or reuse the one already on disk.

    Args:
        spec: what to distil.
        root: the folder of synthetic sets (see :func:`distilled_root`); the set goes to
            ``<root>/<spec.key()>``.
        runs: the runs root for MTT's experts; default: the folder above the sets' folder
            (the runs root when both are defaults).
        device: where to distil; default CUDA if available.
        progress: show a tqdm bar; default only when stderr is a terminal.

    Returns:
        The set: stored images ``(classes * ipc, C, *spatial)`` in raw input space.

    Raises:
        LandscapeError: a bad spec for this data, or a folder holding another set.
    """
    if not isinstance(spec, DistillSpec):
        raise LandscapeError(f"distill needs a DistillSpec, got {type(spec).__name__}")
    key = spec.key()
    folder = distilled_root(root) / key
    group = distributed.current_group()
    # decided by process 0 alone: another could see the set process 0 has just written
    if distributed.from_lead((folder / "spec.json").is_file(), group):
        return _existing(spec, folder)
    device = resolve_device(device)
    runs = Path(runs) if runs is not None else distilled_root(root).parent
    started = time.perf_counter()
    problem = _Problem(spec, device)
    gen = torch.Generator().manual_seed(_subseed(spec.seed, "draws"))
    syn = problem.initial_images(gen).requires_grad_(spec.method != "random")
    show = sys.stderr.isatty() if progress is None else bool(progress)
    extra = _RUNNERS[spec.method](spec, problem, syn, gen, runs, show)
    record = _record(spec, problem, extra, time.perf_counter() - started)
    raw = denormalize(syn.detach(), problem.info)
    if group.lead:  # under torchrun every process made the same set; process 0 writes it
        save_distilled(folder, raw, problem.labels, problem.factor, record)
    distributed.barrier(group)  # the others read it only once it is whole
    log.info("distilled %s (%s, IPC %d) into %s", spec.data.name, spec.method, spec.ipc, folder)
    return DistilledSet(key, folder, record)


def _record(spec: DistillSpec, problem: _Problem, extra: dict, seconds: float) -> dict:
    """What ``spec.json`` says about a new set: how it was made, from what, at what cost."""
    return {
        "key": spec.key(),
        "distill": spec.to_dict(),
        "method": spec.method,
        "ipc": spec.ipc,
        "factor": problem.factor,
        "model": jsonable(dataclasses.asdict(problem.model_spec)),
        "source": {"name": spec.data.name, "root": spec.data.root},
        "num_classes": problem.num_classes,
        "size": problem.num_classes * spec.ipc * problem.tiles,
        # every real example read, repeats included; MTT's expert training too (even when
        # its runs were reused from an earlier set)
        "real_examples_seen": problem.seen + extra.pop("real_examples_seen", 0),
        "wall_time_s": seconds,
        "device": str(problem.device),
        **extra,
    }


def _existing(spec: DistillSpec, folder: Path) -> DistilledSet:
    record = read_json(folder / "spec.json")
    try:
        same = DistillSpec.from_dict(record["distill"]).key() == spec.key()
    except (LandscapeError, KeyError, TypeError):
        same = False
    if not same:
        raise LandscapeError(
            f"{folder} holds a different synthetic set than the one asked for; move it away "
            f"or choose another root"
        )
    return DistilledSet(spec.key(), folder, record)


def matching_loss(
    spec: DistillSpec,
    images: torch.Tensor,
    *,
    draws: int = 4,
    seed: int = 0,
    runs: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> float:
    """The objective ``spec.method`` minimises, at ``images``, over fixed random draws.

    Each draw is what one iteration sees: a fresh network (DM, DC, DSA, IDC; untrained) or
    an expert segment (MTT), real batches and augmentations, all drawn from ``seed`` alone,
    so two sets of images are compared on the same draws.

    Args:
        spec: the method and its settings.
        images: stored images in raw input space, ``(classes * ipc, C, *stored spatial)``,
            e.g. ``load_synthetic(folder)[0]``.
        draws: iterations averaged.
        seed: draws the networks, batches and augmentations.
        runs: the runs root of MTT's experts (trained if absent).
        device: where to compute.

    Returns:
        The mean loss over the draws.
    """
    if spec.method == "random":
        raise LandscapeError("method 'random' optimises nothing, so it has no matching loss")
    problem = _Problem(spec, resolve_device(device))
    syn = normalize(images.to(problem.device, torch.float32), problem.info)
    if syn.shape[0] != len(problem.labels) or syn.shape[2:] != problem.stored_shape[1:]:
        raise LandscapeError(
            f"images of shape {tuple(images.shape)} are not a set of this spec: expected "
            f"({len(problem.labels)}, *{problem.stored_shape})"
        )
    gen = torch.Generator().manual_seed(_subseed(seed, "matching-loss"))
    experts = None
    if spec.method == "mtt":
        experts = _Experts(spec, problem, runs_root(runs), False)
    total = 0.0
    for _ in range(integer("draws", draws, 1)):
        if spec.method == "dm":
            total += _dm_loss(spec, problem, syn, gen).item()
        elif spec.method == "mtt":
            lr = torch.tensor(spec.lr_expert, device=problem.device)
            total += _mtt_loss(spec, problem, experts, syn, lr, gen).item()
        else:
            total += _gm_loss(spec, problem, problem.network(gen), syn, gen).item()
    return total / draws


# --------------------------------------------------------------------------- the problem


class _Problem:
    """The real data by class, the matching network and the shapes every method needs."""

    def __init__(self, spec: DistillSpec, device: torch.device) -> None:
        real = get_dataset(spec.data.name, spec.data.root, split="train")
        self.spec, self.info, self.device = spec, real.info, device
        self.num_classes, self.stored_shape = real.info.num_classes, tuple(real.info.in_shape)
        spatial = self.stored_shape[1:]
        self.factor = spec.factor or (2 if spec.method == "idc" and len(spatial) == 2 else 1)
        self.tiles = self.factor ** len(spatial)
        self.model_spec = spec.model or _matching_model(self.stored_shape)
        self.table, counts = _class_table(real.y, self.num_classes)
        self.min_count, self.seen = int(counts.min()), 0
        self._check()
        self.x, self.y = real.x.to(device), real.y.to(device)
        self.labels = torch.arange(self.num_classes, device=device).repeat_interleave(spec.ipc)

    def _check(self) -> None:
        """Refuse a spec that does not fit the data or the network, before any work."""
        spec, spatial = self.spec, self.stored_shape[1:]
        if self.factor > 1 and (
            len(spatial) not in (1, 2) or any(s % self.factor for s in spatial)
        ):
            raise LandscapeError(
                f"factor {self.factor} must divide every spatial size of {spec.data.name!r} "
                f"(examples of shape {self.stored_shape}); choose one that divides {spatial}, or 1"
            )
        if spec.ipc * self.tiles > self.min_count:
            raise LandscapeError(
                f"IPC {spec.ipc} x {self.tiles} tiles needs {spec.ipc * self.tiles} real "
                f"examples of every class, but {spec.data.name!r} has only {self.min_count} "
                f"of its rarest class; lower ipc or factor"
            )
        if spec.method == "dm":
            _features(self.network(None))
        if spec.method == "idc" and not any(p.dim() > 2 for p in self.network(None).parameters()):
            raise LandscapeError(
                f"IDC matches convolution gradients only, and {self.model_spec.name!r} has no "
                f"convolutions; use a convolutional model (convnet, conv1d)"
            )

    def network(self, gen: torch.Generator | None) -> nn.Module:
        """A fresh matching network, its weights drawn from a seed taken from ``gen``."""
        seed = 0 if gen is None else int(torch.randint(2**62, (1,), generator=gen))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = create_model(
                self.model_spec.name,
                num_classes=self.num_classes,
                in_shape=tuple(self.info.in_shape),
                **dict(self.model_spec.kwargs),
            )
        return model.to(self.device).train()

    def real_batch(self, per_class: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        """``per_class`` distinct real examples of every class, sorted by class: ``(x, y)``."""
        n = min(per_class, self.min_count)
        scores = torch.rand(self.table.shape, generator=gen)
        scores[self.table < 0] = 2.0  # padding is never picked
        pick = self.table.gather(1, scores.topk(n, dim=1, largest=False).indices).flatten()
        self.seen += pick.numel()
        pick = pick.to(self.device)
        return self.x[pick], self.y[pick]

    def real_sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        """``n`` real examples drawn uniformly with replacement: ``(x, y)``."""
        pick = torch.randint(len(self.y), (n,), generator=gen).to(self.device)
        self.seen += n
        return self.x[pick], self.y[pick]

    def initial_images(self, gen: torch.Generator) -> torch.Tensor:
        """Real examples of every class, ``factor**d`` downsampled ones tiled per image."""
        x, _ = self.real_batch(self.spec.ipc * self.tiles, gen)
        if self.factor > 1:
            small = tuple(s // self.factor for s in x.shape[2:])
            x = _encode(F.interpolate(x, size=small, mode="area"), self.factor)
        return x.detach().clone()

    def decoded(self, syn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training examples of the stored images, sorted by class."""
        return decode(syn, self.labels, self.factor)


def _matching_model(in_shape: tuple[int, ...]) -> ModelSpec:
    if len(in_shape) == 3:
        return ModelSpec("convnet", {"norm": "instance"})
    return ModelSpec("conv1d") if len(in_shape) == 2 else ModelSpec("mlp")


def _class_table(y: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of each class's examples, ``(classes, max count)``, padded with -1."""
    counts = torch.bincount(y, minlength=num_classes)
    if int(counts.min()) == 0:
        missing = (counts == 0).nonzero().flatten().tolist()
        raise LandscapeError(f"the training split has no examples of classes {missing}")
    table = torch.full((num_classes, int(counts.max())), -1, dtype=torch.long)
    order = torch.argsort(y.cpu(), stable=True)
    starts = torch.cumsum(counts, 0) - counts
    for c in range(num_classes):
        table[c, : counts[c]] = order[starts[c] : starts[c] + counts[c]]
    return table, counts


def _encode(tiles: torch.Tensor, factor: int) -> torch.Tensor:
    """Inverse of the tiling in :func:`decode`: ``factor**d`` consecutive tiles per image."""
    n, c, *small = tiles.shape
    k = factor ** len(small)
    if len(small) == 1:
        out = tiles.reshape(n // k, factor, c, small[0]).permute(0, 2, 1, 3)
        return out.reshape(n // k, c, small[0] * factor)
    h, w = small
    out = tiles.reshape(n // k, factor, factor, c, h, w).permute(0, 3, 1, 4, 2, 5)
    return out.reshape(n // k, c, h * factor, w * factor)


def _subseed(seed: int, *tags: Any) -> int:
    text = ":".join(["landscape-distill", str(seed), *map(str, tags)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2**62 - 1)


def _features(model: nn.Module) -> nn.Module:
    """The network without its last (linear) layer: DM's embedding."""
    children = list(model.named_children())
    if not isinstance(model, nn.Sequential) or not isinstance(children[-1][1], nn.Linear):
        raise LandscapeError(
            f"DM embeds examples with the network minus its last layer, so it needs an "
            f"nn.Sequential ending in nn.Linear (convnet, conv1d, mlp); got "
            f"{type(model).__name__}"
        )
    return nn.Sequential(OrderedDict(children[:-1]))


# --------------------------------------------------------------------------- augmentation

# DSA's strategy 'color_crop_cutout_flip_scale_rotate' with its 'S' mode (one operation
# per draw) and ratios; a shift and a time scale for 1-D signals.
_IMAGE_OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")
_SIGNAL_OPS = ("shift", "scale")
_DSA = {"scale": 1.2, "rotate": 15.0, "crop": 0.125, "cutout": 0.5}
_DSA |= {"brightness": 1.0, "saturation": 2.0, "contrast": 0.5}


def draw_augmentation(n: int, in_shape: Sequence[int], gen: torch.Generator) -> dict:
    """Parameters of ``n`` differentiable Siamese augmentations (Zhao & Bilen 2021).

    One operation per row, as DSA's default mode: for images colour (brightness, saturation,
    contrast), crop (translation), cutout, flip, scale or rotate; for 1-D signals a shift
    or a time scale. Give row ``i`` to every example of class ``i`` (Siamese: real and
    synthetic batches see the same transformation) or one row per example.

    Returns:
        ``{"op": (n,) int64, "u": (n, 4) uniforms}`` on the CPU.
    """
    ops = _IMAGE_OPS if len(in_shape) == 3 else _SIGNAL_OPS
    return {
        "op": torch.randint(len(ops), (n,), generator=gen),
        "u": torch.rand(n, 4, generator=gen),
    }


def augment(x: torch.Tensor, params: dict) -> torch.Tensor:
    """Apply per-example augmentation parameters, differentiably in ``x``.

    Args:
        x: ``(B, C, H, W)`` images or ``(B, C, L)`` signals (normalised).
        params: from :func:`draw_augmentation`, one row per example (index them by label
            for Siamese augmentation), on any device.

    Returns:
        The augmented batch, same shape.
    """
    op, u = params["op"].to(x.device), params["u"].to(x.device, x.dtype)
    if x.dim() == 3:
        return _augment_signals(x, op, u)
    x = _color(x, op == 0, u)
    x = _affine(x, op, u)
    return _cutout(x, op == 2, u)


def _color(x: torch.Tensor, on: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    view = (-1, 1, 1, 1)
    bright = torch.where(on, (u[:, 0] - 0.5) * _DSA["brightness"], 0.0).view(view)
    sat = torch.where(on, u[:, 1] * _DSA["saturation"], 1.0).view(view)
    contrast = torch.where(on, u[:, 2] + _DSA["contrast"], 1.0).view(view)
    x = x + bright
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * sat + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * contrast + mean


def _affine(x: torch.Tensor, op: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Crop (integer translation), flip, scale and rotate as one affine resampling."""
    _, _, h, w = x.shape
    s, lo = _DSA["scale"], 1.0 / _DSA["scale"]
    sx = torch.where(op == 4, u[:, 0] * (s - lo) + lo, 1.0)
    sy = torch.where(op == 4, u[:, 1] * (s - lo) + lo, 1.0)
    sx = sx * torch.where((op == 3) & (u[:, 0] < 0.5), -1.0, 1.0)
    angle = torch.where(op == 5, (u[:, 0] - 0.5) * 2 * math.radians(_DSA["rotate"]), 0.0)
    # a crop moves by whole pixels, as DSA's; 2 / size is one pixel in grid units
    tx = torch.where(op == 1, torch.round((2 * u[:, 0] - 1) * _DSA["crop"] * w) * 2 / w, 0.0)
    ty = torch.where(op == 1, torch.round((2 * u[:, 1] - 1) * _DSA["crop"] * h) * 2 / h, 0.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([sx * cos, sin, tx], 1), torch.stack([-sin, sy * cos, ty], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


def _cutout(x: torch.Tensor, on: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    _, _, h, w = x.shape
    rows = torch.arange(h, device=x.device, dtype=x.dtype)
    cols = torch.arange(w, device=x.device, dtype=x.dtype)
    inside_r = (rows[None] - u[:, 0:1] * h).abs() < _DSA["cutout"] * h / 2
    inside_c = (cols[None] - u[:, 1:2] * w).abs() < _DSA["cutout"] * w / 2
    hole = inside_r[:, :, None] & inside_c[:, None, :] & on[:, None, None]
    return x * (~hole).to(x.dtype)[:, None]


def _augment_signals(x: torch.Tensor, op: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    length = x.shape[-1]
    s, lo = _DSA["scale"], 1.0 / _DSA["scale"]
    scale = torch.where(op == 1, u[:, 0] * (s - lo) + lo, 1.0)
    shift = torch.round((2 * u[:, 0] - 1) * _DSA["crop"] * length) * 2 / length
    shift = torch.where(op == 0, shift, 0.0)
    zero, one = torch.zeros_like(scale), torch.ones_like(scale)
    theta = torch.stack(
        [torch.stack([scale, zero, shift], 1), torch.stack([zero, one, zero], 1)], 1
    )
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], 1, length], align_corners=False)
    return F.grid_sample(x[:, :, None], grid, align_corners=False)[:, :, 0]


def _siamese(problem: _Problem, gen: torch.Generator, *batches) -> list:
    """Each batch ``(x, y)`` augmented with its class's row of one draw (DSA, Sec. 3)."""
    params = draw_augmentation(problem.num_classes, problem.info.in_shape, gen)
    return [augment(x, {k: v.to(y.device)[y] for k, v in params.items()}) for x, y in batches]


def _independent(problem: _Problem, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``x`` augmented with one draw per example."""
    return augment(x, draw_augmentation(len(x), problem.info.in_shape, gen))


# --------------------------------------------------------------------------- DM


def distribution_matching_loss(
    features: nn.Module,
    real_x: torch.Tensor,
    real_y: torch.Tensor,
    syn_x: torch.Tensor,
    syn_y: torch.Tensor,
    num_classes: int,
) -> torch.Tensor:
    """DM's loss (Zhao & Bilen 2023, Eq. 4): ``sum_c ||mean phi(real_c) - mean phi(syn_c)||^2``.

    All classes go through the network together, real and synthetic examples in one batch
    each (no loop over classes; the real batch in fixed-size chunks on the CPU); with
    per-example normalisation (instance, group or none) that equals the reference code's
    loop over classes.

    Args:
        features: the embedding ``phi`` (a network without its classifier).
        real_x: ``(N, *in_shape)`` real examples; their embedding is not differentiated.
        real_y: ``(N,)`` their labels.
        syn_x: ``(M, *in_shape)`` synthetic examples.
        syn_y: ``(M,)`` their labels.
        num_classes: classes ``c`` summed over (classes without examples count zero).

    Returns:
        A 0-d tensor, differentiable in ``syn_x``.
    """
    with torch.no_grad():
        real = _class_means(_embed(features, real_x), real_y, num_classes)
    syn = _class_means(features(syn_x).flatten(1), syn_y, num_classes)
    return ((real - syn) ** 2).sum()


def _embed(features: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``features(x)`` flattened, ``(N, D)``; on the CPU in chunks of ``_CPU_CHUNK`` examples,
    whose activations stay in cache (ConvNet-3 on 640 images: 1.5x faster on 2 cores)."""
    if x.device.type != "cpu":
        return features(x).flatten(1)
    return torch.cat([features(part).flatten(1) for part in x.split(_CPU_CHUNK)])


def _class_means(f: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    sums = torch.zeros(num_classes, f.shape[1], device=f.device, dtype=f.dtype).index_add(0, y, f)
    counts = torch.bincount(y, minlength=num_classes).clamp(min=1).to(f.dtype)
    return sums / counts[:, None]


def _dm_loss(spec, problem: _Problem, syn: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One DM iteration's loss: a fresh frozen network, a real batch, one augmentation."""
    net = problem.network(gen).requires_grad_(False)
    real_x, real_y = problem.real_batch(spec.batch_real, gen)
    syn_x, syn_y = problem.decoded(syn)
    if spec.augment:
        real_x, syn_x = _siamese(problem, gen, (real_x, real_y), (syn_x, syn_y))
    return distribution_matching_loss(
        _features(net), real_x, real_y, syn_x, syn_y, problem.num_classes
    )


def _run_dm(spec, problem, syn, gen, runs, show) -> dict:
    opt = torch.optim.SGD([syn], lr=spec.lr_images, momentum=_IMAGE_MOMENTUM)
    curve = _Curve(spec.iterations)
    for it in tqdm(range(spec.iterations), disable=not show, desc="dm", leave=False):
        loss = _dm_loss(spec, problem, syn, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.add(it, loss.item())
    return {"loss_curve": curve.points}


# --------------------------------------------------------------------------- DC, DSA, IDC


def gradient_distance(
    g_syn: Sequence[torch.Tensor], g_real: Sequence[torch.Tensor], metric: str = "cos"
) -> torch.Tensor:
    """Layer-wise distance between two lists of parameter gradients.

    ``"cos"`` is DC's match loss (Zhao et al. 2021, Eq. 10): each weight gradient is read
    as ``(out, -1)`` rows and contributes ``sum_rows (1 - cos(row_syn, row_real))``;
    biases and normalisation parameters (1-D) contribute nothing. ``"l1"`` is IDC's
    default: ``sum |g_syn - g_real|`` over the weights of more than two dimensions (the
    convolutions; biases and linear layers are left out, as its ``bias=False, fc=False``).

    Args:
        g_syn: gradients, one per parameter, any shapes.
        g_real: gradients of the same shapes (constants).
        metric: ``"cos"`` or ``"l1"``.

    Returns:
        A 0-d tensor.
    """
    total = g_syn[0].new_zeros(())
    for gs, gr in zip(g_syn, g_real):
        if metric == "l1":
            if gs.dim() > 2:
                total = total + (gs - gr).abs().sum()
        elif gs.dim() > 1:
            gs, gr = gs.reshape(gs.shape[0], -1), gr.reshape(gr.shape[0], -1)
            cos = (gs * gr).sum(-1) / (gs.norm(dim=-1) * gr.norm(dim=-1) + 1e-6)
            total = total + (1 - cos).sum()
    return total


def _gm_loss(spec, problem: _Problem, net: nn.Module, syn, gen) -> torch.Tensor:
    """Gradient matching of ``net`` summed over classes, one class's batches at a time."""
    real_x, real_y = problem.real_batch(spec.batch_real, gen)
    syn_x, syn_y = problem.decoded(syn)
    if spec.method != "dc":
        real_x, syn_x = _siamese(problem, gen, (real_x, real_y), (syn_x, syn_y))
    params = [p for p in net.parameters() if p.requires_grad]
    metric = "l1" if spec.method == "idc" else "cos"
    n, k = len(real_y) // problem.num_classes, len(syn_y) // problem.num_classes
    total = syn_x.new_zeros(())
    for rx, ry, sx, sy in zip(real_x.split(n), real_y.split(n), syn_x.split(k), syn_y.split(k)):
        g_real = torch.autograd.grad(F.cross_entropy(net(rx), ry), params)
        g_syn = torch.autograd.grad(
            F.cross_entropy(net(sx), sy), params, create_graph=syn.requires_grad
        )
        total = total + gradient_distance(g_syn, [g.detach() for g in g_real], metric)
    return total


def _run_gm(spec, problem, syn, gen, runs, show) -> dict:
    opt = torch.optim.SGD([syn], lr=spec.lr_images, momentum=_IMAGE_MOMENTUM)
    curve = _Curve(spec.iterations)
    for it in tqdm(range(spec.iterations), disable=not show, desc=spec.method, leave=False):
        net = problem.network(gen)
        net_opt = _net_optimizer(spec, net)
        losses = []
        for step in range(spec.outer_loop):
            loss = _gm_loss(spec, problem, net, syn, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if step < spec.outer_loop - 1:
                _train_network(spec, problem, net, net_opt, syn.detach(), gen)
        curve.add(it, sum(losses) / len(losses))
    return {"loss_curve": curve.points}


def _net_optimizer(spec: DistillSpec, net: nn.Module) -> torch.optim.Optimizer:
    if spec.method == "idc":
        m, wd = _IDC_NET["momentum"], _IDC_NET["weight_decay"]
        return torch.optim.SGD(net.parameters(), lr=spec.lr_net, momentum=m, weight_decay=wd)
    return torch.optim.SGD(net.parameters(), lr=spec.lr_net)


def _train_network(spec, problem: _Problem, net, opt, syn: torch.Tensor, gen) -> None:
    """DC/DSA: steps on the synthetic set; IDC: steps on augmented real batches."""
    for _ in range(spec.inner_loop):
        if spec.method == "idc":
            x, y = problem.real_sample(_IDC_NET["batch"], gen)
        else:
            x, y = problem.decoded(syn)
        if spec.method != "dc":
            x = _independent(problem, x, gen)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


# --------------------------------------------------------------------------- MTT


class _Experts:
    """MTT's expert trajectories: runs of the loop, one checkpoint per epoch."""

    def __init__(self, spec: DistillSpec, problem: _Problem, runs: Path, show: bool) -> None:
        self.per_epoch = len(problem.y) // spec.expert_batch
        if self.per_epoch == 0:
            raise LandscapeError(
                f"expert_batch {spec.expert_batch} exceeds the {len(problem.y)} real training "
                f"examples; lower it"
            )
        steps = (spec.max_start_epoch + spec.expert_epochs) * self.per_epoch
        self.runs = [
            train(
                self.run_spec(spec, problem, i, steps), runs, device=problem.device, progress=show
            )
            for i in range(spec.num_experts)
        ]
        self.reads = spec.num_experts * steps * spec.expert_batch
        self.net = problem.network(None)
        self.names = [n for n, _ in self.net.named_parameters()]
        self._cache: dict[tuple[int, int], tuple[torch.Tensor, dict]] = {}

    def run_spec(self, spec: DistillSpec, problem: _Problem, i: int, steps: int) -> RunSpec:
        """Expert ``i``: plain SGD without momentum or decay (MTT's buffer.py)."""
        schedule = TrainSpec(
            lr=spec.lr_expert,
            momentum=0.0,
            weight_decay=0.0,
            schedule="constant",
            steps=steps,
            batch_size=spec.expert_batch,
            checkpoint_steps=tuple(range(0, steps + 1, self.per_epoch)),
        )
        return RunSpec(spec.data, problem.model_spec, schedule, Seeds(init_seed=i, noise_seed=i))

    def at(self, expert: int, epoch: int) -> tuple[torch.Tensor, dict]:
        """Flat parameters ``(P,)`` and buffers of ``expert`` at the end of ``epoch``."""
        if (expert, epoch) not in self._cache:
            run: Run = self.runs[expert]
            state = load_checkpoint(run.checkpoint_path(epoch * self.per_epoch)).model
            device = next(self.net.parameters()).device
            flat = torch.cat([state[n].flatten() for n in self.names]).to(device)
            buffers = {n: state[n].to(device) for n, _ in self.net.named_buffers()}
            self._cache[(expert, epoch)] = (flat, buffers)
        return self._cache[(expert, epoch)]

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        shapes = [p.shape for p in self.net.parameters()]
        parts = flat.split([math.prod(s) for s in shapes])
        return {n: t.view(s) for n, t, s in zip(self.names, parts, shapes)}


def trajectory_matching_loss(
    student_end: torch.Tensor, start: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """MTT's loss (Cazenavette et al. 2022, Eq. 2) on flat parameter vectors ``(P,)``:
    ``||student_end - target||^2 / ||start - target||^2``."""
    return (student_end - target).pow(2).sum() / (start - target).pow(2).sum()


def _mtt_loss(spec, problem, experts: _Experts, syn, syn_lr, gen) -> torch.Tensor:
    """Unroll a student ``syn_steps`` steps from a random expert epoch, compare to the target."""
    expert = int(torch.randint(spec.num_experts, (1,), generator=gen))
    epoch = int(torch.randint(spec.max_start_epoch, (1,), generator=gen))
    start, buffers = experts.at(expert, epoch)
    target, _ = experts.at(expert, epoch + spec.expert_epochs)
    syn_x, syn_y = problem.decoded(syn)
    w = start.detach().requires_grad_(True)
    student = w
    for _ in range(spec.syn_steps):
        x = _independent(problem, syn_x, gen) if spec.augment else syn_x
        logits = functional_call(experts.net, {**experts.unflatten(student), **buffers}, (x,))
        (grad,) = torch.autograd.grad(
            F.cross_entropy(logits, syn_y), student, create_graph=syn.requires_grad
        )
        student = student - syn_lr * grad
    return trajectory_matching_loss(student, start, target)


def _run_mtt(spec, problem, syn, gen, runs, show) -> dict:
    experts = _Experts(spec, problem, runs, show)
    syn_lr = torch.tensor(spec.lr_expert, device=problem.device, requires_grad=True)
    opt = torch.optim.SGD([syn], lr=spec.lr_images, momentum=_IMAGE_MOMENTUM)
    opt_lr = torch.optim.SGD([syn_lr], lr=spec.lr_lr, momentum=_IMAGE_MOMENTUM)
    curve = _Curve(spec.iterations)
    for it in tqdm(range(spec.iterations), disable=not show, desc="mtt", leave=False):
        loss = _mtt_loss(spec, problem, experts, syn, syn_lr, gen)
        opt.zero_grad(set_to_none=True)
        opt_lr.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        opt_lr.step()
        curve.add(it, loss.item())
    return {
        "loss_curve": curve.points,
        "syn_lr": syn_lr.item(),  # the learnt student rate: MTT evaluates with it
        "experts": [r.dir.name for r in experts.runs],
        "real_examples_seen": experts.reads,
    }


def _run_random(spec, problem, syn, gen, runs, show) -> dict:
    return {}


_RUNNERS = {
    "random": _run_random,
    "dm": _run_dm,
    "dc": _run_gm,
    "dsa": _run_gm,
    "idc": _run_gm,
    "mtt": _run_mtt,
}


class _Curve:
    """The loss per iteration, averaged over windows: about 100 points per run."""

    def __init__(self, iterations: int) -> None:
        self.window = max(1, math.ceil(iterations / 100))
        self.points: list[list[float]] = []
        self._sum, self._count = 0.0, 0

    def add(self, iteration: int, loss: float) -> None:
        self._sum, self._count = self._sum + loss, self._count + 1
        if self._count == self.window:
            self.points.append([iteration + 1 - self.window, self._sum / self._count])
            self._sum, self._count = 0.0, 0


# --------------------------------------------------------------------------- evaluation


def evaluate_distilled(
    distilled: DistilledSet,
    train_spec: TrainSpec,
    *,
    model: ModelSpec | None = None,
    seeds: Iterable[int] = (0, 1, 2),
    root: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    augment: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Train fresh networks on the set and on the random real subset of the same size.

    One run of the loop per seed and set (``Seeds(init_seed=s, noise_seed=s)``), each
    tested on the source's real test split; the random subset is the ``random`` set with
    the same data, IPC, factor and seed, made beside ``distilled`` if absent.

    Args:
        distilled: the set, from :func:`distill`.
        train_spec: how to train on it; ``batch_size`` at most :attr:`DistilledSet.size`.
        model: the network to train; default the set's matching network.
        seeds: one run per seed.
        root: the runs root.
        device: where to train.
        augment: loop augmentations (``"crop"``, ``"flip"``) for both sets.

    Returns:
        Tidy rows: ``method, ipc, factor, seed, test_accuracy, size, real_examples_seen,
        key``, the set's rows first.
    """
    if not isinstance(distilled, DistilledSet) or not isinstance(train_spec, TrainSpec):
        raise LandscapeError("evaluate_distilled needs a DistilledSet and a TrainSpec")
    if train_spec.batch_size > distilled.size:
        raise LandscapeError(
            f"batch_size {train_spec.batch_size} exceeds the {distilled.size} examples of the "
            f"synthetic set; use TrainSpec(batch_size<={distilled.size})"
        )
    spec = distilled.spec
    sets = [distilled]
    if spec.method != "random":
        factor = distilled.record["factor"]
        baseline = DistillSpec(spec.data, "random", spec.ipc, factor, spec.model, seed=spec.seed)
        sets.append(distill(baseline, distilled.folder.parent, device=device))
    rows = []
    for s in sets:
        for seed in seeds:
            data = dataclasses.replace(s.data_spec, augment=tuple(augment))
            run_spec = RunSpec(data, model or distilled.model_spec, train_spec, Seeds(seed, seed))
            run = train(run_spec, root, device=device)
            rows.append(_row(s, seed, run))
    return rows


def _row(s: DistilledSet, seed: int, run: Run) -> dict[str, Any]:
    last = run.metrics()[-1]
    return {
        "method": s.record["method"],
        "ipc": s.record["ipc"],
        "factor": s.record["factor"],
        "seed": seed,
        "test_accuracy": 1.0 - float(last["test_error"]),
        "size": s.size,
        "real_examples_seen": s.record["real_examples_seen"],
        "key": s.key,
    }


def summarize_distilled(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation of test accuracy per (method, ipc, factor).

    Returns:
        Rows ``method, ipc, factor, runs, test_accuracy_mean, test_accuracy_std`` (sample
        std; 0 for one run), in the order the groups first appear.
    """
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["ipc"], r["factor"]), []).append(r["test_accuracy"])
    return [
        {
            "method": method,
            "ipc": ipc,
            "factor": factor,
            "runs": len(acc),
            "test_accuracy_mean": statistics.fmean(acc),
            "test_accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
        }
        for (method, ipc, factor), acc in groups.items()
    ]


__all__ = [
    "METHODS",
    "PUBLISHED",
    "DistillSpec",
    "DistilledSet",
    "augment",
    "distill",
    "distribution_matching_loss",
    "draw_augmentation",
    "evaluate_distilled",
    "gradient_distance",
    "matching_loss",
    "summarize_distilled",
    "trajectory_matching_loss",
]
