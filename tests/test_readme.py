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
    printed = capsys.readouterr().out.split()
    assert len(printed) == 3 and all(0.0 <= abs(float(v)) < 5.0 for v in printed)
    assert len(list((tmp_path / "runs").iterdir())) == 3  # the parent and two children
