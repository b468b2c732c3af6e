"""Benchmark: rank correlations with replicate-bootstrap intervals for a whole atlas table.

The atlas (``analyses/atlas.py``) correlates every pair of its ten measures within each
network, with a percentile interval from resampling replicates. Peer, timed side by side
on the same fabricated table with the same random draws:

- ``naive``: what one would write with scipy: for every pair and every draw, gather the
  drawn replicates' rows and call ``scipy.stats.spearmanr``.

Ours (:func:`landscape.analysis.rank_correlations`) computes each distinct draw once: a
draw is a multiset of replicates, and with a few replicates most draws repeat. Both must
give the same rho and interval (``matches_naive``).

    python benchmarks/correlation.py --quick
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
from scipy import stats

from landscape.analysis import rank_correlations

MEASURES = [f"m{i}" for i in range(10)]


def table(replicates: int, per: int, seed: int = 0) -> list[dict]:
    """``per`` rows (kinds x densities) per replicate, ten correlated measures."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(replicates):
        for _ in range(per):
            base = rng.normal()
            values = base * np.linspace(-1, 1, len(MEASURES)) + rng.normal(size=len(MEASURES))
            rows.append({"replicate": r, **dict(zip(MEASURES, values.tolist()))})
    return rows


def naive(rows: list[dict], resamples: int, seed: int = 0) -> list[dict]:
    """The same draws as ours (one generator, pairs in order), scipy for every draw."""
    rng = np.random.default_rng(seed)
    out = []
    for a, b in itertools.combinations(MEASURES, 2):
        groups: dict[int, list[tuple[float, float]]] = {}
        for r in rows:
            groups.setdefault(r["replicate"], []).append((r[a], r[b]))
        blocks = list(groups.values())
        rho = stats.spearmanr([r[a] for r in rows], [r[b] for r in rows]).statistic
        draws = []
        for _ in range(resamples):
            pick = sorted(rng.integers(0, len(blocks), len(blocks)).tolist())
            pairs = [p for i in pick for p in blocks[i]]
            draws.append(stats.spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic)
        low, high = np.quantile(np.asarray(draws), [0.025, 0.975])
        out.append({"rho": rho, "low": float(low), "high": float(high)})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer draws")
    args = parser.parse_args()
    resamples = 200 if args.quick else 2000
    figures = {}
    for replicates in (3, 5):
        rows = table(replicates, per=22)  # the demo atlas: 22 kinds x densities per network
        start = time.perf_counter()
        ours = rank_correlations(rows, MEASURES, resamples=resamples)
        t_ours = time.perf_counter() - start
        start = time.perf_counter()
        peer = naive(rows, resamples)
        t_naive = time.perf_counter() - start
        diff = max(abs(o[k] - p[k]) for o, p in zip(ours, peer) for k in ("rho", "low", "high"))
        figures[f"{replicates}_replicates"] = {
            "rows": len(rows),
            "pairs": len(ours),
            "resamples": resamples,
            "ours_s": t_ours,
            "naive_s": t_naive,
            "speedup_vs_naive": t_naive / t_ours,
            "max_abs_diff": diff,
            "matches_naive": diff < 1e-9,
        }
        print(
            f"{replicates} replicates: "
            + ", ".join(f"{k}={v:.4g}" for k, v in figures[f"{replicates}_replicates"].items())
        )
    ratios = {"speedup_vs_naive": min(f["speedup_vs_naive"] for f in figures.values())}
    matches = all(f["matches_naive"] for f in figures.values())
    print(json.dumps({"matches_naive": matches, "cases": figures, "ratios": ratios}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
