"""Tests for landscape.analysis.robustness: per-cell rows, mean corruption error, (relative) mCE."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from landscape.analysis import (
    corruption_errors,
    corruption_rows,
    evaluate,
    mce,
    mean_corruption_accuracy,
    mean_corruption_error,
    relative_mce,
    summary_rows,
)
from landscape.data import BENCHMARK_CORRUPTIONS, CORRUPTIONS, load_corrupted
from landscape.errors import LandscapeError
from landscape.io import read_rows, write_rows


def table(errors: dict[str, list[float]]) -> list[dict]:
    """Rows ``{corruption, severity, error, accuracy}`` with severities counted from 1."""
    return [
        {"corruption": c, "severity": s, "error": e, "accuracy": 1 - e}
        for c, es in errors.items()
        for s, e in enumerate(es, start=1)
    ]


OURS = table({"gaussian_noise": [0.1, 0.2, 0.3], "fog": [0.1, 0.1, 0.3]})
BASE = table({"gaussian_noise": [0.5, 0.5, 0.5], "fog": [0.2, 0.3, 0.5]})
TWO = ["gaussian_noise", "fog"]


# ----------------------------------------------------------------------------- summaries


def test_hand_computed_mce_and_relative_mce():
    # CE: noise 0.6 / 1.5 = 40 %, fog 0.5 / 1.0 = 50 %
    assert corruption_errors(OURS, BASE, TWO) == pytest.approx({"gaussian_noise": 40, "fog": 50})
    assert mce(OURS, BASE, TWO) == pytest.approx(45.0)
    # relative: noise (0.6 - 3 * 0.05) / (1.5 - 3 * 0.1) = 37.5 %, fog 0.35 / 0.7 = 50 %
    assert relative_mce(OURS, BASE, 0.05, 0.1, TWO) == pytest.approx(43.75)
    assert mce(BASE, BASE, TWO) == pytest.approx(100.0)


def test_mean_corruption_accuracy_and_error():
    # errors 0.1 0.2 0.3 0.1 0.1 0.3: mean 1.1 / 6
    assert mean_corruption_accuracy(OURS) == pytest.approx(1 - 1.1 / 6)
    assert mean_corruption_error(OURS) == pytest.approx(100 * 1.1 / 6)
    assert mean_corruption_error(OURS, ["fog"]) == pytest.approx(100 * 0.5 / 3)
    accuracy_only = [{k: v for k, v in r.items() if k != "error"} for r in OURS]
    assert mean_corruption_error(accuracy_only) == pytest.approx(100 * 1.1 / 6)


def test_the_four_extra_corruptions_are_excluded_by_default():
    ours = table({c: [0.8 if c in CORRUPTIONS[15:] else 0.2] * 5 for c in CORRUPTIONS})
    base = table({c: [0.4] * 5 for c in CORRUPTIONS})
    assert mce(ours, base) == pytest.approx(50.0)  # 15 benchmark corruptions at 50 %
    assert mce(ours, base, CORRUPTIONS) == pytest.approx((15 * 50 + 4 * 200) / 19)
    assert list(corruption_errors(ours, base)) == list(BENCHMARK_CORRUPTIONS)


def test_only_the_baselines_cells_are_summed_and_csv_round_trips(tmp_path):
    extra = OURS + [{"corruption": "fog", "severity": 4, "error": 0.9, "accuracy": 0.1}]
    assert mce(extra, BASE, TWO) == pytest.approx(45.0)
    write_rows(tmp_path / "ours.csv", OURS)
    write_rows(tmp_path / "base.csv", BASE)
    back = mce(read_rows(tmp_path / "ours.csv"), read_rows(tmp_path / "base.csv"), TWO)
    assert back == pytest.approx(45.0)


def test_summary_rows_average_over_severities():
    rows = [dict(r, loss=2 * r["error"], count=10) for r in OURS]
    summary = summary_rows(rows)
    assert [r["corruption"] for r in summary] == ["gaussian_noise", "fog"]  # canonical order
    noise, fog = summary
    assert noise["accuracy"] == pytest.approx(0.8) and noise["error"] == pytest.approx(0.2)
    assert fog["loss"] == pytest.approx(2 * 0.5 / 3)
    assert (fog["severities"], fog["count"]) == (3, 30)


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: mce(OURS[:-1], BASE, TWO),
            r"rows lack 'fog' at severities \[3\], which the baseline has",
        ),
        (lambda: mce(OURS, BASE), "baseline_rows have no cells for 'shot_noise'"),
        (lambda: mce(OURS + OURS[:1], BASE, TWO), r"\('gaussian_noise', 1\) twice"),
        (lambda: relative_mce(OURS, BASE, 5.0, 10.0, TWO), "a fraction; divide percentages by 100"),
        (lambda: corruption_errors(OURS, BASE, TWO, clean_error=0.1), "both clean_error and"),
        (
            lambda: mce(OURS, table({"gaussian_noise": [0, 0, 0], "fog": [1, 1, 1]}), TWO),
            "summed error on 'gaussian_noise' is 0",
        ),
        (lambda: mce([], BASE, TWO), "rows are empty"),
        (lambda: mce([{"severity": 1, "error": 0.1}], BASE, TWO), "needs 'corruption', 'severity'"),
        (lambda: mce([{"corruption": "fog", "severity": 1}], BASE, TWO), "no error or accuracy"),
        (lambda: mean_corruption_error(OURS, ["snow"]), r"no cells for \['snow'\]"),
    ],
)
def test_refusals(call, match):
    with pytest.raises(LandscapeError, match=match):
        call()


def test_relative_mce_takes_eval_results():
    clean, base_clean = evaluate_result(0.05), evaluate_result(0.1)
    assert relative_mce(OURS, BASE, clean, base_clean, TWO) == pytest.approx(43.75)


def evaluate_result(error: float):
    from landscape.analysis import EvalResult

    return EvalResult(loss=1.0, error=error, count=100)


# ----------------------------------------------------------------------------- corruption_rows


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3))


def fabricated(corruption: str, severity: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A small data set per cell, noisier with severity."""
    gen = torch.Generator().manual_seed(10 * CORRUPTIONS.index(corruption) + severity)
    y = torch.randint(0, 3, (50,), generator=gen)
    x = torch.randn(50, 3, 4, 4, generator=gen) * severity + y.view(-1, 1, 1, 1)
    return x, y


def test_corruption_rows_equal_evaluate_per_cell():
    model = tiny_model().train()
    calls = []

    def data(c, s):
        calls.append((c, s))
        return fabricated(c, s)

    rows = corruption_rows(model, data, TWO, (1, 3, 5), batch_size=16)
    assert calls == [(c, s) for c in TWO for s in (1, 3, 5)]
    assert model.training  # left as found
    for row in rows:
        result = evaluate(model, fabricated(row["corruption"], row["severity"]))
        assert row["error"] == pytest.approx(result.error)
        assert row["loss"] == pytest.approx(result.loss)
        assert row["accuracy"] == pytest.approx(1 - result.error)
        assert row["count"] == 50
    cells = {(c, s): fabricated(c, s) for c in reversed(TWO) for s in (1, 3, 5)}
    by_mapping = corruption_rows(model, cells, severities=(1, 3, 5))  # canonical order
    assert [(r["corruption"], r["severity"]) for r in by_mapping] == [
        (c, s) for c in TWO for s in (1, 3, 5)
    ]
    assert [r["error"] for r in by_mapping] == pytest.approx([r["error"] for r in rows])


def test_corruption_rows_on_a_fabricated_cifar10c_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "CIFAR-10-C"
    folder.mkdir()
    np.save(folder / "labels.npy", np.tile(rng.integers(0, 10, 6).astype(np.uint8), 5))
    for c in ("snow", "frost"):
        np.save(folder / f"{c}.npy", rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    rows = corruption_rows(
        model, partial(load_corrupted, "cifar10-c", root=tmp_path), ["snow", "frost"]
    )
    assert len(rows) == 10 and rows[0]["count"] == 6
    expected = evaluate(model, load_corrupted("cifar10-c", "frost", 4, tmp_path))
    assert rows[8]["corruption"] == "frost" and rows[8]["severity"] == 4
    assert rows[8]["loss"] == pytest.approx(expected.loss)


def test_corruption_rows_refusals():
    model = tiny_model()
    cells = {("fog", 1): fabricated("fog", 1)}
    with pytest.raises(LandscapeError, match="no set for fog:2, fog:3"):
        corruption_rows(model, cells, ["fog"])
    with pytest.raises(LandscapeError, match="must be a function"):
        corruption_rows(model, [fabricated("fog", 1)])
    with pytest.raises(LandscapeError, match="must be lists"):
        corruption_rows(model, fabricated, "fog")
    with pytest.raises(LandscapeError, match="no .* cells"):
        corruption_rows(model, fabricated, [])
    with pytest.raises(LandscapeError, match="severity"):
        corruption_rows(model, fabricated, ["fog"], [0])
