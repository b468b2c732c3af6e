"""The distillation study end to end at its CI size (marked slow), and its verdicts."""

from __future__ import annotations

import pytest

from landscape.io import read_rows
from tests._studies import load_study


def _load():
    return load_study("distillation")


def test_verdicts_compare_each_method_with_the_random_subset():
    study = _load()
    rows = [
        {
            "dataset": "fashion-mnist",
            "method": m,
            "ipc": 10,
            "factor": 1,
            "seed": s,
            "test_accuracy": a + 0.01 * s,
        }
        for m, a in (("random", 0.70), ("dc", 0.75), ("dm", 0.69))
        for s in (0, 1)
    ]
    summary = study.summary_rows(rows)
    assert [r["published"] for r in summary] == [73.8, 82.3, ""]  # DC paper's Table 1
    lines = study.verdicts(summary)
    assert lines == [
        "fashion-mnist dc: 75.5 ± 0.7% vs random 70.5% (+5.0 points, beats random; "
        "published 82.3%)",
        "fashion-mnist dm: 69.5 ± 0.7% vs random 70.5% (-1.0 points, does not beat random)",
    ]


@pytest.mark.slow
def test_distillation_study_ci_scale(tmp_path, capsys):
    study = _load()
    out = tmp_path / "out"
    argv = ["--scale", "ci", "--seeds", "2", "--runs", str(tmp_path / "runs"), "--out", str(out)]
    assert study.main(argv) == 0
    rows = read_rows(out / "distillation.csv")
    methods = [r["method"] for r in rows]
    assert sorted(set(methods)) == sorted({"random", *study.METHODS})
    assert all(methods.count(m) == 2 for m in set(methods))  # one row per training seed
    assert all(r["size"] == 100 for r in rows)  # IPC 10 x 10 classes, for every method
    summary = read_rows(out / "summary.csv")
    assert len(summary) == 1 + len(study.METHODS)
    assert (out / "accuracy_by_method.png").is_file()
    printed = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("mnist1d ") for line in printed) == len(study.METHODS)
