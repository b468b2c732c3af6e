"""The atlas: rank correlations against scipy, its figures, and the study end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from landscape.analysis import rank_correlations, ranks, spearman
from landscape.errors import LandscapeError
from landscape.io import read_rows
from landscape.plot import correlation_heatmap, measure_heatmap, measure_scatter
from tests._studies import load_study


def _table(replicates: int = 4, per: int = 6, seed: int = 0) -> list[dict]:
    """A fabricated atlas: b rises with a (plus noise), c is noise, ties in d."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(replicates):
        for i in range(per):
            a = float(rng.normal())
            rows.append(
                {
                    "replicate": r,
                    "a": a,
                    "b": a + 0.5 * float(rng.normal()),
                    "c": float(rng.normal()),
                    "d": float(i % 3),
                }
            )
    return rows


def test_ranks_and_spearman_match_scipy_with_ties():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 5, 40).astype(float)  # many ties
    y = x + rng.normal(size=40)
    assert ranks(x) == pytest.approx(stats.rankdata(x))
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))  # a constant has no ranks to order


def test_rank_correlations_match_scipy_on_a_fabricated_table():
    rows = _table()
    rows[3]["c"] = None  # a missing value leaves that row out of c's pairs only
    rows[5]["b"] = float("nan")
    found = {(r["measure_a"], r["measure_b"]): r for r in rank_correlations(rows, list("abcd"))}
    assert list(found) == [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")]
    for (p, q), got in found.items():
        kept = [r for r in rows if _ok(r[p]) and _ok(r[q])]
        want = stats.spearmanr([r[p] for r in kept], [r[q] for r in kept]).statistic
        assert got["rho"] == pytest.approx(want, abs=1e-12)
        assert got["rows"] == len(kept) and got["replicates"] == 4
        assert got["low"] <= got["high"]
    assert found[("a", "b")]["rows"] == 23 and found[("a", "c")]["rows"] == 23
    # b follows a, so rho is large and its interval over replicates excludes zero
    assert found[("a", "b")]["rho"] > 0.7 and found[("a", "b")]["low"] > 0


def test_the_bootstrap_resamples_replicates():
    rows = _table(replicates=1)
    (one,) = rank_correlations(rows, ["a", "b"])
    assert math.isnan(one["low"]) and math.isnan(one["high"])  # one replicate: no interval
    two = _table(replicates=2, per=20)
    (pair,) = rank_correlations(two, ["a", "b"], resamples=500, seed=3)
    # with two replicates a draw is {0, 0}, {1, 1} or {0, 1}: the ends of the interval
    # are the two replicates' own correlations
    own = [
        spearman(
            [r["a"] for r in two if r["replicate"] == k],
            [r["b"] for r in two if r["replicate"] == k],
        )
        for k in (0, 1)
    ]
    assert pair["low"] == pytest.approx(min(own)) and pair["high"] == pytest.approx(max(own))
    again = rank_correlations(two, ["a", "b"], resamples=500, seed=3)
    assert again[0] == pair  # seeded


def test_rank_correlations_refuse_bad_input():
    rows = _table()
    with pytest.raises(LandscapeError, match="at least two"):
        rank_correlations(rows, ["a"])
    with pytest.raises(LandscapeError, match="strictly between"):
        rank_correlations(rows, ["a", "b"], level=1.0)
    with pytest.raises(LandscapeError, match="'seed' column"):
        rank_correlations(rows, ["a", "b"], replicate="seed")


def _ok(value) -> bool:
    return value is not None and math.isfinite(value)


def test_atlas_figures_draw_from_rows():
    rows = [
        {**r, "network": f"net{r['replicate'] % 2}", "kind": k, "label": k}
        for r, k in zip(_table(), ["x", "y", "z"] * 8)
    ]
    fig = measure_heatmap(rows, ["a", "b", "c"], panel="network", higher_is_better={"c": False})
    assert len(fig.axes) == 2
    fig = measure_scatter(rows, "a", ["b", "c"], hue="kind")
    assert len(fig.axes) == 4  # two networks x two measures
    fig = correlation_heatmap(rank_correlations(rows, ["a", "b", "c"]), ["a", "b", "c"])
    assert fig.axes
    with pytest.raises(LandscapeError, match="no column 'e'"):
        measure_heatmap(rows, ["a", "e"], panel="network")


@pytest.mark.slow
def test_atlas_ci_end_to_end_then_a_second_run_trains_nothing(tmp_path, capsys):
    study = load_study("atlas")
    runs, out = tmp_path / "runs", tmp_path / "out"
    argv = ["--scale", "ci", "--replicates", "1", "--runs", str(runs), "--out", str(out)]
    argv += ["--resamples", "50"]
    assert study.main(argv) == 0
    rows = read_rows(out / "atlas.csv")
    keys = [(r["dataset"], r["kind"], r["level"], r["replicate"]) for r in rows]
    assert len(keys) == len(set(keys))  # one row per kind x density x dataset x replicate
    expected = {("mnist1d", "dense", 0, 0), ("fashion-mnist", "dense", 0, 0)}
    expected |= {(d, k, 2, 0) for d in ("mnist1d", "fashion-mnist") for k in study.KINDS[1:]}
    assert set(keys) == expected
    for row in rows:
        for m in study.MEASURES:
            value = row[m]
            if study.applies(m, row):
                assert isinstance(value, float) and math.isfinite(value), (row["kind"], m)
            else:
                assert value != value or value == "", (row["kind"], m)
    dense = [r for r in rows if r["kind"] == "dense"]
    assert all(r["density"] == 1.0 and r["training_flops"] == 1.0 for r in dense)
    sparse = {r["kind"]: r["density"] for r in rows if r["dataset"] == "mnist1d"}
    assert all(0.55 < sparse[k] < 0.7 for k in study.KINDS[1:])  # matched: IMP level 2, 0.64
    assert {p.name for p in out.iterdir()} >= {
        "atlas.csv",
        "correlations.csv",
        "heatmap.png",
        "scatter.png",
        "correlations-mnist-1d.png",
        "correlations-fashion-mnist.png",
    }
    made = sorted(p.name for p in runs.iterdir())
    table = (out / "atlas.csv").read_text()
    capsys.readouterr()
    assert study.main(argv) == 0  # every run and measure exists: nothing trains
    assert sorted(p.name for p in runs.iterdir()) == made
    assert (out / "atlas.csv").read_text() == table
    assert "error barrier vs corruption_accuracy" in capsys.readouterr().out


def test_correlate_command_groups_and_writes_pairs(tmp_path, capsys):
    from landscape.cli import main
    from landscape.io import write_rows

    rows = [{**r, "network": f"n{i % 2}"} for i, r in enumerate(_table(per=10))]
    write_rows(tmp_path / "t.csv", rows)
    out = tmp_path / "pairs.csv"
    argv = ["correlate", str(tmp_path / "t.csv"), "--measures", "a,b", "--group", "network"]
    assert main([*argv, "--resamples", "100", "--out", str(out)]) == 0
    pairs = read_rows(out)
    assert [p["network"] for p in pairs] == ["n0", "n1"]
    for p in pairs:
        mine = [r for r in rows if r["network"] == p["network"]]
        want = stats.spearmanr([r["a"] for r in mine], [r["b"] for r in mine]).statistic
        assert p["rho"] == pytest.approx(want, abs=1e-9)
    assert "n0: a ~ b: rho" in capsys.readouterr().out
    assert main(["correlate", str(tmp_path / "t.csv"), "--measures", "a,zz"]) == 2
    assert "no column 'zz'" in capsys.readouterr().err


def test_gpu_configs_swap_the_model_of_the_sparse_lmc_protocol():
    study = load_study("atlas")
    for name, model in (("cifar10-resnet20", "resnet20"), ("cifar10-vgg16", "vgg16")):
        (net,) = study.networks(name)
        assert net.base.spec.model.name == model and net.dataset == "cifar10"
        assert net.corruption_limit is None  # the whole corrupted test split
        assert net.base.checked == (0, 4, 9) and net.base.distill.method == "idc"
    demo = study.networks("demo")
    assert [n.base.label for n in demo] == [
        "conv1d / MNIST-1D",
        "LeNet-300-100 / Fashion-MNIST",
    ]
