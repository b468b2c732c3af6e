"""Rank correlation between measures of a tidy table, with bootstrap confidence intervals.

Spearman's rho is Pearson's correlation of the ranks (ties share their mean rank). Its
confidence interval resamples *replicates*, not rows: rows of one replicate (one set of
seeds) share their training noise, so the bootstrap draws whole replicates with
replacement, recomputes rho on the rows of the drawn replicates, and takes the percentile
interval (Efron & Tibshirani 1993, ch. 13).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from landscape.checks import integer, number
from landscape.errors import LandscapeError


def ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n of ``values``, ties sharing the mean of the ranks they span."""
    _, group, counts = np.unique(
        np.asarray(values, dtype=float), return_inverse=True, return_counts=True
    )
    last = np.cumsum(counts)  # each group's last rank; its mean rank is (first + last) / 2
    return (last - (counts - 1) / 2)[group]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation of two equal-length sequences (NaN when either is
    constant or shorter than 3)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise LandscapeError("spearman takes two equal-length sequences of numbers")
    if len(x) < 3:
        return math.nan
    rx, ry = ranks(x) - (len(x) + 1) / 2, ranks(y) - (len(y) + 1) / 2
    scale = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / scale if scale > 0 else math.nan


def rank_correlations(
    rows: Iterable[Mapping[str, Any]],
    measures: Sequence[str],
    *,
    replicate: str = "replicate",
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Spearman's rho for every pair of ``measures`` over the rows that have both.

    Args:
        rows: tidy rows (dicts); a measure that is missing, ``None`` or NaN in a row leaves
            that row out of the pairs with that measure.
        measures: the columns to correlate, in the order of the output pairs.
        replicate: the column naming each row's replicate, the unit the bootstrap resamples.
        resamples: bootstrap draws.
        level: the confidence level of the percentile interval.
        seed: the bootstrap's random seed.

    Returns:
        One row per pair ``a < b``: ``measure_a``, ``measure_b``, ``rho``, ``low``, ``high``
        (NaN with fewer than two replicates), ``rows`` (how many rows had both) and
        ``replicates``.
    """
    resamples = integer("resamples", resamples, 1)
    level = number("level", level, minimum=0.0, strict_minimum=True)
    if level >= 1:
        raise LandscapeError(f"level must lie strictly between 0 and 1, got {level}")
    if isinstance(measures, str) or len(measures) < 2:
        raise LandscapeError("measures must name at least two columns to correlate")
    table = list(rows)
    if any(replicate not in r for r in table):
        raise LandscapeError(f"every row needs a {replicate!r} column (the bootstrap's unit)")
    rng = np.random.default_rng(integer("seed", seed, 0))
    out = []
    for a, b in itertools.combinations(measures, 2):
        kept = [
            (r[replicate], float(r[a]), float(r[b]))
            for r in table
            if _finite(r, a) and _finite(r, b)
        ]
        groups: dict[Any, list[tuple[float, float]]] = {}
        for rep, va, vb in kept:
            groups.setdefault(rep, []).append((va, vb))
        rho = spearman([k[1] for k in kept], [k[2] for k in kept]) if kept else math.nan
        low = high = math.nan
        if len(groups) >= 2:
            blocks = list(groups.values())
            seen: dict[tuple[int, ...], float] = {}  # a draw is a multiset of replicates
            draws = []
            for _ in range(resamples):
                pick = tuple(sorted(rng.integers(0, len(blocks), len(blocks)).tolist()))
                if pick not in seen:
                    pairs = [p for i in pick for p in blocks[i]]
                    seen[pick] = spearman([p[0] for p in pairs], [p[1] for p in pairs])
                draws.append(seen[pick])
            draws = np.asarray(draws)
            draws = draws[np.isfinite(draws)]
            if len(draws):
                tail = (1 - level) / 2
                low, high = (float(q) for q in np.quantile(draws, [tail, 1 - tail]))
        out.append(
            {
                "measure_a": a,
                "measure_b": b,
                "rho": rho,
                "low": low,
                "high": high,
                "rows": len(kept),
                "replicates": len(groups),
            }
        )
    return out


def _finite(row: Mapping[str, Any], key: str) -> bool:
    value = row.get(key)
    if value is None or value == "":
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
