"""Benchmark: a training step under FixedMask against the same dense step.

Both sides, timed side by side in one run on copies of one network and the same batch:

- ``dense``: forward, cross-entropy, backward, ``torch.optim.SGD`` step (momentum 0.9,
  weight decay 5e-4): what an unpruned run pays per step.
- ``ours``: the same step, then :meth:`FixedMask.after_step` as the training loop calls it
  (one fused multiply that puts the pruned weights back to zero), at density 0.2.

Before anything is timed, a few masked steps are checked: the pruned weights must be exactly
zero, and the weights must equal, bitwise, a naive reference that multiplies each weight by
its mask in a Python loop after every step (``matches_naive``). Repetitions alternate the two
sides (a few steps each, dense first, then ours first), each from the same starting state,
and each figure is the median over repetitions, so load from other processes falls on both
alike. On a CPU it uses one thread unless told otherwise (``--threads``).

Models: LeNet-300-100 and ConvNet-D (``convnet``; width 32 on a CPU, the papers' 128 on a
GPU) on Fashion-MNIST-shaped inputs ``(128, 1, 28, 28)``, 10 classes. Prints per-model
figures and, as its last line, one JSON object whose ``"ratios"`` hold
``overhead_vs_dense_lenet`` and ``overhead_vs_dense_convnet`` (ours / dense step time; the
goal is at most 1.15).

    python benchmarks/sparse_step.py --quick
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from landscape.devices import resolve_device
from landscape.models import create_model
from landscape.sparse import random_masks
from landscape.specs import ModelSpec, RunSpec
from landscape.train import FixedMask, LoopState

DENSITY = 0.2
BATCH = 128
IN_SHAPE = (1, 28, 28)  # Fashion-MNIST
CLASSES = 10
CHECK_STEPS = 5
SGD = {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4}
CONVNET_WIDTH = {"cpu": 32, "cuda": 128}  # ConvNet-D at 128 channels is GPU work

CASES = [  # label, ratio key, model, model kwargs (width filled in per device)
    ("lenet300-100", "overhead_vs_dense_lenet", "lenet300-100", {}),
    ("convnet-d3", "overhead_vs_dense_convnet", "convnet", {"depth": 3, "norm": "instance"}),
]


class Side:
    """One network, its optimiser and (for ours) the FixedMask controller and loop state."""

    def __init__(
        self, model: nn.Module, masks: dict | None, spec: RunSpec, naive: bool = False
    ) -> None:
        self.model = model
        self.optimizer = torch.optim.SGD(model.parameters(), **SGD)
        self.controller = self.state = None
        self.naive = None
        if masks is not None and naive:  # the reference: mask each tensor in a Python loop
            params = dict(model.named_parameters())
            self.naive = [(params[n], m.to(params[n].dtype)) for n, m in masks.items()]
            with torch.no_grad():
                for p, m in self.naive:
                    p.mul_(m)
        elif masks is not None:
            self.controller = FixedMask(masks)
            self.state = LoopState(spec, Path("."), model, self.optimizer, 0, 0, 1)
            self.controller.on_start(self.state)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(x), y).backward()
        self.optimizer.step()
        if self.controller is not None:
            self.state.step += 1
            self.controller.after_step(self.state)
        if self.naive is not None:
            with torch.no_grad():
                for p, m in self.naive:
                    p.mul_(m)


def check(model, masks, spec, x, y) -> tuple[bool, bool]:
    """(pruned weights exactly zero, bitwise equal to the naive reference) after a few steps."""
    ours = Side(copy.deepcopy(model), masks, spec)
    naive = Side(copy.deepcopy(model), masks, spec, naive=True)
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True):
        for _ in range(CHECK_STEPS):  # deterministic kernels: the two must agree bit for bit
            ours.step(x, y)
            naive.step(x, y)
    params = dict(ours.model.named_parameters())
    zero = all(int(torch.count_nonzero(params[n].detach()[~m])) == 0 for n, m in masks.items())
    same = all(
        torch.equal(a, b)
        for a, b in zip(ours.model.state_dict().values(), naive.model.state_dict().values())
    )
    return zero, same


def timed(side: Side, x, y, steps: int, device: torch.device) -> float:
    """Seconds per step over ``steps`` steps."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        side.step(x, y)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def compare(model, masks, spec, x, y, device, repeats, steps) -> tuple[float, float]:
    """Median seconds per step of (dense, ours), repetitions interleaved in both orders.

    Every repetition starts from the same weights and optimiser state (taken after a
    warm-up), so neither side drifts into another numerical regime (e.g. denormal
    gradients once the batch is learnt) than the other.
    """
    dense = Side(copy.deepcopy(model), None, spec)
    ours = Side(copy.deepcopy(model), masks, spec)
    start = {}
    for name, side in (("dense", dense), ("ours", ours)):
        timed(side, x, y, 3, device)  # warm-up: allocator, kernels, momentum buffers
        start[name] = copy.deepcopy((side.model.state_dict(), side.optimizer.state_dict()))
    times: dict[str, list[float]] = {"dense": [], "ours": []}
    for r in range(repeats):
        order = (("dense", dense), ("ours", ours))
        for name, side in order if r % 2 == 0 else order[::-1]:
            weights, optimizer = copy.deepcopy(start[name])  # loading may alias the tensors
            side.model.load_state_dict(weights)
            side.optimizer.load_state_dict(optimizer)
            times[name].append(timed(side, x, y, steps, device))
    return statistics.median(times["dense"]), statistics.median(times["ours"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--device", default=None, help="default: CUDA if available, else CPU")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (default 1: on a shared machine more threads than free cores "
        "makes step times swing twentyfold)",
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    repeats, steps = (10, 3) if args.quick else (30, 5)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, *IN_SHAPE, generator=gen).to(device)
    y = torch.randint(0, CLASSES, (BATCH,), generator=gen).to(device)
    figures: dict[str, dict] = {}
    ratios: dict[str, float] = {}
    for label, key, name, kwargs in CASES:
        if name == "convnet":
            kwargs = {**kwargs, "width": CONVNET_WIDTH[device.type]}
        torch.manual_seed(0)
        model = create_model(name, num_classes=CLASSES, in_shape=IN_SHAPE, **kwargs).to(device)
        masks = random_masks(model.cpu(), DENSITY, torch.Generator().manual_seed(1))
        model = model.to(device)
        masks = {n: m.to(device) for n, m in masks.items()}
        spec = RunSpec(model=ModelSpec(name, kwargs))  # what the loop would hand the controller
        zero, same = check(model, masks, spec, x, y)
        row = {"kwargs": kwargs, "masked_weights_zero": zero, "matches_naive": same}
        if not (zero and same):
            print(f"{label}: the masked step is wrong ({row}); not timing it")
            figures[label] = row
            continue
        t_dense, t_ours = compare(model, masks, spec, x, y, device, repeats, steps)
        row |= {"dense_ms": 1e3 * t_dense, "ours_ms": 1e3 * t_ours, key: t_ours / t_dense}
        ratios[key] = t_ours / t_dense
        figures[label] = row
        print(
            f"{label}: dense {1e3 * t_dense:.3f} ms/step, FixedMask {1e3 * t_ours:.3f} ms/step, "
            f"ratio {t_ours / t_dense:.3f} (pruned weights zero: {zero}, matches naive: {same})"
        )
    ok = all(r["masked_weights_zero"] and r["matches_naive"] for r in figures.values())
    print(
        json.dumps(
            {
                "device": str(device),
                "threads": torch.get_num_threads(),
                "density": DENSITY,
                "batch": BATCH,
                "repeats": repeats,
                "steps_per_repeat": steps,
                "checks_pass": ok,
                "models": figures,
                "ratios": ratios,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
