"""Figures of corruption robustness."""

from __future__ import annotations

import numpy as np
import pytest

from landscape.errors import LandscapeError
from landscape.plot.robustness import (
    accuracy_vs_severity,
    difference_heatmap,
    sample_grid,
    with_reference_line,
)


def test_difference_heatmap_is_centred_at_zero_and_annotated():
    rows = [
        {"corruption": c, "method": m, "difference": v}
        for c, m, v in (
            ("fog", "set", 1.0),
            ("fog", "rigl", -2.0),
            ("snow", "set", 0.5),
            ("snow", "rigl", 0.25),
            ("snow", "rigl", 0.75),
        )
    ]
    fig = difference_heatmap(rows, column_order=["rigl", "set"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["rigl", "set"]
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == sorted(["-2.0", "1.0", "0.5", "0.5"])  # snow/rigl: mean of 0.25 and 0.75
    mesh = ax.collections[0]
    assert mesh.norm.vmin == -2.0 and mesh.norm.vmax == 2.0


def test_accuracy_vs_severity_draws_a_curve_per_method():
    rows = [
        {"network": "n", "method": m, "severity": s, "accuracy": 0.9 - 0.05 * s, "replicate": 0}
        for m in ("dense", "set")
        for s in range(1, 6)
    ]
    fig = accuracy_vs_severity(rows, hue_order=["dense", "set"])
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and ax.get_ylabel() == "accuracy (%)"
    with_reference_line(fig, {"n": 0.5})
    assert ax.lines[-1].get_ydata()[0] == pytest.approx(50.0)


def test_sample_grid_shows_every_corruption_and_severity():
    images = np.zeros((3, 5, 8, 8, 1), dtype=np.uint8)
    fig = sample_grid(images, ["a", "b", "c"])
    assert len(fig.axes) == 15 and fig.axes[0].get_title() == "a"
    with pytest.raises(LandscapeError, match="one name per corruption"):
        sample_grid(images, ["a"])
