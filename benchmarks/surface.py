"""Benchmark: a 21 x 21 loss surface on a whole test split, ours against loss_landscapes.

For each trained model, side by side in one run:

- ``loss_landscapes.random_plane(model, Loss(CrossEntropyLoss(), x, y), steps=21)``: the
  peer's filter-normalised random plane, each point one forward pass of the whole split as
  one batch (loss only);
- ours: :func:`landscape.analysis.surface.surface` on the same 21 x 21 grid of the same
  split (loss and error), with two filter-normalised directions.

Agreement is checked on one plane for both: the peer's ``planar_interpolation`` with end
points ``theta_0 + 21 d_1`` and ``theta_0 + 21 d_2`` (our directions) evaluates ``theta_0 + i
d_1 + j' d_2``, where its in-place walk puts even columns one step further along ``d_2``
(``j' = j + 1``) than odd ones (``j' = j``); our grid on those points must match it to 1e-4
relative (``matches_loss_landscapes``).

Prints a line per model and, last, one JSON object with ``ratios.speedup_vs_loss_landscapes``
(the smallest over the models).

    python benchmarks/surface.py --quick
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np
import torch
from torch import nn

from landscape.analysis.surface import random_direction, surface
from landscape.data import get_dataset
from landscape.models import create_model

STEPS = 21


def trained(name: str, data, steps: int, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_shape=tuple(data.info.in_shape), **kwargs)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(steps):
        idx = torch.randint(0, len(data.y), (128,))
        loss = nn.functional.cross_entropy(model(data.x[idx]), data.y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def peer_plane(model, x, y) -> tuple[float, np.ndarray]:
    import loss_landscapes
    from loss_landscapes.metrics import Loss

    metric = Loss(nn.CrossEntropyLoss(), x, y)
    torch.manual_seed(0)  # its random directions: the same plane on every run
    start = time.perf_counter()
    with torch.no_grad():
        values = loss_landscapes.random_plane(
            copy.deepcopy(model), metric, steps=STEPS, normalization="filter"
        )
    return time.perf_counter() - start, values


def agreement(model, x, y, d1, d2) -> float:
    """Largest relative difference between the peer's planar walk and our grid."""
    import loss_landscapes
    from loss_landscapes.metrics import Loss

    ends = []
    for d in (d1, d2):
        end = copy.deepcopy(model)
        with torch.no_grad():
            for name, p in end.named_parameters():
                p.add_(STEPS * d[name])
        ends.append(end)
    with torch.no_grad():
        theirs = loss_landscapes.planar_interpolation(
            copy.deepcopy(model), ends[0], ends[1], Loss(nn.CrossEntropyLoss(), x, y), steps=STEPS
        )
    grid = range(STEPS)
    ours = surface(model, (x, y), [d1, d2], xs=list(grid), ys=list(range(STEPS + 1)))
    mine = np.array(ours.loss)  # [j][i]
    worst = 0.0
    for i in grid:
        for j in grid:
            jj = j + 1 if i % 2 == 0 else j
            worst = max(worst, abs(mine[jj][i] - theirs[i][j]) / abs(theirs[i][j]))
    return worst


def case(label: str, model: nn.Module, test, repeats: int) -> dict:
    x, y = test.x, test.y
    t_peer, _ = min((peer_plane(model, x, y) for _ in range(repeats)), key=lambda r: r[0])
    d1 = random_direction(model, generator=torch.Generator().manual_seed(1))
    d2 = random_direction(model, generator=torch.Generator().manual_seed(2))
    span = np.linspace(-1, 1, STEPS).tolist()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        surface(model, (x, y), [d1, d2], xs=span, ys=span)
        best = min(best, time.perf_counter() - start)
    step = [{k: v / STEPS for k, v in d.items()} for d in (d1, d2)]  # the grid's steps
    worst = agreement(model, x, y, *step)
    row = {
        "model": label,
        "examples": len(y),
        "points": STEPS * STEPS,
        "loss_landscapes_s": t_peer,
        "ours_s": best,
        "speedup_vs_loss_landscapes": t_peer / best,
        "max_rel_diff": worst,
        "matches_loss_landscapes": bool(worst < 1e-4),
    }
    print(
        f"{label} ({len(y)} test examples, {STEPS}x{STEPS}): loss_landscapes {t_peer:.2f} s, "
        f"ours {best:.2f} s (loss and error): {row['speedup_vs_loss_landscapes']:.1f}x; "
        f"values agree to {worst:.1e}"
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, smaller test split")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else 3
    rows = []
    mnist1d = get_dataset("mnist1d", split="train")
    test = get_dataset("mnist1d", split="test")
    rows.append(case("conv1d / MNIST-1D", trained("conv1d", mnist1d, 300), test, repeats))
    fashion = get_dataset("fashion-mnist", split="train")
    test = get_dataset("fashion-mnist", split="test")
    if args.quick:
        test = test.subset(2000)
    rows.append(
        case("LeNet-300-100 / Fashion-MNIST", trained("lenet300-100", fashion, 300), test, repeats)
    )
    print(
        json.dumps(
            {
                "threads": torch.get_num_threads(),
                "cases": rows,
                "ratios": {
                    "speedup_vs_loss_landscapes": min(r["speedup_vs_loss_landscapes"] for r in rows)
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
