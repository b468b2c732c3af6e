"""Loss-landscape geometry of trained networks: planes, random slices and the Hessian.

For each network this study trains a parent run and spawns two children from an early
checkpoint (same weights, other SGD noise: noise seeds 1 and 2; the parent itself trains on
with noise seed 0), and measures

    plane        the loss and error on the plane through the three final models (Garipov
                 et al. 2018), each model marked at its coordinates;
    slice        a random 2-D slice around the parent's final model, along two
                 filter-normalised Gaussian directions (Li et al. 2018);
    hessian      the exact diagonal of the Hessian of the mean training loss over the whole
                 training split (BackPACK) and the eigenvalue density (stochastic Lanczos
                 quadrature on a fixed subset of the training split), networks side by side;
    alignment    the line between the parent and an independently trained network (another
                 init and noise seed), before and after permutation alignment by weight
                 matching (Ainsworth et al. 2023, "Git Re-Basin").

    python analyses/geometry.py --scale demo
    python analyses/geometry.py --scale full      # the gallery, figures/geometry

Writes ``plane.csv`` and ``slice.csv`` (network, x, y, loss, error), ``marks.csv`` (each
model's plane coordinates), ``hessian.csv`` (per network and parameter: mean, quantiles,
fraction negative), ``hessian_histogram.csv``, ``spectrum.csv``, ``alignment.csv`` (the two
lines) and the figures ``plane-<net>`` (contour), ``plane3d-<net>``, ``slice-<net>``,
``hessian_diagonal``, ``hessian_spectrum`` and ``alignment`` (PDF and PNG).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from landscape.analysis import (
    diagonal_histogram,
    diagonal_rows,
    hessian_diagonal,
    hessian_spectrum,
    interpolate,
    plane_surface,
    random_direction,
    surface,
)
from landscape.analysis.interpolate import has_batchnorm
from landscape.data import get_dataset
from landscape.devices import resolve_device
from landscape.errors import LandscapeError
from landscape.io import read_rows, write_rows
from landscape.plot import (
    diagonal_histograms,
    eigenvalue_density,
    interpolation_curves,
    save_figure,
    surface_3d,
    surface_contour,
)
from landscape.specs import DataSpec, ModelSpec, RunSpec, Seeds, TrainSpec
from landscape.train import spawn, train

log = logging.getLogger("geometry")
NOISE_SEEDS = (1, 2)  # the children; the parent trains on with noise seed 0
BN_EXAMPLES = 4096  # training examples for BatchNorm resets and the eigenvalue density
BINS = 60


@dataclass(frozen=True)
class Network:
    """One network: its label, the parent's spec, the children's branch step, the grid's
    points per axis, and the test examples the surfaces are measured on (None: all)."""

    label: str
    short: str
    spec: RunSpec
    branch: int
    points: int
    test_limit: int | None = None


def _spec(data: str, model: str, steps: int, batch: int, lr: float, **kwargs) -> RunSpec:
    train_spec = TrainSpec(
        lr=lr,
        momentum=0.9,
        weight_decay=5e-4,
        warmup_steps=steps // 20,
        steps=steps,
        batch_size=batch,
        checkpoint_steps=(max(1, steps // 20),),
    )
    return RunSpec(data=DataSpec(data), model=ModelSpec(model, kwargs), train=train_spec)


def networks(scale: str) -> list[Network]:
    """The study's networks at ``scale`` (``ci``, ``demo`` or ``full``)."""
    if scale == "ci":
        spec = _spec("mnist1d", "mlp", 200, 100, 0.05, widths=[32])
        return [Network("MLP / MNIST-1D", "mlp", spec, 10, 5, test_limit=300)]
    steps = 1000 if scale == "demo" else 2000
    points = 11 if scale == "demo" else 21
    nets = [
        Network(
            "MLP / MNIST-1D", "mlp", _spec("mnist1d", "mlp", steps, 100, 0.05), steps // 20, points
        ),
        Network(
            "conv1d / MNIST-1D",
            "conv1d",
            _spec("mnist1d", "conv1d", steps, 100, 0.1),
            steps // 20,
            points,
        ),
    ]
    if scale == "full":
        spec = _spec("fashion-mnist", "lenet300-100", steps, 128, 0.05)
        nets.append(Network("LeNet-300-100 / Fashion-MNIST", "lenet", spec, steps // 20, points))
    return nets


def run_network(net: Network, runs: Path, device) -> dict[str, list[dict]]:
    """Train the runs of one network and measure its plane, slice and Hessian."""
    start = time.perf_counter()
    name = net.spec.data.name
    train_split = get_dataset(name, net.spec.data.root, split="train")
    test_split = get_dataset(name, net.spec.data.root, split="test")
    test = test_split.subset(net.test_limit) if net.test_limit else test_split
    kw = {"data": (train_split, test_split), "device": device, "progress": False}
    parent = train(net.spec, runs, **kw)
    children = spawn(net.spec, net.branch, NOISE_SEEDS, runs, **kw)
    models = [r.load_model(device=device) for r in (parent, *children)]
    bn = has_batchnorm(models[0])
    options = {"train_data": train_split.subset(BN_EXAMPLES).to(device) if bn else None}
    keys = {"network": net.label}
    plane = plane_surface(*models, test.to(device), points=net.points, **options)
    labels = {"a": "parent (noise 0)", "b": "noise 1", "c": "noise 2"}
    marks = [{**keys, "model": labels[k], "x": x, "y": y} for k, (x, y) in plane.marks.items()]
    gen = torch.Generator().manual_seed(0)
    directions = [random_direction(models[0], generator=gen) for _ in range(2)]
    slice_ = surface(models[0], test.to(device), directions, points=net.points, **options)
    other = train(net.spec.replace(seeds=Seeds(init_seed=1, noise_seed=1)), runs, **kw)
    line = interpolate(
        models[0], other.load_model(device=device), test.to(device), align=True, **options
    )
    diag = hessian_diagonal(models[0], train_split.to(device))
    spectrum = hessian_spectrum(models[0], train_split.subset(BN_EXAMPLES).to(device))
    log.info("%s: %.0f s", net.label, time.perf_counter() - start)
    return {
        "plane": plane.rows(**keys),
        "marks": marks,
        "slice": slice_.rows(**keys),
        "hessian": diagonal_rows(diag, **keys),
        "diagonals": [(net.label, diag)],
        "spectrum": [{**keys, **r} for r in spectrum],
        "alignment": line.rows(**keys),
    }


def histograms(diagonals: list) -> list[dict]:
    """Histogram rows of every network's diagonal on shared log-spaced edges."""
    magnitudes = torch.cat(
        [torch.cat([d.active(n) for n in d.diagonal]).abs().double().cpu() for _, d in diagonals]
    )
    nonzero = magnitudes[magnitudes > 0].numpy()
    lo, hi = float(np.quantile(nonzero, 0.001)), float(nonzero.max())
    edges = np.logspace(math.log10(lo), math.log10(hi * 1.000001), BINS + 1)
    rows = []
    for label, diag in diagonals:
        rows += diagonal_histogram(diag, edges, network=label)
    return rows


TABLES = ("plane", "marks", "slice", "hessian", "hessian_histogram", "spectrum", "alignment")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["ci", "demo", "full"], default="demo")
    parser.add_argument("--runs", default="runs", help="runs root (reused across calls)")
    parser.add_argument("--out", default=None, help="folder for CSVs and figures")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    parser.add_argument("--plot-only", action="store_true", help="redraw from the CSVs")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO if args.verbose else logging.WARNING)
    default = "figures/geometry" if args.scale == "full" else f"results/geometry-{args.scale}"
    out = Path(args.out or default)
    try:
        return _run(args, out)
    except LandscapeError as err:
        print(f"geometry: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, out: Path) -> int:
    start = time.perf_counter()
    nets = networks(args.scale)
    if args.plot_only:
        rows = {t: read_rows(out / f"{t}.csv") for t in TABLES}
    else:
        device = resolve_device(args.device)
        rows = {t: [] for t in TABLES}
        diagonals = []
        for net in nets:
            found = run_network(net, Path(args.runs), device)
            diagonals += found.pop("diagonals")
            for t, r in found.items():
                rows[t] += r
        rows["hessian_histogram"] = histograms(diagonals)
        for t in TABLES:
            write_rows(out / f"{t}.csv", rows[t])
    figures = []
    for net in nets:
        marks = {r["model"]: (r["x"], r["y"]) for r in rows["marks"] if r["network"] == net.label}
        plane = [r for r in rows["plane"] if r["network"] == net.label]
        figures += save_figure(
            surface_contour(plane, marks=marks, title=net.label), out / f"plane-{net.short}"
        )
        figures += save_figure(surface_3d(plane, marks=marks), out / f"plane3d-{net.short}")
        slice_ = [r for r in rows["slice"] if r["network"] == net.label]
        figures += save_figure(
            surface_contour(slice_, marks={"model": (0.0, 0.0)}, title=net.label),
            out / f"slice-{net.short}",
        )
    order = [n.label for n in nets]
    figures += save_figure(
        diagonal_histograms(rows["hessian_histogram"], panel_order=order),
        out / "hessian_diagonal",
    )
    figures += save_figure(
        eigenvalue_density(rows["spectrum"], hue_order=order), out / "hessian_spectrum"
    )
    aligned = [
        {**r, "line": "aligned" if r["aligned"] in (True, "True") else "unaligned"}
        for r in rows["alignment"]
    ]
    figures += save_figure(
        interpolation_curves(
            aligned, hue="line", hue_order=["unaligned", "aligned"], legend_outside=True
        ),
        out / "alignment",
    )
    print("\n".join(summarize(rows)))
    print(f"tables:  {', '.join(str(out / f'{t}.csv') for t in TABLES)}")
    print(f"figures: {', '.join(str(f) for f in figures)}")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


def summarize(rows: dict[str, list[dict]]) -> list[str]:
    """Per network: the plane's loss at each model and the highest loss on the triangle's
    edges' grid points, the slice's lowest loss, and the Hessian's trace and top eigenvalue
    of the density's support."""
    import pandas as pd

    lines = []
    plane = pd.DataFrame(rows["plane"])
    slice_ = pd.DataFrame(rows["slice"])
    spectrum = pd.DataFrame(rows["spectrum"])
    hessian = pd.DataFrame(rows["hessian"])
    line = pd.DataFrame(rows["alignment"])
    for label in dict.fromkeys(plane["network"]):
        p = plane[plane["network"] == label]
        s = slice_[slice_["network"] == label]
        centre = s.iloc[(s["x"].abs() + s["y"].abs()).argmin()]
        h = hessian[hessian["network"] == label]
        trace = float((h["mean"] * h["count"]).sum())
        top = float(spectrum[spectrum["network"] == label]["eigenvalue"].max())
        barrier = {}
        for flag, part in line[line["network"] == label].groupby("aligned"):
            errors = part.sort_values("alpha")["error"].to_numpy()
            barrier[str(flag)] = 100 * (errors.max() - (errors[0] + errors[-1]) / 2)
        lines.append(
            f"{label}: plane loss {p['loss'].min():.3f}-{p['loss'].max():.3f}; random slice "
            f"loss {centre['loss']:.3f} at the model, up to {s['loss'].max():.3f}; Hessian "
            f"trace {trace:.3g}, spectrum up to {top:.3g}; error barrier to an independent "
            f"network {barrier.get('False', float('nan')):.2f}% -> "
            f"{barrier.get('True', float('nan')):.2f}% after alignment"
        )
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
