"""Radius-accuracy curves draw exactly the means and bands of the rows they are given."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb
from torch import nn

from landscape.analysis import spectral_rows
from landscape.data import DatasetInfo, Split
from landscape.errors import LandscapeError
from landscape.plot import radius_accuracy_curves, save_figure


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _rows(methods=("dense", "rigl"), replicates=3):
    """Accuracy falls with the radius for high-pass and rises for low-pass; RigL +5 points."""
    return [
        {
            "kind": kind,
            "radius": r,
            "method": m,
            "replicate": s,
            "accuracy": (0.1 + 0.08 * r if kind == "low" else 0.9 - 0.08 * r)
            + (0.05 if m == "rigl" else 0.0)
            + 0.01 * s,
        }
        for kind in ("high", "low")  # high first: the low-pass panel must still come first
        for m in methods
        for r in (0, 4, 8)
        for s in range(replicates)
    ]


def test_a_panel_per_kind_and_a_line_per_method_with_mean_and_std(tmp_path):
    fig = radius_accuracy_curves(_rows())
    low, high = fig.axes
    assert (low.get_title(), high.get_title()) == ("low-pass", "high-pass")
    assert low.get_ylabel() == "test accuracy (%)"
    assert low.get_xlabel() == "filter radius (frequency bins)"
    for ax in (low, high):
        assert [line.get_label() for line in ax.get_lines()] == ["dense", "rigl"]
        assert len(ax.collections) == 2  # one band per method
    dense = low.get_lines()[0]
    assert list(dense.get_xdata()) == [0, 4, 8]
    # mean over replicates 0, 1, 2 adds 0.01; in percent
    np.testing.assert_allclose(dense.get_ydata(), [11.0, 43.0, 75.0])
    band = low.collections[0].get_paths()[0].vertices[:, 1]
    assert band.max() == pytest.approx(76.0) and band.min() == pytest.approx(10.0)  # +- 1 std
    np.testing.assert_allclose(high.get_lines()[1].get_ydata(), [96.0, 64.0, 32.0])
    legend = high.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["dense", "rigl"]
    assert low.get_legend() is None
    paths = save_figure(fig, tmp_path / "radius")
    assert all(p.stat().st_size for p in paths)


def test_single_rows_draw_no_band_and_a_method_keeps_its_colour():
    rows = [r for r in _rows(replicates=1) if not (r["kind"] == "high" and r["method"] == "dense")]
    for r in rows:
        del r["replicate"]
    fig = radius_accuracy_curves(rows, percent=False)
    low, high = fig.axes
    assert not low.collections and not high.collections
    (rigl,) = high.get_lines()
    np.testing.assert_allclose(rigl.get_ydata(), [0.95, 0.63, 0.31])
    assert to_rgb(rigl.get_color()) == to_rgb(low.get_lines()[1].get_color())


def test_rows_from_spectral_rows_plot_with_one_line():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 4))
    g = torch.Generator().manual_seed(0)
    info = DatasetInfo("raw", 4, (3, 4, 4), (0.5,) * 3, (0.25,) * 3, ("a", "b", "c", "d"))
    split = Split(
        x=torch.rand(24, 3, 4, 4, generator=g), y=torch.randint(0, 4, (24,), generator=g), info=info
    )
    rows = spectral_rows(model, split, [0, 1, 2, 3])
    fig = radius_accuracy_curves(rows, hue=None)
    assert [ax.get_title() for ax in fig.axes] == ["low-pass", "high-pass"]
    (line,) = fig.axes[0].get_lines()
    np.testing.assert_allclose(line.get_ydata(), [100 * r["accuracy"] for r in rows[:4]])
    (single,) = radius_accuracy_curves(rows[:4], hue=None, panel=None).axes
    assert single.get_title() == ""


@pytest.mark.parametrize(
    "rows, kwargs, message",
    [
        ([{"kind": "low", "radius": 1, "accuracy": 0.5}], {}, "lack the column(s) ['method']"),
        ([], {}, "no rows to plot"),
        ("rows.csv", {}, "plots take rows"),
        ([{"kind": "low", "radius": "r1", "accuracy": 0.5}], {"hue": None}, "['radius']"),
        ([{"kind": "low", "radius": 1, "accuracy": 50.0}], {"hue": None}, "divide percentages"),
        ([{"kind": "low", "radius": -1, "accuracy": 0.5}], {"hue": None}, "radii must be >= 0"),
        ([{"kind": "low", "radius": 1, "accuracy": float("nan")}], {"hue": None}, "finite"),
        (
            [{"kind": "low", "radius": 1, "accuracy": 0.5}] * 2,
            {"hue": None},
            "add a 'replicate' column",
        ),
        (
            [{"kind": "low", "radius": 1, "accuracy": 0.5, "replicate": 0}] * 2,
            {"hue": None},
            "keep one row per replicate",
        ),
    ],
)
def test_bad_rows_raise(rows, kwargs, message):
    with pytest.raises(LandscapeError) as info:
        radius_accuracy_curves(rows, **kwargs)
    assert message in str(info.value)
