"""Benchmark: training throughput of ResNet-20 on CIFAR-10-shaped data, our loop against a
plain PyTorch loop, side by side in one run; on CUDA also bfloat16, channels-last and
``torch.compile``, and (with CIFAR-10 on disk) the time to a test accuracy.

- ``plain``: the loop most research code writes: the same model, SGD (momentum 0.9,
  Nesterov off, weight decay 5e-4), random batches of the same resident tensor, forward,
  cross-entropy, backward, step. No seeds per step, no checkpoints, no evaluation.
- ours: :func:`landscape.train.train` on the same data and model, its steps stamped by a
  controller. Both figures are the median step after 3 warm-up steps: the steady state,
  without the fixed costs of building and saving a run, and robust to a busy machine.

Both see random crops and flips on the device. The data is CIFAR-10 when it is found
(``--data-root`` or ``$LANDSCAPE_DATA``), else random images of its shape registered as
``synthetic-cifar10`` (the arithmetic of a step does not depend on the pixels).

With CUDA and CIFAR-10, ``--target 0.94`` trains ``--epochs`` epochs in bfloat16 and
channels-last and reports the seconds until the test accuracy first reaches the target
(evaluated every epoch; ``null`` if it never does). The published anchor is airbench94:
about 3.3 s to 94% on one A100 (Jordan 2024), with a network and schedule built for that
race, not ResNet-20.

Prints a line per measurement and, last, one JSON object whose ``ratios`` hold
``overhead_vs_plain_loop`` (ours / plain, per step) and on CUDA ``speedup_vs_fp32_eager``
for each variant.

    python benchmarks/train_throughput.py --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from landscape.data import DatasetInfo, get_dataset, register_dataset
from landscape.data.loader import flip_where, random_crop
from landscape.devices import resolve_device
from landscape.errors import LandscapeError
from landscape.models import create_model
from landscape.specs import DataSpec, ModelSpec, RunSpec, TrainSpec
from landscape.train import Controller, train

SYNTHETIC = "synthetic-cifar10"
WARMUP = 3  # steps before timing: the first ones pick and cache kernels


@register_dataset(SYNTHETIC)
def _synthetic(root, split):
    rng = np.random.default_rng(0 if split == "train" else 1)
    n = 10_000 if split == "train" else 1_000
    x = torch.tensor(rng.random((n, 3, 32, 32), dtype=np.float32))
    y = torch.tensor(rng.integers(0, 10, size=n))
    info = DatasetInfo(
        SYNTHETIC, 10, (3, 32, 32), (0.5,) * 3, (0.25,) * 3, tuple("0123456789"), ("crop", "flip")
    )
    return x, y, info


def dataset(root: str | None) -> str:
    try:
        get_dataset("cifar10", root, split="test")
        return "cifar10"
    except LandscapeError:
        return SYNTHETIC


def spec(data: str, root: str | None, steps: int, batch: int, precision: str = "fp32"):
    return RunSpec(
        data=DataSpec(data, augment=("crop", "flip"), root=root),
        model=ModelSpec("resnet20"),
        train=TrainSpec(lr=0.1, steps=steps, batch_size=batch, precision=precision),
    )


class _Clock(Controller):
    """Stamps the end of every optimiser step (after a device sync)."""

    name = "clock"

    def __init__(self, device: torch.device) -> None:
        self.device, self.stamps = device, []

    def after_step(self, state) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())


def _median_step(stamps: list[float], warmup: int) -> float:
    """The median interval between steps after the first ``warmup`` (robust to a busy
    machine, and free of the fixed costs of building and saving a run)."""
    return float(np.median(np.diff(stamps[warmup:])))


def ours_step(data, root, batch, steps, device, precision="fp32", **options) -> float:
    """Seconds per step of :func:`train` (median over steps, after warm-up)."""
    clock = _Clock(device)
    with tempfile.TemporaryDirectory() as runs:
        run_spec = spec(data, root, steps, batch, precision)
        train(run_spec, runs, controllers=[clock], device=device, progress=False, **options)
    return _median_step(clock.stamps, WARMUP)


def plain_step(data, root, batch, steps, device) -> float:
    """Seconds per step of a plain PyTorch loop on the same data and model (median)."""
    split = get_dataset(data, root, split="train").to(device)
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_shape=(3, 32, 32)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator(device=device).manual_seed(0)
    model.train()
    stamps = []
    for _ in range(steps):
        idx = torch.randint(0, len(split.y), (batch,), device=device, generator=gen)
        offsets = torch.randint(0, 9, (batch, 2), device=device, generator=gen)
        flips = torch.randint(0, 2, (batch,), device=device, generator=gen).bool()
        x = flip_where(random_crop(split.x[idx], offsets, 4), flips)
        loss = F.cross_entropy(model(x), split.y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
    return _median_step(stamps, WARMUP)


#: The GPU settings timed against float32 eager: ``train`` options per row.
VARIANTS = {
    "ours_bf16": {"precision": "bf16"},
    "ours_bf16_channels_last": {"precision": "bf16", "channels_last": True},
    "ours_bf16_channels_last_compile": {
        "precision": "bf16",
        "channels_last": True,
        "compile": True,
    },
}


def measure(data, root, batch, steps, device, variants: bool, compile: bool = True):
    """Rows (seconds a step, images/s) of the plain loop, ours in float32 and, with
    ``variants``, each of :data:`VARIANTS` (``compile=False`` leaves the compiled one out),
    and their ratios."""
    t_plain = plain_step(data, root, batch, steps, device)
    times = {"plain": t_plain, "ours_fp32": ours_step(data, root, batch, steps, device)}
    ratios = {"overhead_vs_plain_loop": times["ours_fp32"] / t_plain}
    for name, options in VARIANTS.items() if variants else ():
        if options.get("compile") and not compile:
            continue
        times[name] = ours_step(data, root, batch, steps, device, **options)
        ratios[f"speedup_vs_fp32_eager_{name.removeprefix('ours_')}"] = (
            times["ours_fp32"] / times[name]
        )
    rows = {k: {"step_s": t, "images_per_s": batch / t} for k, t in times.items()}
    return rows, ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps")
    parser.add_argument("--data-root", default=None, help="CIFAR-10's folder")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="default 128 (CPU 64)")
    parser.add_argument("--target", type=float, default=0.94, help="test accuracy to reach")
    parser.add_argument("--epochs", type=int, default=30, help="for the time to --target")
    args = parser.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    batch = args.batch_size or (128 if cuda else 64)
    steps = (15 if args.quick else 40) * (10 if cuda else 1)
    data = dataset(args.data_root)
    print(f"ResNet-20 on {data}, batch {batch}, {device} ({torch.get_num_threads()} threads)")
    rows, ratios = measure(data, args.data_root, batch, steps, device, variants=cuda)
    for name, row in rows.items():
        print(f"{name}: {1e3 * row['step_s']:.1f} ms a step, {row['images_per_s']:.0f} images/s")
    result = {"device": str(device), "data": data, "batch_size": batch, "rows": rows}
    if cuda and data == "cifar10":
        result["time_to_target"] = time_to_target(args, batch, device)
    print(json.dumps({**result, "ratios": ratios}))
    return 0


def time_to_target(args, batch: int, device, data: str = "cifar10") -> dict:
    """Seconds of training until the test accuracy, evaluated every epoch, first reaches
    ``args.target``."""
    per_epoch = len(get_dataset(data, args.data_root, split="train")) // batch
    steps = args.epochs * per_epoch
    run_spec = spec(data, args.data_root, steps, batch, "bf16")
    run_spec = run_spec.replace(train=dataclasses.replace(run_spec.train, eval_every=per_epoch))
    clock = _Clock(device)
    with tempfile.TemporaryDirectory() as runs:
        start = time.perf_counter()
        run = train(
            run_spec, runs, controllers=[clock], device=device, channels_last=True, progress=False
        )
        rows = run.metrics()[1:]
    reached = next((r for r in rows if 1 - r["test_error"] >= args.target), None)
    # from the start of the call to the end of the step whose evaluation first reached it
    # (the evaluations before it included)
    seconds = None if reached is None else clock.stamps[reached["step"] - 1] - start
    best = max(1 - r["test_error"] for r in rows)
    print(f"time to {args.target:.0%}: {seconds} s (best {best:.2%} in {args.epochs} epochs)")
    return {"target": args.target, "seconds": seconds, "best_accuracy": best}


if __name__ == "__main__":
    raise SystemExit(main())
