"""Benchmark: a 21-point barrier on a whole test split, ours against two peers.

Peers, timed side by side in one run on the same models and data:

- ``naive``: what most research code does: for each alpha, build the interpolated
  state_dict, load it, (for BatchNorm models) recompute the running statistics on 4096
  training examples in batches of 128, and evaluate batch by batch (``batch_size=128``,
  ``torch.no_grad``), computing loss and error.
- ``loss_landscapes``: ``loss_landscapes.linear_interpolation`` with its ``Loss`` metric on
  the whole split as one batch (it computes the loss only, at 21 points, and has no
  BatchNorm reset, so it is timed on the models without BatchNorm).

Both curves (loss and error) must match the naive loop's to 1e-5; ``matches_naive`` says
whether they do. The models are two independent initialisations: timing does not depend on
the weights, and agreement is checked all the same.

Prints per-model timings and agreement, and as its last line one JSON object whose
``"ratios"`` hold ``speedup_vs_naive`` and ``speedup_vs_loss_landscapes`` (peer time / ours,
the smallest over the models without BatchNorm, so the headline never flatters us) and
``speedup_vs_naive_with_bn_reset`` for the BatchNorm model, whose per-alpha statistics pass
costs both sides the same.

    python benchmarks/interpolation.py --quick
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from landscape.analysis import interpolate
from landscape.data import get_dataset
from landscape.errors import LandscapeError
from landscape.models import create_model

POINTS = 21
NAIVE_BATCH = 128
BN_EXAMPLES = 4096


def naive_curve(a, b, x, y, train_x=None) -> tuple[list[float], list[float]]:
    """Loss and error at each alpha: load each interpolated state_dict, evaluate in batches."""
    model = copy.deepcopy(a).eval()
    sa, sb = a.state_dict(), b.state_dict()
    losses, errors = [], []
    for alpha in torch.linspace(0, 1, POINTS).tolist():
        # the mix written out here, so the agreement check owes nothing to the library
        model.load_state_dict(
            {
                k: (1 - alpha) * v + alpha * sb[k] if v.is_floating_point() else v
                for k, v in sa.items()
            }
        )
        if train_x is not None:
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.reset_running_stats()
                    m.momentum = None
            model.train()
            with torch.no_grad():
                for i in range(0, len(train_x), NAIVE_BATCH):
                    model(train_x[i : i + NAIVE_BATCH])
            model.eval()
        total, wrong = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(y), NAIVE_BATCH):
                logits = model(x[i : i + NAIVE_BATCH])
                total += F.cross_entropy(logits, y[i : i + NAIVE_BATCH], reduction="sum").item()
                wrong += (logits.argmax(1) != y[i : i + NAIVE_BATCH]).sum().item()
        losses.append(total / len(y))
        errors.append(wrong / len(y))
    return losses, errors


def loss_landscapes_curve(a: nn.Module, b: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """Loss at alpha = 0 and at 20 further steps, through the loss-landscapes library."""
    import loss_landscapes
    from loss_landscapes.metrics import Loss

    metric = Loss(nn.CrossEntropyLoss(), x, y)
    start = copy.deepcopy(a).eval()
    first = metric(loss_landscapes.model_interface.model_wrapper.wrap_model(start))
    rest = loss_landscapes.linear_interpolation(
        start, copy.deepcopy(b).eval(), metric, steps=POINTS - 1
    )
    return [first, *rest.tolist()]


def ours_curve(a, b, x, y, train_x=None) -> tuple[list[float], list[float]]:
    train_data = None if train_x is None else (train_x, torch.zeros(len(train_x)).long())
    res = interpolate(a, b, (x, y), points=POINTS, train_data=train_data, bn_batch_size=NAIVE_BATCH)
    return res.loss, res.error


def best_time(fn: Callable[[], object], repeats: int, budget_s: float) -> tuple[float, object]:
    """The fastest of at least ``repeats`` runs after one warm-up, repeating cheap functions
    until ``budget_s`` seconds are spent (at most 50 runs): the minimum of many runs is the
    least noisy figure on a shared machine."""
    out = fn()
    times: list[float] = []
    while len(times) < repeats or (sum(times) < budget_s and len(times) < 50):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


CASES = [  # label, dataset, model, model kwargs, BatchNorm reset
    ("conv1d/mnist1d", "mnist1d", "conv1d", {}, False),
    ("lenet300-100/fashion-mnist", "fashion-mnist", "lenet300-100", {}, False),
    (
        "convnet-bn/fashion-mnist",
        "fashion-mnist",
        "convnet",
        {"depth": 2, "width": 8, "norm": "batch"},
        True,
    ),
    ("mlp/mnist1d", "mnist1d", "mlp", {}, False),
]


def cases(quick: bool):
    """(label, test split, BN-reset inputs or None, model A, model B) per available case."""
    out = []
    for label, data, name, kwargs, bn in CASES[:3] if quick else CASES:
        try:
            test = get_dataset(data, split="test")
            train_x = get_dataset(data, split="train").subset(BN_EXAMPLES).x if bn else None
        except LandscapeError as err:
            print(f"skipping {label}: {err}")
            continue
        models = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            models.append(
                create_model(
                    name,
                    num_classes=test.info.num_classes,
                    in_shape=tuple(test.info.in_shape),
                    **kwargs,
                )
            )
        out.append((label, test, train_x, *models))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    repeats, budget = (2, 1.0) if args.quick else (5, 5.0)
    figures: dict[str, dict[str, float]] = {}
    for label, test, train_x, a, b in cases(args.quick):
        x, y = test.x, test.y
        t_ours, (loss, error) = best_time(partial(ours_curve, a, b, x, y, train_x), repeats, budget)
        t_naive, (n_loss, n_error) = best_time(
            partial(naive_curve, a, b, x, y, train_x), repeats, budget
        )
        diff = max(abs(p - q) for p, q in zip(loss + error, n_loss + n_error))
        row = {
            "examples": len(y),
            "bn_reset": train_x is not None,
            "ours_s": t_ours,
            "naive_s": t_naive,
            "speedup_vs_naive": t_naive / t_ours,
            "max_abs_diff_vs_naive": diff,
            "matches_naive": diff <= 1e-5,
        }
        if train_x is None:
            try:
                t_ll, ll = best_time(partial(loss_landscapes_curve, a, b, x, y), repeats, budget)
                row |= {
                    "loss_landscapes_s": t_ll,
                    "speedup_vs_loss_landscapes": t_ll / t_ours,
                    "max_abs_diff_vs_loss_landscapes": max(abs(p - q) for p, q in zip(loss, ll)),
                }
            except ImportError:
                print("loss-landscapes is not installed (pip install -e '.[dev]'); skipping it")
        figures[label] = row
        print(f"{label}: " + ", ".join(f"{k}={v:.4g}" for k, v in row.items()))
    plain = [r for r in figures.values() if not r["bn_reset"]]
    with_bn = [r for r in figures.values() if r["bn_reset"]]
    ratios = {}
    if plain:  # the headline: the line itself, on the models without BatchNorm
        ratios["speedup_vs_naive"] = min(r["speedup_vs_naive"] for r in plain)
    if with_bn:  # recomputing BatchNorm statistics at each alpha costs the same for both
        ratios["speedup_vs_naive_with_bn_reset"] = min(r["speedup_vs_naive"] for r in with_bn)
    if any("speedup_vs_loss_landscapes" in r for r in plain):
        ratios["speedup_vs_loss_landscapes"] = min(
            r["speedup_vs_loss_landscapes"] for r in plain if "speedup_vs_loss_landscapes" in r
        )
    print(
        json.dumps(
            {
                "points": POINTS,
                "threads": torch.get_num_threads(),
                "matches_naive": all(r["matches_naive"] for r in figures.values()),
                "models": figures,
                "ratios": ratios,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
