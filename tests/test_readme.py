"""The README's Python tour runs as written (slow: it trains three small runs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_opens_with_the_two_commands():
    first = README.read_text().split("```")[1]
    assert "make demo" in first and "make test" in first


@pytest.mark.slow
def test_readme_tour_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the tour trains under ./runs
    tour, sparse, dynamic = _python_blocks()
    namespace: dict = {}
    exec(compile(tour, str(README), "exec"), namespace)
    error_barrier, loss_barrier, error_barrier_linear = map(float, capsys.readouterr().out.split())
    # each barrier is a maximum over a curve that includes its endpoints: never negative
    assert 0.0 <= error_barrier <= 1.0 and 0.0 <= error_barrier_linear <= 1.0
    assert 0.0 <= loss_barrier < 5.0
    # an error on MNIST-1D's 1000 test signals comes in steps of 1/1000; the barrier's
    # mean of the endpoints in steps of 1/2000
    assert error_barrier * 2000 == pytest.approx(round(error_barrier * 2000), abs=1e-6)
    assert len(list((tmp_path / "runs").iterdir())) == 3  # the parent and two children
    # the sparse section goes on from the tour: IMP's level 0 is the tour's parent
    exec(compile(sparse, str(README), "exec"), namespace)
    rows = [line.split() for line in capsys.readouterr().out.strip().splitlines()]
    assert [r[:3] for r in rows] == [
        ["0", "1.0", "0"],
        ["1", "0.8", "120000"],
        ["2", "0.64", "240000"],
    ]
    assert rows[0][3] == namespace["run"].dir.name
    assert len(list((tmp_path / "runs").iterdir())) == 5
    # dynamic sparse training and an EDST ensemble go on from the tour's data and spec
    exec(compile(dynamic, str(README), "exec"), namespace)
    lines = capsys.readouterr().out.strip().splitlines()
    assert 0.1 < float(lines[0]) < 0.6  # sparse steps plus RigL's dense-gradient steps
    accuracy, disagreement = map(float, lines[1].split())
    assert 0.8 < accuracy <= 1.0 and 0.0 < disagreement < 0.5
    assert 0.1 < float(lines[2]) < 1.0  # one sparse run of 1.8x the steps: cheaper than dense
    assert len(list((tmp_path / "runs").iterdir())) == 7
