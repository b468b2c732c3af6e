"""Benchmark: a 21 x 21 loss surface on a whole test split, ours against loss_landscapes.

For each trained model, side by side in one process:

- ``loss_landscapes.random_plane(model, Loss(CrossEntropyLoss(), x, y), steps=21)``: the
  peer's filter-normalised random plane, each point one forward pass of the whole split as
  one batch (loss only);
- ours: :func:`landscape.analysis.surface.surface` on the same 21 x 21 grid of the same
  split (loss and error), with two filter-normalised directions.

Both are warmed up on a 3 x 3 grid first, then timed (best of the repeats).

**Page faults.** glibc hands large freed blocks back to the operating system, so a forward
pass whose activations are fresh allocations can spend more time faulting pages in than
computing: the peer's plane on the MNIST-1D CNN takes about 580k minor page faults and 2.2 s
in some processes, and 0.8 s without faults in others, depending on what the process
allocated before. So the cases run twice, each time in a fresh process:

- ``as_run``: the default allocator, as a user's script gets it (either mode);
- ``no_faults``: with ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` set so that
  freed memory is kept, which leaves both sides their arithmetic and memory traffic only.

Each side's minor page faults in its timed run are reported with its time.

**GEMM floor.** The model's linear and convolution layers as matrix products (a convolution
as ``(batch x output positions, inputs x kernel) @ (inputs x kernel, outputs)``), timed with
nothing else: no im2col, no activation, no loss, the output width as the layer's or rounded
up to 16, whichever is faster. The first layer's input does not depend on the point, so it
counts three times (at the origin and along each direction: every point's output is a mix
of those); every later layer counts once per grid point. No evaluation of the grid through
PyTorch's CPU kernels can beat it; ``overhead_vs_gemm_floor`` is ours over it.

Agreement is checked on one plane for both: the peer's ``planar_interpolation`` with end
points ``theta_0 + 21 d_1`` and ``theta_0 + 21 d_2`` (our directions) evaluates ``theta_0 + i
d_1 + j' d_2``, where its in-place walk puts even columns one step further along ``d_2``
(``j' = j + 1``) than odd ones (``j' = j``); our grid on those points must match it to 1e-4
relative (``matches_loss_landscapes``).

Prints a line per model and process and, last, one JSON object whose ``ratios`` hold
``speedup_vs_loss_landscapes`` (without page faults, the smallest over the models),
``speedup_vs_loss_landscapes_as_run`` (default allocator, smallest) and
``overhead_vs_gemm_floor`` (largest).

    python benchmarks/surface.py --quick
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn

from landscape.analysis.surface import random_direction, surface
from landscape.data import get_dataset
from landscape.models import create_model

STEPS = 21
#: glibc settings under which freed memory stays with the process (no page faults)
KEEP_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


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


def faults() -> int:
    """Minor page faults of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed(fn) -> tuple[float, int]:
    """Seconds and minor page faults of one call of ``fn``."""
    before, start = faults(), time.perf_counter()
    fn()
    return time.perf_counter() - start, faults() - before


def peer_plane(model, x, y, steps: int = STEPS) -> np.ndarray:
    import loss_landscapes
    from loss_landscapes.metrics import Loss

    metric = Loss(nn.CrossEntropyLoss(), x, y)
    torch.manual_seed(0)  # its random directions: the same plane on every run
    with torch.no_grad():
        return loss_landscapes.random_plane(
            copy.deepcopy(model), metric, steps=steps, normalization="filter"
        )


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


def gemm_shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[int, int, int]]:
    """``(M, K, N)`` of each linear and convolution layer of ``model`` on ``x`` as a
    matrix product (a convolution over im2col columns)."""
    shapes = []

    def hook(m: nn.Module, inputs, out: torch.Tensor) -> None:
        if isinstance(m, nn.Linear):
            shapes.append((out.numel() // m.out_features, m.in_features, m.out_features))
            return
        if m.groups != 1:
            raise SystemExit(f"gemm_shapes: grouped convolution {m} is not modelled")
        per_example = out[0, 0].numel()  # output positions
        k = m.in_channels * math.prod(m.kernel_size)
        shapes.append((len(out) * per_example, k, m.out_channels))

    layers = (nn.Linear, nn.Conv1d, nn.Conv2d)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, layers)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


def gemm_floor(shapes: list[tuple[int, int, int]], points: int, repeats: int) -> float:
    """Seconds for the matrix products of a grid of ``points`` and nothing else: the first
    layer's three times, every later layer's once per point (best over repeats, and over
    the output width as it is or rounded up to 16)."""
    gen = torch.Generator().manual_seed(0)
    best = float("inf")
    for pad in (False, True):
        mats = []
        for m, k, n in shapes:
            n = -(-n // 16) * 16 if pad else n
            a, b = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
            mats.append((a, b, torch.empty(m, n)))
        for _ in range(repeats + 1):  # the first is a warm-up
            start = time.perf_counter()
            for a, b, out in mats[:1] * 3:
                torch.mm(a, b, out=out)
            for _ in range(points):
                for a, b, out in mats[1:]:
                    torch.mm(a, b, out=out)
            best = min(best, time.perf_counter() - start)
    return best


def case(label: str, model: nn.Module, test, repeats: int, check: bool) -> dict:
    x, y = test.x, test.y
    d1 = random_direction(model, generator=torch.Generator().manual_seed(1))
    d2 = random_direction(model, generator=torch.Generator().manual_seed(2))
    span = np.linspace(-1, 1, STEPS).tolist()

    def ours() -> None:
        surface(model, (x, y), [d1, d2], xs=span, ys=span)

    peer_plane(model, x, y, steps=3)  # warm-up, both sides
    surface(model, (x, y), [d1, d2], xs=span[::10], ys=span[::10])
    peer_s, peer_faults = min(timed(lambda: peer_plane(model, x, y)) for _ in range(repeats))
    ours_s, ours_faults = min(timed(ours) for _ in range(repeats))
    shapes = gemm_shapes(model, x)
    floor = gemm_floor(shapes, STEPS * STEPS, repeats)
    flops = 2 * (3 * math.prod(shapes[0]) + STEPS * STEPS * sum(map(math.prod, shapes[1:])))
    row = {
        "model": label,
        "examples": len(y),
        "points": STEPS * STEPS,
        "loss_landscapes_s": peer_s,
        "loss_landscapes_page_faults": peer_faults,
        "ours_s": ours_s,
        "ours_page_faults": ours_faults,
        "speedup_vs_loss_landscapes": peer_s / ours_s,
        "gemm_floor_s": floor,
        "overhead_vs_gemm_floor": ours_s / floor,
        "ours_gflop_per_s": flops / ours_s / 1e9,
        "floor_gflop_per_s": flops / floor / 1e9,
    }
    if check:
        step = [{k: v / STEPS for k, v in d.items()} for d in (d1, d2)]  # the grid's steps
        row["max_rel_diff"] = worst = agreement(model, x, y, *step)
        row["matches_loss_landscapes"] = bool(worst < 1e-4)
    return row


def measure(quick: bool, check: bool) -> list[dict]:
    """The cases, in this process."""
    repeats = 1 if quick else 3
    mnist1d = get_dataset("mnist1d", split="train")
    test = get_dataset("mnist1d", split="test")
    rows = [case("conv1d / MNIST-1D", trained("conv1d", mnist1d, 300), test, repeats, check)]
    fashion = get_dataset("fashion-mnist", split="train")
    test = get_dataset("fashion-mnist", split="test")
    if quick:
        test = test.subset(2000)
    model = trained("lenet300-100", fashion, 300)
    rows.append(case("LeNet-300-100 / Fashion-MNIST", model, test, repeats, check))
    return rows


def in_process(args: argparse.Namespace, keep_memory: bool) -> list[dict]:
    """:func:`measure` in a fresh process, with glibc keeping freed memory or as it is."""
    env = {k: v for k, v in os.environ.items() if k not in KEEP_MEMORY}
    if keep_memory:
        env.update(KEEP_MEMORY)
    cmd = [sys.executable, __file__, "--rows"]
    if keep_memory:
        cmd.append("--check")  # the agreement check once, here
    if args.quick:
        cmd.append("--quick")
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"benchmark process failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, smaller test split")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--rows", action="store_true", help=argparse.SUPPRESS)  # a child
    parser.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rows:
        print(json.dumps(measure(args.quick, args.check)))
        return 0
    cases = []
    for as_run, kept in zip(in_process(args, False), in_process(args, True)):
        for name, row in (("as run", as_run), ("no page faults", kept)):
            print(
                f"{row['model']} ({row['examples']} examples, {STEPS}x{STEPS}), {name}: "
                f"loss_landscapes {row['loss_landscapes_s']:.2f} s "
                f"({row['loss_landscapes_page_faults']} page faults), ours {row['ours_s']:.2f} s "
                f"({row['ours_page_faults']}): {row['speedup_vs_loss_landscapes']:.1f}x; "
                f"GEMM floor {row['gemm_floor_s']:.2f} s"
            )
        print(f"  values agree to {kept['max_rel_diff']:.1e}")
        cases.append({"model": kept["model"], "as_run": as_run, "no_faults": kept})
    ratios = {
        "speedup_vs_loss_landscapes": min(
            c["no_faults"]["speedup_vs_loss_landscapes"] for c in cases
        ),
        "speedup_vs_loss_landscapes_as_run": min(
            c["as_run"]["speedup_vs_loss_landscapes"] for c in cases
        ),
        "overhead_vs_gemm_floor": max(c["no_faults"]["overhead_vs_gemm_floor"] for c in cases),
    }
    print(
        json.dumps(
            {
                "threads": torch.get_num_threads(),
                "matches_loss_landscapes": all(
                    c["no_faults"]["matches_loss_landscapes"] for c in cases
                ),
                "cases": cases,
                "ratios": ratios,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
