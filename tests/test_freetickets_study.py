"""The FreeTickets study end to end at its CI size (marked slow), and its summary."""

from __future__ import annotations

import pytest

from landscape.io import read_rows
from landscape.train import EDST, RigL, edst_spec
from tests._studies import load_study


def _load():
    return load_study("freetickets")


def test_summary_compares_the_sparse_ensembles_with_one_dense_network():
    study = _load()
    common = {"network": "n", "replicate": 0, "nll": 0.3, "ece": 0.02}
    metrics = [
        {**common, "method": m, "member": "ensemble", "accuracy": a, "relative_flops": f}
        for m, a, f in (("dense", 0.90, 1.0), ("rigl-ens", 0.92, 0.9), ("edst-ens", 0.89, 0.5))
    ]
    # the single-dense reference is the mean of every dense member: (0.90 + 0.86 + 0.88) / 3
    metrics += [
        {**common, "method": "dense-ens", "member": i, "accuracy": a, "relative_flops": 3.0}
        for i, a in enumerate((0.90, 0.86, 0.88))
    ]
    pairs = [{"network": "n", "method": "rigl-ens", "disagreement": 0.1, "error_barrier": 0.3}]
    lines = study.summarize(metrics, pairs)
    assert lines[0] == "n:"
    assert lines[2].endswith("training FLOPs 0.90x, disagreement 10.0%, ticket error barrier 30.0%")
    assert lines[4] == "  one dense network: 88.00% (mean of every dense member, 3 networks)"
    assert lines[5] == (
        "  rigl-ens beats one dense network (92.00% vs 88.00%) at 0.90x its training FLOPs"
    )
    assert lines[6].startswith("  edst-ens beats one dense network (89.00% vs 88.00%)")


def test_configs_follow_the_papers_schedule():
    study = _load()
    for name in study.CONFIGS:
        (net,) = study.networks(name)
        per_epoch = 391
        assert net.spec.model.name == "wrn28-10" and net.density == 0.2
        assert net.spec.train.steps == 250 * per_epoch and net.update_every == 1000
        assert (net.explore_steps, net.phase_steps) == (150 * per_epoch, 100 * per_epoch)
        steps = net.spec.train.steps
        assert net.spec.train.milestones == (steps // 2, 3 * steps // 4)
        # the controllers accept the runs they would steer (checked before any training)
        edst = EDST(0.2, explore_steps=net.explore_steps, phase_steps=net.phase_steps)
        edst.check(
            edst_spec(net.spec, 3, explore_steps=net.explore_steps, phase_steps=net.phase_steps)
        )
        assert edst.ticket_steps()[-1] == 450 * per_epoch
        RigL(0.2, update_every=net.update_every).check(net.spec)
    (net,) = study.networks("ci")
    assert net.explore_steps + net.members * net.phase_steps == round(1.8 * net.spec.train.steps)


@pytest.mark.slow
def test_freetickets_study_ci_scale(tmp_path, capsys):
    study = _load()
    out = tmp_path / "out"
    runs = tmp_path / "runs"
    argv = ["--scale", "ci", "--runs", str(runs), "--out", str(out)]
    assert study.main(argv) == 0
    (net,) = study.networks("ci")
    metrics = read_rows(out / "metrics.csv")
    ensembles = {r["method"]: r for r in metrics if r["member"] == "ensemble"}
    assert set(ensembles) == set(study.METHODS)
    members = {
        m: sum(1 for r in metrics if r["method"] == m and r["member"] != "ensemble")
        for m in study.METHODS
    }
    assert members == {"dense": 1, "dense-ens": 3, "set-ens": 3, "rigl-ens": 3, "edst-ens": 3}
    flops = {m: r["relative_flops"] for m, r in ensembles.items()}
    assert flops["dense"] == pytest.approx(1.0) and flops["dense-ens"] == pytest.approx(3.0)
    assert flops["set-ens"] < flops["rigl-ens"] < 1.5  # RigL pays for its dense gradients
    assert flops["edst-ens"] < flops["set-ens"]  # one sparse run of 1.8 T steps
    for m in ("set-ens", "rigl-ens", "edst-ens"):
        assert ensembles[m]["density"] == pytest.approx(0.2, abs=0.01)
    pairs = read_rows(out / "pairs.csv")
    assert len(pairs) == 4 * 3  # three pairs in each of the four ensembles of 3
    assert all(0 < r["jaccard"] <= 1 for r in pairs if r["method"] != "dense-ens")
    assert len(read_rows(out / "embedding.csv")) == 12
    assert len(read_rows(out / "disagreement.csv")) == 12 * 12
    for name in (
        "accuracy_vs_flops",
        "disagreement",
        "embedding",
        "reliability",
        "ticket_barriers",
    ):
        assert (out / f"{name}.pdf").is_file() and (out / f"{name}.png").is_file()
    assert "conv1d-100 / MNIST-1D:" in capsys.readouterr().out
    made = sorted(p.name for p in runs.iterdir())
    assert len(made) == 3 + 3 + 3 + 1  # dense x3, SET x3, RigL x3, one EDST run
    assert study.main(argv) == 0  # a second call reuses every run
    assert sorted(p.name for p in runs.iterdir()) == made
