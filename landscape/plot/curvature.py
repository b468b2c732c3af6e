"""Curvature figures: log-scale histograms of Hessian diagonals side by side, and Hessian
eigenvalue densities (stochastic Lanczos quadrature, as Ghorbani et al. 2019 draw them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from landscape.errors import LandscapeError
from landscape.plot.curves import _legend_outside, as_frame
from landscape.plot.style import COLUMN_WIDTH, FULL_WIDTH, new_figure

_SIGNS = {"positive": "$H_{ii} > 0$", "negative": "$H_{ii} < 0$"}


def diagonal_histograms(
    rows: Any, panel: str = "network", *, panel_order: Sequence[Any] | None = None
) -> plt.Figure:
    """Histograms of ``|H_ii|`` on a log axis, one panel per ``panel`` value (networks side
    by side share the x axis), positive and negative entries as two step outlines; the
    y axis is the fraction of the panel's unpruned entries per bin.

    Args:
        rows: :func:`landscape.analysis.hessian.diagonal_histogram` rows (columns sign, low,
            high, fraction) with a ``panel`` column; the open-ended rows (below the first
            edge, above the last) and the zeros are left out of the picture and counted in
            a note in the panel, beside the fraction of negative entries.
        panel: the column whose values get a panel each.
        panel_order: the panels' order (default: order of appearance).
    """
    frame = as_frame(rows, ["sign", "low", "high", "fraction", panel])
    panels = list(panel_order) if panel_order is not None else list(dict.fromkeys(frame[panel]))
    missing = [p for p in panels if p not in set(frame[panel])]
    if missing:
        raise LandscapeError(f"panel_order names {missing}, which the rows lack")
    fig, axes = new_figure(
        len(panels), width=min(FULL_WIDTH, COLUMN_WIDTH * len(panels)), sharex=True, sharey=True
    )
    colours = dict(zip(_SIGNS, sns.color_palette("colorblind", 2)))
    for ax, name in zip(axes, panels):
        sub = frame[frame[panel] == name]
        inner = sub[(sub["low"] > 0) & np.isfinite(sub["high"])]
        for sign, label in _SIGNS.items():
            part = inner[inner["sign"] == sign].sort_values("low")
            if part.empty:
                continue
            edges = np.append(part["low"].to_numpy(), part["high"].to_numpy()[-1])
            ax.stairs(part["fraction"].to_numpy(), edges, color=colours[sign], label=label)
        outside = sub[~sub.index.isin(inner.index)]["fraction"].sum()
        negative = sub[sub["sign"] == "negative"]["fraction"].sum()
        ax.set_xscale("log")
        ax.set_title(str(name))
        ax.text(
            0.03,
            0.97,
            f"{100 * negative:.1f}% negative\n{100 * outside:.1f}% off-axis",
            transform=ax.transAxes,
            va="top",
            fontsize="x-small",
        )
        ax.set_xlabel("$|H_{ii}|$")
    axes[0].set_ylabel("fraction of weights")
    _legend_outside(axes, "sign")
    fig.tight_layout()
    return fig


def eigenvalue_density(
    rows: Any, hue: str | None = "network", *, hue_order: Sequence[Any] | None = None
) -> plt.Figure:
    """The Hessian's eigenvalue density against the eigenvalue, log-scale density, a line
    per ``hue`` (:func:`landscape.analysis.hessian_spectrum` rows with ``hue`` added)."""
    columns = ["eigenvalue", "density"] + ([hue] if hue else [])
    frame = as_frame(rows, columns)
    if (frame["density"] < 0).any():
        raise LandscapeError("densities must be >= 0; the rows look like another table's")
    fig, (ax,) = new_figure()
    groups = [(None, frame)] if hue is None else []
    if hue is not None:
        order = list(hue_order) if hue_order is not None else list(dict.fromkeys(frame[hue]))
        groups = [(name, frame[frame[hue] == name]) for name in order]
    colours = sns.color_palette("colorblind", len(groups))
    floor = np.inf
    for colour, (name, sub) in zip(colours, groups):
        sub = sub.sort_values("eigenvalue")
        density = sub["density"].to_numpy()
        positive = density[density > 0]
        if len(positive):
            floor = min(floor, positive.max() * 1e-8)
        ax.plot(sub["eigenvalue"], density, color=colour, label=None if name is None else name)
    ax.set_yscale("log")
    if np.isfinite(floor):
        ax.set_ylim(bottom=floor)
    ax.set_xlabel("Hessian eigenvalue")
    ax.set_ylabel("density")
    if hue is not None:
        _legend_outside([ax], hue)
    fig.tight_layout()
    return fig
