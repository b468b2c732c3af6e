"""Thin argparse shell: one subcommand per library entry point.

Arguments are parsed here and nowhere else; every subcommand calls a library function with
plain Python values. Every user error, from argument parsing or from the library, ends as one
``landscape <command>: error: ...`` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from landscape.errors import LandscapeError


def _value(text: str) -> Any:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"`` -> True, ``"[1,2]"`` -> [1, 2], else text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _key_values(items: Sequence[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise LandscapeError(f"--model-arg expects KEY=VALUE, got {item!r}")
        if key in ("num_classes", "in_shape"):
            raise LandscapeError(
                f"--model-arg {key} is not an option: it comes from the dataset (--data)"
            )
        out[key] = _value(text)
    return out


class _UsageError(Exception):
    """A command line argparse refused; ``prog`` names the (sub)command."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors reach :func:`main` instead of exiting with a usage text."""

    def error(self, message: str) -> Any:  # argparse's hook; it must not return
        raise _UsageError(self.prog, message)


def _ints(text: str) -> tuple[int, ...]:
    """``"0,50,100"`` (or spaces) -> ``(0, 50, 100)``; each a whole number >= 0."""
    try:
        values = tuple(int(t) for t in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected whole numbers separated by commas, such as 0,50,100; got {text!r}"
        ) from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"steps and seeds must be >= 0, got {text!r}")
    return values


def _names(text: str) -> list[str]:
    """``"a,b,c"`` -> ``["a", "b", "c"]``: at least two column names."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if len(names) < 2:
        raise argparse.ArgumentTypeError(
            f"expected at least two column names separated by commas, got {text!r}"
        )
    return names


def _whole(minimum: int, meaning: str = ""):
    """An argparse type: a whole number >= ``minimum``; ``meaning`` explains the bound."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(
                f"expected a whole number >= {minimum}{meaning}, got {text!r}"
            )
        return value

    return parse


def _add_model_data(p: argparse.ArgumentParser, model_help: str | None = None) -> None:
    p.add_argument(
        "--model",
        required=model_help is None,
        help=model_help or "model name (see `landscape list`), or path/to/file.py:ClassName",
    )
    p.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra model constructor argument, repeatable (e.g. width=2)",
    )
    p.add_argument("--data", required=True, help="dataset name (see `landscape list`)")
    p.add_argument("--data-root", default=None, help="folder holding the dataset files")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if any)")


def _add_line_args(p: argparse.ArgumentParser) -> None:
    """Where and how finely a line between two checkpoints is evaluated."""
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--points", type=_whole(2), default=21)
    p.add_argument(
        "--bn-reset",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="recompute BatchNorm statistics on the train split at each alpha "
        "(default: on for BatchNorm models)",
    )
    p.add_argument(
        "--bn-examples",
        type=_whole(0, " (0 for the whole split)"),
        default=4096,
        help="training examples (a fixed random subset) for the BatchNorm reset; "
        "0 for the whole split",
    )


def _add_run_args(p: argparse.ArgumentParser) -> None:
    """The options of a RunSpec: model, data, optimiser, schedule, length and seeds."""
    _add_model_data(p)
    p.add_argument("--augment", default="", help="comma-separated: crop,flip")
    p.add_argument("--steps", type=_whole(1), default=1000)
    p.add_argument("--batch-size", type=_whole(1), default=128)
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", default="cosine", choices=["constant", "cosine", "linear", "step"])
    p.add_argument("--milestones", type=_ints, default=())
    p.add_argument("--gamma", type=float, default=0.1, help="decay of --schedule step")
    p.add_argument("--warmup-steps", type=_whole(0), default=0)
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16"],
        help="bf16: bfloat16 autocast of the forward pass (part of the run's name)",
    )
    p.add_argument("--eval-every", type=_whole(0), default=0)
    p.add_argument(
        "--checkpoint-steps",
        type=_ints,
        default=(),
        help="steps to keep besides 0 and the last, e.g. 0,50,100",
    )
    p.add_argument("--init-seed", type=_whole(0), default=0)
    p.add_argument("--noise-seed", type=_whole(0), default=0)


def _add_dst_args(p: argparse.ArgumentParser) -> None:
    """The knobs shared by the dynamic sparse training methods."""
    p.add_argument("--density", type=float, default=0.2, help="fraction of weights kept")
    p.add_argument("--distribution", default="erk", choices=["uniform", "er", "erk"])
    p.add_argument("--update-every", type=_whole(1), default=1000, help="Delta T, in steps")
    p.add_argument("--drop-fraction", type=float, default=0.5, help="alpha at the first update")
    p.add_argument("--decay", default=None, choices=["cosine", "constant"], help="of alpha")
    p.add_argument(
        "--end-step", type=_whole(1), default=None, help="T_end (default 0.75 of the run)"
    )
    p.add_argument("--init-density", type=float, default=None, help="GraNet's starting density")
    p.add_argument("--prune-end", type=_whole(1), default=None, help="GraNet: density reached")
    p.add_argument("--gradient-weight", type=float, default=None, help="MEST's lambda")


def _dst_options(args: argparse.Namespace) -> dict[str, Any]:
    options = {
        "density": args.density,
        "distribution": args.distribution,
        "update_every": args.update_every,
        "drop_fraction": args.drop_fraction,
    }
    named = {
        "decay": args.decay,
        "end_step": args.end_step,
        "init_density": args.init_density,
        "prune_end": args.prune_end,
        "gradient_weight": args.gradient_weight,
    }
    owners = {"init_density": "granet", "prune_end": "granet", "gradient_weight": "mest"}
    for key, value in named.items():
        if value is None:
            continue
        if key in owners and args.method != owners[key]:
            flag = "--" + key.replace("_", "-")
            raise LandscapeError(f"{flag} applies to --method {owners[key]} only")
        options[key] = value
    return options


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="landscape",
        description="Loss landscapes and mode connectivity of sparse neural networks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a run (reused if it exists, resumed if cut short)")
    _add_run_args(t)
    t.add_argument("--runs", default=None, help="runs root (default $LANDSCAPE_RUNS or ./runs)")
    t.add_argument(
        "--resume-every",
        type=_whole(0, " (0: only at saved steps)"),
        default=1000,
        help="write a resume point every N steps (0: only at saved steps)",
    )
    t.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels-last layout for image models (default: on CUDA)",
    )
    t.add_argument("--compile", action="store_true", help="torch.compile the training step")
    t.add_argument(
        "--stop-at",
        type=_whole(0),
        default=None,
        help="stop after this step; running the same command again resumes",
    )

    pr = sub.add_parser(
        "prune", help="iterative magnitude pruning with rewinding, on real or distilled data"
    )
    _add_run_args(pr)
    pr.add_argument("--runs", default=None, help="runs root (default $LANDSCAPE_RUNS or ./runs)")
    pr.add_argument("--levels", type=_whole(0), default=10, help="prunings after the dense run")
    pr.add_argument("--rate", type=float, default=0.2, help="share of remaining weights per level")
    pr.add_argument(
        "--rewind-step", type=_whole(0), default=0, help="0: lottery ticket; k: rewind to step k"
    )
    pr.add_argument("--scope", default="global", choices=["global", "layer"])
    pr.add_argument("--spare-first", action="store_true", help="keep the first layer dense")
    pr.add_argument("--spare-output", action="store_true", help="keep the output layer dense")
    pr.add_argument(
        "--find-on",
        default=None,
        metavar="DATASET",
        help="find the masks by training on this dataset (e.g. distilled:<key> from "
        "`landscape distill`); the subnetworks still train on --data",
    )
    pr.add_argument("--find-data-root", default=None, help="folder of the --find-on data")
    pr.add_argument("--find-steps", type=_whole(1), default=None, help="default: --steps")
    pr.add_argument("--find-batch-size", type=_whole(1), default=None)
    pr.add_argument(
        "--start-masks",
        default=None,
        help="masks.pt to start from instead of the dense network (the hybrid: real-data "
        "IMP from a distilled-data mask)",
    )
    pr.add_argument("--json", default=None, help="also write one row per level here")

    ds = sub.add_parser("dst", help="dynamic sparse training: SET, RigL, MEST or GraNet")
    _add_run_args(ds)
    ds.add_argument("--runs", default=None, help="runs root (default $LANDSCAPE_RUNS or ./runs)")
    ds.add_argument("--method", default="rigl", choices=["set", "rigl", "mest", "granet"])
    _add_dst_args(ds)
    ds.add_argument("--json", default=None, help="also write the run's summary here")

    en = sub.add_parser(
        "ensemble", help="FreeTickets: dense, DST (SET/RigL/...) or EDST ensembles and metrics"
    )
    _add_run_args(en)
    en.add_argument("--runs", default=None, help="runs root (default $LANDSCAPE_RUNS or ./runs)")
    en.add_argument(
        "--method",
        default="edst",
        choices=["dense", "set", "rigl", "mest", "granet", "edst"],
        help="dense: M dense runs; set/rigl/mest/granet: M DST runs; edst: one EDST run",
    )
    en.add_argument("--members", type=_whole(1), default=3, help="M, the ensemble size")
    _add_dst_args(en)
    en.add_argument(
        "--explore-steps",
        type=_whole(1),
        default=None,
        help="EDST exploration (default 0.6 x --steps)",
    )
    en.add_argument(
        "--phase-steps",
        type=_whole(2),
        default=None,
        help="EDST refinement phase (default 0.4 x --steps)",
    )
    en.add_argument("--large-drop", type=float, default=0.8, help="EDST's q between phases")
    en.add_argument("--json", default=None, help="also write the metric rows here")

    co = sub.add_parser(
        "corrupt", help="write a corrupted test set in the CIFAR-10-C format (19 corruptions)"
    )
    co.add_argument("--data", required=True, help="an image dataset, e.g. fashion-mnist")
    co.add_argument("--data-root", default=None, help="folder of the dataset's files")
    co.add_argument("--out", required=True, help="folder for <corruption>.npy and labels.npy")
    co.add_argument("--corruptions", default="all", help="comma-separated names, or all (the 19)")
    co.add_argument("--seed", type=_whole(0), default=0, help="the random draws' seed")
    co.add_argument(
        "--table", default="auto", choices=["auto", "cifar", "tiny", "imagenet", "mnist"]
    )
    co.add_argument("--limit", type=_whole(1), default=None, help="only the first N test images")
    co.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")

    d = sub.add_parser("distill", help="learn a small synthetic training set (distilled:<key>)")
    _add_model_data(d, "the matching network (default: ConvNet-3 for images, conv1d for 1-D)")
    d.add_argument("--method", default="dm", choices=["random", "dm", "dc", "dsa", "idc", "mtt"])
    d.add_argument("--ipc", type=_whole(1), default=10, help="stored images per class")
    d.add_argument("--factor", type=_whole(1), default=None, help="multi-formation factor")
    d.add_argument("--iterations", type=_whole(1), default=None, help="default: the paper's")
    d.add_argument("--lr-images", type=float, default=None)
    d.add_argument("--batch-real", type=_whole(1), default=None, help="real examples per class")
    d.add_argument("--seed", type=_whole(0), default=0)
    d.add_argument(
        "--out", default=None, help="folder of synthetic sets (default: <runs root>/distilled)"
    )
    d.add_argument("--runs", default=None, help="runs root (MTT's experts, --evaluate runs)")
    d.add_argument(
        "--evaluate",
        action="store_true",
        help="train fresh networks on the set and on a random real subset of its size, "
        "and print their real test accuracy",
    )
    d.add_argument("--eval-steps", type=_whole(1), default=300)
    d.add_argument("--eval-lr", type=float, default=0.01)
    d.add_argument("--eval-batch-size", type=_whole(1), default=None, help="default: min(256, set)")
    d.add_argument("--eval-seeds", type=_ints, default=(0, 1, 2))

    s = sub.add_parser("spawn", help="children of a run's checkpoint with other noise seeds")
    s.add_argument("run", help="the parent run's directory")
    s.add_argument("--step", type=_whole(0), required=True, help="the parent's step to branch from")
    s.add_argument("--noise-seeds", type=_ints, required=True, help="e.g. 1,2")
    s.add_argument("--device", default=None)

    i = sub.add_parser("interpolate", help="loss/error on the line between two checkpoints")
    i.add_argument("ckpt_a", help="checkpoint file, or a run directory (its latest checkpoint)")
    i.add_argument("ckpt_b", help="the other endpoint, likewise")
    _add_model_data(
        i,
        "model name, or path/to/file.py:ClassName (or module:ClassName) for your own; "
        "default: the one recorded in this project's checkpoints",
    )
    _add_line_args(i)
    i.add_argument(
        "--align",
        action="store_true",
        help="permute B's hidden units onto A's by weight matching first (Git Re-Basin); "
        "the JSON then holds the line before alignment under 'unaligned'",
    )
    i.add_argument("--json", default=None, help="write the result here (default: stdout)")

    al = sub.add_parser(
        "align",
        help="permute checkpoint B onto A by weight matching; barriers before and after",
    )
    al.add_argument("ckpt_a", help="the reference checkpoint, or a run directory")
    al.add_argument("ckpt_b", help="the checkpoint to permute, likewise")
    _add_model_data(
        al,
        "model name, or path/to/file.py:ClassName; default: the one recorded in this "
        "project's checkpoints",
    )
    _add_line_args(al)
    al.add_argument("--seed", type=_whole(0), default=0, help="seed of the sweep order")
    al.add_argument("--max-iter", type=_whole(1), default=100, help="most sweeps")
    al.add_argument("--json", default=None, help="also write the barriers and permutations here")
    al.add_argument(
        "--save",
        default=None,
        help="write the aligned checkpoint of B here (weights only, no optimiser state)",
    )
    al.add_argument(
        "--save-masks",
        default=None,
        help="write B's run masks (IMP masks.pt, DST masks), permuted like its weights, here",
    )

    h = sub.add_parser(
        "hessian", help="Hessian diagonal, trace and top eigenvalues of a checkpoint's loss"
    )
    h.add_argument("checkpoint", help="checkpoint file, or a run directory (its latest one)")
    _add_model_data(
        h,
        "model name, or path/to/file.py:ClassName; default: the one the checkpoint records",
    )
    h.add_argument("--split", default="train", choices=["train", "test"])
    h.add_argument(
        "--examples", type=_whole(0), default=0, help="a fixed random subset (0: the whole split)"
    )
    h.add_argument("--method", default="auto", choices=["auto", "exact", "backpack", "hutchinson"])
    h.add_argument("--probes", type=_whole(1), default=None, help="Hutchinson probes")
    h.add_argument(
        "--masks",
        default="auto",
        help="'auto': the run's own masks (IMP masks.pt, DST masks), 'none': the dense "
        "network, or a masks.pt file",
    )
    h.add_argument("--batch-size", type=_whole(1), default=1024)
    h.add_argument(
        "--batches",
        type=_whole(1),
        default=None,
        help="only the first N batches (1 with --batch-size B: one mini-batch, as in "
        "McDermott & Cummings' code)",
    )
    h.add_argument("--eigenvalues", type=_whole(0), default=0, help="top-k eigenvalues (Lanczos)")
    h.add_argument("--spectrum", action="store_true", help="also the eigenvalue density")
    h.add_argument(
        "--out",
        default=None,
        help="write STEM.json (summary), STEM.csv (per layer) and "
        "STEM-spectrum.csv; default: print the JSON",
    )

    sf = sub.add_parser(
        "surface",
        help="loss surface: random filter-normalised directions around a checkpoint, or the "
        "plane through three",
    )
    sf.add_argument(
        "checkpoints",
        nargs="+",
        help="one checkpoint (or run directory): directions around it; three: their plane",
    )
    _add_model_data(
        sf,
        "model name, or path/to/file.py:ClassName; default: the one the checkpoint records",
    )
    sf.add_argument("--split", default="test", choices=["train", "test"])
    sf.add_argument("--examples", type=_whole(0), default=0, help="a fixed subset (0: all)")
    sf.add_argument("--points", type=_whole(2), default=21, help="grid points per axis")
    sf.add_argument("--dims", type=int, choices=[1, 2], default=2, help="a 1-D slice or 2-D")
    sf.add_argument("--span", type=float, default=1.0, help="random directions: [-span, span]")
    sf.add_argument("--margin", type=float, default=0.2, help="plane: room around the models")
    sf.add_argument("--seed", type=_whole(0), default=0, help="of the random directions")
    sf.add_argument("--normalization", default="filter", choices=["filter", "layer", "none"])
    sf.add_argument(
        "--keep-vectors",
        action="store_true",
        help="move biases and norm weights too (Li et al.'s default ignores them)",
    )
    sf.add_argument(
        "--masks",
        default="auto",
        help="random directions: 'auto' (the run's masks: the slice stays in the "
        "subnetwork), 'none', or a masks.pt file",
    )
    sf.add_argument(
        "--bn-reset",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="recompute BatchNorm statistics at every point (default: on for BN models)",
    )
    sf.add_argument("--bn-examples", type=_whole(0), default=4096)
    sf.add_argument(
        "--out", required=True, help="writes STEM.csv, STEM.json and the figure STEM.pdf/png"
    )

    pl = sub.add_parser("plot", help="render a figure from a CSV of result rows")
    pl.add_argument("kind", choices=["barrier", "interpolation"])
    pl.add_argument("rows", help="CSV of result rows written by a study, e.g. barriers.csv")
    pl.add_argument("--out", required=True, help="output stem; writes STEM.pdf and STEM.png")
    pl.add_argument("--metric", default="error", choices=["error", "loss"])

    rc = sub.add_parser(
        "correlate",
        help="Spearman's rho between measures of a CSV, bootstrapped over replicates",
    )
    rc.add_argument("rows", help="CSV of tidy rows, e.g. a study's atlas.csv")
    rc.add_argument(
        "--measures", type=_names, required=True, help="comma-separated columns to correlate"
    )
    rc.add_argument("--replicate", default="replicate", help="the column the bootstrap resamples")
    rc.add_argument(
        "--group", default=None, help="correlate within each value of this column (e.g. network)"
    )
    rc.add_argument("--resamples", type=_whole(1), default=2000)
    rc.add_argument("--level", type=float, default=0.95, help="confidence level")
    rc.add_argument("--out", default=None, help="write the pairs to this CSV")

    sw = sub.add_parser(
        "sweep", help="run a grid of commands (a JSON/TOML/Python file) here or on Slurm"
    )
    sw.add_argument("file", help="the sweep: .json, .toml or .py (see landscape.sweep)")
    sw.add_argument("--executor", default="local", choices=["local", "slurm"])
    sw.add_argument(
        "--max-parallel", type=_whole(1), default=1, help="jobs at once (a Slurm array's limit)"
    )
    sw.add_argument(
        "--state", default=None, help="folder of logs and done markers (default <runs>/sweeps)"
    )
    sw.add_argument("--dry-run", action="store_true", help="list the jobs and which are done")
    sw.add_argument("--partition", default=None, help="Slurm partition")
    sw.add_argument("--gpus", type=_whole(0), default=None, help="GPUs per Slurm job")
    sw.add_argument("--cpus", type=_whole(1), default=None, help="CPUs per Slurm job")
    sw.add_argument("--mem-gb", type=_whole(1), default=None, help="memory per Slurm job")
    sw.add_argument("--time", type=_whole(1), default=None, help="minutes per Slurm job")
    sw.add_argument("--account", default=None, help="Slurm account")
    sw.add_argument("--qos", default=None, help="Slurm quality of service")

    sub.add_parser("list", help="list the registered models and datasets")
    return parser


def _run_spec(args: argparse.Namespace):
    from landscape.specs import DataSpec, ModelSpec, RunSpec, Seeds, TrainSpec

    return RunSpec(
        data=DataSpec(
            name=args.data,
            augment=tuple(a for a in args.augment.split(",") if a),
            root=args.data_root,
        ),
        model=ModelSpec(name=_model_name(args.model), kwargs=_key_values(args.model_arg)),
        train=TrainSpec(
            optimizer=args.optimizer,
            lr=args.lr,
            momentum=args.momentum,
            nesterov=args.nesterov,
            weight_decay=args.weight_decay,
            schedule=args.schedule,
            milestones=args.milestones,
            gamma=args.gamma,
            warmup_steps=args.warmup_steps,
            steps=args.steps,
            batch_size=args.batch_size,
            eval_every=args.eval_every,
            checkpoint_steps=args.checkpoint_steps,
            precision=args.precision,
        ),
        seeds=Seeds(init_seed=args.init_seed, noise_seed=args.noise_seed),
    )


def _train(args: argparse.Namespace) -> int:
    from landscape.train import train

    spec = _run_spec(args)
    run = train(
        spec,
        args.runs,
        device=args.device,
        resume_every=args.resume_every,
        stop_at=args.stop_at,
        channels_last=args.channels_last,
        compile=args.compile,
    )
    print(run.dir)
    return 0


def _prune(args: argparse.Namespace) -> int:
    import dataclasses

    from landscape.io import write_json
    from landscape.sparse import load_masks
    from landscape.specs import DataSpec
    from landscape.train.imp import imp, summary_rows

    spec = _run_spec(args)
    find_on = None
    if args.find_on is not None:
        train = dataclasses.replace(
            spec.train,
            steps=args.find_steps or spec.train.steps,
            batch_size=args.find_batch_size or spec.train.batch_size,
            checkpoint_steps=(),
            warmup_steps=min(spec.train.warmup_steps, args.find_steps or spec.train.steps),
        )
        data = DataSpec(args.find_on, root=args.find_data_root)
        find_on = spec.replace(data=data, train=train)
    start = load_masks(args.start_masks) if args.start_masks else None
    levels = imp(
        spec,
        args.levels,
        args.rate,
        args.rewind_step,
        find_on,
        args.scope,
        start_masks=start,
        spare_first=args.spare_first,
        spare_output=args.spare_output,
        root=args.runs,
        device=args.device,
    )
    rows = summary_rows(levels)
    for row, level in zip(rows, levels):
        print(
            f"level {row['level']:>2}  density {row['density']:.4f}  test error "
            f"{row['test_error']:.4f}  examples seen {row['examples_seen']:>9,}  {level.run.dir}"
        )
    if args.json:
        write_json(args.json, rows)
    return 0


def _dst(args: argparse.Namespace) -> int:
    from landscape.analysis import evaluate
    from landscape.io import read_rows, write_json
    from landscape.train import make_dst, train, training_flops

    spec = _run_spec(args)
    run = train(
        spec,
        args.runs,
        controllers=[make_dst(args.method, **_dst_options(args))],
        device=args.device,
    )
    last = read_rows(run.dir / "dst.csv")[-1]
    result = evaluate(run, _test_split(spec))
    flops = training_flops(run)
    summary = {
        "method": args.method,
        "density": last["density"],
        "itop_rate": last["itop_rate"],
        "test_error": result.error,
        "test_loss": result.loss,
        "training_flops": flops,
        "relative_flops": flops / training_flops(run, dense=True),
        "run": str(run.dir),
    }
    print(
        f"{args.method}: density {summary['density']:.4f}  in-time over-parameterisation "
        f"{summary['itop_rate']:.4f}  test error {result.error:.4f}  training FLOPs "
        f"{summary['relative_flops']:.3f} x dense  {run.dir}"
    )
    if args.json:
        write_json(args.json, summary)
    return 0


def _ensemble(args: argparse.Namespace) -> int:
    from landscape.analysis import diversity_rows, ensemble_metrics, predict_probs
    from landscape.io import write_json
    from landscape.train import dense_ensemble, dst_ensemble, edst_ensemble

    spec = _run_spec(args)
    kw = {"device": args.device}
    if args.method == "dense":
        ensemble = dense_ensemble(spec, args.members, args.runs, **kw)
    elif args.method == "edst":
        explore = args.explore_steps or max(1, round(0.6 * spec.train.steps))
        phase = args.phase_steps or max(2, round(0.4 * spec.train.steps))
        options = _dst_options(args)
        options.update(large_drop=args.large_drop)
        ensemble = edst_ensemble(
            spec,
            args.members,
            args.runs,
            explore_steps=explore,
            phase_steps=phase,
            options=options,
            **kw,
        )
    else:
        ensemble = dst_ensemble(
            spec, args.method, args.members, args.runs, options=_dst_options(args), **kw
        )
    probs, labels = predict_probs(ensemble.models(), _test_split(spec))
    metrics = ensemble_metrics(probs, labels)
    rows = metrics.rows()
    flops = ensemble.relative_flops(spec.train.steps)
    for row in rows:
        print(
            f"{str(row['member']):>8}  accuracy {row['accuracy']:.4f}  NLL {row['nll']:.4f}  "
            f"ECE {row['ece']:.4f}"
        )
    pairs = diversity_rows(probs) if len(ensemble.members) > 1 else []
    if pairs:
        mean = sum(p["disagreement"] for p in pairs) / len(pairs)
        print(f"mean disagreement {mean:.4f}")
    print(f"training FLOPs {flops:.3f} x one dense run of {spec.train.steps} steps")
    if args.json:
        write_json(args.json, {"metrics": rows, "pairs": pairs, "relative_flops": flops})
    return 0


def _test_split(spec):
    from landscape.data import get_dataset

    return get_dataset(spec.data.name, spec.data.root, split="test")


def _corrupt(args: argparse.Namespace) -> int:
    from landscape.corruptions import CORRUPTIONS
    from landscape.corruptions.writer import corrupt_split
    from landscape.data import get_dataset
    from landscape.devices import resolve_device

    names = list(CORRUPTIONS) if args.corruptions == "all" else args.corruptions.split(",")
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown:
        raise LandscapeError(
            f"unknown corruption {', '.join(unknown)}; choose from {', '.join(CORRUPTIONS)} or all"
        )
    split = get_dataset(args.data, args.data_root, split="test", normalize=False)
    written = corrupt_split(
        split,
        args.out,
        names,
        seed=args.seed,
        table=args.table,
        limit=args.limit,
        device=resolve_device(args.device),
    )
    for path in written:
        print(path)
    return 0


def _distill(args: argparse.Namespace) -> int:
    from landscape.specs import DataSpec, ModelSpec, TrainSpec
    from landscape.train.distill import (
        DistillSpec,
        distill,
        evaluate_distilled,
        summarize_distilled,
    )

    model = None
    if args.model is not None:
        model = ModelSpec(name=_model_name(args.model), kwargs=_key_values(args.model_arg))
    spec = DistillSpec(
        data=DataSpec(args.data, root=args.data_root),
        method=args.method,
        ipc=args.ipc,
        factor=args.factor,
        model=model,
        iterations=args.iterations,
        lr_images=args.lr_images,
        batch_real=args.batch_real,
        seed=args.seed,
    )
    runs = args.runs
    out = args.out if args.out is not None else (None if runs is None else Path(runs) / "distilled")
    found = distill(spec, out, runs=runs, device=args.device)
    print(f"{found.data_spec.name}  ({found.size} training examples)  {found.folder}")
    if args.evaluate:
        batch = args.eval_batch_size or min(256, found.size)
        train = TrainSpec(lr=args.eval_lr, steps=args.eval_steps, batch_size=batch)
        rows = evaluate_distilled(
            found, train, seeds=args.eval_seeds, root=runs, device=args.device
        )
        for row in summarize_distilled(rows):
            print(
                f"{row['method']:>8}  IPC {row['ipc']}  real test accuracy "
                f"{100 * row['test_accuracy_mean']:.1f} ± {100 * row['test_accuracy_std']:.1f}% "
                f"({row['runs']} runs)"
            )
    return 0


def _model_name(name: str) -> str:
    """A user file's model is recorded by its absolute path: ``net.py:Net`` in two projects
    names two models, and the run can be analysed from any directory."""
    target, sep, attr = name.rpartition(":")
    if sep and target.endswith(".py") and Path(target).expanduser().is_file():
        return f"{Path(target).expanduser().resolve()}:{attr}"
    return name


def _spawn(args: argparse.Namespace) -> int:
    from landscape.io import read_json
    from landscape.specs import RunSpec
    from landscape.train import spawn

    run_dir = Path(args.run)
    if not run_dir.is_dir() or not (run_dir / "spec.json").is_file():
        what = "does not exist" if not run_dir.exists() else "is not a run directory"
        raise LandscapeError(
            f"{run_dir} {what}; pass the directory `landscape train` printed (it holds "
            f"spec.json and checkpoints/)"
        )
    record = read_json(run_dir / "spec.json")
    if not isinstance(record, dict) or "spec" not in record:
        raise LandscapeError(f"{run_dir / 'spec.json'} does not describe a run")
    if record.get("controllers"):
        raise LandscapeError(
            f"{run_dir} was trained under controllers {record['controllers']}; spawn it from "
            f"Python with landscape.train.spawn(..., controllers_factory=...)"
        )
    parent = RunSpec.from_dict(record["spec"])
    if run_dir.name != parent.run_hash():
        raise LandscapeError(
            f"{run_dir} holds run {parent.run_hash()} under another name (renamed or copied), "
            f"and runs are found by that name; rename the folder to {parent.run_hash()} "
            f"inside its runs root, then spawn again"
        )
    for child in spawn(parent, args.step, args.noise_seeds, run_dir.parent, device=args.device):
        print(child.dir)
    return 0


def _interpolate(args: argparse.Namespace) -> int:
    from landscape.analysis import interpolate
    from landscape.io import write_json

    _, models, data, options = _line_inputs(args)
    result = interpolate(*models, data, **options, align=args.align)
    out = result.to_dict()
    if args.json:
        write_json(args.json, out)
        before = result.unaligned
        print(
            f"wrote {args.json}: error barrier {result.error_barrier:.4f}, "
            f"loss barrier {result.loss_barrier:.4f}"
            + (
                f" (before alignment {before.error_barrier:.4f}, {before.loss_barrier:.4f})"
                if before is not None
                else ""
            )
        )
    else:
        print(json.dumps(out, indent=2))
    return 0


def _line_inputs(args: argparse.Namespace) -> tuple[list, list, Any, dict[str, Any]]:
    """The checkpoints, their models, the evaluation data (on the device) and the options
    of :func:`landscape.analysis.interpolate` that ``--points``/``--bn-*`` set."""
    from landscape.analysis.interpolate import has_batchnorm
    from landscape.data import get_dataset
    from landscape.devices import resolve_device
    from landscape.io import load_checkpoint

    device = resolve_device(args.device)
    data = get_dataset(args.data, args.data_root, split=args.split)
    paths = [_checkpoint_file(path) for path in (args.ckpt_a, args.ckpt_b)]
    ckpts = [load_checkpoint(path) for path in paths]
    models = _checkpoint_models(args, ckpts, args.ckpt_a, data.info, device)
    train_data = None
    if args.bn_reset is not False and has_batchnorm(models[0]):
        source = data if args.split == "train" else get_dataset(args.data, args.data_root)
        train_data = source.subset(args.bn_examples).to(device)
    options = dict(points=args.points, bn_reset=args.bn_reset, train_data=train_data)
    return list(zip(paths, ckpts)), models, data.to(device), options


def _align(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import torch

    from landscape.analysis import align, interpolate
    from landscape.io import save_checkpoint, write_json
    from landscape.sparse import save_masks

    checkpoints, (model_a, model_b), data, options = _line_inputs(args)
    (path_a, ckpt_a), (path_b, ckpt_b) = checkpoints
    masks = None
    if args.save_masks:
        masks = _run_masks(path_b, ckpt_b)
        if masks is None:
            raise LandscapeError(
                f"--save-masks: the run of {path_b} has no masks (it is dense); leave "
                f"--save-masks out"
            )
    generator = torch.Generator().manual_seed(args.seed)
    found = align(model_a, model_b, generator=generator, max_iter=args.max_iter, masks_b=masks)
    before = interpolate(model_a, model_b, data, **options)
    after = interpolate(model_a, found.model, data, **options)
    summary = {
        "checkpoint_a": str(path_a),
        "checkpoint_b": str(path_b),
        "data": args.data,
        "split": args.split,
        "error_barrier_before": before.error_barrier,
        "error_barrier_after": after.error_barrier,
        "loss_barrier_before": before.loss_barrier,
        "loss_barrier_after": after.loss_barrier,
        **found.to_dict(),
        "interpolation": replace(after, unaligned=before).to_dict(),
    }
    print(
        f"error barrier {before.error_barrier:.4f} -> {after.error_barrier:.4f}, loss barrier "
        f"{before.loss_barrier:.4f} -> {after.loss_barrier:.4f} (weight matching: "
        f"{len(found.perms)} permutations, {found.iterations} sweeps"
        f"{'' if found.converged else ', stopped at --max-iter'})"
    )
    if args.json:
        write_json(args.json, summary)
        print(f"wrote {args.json}")
    if args.save:
        meta = dict(ckpt_b.meta)
        if args.model is not None:
            meta.update(model=_model_name(args.model), model_kwargs=_key_values(args.model_arg))
        else:  # the model was the one A records
            kwargs = {**ckpt_a.meta.get("model_kwargs", {}), **_key_values(args.model_arg)}
            meta.update(model=ckpt_a.meta["model"], model_kwargs=kwargs)
        meta["aligned_to"] = str(path_a)
        save_checkpoint(args.save, found.model, meta=meta)
        print(f"wrote {args.save}")
    if masks is not None:
        save_masks(args.save_masks, found.masks)
        print(f"wrote {args.save_masks}")
    return 0


def _checkpoint_models(args: argparse.Namespace, ckpts, first: str, info, device) -> list:
    """The models in ``ckpts``: ``--model`` (and ``--model-arg``) if given, else the model the
    first checkpoint (at path ``first``) records, built for the data ``info``."""
    from landscape.io import load_weights
    from landscape.models import create_model

    name, kwargs = args.model, _key_values(args.model_arg)
    if name is None:  # this project's checkpoints say which model they hold
        meta = ckpts[0].meta
        if "model" not in meta:
            raise LandscapeError(
                f"{first} does not say which model it holds; pass --model NAME, or "
                f"--model path/to/file.py:ClassName for your own class (and --model-arg "
                f"KEY=VALUE for its options)"
            )
        recorded = meta.get("model_kwargs", {})
        if not isinstance(meta["model"], str) or not isinstance(recorded, dict):
            raise LandscapeError(f"{first} records its model in an unknown form")
        name, kwargs = meta["model"], {**recorded, **kwargs}
        origin = f" (the model recorded in {first}; pass --model to choose another)"
    else:
        origin = ""
    models = []
    for ckpt in ckpts:
        try:
            model = create_model(
                name, num_classes=info.num_classes, in_shape=tuple(info.in_shape), **kwargs
            )
        except LandscapeError as err:
            raise LandscapeError(f"{err}{origin}") from None
        models.append(load_weights(model, ckpt).to(device))
    return models


def _hessian(args: argparse.Namespace) -> int:
    from landscape.analysis import (
        diagonal_rows,
        hessian_diagonal,
        hessian_eigenvalues,
        hessian_spectrum,
    )
    from landscape.data import get_dataset
    from landscape.devices import resolve_device
    from landscape.io import load_checkpoint, write_json, write_rows
    from landscape.sparse import density, load_masks

    device = resolve_device(args.device)
    data = get_dataset(args.data, args.data_root, split=args.split)
    if args.examples:
        data = data.subset(args.examples)
    path = _checkpoint_file(args.checkpoint)
    ckpt = load_checkpoint(path)
    (model,) = _checkpoint_models(args, [ckpt], args.checkpoint, data.info, device)
    if args.masks == "none":
        masks, source = None, "none (the dense network)"
    elif args.masks == "auto":
        masks, source = _run_masks(path, ckpt), "the run's"
        if masks is None:
            source = "none (the run has none)"
    else:
        masks, source = load_masks(args.masks, model), args.masks
    options = dict(masks=masks, batch_size=args.batch_size, batches=args.batches)
    result = hessian_diagonal(model, data.to(device), args.method, probes=args.probes, **options)
    summary = {
        "checkpoint": str(path),
        "data": args.data,
        "split": args.split,
        "examples": result.count,
        "masks": source,
        "density": None if masks is None else density(masks),
        "method": result.method,
        "probes": result.probes,
        "trace": result.trace,
        "trace_stderr": result.trace_stderr,
    }
    if args.eigenvalues:
        top = hessian_eigenvalues(model, data.to(device), k=args.eigenvalues, **options)
        summary["top_eigenvalues"] = [float(v) for v in top]
    rows = diagonal_rows(result, checkpoint=str(path))
    summary["layers"] = rows
    print(
        f"Hessian of the mean loss over {result.count} {args.split} examples ({result.method}"
        f"{f', {result.probes} probes' if result.probes else ''}; masks: {source}): trace "
        f"{result.trace:.6g}"
        + (f" +- {result.trace_stderr:.2g}" if result.trace_stderr else "")
        + (f", top eigenvalues {summary['top_eigenvalues']}" if args.eigenvalues else "")
    )
    if args.out:
        out = Path(args.out)
        write_json(out.with_suffix(".json"), summary)
        write_rows(out.with_suffix(".csv"), rows)
        written = [out.with_suffix(".json"), out.with_suffix(".csv")]
        if args.spectrum:
            spectrum = hessian_spectrum(model, data.to(device), **options)
            spectrum_path = out.with_name(out.name + "-spectrum.csv")
            write_rows(spectrum_path, spectrum)
            written.append(spectrum_path)
        print("wrote " + ", ".join(str(w) for w in written))
    else:
        if args.spectrum:
            raise LandscapeError("--spectrum writes a CSV: pass --out STEM as well")
        print(json.dumps(summary, indent=2))
    return 0


def _surface(args: argparse.Namespace) -> int:
    from landscape.analysis.interpolate import has_batchnorm
    from landscape.analysis.surface import plane_surface, random_direction, surface
    from landscape.data import get_dataset
    from landscape.devices import resolve_device
    from landscape.io import load_checkpoint, write_json, write_rows
    from landscape.plot import save_figure
    from landscape.plot.surface import slice_curve, surface_contour
    from landscape.sparse import load_masks

    if len(args.checkpoints) not in (1, 3):
        raise LandscapeError(
            f"give one checkpoint (random directions around it) or three (their plane), "
            f"got {len(args.checkpoints)}"
        )
    device = resolve_device(args.device)
    data = get_dataset(args.data, args.data_root, split=args.split)
    if args.examples:
        data = data.subset(args.examples)
    paths = [_checkpoint_file(p) for p in args.checkpoints]
    ckpts = [load_checkpoint(p) for p in paths]
    models = _checkpoint_models(args, ckpts, args.checkpoints[0], data.info, device)
    train_data = None
    if args.bn_reset is not False and has_batchnorm(models[0]):
        source = data if args.split == "train" else get_dataset(args.data, args.data_root)
        train_data = source.subset(args.bn_examples).to(device)
    options = dict(bn_reset=args.bn_reset, train_data=train_data)
    summary: dict = {"checkpoints": [str(p) for p in paths], "data": args.data}
    if len(models) == 3:
        result = plane_surface(
            *models, data.to(device), points=args.points, margin=args.margin, **options
        )
        summary["kind"] = "plane"
    else:
        if args.masks == "none":
            masks = None
        elif args.masks == "auto":
            masks = _run_masks(paths[0], ckpts[0])
        else:
            masks = load_masks(args.masks, models[0])
        import torch

        gen = torch.Generator().manual_seed(args.seed)
        directions = [
            random_direction(
                models[0],
                generator=gen,
                masks=masks,
                normalization=args.normalization,
                keep_vectors=args.keep_vectors,
            )
            for _ in range(args.dims)
        ]
        result = surface(
            models[0], data.to(device), directions, points=args.points, span=args.span, **options
        )
        summary.update(kind="random", seed=args.seed, masked=masks is not None)
    summary.update(result.to_dict())
    out = Path(args.out)
    write_rows(out.with_suffix(".csv"), result.rows())
    write_json(out.with_suffix(".json"), summary)
    if result.ys is None:
        figure = slice_curve(result.rows())
    else:
        figure = surface_contour(result.rows(), marks=result.marks)
    written = [out.with_suffix(".csv"), out.with_suffix(".json"), *save_figure(figure, out)]
    low = min(min(r) if isinstance(r, list) else r for r in result.loss)
    print(
        f"{summary['kind']} surface, {len(result.rows())} points on {result.count} "
        f"{args.split} examples (BatchNorm reset: {result.bn_reset}): lowest loss {low:.4g}"
    )
    print("wrote " + ", ".join(str(w) for w in written))
    return 0


def _run_masks(path: Path, ckpt) -> dict | None:
    """The masks of the run the checkpoint file ``path`` belongs to (None for a dense run)."""
    from landscape.train.ensemble import checkpoint_masks

    return checkpoint_masks(
        ckpt, path.parent.parent if path.parent.name == "checkpoints" else path.parent
    )


def _checkpoint_file(path: str) -> Path:
    """The checkpoint a path names; for a run directory, say on stderr which one is used."""
    from landscape.io import read_json, resolve_checkpoint

    found = resolve_checkpoint(path)
    if found != Path(path):
        run_dir = found.parent.parent
        note = ""
        if (run_dir / "spec.json").is_file():
            record = read_json(run_dir / "spec.json")
            spec = record.get("spec") if isinstance(record, dict) else None
            train = spec.get("train") if isinstance(spec, dict) else None
            steps = train.get("steps") if isinstance(train, dict) else None
            if steps is not None and found.name != f"step_{steps}.pt":
                note = f"; the run is unfinished (it trains to step {steps})"
        print(f"landscape: using {found}, the latest checkpoint in {path}{note}", file=sys.stderr)
    return found


def _plot(args: argparse.Namespace) -> int:
    from landscape.io import read_rows
    from landscape.plot import barrier_vs_rewind, interpolation_curves, save_figure

    rows = read_rows(args.rows)
    if args.kind == "barrier":
        fig = barrier_vs_rewind(rows, barrier=f"{args.metric}_barrier")
    else:
        fig = interpolation_curves(rows, metric=args.metric)
    for path in save_figure(fig, args.out):
        print(path)
    return 0


def _correlate(args: argparse.Namespace) -> int:
    from landscape.analysis import rank_correlations
    from landscape.io import read_rows, write_rows

    rows = read_rows(args.rows)
    missing = [m for m in [*args.measures, args.group] if m and rows and m not in rows[0]]
    if missing:
        raise LandscapeError(
            f"{args.rows} has no column {missing[0]!r}; its columns: {', '.join(rows[0])}"
        )
    groups = [None] if args.group is None else list(dict.fromkeys(r[args.group] for r in rows))
    found = []
    for group in groups:
        mine = rows if group is None else [r for r in rows if r[args.group] == group]
        pairs = rank_correlations(
            mine,
            args.measures,
            replicate=args.replicate,
            resamples=args.resamples,
            level=args.level,
        )
        found += [pair if group is None else {args.group: group, **pair} for pair in pairs]
    for pair in found:
        where = f"{pair[args.group]}: " if args.group else ""
        print(
            f"{where}{pair['measure_a']} ~ {pair['measure_b']}: rho {pair['rho']:+.3f} "
            f"[{pair['low']:+.3f}, {pair['high']:+.3f}] ({pair['rows']} rows, "
            f"{pair['replicates']} replicates)"
        )
    if args.out:
        print(write_rows(args.out, found))
    return 0


def _list(args: argparse.Namespace) -> int:
    from landscape.data import list_datasets
    from landscape.models import list_models

    print("models:   " + ", ".join(list_models()) + ", tv:<any torchvision classifier>")
    print("datasets: " + ", ".join(list_datasets()))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from landscape.sweep import default_state, echo, is_done, load_sweep, run_sweep

    jobs = load_sweep(args.file)
    for job in jobs:  # every command line is checked before any runs
        _check_job(job)
    state = Path(args.state) if args.state else default_state()
    if args.dry_run:
        for job in jobs:
            print(f"{'done' if is_done(job, state) else 'todo'} {job.key} {job}")
        return 0
    slurm = {
        "partition": args.partition,
        "gpus": args.gpus,
        "cpus": args.cpus,
        "mem_gb": args.mem_gb,
        "time": args.time,
        "account": args.account,
        "qos": args.qos,
    }
    print(f"{len(jobs)} jobs; logs and markers in {state}", flush=True)
    result = run_sweep(
        jobs, args.executor, state=state, max_parallel=args.max_parallel, slurm=slurm, echo=echo
    )
    print(result.report())
    return 1 if result.failed else 0


def _check_job(job) -> None:
    """Parse a sweep job's command line as the command would, so that a typo stops the
    sweep before anything runs."""
    if job.command not in COMMANDS or job.command == "sweep":
        names = ", ".join(c for c in COMMANDS if c != "sweep")
        raise LandscapeError(f"sweep job command {job.command!r} is not one of: {names}")
    try:
        _parser().parse_args([job.command, *job.argv])
    except _UsageError as err:
        raise LandscapeError(f"sweep job `{job}` is not a valid command line: {err}") from None


COMMANDS = {
    "train": _train,
    "distill": _distill,
    "prune": _prune,
    "dst": _dst,
    "corrupt": _corrupt,
    "ensemble": _ensemble,
    "spawn": _spawn,
    "interpolate": _interpolate,
    "align": _align,
    "hessian": _hessian,
    "surface": _surface,
    "plot": _plot,
    "correlate": _correlate,
    "sweep": _sweep,
    "list": _list,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one line and return status 2."""
    try:
        args = _parser().parse_args(argv)
    except _UsageError as err:
        _fail(err.prog, f"{err} (see {err.prog} --help)")
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command in _TRAINING and _world_size() > 1:
            from landscape.train.distributed import torchrun_group

            with torchrun_group(args.device) as device:  # launched by torchrun
                args.device = device
                if int(os.environ.get("RANK", "0") or 0) == 0:
                    return COMMANDS[args.command](args)
                with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                    return COMMANDS[args.command](args)  # process 0 alone reports
        return COMMANDS[args.command](args)
    except LandscapeError as err:
        _fail(f"landscape {args.command}", str(err))
        return 2


def _world_size() -> int:
    text = os.environ.get("WORLD_SIZE", "") or "1"
    try:
        return int(text)
    except ValueError:
        raise LandscapeError(
            f"WORLD_SIZE={text!r} is not a number; launch with torchrun, which sets it"
        ) from None


#: Commands that train: under torchrun they join its process group (DDP, rank 0 writes).
_TRAINING = ("train", "prune", "dst", "ensemble", "spawn", "distill")


def _fail(prog: str, message: str) -> None:
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
