"""Figures of a table of many measures: kinds x measures heatmaps, measure-against-measure
scatter plots and the rank-correlation matrix."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from landscape.errors import LandscapeError
from landscape.plot.curves import as_frame
from landscape.plot.style import FULL_WIDTH, apply_style, new_figure


def measure_heatmap(
    rows: Any,
    measures: Sequence[str],
    *,
    label: str = "label",
    panel: str = "dataset",
    order: Sequence[Any] | None = None,
    higher_is_better: dict[str, bool] | None = None,
) -> plt.Figure:
    """One row per ``label`` (e.g. kind and density), one column per measure: the mean over
    the rows of each label, coloured after min-max normalising each column within its
    panel (so every measure spans the colour scale), annotated with the raw means.

    Args:
        rows: tidy rows with ``label``, ``panel`` and the measures.
        measures: the columns, in order; a label without a measure shows an empty cell.
        order: the labels top to bottom (default: first appearance).
        higher_is_better: per measure, whether higher is better; a measure marked False
            has its colours flipped, so the bright end is always the better one (default:
            bright is high).
    """
    frame = as_frame(rows, [label, panel])
    missing = [m for m in measures if m not in frame.columns]
    if missing:
        raise LandscapeError(f"the rows have no column {missing[0]!r} to draw")
    panels = list(dict.fromkeys(frame[panel]))
    labels = list(order) if order is not None else list(dict.fromkeys(frame[label]))
    height = 0.22 * len(labels) + 1.4
    fig, axes = new_figure(len(panels), width=FULL_WIDTH, height=height, sharey=True)
    flip = higher_is_better or {}
    for ax, name in zip(axes, panels):
        sub = frame[frame[panel] == name]
        means = sub.groupby(label, sort=False)[list(measures)].mean(numeric_only=False)
        means = means.apply(pd.to_numeric, errors="coerce").reindex(labels)
        low, high = means.min(), means.max()
        scaled = (means - low) / (high - low).replace(0, np.nan)
        for m in measures:
            if flip.get(m) is False:
                scaled[m] = 1 - scaled[m]
        sns.heatmap(
            scaled.astype(float),
            ax=ax,
            annot=means.map(_short).to_numpy(),
            fmt="",
            annot_kws={"fontsize": 5},
            cmap="viridis",
            cbar=False,
            vmin=0,
            vmax=1,
        )
        ax.set_title(str(name))
        ax.grid(False)
        ax.set_xticklabels([m.replace("_", " ") for m in measures], rotation=45, ha="right")
        ax.set_ylabel("")
        ax.set_xlabel("")
    fig.tight_layout()
    return fig


def measure_scatter(
    rows: Any,
    x: str,
    ys: Sequence[str],
    *,
    hue: str = "kind",
    hue_order: Sequence[Any] | None = None,
    row: str = "network",
) -> plt.Figure:
    """A grid of scatter plots: one row of panels per value of ``row`` (measures of
    different networks are never mixed), one panel per measure in ``ys`` against ``x``,
    one point per table row, a colour per ``hue``; rows missing either value are left out
    of that panel (an empty panel says the measure does not apply)."""
    frame = as_frame(rows, [x, hue, row, *ys])
    hues = list(hue_order) if hue_order is not None else sorted(set(frame[hue]), key=str)
    hues += sorted(set(frame[hue]) - set(hues), key=str)
    colors = dict(zip(hues, sns.color_palette("tab20", n_colors=max(1, len(hues)))))
    groups = list(dict.fromkeys(frame[row]))
    apply_style()
    fig, axes = plt.subplots(
        len(groups), len(ys), figsize=(FULL_WIDTH, 2.2 * len(groups)), squeeze=False
    )
    for line, group in zip(axes, groups):
        sub = frame[frame[row] == group]
        for ax, y in zip(line, ys):
            values = sub[[x, y]].apply(pd.to_numeric, errors="coerce")
            for h in hues:
                part = values[(sub[hue] == h).to_numpy()].dropna()
                if len(part):
                    ax.scatter(part[x], part[y], s=12, color=colors[h], label=str(h))
            if values.dropna().empty:
                ax.text(
                    0.5, 0.5, "does not apply", ha="center", va="center", transform=ax.transAxes
                )
                ax.set_xticks([])
                ax.set_yticks([])
            ax.set_xlabel(x.replace("_", " "))
            ax.set_ylabel(y.replace("_", " "))
        line[0].set_title(str(group), loc="left")
    handles, names = [], []
    for ax in axes.flat:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            if name not in names:
                handles.append(handle)
                names.append(name)
    if handles:
        fig.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), title=hue)
    fig.tight_layout()
    return fig


def correlation_heatmap(rows: Any, measures: Sequence[str], *, title: str = "") -> plt.Figure:
    """Spearman's rho between every pair of ``measures`` (rows from
    :func:`landscape.analysis.correlation.rank_correlations`) in the lower triangle,
    annotated with rho; a star marks a confidence interval that excludes zero."""
    frame = as_frame(rows, ["measure_a", "measure_b", "rho", "low", "high"])
    n = len(measures)
    values = np.full((n, n), np.nan)
    notes = np.full((n, n), "", dtype=object)
    index = {m: i for i, m in enumerate(measures)}
    for r in frame.itertuples():
        if r.measure_a in index and r.measure_b in index:
            i, j = sorted((index[r.measure_a], index[r.measure_b]), reverse=True)
            values[i, j] = r.rho
            low, high = float(r.low), float(r.high)
            sure = not (math.isnan(low) or math.isnan(high)) and (low > 0 or high < 0)
            notes[i, j] = "" if math.isnan(float(r.rho)) else f"{r.rho:.2f}" + ("*" if sure else "")
    names = [m.replace("_", " ") for m in measures]
    fig, (ax,) = new_figure(width=FULL_WIDTH * 0.8, height=FULL_WIDTH * 0.65)
    sns.heatmap(
        pd.DataFrame(values, index=names, columns=names),
        ax=ax,
        annot=notes,
        fmt="",
        annot_kws={"fontsize": 5},
        cmap="vlag",
        vmin=-1,
        vmax=1,
        square=True,
        mask=np.triu(np.ones((n, n), dtype=bool)),
        cbar_kws={"label": "Spearman's rho"},
    )
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.grid(False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _short(value: Any) -> str:
    """A number in at most about four characters of precision for a heatmap cell."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    if math.isnan(v):
        return ""
    return f"{v:.3g}" if v == 0 or 0.01 <= abs(v) < 1000 else f"{v:.1e}"
