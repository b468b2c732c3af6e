"""Figures of ensembles: reliability diagrams, disagreement heatmaps, prediction embeddings
and accuracy against training cost.

Each function takes tidy rows (a list of dicts or a DataFrame) or a small matrix, as
:mod:`landscape.analysis.diversity` gives them, and returns a Figure; none computes more
than a grouped mean of what it is given. A method keeps its colour across figures when the
same ``hue_order`` is passed to each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from landscape.errors import LandscapeError
from landscape.plot.curves import _legend_outside, _panel_figure, as_frame
from landscape.plot.style import COLUMN_WIDTH, FULL_WIDTH, new_figure


def reliability_diagram(rows: Any, *, hue_order: Sequence[Any] | None = None) -> plt.Figure:
    """Accuracy against confidence per bin, one panel per method (Guo et al. 2017, Fig. 1).

    Bars span each bin ``(lower, upper]`` up to its accuracy; a dot marks the bin's mean
    confidence, and the dashed diagonal is perfect calibration. A panel's title gives its
    ECE, ``sum count * |accuracy - confidence| / sum count`` over its rows.

    Args:
        rows: :func:`landscape.analysis.reliability_rows` rows with a ``method`` column
            (columns method, lower, upper, confidence, accuracy, count). Rows of one method
            and bin from several replicates are pooled, weighted by their counts.
        hue_order: methods in the order of their colours.
    """
    columns = ["method", "lower", "upper", "confidence", "accuracy", "count"]
    frame = _frame(rows, columns, columns[1:])
    if (frame["count"] <= 0).any():
        raise LandscapeError("reliability rows need count > 0; reliability_rows gives only those")
    frame = frame.assign(
        conf_sum=frame["confidence"] * frame["count"], acc_sum=frame["accuracy"] * frame["count"]
    )
    panels, fig, axes = _panel_figure(frame, "method")
    colors = _colors(panels, hue_order)
    for ax, name in zip(axes, panels):
        sums = frame[frame["method"] == name].groupby(["lower", "upper"], sort=True)
        sums = sums[["conf_sum", "acc_sum", "count"]].sum().reset_index()
        accuracy, confidence = sums["acc_sum"] / sums["count"], sums["conf_sum"] / sums["count"]
        ax.bar(
            sums["lower"],
            accuracy,
            width=sums["upper"] - sums["lower"],
            align="edge",
            color=colors[name],
            edgecolor="white",
            linewidth=0.5,
        )
        centres = (sums["lower"] + sums["upper"]) / 2
        ax.plot(centres, confidence, "o", color="0.2", markersize=2.5, label="mean confidence")
        ax.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls="--")
        ece = (sums["acc_sum"] - sums["conf_sum"]).abs().sum() / sums["count"].sum()
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", title=f"{name}\nECE {ece:.1%}")
    axes[0].set_ylabel("accuracy")
    fig.tight_layout()
    return fig


def disagreement_heatmap(
    matrix: Any, labels: Sequence[Any], *, title: str = "disagreement", fmt: str = ".2f"
) -> plt.Figure:
    """An ``(M, M)`` matrix between members (disagreement, KL, mask distance), annotated.

    Args:
        matrix: ``(M, M)`` numbers, e.g. :func:`landscape.analysis.pairwise_disagreement`;
            entry ``[a, b]`` is drawn in row ``a``, column ``b``.
        labels: the ``M`` members' names, in the matrix's order.
        title: what the numbers are (the colour bar's label).
        fmt: the format of the annotations.
    """
    values = _matrix(matrix)
    names = None
    if isinstance(labels, Sequence) and not isinstance(labels, str):
        names = [str(label) for label in labels]
    if names is None or len(names) != len(values):
        got = f"{len(names)} names" if names is not None else repr(labels)
        raise LandscapeError(
            f"labels must be a list naming each of the {len(values)} members of the matrix, "
            f"got {got}"
        )
    width = min(FULL_WIDTH, max(COLUMN_WIDTH, 0.45 * len(values) + 1.2))
    fig, (ax,) = new_figure(width=width, height=0.85 * width)
    sns.heatmap(
        pd.DataFrame(values, index=names, columns=names),
        ax=ax,
        annot=True,
        fmt=fmt,
        annot_kws={"fontsize": 6},
        cmap="viridis",
        square=True,
        cbar_kws={"label": title},
    )
    ax.tick_params(axis="x", labelrotation=45)
    ax.tick_params(axis="y", labelrotation=0)
    fig.tight_layout()
    return fig


def prediction_embedding_plot(
    rows: Any,
    *,
    hue_order: Sequence[Any] | None = None,
    xlabel: str = "component 1",
    ylabel: str = "component 2",
) -> plt.Figure:
    """Members as points of an embedding of their predictions, one colour per method.

    Args:
        rows: one row per member with columns x, y (its coordinates, e.g. from
            :func:`landscape.analysis.prediction_embedding`), method and member.
        hue_order: methods in the order of their colours.
        xlabel: the first axis' name (``"PC 1"`` for PCA).
        ylabel: the second axis' name.
    """
    frame = _frame(rows, ["x", "y", "method", "member"], ["x", "y"])
    fig, (ax,) = new_figure(height=COLUMN_WIDTH * 0.8)
    methods = _order(frame["method"], hue_order)
    colors = _colors(methods, hue_order)
    for method in methods:
        part = frame[frame["method"] == method]
        ax.scatter(part["x"], part["y"], s=14, color=colors[method], label=str(method))
    ax.set(xlabel=xlabel, ylabel=ylabel)
    _legend_outside([ax], "method")
    fig.tight_layout()
    return fig


def accuracy_vs_flops(
    rows: Any,
    *,
    logx: bool = False,
    percent: bool = True,
    hue_order: Sequence[Any] | None = None,
    panel: str = "network",
) -> plt.Figure:
    """Accuracy against training cost, one colour per method, its name beside its mean.

    Args:
        rows: columns method, flops (training FLOPs relative to one dense run) and
            accuracy; several rows of a method (replicates, ensemble sizes) are several
            points, and the name goes beside their mean.
        logx: a log-scaled cost axis.
        percent: accuracy in percent.
        hue_order: methods in the order of their colours.
        panel: a column whose values get a panel each (e.g. the network), when rows have it.
    """
    frame = _frame(rows, ["method", "flops", "accuracy"], ["flops", "accuracy"])
    if logx and (frame["flops"] <= 0).any():
        raise LandscapeError("a log-scaled flops axis needs flops > 0; pass logx=False")
    scale = 100.0 if percent else 1.0
    if panel in frame.columns:
        panels, fig, axes = _panel_figure(frame, panel)
        parts = [(str(name), frame[frame[panel] == name]) for name in panels]
    else:
        fig, axes = new_figure()
        parts = [(None, frame)]
    methods = _order(frame["method"], hue_order)
    colors = _colors(methods, hue_order)
    for ax, (title, sub) in zip(axes, parts):
        for method in methods:
            part = sub[sub["method"] == method]
            if not len(part):
                continue
            ax.scatter(part["flops"], part["accuracy"] * scale, s=14, color=colors[method])
            ax.annotate(
                str(method),
                (part["flops"].mean(), part["accuracy"].mean() * scale),
                xytext=(4, 3),
                textcoords="offset points",
                fontsize=6,
                color=colors[method],
            )
        if logx:
            ax.set_xscale("log")
            costs = sorted(set(sub["flops"]))
            ax.set_xticks(costs, [f"{c:g}" for c in costs])
            ax.minorticks_off()
        ax.margins(x=0.15, y=0.1)  # room for the names
        ax.set_xlabel("training FLOPs (x one dense run)")
        if title is not None:
            ax.set_title(title)
    axes[0].set_ylabel("test accuracy" + (" (%)" if percent else ""))
    fig.tight_layout()
    return fig


def _frame(rows: Any, columns: Sequence[str], numeric: Sequence[str]) -> pd.DataFrame:
    """Rows as a DataFrame with ``columns``, of which ``numeric`` hold finite numbers."""
    frame = as_frame(rows, columns)
    odd = [c for c in numeric if not pd.api.types.is_numeric_dtype(frame[c])]
    odd += [c for c in numeric if c not in odd and not np.isfinite(frame[c]).all()]
    if odd:
        raise LandscapeError(
            f"column(s) {odd} must hold finite numbers; the rows look like another table's"
        )
    return frame


def _matrix(matrix: Any) -> np.ndarray:
    if torch.is_tensor(matrix):
        matrix = matrix.detach().cpu().numpy()
    try:
        values = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise LandscapeError(f"the matrix must hold numbers, got {type(matrix).__name__}") from None
    if values.ndim != 2 or values.shape[0] != values.shape[1] or values.size == 0:
        raise LandscapeError(
            f"the matrix must be square (M, M), one row and column per member; got shape "
            f"{values.shape}"
        )
    if not np.isfinite(values).all():
        raise LandscapeError("the matrix holds NaN or inf")
    return values


def _order(values: pd.Series, hue_order: Sequence[Any] | None) -> list[Any]:
    """``hue_order`` first, then the other values sorted as text (as ``scatter_by`` does)."""
    present = set(values)
    order = [h for h in hue_order if h in present] if hue_order is not None else []
    return order + sorted(present - set(order), key=str)


def _colors(values: Sequence[Any], hue_order: Sequence[Any] | None) -> dict[Any, Any]:
    """One colour per value: the palette position in ``hue_order`` when given, so a method
    keeps its colour in figures that show only some methods."""
    full = list(hue_order) if hue_order is not None else []
    full += [v for v in values if v not in full]
    palette = sns.color_palette(n_colors=max(1, len(full)))
    return {v: palette[full.index(v)] for v in values}
