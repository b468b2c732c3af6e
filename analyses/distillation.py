"""Dataset distillation against the random real subset of the same size, per method.

Every distillation paper reports its synthetic set beside a class-balanced random subset
of real examples of the same size: a fresh network trained on each, tested on the real
test split. This study does so for DM, DC, DSA, IDC and MTT (:mod:`landscape.train.distill`)
on MNIST-1D and Fashion-MNIST at IPC 10, with the published ConvNet-3 numbers beside ours
where the papers report the dataset (they are for 128-channel ConvNet-3 and thousands of
iterations; the demo uses smaller networks and budgets, so ours are lower).

    python analyses/distillation.py --scale demo     # 2 datasets x 5 methods, CPU minutes
    python analyses/distillation.py --scale ci       # MNIST-1D, a few iterations each

Writes ``distillation.csv`` (one row per dataset, method and training seed),
``summary.csv`` (mean and std per dataset and method, the anchors beside) and the figure
``accuracy_by_method`` (PDF and PNG).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from landscape.devices import resolve_device
from landscape.errors import LandscapeError
from landscape.io import read_rows, write_rows
from landscape.plot import new_figure, save_figure
from landscape.specs import DataSpec, ModelSpec, TrainSpec
from landscape.train.distill import (
    PUBLISHED,
    DistillSpec,
    distill,
    evaluate_distilled,
    summarize_distilled,
)

log = logging.getLogger("distillation")
METHODS = ("dm", "dc", "dsa", "idc", "mtt")


@dataclass(frozen=True)
class Setting:
    """One dataset: its matching / evaluation network, how to train on a set, and each
    method's knobs at this scale (the rest take the papers' defaults)."""

    data: str
    model: ModelSpec
    evaluate: TrainSpec
    knobs: dict[str, dict] = field(default_factory=dict)
    ipc: int = 10


def settings(scale: str) -> list[Setting]:
    """The study's datasets and budgets at ``scale``."""
    conv1d = ModelSpec("conv1d")
    mnist1d_eval = TrainSpec(lr=0.05, steps=300, batch_size=50, weight_decay=5e-4)
    if scale == "ci":
        few = {"iterations": 2}
        return [
            Setting(
                "mnist1d",
                conv1d,
                TrainSpec(lr=0.05, steps=60, batch_size=50),
                {
                    "dm": few,
                    "dc": {**few, "outer_loop": 2, "inner_loop": 2},
                    "dsa": {**few, "outer_loop": 2, "inner_loop": 2},
                    "idc": {**few, "outer_loop": 2, "inner_loop": 2},
                    "mtt": {
                        **few,
                        "num_experts": 1,
                        "expert_epochs": 1,
                        "max_start_epoch": 1,
                        "syn_steps": 5,
                        "expert_batch": 100,
                    },
                },
            )
        ]
    return [
        Setting(
            "mnist1d",
            conv1d,
            mnist1d_eval,
            {
                "dm": {"iterations": 500, "batch_real": 128},
                "dc": {"iterations": 20},
                "dsa": {"iterations": 20},
                "idc": {"iterations": 50, "outer_loop": 20},
                "mtt": {
                    "iterations": 200,
                    "num_experts": 5,
                    "expert_epochs": 2,
                    "max_start_epoch": 10,
                    "syn_steps": 20,
                    "expert_batch": 100,
                    "lr_images": 10.0,
                },
            },
        ),
        Setting(
            "fashion-mnist",
            ModelSpec("convnet", {"depth": 3, "width": 32, "norm": "instance"}),
            TrainSpec(lr=0.01, steps=300, batch_size=100, weight_decay=5e-4),
            {
                "dm": {"iterations": 50, "batch_real": 64},
                "dc": {"iterations": 10, "batch_real": 64},
                "dsa": {"iterations": 10, "batch_real": 64},
                "idc": {"iterations": 10, "outer_loop": 10},
                "mtt": {
                    "iterations": 100,
                    "num_experts": 2,
                    "expert_epochs": 1,
                    "max_start_epoch": 2,
                    "syn_steps": 10,
                    "expert_batch": 256,
                    "lr_images": 10.0,
                },
            },
        ),
    ]


def run_setting(s: Setting, methods, seeds, runs: Path, device) -> list[dict]:
    """Distil with every method and evaluate each set beside the random subset."""
    rows: list[dict] = []
    baseline_done = set()
    for method in methods:
        start = time.perf_counter()
        spec = DistillSpec(
            data=DataSpec(s.data),
            method=method,
            ipc=s.ipc,
            model=s.model,
            **s.knobs.get(method, {}),
        )
        made = distill(spec, runs / "distilled", runs=runs, device=device, progress=False)
        took = time.perf_counter() - start
        for row in evaluate_distilled(made, s.evaluate, seeds=seeds, root=runs, device=device):
            baseline = row["method"] == "random"
            key = (row["factor"], row["seed"])
            if baseline and key in baseline_done:
                continue
            baseline_done |= {key} if baseline else set()
            rows.append({"dataset": s.data, **row, "distill_s": "" if baseline else round(took, 2)})
        log.info("%s %s: distilled in %.0f s", s.data, method, took)
    return rows


def summary_rows(rows: list[dict]) -> list[dict]:
    """Mean and std per dataset and method, with the published anchor at this IPC."""
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset]
        for row in summarize_distilled(mine):
            anchor = PUBLISHED.get(dataset, {}).get(row["method"], {}).get(int(row["ipc"]))
            out.append({"dataset": dataset, **row, "published": "" if anchor is None else anchor})
    return out


def verdicts(summary: list[dict]) -> list[str]:
    """One line per dataset and method: accuracy against the random subset's."""
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in summary):
        mine = [r for r in summary if r["dataset"] == dataset]
        random = {r["factor"]: r for r in mine if r["method"] == "random"}
        for r in mine:
            if r["method"] == "random" or r["factor"] not in random:
                continue
            base = random[r["factor"]]["test_accuracy_mean"]  # the subset of the same size
            gap = 100 * (r["test_accuracy_mean"] - base)
            anchor = f"; published {r['published']}%" if r["published"] != "" else ""
            lines.append(
                f"{dataset} {r['method']}: {100 * r['test_accuracy_mean']:.1f} ± "
                f"{100 * r['test_accuracy_std']:.1f}% vs random {100 * base:.1f}% "
                f"({gap:+.1f} points, {'beats' if gap > 0 else 'does not beat'} random{anchor})"
            )
    return lines


def accuracy_by_method(summary: list[dict]):
    """Bars of mean real test accuracy per method, a panel per dataset; the random
    subset as a dashed line and the published anchors as crosses."""
    datasets = list(dict.fromkeys(r["dataset"] for r in summary))
    fig, axes = new_figure(len(datasets), width=3.3 * len(datasets), height=2.4)
    for ax, dataset in zip(axes, datasets):
        mine = [r for r in summary if r["dataset"] == dataset and r["method"] != "random"]
        base = [r for r in summary if r["dataset"] == dataset and r["method"] == "random"]
        names = [r["method"] for r in mine]
        means = [100 * r["test_accuracy_mean"] for r in mine]
        stds = [100 * r["test_accuracy_std"] for r in mine]
        ax.bar(names, means, yerr=stds, color="C0", alpha=0.8, capsize=2, label="ours")
        if base:
            ax.axhline(
                100 * base[0]["test_accuracy_mean"],
                color="0.3",
                ls="--",
                lw=0.8,
                label="random subset",
            )
        published = [(n, r["published"]) for n, r in zip(names, mine) if r["published"] != ""]
        if published:
            ax.scatter(
                *zip(*published), marker="x", color="C3", zorder=3, label="published (ConvNet-3)"
            )
        floor = min(means + [100 * b["test_accuracy_mean"] for b in base])
        ax.set_ylim(bottom=max(0.0, floor - 10.0))  # the gaps to the baseline, not to zero
        ax.set_title(f"{dataset}, IPC {mine[0]['ipc'] if mine else ''}")
        ax.set_ylabel("real test accuracy (%)")
    axes[-1].legend(fontsize="x-small", frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["ci", "demo"], default="demo")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    parser.add_argument("--datasets", default=None, help="comma-separated; default: all")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per set")
    parser.add_argument("--runs", default="runs", help="runs root (reused across calls)")
    parser.add_argument(
        "--out",
        default=None,
        help="default: figures/distillation for --scale demo (the gallery's scale), "
        "results/distillation-ci otherwise",
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--plot-only", action="store_true", help="re-render from the CSVs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
    log.setLevel(logging.INFO)
    default = (
        "figures/distillation" if args.scale == "demo" else f"results/distillation-{args.scale}"
    )
    out = Path(args.out or default)
    try:
        return _run(args, out)
    except LandscapeError as err:
        print(f"distillation: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, out: Path) -> int:
    start = time.perf_counter()
    if args.plot_only:
        rows = read_rows(out / "distillation.csv")
    else:
        methods = [m for m in args.methods.split(",") if m]
        unknown = sorted(set(methods) - set(METHODS))
        if unknown:
            raise LandscapeError(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
        device = resolve_device(args.device)
        rows = []
        chosen = settings(args.scale)
        if args.datasets:
            names = args.datasets.split(",")
            chosen = [s for s in chosen if s.data in names]
            if not chosen:
                raise LandscapeError(f"no setting for datasets {names} at --scale {args.scale}")
        for s in chosen:
            rows += run_setting(s, methods, tuple(range(args.seeds)), Path(args.runs), device)
        write_rows(out / "distillation.csv", rows)
    summary = summary_rows(rows)
    write_rows(out / "summary.csv", summary)
    figures = save_figure(accuracy_by_method(summary), out / "accuracy_by_method")
    print("\n".join(verdicts(summary)))
    print(f"tables:  {out / 'distillation.csv'}, {out / 'summary.csv'}")
    print(f"figures: {', '.join(str(f) for f in figures)}")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
