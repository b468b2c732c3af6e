"""Loss-surface figures from surface rows."""

from __future__ import annotations

import pytest

from landscape.errors import LandscapeError
from landscape.plot import save_figure
from landscape.plot.surface import slice_curve, surface_3d, surface_contour, surface_panels


def _rows(nx=4, ny=3):
    return [
        {"x": float(i), "y": float(j), "loss": 1.0 + (i - 1) ** 2 + j, "error": 0.1 * (i + j)}
        for j in range(ny)
        for i in range(nx)
    ]


def test_contour_and_3d_draw_the_grid_with_marks(tmp_path):
    marks = {"a": (0.0, 0.0), "b": (3.0, 0.0), "c": (1.0, 2.0)}
    fig = surface_contour(_rows(), marks=marks, title="plane")
    ax = fig.axes[0]
    assert ax.get_title() == "plane" and [t.get_text() for t in ax.texts] == ["a", "b", "c"]
    assert len(save_figure(fig, tmp_path / "c")) == 2
    fig = surface_contour(_rows(), "error", levels=5)
    assert fig.axes[1].get_ylabel() == "error (%)"
    fig = surface_3d(_rows(), marks=marks)
    assert fig.axes[0].name == "3d" and fig.axes[0].get_zlabel() == "log10 loss"
    both = [dict(r, arm="dense") for r in _rows()] + [
        dict(r, arm="imp", loss=2 * r["loss"]) for r in _rows()
    ]
    fig = surface_panels(both, "arm", marks={"imp": marks}, panel_order=["imp", "dense"])
    assert [ax.get_title() for ax in fig.axes[:2]] == ["imp", "dense"]
    assert len(fig.axes[0].lines) == 3 and len(fig.axes[1].lines) == 0
    with pytest.raises(LandscapeError, match="lack"):
        surface_panels(both, "arm", panel_order=["random"])
    fig = slice_curve([{"x": x / 2, "loss": 1 + x, "error": 0.1} for x in range(5)])
    assert fig.axes[0].get_yscale() == "log"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: surface_contour(_rows()[:-1]), "full grid"),
        (lambda: surface_contour(_rows() + _rows()), "repeat grid points"),
        (lambda: surface_contour(_rows(), "accuracy"), "metric must be"),
        (lambda: surface_contour(_rows(), marks={"a": 3}), "an \\(x, y\\) pair"),
        (lambda: surface_contour([{"x": 0, "y": 0, "loss": 1}]), "full grid"),
        (lambda: surface_3d([dict(r, loss=0.0) for r in _rows()]), "positive values"),
        (lambda: surface_contour([{"x": 0, "loss": 1}]), "lack the column"),
    ],
)
def test_bad_rows_get_one_clear_error(call, message):
    with pytest.raises(LandscapeError, match=message):
        call()
