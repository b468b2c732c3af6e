"""Ensemble figures draw exactly the rows and matrices they are given."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb

from landscape.analysis import (
    expected_calibration_error,
    pairwise_disagreement,
    prediction_embedding,
    reliability_rows,
)
from landscape.errors import LandscapeError
from landscape.plot import (
    accuracy_vs_flops,
    disagreement_heatmap,
    prediction_embedding_plot,
    reliability_diagram,
    save_figure,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _probs(m: int = 3, n: int = 200, c: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(m, n, c, generator=g, dtype=torch.float64)
    return torch.softmax(logits, dim=2), torch.randint(0, c, (n,), generator=g)


def test_reliability_diagram_has_a_bar_per_bin_and_the_ece_in_its_title(tmp_path):
    probs, labels = _probs()
    rows = reliability_rows(probs[0], labels, method="dense")
    rows += reliability_rows(probs.mean(0), labels, method="ensemble")
    fig = reliability_diagram(rows)
    dense, ensemble = fig.axes
    assert dense.get_title() == f"dense\nECE {expected_calibration_error(probs[0], labels):.1%}"
    assert len(dense.patches) == sum(r["method"] == "dense" for r in rows)
    heights = sorted(p.get_height() for p in dense.patches)
    assert heights == pytest.approx(sorted(r["accuracy"] for r in rows if r["method"] == "dense"))
    diagonal = dense.get_lines()[-1]
    assert list(diagonal.get_xdata()) == [0, 1] and list(diagonal.get_ydata()) == [0, 1]
    assert ensemble.get_title().startswith("ensemble\nECE ")
    paths = save_figure(fig, tmp_path / "reliability")
    assert all(p.stat().st_size for p in paths)


def test_reliability_diagram_pools_replicates_by_count():
    rows = [
        {"method": "a", "lower": 0.6, "upper": 0.8, "confidence": 0.7, "accuracy": 1.0, "count": 1},
        {"method": "a", "lower": 0.6, "upper": 0.8, "confidence": 0.7, "accuracy": 0.5, "count": 3},
    ]
    (ax,) = reliability_diagram(rows).axes
    (bar,) = ax.patches
    assert bar.get_height() == pytest.approx((1.0 + 1.5) / 4)
    assert bar.get_x() == pytest.approx(0.6) and bar.get_width() == pytest.approx(0.2)
    assert ax.get_title() == "a\nECE 7.5%"  # |0.625 - 0.7|


def test_disagreement_heatmap_annotates_every_cell():
    probs, _ = _probs(m=3)
    matrix = pairwise_disagreement(probs)
    fig = disagreement_heatmap(matrix, ["a", "b", "c"])
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 9
    assert texts[1] == f"{matrix[0, 1].item():.2f}" and texts[0] == "0.00"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert fig.axes[1].get_ylabel() == "disagreement"  # the colour bar


def test_prediction_embedding_plot_gives_each_method_its_colour():
    probs, _ = _probs(m=5)
    coords = prediction_embedding(probs)
    methods = ["dense", "dense", "edst", "edst", "edst"]
    rows = [
        {"x": x, "y": y, "method": m, "member": i}
        for i, ((x, y), m) in enumerate(zip(coords, methods))
    ]
    order = ["edst", "dense", "imp"]
    fig = prediction_embedding_plot(rows, hue_order=order)
    ax = fig.axes[0]
    assert [len(c.get_offsets()) for c in ax.collections] == [3, 2]
    np.testing.assert_allclose(ax.collections[1].get_offsets(), coords[:2])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["edst", "dense"]
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    assert to_rgb(ax.collections[1].get_facecolor()[0]) == pytest.approx(to_rgb(palette[1]))


def test_accuracy_vs_flops_names_each_method_once():
    rows = [
        {"method": "dense", "flops": 1.0, "accuracy": 0.90},
        {"method": "ensemble", "flops": 3.0, "accuracy": 0.93},
        {"method": "edst", "flops": 0.6, "accuracy": 0.92},
        {"method": "edst", "flops": 0.6, "accuracy": 0.94},
    ]
    fig = accuracy_vs_flops(rows, logx=True)
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["dense", "edst", "ensemble"]
    edst = next(t for t in ax.texts if t.get_text() == "edst")
    assert edst.xy == pytest.approx((0.6, 93.0))
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "test accuracy (%)"
    assert sum(len(c.get_offsets()) for c in ax.collections) == 4


def test_accuracy_vs_flops_draws_a_panel_per_network():
    rows = [
        {"network": net, "method": m, "flops": f, "accuracy": a}
        for net in ("a", "b")
        for m, f, a in (("dense", 1.0, 0.9), ("edst", 0.5, 0.92))
    ]
    fig = accuracy_vs_flops(rows)
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    for ax in fig.axes:  # each panel names its methods at its own points
        assert sorted(t.get_text() for t in ax.texts) == ["dense", "edst"]
        assert sum(len(c.get_offsets()) for c in ax.collections) == 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: reliability_diagram([{"method": "a", "lower": 0.0}]), "upper"),
        (lambda: reliability_diagram([]), "empty"),
        (
            lambda: reliability_diagram(
                [
                    {
                        "method": "a",
                        "lower": 0,
                        "upper": 1,
                        "confidence": "x",
                        "accuracy": 1,
                        "count": 1,
                    }
                ]
            ),
            "finite numbers",
        ),
        (lambda: disagreement_heatmap(np.zeros((2, 3)), ["a", "b"]), r"square \(M, M\)"),
        (lambda: disagreement_heatmap(np.zeros((2, 2)), ["a"]), "each of the 2 members"),
        (lambda: disagreement_heatmap(np.full((2, 2), np.nan), ["a", "b"]), "NaN"),
        (lambda: disagreement_heatmap(np.zeros((2, 2)), "ab"), "a list naming each"),
        (lambda: prediction_embedding_plot([{"x": 0.0, "y": 1.0, "method": "a"}]), "member"),
        (lambda: accuracy_vs_flops("rows.csv"), "read_rows"),
        (
            lambda: accuracy_vs_flops([{"method": "a", "flops": 0.0, "accuracy": 0.9}], logx=True),
            "flops > 0",
        ),
    ],
)
def test_bad_rows_say_what_is_wrong(call, message):
    with pytest.raises(LandscapeError, match=message):
        call()
