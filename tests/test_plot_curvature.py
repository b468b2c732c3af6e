"""Curvature figures from Hessian-diagonal histogram rows and spectrum rows."""

from __future__ import annotations

import math

import pytest
import torch

from landscape.analysis.hessian import HessianDiagonal, diagonal_histogram
from landscape.errors import LandscapeError
from landscape.plot import diagonal_histograms, eigenvalue_density, save_figure


def _result(values, mask=None):
    values = torch.tensor(values, dtype=torch.float64)
    masks = None if mask is None else {"w": torch.tensor(mask)}
    return HessianDiagonal({"w": values}, "exact", 10, masks=masks)


def test_histogram_rows_count_every_unpruned_entry_once():
    result = _result([1e-3, -2e-3, 0.0, 5e-2, 1.0, -1e-5, 7.0], [1, 1, 1, 1, 1, 1, 0])
    rows = diagonal_histogram(result, [1e-4, 1e-2, 1e0], network="a")
    assert sum(r["count"] for r in rows) == 6  # the masked 7.0 is left out
    assert math.isclose(sum(r["fraction"] for r in rows), 1.0)
    by = {(r["sign"], r["low"], r["high"]): r["count"] for r in rows}
    assert by[("zero", 0.0, 0.0)] == 1
    assert by[("positive", 1e-4, 1e-2)] == 1 and by[("positive", 1e-2, 1.0)] == 2
    assert by[("negative", 1e-4, 1e-2)] == 1 and by[("negative", 0.0, 1e-4)] == 1
    assert by[("positive", 1.0, math.inf)] == 0 and all(r["network"] == "a" for r in rows)
    default = diagonal_histogram(result, bins=5)
    assert sum(r["count"] for r in default) == 6
    assert sum(r["count"] for r in default if r["low"] == 0 or math.isinf(r["high"])) == 1
    with pytest.raises(LandscapeError, match="increasing positive"):
        diagonal_histogram(result, [1.0, 0.1])
    with pytest.raises(LandscapeError, match="every diagonal entry is zero"):
        diagonal_histogram(_result([0.0, 0.0]))


def test_histograms_side_by_side_and_the_density(tmp_path):
    a = diagonal_histogram(_result([1e-3, -2e-3, 5e-2, 1.0]), [1e-4, 1e-2, 1e0, 1e1], network="a")
    b = diagonal_histogram(_result([2e-3, 3e-2, 0.2]), [1e-4, 1e-2, 1e0, 1e1], network="b")
    fig = diagonal_histograms(a + b, panel_order=["b", "a"])
    assert [ax.get_title() for ax in fig.axes] == ["b", "a"]
    assert fig.axes[1].get_xscale() == "log"
    assert "25.0% negative" in fig.axes[1].texts[0].get_text()
    assert len(save_figure(fig, tmp_path / "h")) == 2
    with pytest.raises(LandscapeError, match="lack"):
        diagonal_histograms(a, panel_order=["c"])
    rows = [
        {"eigenvalue": x / 10, "density": math.exp(-x), "network": n}
        for n in "ab"
        for x in range(20)
    ]
    fig = eigenvalue_density(rows)
    assert len(fig.axes[0].lines) == 2 and fig.axes[0].get_yscale() == "log"
    with pytest.raises(LandscapeError, match="densities must be"):
        eigenvalue_density([{"eigenvalue": 0.0, "density": -1.0, "network": "a"}])
