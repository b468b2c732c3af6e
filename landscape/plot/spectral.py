"""Radius-accuracy curves: accuracy on low-pass and high-pass filtered images against the
filter's radius (Wu et al. 2024, arXiv 2410.03030, after Wang et al. 2020)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from landscape.errors import LandscapeError
from landscape.plot.curves import _legend_outside, _panel_figure, as_frame, band_plot
from landscape.plot.style import new_figure

_TITLES = {"low": "low-pass", "high": "high-pass"}


def radius_accuracy_curves(
    rows: Any,
    hue: str | None = "method",
    panel: str | None = "kind",
    *,
    percent: bool = True,
    hue_order: Sequence[Any] | None = None,
) -> plt.Figure:
    """Test accuracy against the filter radius, a line per ``hue``, a panel per ``panel``.

    Low-pass panels come first, then high-pass, then any other values of ``panel`` in order
    of appearance. Rows that share a panel, a hue and a radius are replicates: the line is
    their mean and the band +- one sample std, which needs a ``replicate`` column to tell
    them apart (rows repeated without one are refused, as they are likely two tables mixed).

    Args:
        rows: :func:`landscape.analysis.radius_accuracy` or ``spectral_rows`` rows (columns
            kind, radius, accuracy), with a ``hue`` column added (e.g. ``method``: dense,
            RigL, SET) and optionally ``replicate``.
        hue: the column whose values get a line each; ``None`` for one line.
        panel: the column whose values get a panel each; ``None`` for one panel.
        percent: accuracy in percent.
        hue_order: hue values in the order of their colours (a method keeps its colour in
            every panel and in figures that show only some methods).

    Raises:
        LandscapeError: missing columns, non-numeric or out-of-range radius and accuracy,
            repeated rows without a ``replicate`` column.
    """
    keys = [c for c in (panel, hue) if c is not None]
    frame = as_frame(rows, ["radius", "accuracy", *keys])
    _check(frame, keys)
    if panel is None:
        fig, axes = new_figure()
        parts = [(None, frame)]
    else:
        rank = {name: i for i, name in enumerate(_TITLES)}
        order = sorted(dict.fromkeys(frame[panel]), key=lambda v: rank.get(v, len(rank)))
        frame = frame.iloc[np.argsort([order.index(v) for v in frame[panel]], kind="stable")]
        panels, fig, axes = _panel_figure(frame, panel)
        parts = [(name, frame[frame[panel] == name]) for name in panels]
    if hue is not None and hue_order is None:  # one colour per hue across all panels
        hue_order = sorted(set(frame[hue]), key=str)
    scale = 100.0 if percent else 1.0
    for ax, (name, sub) in zip(axes, parts):
        band_plot(ax, sub, "radius", "accuracy", hue, scale=scale, hue_order=hue_order)
        if name is not None:
            ax.set_title(_TITLES.get(name, str(name)))
        ax.set_xlabel("filter radius (frequency bins)")
    axes[0].set_ylabel("test accuracy" + (" (%)" if percent else ""))
    if hue is not None:
        _legend_outside(axes, hue)
    fig.tight_layout()
    return fig


def _check(frame: pd.DataFrame, keys: list[str]) -> None:
    """Numbers where numbers belong, accuracies as fractions, no unexplained repeats."""
    odd = [c for c in ("radius", "accuracy") if not pd.api.types.is_numeric_dtype(frame[c])]
    odd += [c for c in ("radius", "accuracy") if c not in odd and not np.isfinite(frame[c]).all()]
    if odd:
        raise LandscapeError(
            f"column(s) {odd} must hold finite numbers; the rows look like another table's"
        )
    if (frame["radius"] < 0).any():
        raise LandscapeError("radii must be >= 0; the rows look like another table's")
    if ((frame["accuracy"] < 0) | (frame["accuracy"] > 1)).any():
        raise LandscapeError(
            "accuracy must be a fraction in [0, 1] as radius_accuracy writes it; divide "
            "percentages by 100"
        )
    repeat = keys + ["radius"] + (["replicate"] if "replicate" in frame.columns else [])
    twice = frame[frame.duplicated(repeat, keep=False)]
    if len(twice):
        first = twice.iloc[0][repeat].to_dict()
        hint = (
            "keep one row per replicate"
            if "replicate" in frame.columns
            else "add a 'replicate' column to average replicates, or filter the rows"
        )
        raise LandscapeError(f"rows repeat {first} ({len(twice)} rows); {hint}")
