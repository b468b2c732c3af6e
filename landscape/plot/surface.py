"""Loss-surface figures: a contour map and a 3-D surface of a 2-D grid, with named points
(the models of a plane) marked, and a 1-D slice as a curve."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from landscape.errors import LandscapeError
from landscape.plot.curves import as_frame
from landscape.plot.style import COLUMN_WIDTH, FULL_WIDTH, apply_style, new_figure

_LABELS = {"loss": "loss", "error": "error (%)"}


def _grid(rows: Any, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xs, ys, values[j, i])`` from :meth:`Surface.rows`-style rows (one per point)."""
    if metric not in _LABELS:
        raise LandscapeError(f"metric must be 'loss' or 'error', got {metric!r}")
    frame = as_frame(rows, ["x", "y", metric])
    if frame.duplicated(["x", "y"]).any():
        raise LandscapeError(
            "rows repeat grid points (x, y): pass the rows of one surface at a time"
        )
    xs, ys = np.sort(frame["x"].unique()), np.sort(frame["y"].unique())
    if len(xs) < 2 or len(ys) < 2 or len(frame) != len(xs) * len(ys):
        raise LandscapeError(
            f"a surface needs a full grid of at least 2 x 2 points; got {len(frame)} rows on "
            f"{len(xs)} x {len(ys)} coordinates"
        )
    table = frame.pivot(index="y", columns="x", values=metric).loc[ys, xs].to_numpy(float)
    if metric == "error":
        table = 100.0 * table
    return xs, ys, table


def surface_contour(
    rows: Any,
    metric: str = "loss",
    *,
    marks: dict[str, Any] | None = None,
    levels: int = 20,
    log: bool | None = None,
    title: str | None = None,
) -> plt.Figure:
    """Filled contours of ``metric`` over the grid, with ``marks`` (name -> (x, y)) drawn
    as labelled points.

    Args:
        rows: one surface's rows (columns x, y, loss, error), e.g. ``Surface.rows()``.
        metric: ``"loss"`` or ``"error"``.
        marks: points to draw (a plane's three models).
        levels: the number of contour levels.
        log: space the levels logarithmically (default: for the loss).
        title: the panel title.
    """
    xs, ys, z = _grid(rows, metric)
    log = metric == "loss" if log is None else log
    fig, (ax,) = new_figure(width=COLUMN_WIDTH, height=COLUMN_WIDTH * 0.85)
    filled = _contours(ax, xs, ys, z, "loss" if log else "linear", levels)
    fig.colorbar(filled, ax=ax, label=_LABELS[metric], format="%.3g")
    for name, point in (marks or {}).items():
        x, y = _point(name, point)
        ax.plot(x, y, "o", color="white", markeredgecolor="black", markersize=5)
        right = x > (xs[0] + xs[-1]) / 2  # labels point inwards, away from the edges
        ax.annotate(
            str(name),
            (x, y),
            textcoords="offset points",
            xytext=(-4 if right else 4, 4),
            ha="right" if right else "left",
            fontsize=7,
            color="w",
        )
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.grid(False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def surface_panels(
    rows: Any,
    panel: str,
    metric: str = "loss",
    *,
    marks: dict[Any, dict[str, Any]] | None = None,
    panel_order: Any = None,
    levels: int = 20,
    columns: int = 3,
) -> plt.Figure:
    """One contour map per ``panel`` value, ``columns`` to a row, each on its own colour
    scale (logarithmic for the loss) with its own colour bar, since planes of different
    networks differ in extent and height; ``marks[panel value]`` drawn on each."""
    frame = as_frame(rows, ["x", "y", metric, panel])
    names = list(panel_order) if panel_order is not None else list(dict.fromkeys(frame[panel]))
    missing = [n for n in names if n not in set(frame[panel])]
    if missing:
        raise LandscapeError(f"panel_order names {missing}, which the rows lack")
    columns = max(1, min(int(columns), len(names)))
    nrows = -(-len(names) // columns)
    apply_style()
    fig, grid = plt.subplots(
        nrows,
        columns,
        figsize=(min(FULL_WIDTH, 2.3 * columns), 2.0 * nrows),
        squeeze=False,
    )
    axes = list(grid.ravel())
    for ax, name in zip(axes, names):
        xs, ys, z = _grid(frame[frame[panel] == name], metric)
        filled = _contours(ax, xs, ys, z, metric, levels)
        fig.colorbar(filled, ax=ax, format="%.3g")
        for label, point in (marks or {}).get(name, {}).items():
            x, y = _point(label, point)
            ax.plot(x, y, "o", color="white", markeredgecolor="black", markersize=4)
        ax.set_title(str(name))
        ax.grid(False)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    fig.supxlabel("x", fontsize=8)
    fig.supylabel("y", fontsize=8)
    fig.suptitle(_LABELS[metric], fontsize=8)
    fig.tight_layout()
    return fig


def _contours(ax, xs, ys, z, metric: str, levels: int):
    """Filled contours with thin white lines, log-spaced for a positive loss."""
    if metric == "loss" and (z > 0).all() and z.max() > z.min():
        from matplotlib.colors import LogNorm

        bounds = np.geomspace(z.min(), z.max() * (1 + 1e-9), levels)
        filled = ax.contourf(xs, ys, z, levels=bounds, norm=LogNorm(), cmap="viridis")
    else:
        filled = ax.contourf(xs, ys, z, levels=levels, cmap="viridis")
    ax.contour(xs, ys, z, levels=filled.levels, colors="white", linewidths=0.3, alpha=0.6)
    return filled


def surface_3d(
    rows: Any,
    metric: str = "loss",
    *,
    marks: dict[str, Any] | None = None,
    log: bool | None = None,
    title: str | None = None,
) -> plt.Figure:
    """The grid as a 3-D surface (``log10`` of the loss by default), ``marks`` drawn on it."""
    xs, ys, z = _grid(rows, metric)
    log = metric == "loss" if log is None else log
    if log and not (z > 0).all():
        raise LandscapeError("a log scale needs positive values; pass log=False")
    height = np.log10(z) if log else z
    fig, _ = new_figure(width=COLUMN_WIDTH, height=COLUMN_WIDTH * 0.9)
    fig.clf()
    ax = fig.add_subplot(projection="3d")
    gx, gy = np.meshgrid(xs, ys)
    ax.plot_surface(gx, gy, height, cmap="viridis", linewidth=0, antialiased=True, alpha=0.9)
    for name, point in (marks or {}).items():
        x, y = _point(name, point)
        i, j = np.abs(xs - x).argmin(), np.abs(ys - y).argmin()
        ax.scatter([x], [y], [height[j, i]], color="black", s=12, depthshade=False)
        ax.text(x, y, height[j, i], f" {name}", fontsize=7)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel(("log10 " if log else "") + _LABELS[metric])
    if title:
        ax.set_title(title)
    return fig


def slice_curve(rows: Any, metric: str = "loss", *, log: bool | None = None) -> plt.Figure:
    """A 1-D slice: ``metric`` against ``x`` (rows with columns x, loss, error)."""
    if metric not in _LABELS:
        raise LandscapeError(f"metric must be 'loss' or 'error', got {metric!r}")
    frame = as_frame(rows, ["x", metric]).sort_values("x")
    log = metric == "loss" if log is None else log
    fig, (ax,) = new_figure()
    scale = 100.0 if metric == "error" else 1.0
    ax.plot(frame["x"], scale * frame[metric])
    if log and (frame[metric] > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("x")
    ax.set_ylabel(_LABELS[metric])
    fig.tight_layout()
    return fig


def _point(name: Any, point: Any) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in point)
    except (TypeError, ValueError):
        raise LandscapeError(f"mark {name!r} must be an (x, y) pair, got {point!r}") from None
    return x, y
