"""Benchmark: Hessian diagonals, ours (:func:`landscape.analysis.hessian_diagonal`) against
BackPACK and curvlinops called directly, side by side in one run.

1. A ReLU MLP on MNIST-1D (40-100-100-10, about 15k parameters; 1000 training examples,
   the whole set one batch), trained briefly so the curvature is not that of the
   initialisation:

   - ``backpack``: ``extend`` the model and the loss, one backward pass with
     ``DiagHessian`` (the peer, and the exact reference);
   - ours, ``method="auto"`` (which picks BackPACK's diagonal for this model): time and the
     largest relative difference to the peer's diagonal (``max_rel_diff_vs_backpack``,
     goal <= 1e-5; ``overhead_vs_backpack``, goal <= 1.2);
   - ``curvlinops.hutchinson_diag`` on the Hessian operator, ``probes`` Rademacher probes,
     and ours with ``method="hutchinson"`` at the same probes: time and relative error
     ``||d - d_exact|| / ||d_exact||``.

2. ConvNet-3 with GroupNorm at width 16 on 256 Fashion-MNIST-shaped examples (about 7.5k
   parameters), which BackPACK refuses: our exact diagonal (``method="exact"``: forward
   tangents through the layers above each parameter, :mod:`landscape.analysis._tangents`;
   goal < 120 s), beside the brute force it replaces, Hessian columns by double backward
   (GroupNorm's backward has no forward-mode derivative): 64 random columns are timed and
   extrapolated to all of them (``hvp_columns_s_estimated``), and their diagonal entries
   must agree with ours (``max_rel_diff_vs_hvp_columns``).

3. (Full run only.) The error-vs-time curve of Hutchinson (ours) and XDiag (curvlinops) at
   width 128 (about 318k parameters, same data), where no exact diagonal is affordable: the
   reference is the exact diagonal at ``--sample`` uniformly drawn coordinates (forward
   tangents), and the relative error ``||d_S - d_exact_S|| / ||d_exact_S||`` is taken over
   that sample (a uniform sample estimates both norms up to the same factor).

Prints a line per measurement and, last, one JSON object with ``ratios``.

    python benchmarks/curvature.py --quick
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings

import torch
from torch import nn

from landscape.analysis import hessian_diagonal, hessian_operator
from landscape.analysis._tangents import tangent_diagonal, tangent_layers
from landscape.analysis.hessian import _column_diagonal, _Problem
from landscape.data import get_dataset
from landscape.models import create_model


def _seconds(fn, repeats: int) -> tuple[float, object]:
    out, best = None, float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def backpack_diagonal(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """BackPACK as its documentation shows it: extend, one backward with DiagHessian."""
    from backpack import backpack, extend
    from backpack.extensions import DiagHessian

    net = extend(copy.deepcopy(model).eval())
    loss_fn = extend(nn.CrossEntropyLoss())
    loss = loss_fn(net(x), y)
    with backpack(DiagHessian()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Full backward hook")
        loss.backward()
    return torch.cat([p.diag_h.reshape(-1) for p in net.parameters()])


def curvlinops_hutchinson(model, x, y, probes: int) -> torch.Tensor:
    import curvlinops

    op = curvlinops.HessianLinearOperator(
        model.eval(),
        nn.CrossEntropyLoss(),
        list(model.parameters()),
        [(x, y)],
        check_deterministic=False,
    )
    return curvlinops.hutchinson_diag(op, probes)


def trained_mlp(x, y, steps: int = 200) -> nn.Module:
    torch.manual_seed(0)
    model = create_model("mlp", num_classes=10, in_shape=(1, 40), widths=[100, 100])
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for i in range(steps):
        batch = slice((i * 100) % len(y), (i * 100) % len(y) + 100)
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def mlp_case(probes: int, repeats: int) -> dict:
    data = get_dataset("mnist1d", split="train")
    x, y = data.x[:1000], data.y[:1000]
    model = trained_mlp(x, y)
    params = sum(p.numel() for p in model.parameters())
    t_peer, exact = _seconds(lambda: backpack_diagonal(model, x, y), repeats)
    t_ours, ours = _seconds(lambda: hessian_diagonal(model, (x, y)), repeats)
    assert ours.method == "backpack"
    max_rel = float((ours.flat() - exact).abs().max() / exact.abs().max())
    torch.manual_seed(0)
    t_ch, ch = _seconds(lambda: curvlinops_hutchinson(model, x, y, probes), 1)
    t_oh, oh = _seconds(
        lambda: hessian_diagonal(model, (x, y), "hutchinson", probes=probes, block=probes), 1
    )
    row = {
        "parameters": params,
        "examples": len(y),
        "backpack_s": t_peer,
        "ours_auto_s": t_ours,
        "max_rel_diff_vs_backpack": max_rel,
        "probes": probes,
        "curvlinops_hutchinson_s": t_ch,
        "curvlinops_hutchinson_rel_error": rel(ch, exact),
        "ours_hutchinson_s": t_oh,
        "ours_hutchinson_rel_error": rel(oh.flat(), exact),
    }
    print(
        f"MLP ({params} parameters, {len(y)} examples): BackPACK {1e3 * t_peer:.1f} ms, ours "
        f"(auto -> backpack) {1e3 * t_ours:.1f} ms, max rel diff {max_rel:.1e}; Hutchinson "
        f"with {probes} probes: curvlinops {t_ch:.2f} s (rel error "
        f"{row['curvlinops_hutchinson_rel_error']:.2f}), ours {t_oh:.2f} s (rel error "
        f"{row['ours_hutchinson_rel_error']:.2f})"
    )
    return row


def convnet(width: int):
    torch.manual_seed(0)
    model = create_model("convnet", num_classes=10, in_shape=(1, 28, 28), width=width, norm="group")
    x, y = torch.randn(256, 1, 28, 28), torch.randint(0, 10, (256,))
    return model, x, y


def conv_case() -> dict:
    model, x, y = convnet(16)
    params = sum(p.numel() for p in model.parameters())
    t, ours = _seconds(lambda: hessian_diagonal(model, (x, y), "exact"), 1)
    ours = ours.flat()
    problem = _Problem.build(model, (x, y), None, 2048, None)
    sample = torch.randperm(params, generator=torch.Generator().manual_seed(0))[:64]
    problem.active = sample.sort().values
    t_cols, cols = _seconds(lambda: _column_diagonal(problem, 64), 1)
    idx = problem.active
    row = {
        "parameters": params,
        "examples": len(y),
        "exact_s": t,
        "hvp_columns_s_estimated": t_cols * params / len(idx),
        "max_rel_diff_vs_hvp_columns": float(
            (ours[idx] - cols[idx]).abs().max() / cols[idx].abs().max()
        ),
    }
    print(
        f"ConvNet-3 GroupNorm width 16 ({params} parameters, {len(y)} examples): exact "
        f"diagonal by forward tangents {t:.1f} s (goal < 120 s); Hessian columns: 64 in "
        f"{t_cols:.1f} s, all about {row['hvp_columns_s_estimated']:.0f} s; max rel diff "
        f"{row['max_rel_diff_vs_hvp_columns']:.1e}"
    )
    return row


def error_vs_time(sample: int, probe_counts: tuple[int, ...]) -> dict:
    import curvlinops

    model, x, y = convnet(128)
    params = sum(p.numel() for p in model.parameters())
    problem = _Problem.build(model, (x, y), None, 2048, None)
    idx = torch.randperm(params, generator=torch.Generator().manual_seed(0))[:sample]
    problem.active = idx.sort().values
    idx = problem.active
    layers = tangent_layers(problem.model, problem.names)
    t_ref, exact = _seconds(lambda: tangent_diagonal(problem, layers, 64), 1)
    exact = exact[idx]
    print(
        f"ConvNet-3 GroupNorm width 128 ({params} parameters): exact diagonal at {sample} "
        f"sampled coordinates {t_ref:.0f} s"
    )
    curve = []
    for probes in probe_counts:
        th, h = _seconds(
            lambda p=probes: hessian_diagonal(model, (x, y), "hutchinson", probes=p, block=p),
            1,
        )
        curve.append(
            {
                "estimator": "hutchinson",
                "probes": probes,
                "seconds": th,
                "rel_error": rel(h.flat()[idx], exact),
            }
        )
        op = hessian_operator(model, (x, y))
        torch.manual_seed(0)
        tx, xd = _seconds(lambda p=probes, a=op: curvlinops.xdiag(a, p), 1)
        curve.append(
            {
                "estimator": "xdiag",
                "probes": probes,
                "seconds": tx,
                "rel_error": rel(xd[idx], exact),
            }
        )
        print(
            f"  {probes} products: Hutchinson {th:.0f} s (rel error "
            f"{curve[-2]['rel_error']:.2f}), XDiag {tx:.0f} s ({curve[-1]['rel_error']:.2f})"
        )
    return {"parameters": params, "sample": sample, "exact_sample_s": t_ref, "curve": curve}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer probes, no width-128 curve")
    parser.add_argument("--sample", type=int, default=256, help="exact coordinates at width 128")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    mlp = mlp_case(probes=100 if args.quick else 1000, repeats=3 if args.quick else 10)
    conv = conv_case()
    if not args.quick:
        conv["width128"] = error_vs_time(args.sample, (4, 16, 64))
    ratios = {
        "overhead_vs_backpack": mlp["ours_auto_s"] / mlp["backpack_s"],
        "speedup_vs_curvlinops_hutchinson": mlp["curvlinops_hutchinson_s"]
        / mlp["ours_hutchinson_s"],
        "speedup_vs_hvp_columns": conv["hvp_columns_s_estimated"] / conv["exact_s"],
    }
    print(
        json.dumps(
            {
                "threads": torch.get_num_threads(),
                "mlp": mlp,
                "convnet_groupnorm": conv,
                "max_rel_diff_vs_backpack": mlp["max_rel_diff_vs_backpack"],
                "ratios": ratios,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
