"""Dynamic sparse training versus dense training under image corruptions.

Wu et al. 2024 ("Dynamic Sparse Training versus Dense Training: The Unexpected Winner in Image
Corruption Robustness", arXiv 2410.03030) find that at moderate sparsity (10-50%) networks
trained with dynamic sparse training are *more* robust to common corruptions than the same
networks trained dense, for the same epochs. For each network, sparsity and seed this study
trains

    dense                  the dense network
    set, rigl              SET (random regrowth) and RigL (gradient regrowth)
    mest_r, mest_g         MEST with random / gradient regrowth
    granet_r, granet_g     GraNet (gradual pruning from dense) with random / gradient regrowth

for the same number of steps, and measures clean test accuracy and the *robustness accuracy*
(mean accuracy over every corruption and severity of the corrupted test set, which
:mod:`landscape.corruptions` makes in the CIFAR-10-C format, 28 px table for Fashion-MNIST).
Sparsity is ``1 - density``; every sparse method uses ERK layer densities.

    python analyses/dst_corruption.py --scale demo
    python analyses/dst_corruption.py --config cifar10-c-resnet34 --device cuda   # GPU

Writes ``accuracy.csv`` (network, method, density, replicate, clean and robustness accuracy),
``corruptions.csv`` (accuracy per corruption and severity of every model), ``spectral.csv``
(accuracy on low- and high-pass filtered test images against the filter radius, Wu et al.'s
frequency-domain explanation) and the figures ``robustness_vs_sparsity``,
``difference_heatmap`` (each method minus dense per corruption, at the lowest sparsity),
``accuracy_vs_severity``, ``radius_accuracy`` and ``samples`` (every corruption at every
severity of one test image).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from landscape.analysis import evaluate, spectral_rows
from landscape.analysis.robustness import corruption_rows, mean_corruption_accuracy
from landscape.corruptions import CORRUPTIONS
from landscape.corruptions.writer import corrupt_split
from landscape.data import get_dataset, read_corrupted
from landscape.devices import resolve_device
from landscape.errors import LandscapeError
from landscape.io import read_rows, write_rows
from landscape.plot import metric_vs_density, radius_accuracy_curves, save_figure
from landscape.plot.robustness import (
    accuracy_vs_severity,
    difference_heatmap,
    sample_grid,
    with_reference_line,
)
from landscape.specs import DataSpec, ModelSpec, RunSpec, Seeds, TrainSpec
from landscape.sweep import add_study_options, study_replicates, study_sweep
from landscape.train import make_dst, train

log = logging.getLogger("dst_corruption")
#: Method name -> (DST method, its options); "dense" trains without a controller.
METHODS = {
    "dense": None,
    "set": ("set", {}),
    "rigl": ("rigl", {}),
    "mest_r": ("mest", {"growth": "random"}),
    "mest_g": ("mest", {"growth": "gradient"}),
    "granet_r": ("granet", {"growth": "random", "init_density": 1.0}),
    "granet_g": ("granet", {"growth": "gradient", "init_density": 1.0}),
}


@dataclass(frozen=True)
class Network:
    """One network of the study.

    Attributes:
        label: its name in tables and figures.
        spec: the run (replicate r sets both seeds to r).
        densities: the sparse methods' densities (sparsity 10-50%: 0.9 ... 0.5).
        methods: names from :data:`METHODS`.
        test_limit: corrupt and evaluate the first this many test images (None: all).
    """

    label: str
    spec: RunSpec
    densities: tuple[float, ...]
    methods: tuple[str, ...] = tuple(METHODS)
    test_limit: int | None = None


def _fashion(steps: int, densities, test_limit=None, model: ModelSpec | None = None) -> Network:
    model = model or ModelSpec("lenet300-100")
    train = TrainSpec(lr=0.05, momentum=0.9, weight_decay=5e-4, steps=steps, batch_size=128)
    name = {"lenet300-100": "LeNet-300-100", "convnet": "ConvNet-3"}.get(model.name, model.name)
    return Network(
        f"{name} / Fashion-MNIST",
        RunSpec(data=DataSpec("fashion-mnist"), model=model, train=train),
        tuple(densities),
        test_limit=test_limit,
    )


def _cifar(dataset: str, model: ModelSpec, label: str) -> Network:
    """The paper's setting: 200-epoch SGD runs on CIFAR with crop and flip (GPU)."""
    per_epoch = 50000 // 128 + 1
    train = TrainSpec(
        lr=0.1, momentum=0.9, weight_decay=5e-4, steps=200 * per_epoch, batch_size=128
    )
    data = DataSpec(dataset, augment=("crop", "flip"))
    return Network(label, RunSpec(data=data, model=model, train=train), (0.9, 0.8, 0.7, 0.6, 0.5))


CONFIGS = {
    "cifar10-c-resnet34": lambda: _cifar("cifar10", ModelSpec("tv:resnet34"), "ResNet-34"),
    "cifar10-c-vgg16": lambda: _cifar("cifar10", ModelSpec("vgg16"), "VGG-16"),
    "cifar100-c-resnet34": lambda: _cifar("cifar100", ModelSpec("tv:resnet34"), "ResNet-34"),
    "cifar100-c-vgg16": lambda: _cifar("cifar100", ModelSpec("vgg16"), "VGG-16"),
}


#: Embedded-scale networks for Fashion-MNIST (``--network``): the MLP, and a small CNN closer
#: to the paper's convolutional networks (ConvNet-3, 32 channels, batch norm).
EMBEDDED = {
    "lenet300-100": ModelSpec("lenet300-100"),
    "convnet": ModelSpec("convnet", (("norm", "batch"), ("width", 32))),
}


def networks(
    scale: str,
    network: str = "lenet300-100",
    densities: tuple[float, ...] | None = None,
    steps: int | None = None,
) -> list[Network]:
    """The study's networks at ``scale`` (``ci``, ``demo``, ``full``) or a GPU config.

    ``network`` picks the embedded-scale model (:data:`EMBEDDED`); ``densities`` and ``steps``
    replace the scale's own (a cheaper run of a slower network).
    """
    if scale in CONFIGS:
        return [CONFIGS[scale]()]
    if network not in EMBEDDED:
        raise LandscapeError(f"unknown network {network!r}; choose one of {', '.join(EMBEDDED)}")
    default_steps, default_densities, limit = {
        "ci": (300, (0.9, 0.5), 200),
        "demo": (3000, (0.9, 0.7, 0.5), 2000),
        "full": (4000, (0.9, 0.8, 0.7, 0.6, 0.5), 2000),
    }[scale]
    densities = tuple(densities or default_densities)
    if not densities or any(not 0.0 < d < 1.0 for d in densities):
        raise LandscapeError(
            f"densities must lie strictly between 0 and 1 (sparsity 1 - density), got {densities}"
        )
    steps = default_steps if steps is None else steps
    if steps < 1:
        raise LandscapeError(f"steps must be at least 1, got {steps}")
    return [_fashion(steps, densities, test_limit=limit, model=EMBEDDED[network])]


def run_spec(net: Network, replicate: int) -> RunSpec:
    return replace(net.spec, seeds=Seeds(init_seed=replicate, noise_seed=replicate))


def controllers(net: Network, method: str, density: float) -> list:
    """The method's controller at ``density`` (none for dense)."""
    if METHODS[method] is None:
        return []
    name, options = METHODS[method]
    steps = net.spec.train.steps
    return [make_dst(name, density=density, update_every=max(1, steps // 50), **options)]


def corrupted_folder(net: Network, runs: Path) -> Path:
    """The network's corrupted test set (made once, reused): CIFAR-10-C's files, or ours."""
    name = net.spec.data.name
    limit = net.test_limit
    folder = runs / "corrupted" / f"{name}-c" / (f"first{limit}" if limit else "all")
    if all((folder / f"{c}.npy").is_file() for c in CORRUPTIONS):
        return folder
    split = get_dataset(name, net.spec.data.root, split="test", normalize=False)
    corrupt_split(split, folder, CORRUPTIONS, seed=0, limit=limit, progress=False)
    return folder


def corrupted_cells(folder: Path, info, device):
    """``(corruption, severity) -> (x, y)`` normalised like the clean data, on ``device``."""
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)

    def cell(corruption: str, severity: int):
        images, labels = read_corrupted(folder, corruption, severity)
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
        x = ((x - mean) / std).reshape(len(x), *info.in_shape)
        return x.to(device), torch.from_numpy(labels).long().to(device)

    return cell


def run_network(net: Network, replicates: list[int], runs: Path, device) -> tuple[list, list]:
    """Train every method at every density and replicate; accuracy and per-cell rows."""
    data = (
        get_dataset(net.spec.data.name, net.spec.data.root, split="train"),
        get_dataset(net.spec.data.name, net.spec.data.root, split="test"),
    )
    limit = net.test_limit or len(data[1])  # the images the corrupted set was made from
    test = (data[1].x[:limit].to(device), data[1].y[:limit].to(device))
    raw = get_dataset(net.spec.data.name, net.spec.data.root, split="test", normalize=False)
    raw_test = (raw.x[:limit].to(device), raw.y[:limit].to(device))
    radii = _radii(raw.x.shape[-1])
    folder = corrupted_folder(net, runs)
    cell = corrupted_cells(folder, data[1].info, device)
    accuracy_rows, cell_rows, spectral = [], [], []
    for replicate in replicates:
        start = time.perf_counter()
        spec = run_spec(net, replicate)
        for method in net.methods:
            for density in [1.0] if method == "dense" else net.densities:
                run = train(
                    spec,
                    runs,
                    controllers=controllers(net, method, density),
                    data=data,
                    device=device,
                    progress=False,
                )
                model = run.load_model(device=device)
                keys = {
                    "network": net.label,
                    "method": method,
                    "density": density,
                    "sparsity": round(1.0 - density, 6),
                    "replicate": replicate,
                }
                rows = corruption_rows(model, cell, CORRUPTIONS)
                spectral += [
                    {**keys, **r}
                    for r in spectral_rows(model, raw_test, radii, normalize=data[1].info)
                ]
                cell_rows += [{**keys, **r} for r in rows]
                clean = 1.0 - evaluate(model, test).error
                robust = mean_corruption_accuracy(rows)
                accuracy_rows.append(
                    {**keys, "clean_accuracy": clean, "robustness_accuracy": robust}
                )
                log.info(
                    "%s %s %.2f: clean %.4f, robust %.4f", net.label, method, density, clean, robust
                )
        log.info("%s replicate %d: %.0f s", net.label, replicate, time.perf_counter() - start)
    return accuracy_rows, cell_rows, spectral


def _radii(size: int) -> tuple[float, ...]:
    """Filter radii from the mean alone (0) to the whole spectrum (the half-diagonal)."""
    top = size // 2 * 2**0.5
    return tuple(round(top * f, 2) for f in (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0))


def summarize(accuracy_rows: list[dict]) -> list[str]:
    """Per network and density: each method's robustness and clean accuracy against dense,
    and whether DST beats dense on robustness (the paper's claim)."""
    import pandas as pd

    frame = pd.DataFrame(accuracy_rows)
    lines = []
    for label, group in frame.groupby("network", sort=False):
        dense = group[group["method"] == "dense"]
        if dense.empty:
            continue
        d_robust, d_clean = dense["robustness_accuracy"].mean(), dense["clean_accuracy"].mean()
        lines.append(
            f"{label}: dense robustness {100 * d_robust:.2f}% (clean {100 * d_clean:.2f}%)"
        )
        sparse = group[group["method"] != "dense"]
        for density, part in sorted(sparse.groupby("density"), key=lambda g: -g[0]):
            stats = part.groupby("method", sort=False)[
                ["robustness_accuracy", "clean_accuracy"]
            ].mean()
            cells = [
                f"{m} {100 * (r.robustness_accuracy - d_robust):+.2f}" for m, r in stats.iterrows()
            ]
            wins = int((stats["robustness_accuracy"] > d_robust).sum())
            lines.append(
                f"  sparsity {1 - density:.0%}: robustness vs dense (points) "
                + ", ".join(cells)
                + f"; {wins} of {len(stats)} DST methods more robust than dense"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["ci", "demo", "full"], default="demo")
    parser.add_argument("--config", choices=sorted(CONFIGS), default=None, help="GPU setting")
    parser.add_argument(
        "--network", choices=sorted(EMBEDDED), default="lenet300-100", help="embedded model"
    )
    parser.add_argument(
        "--densities", type=float, nargs="+", default=None, help="replace the scale's densities"
    )
    parser.add_argument("--steps", type=int, default=None, help="replace the scale's steps")
    parser.add_argument("--replicates", type=int, default=None, help="seeds (full: 3, else 1)")
    parser.add_argument("--runs", default="runs", help="runs root (reused across calls)")
    parser.add_argument("--out", default=None, help="folder for CSVs and figures")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    parser.add_argument("--plot-only", action="store_true", help="redraw from the CSVs")
    parser.add_argument("-v", "--verbose", action="store_true")
    add_study_options(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO if args.verbose else logging.WARNING)
    scale = args.config or args.scale
    if args.replicates is None:
        args.replicates = 3 if scale == "full" else 1
    if args.replicates < 1:
        parser.error("--replicates must be at least 1")
    default_out = "figures/dst_corruption" if scale == "full" else f"results/dst_corruption-{scale}"
    if args.network != "lenet300-100" and scale not in CONFIGS:
        default_out += f"/{args.network}" if scale == "full" else f"-{args.network}"
    out = Path(args.out or default_out)
    try:
        if not study_sweep(__file__, argv, args):  # with --executor: replicates first
            return 1
        return _run(args, scale, out)
    except LandscapeError as err:
        print(f"dst_corruption: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, scale: str, out: Path) -> int:
    device = resolve_device(args.device)
    start = time.perf_counter()
    runs = Path(args.runs)
    if args.plot_only:
        accuracy_rows = read_rows(out / "accuracy.csv")
        cell_rows = read_rows(out / "corruptions.csv")
        spectral = read_rows(out / "spectral.csv")
    else:
        if scale in CONFIGS:
            raise LandscapeError(
                f"{scale} evaluates on the published corrupted sets: run it where CIFAR-10-C / "
                f"CIFAR-100-C are, with a GPU (the embedded scales corrupt their own test set)"
            )
        accuracy_rows, cell_rows, spectral = [], [], []
        for net in _networks(args, scale):
            a, c, f = run_network(net, study_replicates(args), runs, device)
            accuracy_rows += a
            cell_rows += c
            spectral += f
        write_rows(out / "accuracy.csv", accuracy_rows)
        write_rows(out / "corruptions.csv", cell_rows)
        write_rows(out / "spectral.csv", spectral)
    figures = _figures(accuracy_rows, cell_rows, out, _networks(args, scale), runs)
    lowest = max(r["density"] for r in accuracy_rows if r["method"] != "dense")
    shown = [r for r in spectral if r["method"] == "dense" or r["density"] == lowest]
    figures += save_figure(
        radius_accuracy_curves(shown, hue="method", hue_order=list(METHODS)),
        out / "radius_accuracy",
    )
    print("\n".join(summarize(accuracy_rows)))
    print(f"tables:  {out / 'accuracy.csv'}, {out / 'corruptions.csv'}, {out / 'spectral.csv'}")
    print(f"figures: {', '.join(str(f) for f in figures)}")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


def _by_severity(cell_rows: list[dict], density: float) -> list[dict]:
    """Accuracy averaged over corruptions, per network, method, replicate and severity (the
    dense network and every method at ``density``)."""
    import pandas as pd

    frame = pd.DataFrame(
        [r for r in cell_rows if r["method"] == "dense" or r["density"] == density]
    )
    keys = ["network", "method", "replicate", "severity"]
    return frame.groupby(keys, sort=False)["accuracy"].mean().reset_index().to_dict("records")


def _networks(args: argparse.Namespace, scale: str) -> list[Network]:
    return networks(scale, args.network, args.densities, args.steps)


def _figures(accuracy_rows, cell_rows, out: Path, nets: list[Network], runs: Path) -> list[Path]:
    order = list(METHODS)
    sparse = [r for r in accuracy_rows if r["method"] != "dense"]
    dense = {}
    for r in accuracy_rows:
        if r["method"] == "dense":
            dense.setdefault(r["network"], []).append(r["robustness_accuracy"])
    fig = metric_vs_density(sparse, "robustness_accuracy", hue="method", hue_order=order)
    with_reference_line(fig, {k: sum(v) / len(v) for k, v in dense.items()})
    figures = save_figure(fig, out / "robustness_vs_sparsity")
    lowest = max(r["density"] for r in sparse)
    base = {}
    for r in cell_rows:
        if r["method"] == "dense":
            base.setdefault((r["network"], r["corruption"]), []).append(r["accuracy"])
    diff = [
        {
            "corruption": r["corruption"],
            "method": r["method"],
            "difference": 100 * (r["accuracy"] - np.mean(base[(r["network"], r["corruption"])])),
        }
        for r in cell_rows
        if r["method"] != "dense"
        and r["density"] == lowest
        and (r["network"], r["corruption"]) in base
    ]
    figures += save_figure(
        difference_heatmap(
            diff, column_order=order[1:], title=f"accuracy - dense (points), density {lowest}"
        ),
        out / "difference_heatmap",
    )
    figures += save_figure(
        accuracy_vs_severity(_by_severity(cell_rows, lowest), hue_order=order),
        out / "accuracy_vs_severity",
    )
    net = nets[0]
    if net.spec.data.name == "fashion-mnist":  # the embedded scales: our own corrupted set
        grid_dir = corrupted_folder(net, runs)
        grid = np.stack(
            [
                np.stack([read_corrupted(grid_dir, c, s)[0][0] for s in range(1, 6)])
                for c in CORRUPTIONS
            ]
        )
        figures += save_figure(sample_grid(grid, CORRUPTIONS), out / "samples")
    return figures


if __name__ == "__main__":
    raise SystemExit(main())
