"""FreeTickets: ensembles of sparse subnetworks from dynamic sparse training vs dense ensembles.

Liu et al. 2022 ("Deep Ensembling with No Overhead for either Training or Testing: The
All-Round Blessings of Dynamic Sparsity", ICLR; arXiv 2106.14568) ensemble the subnetworks
that dynamic sparse training (DST) visits, and find the ensemble more accurate and better
calibrated than one dense network at a fraction of its training FLOPs. For each network and
replicate this study trains, at density 0.2 (ERK) with M = 3:

    dense        one dense network (member 0 of the dense ensemble)
    dense-ens    M independently trained dense networks
    set-ens      M independent SET runs (FreeTickets' "DST Ensemble" with random growth)
    rigl-ens     M independent RigL runs (the paper's DST Ensemble: gradient growth)
    edst-ens     one EDST run: exploration, then M refinement phases, each ending in a ticket

and measures each ensemble's accuracy, NLL, Brier score and ECE (mean of the members'
softmax), the members' pairwise disagreement and KL divergence, training FLOPs relative to
one dense run, and the error barrier on the straight line between two tickets. The summary
compares each sparse ensemble with one dense network, taken as the mean accuracy of all the
dense members (single dense networks vary by a point or more on the embedded data).

Scaling from the paper (WRN-28-10 on CIFAR: members of 250 epochs, EDST of 150 exploration
epochs and 3 x 100 refinement epochs, a mask update every 1000 of ~98k iterations): a dense
or DST member trains T steps, EDST explores 0.6 T and refines 0.4 T per ticket (the paper's
150/250 and 100/250), and the mask updates every T/50 steps. The learning rate is the
paper's: 0.1, divided by 10 at T/2 and 3T/4 for members, 0.01 then 0.001 in each EDST phase.

    python analyses/freetickets.py --scale demo     # MNIST-1D and Fashion-MNIST, 1 seed group
    python analyses/freetickets.py --scale full     # longer runs, 3 seed groups; the gallery
    python analyses/freetickets.py --config wrn28-10-cifar10 --device cuda   # GPU, the paper

Writes ``metrics.csv`` (one row per method, member or ensemble), ``pairs.csv``
(disagreement, KL, mask distances and ticket barriers for every pair of members),
``embedding.csv``, ``reliability.csv`` and the figures ``accuracy_vs_flops``,
``disagreement``, ``embedding``, ``reliability`` and ``ticket_barriers`` (PDF and PNG).
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

from landscape.analysis import (
    diversity,
    ensemble_metrics,
    pairwise_disagreement,
    predict_probs,
    prediction_embedding,
    reliability_rows,
    ticket_barrier,
)
from landscape.analysis.interpolate import has_batchnorm
from landscape.data import get_dataset
from landscape.devices import resolve_device
from landscape.errors import LandscapeError
from landscape.io import read_rows, write_rows
from landscape.plot import (
    accuracy_vs_flops,
    disagreement_heatmap,
    prediction_embedding_plot,
    reliability_diagram,
    save_figure,
    scatter_by,
)
from landscape.sparse import density, hamming_distance, jaccard_distance
from landscape.specs import DataSpec, ModelSpec, RunSpec, Seeds, TrainSpec
from landscape.sweep import add_study_options, study_replicates, study_sweep
from landscape.train import dense_ensemble, dst_ensemble, edst_ensemble

log = logging.getLogger("freetickets")
METHODS = ("dense", "dense-ens", "set-ens", "rigl-ens", "edst-ens")
TABLES = ("metrics", "pairs", "embedding", "reliability", "disagreement")
BN_EXAMPLES = 4096


@dataclass(frozen=True)
class Network:
    """One network of the study with every setting of its ensembles.

    Attributes:
        label: the name in tables and figure panels.
        spec: a member's run (T steps); replicate r shifts both seeds by 100 r.
        density: the density of every sparse member and ticket.
        distribution: how the density is spread over layers.
        members: M, the ensemble size.
        update_every: steps between mask updates.
        drop_fraction: DST's drop fraction (cosine decay for members, constant in EDST).
        explore_steps, phase_steps: EDST's exploration and refinement phases.
        large_drop: EDST's q between refinement phases.
    """

    label: str
    spec: RunSpec
    density: float = 0.2
    distribution: str = "erk"
    members: int = 3
    update_every: int = 1000
    drop_fraction: float = 0.5
    explore_steps: int = 0
    phase_steps: int = 0
    large_drop: float = 0.8


def _scaled(label: str, data: DataSpec, model: ModelSpec, steps: int, batch: int, **kw) -> Network:
    """The paper's schedule scaled to ``steps`` per member (see the module docstring)."""
    train = TrainSpec(
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="step",
        milestones=(steps // 2, 3 * steps // 4),
        steps=steps,
        batch_size=batch,
    )
    return Network(
        label,
        RunSpec(data=data, model=model, train=train),
        update_every=max(1, steps // 50),
        explore_steps=round(0.6 * steps),
        phase_steps=round(0.4 * steps),
        **kw,
    )


def _mnist1d(steps: int, **kw) -> Network:
    """A wide conv1d (100 channels, 66k parameters): at density 0.2 the default 25 channels keep
    too few weights to learn MNIST-1D, as WRN-28-10 is the wide network of the paper."""
    model = ModelSpec("conv1d", {"channels": 100})
    return _scaled("conv1d-100 / MNIST-1D", DataSpec("mnist1d"), model, steps, 100, **kw)


def _fashion(steps: int, **kw) -> Network:
    label, model = "LeNet-300-100 / Fashion-MNIST", ModelSpec("lenet300-100")
    return _scaled(label, DataSpec("fashion-mnist"), model, steps, 128, **kw)


def _wrn(dataset: str) -> Network:
    """The paper's setting: WRN-28-10, 250-epoch members, EDST 150 + 3 x 100 epochs."""
    per_epoch = 50000 // 128 + 1  # 391 iterations of batch 128
    net = _scaled(
        f"WRN-28-10 / {dataset.upper()}",
        DataSpec(dataset, augment=("crop", "flip")),
        ModelSpec("wrn28-10"),
        250 * per_epoch,
        128,
    )
    return replace(
        net, update_every=1000, explore_steps=150 * per_epoch, phase_steps=100 * per_epoch
    )


CONFIGS = {
    "wrn28-10-cifar10": lambda: _wrn("cifar10"),
    "wrn28-10-cifar100": lambda: _wrn("cifar100"),
}


def networks(scale: str) -> list[Network]:
    """The study's networks at ``scale`` (``ci``, ``demo``, ``full``) or a GPU config."""
    if scale in CONFIGS:
        return [CONFIGS[scale]()]
    if scale == "ci":
        return [_mnist1d(200)]
    if scale == "demo":
        return [_mnist1d(2000), _fashion(3000)]
    return [_mnist1d(4000), _fashion(8000)]


def replicate_spec(net: Network, replicate: int) -> RunSpec:
    """Member 0's run of one replicate (members i > 0 shift both seeds by i)."""
    return replace(net.spec, seeds=Seeds(init_seed=100 * replicate, noise_seed=100 * replicate))


def ensembles(net: Network, replicate: int, runs: Path, data, device) -> dict:
    """Train (or reuse) every ensemble of one replicate, by method."""
    spec = replicate_spec(net, replicate)
    kw = {"data": data, "device": device, "progress": False}
    dst = {
        "density": net.density,
        "distribution": net.distribution,
        "update_every": net.update_every,
        "drop_fraction": net.drop_fraction,
    }
    dense = dense_ensemble(spec, net.members, runs, **kw)
    out = {"dense": replace(dense, members=dense.members[:1], runs=dense.runs[:1])}
    out["dense-ens"] = dense
    out["set-ens"] = dst_ensemble(spec, "set", net.members, runs, options=dst, **kw)
    out["rigl-ens"] = dst_ensemble(spec, "rigl", net.members, runs, options=dst, **kw)
    out["edst-ens"] = edst_ensemble(
        spec,
        net.members,
        runs,
        explore_steps=net.explore_steps,
        phase_steps=net.phase_steps,
        options={**dst, "large_drop": net.large_drop},
        **kw,
    )
    return out


def run_network(net: Network, replicates: list[int], runs: Path, device: torch.device) -> dict:
    """Every ensemble of one network: metric, pair, embedding and reliability rows."""
    train_split = get_dataset(net.spec.data.name, net.spec.data.root, split="train")
    test_split = get_dataset(net.spec.data.name, net.spec.data.root, split="test")
    test_d = test_split.to(device)
    bn_d = train_split.subset(BN_EXAMPLES).to(device)
    tables: dict[str, list[dict]] = {n: [] for n in TABLES}
    for replicate in replicates:
        start = time.perf_counter()
        by_method = ensembles(net, replicate, runs, (train_split, test_split), device)
        keys = {"network": net.label, "replicate": replicate}
        all_probs, owners = [], []
        for method, ens in by_method.items():
            models = ens.models(device)
            probs, labels = predict_probs(models, test_d)
            flops = ens.relative_flops(net.spec.train.steps)
            for row in ensemble_metrics(probs, labels).rows():
                member = row["member"]
                tables["metrics"].append(
                    {
                        **keys,
                        "method": method,
                        **row,
                        "relative_flops": flops,
                        "members": len(models),
                        "density": _density(ens, member),
                    }
                )
            if method != "dense":
                all_probs.append(probs)
                owners += [(method, i) for i in range(len(models))]
                tables["pairs"] += _pairs(ens, models, probs, test_d, bn_d, keys, method)
                ensemble_probs = probs.mean(dim=0)
            else:
                ensemble_probs = probs[0]
            for row in reliability_rows(ensemble_probs, labels):
                tables["reliability"].append({**keys, "method": method, **row})
        stacked = torch.cat(all_probs)
        coords = prediction_embedding(stacked)
        cross = pairwise_disagreement(stacked)
        for (ma, ia), row in zip(owners, np.asarray(cross)):
            for (mb, ib), value in zip(owners, row):
                tables["disagreement"].append(
                    {
                        **keys,
                        "method_a": ma,
                        "member_a": ia,
                        "method_b": mb,
                        "member_b": ib,
                        "disagreement": float(value),
                    }
                )
        for (method, member), (x, y) in zip(owners, np.asarray(coords)):
            tables["embedding"].append(
                {**keys, "method": method, "member": member, "x": float(x), "y": float(y)}
            )
        log.info("%s replicate %d: %.0f s", net.label, replicate, time.perf_counter() - start)
    return tables


def _density(ens, member) -> float:
    masks = [m.masks for m in ens.members]
    if member == "ensemble" or masks[int(member)] is None:
        chosen = [m for m in masks if m is not None]
        if not chosen:
            return 1.0
        return round(float(np.mean([density(m) for m in chosen])), 6)
    return round(density(masks[int(member)]), 6)


def _pairs(ens, models, probs, test_d, bn_d, keys, method) -> list[dict]:
    """Disagreement, KL(a || b), mask distances and the ticket barrier for every pair a < b."""
    rows = diversity(probs).rows(**keys, method=method)
    for row in rows:
        i, j = row["member_a"], row["member_b"]
        a, b = ens.members[i], ens.members[j]
        bn = has_batchnorm(models[i])
        line = ticket_barrier(
            models[i],
            models[j],
            test_d,
            a.masks,
            b.masks,
            points=11,
            train_data=bn_d if bn else None,
        )
        row.update(error_barrier=line["error_barrier"], loss_barrier=line["loss_barrier"])
        if a.masks is not None:
            row.update(
                hamming=hamming_distance(a.masks, b.masks),
                jaccard=jaccard_distance(a.masks, b.masks),
                union_density=line["union_density"],
            )
    return rows


def summarize(metrics: list[dict], pairs: list[dict]) -> list[str]:
    """Per network: each method's ensemble accuracy, NLL, ECE, mean disagreement and FLOPs,
    and whether the sparse ensembles beat one dense network (the paper's claim)."""
    import pandas as pd

    frame = pd.DataFrame(metrics)
    frame = frame[frame["member"].astype(str) == "ensemble"]
    pair_frame = pd.DataFrame(pairs)
    lines = []
    for label, group in frame.groupby("network", sort=False):
        stats = group.groupby("method", sort=False).agg(
            accuracy=("accuracy", "mean"),
            nll=("nll", "mean"),
            ece=("ece", "mean"),
            flops=("relative_flops", "mean"),
        )
        mine = pair_frame[pair_frame["network"] == label] if len(pair_frame) else pair_frame
        spread = mine.groupby("method")["disagreement"].mean() if len(mine) else {}
        barrier = mine.groupby("method")["error_barrier"].mean() if len(mine) else {}
        lines.append(f"{label}:")
        for method, r in stats.iterrows():
            extra = ""
            if method in spread:
                extra = (
                    f", disagreement {100 * spread[method]:.1f}%, ticket error barrier "
                    f"{100 * barrier[method]:.1f}%"
                )
            lines.append(
                f"  {method:<10} accuracy {100 * r.accuracy:.2f}%  NLL {r.nll:.4f}  ECE "
                f"{r.ece:.4f}  training FLOPs {r.flops:.2f}x{extra}"
            )
        single = _single_dense(metrics, label)
        if single is not None:
            lines.append(
                f"  one dense network: {100 * single:.2f}% (mean of every dense member, "
                f"{len(_dense_members(metrics, label))} networks)"
            )
            for method in ("set-ens", "rigl-ens", "edst-ens"):
                if method in stats.index:
                    r = stats.loc[method]
                    verdict = "beats" if r.accuracy > single else "does not beat"
                    lines.append(
                        f"  {method} {verdict} one dense network ({100 * r.accuracy:.2f}% vs "
                        f"{100 * single:.2f}%) at {r.flops:.2f}x its training FLOPs"
                    )
    return lines


def _dense_members(metrics: list[dict], network: str) -> list[float]:
    """Accuracies of the single dense networks: the dense ensemble's members (or the dense
    method's network when there is no ensemble)."""
    for method in ("dense-ens", "dense"):
        found = [
            float(r["accuracy"])
            for r in metrics
            if r["network"] == network and r["method"] == method and str(r["member"]) != "ensemble"
        ]
        if found:
            return found
    return []


def _single_dense(metrics: list[dict], network: str) -> float | None:
    """The expected accuracy of one dense network: the mean over every dense member, a
    steadier reference than member 0 alone when members vary by a point or more."""
    found = _dense_members(metrics, network)
    return sum(found) / len(found) if found else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["ci", "demo", "full"], default="demo")
    parser.add_argument(
        "--config", choices=sorted(CONFIGS), default=None, help="a GPU-scale setting"
    )
    parser.add_argument(
        "--replicates", type=int, default=None, help="seed groups per network (full: 3, else 1)"
    )
    parser.add_argument("--runs", default="runs", help="runs root (reused across calls)")
    parser.add_argument(
        "--out",
        default=None,
        help="folder for CSVs and figures (default: figures/freetickets for --scale full, "
        "else results/freetickets-<scale>)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    parser.add_argument("--plot-only", action="store_true", help="redraw from the CSVs")
    parser.add_argument("-v", "--verbose", action="store_true")
    add_study_options(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO if args.verbose else logging.WARNING)  # not matplotlib's fonts
    scale = args.config or args.scale
    if args.replicates is None:
        args.replicates = 3 if scale == "full" else 1
    if args.replicates < 1:
        parser.error("--replicates must be at least 1")
    out = Path(
        args.out or ("figures/freetickets" if scale == "full" else f"results/freetickets-{scale}")
    )
    try:
        if not study_sweep(__file__, argv, args):  # with --executor: replicates first
            return 1
        return _run(args, scale, out)
    except LandscapeError as err:
        print(f"freetickets: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, scale: str, out: Path) -> int:
    device = resolve_device(args.device)
    start = time.perf_counter()
    names = TABLES
    if args.plot_only:
        tables = {n: read_rows(out / f"{n}.csv") for n in names}
    else:
        tables = {n: [] for n in names}
        for net in networks(scale):
            for name, rows in run_network(
                net, study_replicates(args), Path(args.runs), device
            ).items():
                tables[name] += rows
        for name in names:
            write_rows(out / f"{name}.csv", tables[name])
    figures = _figures(tables, out)
    print("\n".join(summarize(tables["metrics"], tables["pairs"])))
    print(f"tables:  {', '.join(str(out / f'{n}.csv') for n in names)}")
    print(f"figures: {', '.join(str(f) for f in figures)}")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


def _figures(tables: dict[str, list[dict]], out: Path) -> list[Path]:
    metrics = [r for r in tables["metrics"] if str(r["member"]) == "ensemble"]
    figures = save_figure(
        accuracy_vs_flops(
            [{**r, "flops": r["relative_flops"]} for r in metrics], hue_order=METHODS
        ),
        out / "accuracy_vs_flops",
    )
    first = tables["embedding"][0]["network"]
    figures += save_figure(
        prediction_embedding_plot(
            [r for r in tables["embedding"] if r["network"] == first and r["replicate"] == 0],
            hue_order=METHODS,
        ),
        out / "embedding",
    )
    figures += save_figure(
        reliability_diagram(
            [r for r in tables["reliability"] if r["network"] == first and r["replicate"] == 0],
            hue_order=METHODS,
        ),
        out / "reliability",
    )
    figures += save_figure(
        _disagreement_figure(tables["disagreement"], first), out / "disagreement"
    )
    figures += save_figure(
        scatter_by(
            [r for r in tables["pairs"] if "error_barrier" in r],
            "disagreement",
            "error_barrier",
            hue="method",
            logx=False,
            hue_order=METHODS,
        ),
        out / "ticket_barriers",
    )
    return figures


def _disagreement_figure(rows: list[dict], network: str):
    """Pairwise disagreement of every member of every ensemble of one network (replicate 0)."""
    rows = [r for r in rows if r["network"] == network and r["replicate"] == 0]
    members = list(dict.fromkeys((r["method_a"], int(r["member_a"])) for r in rows))
    index = {m: i for i, m in enumerate(members)}
    matrix = np.zeros((len(members), len(members)))
    for r in rows:
        a = index[(r["method_a"], int(r["member_a"]))]
        matrix[a, index[(r["method_b"], int(r["member_b"]))]] = r["disagreement"]
    labels = [f"{method} {i}" for method, i in members]
    return disagreement_heatmap(matrix, labels, title=f"disagreement: {network}")


if __name__ == "__main__":
    raise SystemExit(main())
