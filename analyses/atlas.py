"""An atlas of sparse subnetworks: every kind, at matched densities, on every measure.

The studies beside this one each measure one property of one kind of sparse network:
stability to SGD noise of IMP on real vs distilled data (``sparse_lmc.py``), diversity and
calibration of dynamic-sparse-training tickets (``freetickets.py``), corruption robustness
of DST vs dense training (``dst_corruption.py``). This study puts every kind side by side
on every measure, so one can ask whether the stable subnetworks are also the robust and the
calibrated ones.

Kinds, per network and replicate (the densities are the IMP levels ``sparse_lmc.py``
checks: demo 0.64 and 0.41, full 0.41 and 0.13, plus the dense network at 1):

    dense         the dense network
    imp-k0        IMP on real data, rewound to the initialisation
    imp-rewind    IMP on real data, rewound to the small step k of sparse_lmc.py
    distilled     the mask IMP finds on a distilled (DM) set, trained on real data
    hybrid        distilled pruning up to sparse_lmc.py's hybrid level, then real IMP
                  (only at densities below that level's)
    random        a random mask with imp-k0's layer densities
    set, rigl     dynamic sparse training at the level's density (ERK), member 0 of the
                  ensemble below
    edst          the last ticket of one EDST run (FreeTickets: explore 0.6 T, then M
                  refinement phases of 0.4 T)
    set-ens, rigl-ens, edst-ens
                  the ensembles (M = 3; their mean softmax), where a measure applies

Measures, for each kind and replicate (see :data:`MEASURES`):

    accuracy             clean test accuracy
    error_barrier,       the stability study's definition: the barrier on the straight line
    loss_barrier         between two children with noise seeds 1 and 2, each trained on to
                         the end from the kind's branch step (``branch_step``): its rewind
                         step for the IMP arms, the dense network and the random mask (as
                         in sparse_lmc.py), step k for SET, RigL and EDST, whose children
                         continue their prune and grow (their masks differ; the line lies
                         in the union)
    hessian_trace,       the exact Hessian diagonal's sum and the top eigenvalue of the
    top_eigenvalue       subnetwork's Hessian (unpruned weights only), on a fixed training
                         subset
    ece, nll             calibration (15 bins) and negative log-likelihood on the test split
    corruption_accuracy  mean accuracy over the 19 corruptions x 5 severities of the
                         corrupted test set dst_corruption.py makes (image data only; 28 px
                         table for Fashion-MNIST, 32 px for CIFAR)
    radius_accuracy      accuracy on test images low-pass filtered at one radius of the
                         centred spectrum (Wu et al.'s spectral view; image data only)
    training_flops       training FLOPs relative to one dense run; a subnetwork's own
                         training only (the mask search is not counted: sparse_lmc.py reports
                         the examples each search processed), the whole EDST run for its
                         ticket, all runs together for an ensemble

Runs are shared with the other studies through the spec hash: the IMP, distilled, hybrid
and random arms, their children and the distilled set are ``sparse_lmc.py``'s own runs at
the same scale, so whatever it trained is not trained again. Each row's measures are kept
in ``<runs>/atlas/`` under a key of the runs they came from, so a second invocation trains
and measures nothing and only draws.

    python analyses/atlas.py --scale demo --out figures/atlas   # the gallery: 2 replicates
    python analyses/atlas.py --scale full       # sparse_lmc.py's full networks, 3 replicates
    python analyses/atlas.py --config cifar10-resnet20 --device cuda --executor slurm

Writes ``atlas.csv`` (one row per kind x density x dataset x replicate, every measure),
``correlations.csv`` (Spearman's rho for every pair of measures, with a bootstrap interval
over replicates) and the figures ``heatmap``, ``scatter`` and ``correlations``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling studies

import dst_corruption  # noqa: E402
import sparse_lmc  # noqa: E402

from landscape.analysis import (  # noqa: E402
    corruption_rows,
    hessian_diagonal,
    hessian_eigenvalues,
    mean_corruption_accuracy,
    predict_probs,
    probability_metrics,
    radius_accuracy,
    rank_correlations,
    spectrum_radius,
    ticket_barrier,
)
from landscape.analysis.interpolate import has_batchnorm  # noqa: E402
from landscape.corruptions import CORRUPTIONS  # noqa: E402
from landscape.data import get_dataset  # noqa: E402
from landscape.devices import resolve_device  # noqa: E402
from landscape.errors import LandscapeError  # noqa: E402
from landscape.io import read_json, read_rows, write_json, write_rows  # noqa: E402
from landscape.plot import (  # noqa: E402
    correlation_heatmap,
    measure_heatmap,
    measure_scatter,
    save_figure,
)
from landscape.sparse import density  # noqa: E402
from landscape.specs import ModelSpec  # noqa: E402
from landscape.sweep import add_study_options, study_replicates, study_sweep  # noqa: E402
from landscape.train import EDST, dst_ensemble, edst_ensemble, make_dst, spawn  # noqa: E402
from landscape.train.ensemble import final_masks, training_flops  # noqa: E402
from landscape.train.imp import train_masked  # noqa: E402

log = logging.getLogger("atlas")

KINDS = (
    "dense",
    "imp-k0",
    "imp-rewind",
    "distilled",
    "hybrid",
    "random",
    "set",
    "rigl",
    "edst",
    "set-ens",
    "rigl-ens",
    "edst-ens",
)
ENSEMBLES = ("set-ens", "rigl-ens", "edst-ens")
MEASURES = (
    "accuracy",
    "error_barrier",
    "loss_barrier",
    "hessian_trace",
    "top_eigenvalue",
    "ece",
    "nll",
    "corruption_accuracy",
    "radius_accuracy",
    "training_flops",
)
#: Measures of one network, not of an ensemble's mean prediction.
SINGLE_ONLY = ("error_barrier", "loss_barrier", "hessian_trace", "top_eigenvalue")
#: Measures of images (the corruptions and the 2-D spectrum).
IMAGE_ONLY = ("corruption_accuracy", "radius_accuracy")
#: Which end of each measure is the good one (the heatmap's dark end).
HIGHER_IS_BETTER = {
    "accuracy": True,
    "error_barrier": False,
    "loss_barrier": False,
    "hessian_trace": False,
    "top_eigenvalue": False,
    "ece": False,
    "nll": False,
    "corruption_accuracy": True,
    "radius_accuracy": True,
    "training_flops": False,
}
#: The low-pass radius of ``radius_accuracy``, as a fraction of the half-diagonal of the
#: spectrum (where the low-pass filter becomes the identity).
RADIUS_FRACTION = 0.2
MEMBERS = 3  # M of every ensemble (FreeTickets)
BINS = 15  # ECE bins
VERSION = 2  # of the cached measures: bump when a measure's definition changes
EIGEN_TOL = 1e-3  # relative tolerance of the top eigenvalue (Lanczos)


@dataclass(frozen=True)
class Network:
    """One network of the atlas.

    Attributes:
        base: the ``sparse_lmc.py`` network whose arms, children and distilled set this
            study shares.
        hessian_examples: the training subset the Hessian measures are taken on.
        corruption_limit: corrupt and evaluate the first this many test images.
        update_every: steps between DST mask updates (default: T / 50, FreeTickets').
    """

    base: sparse_lmc.Network
    hessian_examples: int = 2048
    corruption_limit: int | None = 2000
    update_every: int | None = None

    @property
    def label(self) -> str:
        return self.base.label

    @property
    def dataset(self) -> str:
        return self.base.spec.data.name


def _cifar(model: ModelSpec, label: str) -> Network:
    """The GPU setting: ``sparse_lmc.py``'s CIFAR-10 protocol (IDC, IPC 10) with ``model``,
    measured on the whole test split and its corrupted version."""
    base = sparse_lmc.CONFIGS["cifar10-convnet3-ipc10"]()
    base = replace(base, label=label, spec=base.spec.replace(model=model))
    return Network(base, hessian_examples=4096, corruption_limit=None)


CONFIGS = {
    "cifar10-resnet20": lambda: _cifar(ModelSpec("resnet20"), "ResNet-20 / CIFAR-10"),
    "cifar10-vgg16": lambda: _cifar(ModelSpec("vgg16"), "VGG-16 / CIFAR-10"),
}


def networks(scale: str) -> list[Network]:
    """The atlas's networks at ``scale`` (``ci``, ``demo``, ``full``) or a GPU config."""
    if scale in CONFIGS:
        return [CONFIGS[scale]()]
    if scale == "ci":  # both datasets, so every measure runs; a few hundred steps each
        fashion = sparse_lmc._fashion(
            120, levels=2, checked=(0, 2), hybrid_from=1, iterations=10, batch_real=32
        )
        return [
            Network(sparse_lmc.networks("ci")[0], 256, corruption_limit=100, update_every=25),
            Network(fashion, 256, corruption_limit=100, update_every=25),
        ]
    return [Network(net) for net in sparse_lmc.networks(scale)]


class MeanSoftmax(nn.Module):
    """An ensemble as one classifier: the log of its members' mean softmax (so its
    softmax is the ensemble's prediction and its cross-entropy the ensemble's NLL)."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([m(x).softmax(dim=1) for m in self.members]).mean(dim=0)
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()


@dataclass
class Tools:
    """The data every measure of one network reads, made once."""

    data: tuple
    test: tuple
    bn: tuple
    hessian: tuple
    cell: object = None  # (corruption, severity) -> data, for image datasets
    raw_test: tuple | None = None
    radius: float = 0.0
    info: object = None


def tools_for(net: Network, runs: Path, device: torch.device) -> Tools:
    """Load the network's splits, subsets and (for images) its corrupted test set."""
    spec = net.base.spec
    train = get_dataset(spec.data.name, spec.data.root, split="train")
    test = get_dataset(spec.data.name, spec.data.root, split="test")
    out = Tools(
        data=(train, test),
        test=test.to(device),
        bn=train.subset(sparse_lmc.BN_EXAMPLES).to(device),
        hessian=train.subset(net.hessian_examples).to(device),
    )
    if len(test.info.in_shape) == 3:  # images: corruptions and the 2-D spectrum apply
        folder = dst_corruption.corrupted_folder(
            dst_corruption.Network(net.label, spec, (0.5,), test_limit=net.corruption_limit),
            runs,
        )
        limit = net.corruption_limit or len(test)
        raw = get_dataset(spec.data.name, spec.data.root, split="test", normalize=False)
        out.cell = dst_corruption.corrupted_cells(folder, test.info, device)
        out.raw_test = (raw.x[:limit].to(device), raw.y[:limit].to(device))
        out.radius = round(RADIUS_FRACTION * spectrum_radius(*raw.x.shape[-2:]), 2)
        out.info = test.info
    return out


@dataclass(frozen=True)
class Entry:
    """One kind at one density: its network (or ensemble), masks, the two SGD-noise
    children (single networks), the runs it came from and its training FLOPs."""

    kind: str
    level: int
    density: float
    model: nn.Module
    masks: dict | None
    children: tuple | None  # ((model, masks), (model, masks))
    runs: tuple
    flops: float
    branch: int | None = None  # the step the children branch from


def entries(net: Network, replicate: int, runs: Path, tools: Tools, device) -> list[Entry]:
    """Train (or reuse) every kind of one replicate at every checked level."""
    base = net.base
    spec = sparse_lmc.replicate_spec(base, replicate)
    kw = {"data": tools.data, "device": device, "progress": False}
    arms = sparse_lmc.arms_of(base, replicate, runs, tools.data, device)
    dense_run = next(a.run for a in arms if a.name == "dense")
    dense_flops = training_flops(dense_run)
    out = []
    for arm in arms:
        if arm.level not in base.checked or (arm.level == 0) != (arm.name == "dense"):
            continue
        children = tuple(
            train_masked(spec, arm.masks, arm.rewind, runs, noise_seed=s, **kw)
            for s in sparse_lmc.NOISE_SEEDS
        )
        kind = "imp-rewind" if arm.name == f"imp-k{base.rewind}" else arm.name
        out.append(
            Entry(
                kind,
                arm.level,
                1.0 if arm.masks is None else density(arm.masks),
                arm.run.load_model(device=device),
                arm.masks,
                tuple((c.load_model(device=device), arm.masks) for c in children),
                (arm.run, *children),
                training_flops(arm.run) / dense_flops,
                arm.rewind,
            )
        )
    for level in base.checked:
        imp_arm = next((a for a in arms if a.name == "imp-k0" and a.level == level), None)
        if imp_arm is not None:
            level_density = density(imp_arm.masks)
            out += _dst_entries(net, spec, level, level_density, runs, dense_flops, kw)
    return out


def _dst_entries(net, spec, level: int, level_density: float, runs: Path, dense_flops, kw):
    """SET, RigL and EDST at ``level_density``: single networks and their ensembles."""
    base, steps = net.base, spec.train.steps
    options = {
        "density": level_density,
        "distribution": "erk",
        "update_every": net.update_every or max(1, steps // 50),
        "drop_fraction": 0.5,
    }
    device = kw["device"]
    out = []
    for method in ("set", "rigl"):
        ens = dst_ensemble(spec, method, MEMBERS, runs, options=options, **kw)
        lead = ens.members[0]
        children = spawn(
            lead.run.spec,
            base.rewind,
            sparse_lmc.NOISE_SEEDS,
            runs,
            controllers_factory=lambda m=method: [make_dst(m, **options)],
            **kw,
        )
        out.append(_dst_entry(method, level, lead, children, dense_flops, device, base.rewind))
        out.append(_ensemble_entry(f"{method}-ens", level, ens, dense_flops, device))
    explore, phase = round(0.6 * steps), max(2, round(0.4 * steps))
    edst_options = {**options, "large_drop": 0.8}
    ens = edst_ensemble(
        spec, MEMBERS, runs, explore_steps=explore, phase_steps=phase, options=edst_options, **kw
    )
    children = spawn(
        ens.runs[0].spec,
        base.rewind,
        sparse_lmc.NOISE_SEEDS,
        runs,
        controllers_factory=lambda: [
            EDST(tickets=MEMBERS, explore_steps=explore, phase_steps=phase, **edst_options)
        ],
        **kw,
    )
    last = ens.members[-1]
    out.append(_dst_entry("edst", level, last, children, dense_flops, device, base.rewind))
    out.append(_ensemble_entry("edst-ens", level, ens, dense_flops, device))
    return out


def _dst_entry(kind, level, member, children, dense_flops, device, branch) -> Entry:
    """A DST network (its last checkpoint) and its two children, each with its own masks."""
    pairs = tuple(
        (c.load_model(device=device), final_masks(c, c.spec.train.steps)) for c in children
    )
    return Entry(
        kind,
        level,
        density(member.masks),
        member.load_model(device),
        member.masks,
        pairs,
        (member.run, *children),
        training_flops(member.run) / dense_flops,
        branch,
    )


def _ensemble_entry(kind, level, ens, dense_flops, device) -> Entry:
    """An ensemble: its mean softmax; density is the members' mean."""
    mean_density = sum(density(m.masks) for m in ens.members) / len(ens.members)
    return Entry(
        kind,
        level,
        mean_density,
        MeanSoftmax(ens.models(device)),
        None,
        None,
        ens.runs,
        ens.training_flops() / dense_flops,
    )


def measure(entry: Entry, net: Network, tools: Tools) -> dict[str, float]:
    """Every measure that applies to ``entry`` (see :data:`MEASURES`)."""
    model = entry.model.eval()
    probs, labels = predict_probs([model], tools.test)
    scores = probability_metrics(probs[0], labels, bins=BINS)
    out = {"accuracy": scores.accuracy, "ece": scores.ece, "nll": scores.nll}
    if entry.children is not None:
        (a, masks_a), (b, masks_b) = entry.children
        same = masks_a is None or masks_b is None
        line = ticket_barrier(
            a,
            b,
            tools.test,
            None if same else masks_a,
            None if same else masks_b,
            points=net.base.points,
            train_data=tools.bn if has_batchnorm(a) else None,
        )
        out.update(error_barrier=line["error_barrier"], loss_barrier=line["loss_barrier"])
        diag = hessian_diagonal(model, tools.hessian, masks=entry.masks)
        top = hessian_eigenvalues(model, tools.hessian, k=1, masks=entry.masks, tol=EIGEN_TOL)
        out.update(hessian_trace=float(diag.trace), top_eigenvalue=float(top[0]))
    if tools.cell is not None:
        rows = corruption_rows(model, tools.cell, CORRUPTIONS)
        out["corruption_accuracy"] = mean_corruption_accuracy(rows)
        low = radius_accuracy(model, tools.raw_test, [tools.radius], "low", normalize=tools.info)
        out["radius_accuracy"] = float(low[0]["accuracy"])
    out["training_flops"] = entry.flops
    return out


def cache_key(entry: Entry, net: Network) -> str:
    """What a row's measures depend on: its kind, the runs (their directories name their
    specs and controllers; a run is never retrained under its name), the measurement
    settings and :data:`VERSION`."""
    text = json.dumps(
        {
            "kind": entry.kind,
            "runs": [r.dir.name for r in entry.runs],
            "hessian_examples": net.hessian_examples,
            "corruption_limit": net.corruption_limit,
            "points": net.base.points,
            "bn_examples": sparse_lmc.BN_EXAMPLES,
            "radius_fraction": RADIUS_FRACTION,
            "bins": BINS,
            "eigen_tol": EIGEN_TOL,
            "version": VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def run_network(net: Network, replicates: list[int], runs: Path, device) -> list[dict]:
    """The atlas rows of one network: one per kind, density and replicate."""
    tools = tools_for(net, runs, device)
    cache = runs / "atlas"
    rows = []
    for replicate in replicates:
        start = time.perf_counter()
        for entry in entries(net, replicate, runs, tools, device):
            path = cache / f"{cache_key(entry, net)}.json"
            if path.is_file():
                values = read_json(path)
            else:
                values = measure(entry, net, tools)
                write_json(path, values)
            rows.append(
                {
                    "network": net.label,
                    "dataset": net.dataset,
                    "kind": entry.kind,
                    "level": entry.level,
                    "density": round(entry.density, 4),
                    "replicate": replicate,
                    "branch_step": math.nan if entry.branch is None else entry.branch,
                    **{m: values.get(m, math.nan) for m in MEASURES},
                }
            )
        log.info("%s replicate %d: %.0f s", net.label, replicate, time.perf_counter() - start)
    return rows


def applies(measure_name: str, row: dict) -> bool:
    """Whether ``measure_name`` is defined for ``row``'s kind and dataset."""
    if measure_name in SINGLE_ONLY and row["kind"] in ENSEMBLES:
        return False
    if measure_name in IMAGE_ONLY and row["dataset"] == "mnist1d":
        return False
    return True


def correlations_by_network(rows: list[dict], resamples: int = 2000) -> list[dict]:
    """Spearman's rho between every pair of measures within each network (measures of
    different datasets live on different scales, so networks are never pooled), with its
    bootstrap interval over replicates."""
    out = []
    for label in networks_in(rows):
        mine = [r for r in rows if r["network"] == label]
        measures = [m for m in MEASURES if any(applies(m, r) for r in mine)]
        found = rank_correlations(mine, measures, resamples=resamples)
        out += [{"network": label, **c} for c in found]
    return out


def networks_in(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["network"] for r in rows))


def _slug(label: str) -> str:
    """'conv1d / MNIST-1D' -> 'mnist-1d' (the dataset part of a network's label)."""
    return label.split("/")[-1].strip().lower().replace(" ", "-")


def summarize(rows: list[dict], correlations: list[dict]) -> list[str]:
    """Per network, each kind's mean measures at the sparsest density; then the rank
    correlations of the error barrier with the other measures: are the stable subnetworks
    the robust and the calibrated ones?"""
    import pandas as pd

    frame = pd.DataFrame(rows)
    lines = []
    for label, group in frame.groupby("network", sort=False):
        sparsest = group[group["level"] == group["level"].max()]
        lines.append(f"{label}, density {sparsest['density'].min():.2f}:")
        stats = sparsest.groupby("kind", sort=False)[list(MEASURES)].mean()
        for kind, r in stats.iterrows():
            cells = [f"{m} {_fmt(r[m])}" for m in MEASURES if not math.isnan(r[m])]
            lines.append(f"  {kind:<10} " + ", ".join(cells))
    for c in correlations:
        if c["measure_a"] == "error_barrier" and c["measure_b"] != "loss_barrier":
            low, high = float(c["low"]), float(c["high"])
            interval = "" if math.isnan(low) else f" [{low:+.2f}, {high:+.2f}]"
            lines.append(
                f"{c['network']}: error barrier vs {c['measure_b']}: Spearman "
                f"{float(c['rho']):+.2f}{interval} ({c['rows']} rows, {c['replicates']} "
                f"replicates)"
            )
    return lines


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _label(row: dict) -> str:
    return f"{row['kind']} ({float(row['density']):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["ci", "demo", "full"], default="demo")
    parser.add_argument(
        "--config", choices=sorted(CONFIGS), default=None, help="a GPU-scale setting"
    )
    parser.add_argument(
        "--replicates", type=int, default=None, help="init seeds per network (full 3, else 2)"
    )
    parser.add_argument("--runs", default="runs", help="runs root (shared with the studies)")
    parser.add_argument(
        "--out",
        default=None,
        help="folder for CSVs and figures (default: figures/atlas for --scale full, "
        "results/atlas-<scale> otherwise; the gallery is --scale demo --out figures/atlas)",
    )
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap draws")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    parser.add_argument("--plot-only", action="store_true", help="re-render from the CSVs")
    add_study_options(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
    log.setLevel(logging.INFO)
    scale = args.config or args.scale
    if args.replicates is None:
        args.replicates = 3 if scale == "full" else 2
    if args.replicates < 1:
        parser.error("--replicates must be at least 1")
    out = Path(args.out or ("figures/atlas" if scale == "full" else f"results/atlas-{scale}"))
    try:
        if not study_sweep(__file__, argv, args):  # with --executor: replicates first
            return 1
        return _run(args, scale, out)
    except LandscapeError as err:
        print(f"atlas: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, scale: str, out: Path) -> int:
    start = time.perf_counter()
    if args.plot_only:
        rows = read_rows(out / "atlas.csv")
    else:
        device = resolve_device(args.device)
        rows = []
        for net in networks(scale):
            rows += run_network(net, study_replicates(args), Path(args.runs), device)
        write_rows(out / "atlas.csv", rows)
    present = [m for m in MEASURES if any(applies(m, r) for r in rows)]
    correlations = correlations_by_network(rows, args.resamples)
    write_rows(out / "correlations.csv", correlations)
    order = list(dict.fromkeys(_label(r) for r in sorted(rows, key=_order)))
    labelled = [{**r, "label": _label(r)} for r in rows]
    figures = save_figure(
        measure_heatmap(
            labelled, present, order=order, panel="network", higher_is_better=HIGHER_IS_BETTER
        ),
        out / "heatmap",
    )
    ys = [m for m in ("corruption_accuracy", "ece", "hessian_trace") if m in present]
    single = [r for r in rows if r["kind"] not in ENSEMBLES]
    hues = [k for k in KINDS if k not in ENSEMBLES]
    figures += save_figure(
        measure_scatter(single, "error_barrier", ys, hue_order=hues), out / "scatter"
    )
    for label in dict.fromkeys(r["network"] for r in rows):
        mine = [c for c in correlations if c["network"] == label]
        shown = [m for m in present if any(applies(m, r) for r in rows if r["network"] == label)]
        stem = "correlations" + ("" if len(networks_in(rows)) == 1 else f"-{_slug(label)}")
        figures += save_figure(correlation_heatmap(mine, shown, title=label), out / stem)
    print("\n".join(summarize(rows, correlations)))
    print(f"tables:  {out / 'atlas.csv'}, {out / 'correlations.csv'}")
    print(f"figures: {', '.join(str(f) for f in figures)}")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


def _order(row: dict) -> tuple:
    return int(row["level"]), KINDS.index(row["kind"])


if __name__ == "__main__":
    raise SystemExit(main())
