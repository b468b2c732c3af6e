"""Benchmark: dynamic sparse training's cost per step and per mask update.

Two figures, each measured side by side in one run:

- **The step between mask updates**: forward, cross-entropy, backward, SGD step (momentum
  0.9, weight decay 5e-4) and the RigL controller's ``after_backward`` / ``after_step`` as
  the loop calls them (density 0.2, ERK), against the same dense step on a copy of the
  network and the same batch (``overhead_vs_dense_<model>``; goal: at most 1.10). The
  repetitions alternate the two sides from the same starting state; each figure is the median.
- **A RigL mask update on ResNet-20** (CIFAR-10 shapes, batch 128, density 0.2 ERK, drop
  fraction 0.3): the time of :meth:`DynamicSparse.drop_and_grow` from kept dense gradients,
  including the write of the run's ``dst.csv`` record (part of every update), printed in
  milliseconds (goal: under 50 ms on a 2-core CPU), against the update as the
  FreeTickets/sparselearning code writes it (a full sort of every layer's magnitudes and
  gradients; ``speedup_vs_full_sort``). Before timing, both must choose the same mask.

    python benchmarks/dst_step.py --quick
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from landscape.devices import resolve_device
from landscape.models import create_model
from landscape.specs import ModelSpec, RunSpec, TrainSpec
from landscape.train import LoopState, RigL

DENSITY = 0.2
BATCH = 128
SGD = {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4}
STEP_CASES = [  # label, model, kwargs, input shape
    ("lenet300-100", "lenet300-100", {}, (1, 28, 28)),
    ("resnet20", "resnet20", {}, (3, 32, 32)),
]


def _state(model: nn.Module, optimizer, name: str, steps: int = 10**6) -> LoopState:
    spec = RunSpec(model=ModelSpec(name), train=TrainSpec(steps=steps))
    # the controller writes its records (dst.csv) into the run directory: a scratch folder
    return LoopState(spec, Path(tempfile.mkdtemp(prefix="dst-bench-")), model, optimizer, 0, 0, 1)


class Side:
    """A network and its optimiser, with (ours) or without (dense) a RigL controller."""

    def __init__(self, model: nn.Module, name: str, sparse: bool) -> None:
        self.model = model
        self.optimizer = torch.optim.SGD(model.parameters(), **SGD)
        self.controller = RigL(DENSITY, update_every=10**6) if sparse else None
        self.state = _state(model, self.optimizer, name)
        if self.controller is not None:
            self.controller.on_start(self.state)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(x), y).backward()
        if self.controller is not None:
            self.controller.after_backward(self.state)
        self.optimizer.step()
        self.state.step += 1
        if self.controller is not None:
            self.controller.after_step(self.state)


def timed(fn, repeats: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``repeats`` calls."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats


def step_overhead(name, kwargs, shape, device, repeats, steps) -> dict:
    """Median dense and RigL step times between updates, repetitions in both orders."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_shape=shape, **kwargs).to(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, *shape, generator=gen).to(device)
    y = torch.randint(0, 10, (BATCH,), generator=gen).to(device)
    sides = {"dense": Side(copy.deepcopy(model), name, False)}
    sides["ours"] = Side(copy.deepcopy(model), name, True)
    start = {}
    for key, side in sides.items():
        timed(lambda side=side: side.step(x, y), 3, device)
        start[key] = copy.deepcopy((side.model.state_dict(), side.optimizer.state_dict()))
    times: dict[str, list[float]] = {"dense": [], "ours": []}
    for r in range(repeats):
        order = ["dense", "ours"] if r % 2 == 0 else ["ours", "dense"]
        for key in order:
            side = sides[key]
            weights, optimizer = copy.deepcopy(start[key])
            side.model.load_state_dict(weights)
            side.optimizer.load_state_dict(optimizer)
            times[key].append(timed(lambda side=side: side.step(x, y), steps, device))
    dense, ours = statistics.median(times["dense"]), statistics.median(times["ours"])
    return {"dense_ms": 1e3 * dense, "ours_ms": 1e3 * ours, "ratio": ours / dense}


def full_sort_update(masks, weights, grads, fraction) -> dict:
    """The update as sparselearning's ``truncate_weights`` writes it: full sorts per layer."""
    out = {}
    for name, mask in masks.items():
        active = int(mask.sum())
        count = round(fraction * active)
        if count == 0 or active == mask.numel():
            out[name] = mask
            continue
        score = weights[name].abs().flatten().masked_fill(~mask.flatten(), math.inf)
        order = torch.sort(score).indices
        kept = mask.flatten().clone()
        kept[order[:count]] = False
        grow = grads[name].abs().flatten().masked_fill(kept, -math.inf)
        order = torch.sort(grow, descending=True).indices
        new = kept.clone()
        new[order[:count]] = True
        out[name] = new.view_as(mask)
    return out


def update_time(device, repeats) -> dict:
    """Median milliseconds of one RigL update on ResNet-20, ours and the full-sort peer."""
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_shape=(3, 32, 32)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), **SGD)
    controller = RigL(DENSITY, update_every=1, drop_fraction=0.3, decay="constant")
    state = _state(model, optimizer, "resnet20")
    controller.on_start(state)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (BATCH,), generator=gen).to(device)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    grads = controller._gradients(model)
    masks = {n: m.clone() for n, m in controller.masks.items()}
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    snapshot = copy.deepcopy((model.state_dict(), optimizer.state_dict()))

    def ours() -> None:
        model.load_state_dict(snapshot[0])
        controller.masks = {n: m.clone() for n, m in masks.items()}
        controller.ever = {n: m.clone() for n, m in masks.items()}
        controller.records = []
        controller._grads = {n: g.clone() for n, g in grads.items()}
        state.step = 1
        controller.drop_and_grow(state, 0.3, "gradient", "update")

    def reset_only() -> None:  # what ``ours`` spends on restoring its inputs, subtracted
        model.load_state_dict(snapshot[0])
        controller.masks = {n: m.clone() for n, m in masks.items()}
        controller.ever = {n: m.clone() for n, m in masks.items()}
        controller._grads = {n: g.clone() for n, g in grads.items()}

    ours()
    same = all(
        torch.equal(controller.masks[n], m)
        for n, m in full_sort_update(masks, weights, grads, 0.3).items()
    )
    times: dict[str, list[float]] = {"ours": [], "reset": [], "peer": []}
    for _ in range(repeats):
        times["ours"].append(timed(ours, 1, device))
        times["reset"].append(timed(reset_only, 1, device))
        times["peer"].append(timed(lambda: full_sort_update(masks, weights, grads, 0.3), 1, device))
    ours_s = max(1e-9, statistics.median(times["ours"]) - statistics.median(times["reset"]))
    peer_s = statistics.median(times["peer"])
    size = sum(m.numel() for m in masks.values())
    return {
        "update_ms": 1e3 * ours_s,
        "full_sort_ms": 1e3 * peer_s,
        "weights": size,
        "matches_full_sort": same,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--device", default=None, help="default: CUDA if available, else CPU")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    repeats, steps = (8, 3) if args.quick else (20, 5)
    figures: dict[str, dict] = {}
    ratios: dict[str, float] = {}
    for label, name, kwargs, shape in STEP_CASES:
        row = step_overhead(name, kwargs, shape, device, repeats, steps)
        figures[label] = row
        ratios[f"overhead_vs_dense_{label.split('-')[0]}"] = row["ratio"]
        print(
            f"{label}: dense {row['dense_ms']:.2f} ms/step, RigL between updates "
            f"{row['ours_ms']:.2f} ms/step, ratio {row['ratio']:.3f}"
        )
    update = update_time(device, 5 if args.quick else 15)
    figures["rigl_update_resnet20"] = update
    ratios["speedup_vs_full_sort"] = update["full_sort_ms"] / update["update_ms"]
    print(
        f"RigL mask update on ResNet-20 ({update['weights']:,} prunable weights): "
        f"{update['update_ms']:.1f} ms (full-sort peer {update['full_sort_ms']:.1f} ms; same "
        f"mask: {update['matches_full_sort']})"
    )
    ok = update["matches_full_sort"]
    print(
        json.dumps(
            {
                "device": str(device),
                "threads": torch.get_num_threads(),
                "density": DENSITY,
                "batch": BATCH,
                "checks_pass": ok,
                "models": figures,
                "ratios": ratios,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
