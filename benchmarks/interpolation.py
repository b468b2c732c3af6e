"""Benchmark: a 21-point barrier on a whole test split, ours against two peers.

Peers, timed side by side in one run on the same models and data:

- ``naive``: what most research code does: for each alpha, build the interpolated
  state_dict, load it, and evaluate batch by batch (``batch_size=128``, ``torch.no_grad``).
- ``loss_landscapes``: ``loss_landscapes.linear_interpolation`` with its ``Loss`` metric on
  the whole split as one batch (it computes the loss only, at 21 points).

Prints per-model timings and agreement, and as its last line one JSON object whose
``"ratios"`` hold ``speedup_vs_naive`` and ``speedup_vs_loss_landscapes`` (peer time / ours,
the smallest over the models, so the headline never flatters us).

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

from landscape.analysis import interpolate, interpolate_state
from landscape.data import get_dataset
from landscape.errors import LandscapeError
from landscape.models import create_model

POINTS = 21
NAIVE_BATCH = 128


def naive_curve(a: nn.Module, b: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Loss at each alpha: load each interpolated state_dict, evaluate batch by batch."""
    model = copy.deepcopy(a).eval()
    sa, sb = a.state_dict(), b.state_dict()
    losses = []
    for alpha in torch.linspace(0, 1, POINTS).tolist():
        model.load_state_dict(interpolate_state(sa, sb, alpha))
        total, wrong = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(y), NAIVE_BATCH):
                logits = model(x[i : i + NAIVE_BATCH])
                total += F.cross_entropy(logits, y[i : i + NAIVE_BATCH], reduction="sum").item()
                wrong += (logits.argmax(1) != y[i : i + NAIVE_BATCH]).sum().item()
        losses.append(total / len(y))
    return losses


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


def ours_curve(a: nn.Module, b: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    return interpolate(a, b, (x, y), points=POINTS).loss


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """The fastest of ``repeats`` runs (after one warm-up), and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def cases(quick: bool) -> list[tuple[str, str, nn.Module, nn.Module]]:
    """(label, dataset, model A, model B): the embedded models, at two different inits."""
    out = []
    for label, data, name in [
        ("conv1d/mnist1d", "mnist1d", "conv1d"),
        ("lenet300-100/fashion-mnist", "fashion-mnist", "lenet300-100"),
        ("mlp/mnist1d", "mnist1d", "mlp"),
    ]:
        try:
            info = get_dataset(data, split="test").info
        except LandscapeError as err:
            print(f"skipping {label}: {err}")
            continue
        models = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            models.append(
                create_model(name, num_classes=info.num_classes, in_shape=tuple(info.in_shape))
            )
        out.append((label, data, *models))
        if quick and len(out) == 2:
            break
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    figures: dict[str, dict[str, float]] = {}
    for label, data, a, b in cases(args.quick):
        test = get_dataset(data, split="test")
        x, y = test.x, test.y
        t_ours, ours = best_time(partial(ours_curve, a, b, x, y), repeats)
        t_naive, naive = best_time(partial(naive_curve, a, b, x, y), repeats)
        row = {
            "examples": len(y),
            "ours_s": t_ours,
            "naive_s": t_naive,
            "speedup_vs_naive": t_naive / t_ours,
            "max_abs_diff_vs_naive": max(abs(p - q) for p, q in zip(ours, naive)),
        }
        try:
            t_ll, ll = best_time(partial(loss_landscapes_curve, a, b, x, y), repeats)
            row |= {
                "loss_landscapes_s": t_ll,
                "speedup_vs_loss_landscapes": t_ll / t_ours,
                "max_abs_diff_vs_loss_landscapes": max(abs(p - q) for p, q in zip(ours, ll)),
            }
        except ImportError:
            print("loss-landscapes is not installed (pip install -e '.[dev]'); skipping it")
        figures[label] = row
        print(f"{label}: " + ", ".join(f"{k}={v:.4g}" for k, v in row.items()))
    ratios = {
        key: min(r[key] for r in figures.values() if key in r)
        for key in ("speedup_vs_naive", "speedup_vs_loss_landscapes")
        if any(key in r for r in figures.values())
    }
    print(
        json.dumps(
            {
                "points": POINTS,
                "threads": torch.get_num_threads(),
                "models": figures,
                "ratios": ratios,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
