"""The DST-vs-dense corruption robustness study end to end at its CI size (marked slow)."""

from __future__ import annotations

import pytest

from landscape.io import read_rows
from tests._studies import load_study


def _load():
    return load_study("dst_corruption")


def test_summary_counts_the_methods_more_robust_than_dense():
    study = _load()
    rows = [
        {
            "network": "n",
            "method": m,
            "density": d,
            "replicate": 0,
            "robustness_accuracy": r,
            "clean_accuracy": 0.9,
        }
        for m, d, r in (
            ("dense", 1.0, 0.80),
            ("set", 0.9, 0.81),
            ("rigl", 0.9, 0.79),
            ("set", 0.5, 0.82),
            ("rigl", 0.5, 0.805),
        )
    ]
    lines = study.summarize(rows)
    assert lines[0] == "n: dense robustness 80.00% (clean 90.00%)"
    assert lines[1] == (
        "  sparsity 10%: robustness vs dense (points) set +1.00, rigl -1.00; "
        "1 of 2 DST methods more robust than dense"
    )
    assert lines[2].startswith("  sparsity 50%: robustness vs dense (points) set +2.00, rigl +0.50")


def test_configs_and_methods_build():
    study = _load()
    for name in study.CONFIGS:
        (net,) = study.networks(name)
        assert net.densities == (0.9, 0.8, 0.7, 0.6, 0.5)
        assert net.spec.data.augment == ("crop", "flip")
    (net,) = study.networks("ci")
    kinds = {m: study.controllers(net, m, 0.5) for m in study.METHODS}
    assert kinds["dense"] == []
    assert kinds["mest_g"][0].growth == "gradient" and kinds["mest_r"][0].growth == "random"
    assert kinds["granet_r"][0].init_density == 1.0 and kinds["rigl"][0].density == 0.5


def test_the_network_densities_and_steps_can_be_chosen():
    study = _load()
    (net,) = study.networks("demo", "convnet", (0.9,), 1500)
    assert net.spec.model.name == "convnet" and dict(net.spec.model.kwargs)["norm"] == "batch"
    assert net.densities == (0.9,) and net.spec.train.steps == 1500
    assert net.label == "ConvNet-3 / Fashion-MNIST" and net.test_limit == 2000
    (lenet,) = study.networks("full")
    assert lenet.spec.model.name == "lenet300-100" and len(lenet.densities) == 5
    for args, message in (
        (("ci", "resnet"), "unknown network"),
        (("ci", "convnet", (1.0,)), "strictly between 0 and 1"),
        (("ci", "convnet", None, 0), "steps must be at least 1"),
    ):
        with pytest.raises(study.LandscapeError, match=message):
            study.networks(*args)
    assert study.main(["--network", "convnet", "--densities", "1.5", "--runs", "x"]) == 2


@pytest.mark.slow
def test_dst_corruption_study_ci_scale(tmp_path, capsys):
    study = _load()
    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = ["--scale", "ci", "--runs", str(runs), "--out", str(out)]
    assert study.main(argv) == 0
    (net,) = study.networks("ci")
    accuracy = read_rows(out / "accuracy.csv")
    expected = {("dense", 1.0)} | {
        (m, d) for m in study.METHODS if m != "dense" for d in net.densities
    }
    assert {(r["method"], r["density"]) for r in accuracy} == expected
    for r in accuracy:
        assert 0.6 < r["clean_accuracy"] <= 1.0  # learned Fashion-MNIST (chance 0.1)
        assert r["robustness_accuracy"] < r["clean_accuracy"] + 0.02  # corruptions hurt
    cells = read_rows(out / "corruptions.csv")
    assert len(cells) == len(accuracy) * 19 * 5
    assert all(r["count"] == net.test_limit for r in cells)
    for name in ("robustness_vs_sparsity", "difference_heatmap", "accuracy_vs_severity", "samples"):
        assert (out / f"{name}.pdf").is_file() and (out / f"{name}.png").is_file()
    assert "of 6 DST methods more robust than dense" in capsys.readouterr().out
    made = sorted(p.name for p in runs.iterdir())
    assert study.main(argv) == 0  # a second call reuses every run and the corrupted set
    assert sorted(p.name for p in runs.iterdir()) == made
