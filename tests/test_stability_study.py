"""The stability study end to end at its CI size (marked slow; `make test` runs it)."""

from __future__ import annotations

import pytest

from landscape.io import read_rows
from tests._studies import load_study


def _load():
    return load_study("stability")


def test_summary_names_the_first_stable_step():
    study = _load()
    rows = [
        {"network": "n", "rewind_step": k, "replicate": r, "error_barrier": b}
        for k, b in ((0, 0.10), (5, 0.03), (20, 0.01), (40, 0.005))
        for r in (0, 1)
    ]
    (line,) = study.summarize(rows)
    assert line.startswith("n: stable from k=20;")
    assert "k=0: 10.00±0.00%" in line


def test_configs_build_the_papers_settings():
    study = _load()
    assert set(study.CONFIGS) == {"cifar10-resnet20", "cifar10-vgg16"}
    for name in study.CONFIGS:
        (net,) = study.networks(name)
        t = net.spec.train
        assert (t.steps, t.milestones, t.batch_size, t.weight_decay) == (
            62560,
            (31280, 46920),
            128,
            1e-4,
        )
        assert net.spec.data.name == "cifar10" and net.spec.data.augment == ("crop", "flip")
        assert {500, 1000} <= set(net.ladder) and net.points == 30
        assert net.spec.model.name == name.split("-")[1]


@pytest.mark.slow
def test_stability_study_ci_scale(tmp_path, capsys):
    study = _load()
    out = tmp_path / "out"
    assert (
        study.main(
            [
                "--scale",
                "ci",
                "--replicates",
                "2",
                "--runs",
                str(tmp_path / "runs"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = read_rows(out / "barriers.csv")
    ladder = study.networks("ci")[0].ladder
    assert sorted((r["rewind_step"], r["replicate"]) for r in rows) == sorted(
        (k, r) for k in ladder for r in (0, 1)
    )
    curves = read_rows(out / "interpolation.csv")
    assert len(curves) == 21 * len(rows)
    for r in rows:
        assert r["error_a"] < 0.75 and r["error_b"] < 0.75  # well below chance (0.9)
        # the table's barriers are those of its own curves, recomputed here by hand
        curve = sorted(
            (c["alpha"], c["error"], c["loss"])
            for c in curves
            if (c["rewind_step"], c["replicate"]) == (r["rewind_step"], r["replicate"])
        )
        alphas, errors, losses = zip(*curve)
        assert alphas[0] == 0.0 and alphas[-1] == 1.0
        assert (errors[0], errors[-1]) == (r["error_a"], r["error_b"])
        assert r["error_barrier"] == pytest.approx(max(errors) - (errors[0] + errors[-1]) / 2)
        assert r["loss_barrier"] == pytest.approx(max(losses) - (losses[0] + losses[-1]) / 2)
        assert r["error_barrier"] >= 0.0 and r["loss_barrier"] >= 0.0
    for name in ("barrier_vs_rewind", "interpolation"):
        assert (out / f"{name}.pdf").is_file() and (out / f"{name}.png").is_file()
    printed = capsys.readouterr().out
    assert "conv1d / MNIST-1D:" in printed and str(out / "barriers.csv") in printed
