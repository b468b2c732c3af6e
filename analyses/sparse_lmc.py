"""Stability to SGD noise of sparse subnetworks found by IMP on real and on distilled data.

McDermott & Cummings 2023 ("Linear Mode Connectivity in Sparse Neural Networks", NeurIPS
UniReps workshop; extended as McDermott & Parhi 2025): masks found by iterative magnitude
pruning on a *distilled* training set, rewound to initialisation and trained on the real
data, give subnetworks more stable to SGD noise than the dense network or real-data IMP.

At every IMP level (density 0.8^L) this study trains these arms on the real data:

    dense       the dense network (density 1)
    imp-k0      IMP on real data, rewound to initialisation (the lottery ticket)
    imp-k<k>    IMP on real data, rewound to step k > 0
    distilled   the mask found by IMP on the distilled set, rewound to initialisation
    hybrid      real-data IMP (rewound to 0) starting from the distilled mask of one level
    random      a random mask with the imp-k0 mask's layer densities, from initialisation

and at the checked levels spawns two children per arm from its rewind point (noise seeds 1
and 2, same mask) and measures the error and loss barriers between them. It also counts the
training examples each mask search processed (steps x batch size over the levels before).

    python analyses/sparse_lmc.py --scale demo     # MNIST-1D and Fashion-MNIST
    python analyses/sparse_lmc.py --scale full     # the paper's 10 levels; the gallery
    python analyses/sparse_lmc.py --config cifar10-convnet3-ipc10 --device cuda   # GPU

Writes ``levels.csv`` (arm, level, density, accuracy, examples seen), ``barriers.csv`` (the
checked levels), ``interpolation.csv`` and the figures ``barrier_vs_density``,
``accuracy_vs_density``, ``interpolation`` and ``examples_vs_accuracy`` (PDF and PNG).

The authors explain the stability with the diagonal of the Hessian. At the checked levels the
study takes each arm's trained subnetwork (its own masks) and computes the exact diagonal of
the Hessian of the mean training loss over the whole training split (their code took one
mini-batch: ``--hessian-batches 1 --hessian-batch-size 128`` reproduces that), and for the
first replicate at the deepest checked level the Hessian's eigenvalue density (Lanczos on a
fixed subset of the training split). It writes ``hessian.csv`` (per arm and level: method,
trace, mean, median and fraction negative of the unpruned entries, and the top eigenvalue on
that subset),
``hessian_histogram.csv``, ``spectrum.csv`` and the figures ``hessian_diagonal`` (log-scale
histograms of ``|H_ii|``, the dense network and the arms of the deepest checked level side by
side) and ``hessian_spectrum``. For the same arms it draws the loss surface on the plane
through the arm's run and its two children (Garipov et al. 2018; the three share the mask, so
the plane lies in the subnetwork): ``surface.csv``, ``surface_marks.csv`` and ``surface``.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from landscape.analysis import (
    diagonal_histogram,
    hessian_diagonal,
    hessian_eigenvalues,
    hessian_spectrum,
    interpolate,
    plane_surface,
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
    metric_vs_density,
    save_figure,
    scatter_by,
    surface_panels,
)
from landscape.sparse import density, shuffle_masks
from landscape.specs import DataSpec, ModelSpec, RunSpec, Seeds, TrainSpec
from landscape.sweep import add_study_options, study_replicates, study_sweep
from landscape.train.distill import DistillSpec, distill
from landscape.train.imp import imp, train_masked

log = logging.getLogger("sparse_lmc")
NOISE_SEEDS = (1, 2)  # the two children of every arm; level runs train with noise_seed 0
BN_EXAMPLES = 4096
STABLE = 0.02  # Frankle et al. 2020's 2% error-barrier threshold
SPECTRUM_EXAMPLES = 4096  # the fixed training subset the eigenvalue density is taken on
HISTOGRAM_BINS = 60


@dataclass(frozen=True)
class Curvature:
    """How the geometry is measured: the Hessian on ``batches`` of ``batch_size`` training
    examples (``None``: the whole split), Lanczos steps for the eigenvalue density (0: none),
    and grid points per axis of the loss surface on each arm's plane (0: none)."""

    batch_size: int = 1024
    batches: int | None = None
    lanczos_steps: int = 48
    surface_points: int = 11  # the plane through each arm's three models (0: none)


@dataclass(frozen=True)
class Network:
    """One network of the study and every setting of its arms.

    Attributes:
        label: the name in tables and figure panels.
        spec: the dense run on the real data (init_seed is set per replicate).
        distill: how the distilled set is made (one set per network, shared by replicates).
        find_train: the training of each mask-search run on the distilled set.
        levels: prunings after the dense level (the paper: 9, so ten levels 0..9).
        checked: levels whose stability is measured (the paper: 0, 4, 9).
        hybrid_from: the distilled level the hybrid arm starts real-data IMP from (the
            paper: 4).
        rewind: the small k > 0 of the rewinding arm.
        points: interpolation points (the paper: 11).
    """

    label: str
    spec: RunSpec
    distill: DistillSpec
    find_train: TrainSpec
    levels: int
    checked: tuple[int, ...]
    hybrid_from: int
    rewind: int
    points: int = 11


def _embedded(
    label: str,
    data: str,
    model: str,
    train: TrainSpec,
    *,
    levels: int,
    checked,
    hybrid_from: int,
    iterations: int,
    batch_real: int,
) -> Network:
    """A CPU-sized network: DM (IPC 10) finds the distilled masks; each search run trains a
    quarter of the real run's steps on the distilled set."""
    return Network(
        label,
        RunSpec(data=DataSpec(data), model=ModelSpec(model), train=train),
        DistillSpec(
            data=DataSpec(data),
            method="dm",
            ipc=10,
            iterations=iterations,
            batch_real=batch_real,
            seed=0,
        ),
        TrainSpec(
            lr=0.05,
            weight_decay=train.weight_decay,
            steps=max(50, train.steps // 4),
            batch_size=100,
        ),
        levels,
        tuple(checked),
        hybrid_from,
        rewind=max(1, train.steps // 50),
    )


def _mnist1d(steps: int, batch_real: int = 128, **study) -> Network:
    train = TrainSpec(
        lr=0.1, weight_decay=5e-4, warmup_steps=steps // 20, steps=steps, batch_size=100
    )
    return _embedded(
        "conv1d / MNIST-1D", "mnist1d", "conv1d", train, batch_real=batch_real, **study
    )


def _fashion(steps: int, batch_real: int = 64, **study) -> Network:
    train = TrainSpec(lr=0.05, weight_decay=1e-4, steps=steps, batch_size=128)
    label, model = "LeNet-300-100 / Fashion-MNIST", "lenet300-100"
    return _embedded(label, "fashion-mnist", model, train, batch_real=batch_real, **study)


def _cifar(model: ModelSpec, ipc: int, label: str) -> Network:
    """The authors' GPU setting: ConvNet-3 / ResNet-18 on CIFAR-10 with IDC (factor 2)."""
    train = TrainSpec(
        lr=0.1, momentum=0.9, weight_decay=5e-4, warmup_steps=500, steps=30000, batch_size=128
    )
    data = DataSpec("cifar10", augment=("crop", "flip"))
    return Network(
        label,
        RunSpec(data=data, model=model, train=train),
        DistillSpec(data=DataSpec("cifar10"), method="idc", ipc=ipc, factor=2, seed=0),
        TrainSpec(lr=0.01, momentum=0.9, weight_decay=5e-4, steps=3000, batch_size=128),
        levels=9,  # levels 0..9: ten levels, densities 1 .. 0.13
        checked=(0, 4, 9),
        hybrid_from=4,
        rewind=500,
    )


CONFIGS = {
    "cifar10-convnet3-ipc10": lambda: _cifar(
        ModelSpec("convnet", {"depth": 3, "width": 128, "norm": "instance"}), 10, "ConvNet-3"
    ),
    "cifar10-convnet3-ipc50": lambda: _cifar(
        ModelSpec("convnet", {"depth": 3, "width": 128, "norm": "instance"}), 50, "ConvNet-3"
    ),
    "cifar10-resnet18-ipc10": lambda: _cifar(ModelSpec("tv:resnet18"), 10, "ResNet-18"),
    "cifar10-resnet18-ipc50": lambda: _cifar(ModelSpec("tv:resnet18"), 50, "ResNet-18"),
}


def networks(scale: str) -> list[Network]:
    """The study's networks at ``scale`` (``ci``, ``demo``, ``full``) or a GPU config."""
    if scale in CONFIGS:
        return [CONFIGS[scale]()]
    if scale == "ci":
        return [
            _mnist1d(150, levels=2, checked=(0, 2), hybrid_from=1, iterations=20, batch_real=64)
        ]
    if scale == "demo":  # DM settings that beat the random subset (benchmarks/distill_dm.py)
        return [
            _mnist1d(600, levels=4, checked=(0, 2, 4), hybrid_from=2, iterations=200),
            _fashion(500, levels=4, checked=(0, 2, 4), hybrid_from=2, iterations=50),
        ]
    return [  # the paper's protocol: 10 levels, stability at levels 0, 4 and 9
        _mnist1d(1000, levels=9, checked=(0, 4, 9), hybrid_from=4, iterations=500),
        _fashion(1000, levels=9, checked=(0, 4, 9), hybrid_from=4, iterations=200),
    ]


@dataclass
class Arm:
    """One arm at one level: its mask, trained run and rewind step."""

    name: str
    level: int
    masks: dict | None
    run: object
    rewind: int
    examples_seen: int
    distinct_examples: int
    distill_examples: int = 0


def _distill_choice(spec: DistillSpec, args: argparse.Namespace) -> DistillSpec:
    """The network's distillation, or the method and iterations asked for on the command
    line (a knob of the scale's method carries over only to the same method)."""
    method = args.distill_method or spec.method
    iterations = args.distill_iterations
    if method == spec.method:
        return spec if iterations is None else spec.replace(iterations=iterations)
    return DistillSpec(
        data=spec.data, method=method, ipc=spec.ipc, iterations=iterations, seed=spec.seed
    )


def replicate_spec(net: Network, replicate: int) -> RunSpec:
    """The dense run of one replicate; it keeps step k, so every arm shares it."""
    return replace(
        net.spec,
        seeds=Seeds(init_seed=replicate, noise_seed=0),
        train=replace(net.spec.train, checkpoint_steps=(net.rewind,)),
    )


def arms_of(net: Network, replicate: int, runs: Path, data, device) -> list[Arm]:
    """Train every arm's level runs for one replicate."""
    spec = replicate_spec(net, replicate)
    kw = {"root": runs, "data": data, "device": device, "progress": False}
    synthetic = distill(net.distill, runs / "distilled", device=device, progress=False)
    find_on = RunSpec(
        data=synthetic.data_spec, model=spec.model, train=net.find_train, seeds=spec.seeds
    )
    real = len(data[0])
    k = net.rewind
    out = []
    for name, rewind in (("imp-k0", 0), (f"imp-k{k}", k)):
        for lv in imp(spec, net.levels, rewind_step=rewind, **kw):
            if lv.level == 0 and rewind == 0:
                out.append(Arm("dense", 0, None, lv.run, 0, 0, real))
            elif lv.level:
                out.append(Arm(name, lv.level, lv.masks, lv.run, rewind, lv.examples_seen, real))
    found = imp(spec, net.levels, find_on=find_on, **kw)
    making = int(synthetic.record["real_examples_seen"])  # what distillation itself read
    for lv in found[1:]:
        seen = lv.examples_seen
        out.append(Arm("distilled", lv.level, lv.masks, lv.run, 0, seen, synthetic.size, making))
    h = net.hybrid_from
    for lv in imp(spec, net.levels - h, start_masks=found[h].masks, **kw)[1:]:
        seen = found[h].examples_seen + lv.examples_seen
        out.append(Arm("hybrid", h + lv.level, lv.masks, lv.run, 0, seen, real, making))
    for arm in [a for a in out if a.name == "imp-k0" and a.level in net.checked]:
        masks = shuffle_masks(arm.masks, torch.Generator().manual_seed(replicate))
        run = train_masked(spec, masks, 0, **kw)
        out.append(Arm("random", arm.level, masks, run, 0, 0, 0))
    return out


def run_network(
    net: Network,
    replicates: list[int],
    runs: Path,
    device: torch.device,
    curvature: Curvature = Curvature(),
) -> dict[str, list[dict]]:
    """Every arm of one network: rows of ``levels``, ``barriers``, ``interpolation``,
    ``hessian``, ``hessian_histogram`` and ``spectrum``."""
    train_split = get_dataset(net.spec.data.name, net.spec.data.root, split="train")
    test_split = get_dataset(net.spec.data.name, net.spec.data.root, split="test")
    data = (train_split, test_split)
    test_d = test_split.to(device)
    bn_d = train_split.subset(BN_EXAMPLES).to(device)
    train_d = train_split.to(device)
    spectrum_d = train_split.subset(SPECTRUM_EXAMPLES).to(device)
    level_rows, barrier_rows, curve_rows = [], [], []
    hessian_rows, spectrum_rows, diagonals, surface_rows, mark_rows = [], [], [], [], []
    for replicate in replicates:
        start = time.perf_counter()
        spec = replicate_spec(net, replicate)
        for arm in arms_of(net, replicate, runs, data, device):
            kept = 1.0 if arm.masks is None else density(arm.masks)
            final = arm.run.metrics()[-1]
            keys = {
                "network": net.label,
                "arm": arm.name,
                "level": arm.level,
                "replicate": replicate,
            }
            row = {
                **keys,
                "density": round(kept, 6),
                "test_error": final["test_error"],
                "test_accuracy": 1.0 - final["test_error"],
                "rewind_step": arm.rewind,
                "examples_seen": arm.examples_seen,
                "distinct_examples": arm.distinct_examples,
                "distill_examples": arm.distill_examples,
            }
            level_rows.append(row)
            if arm.level not in net.checked:
                continue
            a, b = (
                train_masked(
                    spec,
                    arm.masks,
                    arm.rewind,
                    runs,
                    noise_seed=s,
                    data=data,
                    device=device,
                    progress=False,
                )
                for s in NOISE_SEEDS
            )
            model_a, model_b = a.load_model(device=device), b.load_model(device=device)
            bn = has_batchnorm(model_a)
            res = interpolate(
                model_a, model_b, test_d, points=net.points, train_data=bn_d if bn else None
            )
            barrier_rows.append(
                {
                    **row,
                    "error_barrier": res.error_barrier,
                    "loss_barrier": res.loss_barrier,
                    "error_a": res.error[0],
                    "error_b": res.error[-1],
                }
            )
            curve_rows += res.rows(**keys, density=row["density"])
            model = arm.run.load_model(device=device)
            diag = hessian_diagonal(
                model,
                train_d,
                masks=arm.masks,
                batch_size=curvature.batch_size,
                batches=curvature.batches,
            )
            entries = torch.cat([diag.active(n) for n in diag.diagonal]).double()
            top = hessian_eigenvalues(model, spectrum_d, k=1, masks=arm.masks, tol=1e-4)
            hessian_rows.append(
                {
                    **keys,
                    "density": row["density"],
                    "method": diag.method,
                    "examples": diag.count,
                    "trace": diag.trace,
                    "mean": float(entries.mean()),
                    "median": float(entries.median()),
                    "fraction_negative": float((entries < 0).double().mean()),
                    "top_eigenvalue": float(top[0]),
                }
            )
            if replicate == 0 and (arm.level == max(net.checked) or arm.name == "dense"):
                diagonals.append((arm.name, diag))
                if curvature.lanczos_steps:
                    spectrum = hessian_spectrum(
                        model, spectrum_d, masks=arm.masks, lanczos_steps=curvature.lanczos_steps
                    )
                    spectrum_rows += [{**keys, **r} for r in spectrum]
                if curvature.surface_points:
                    # the plane through the arm's run and its two children: all share the
                    # mask, so the plane lies in the subnetwork
                    plane = plane_surface(
                        model,
                        model_a,
                        model_b,
                        test_d,
                        points=curvature.surface_points,
                        train_data=bn_d if bn else None,
                    )
                    surface_rows += plane.rows(**keys)
                    names = {
                        "a": "noise 0",
                        "b": f"noise {NOISE_SEEDS[0]}",
                        "c": f"noise {NOISE_SEEDS[1]}",
                    }
                    mark_rows += [
                        {**keys, "model": names[k], "x": x, "y": y}
                        for k, (x, y) in plane.marks.items()
                    ]
        log.info("%s replicate %d: %.0f s", net.label, replicate, time.perf_counter() - start)
    return {
        "levels": level_rows,
        "barriers": barrier_rows,
        "interpolation": curve_rows,
        "hessian": hessian_rows,
        "hessian_histogram": _histograms(net, diagonals),
        "spectrum": spectrum_rows,
        "surface": surface_rows,
        "surface_marks": mark_rows,
    }


def _histograms(net: Network, diagonals: list) -> list[dict]:
    """Histogram rows of the arms' diagonals on edges shared by the network's arms."""
    if not diagonals:
        return []
    magnitudes = torch.cat(
        [torch.cat([d.active(n) for n in d.diagonal]).abs().double().cpu() for _, d in diagonals]
    )
    nonzero = magnitudes[magnitudes > 0]
    if len(nonzero) == 0:
        return []
    lo, hi = float(np.quantile(nonzero.numpy(), 0.001)), float(nonzero.max())
    edges = torch.logspace(math.log10(lo), math.log10(hi * 1.000001), HISTOGRAM_BINS + 1)
    rows = []
    for name, diag in diagonals:
        rows += diagonal_histogram(diag, edges.tolist(), network=net.label, arm=name)
    return rows


def summarize(barrier_rows: list[dict], level_rows: list[dict]) -> list[str]:
    """Per network and checked level: mean error barrier and accuracy per arm, and whether
    the distilled-data subnetwork is the most stable sparse arm (the paper's claim)."""
    import pandas as pd

    frame = pd.DataFrame(barrier_rows)
    lines = []
    for (label, level), group in frame.groupby(["network", "level"], sort=False):
        stats = group.groupby("arm", sort=False).agg(
            barrier=("error_barrier", "mean"),
            sd=("error_barrier", "std"),
            accuracy=("test_accuracy", "mean"),
            density=("density", "mean"),
        )
        cells = [
            f"{arm} {100 * r.barrier:.2f}±{100 * (0 if r.sd != r.sd else r.sd):.2f}% "
            f"(acc {100 * r.accuracy:.1f}%)"
            for arm, r in stats.iterrows()
        ]
        density = stats["density"].min()
        lines.append(f"{label} level {level} (density {density:.3f}): " + "; ".join(cells))
        sparse = stats.drop(index=[a for a in ("dense",) if a in stats.index])
        if "distilled" in sparse.index and len(sparse) > 1:
            best = sparse["barrier"].idxmin()
            lines.append(
                f"  most stable sparse arm: {best}"
                + (" (as the paper claims)" if best == "distilled" else " (not distilled)")
            )
    levels = pd.DataFrame(level_rows)
    for label, group in levels.groupby("network", sort=False):
        lines += _search_cost(label, group)
    return lines


def _suffix(label: str, rows: list[dict]) -> str:
    """'' for a table of one network, else '-<dataset>' for ``label`` 'model / dataset'."""
    if len({r["network"] for r in rows}) == 1:
        return ""
    return "-" + label.split("/")[-1].strip().lower().replace(" ", "-")


def _curvature_lines(hessian_rows: list[dict]) -> list[str]:
    """Per network and checked level: each arm's mean Hessian diagonal and top eigenvalue."""
    if not hessian_rows:
        return []
    import pandas as pd

    frame = pd.DataFrame(hessian_rows)
    lines = []
    for (label, level), group in frame.groupby(["network", "level"], sort=False):
        stats = group.groupby("arm", sort=False)[["mean", "top_eigenvalue"]].mean()
        cells = [
            f"{arm} mean H_ii {r['mean']:.2e}, top eigenvalue {r['top_eigenvalue']:.3g}"
            for arm, r in stats.iterrows()
        ]
        lines.append(f"{label} level {level} Hessian: " + "; ".join(cells))
    return lines


def _search_cost(label: str, levels) -> list[str]:
    """The paper's "fewer training points" claim, measured: what each mask search read to
    reach its last level, counted as examples processed and as distinct examples."""
    last = levels[levels["arm"].isin(["imp-k0", "distilled"])]
    last = last[last["level"] == last["level"].max()]
    by_arm = last.groupby("arm").mean(numeric_only=True)
    if not {"imp-k0", "distilled"} <= set(by_arm.index) or not by_arm.loc["distilled"].get(
        "examples_seen"
    ):
        return []
    real, synthetic = by_arm.loc["imp-k0"], by_arm.loc["distilled"]
    line = (
        f"{label}: the mask search to level {int(last['level'].max())} processed "
        f"{real['examples_seen']:,.0f} real examples ({real['distinct_examples']:,.0f} "
        f"distinct) with IMP and {synthetic['examples_seen']:,.0f} "
        f"({synthetic['distinct_examples']:,.0f} distinct) on the distilled set: "
        f"{real['examples_seen'] / synthetic['examples_seen']:.0f}x fewer processed, "
        f"{real['distinct_examples'] / synthetic['distinct_examples']:.0f}x fewer distinct"
    )
    if synthetic.get("distill_examples"):
        line += f"; making the set read {synthetic['distill_examples']:,.0f} real examples"
    return [line]


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
        help="folder for CSVs and figures (default: figures/sparse_lmc for --scale full, "
        "results/sparse_lmc-<scale> otherwise)",
    )
    parser.add_argument(
        "--distill-method",
        choices=["dm", "dc", "dsa", "idc", "mtt"],
        default=None,
        help="how the distilled set is made (default: dm on the CPU scales, the cheap one; "
        "idc, as the authors, in the GPU configurations)",
    )
    parser.add_argument(
        "--distill-iterations",
        type=int,
        default=None,
        help="default: the scale's, else the paper's",
    )
    parser.add_argument(
        "--hessian-batches",
        type=int,
        default=None,
        help="take the Hessian on the first N training batches only (default: the whole "
        "split; the authors' code: 1)",
    )
    parser.add_argument("--hessian-batch-size", type=int, default=1024)
    parser.add_argument(
        "--lanczos-steps",
        type=int,
        default=None,
        help="for the eigenvalue density (default 48, ci 16; 0: none)",
    )
    parser.add_argument(
        "--surface-points",
        type=int,
        default=None,
        help="grid points per axis of each arm's plane at the deepest checked level "
        "(default 11, ci 5; 0: none)",
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--plot-only", action="store_true", help="re-render from the CSVs")
    add_study_options(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
    log.setLevel(logging.INFO)
    scale = args.config or args.scale
    out = Path(
        args.out or ("figures/sparse_lmc" if scale == "full" else f"results/sparse_lmc-{scale}")
    )
    try:
        if not study_sweep(__file__, argv, args):  # with --executor: replicates first
            return 1
        return _run(args, scale, out)
    except LandscapeError as err:
        print(f"sparse_lmc: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, scale: str, out: Path) -> int:
    device = resolve_device(args.device)
    start = time.perf_counter()
    tables = (
        "levels",
        "barriers",
        "interpolation",
        "hessian",
        "hessian_histogram",
        "spectrum",
        "surface",
        "surface_marks",
    )
    if args.plot_only:  # tables from before the Hessian part are simply not drawn
        rows = {
            t: read_rows(out / f"{t}.csv") if (out / f"{t}.csv").is_file() else [] for t in tables
        }
    else:
        if args.hessian_batches is not None and args.hessian_batches < 1:
            raise LandscapeError("--hessian-batches must be at least 1")
        small = scale == "ci"  # the CI scale checks the machinery on a coarse grid
        lanczos = (16 if small else 48) if args.lanczos_steps is None else args.lanczos_steps
        points = (5 if small else 11) if args.surface_points is None else args.surface_points
        if args.hessian_batch_size < 1 or lanczos < 0:
            raise LandscapeError("--hessian-batch-size must be >= 1, --lanczos-steps >= 0")
        if points != 0 and not 2 <= points <= 1000:
            raise LandscapeError("--surface-points must be 0 (none) or from 2 to 1000")
        curvature = Curvature(args.hessian_batch_size, args.hessian_batches, lanczos, points)
        rows = {t: [] for t in tables}
        for net in networks(scale):
            net = replace(net, distill=_distill_choice(net.distill, args))
            found = run_network(net, study_replicates(args), Path(args.runs), device, curvature)
            for t in tables:
                rows[t] += found[t]
        for t in tables:
            if rows[t]:
                write_rows(out / f"{t}.csv", rows[t])
    level_rows, barrier_rows, curve_rows = rows["levels"], rows["barriers"], rows["interpolation"]
    order = (
        ["dense", "imp-k0"]
        + sorted(
            {r["arm"] for r in level_rows} - {"dense", "imp-k0", "distilled", "hybrid", "random"}
        )
        + ["distilled", "hybrid", "random"]
    )
    figures = save_figure(
        metric_vs_density(barrier_rows, "error_barrier", hue_order=order),
        out / "barrier_vs_density",
    )
    figures += save_figure(
        metric_vs_density(level_rows, "test_accuracy", hue_order=order),
        out / "accuracy_vs_density",
    )
    deepest = max(int(r["level"]) for r in curve_rows)
    shown = [r for r in curve_rows if r["level"] in (0, deepest)]
    figures += save_figure(
        interpolation_curves(shown, hue="arm", hue_order=order, legend_outside=True),
        out / "interpolation",
    )
    searched = [r for r in level_rows if r["arm"] not in ("dense", "random")]
    figures += save_figure(
        scatter_by(searched, "examples_seen", "test_accuracy", hue_order=order),
        out / "examples_vs_accuracy",
    )
    if rows["hessian_histogram"]:
        for label in dict.fromkeys(r["network"] for r in rows["hessian_histogram"]):
            part = [r for r in rows["hessian_histogram"] if r["network"] == label]
            shown = [a for a in order if a in {r["arm"] for r in part}]  # k differs by network
            stem = "hessian_diagonal" + _suffix(label, rows["hessian_histogram"])
            figures += save_figure(
                diagonal_histograms(part, panel="arm", panel_order=shown), out / stem
            )
    if rows["spectrum"]:
        for label in dict.fromkeys(r["network"] for r in rows["spectrum"]):
            part = [r for r in rows["spectrum"] if r["network"] == label]
            shown = [a for a in order if a in {r["arm"] for r in part}]
            stem = "hessian_spectrum" + _suffix(label, rows["spectrum"])
            figures += save_figure(eigenvalue_density(part, hue="arm", hue_order=shown), out / stem)
    if rows["surface"]:
        for label in dict.fromkeys(r["network"] for r in rows["surface"]):
            part = [r for r in rows["surface"] if r["network"] == label]
            marks = {}
            for r in rows["surface_marks"]:
                if r["network"] == label:
                    marks.setdefault(r["arm"], {})[r["model"]] = (r["x"], r["y"])
            shown = [a for a in order if a in {r["arm"] for r in part}]
            stem = "surface" + _suffix(label, rows["surface"])
            figures += save_figure(
                surface_panels(part, "arm", marks=marks, panel_order=shown), out / stem
            )
    print("\n".join(summarize(barrier_rows, level_rows)))
    print("\n".join(_curvature_lines(rows["hessian"])))
    print(f"tables:  {out / 'levels.csv'}, {out / 'barriers.csv'}")
    print(f"figures: {', '.join(str(f) for f in figures)}")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
