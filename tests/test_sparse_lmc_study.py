"""The sparse-subnetwork stability study end to end at its CI size (marked slow)."""

from __future__ import annotations

import pytest

from landscape.io import read_rows
from tests._studies import load_study


def _load():
    return load_study("sparse_lmc")


def test_summary_names_the_most_stable_sparse_arm():
    study = _load()
    rows = [
        {
            "network": "n",
            "level": 2,
            "arm": arm,
            "replicate": r,
            "error_barrier": b,
            "test_accuracy": 0.8,
            "density": 0.64,
        }
        for arm, b in (("dense", 0.01), ("imp-k0", 0.08), ("distilled", 0.02), ("random", 0.2))
        for r in (0, 1)
    ]
    common = {"network": "n", "level": 2}
    levels = [
        {**common, "arm": "imp-k0", "examples_seen": 30000, "distinct_examples": 4000},
        {
            **common,
            "arm": "distilled",
            "examples_seen": 2000,
            "distinct_examples": 100,
            "distill_examples": 64000,
        },
        {
            **common,
            "level": 1,
            "arm": "distilled",
            "examples_seen": 1000,
            "distinct_examples": 100,
            "distill_examples": 64000,
        },
    ]
    lines = study.summarize(rows, levels)
    assert lines[0].startswith("n level 2 (density 0.640): dense 1.00±0.00%")
    assert "distilled 2.00±0.00% (acc 80.0%)" in lines[0]
    assert lines[1].strip() == "most stable sparse arm: distilled (as the paper claims)"
    assert lines[2] == (
        "n: the mask search to level 2 processed 30,000 real examples (4,000 distinct) with "
        "IMP and 2,000 (100 distinct) on the distilled set: 15x fewer processed, 40x fewer "
        "distinct; making the set read 64,000 real examples"
    )


def test_configs_build_their_specs():
    study = _load()
    for name in study.CONFIGS:
        (net,) = study.networks(name)
        assert net.levels == 9 and net.checked == (0, 4, 9) and net.distill.method == "idc"
        assert net.spec.data.name == "cifar10"


@pytest.mark.slow
def test_sparse_lmc_study_ci_scale(tmp_path, capsys):
    study = _load()
    out = tmp_path / "out"
    argv = ["--scale", "ci", "--replicates", "1", "--runs", str(tmp_path / "runs")]
    assert study.main([*argv, "--out", str(out)]) == 0
    (net,) = study.networks("ci")
    levels = read_rows(out / "levels.csv")
    arms = {(r["arm"], r["level"]) for r in levels}
    k = net.rewind
    expected = {("dense", 0)}
    expected |= {(a, lv) for a in ("imp-k0", f"imp-k{k}", "distilled") for lv in (1, 2)}
    expected |= {("hybrid", 2), ("random", 2)}
    assert arms == expected
    for r in levels:  # density 0.8^L to rounding, for every pruned arm
        assert r["density"] == pytest.approx(0.8 ** r["level"], abs=2e-3)
        assert r["test_error"] < 0.8  # learned something (chance is 0.9)
    distilled = [r for r in levels if r["arm"] == "distilled"]
    real = [r for r in levels if r["arm"] == "imp-k0"]
    # the search cost is counted, not assumed: steps x batch of the runs before the level
    steps = net.spec.train.steps * net.spec.train.batch_size
    assert sorted(r["examples_seen"] for r in real) == [steps, 2 * steps]
    find = net.find_train.steps * net.find_train.batch_size
    assert sorted(r["examples_seen"] for r in distilled) == [find, 2 * find]
    barriers = read_rows(out / "barriers.csv")
    assert {(r["arm"], r["level"]) for r in barriers} == {
        (a, lv) for a, lv in expected if lv in net.checked
    }
    curves = read_rows(out / "interpolation.csv")
    assert len(curves) == net.points * len(barriers)
    for r in barriers:
        curve = sorted(
            (c["alpha"], c["error"])
            for c in curves
            if (c["arm"], c["level"]) == (r["arm"], r["level"])
        )
        errors = [e for _, e in curve]
        assert r["error_barrier"] == pytest.approx(max(errors) - (errors[0] + errors[-1]) / 2)
    for name in ("barrier_vs_density", "accuracy_vs_density", "interpolation"):
        assert (out / f"{name}.pdf").is_file() and (out / f"{name}.png").is_file()
    assert (out / "examples_vs_accuracy.png").is_file()
    # the Hessian of every checked arm's subnetwork, on the whole training split
    hessian = read_rows(out / "hessian.csv")
    assert {(r["arm"], r["level"]) for r in hessian} == {(r["arm"], r["level"]) for r in barriers}
    train = study.get_dataset("mnist1d", split="train")
    for r in hessian:
        assert r["method"] == "backpack" and r["examples"] == len(train)
        assert r["top_eigenvalue"] > 0 and 0 <= r["fraction_negative"] < 0.5
        assert r["trace"] > 0  # near a minimum of the training loss the curvature is positive
    histogram = read_rows(out / "hessian_histogram.csv")
    deepest = max(net.checked)
    shown = {r["arm"] for r in barriers if r["level"] == deepest} | {"dense"}
    assert {r["arm"] for r in histogram} == shown
    for arm in shown:  # every unpruned entry counted once
        total = sum(r["fraction"] for r in histogram if r["arm"] == arm)
        assert total == pytest.approx(1.0)
    spectrum = read_rows(out / "spectrum.csv")
    assert {r["arm"] for r in spectrum} == shown
    # the plane through each shown arm's three models, each marked at its coordinates
    surface = read_rows(out / "surface.csv")
    marks = read_rows(out / "surface_marks.csv")
    assert {r["arm"] for r in surface} == shown and len(surface) == 5 * 5 * len(shown)
    assert {(r["arm"], r["model"]) for r in marks} == {
        (a, m) for a in shown for m in ("noise 0", "noise 1", "noise 2")
    }
    for name in ("hessian_diagonal", "hessian_spectrum", "surface"):
        assert (out / f"{name}.png").is_file()
    printed = capsys.readouterr().out
    assert "conv1d / MNIST-1D level 2" in printed
    assert "conv1d / MNIST-1D: the mask search to level 2 processed 30,000 real" in printed
    # a second call trains nothing and only re-plots
    assert study.main([*argv, "--out", str(out), "--plot-only"]) == 0


def test_the_distillation_can_be_chosen_on_the_command_line():
    import argparse

    study = _load()
    (net,) = study.networks("ci")
    same = argparse.Namespace(distill_method=None, distill_iterations=None)
    assert study._distill_choice(net.distill, same) == net.distill
    fewer = argparse.Namespace(distill_method="dm", distill_iterations=7)
    assert study._distill_choice(net.distill, fewer) == net.distill.replace(iterations=7)
    idc = study._distill_choice(
        net.distill, argparse.Namespace(distill_method="idc", distill_iterations=None)
    )
    # another method takes its own published defaults: DM's knobs do not carry over
    assert idc == study.DistillSpec(data=net.distill.data, method="idc", ipc=10)
    assert idc.iterations != net.distill.iterations


@pytest.mark.slow
def test_plot_only_draws_each_network_with_its_own_arms(tmp_path, capsys):
    """Two networks whose rewinding arms differ (imp-k12, imp-k10): each figure panel set is
    the network's own (the demo gallery's tables, redrawn)."""
    import shutil
    from pathlib import Path

    study = _load()
    gallery = Path(__file__).resolve().parents[1] / "figures" / "sparse_lmc-demo"
    for table in gallery.glob("*.csv"):
        shutil.copy(table, tmp_path / table.name)
    assert study.main(["--scale", "demo", "--out", str(tmp_path), "--plot-only"]) == 0
    for stem in ("hessian_diagonal", "hessian_spectrum", "surface"):
        for data in ("mnist-1d", "fashion-mnist"):
            assert (tmp_path / f"{stem}-{data}.png").is_file()
    assert "LeNet-300-100 / Fashion-MNIST level 4 Hessian" in capsys.readouterr().out
