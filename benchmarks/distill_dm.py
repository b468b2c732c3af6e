"""Benchmark: DM distillation of Fashion-MNIST at IPC 10, ours against the per-class loop.

- ``ours``: :func:`landscape.train.distill` with ``method="dm"``: each iteration embeds the
  real batches of all classes in one forward pass and the synthetic set in another
  (:func:`landscape.train.distribution_matching_loss`).
- ``per_class_loop``: the loop of the reference DM code (Zhao & Bilen, WACV 2023): for each
  class, augment its real batch and its synthetic images with that class's draw, embed
  each, and add the squared distance of the two means; written out below.

Both get the same network, real batches and augmentation draws; their loss and image
gradient must agree (``matches_per_class_loop``) before they are timed side by side over a
few iterations (``speedup_vs_per_class_loop`` = loop time / ours, per iteration). Then the
whole DM run of the demo scale (ConvNet-3, ``ITERATIONS`` iterations of ``BATCH_REAL`` real
images per class) is timed through ``distill``; ``--evaluate`` also trains ConvNet-3 on the
set and on the random real subset of the same size (two seeds each) and reports their real
test accuracy.

    python benchmarks/distill_dm.py --quick
    python benchmarks/distill_dm.py --evaluate

The last line is one JSON object with the figures and ``"ratios"``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import OrderedDict
from contextlib import contextmanager

import torch

from landscape.data import get_dataset
from landscape.errors import LandscapeError
from landscape.models import create_model
from landscape.specs import DataSpec, TrainSpec
from landscape.train import (
    DistillSpec,
    distill,
    distribution_matching_loss,
    evaluate_distilled,
    summarize_distilled,
)
from landscape.train.distill import augment, draw_augmentation

IPC = 10
ITERATIONS = 50  # the demo scale: 58 s on 2 CPU cores; 78.4% real test accuracy vs 71.7%
BATCH_REAL = 64  # real images per class per iteration (the paper's 256 costs 4x)
EVAL = TrainSpec(lr=0.01, steps=100, batch_size=100)  # ConvNet-3 on the 100 images


def features(seed: int, info, device) -> torch.nn.Module:
    """A fresh ConvNet-3 without its classifier: DM's embedding."""
    torch.manual_seed(seed)
    net = create_model("convnet", num_classes=info.num_classes, in_shape=tuple(info.in_shape))
    net.requires_grad_(False)
    return torch.nn.Sequential(OrderedDict(list(net.named_children())[:-1])).to(device)


def draw(train, syn_labels, seed: int):
    """One iteration's real batch (sorted by class) and per-class augmentation draw."""
    gen = torch.Generator().manual_seed(seed)
    c = train.info.num_classes
    picks = []
    for k in range(c):
        members = torch.nonzero(train.y == k).flatten()
        picks.append(members[torch.randperm(len(members), generator=gen)[:BATCH_REAL]])
    index = torch.cat(picks).to(train.x.device)
    params = draw_augmentation(c, train.info.in_shape, gen)
    return train.x[index], train.y[index], {k: v.to(train.x.device) for k, v in params.items()}


def ours(embed, real_x, real_y, syn, syn_y, params, num_classes):
    """All classes at once: each example takes its class's row of the draw."""
    real_x = augment(real_x, {k: v[real_y] for k, v in params.items()})
    syn = augment(syn, {k: v[syn_y] for k, v in params.items()})
    return distribution_matching_loss(embed, real_x, real_y, syn, syn_y, num_classes)


def per_class_loop(embed, real_x, real_y, syn, syn_y, params, num_classes):
    """The reference code's loop: one class, one Siamese augmentation, two means at a time."""
    loss = syn.new_zeros(())
    for c in range(num_classes):
        img_real, img_syn = real_x[real_y == c], syn[syn_y == c]
        row = {k: v[c : c + 1] for k, v in params.items()}
        with torch.no_grad():
            output_real = embed(augment(img_real, _repeat(row, len(img_real)))).flatten(1)
        output_syn = embed(augment(img_syn, _repeat(row, len(img_syn)))).flatten(1)
        loss = loss + ((output_real.mean(0) - output_syn.mean(0)) ** 2).sum()
    return loss


def _repeat(row: dict, n: int) -> dict:
    return {k: v.expand(n, *v.shape[1:]) for k, v in row.items()}


def step(fn, embed, batch, syn, syn_y, num_classes):
    """Loss and image gradient of one iteration."""
    real_x, real_y, params = batch
    syn = syn.detach().requires_grad_(True)
    loss = fn(embed, real_x, real_y, syn, syn_y, params, num_classes)
    (grad,) = torch.autograd.grad(loss, syn)
    return loss.item(), grad  # .item() waits for the device


@contextmanager
def full_precision():
    """cuDNN off (its algorithms differ with the batch size, some by ~1e-3 in float32, e.g.
    Winograd, and TF32), so the agreement is checked exactly; timing uses the defaults."""
    saved = torch.backends.cudnn.enabled, torch.get_float32_matmul_precision()
    torch.backends.cudnn.enabled = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cudnn.enabled = saved[0]
        torch.set_float32_matmul_precision(saved[1])


def side_by_side(train, repeats: int) -> dict:
    """Check agreement on one iteration, then time both on the same draws."""
    c, device = train.info.num_classes, train.x.device
    syn_y = torch.arange(c, device=device).repeat_interleave(IPC)
    syn = draw(train, syn_y, 12345)[0].view(c, BATCH_REAL, *train.info.in_shape)[:, :IPC]
    syn = syn.reshape(c * IPC, *train.info.in_shape).clone()
    embed, batch = features(0, train.info, device), draw(train, syn_y, 0)
    with full_precision():
        a, ga = step(ours, embed, batch, syn, syn_y, c)
        b, gb = step(per_class_loop, embed, batch, syn, syn_y, c)
    loss_diff = abs(a - b) / abs(b)
    grad_diff = ((ga - gb).abs().max() / gb.abs().max()).item()
    diff = max(loss_diff, grad_diff)
    times = {"ours": [], "per_class_loop": []}
    for i in range(repeats):
        embed, batch = features(i + 1, train.info, device), draw(train, syn_y, i + 1)
        for name, fn in (("ours", ours), ("per_class_loop", per_class_loop)):
            start = time.perf_counter()
            step(fn, embed, batch, syn, syn_y, c)
            times[name].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    return {
        "ours_iteration_s": best["ours"],
        "per_class_loop_iteration_s": best["per_class_loop"],
        "loss_rel_diff_vs_per_class_loop": loss_diff,
        "max_rel_diff_vs_per_class_loop": diff,
        "matches_per_class_loop": diff <= 1e-4,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run: timing only")
    parser.add_argument("--evaluate", action="store_true", help="train on the set and on real")
    parser.add_argument("--device", default="cpu", help="where to run (default: the CPU)")
    args = parser.parse_args()
    try:
        train = get_dataset("fashion-mnist", split="train").to(args.device)
    except LandscapeError as err:
        print(f"skipping: {err}")
        return 0
    figures = side_by_side(train, repeats=2 if args.quick else 3)
    print(", ".join(f"{k}={v:.4g}" for k, v in figures.items()))
    iterations = 3 if args.quick else ITERATIONS
    spec = DistillSpec(
        DataSpec("fashion-mnist"), "dm", ipc=IPC, iterations=iterations, batch_real=BATCH_REAL
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        made = distill(spec, f"{tmp}/distilled", device=args.device)
        figures["distill_s"] = time.perf_counter() - start
        figures |= {"iterations": iterations, "batch_real": BATCH_REAL, "ipc": IPC}
        figures["real_examples_seen"] = made.record["real_examples_seen"]
        print(f"DM, {iterations} iterations: {figures['distill_s']:.1f} s")
        if args.evaluate and not args.quick:
            runs = f"{tmp}/runs"
            rows = evaluate_distilled(made, EVAL, seeds=(0, 1), root=runs, device=args.device)
            for s in summarize_distilled(rows):
                figures[f"{s['method']}_test_accuracy"] = s["test_accuracy_mean"]
                print(
                    f"{s['method']}: test accuracy {s['test_accuracy_mean']:.4f} ± "
                    f"{s['test_accuracy_std']:.4f} ({s['runs']} seeds)"
                )
    ratio = figures["per_class_loop_iteration_s"] / figures["ours_iteration_s"]
    print(
        json.dumps(
            {
                "device": str(train.x.device),
                "threads": torch.get_num_threads(),
                "figures": figures,
                "ratios": {"speedup_vs_per_class_loop": ratio},
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
