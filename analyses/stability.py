"""Stability to SGD noise: the instability analysis of Frankle et al. 2020.

For each network and each rewind step k (0 and a geometric ladder up to ~10% of training),
train a parent from ``init_seed``, spawn two children from its step-k checkpoint that differ
only in ``noise_seed`` (data order), train both to the end, and measure the test error and
loss barriers on the line between them. Replicates use different init seeds. A network is
*stable* at k when its mean error barrier is below 2% (the paper's threshold).

    python analyses/stability.py --scale demo     # MNIST-1D, under 3 minutes on 2 cores
    python analyses/stability.py --scale full     # + Fashion-MNIST networks, ~15 minutes
    python analyses/stability.py --config cifar10-resnet20 --device cuda   # the paper's, GPU
    python analyses/stability.py --config cifar10-resnet20 --executor slurm --gpus 1 \
        --partition gpu --max-parallel 3      # one Slurm job per replicate, then gathered

Writes ``barriers.csv`` (one row per network, k, replicate), ``interpolation.csv`` (one row
per alpha too) and the figures ``barrier_vs_rewind`` and ``interpolation`` (PDF and PNG).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from landscape.analysis import interpolate
from landscape.analysis.interpolate import has_batchnorm
from landscape.data import get_dataset
from landscape.devices import resolve_device
from landscape.errors import LandscapeError
from landscape.io import read_rows, write_rows
from landscape.plot import barrier_vs_rewind, interpolation_curves, save_figure
from landscape.specs import DataSpec, ModelSpec, RunSpec, Seeds, TrainSpec
from landscape.sweep import add_study_options, study_replicates, study_sweep
from landscape.train import spawn

log = logging.getLogger("stability")
STABLE = 0.02  # Frankle et al. 2020: "stable" when the error barrier is within 2%
NOISE_SEEDS = (1, 2)  # the two children; the parent trains with noise_seed 0
BN_EXAMPLES = 4096  # training examples for the BatchNorm reset at each alpha


@dataclass(frozen=True)
class Network:
    """One row of the study: a label, the parent's spec, and the rewind steps to test."""

    label: str
    spec: RunSpec
    ladder: tuple[int, ...]
    points: int = 21  # alphas on the line between the children


def _mnist1d_conv(steps: int, ladder: tuple[int, ...]) -> Network:
    return Network(
        "conv1d / MNIST-1D",
        RunSpec(
            data=DataSpec("mnist1d"),
            model=ModelSpec("conv1d"),
            train=TrainSpec(
                lr=0.1,
                momentum=0.9,
                weight_decay=5e-4,
                schedule="cosine",
                warmup_steps=steps // 20,
                steps=steps,
                batch_size=100,
            ),
        ),
        ladder,
    )


def _cifar10(model: ModelSpec, label: str) -> Network:
    """Frankle et al. 2020's CIFAR-10 setting (open_lth's defaults for ``cifar_resnet_20``
    and ``cifar_vgg_16``): SGD with momentum 0.9, learning rate 0.1 divided by 10 at epochs
    80 and 120 of 160, weight decay 1e-4, batch 128 (391 steps an epoch), random crops and
    flips; rewinding up to iteration 2000, 30 alphas on the line."""
    epoch = 391
    train = TrainSpec(
        lr=0.1,
        momentum=0.9,
        weight_decay=1e-4,
        schedule="step",
        milestones=(80 * epoch, 120 * epoch),
        gamma=0.1,
        steps=160 * epoch,
        batch_size=128,
    )
    data = DataSpec("cifar10", augment=("crop", "flip"))
    spec = RunSpec(data=data, model=model, train=train)
    return Network(label, spec, (0, 100, 500, 1000, 2000), points=30)


#: GPU-scale settings (``--config``): the paper's networks on CIFAR-10 from a local root.
CONFIGS = {
    "cifar10-resnet20": lambda: _cifar10(ModelSpec("resnet20"), "ResNet-20 / CIFAR-10"),
    "cifar10-vgg16": lambda: _cifar10(ModelSpec("vgg16"), "VGG-16 / CIFAR-10"),
}


def networks(scale: str) -> list[Network]:
    """The study's networks at ``scale`` (``ci``, ``demo`` or ``full``) or a GPU config."""
    if scale in CONFIGS:
        return [CONFIGS[scale]()]
    if scale == "ci":
        return [_mnist1d_conv(160, (0, 4, 16))]
    if scale == "demo":
        return [_mnist1d_conv(1000, (0, 10, 25, 50, 100))]
    fashion = DataSpec("fashion-mnist")
    return [
        _mnist1d_conv(2000, (0, 10, 25, 50, 100, 200)),
        Network(
            "LeNet-300-100 / Fashion-MNIST",
            RunSpec(
                data=fashion,
                model=ModelSpec("lenet300-100"),
                train=TrainSpec(
                    lr=0.05, weight_decay=1e-4, schedule="cosine", steps=1000, batch_size=128
                ),
            ),
            (0, 25, 50, 100),
        ),
        Network(
            "ConvNet-BN / Fashion-MNIST",
            RunSpec(
                data=fashion,
                model=ModelSpec("convnet", {"depth": 2, "width": 8, "norm": "batch"}),
                train=TrainSpec(
                    lr=0.05, schedule="cosine", warmup_steps=30, steps=600, batch_size=128
                ),
            ),
            (0, 15, 60),
        ),
    ]


def run_network(
    net: Network, replicates: list[int], runs: Path, device: torch.device
) -> tuple[list[dict], list[dict]]:
    """Train every parent and child of one network; return barrier rows and curve rows."""
    train_split = get_dataset(net.spec.data.name, net.spec.data.root, split="train")
    test_split = get_dataset(net.spec.data.name, net.spec.data.root, split="test")
    test_d = test_split.to(device)
    # BatchNorm statistics at each alpha are recomputed on a fixed random subset of the
    # training set: a few thousand examples pin them down, the whole set costs 10x more
    bn_d = train_split.subset(BN_EXAMPLES).to(device)
    barrier_rows, curve_rows = [], []
    for replicate in replicates:
        parent = replace(
            net.spec,
            seeds=Seeds(init_seed=replicate, noise_seed=0),
            train=replace(net.spec.train, checkpoint_steps=net.ladder),
        )
        for k in net.ladder:
            start = time.perf_counter()
            a, b = spawn(
                parent,
                k,
                NOISE_SEEDS,
                runs,
                data=(train_split, test_split),
                device=device,
                progress=False,
            )
            model_a, model_b = a.load_model(device=device), b.load_model(device=device)
            bn = has_batchnorm(model_a)
            res = interpolate(
                model_a, model_b, test_d, points=net.points, train_data=bn_d if bn else None
            )
            keys = {"network": net.label, "rewind_step": k, "replicate": replicate}
            barrier_rows.append(
                {
                    **keys,
                    "steps": net.spec.train.steps,
                    "error_barrier": res.error_barrier,
                    "loss_barrier": res.loss_barrier,
                    "error_barrier_linear": res.error_barrier_linear,
                    "loss_barrier_linear": res.loss_barrier_linear,
                    "error_a": res.error[0],
                    "error_b": res.error[-1],
                    "bn_reset": res.bn_reset,
                }
            )
            curve_rows += res.rows(**keys)
            log.info(
                "%s k=%d replicate %d: error barrier %.4f (%.1f s)",
                net.label,
                k,
                replicate,
                res.error_barrier,
                time.perf_counter() - start,
            )
    return barrier_rows, curve_rows


def summarize(barrier_rows: list[dict]) -> list[str]:
    """Lines saying the mean error barrier per k and where each network becomes stable."""
    import pandas as pd

    frame = pd.DataFrame(barrier_rows)
    lines = []
    for label, group in frame.groupby("network", sort=False):
        stats = group.groupby("rewind_step")["error_barrier"].agg(["mean", "std"])
        cells = [
            f"k={k}: {100 * m:.2f}±{100 * (0 if s != s else s):.2f}%"
            for k, (m, s) in stats.iterrows()
        ]
        stable = [k for k, m in stats["mean"].items() if m < STABLE]
        verdict = f"stable from k={stable[0]}" if stable else "not stable at any tested k"
        if stable and any(m >= STABLE for k, m in stats["mean"].items() if k > stable[0]):
            verdict += " (not at every later k)"
        lines.append(f"{label}: {verdict}; error barrier " + ", ".join(cells))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["ci", "demo", "full"], default="demo")
    parser.add_argument(
        "--config", choices=sorted(CONFIGS), default=None, help="a GPU-scale setting"
    )
    parser.add_argument("--replicates", type=int, default=3, help="init seeds per network")
    parser.add_argument("--runs", default="runs", help="runs root (reused across calls)")
    parser.add_argument(
        "--out",
        default=None,
        help="folder for CSVs and figures (default: figures/stability for "
        "--scale full, results/stability-<scale> otherwise)",
    )
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--plot-only",
        action="store_true",
        help="re-render the figures from the CSVs already in --out",
    )
    add_study_options(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
    log.setLevel(logging.INFO)
    args.scale = args.config or args.scale
    out = Path(
        args.out
        or ("figures/stability" if args.scale == "full" else f"results/stability-{args.scale}")
    )
    try:
        if not study_sweep(__file__, argv, args):  # with --executor: replicates first
            return 1
        return _run(args, out)
    except LandscapeError as err:  # a user error: one line, as the CLI prints it
        print(f"stability: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, out: Path) -> int:
    device = resolve_device(args.device)
    start = time.perf_counter()
    table = out / "barriers.csv"
    if args.plot_only:
        barrier_rows, curve_rows = read_rows(table), read_rows(out / "interpolation.csv")
    else:
        barrier_rows, curve_rows = [], []
        for net in networks(args.scale):
            b, c = run_network(net, study_replicates(args), Path(args.runs), device)
            barrier_rows += b
            curve_rows += c
        write_rows(table, barrier_rows)
        write_rows(out / "interpolation.csv", curve_rows)
    figures = save_figure(barrier_vs_rewind(barrier_rows), out / "barrier_vs_rewind")
    ladders = {n.label: n.ladder for n in networks(args.scale)}
    shown = [r for r in curve_rows if r["rewind_step"] in _chosen(ladders[r["network"]])]
    figures += save_figure(interpolation_curves(shown), out / "interpolation")

    print("\n".join(summarize(barrier_rows)))
    print(f"table:   {table}")
    print(f"figures: {', '.join(str(f) for f in figures)}")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


def _chosen(ladder: tuple[int, ...]) -> tuple[int, ...]:
    """The rewind steps whose curves are drawn: the first, a middle one and the last."""
    return tuple(dict.fromkeys((ladder[0], ladder[len(ladder) // 2], ladder[-1])))


if __name__ == "__main__":
    raise SystemExit(main())
