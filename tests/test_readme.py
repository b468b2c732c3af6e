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
    (block,) = _python_blocks()
    exec(compile(block, str(README), "exec"), {})
    error_barrier, loss_barrier, error_barrier_linear = map(float, capsys.readouterr().out.split())
    # each barrier is a maximum over a curve that includes its endpoints: never negative
    assert 0.0 <= error_barrier <= 1.0 and 0.0 <= error_barrier_linear <= 1.0
    assert 0.0 <= loss_barrier < 5.0
    # an error on MNIST-1D's 1000 test signals comes in steps of 1/1000; the barrier's
    # mean of the endpoints in steps of 1/2000
    assert error_barrier * 2000 == pytest.approx(round(error_barrier * 2000), abs=1e-6)
    assert len(list((tmp_path / "runs").iterdir())) == 3  # the parent and two children
