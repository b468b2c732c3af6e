"""The landscape-geometry study end to end at its CI size (marked slow)."""

from __future__ import annotations

import pytest

from landscape.io import read_rows
from tests._studies import load_study


def _load():
    return load_study("geometry")


def test_networks_at_every_scale_branch_at_a_saved_step():
    study = _load()
    for scale, count in (("ci", 1), ("demo", 2), ("full", 3)):
        nets = study.networks(scale)
        assert len(nets) == count
        for net in nets:
            assert net.branch in net.spec.train.checkpoint_steps
            assert net.points >= 5 and len({n.short for n in nets}) == len(nets)


@pytest.mark.slow
def test_geometry_study_ci_scale(tmp_path, capsys):
    study = _load()
    out = tmp_path / "out"
    argv = ["--scale", "ci", "--runs", str(tmp_path / "runs"), "--out", str(out)]
    assert study.main(argv) == 0
    (net,) = study.networks("ci")
    plane = read_rows(out / "plane.csv")
    marks = {r["model"]: (r["x"], r["y"]) for r in read_rows(out / "marks.csv")}
    assert len(plane) == net.points**2 and len(marks) == 3
    assert marks["parent (noise 0)"] == (0.0, 0.0) and marks["noise 1"][1] == 0.0
    slice_ = read_rows(out / "slice.csv")
    assert len(slice_) == net.points**2
    centre = [r for r in slice_ if r["x"] == 0 and r["y"] == 0]
    assert len(centre) == 1 and centre[0]["loss"] <= max(r["loss"] for r in slice_)
    hessian = read_rows(out / "hessian.csv")
    assert {r["parameter"] for r in hessian} == {"fc1.weight", "fc1.bias", "out.weight", "out.bias"}
    histogram = read_rows(out / "hessian_histogram.csv")
    assert sum(r["fraction"] for r in histogram) == pytest.approx(1.0)
    assert read_rows(out / "spectrum.csv")
    line = read_rows(out / "alignment.csv")
    barrier = {}
    for flag in (True, False):
        errors = [
            r["error"] for r in sorted(line, key=lambda r: r["alpha"]) if r["aligned"] is flag
        ]
        barrier[flag] = max(errors) - (errors[0] + errors[-1]) / 2
    assert barrier[True] <= barrier[False]  # weight matching lowers the barrier
    figures = ("plane-mlp", "plane3d-mlp", "slice-mlp", "hessian_diagonal", "hessian_spectrum")
    for name in (*figures, "alignment"):
        assert (out / f"{name}.png").is_file() and (out / f"{name}.pdf").is_file()
    assert "MLP / MNIST-1D: plane loss" in capsys.readouterr().out
    assert study.main([*argv, "--plot-only"]) == 0
