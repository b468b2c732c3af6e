"""Curves with a mean +- std band over replicates, and the stability figures built on them.

Every function takes tidy rows (a list of dicts or a DataFrame) and returns a Figure; none
computes anything beyond grouping and averaging what it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from landscape.errors import LandscapeError
from landscape.plot.style import COLUMN_WIDTH, FULL_WIDTH, new_figure


def as_frame(rows: Any, columns: Sequence[str]) -> pd.DataFrame:
    """Rows as a DataFrame; :class:`LandscapeError` if a needed column is missing."""
    if isinstance(rows, pd.DataFrame):
        frame = rows
    elif isinstance(rows, (str, bytes)) or not hasattr(rows, "__iter__"):
        raise LandscapeError(
            f"plots take rows (a list of dicts or a DataFrame), got {type(rows).__name__}; "
            f"read a CSV with landscape.io.read_rows"
        )
    else:
        rows = list(rows)
        if not all(isinstance(r, dict) for r in rows):
            raise LandscapeError("plots take rows as dicts (column name -> value)")
        frame = pd.DataFrame(rows)
    if frame.empty:
        raise LandscapeError("no rows to plot: the table is empty")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise LandscapeError(f"rows lack the column(s) {missing}; they have {list(frame.columns)}")
    if frame.empty:
        raise LandscapeError("no rows to plot")
    numeric = [c for c in columns if c in _NUMERIC and not pd.api.types.is_numeric_dtype(frame[c])]
    if numeric:
        raise LandscapeError(
            f"column(s) {numeric} must hold numbers; the rows look like another table's"
        )
    return frame


_NUMERIC = {
    "alpha",
    "rewind_step",
    "error",
    "loss",
    "error_barrier",
    "loss_barrier",
    "error_barrier_linear",
    "loss_barrier_linear",
    "density",
    "test_accuracy",
    "examples_seen",
}


def band_plot(
    ax: plt.Axes,
    rows: Any,
    x: str,
    y: str,
    hue: str | None = None,
    *,
    scale: float = 1.0,
    marker: str | None = "o",
    hue_order: Sequence[Any] | None = None,
) -> plt.Axes:
    """Mean of ``y`` against ``x`` per ``hue``, with a band of +- one std over replicates.

    Replicates are the rows that share ``x`` and ``hue``; the std is the sample std
    (ddof=1), and no band is drawn where there is a single replicate.
    """
    frame = as_frame(rows, [x, y] + ([hue] if hue else []))
    groups = [(None, frame)] if hue is None else list(frame.groupby(hue, sort=True))
    colors = sns.color_palette(n_colors=max(1, len(groups)))
    if hue_order is not None:  # a hue keeps its colour in every panel and figure
        order = {h: i for i, h in enumerate(hue_order)}
        groups.sort(key=lambda g: order.get(g[0], len(order)))
        palette = sns.color_palette(n_colors=len(order) + 1)
        colors = [palette[order.get(label, len(order))] for label, _ in groups]
    for color, (label, group) in zip(colors, groups):
        stats = group.groupby(x)[y].agg(["mean", "std", "count"]).sort_index()
        mean = stats["mean"] * scale
        std = stats["std"].fillna(0.0) * scale
        ax.plot(
            stats.index,
            mean,
            marker=marker,
            markersize=3,
            color=color,
            label=None if label is None else str(label),
        )
        if (stats["count"] > 1).any():
            ax.fill_between(stats.index, mean - std, mean + std, color=color, alpha=0.25, lw=0)
    if hue is not None:
        ax.legend(title=hue.replace("_", " "))
    return ax


def barrier_vs_rewind(
    rows: Any,
    *,
    barrier: str = "error_barrier",
    panel: str = "network",
    percent: bool = True,
) -> plt.Figure:
    """Frankle et al. 2020 Fig. 3 style: barrier against the step children branch from.

    Args:
        rows: one row per (network, rewind_step, replicate) with a ``barrier`` column.
        barrier: which barrier column to draw.
        panel: one panel per value of this column.
        percent: draw error barriers in percent.
    """
    frame = as_frame(rows, ["rewind_step", barrier, panel])
    panels, fig, axes = _panel_figure(frame, panel)
    scale = 100.0 if percent and "error" in barrier else 1.0
    for ax, name in zip(axes, panels):
        sub = frame[frame[panel] == name]
        band_plot(ax, sub, "rewind_step", barrier, scale=scale)
        steps = sorted(set(sub["rewind_step"]))
        ax.set_xscale("symlog", linthresh=max(1, _smallest_positive(steps)))
        ax.set_xticks(steps, [str(k) for k in steps])
        ax.minorticks_off()
        if len(steps) > 4:  # long ladders crowd the log-spaced upper end
            ax.tick_params(axis="x", labelrotation=45)
        ax.set_title(str(name))
        ax.set_xlabel("rewind step k")
        ax.axhline(2.0 if scale == 100.0 else 0.0, color="0.5", lw=0.8, ls="--")
    axes[0].set_ylabel(barrier.replace("_", " ") + (" (%)" if scale == 100.0 else ""))
    fig.tight_layout()
    return fig


def interpolation_curves(
    rows: Any,
    *,
    metric: str = "error",
    hue: str = "rewind_step",
    panel: str = "network",
    percent: bool = True,
    hue_order: Sequence[Any] | None = None,
    legend_outside: bool = False,
) -> plt.Figure:
    """Error (or loss) along the line between two children, one curve per ``hue`` value
    (one legend right of the panels with ``legend_outside``)."""
    frame = as_frame(rows, ["alpha", metric, hue, panel])
    panels, fig, axes = _panel_figure(frame, panel)
    scale = 100.0 if percent and metric == "error" else 1.0
    for ax, name in zip(axes, panels):
        sub = frame[frame[panel] == name]
        band_plot(ax, sub, "alpha", metric, hue, scale=scale, marker=None, hue_order=hue_order)
        ax.set_title(str(name))
        ax.set_xlabel("interpolation alpha")
    axes[0].set_ylabel(f"test {metric}" + (" (%)" if scale == 100.0 else ""))
    if legend_outside:
        _legend_outside(axes, hue)
    fig.tight_layout()
    return fig


def metric_vs_density(
    rows: Any,
    metric: str = "error_barrier",
    *,
    hue: str = "arm",
    panel: str = "network",
    percent: bool = True,
    hue_order: Sequence[Any] | None = None,
) -> plt.Figure:
    """A pruning study's figure: ``metric`` against density (log scale, sparser to the
    right), one curve per ``hue`` (the arm), one panel per ``panel``; mean +- std."""
    frame = as_frame(rows, ["density", metric, hue, panel])
    panels, fig, axes = _panel_figure(frame, panel)
    scale = 100.0 if percent and ("error" in metric or "accuracy" in metric) else 1.0
    for ax, name in zip(axes, panels):
        band_plot(
            ax,
            frame[frame[panel] == name],
            "density",
            metric,
            hue,
            scale=scale,
            hue_order=hue_order,
        )
        ax.set_xscale("log")
        ax.invert_xaxis()
        densities = sorted(set(frame[frame[panel] == name]["density"]), reverse=True)
        ax.set_xticks(densities, [f"{d:.2g}" for d in densities])
        ax.minorticks_off()
        ax.set_title(str(name))
        ax.set_xlabel("density (fraction of weights kept)")
        if metric == "error_barrier" and scale == 100.0:
            ax.axhline(2.0, color="0.5", lw=0.8, ls="--")
    label = metric.replace("_", " ") + (" (%)" if scale == 100.0 else "")
    axes[0].set_ylabel(label)
    _legend_outside(axes, hue)
    fig.tight_layout()
    return fig


def scatter_by(
    rows: Any,
    x: str,
    y: str,
    *,
    hue: str = "arm",
    panel: str = "network",
    logx: bool = True,
    hue_order: Sequence[Any] | None = None,
) -> plt.Figure:
    """One point per row of ``y`` against ``x``, coloured by ``hue``, a panel per ``panel``
    (e.g. accuracy against the training examples a mask search saw)."""
    frame = as_frame(rows, [x, y, hue, panel])
    panels, fig, axes = _panel_figure(frame, panel)
    hues = list(hue_order) if hue_order is not None else sorted(set(frame[hue]), key=str)
    hues += sorted(set(frame[hue]) - set(hues), key=str)
    colors = dict(zip(hues, sns.color_palette(n_colors=max(1, len(hues)))))
    for ax, name in zip(axes, panels):
        sub = frame[frame[panel] == name]
        for h in hues:
            part = sub[sub[hue] == h]
            if len(part):
                ax.scatter(part[x], part[y], s=10, color=colors[h], label=str(h))
        if logx:
            ax.set_xscale("symlog", linthresh=max(1.0, _smallest_positive(sub[x])))
        ax.set_title(str(name))
        ax.set_xlabel(x.replace("_", " "))
    axes[0].set_ylabel(y.replace("_", " "))
    _legend_outside(axes, hue)
    fig.tight_layout()
    return fig


def _panel_figure(frame: pd.DataFrame, panel: str):
    """One panel per value of ``panel`` (in order of appearance), a column wide each."""
    panels = list(dict.fromkeys(frame[panel]))
    fig, axes = new_figure(len(panels), width=min(FULL_WIDTH, COLUMN_WIDTH * len(panels)))
    return panels, fig, axes


def _legend_outside(axes: Sequence[plt.Axes], title: str) -> None:
    """One legend, right of the last panel, instead of one over each panel's data."""
    for ax in axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    axes[-1].legend(
        title=title.replace("_", " "),
        fontsize="x-small",
        title_fontsize="x-small",
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
    )


def _smallest_positive(values: Any) -> float:
    positive = [v for v in values if v > 0]
    return float(min(positive)) if positive else 1.0
