"""Figures of corruption robustness: differences to a reference per corruption, accuracy per
severity, and a grid of sample corrupted images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from landscape.errors import LandscapeError
from landscape.plot.curves import _legend_outside, _panel_figure, as_frame, band_plot
from landscape.plot.style import FULL_WIDTH, new_figure


def difference_heatmap(
    rows: Any,
    *,
    value: str = "difference",
    index: str = "corruption",
    columns: str = "method",
    column_order: Sequence[Any] | None = None,
    title: str = "accuracy - dense (points)",
) -> plt.Figure:
    """A ``index x columns`` heatmap of ``value`` (mean over repeated rows), annotated, on a
    diverging scale centred at zero: e.g. each method's accuracy minus the dense network's,
    per corruption, in percentage points."""
    frame = as_frame(rows, [index, columns, value])
    table = frame.pivot_table(
        index=index, columns=columns, values=value, aggfunc="mean", sort=False
    )
    if column_order is not None:
        table = table[[c for c in column_order if c in table.columns]]
    limit = float(np.nanmax(np.abs(table.to_numpy()))) or 1.0
    height = min(9.0, 0.22 * len(table) + 1.2)
    fig, (ax,) = new_figure(width=min(FULL_WIDTH, 0.55 * len(table.columns) + 2.2), height=height)
    sns.heatmap(
        table,
        ax=ax,
        annot=True,
        fmt=".1f",
        annot_kws={"fontsize": 5},
        cmap="RdBu",
        vmin=-limit,
        vmax=limit,
        cbar_kws={"label": title},
    )
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    return fig


def accuracy_vs_severity(
    rows: Any,
    *,
    metric: str = "accuracy",
    hue: str = "method",
    panel: str = "network",
    hue_order: Sequence[Any] | None = None,
) -> plt.Figure:
    """Accuracy against corruption severity (averaged over corruptions), one curve per
    ``hue``, a panel per ``panel``; mean +- std over the rows of one severity."""
    frame = as_frame(rows, ["severity", metric, hue, panel])
    panels, fig, axes = _panel_figure(frame, panel)
    for ax, name in zip(axes, panels):
        band_plot(
            ax,
            frame[frame[panel] == name],
            "severity",
            metric,
            hue,
            scale=100.0,
            hue_order=hue_order,
        )
        ax.set_xticks(sorted(set(frame["severity"])))
        ax.set_title(str(name))
        ax.set_xlabel("severity")
    axes[0].set_ylabel(metric.replace("_", " ") + " (%)")
    _legend_outside(axes, hue)
    fig.tight_layout()
    return fig


def sample_grid(images: Any, names: Sequence[str]) -> plt.Figure:
    """Every corruption (a column) at every severity (a row) of one image.

    Args:
        images: uint8 ``(K, S, H, W, C)``: ``K`` corruptions at ``S`` severities, ``C`` 1 or 3.
        names: the ``K`` corruptions' names.
    """
    images = np.asarray(images)
    if images.ndim != 5 or images.shape[-1] not in (1, 3) or len(names) != images.shape[0]:
        raise LandscapeError(
            f"sample_grid needs uint8 (corruptions, severities, H, W, C) images and one name "
            f"per corruption, got shape {images.shape} and {len(names)} names"
        )
    k, s = images.shape[:2]
    fig, axes = plt.subplots(s, k, figsize=(min(FULL_WIDTH * 2, 0.55 * k), 0.6 * s + 0.4))
    axes = np.asarray(axes).reshape(s, k)
    for j, name in enumerate(names):
        for i in range(s):
            picture = images[j, i]
            ax = axes[i, j]
            if picture.shape[-1] == 1:
                ax.imshow(picture[..., 0], cmap="gray", vmin=0, vmax=255)
            else:
                ax.imshow(picture)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(str(i + 1), fontsize=6)
        axes[0, j].set_title(str(name).replace("_", "\n"), fontsize=5)
    fig.tight_layout(pad=0.2)
    return fig


def with_reference_line(fig: plt.Figure, values: dict[Any, float], scale: float = 100.0) -> None:
    """Draw a dashed horizontal line at ``values[panel title]`` in each panel (e.g. the dense
    network's accuracy beside curves of sparse methods)."""
    for ax in fig.axes:
        title = ax.get_title()
        if title in values:
            ax.axhline(scale * values[title], color="0.3", lw=0.8, ls="--", label="dense")
