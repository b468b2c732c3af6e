"""Accuracy and error under image corruptions, per corruption and severity, and mCE.

Rows are tidy: one per ``(corruption, severity)`` with columns ``corruption``, ``severity``,
``accuracy`` and ``error`` (fractions in [0, 1]), ``loss`` (mean cross-entropy) and
``count`` (examples). The summaries follow two conventions:

- CIFAR (e.g. Wu et al. 2024's "robustness accuracy"): the mean accuracy over every
  corruption and severity, :func:`mean_corruption_accuracy`, or ``100`` minus it in percent,
  :func:`mean_corruption_error`. No baseline.
- ImageNet (Hendrycks & Dietterich 2019, "Benchmarking Neural Network Robustness to Common
  Corruptions and Perturbations", ICLR): each corruption's errors are summed over the
  severities and divided by a baseline network's (AlexNet in the paper),
  ``CE_c = sum_s E_{s,c} / sum_s E^base_{s,c}``, and mCE is the mean of ``CE_c`` over the 15
  benchmark corruptions; the relative CE subtracts each network's clean error first,
  ``sum_s (E_{s,c} - E_clean) / sum_s (E^base_{s,c} - E^base_clean)``. Both in percent
  (100: as fragile as the baseline). The 4 extra corruptions (speckle noise, Gaussian blur,
  spatter, saturate), which the paper holds out for validation, are excluded unless
  ``corruptions=CORRUPTIONS`` is passed.

Nothing here trains or plots.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from landscape.analysis.evaluate import DEFAULT_BATCH, as_model, evaluate
from landscape.checks import integer, number
from landscape.data.corrupted import BENCHMARK_CORRUPTIONS, CORRUPTIONS, SEVERITIES
from landscape.errors import LandscapeError

Cell = tuple[str, int]


def corruption_rows(
    model: Any,
    data: Callable[[str, int], Any] | Mapping[Cell, Any],
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    *,
    batch_size: int = DEFAULT_BATCH,
) -> list[dict[str, Any]]:
    """Evaluate ``model`` on every ``(corruption, severity)`` test set.

    Args:
        model: a classifier returning ``(N, classes)`` logits, or a ``Run``.
        data: ``fn(corruption, severity) -> data`` (e.g. ``partial(load_corrupted,
            "cifar10-c", root=ROOT)`` or one that corrupts on the fly), or a mapping
            ``{(corruption, severity): data}``; ``data`` is anything
            :func:`~landscape.analysis.evaluate` takes, normalised as the model expects.
            Each set is made, evaluated whole and dropped before the next.
        corruptions: which corruptions, in row order; ``None``: a mapping's corruptions
            (in :data:`CORRUPTIONS` order, then others sorted), or all 19 for a callable.
        severities: which severities of each.
        batch_size: examples per forward pass.

    Returns:
        One row per cell, corruptions outer and severities inner: ``corruption``,
        ``severity``, ``accuracy``, ``error``, ``loss``, ``count``.

    Raises:
        LandscapeError: a mapping lacks a cell, or a set does not fit the model.
    """
    model = as_model(model)
    if isinstance(data, Mapping):
        lookup = {_cell(k, "a key of data"): v for k, v in data.items()}
        if corruptions is None:
            corruptions = _ordered({c for c, _ in lookup})

        def get(corruption: str, severity: int) -> Any:
            return lookup[(corruption, severity)]

    elif callable(data):
        lookup, get = None, data
        corruptions = CORRUPTIONS if corruptions is None else corruptions
    else:
        raise LandscapeError(
            f"data must be a function (corruption, severity) -> data or a mapping "
            f"{{(corruption, severity): data}}, got {type(data).__name__}"
        )
    if isinstance(corruptions, str) or isinstance(severities, (str, int)):
        raise LandscapeError("corruptions and severities must be lists, e.g. ['fog'] and [1, 3]")
    cells = [_cell((c, s), "a requested cell") for c in corruptions for s in severities]
    if not cells:
        raise LandscapeError("no (corruption, severity) cells to evaluate; name some")
    missing = [f"{c}:{s}" for c, s in cells if lookup is not None and (c, s) not in lookup]
    if missing:
        raise LandscapeError(
            f"data has no set for {', '.join(missing[:6])}{', ...' if len(missing) > 6 else ''}; "
            f"pass corruptions= and severities= that its keys cover"
        )
    rows = []
    for corruption, severity in cells:
        result = evaluate(model, get(corruption, severity), batch_size=batch_size)
        rows.append(
            {
                "corruption": corruption,
                "severity": severity,
                "accuracy": 1.0 - result.error,
                "error": result.error,
                "loss": result.loss,
                "count": result.count,
            }
        )
    return rows


def mean_corruption_accuracy(
    rows: Iterable[Mapping[str, Any]], corruptions: Sequence[str] | None = None
) -> float:
    """Mean accuracy (fraction) over every ``(corruption, severity)`` row: the "robustness
    accuracy" of the CIFAR-C literature (e.g. Wu et al. 2024).

    Args:
        rows: from :func:`corruption_rows` (or read back from CSV).
        corruptions: restrict to these; ``None``: every row. Published CIFAR-10-C numbers
            average the 15 benchmark corruptions: pass ``BENCHMARK_CORRUPTIONS`` to compare
            with them when the rows also hold the 4 extra ones (as :func:`mce` does by
            default).
    """
    table = _table(rows, "rows")
    if corruptions is not None:
        missing = sorted(set(corruptions) - {c for c, _ in table})
        if missing:
            raise LandscapeError(f"rows have no cells for {missing}; evaluate them first")
        table = {k: v for k, v in table.items() if k[0] in set(corruptions)}
    return 1.0 - sum(table.values()) / len(table)


def mean_corruption_error(
    rows: Iterable[Mapping[str, Any]], corruptions: Sequence[str] | None = None
) -> float:
    """``100 * (1 - mean_corruption_accuracy(rows))``: mean error in percent, unnormalised
    (the CIFAR-10-C convention, which has no AlexNet baseline)."""
    return 100.0 * (1.0 - mean_corruption_accuracy(rows, corruptions))


def corruption_errors(
    rows: Iterable[Mapping[str, Any]],
    baseline_rows: Iterable[Mapping[str, Any]],
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS,
    *,
    clean_error: Any = None,
    baseline_clean_error: Any = None,
) -> dict[str, float]:
    """``CE_c`` in percent per corruption (relative CE when both clean errors are given).

    ``CE_c = 100 * sum_s E_{s,c} / sum_s E^base_{s,c}`` over the severities the baseline
    has for ``c`` (Hendrycks & Dietterich 2019, eq. 1); with clean errors,
    ``100 * sum_s (E_{s,c} - E_clean) / sum_s (E^base_{s,c} - E^base_clean)``.

    Args:
        rows, baseline_rows: per-cell rows of the network and of the baseline.
        corruptions: which corruptions; default the 15 benchmark ones.
        clean_error, baseline_clean_error: clean test errors as fractions (or the
            ``EvalResult`` of :func:`~landscape.analysis.evaluate`).

    Raises:
        LandscapeError: the baseline lacks a corruption, ``rows`` lack a cell the baseline
            has, or a denominator is zero.
    """
    table, base = _table(rows, "rows"), _table(baseline_rows, "baseline_rows")
    if isinstance(corruptions, str) or not corruptions:
        raise LandscapeError(f"corruptions must be a non-empty list of names, got {corruptions!r}")
    relative = clean_error is not None or baseline_clean_error is not None
    if relative and (clean_error is None or baseline_clean_error is None):
        raise LandscapeError("relative CE needs both clean_error and baseline_clean_error")
    clean = _fraction(clean_error, "clean_error") if relative else 0.0
    base_clean = _fraction(baseline_clean_error, "baseline_clean_error") if relative else 0.0
    out = {}
    for c in corruptions:
        severities = sorted(s for k, s in base if k == c)
        if not severities:
            raise LandscapeError(
                f"baseline_rows have no cells for {c!r}; pass corruptions= that the baseline "
                f"covers (default: the 15 benchmark corruptions)"
            )
        missing = [s for s in severities if (c, s) not in table]
        if missing:
            raise LandscapeError(
                f"rows lack {c!r} at severities {missing}, which the baseline has; evaluate "
                f"every cell of the baseline so that the sums compare like with like"
            )
        ours = sum(table[(c, s)] - clean for s in severities)
        theirs = sum(base[(c, s)] - base_clean for s in severities)
        if theirs == 0:
            raise LandscapeError(
                f"the baseline's summed {'relative ' if relative else ''}error on {c!r} is 0, "
                f"so CE is undefined; choose a baseline that errs on it"
            )
        out[c] = 100.0 * ours / theirs
    return out


def mce(
    rows: Iterable[Mapping[str, Any]],
    baseline_rows: Iterable[Mapping[str, Any]],
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS,
) -> float:
    """Mean corruption error in percent: the mean of :func:`corruption_errors` over
    ``corruptions`` (default the 15 benchmark ones; the baseline scores 100)."""
    ces = corruption_errors(rows, baseline_rows, corruptions)
    return sum(ces.values()) / len(ces)


def relative_mce(
    rows: Iterable[Mapping[str, Any]],
    baseline_rows: Iterable[Mapping[str, Any]],
    clean_error: Any,
    baseline_clean_error: Any,
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS,
) -> float:
    """Relative mCE in percent: the mean relative CE, where each network's clean error
    (a fraction, or an ``EvalResult``) is subtracted from its corrupted errors first."""
    ces = corruption_errors(
        rows,
        baseline_rows,
        corruptions,
        clean_error=clean_error,
        baseline_clean_error=baseline_clean_error,
    )
    return sum(ces.values()) / len(ces)


def summary_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per corruption, each column averaged over its severities (equal weight).

    Returns:
        Rows with ``corruption``, ``accuracy``, ``error``, ``loss`` (means), ``severities``
        (how many), ``count`` (examples summed), in :data:`CORRUPTIONS` order.
    """
    rows = list(rows)
    _table(rows, "rows")  # checks names, severities and duplicates
    out = []
    for c in _ordered({str(r["corruption"]) for r in rows}):
        mine = [r for r in rows if r["corruption"] == c]
        errors = [_error(r, "rows") for r in mine]
        losses = [r["loss"] for r in mine if "loss" in r]
        out.append(
            {
                "corruption": c,
                "accuracy": 1.0 - sum(errors) / len(errors),
                "error": sum(errors) / len(errors),
                "loss": sum(losses) / len(losses) if len(losses) == len(mine) else None,
                "severities": len(mine),
                "count": sum(int(r.get("count", 0)) for r in mine),
            }
        )
    return out


def _table(rows: Iterable[Mapping[str, Any]], what: str) -> dict[Cell, float]:
    """``{(corruption, severity): error}`` of ``rows``, each cell once."""
    if isinstance(rows, Mapping) or not isinstance(rows, Iterable):
        raise LandscapeError(f"{what} must be a list of row dicts, got {type(rows).__name__}")
    table: dict[Cell, float] = {}
    for row in rows:
        if not isinstance(row, Mapping) or "corruption" not in row or "severity" not in row:
            raise LandscapeError(
                f"{what}: every row needs 'corruption', 'severity' and 'error' (or "
                f"'accuracy'), as corruption_rows writes; got {row!r}"
            )
        key = _cell((row["corruption"], row["severity"]), what)
        if key in table:
            raise LandscapeError(f"{what} hold ({key[0]!r}, {key[1]}) twice; keep one row per cell")
        table[key] = _error(row, what)
    if not table:
        raise LandscapeError(f"{what} are empty; evaluate with corruption_rows first")
    return table


def _cell(key: Any, what: str) -> Cell:
    if not isinstance(key, tuple) or len(key) != 2 or not isinstance(key[0], str) or not key[0]:
        raise LandscapeError(f"{what} must be a (corruption name, severity) pair, got {key!r}")
    return key[0], integer(f"{what}: severity of {key[0]!r}", key[1], 1)


def _error(row: Mapping[str, Any], what: str) -> float:
    if "error" in row:
        return _fraction(row["error"], f"{what}: error of {row['corruption']!r}")
    if "accuracy" in row:
        return 1.0 - _fraction(row["accuracy"], f"{what}: accuracy of {row['corruption']!r}")
    raise LandscapeError(f"{what}: the row for {row['corruption']!r} has no error or accuracy")


def _fraction(value: Any, what: str) -> float:
    value = getattr(value, "error", value)  # an EvalResult
    return number(f"{what} (a fraction; divide percentages by 100)", value, minimum=0, maximum=1)


def _ordered(names: set[str]) -> list[str]:
    """``names`` in :data:`CORRUPTIONS` order, then any others sorted."""
    return [c for c in CORRUPTIONS if c in names] + sorted(names - set(CORRUPTIONS))
