"""Figures draw exactly the means and bands of the rows they are given."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from landscape.errors import LandscapeError
from landscape.plot import band_plot, barrier_vs_rewind, interpolation_curves, save_figure


def _rows():
    return [
        {
            "network": net,
            "rewind_step": k,
            "replicate": r,
            "error_barrier": 0.01 * k + 0.002 * r + (0.05 if net == "b" else 0.0),
        }
        for net in ("a", "b")
        for k in (0, 2, 8)
        for r in range(3)
    ]


def test_band_plot_draws_mean_and_std():
    fig, ax = plt.subplots()
    band_plot(ax, _rows()[:9], "rewind_step", "error_barrier", scale=100.0)
    (line,) = ax.get_lines()
    assert list(line.get_xdata()) == [0, 2, 8]
    np.testing.assert_allclose(line.get_ydata(), [0.2, 2.2, 8.2])  # means of r = 0, 1, 2
    band = ax.collections[0].get_paths()[0].vertices
    # the band spans mean +- sample std (0.2 percentage points here)
    assert band[:, 1].max() == pytest.approx(8.4) and band[:, 1].min() == pytest.approx(0.0)
    plt.close(fig)


def test_stability_figures_have_a_panel_per_network(tmp_path):
    fig = barrier_vs_rewind(_rows())
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), [5.2, 7.2, 13.2])
    paths = save_figure(fig, tmp_path / "sub" / "barriers")
    assert [p.suffix for p in paths] == [".pdf", ".png"] and all(p.stat().st_size for p in paths)
    curves = [
        {"network": "a", "rewind_step": k, "replicate": 0, "alpha": a, "error": a * k}
        for k in (0, 4)
        for a in (0.0, 0.5, 1.0)
    ]
    fig = interpolation_curves(curves)
    assert len(fig.axes[0].get_lines()) == 2
    plt.close("all")


def test_missing_columns_are_named():
    with pytest.raises(LandscapeError, match="error_barrier"):
        barrier_vs_rewind([{"network": "a", "rewind_step": 0}])
