"""Checkpoints load safely, refuse code, and say clearly what is wrong."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.io import (
    load_checkpoint,
    load_weights,
    read_rows,
    save_checkpoint,
    write_json,
    write_rows,
)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_round_trip_with_optimizer_and_meta(tmp_path):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    path = save_checkpoint(
        tmp_path / "c.pt",
        model,
        opt,
        meta={"step": 3},
        controllers={"mask": {"masks": {"0.weight": torch.ones(4, 3).bool()}}},
    )
    ckpt = load_checkpoint(path)
    assert ckpt.meta == {"step": 3}
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt.model[k], v)
    assert ckpt.optimizer["state"][0]["momentum_buffer"].shape == (4, 3)
    assert ckpt.controllers["mask"]["masks"]["0.weight"].dtype == torch.bool
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


@pytest.mark.parametrize("wrap", [lambda s: s, lambda s: {"state_dict": s}, lambda s: {"model": s}])
def test_foreign_checkpoints_load(tmp_path, wrap):
    src = _model(1)
    torch.save(wrap(src.state_dict()), tmp_path / "f.pt")
    dst = load_weights(_model(2), tmp_path / "f.pt")
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v)


def test_ddp_prefix_is_stripped(tmp_path):
    src = _model(1)
    torch.save({f"module.{k}": v for k, v in src.state_dict().items()}, tmp_path / "d.pt")
    dst = load_weights(_model(2), tmp_path / "d.pt")
    assert torch.equal(dst[0].weight, src[0].weight)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_CHECKPOINT",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_payload_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"model": _model().state_dict(), "x": _Payload()}, path)
    with pytest.raises(LandscapeError, match="refused to load"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED_BY_CHECKPOINT").exists()
    # a raw pickle file (not even a torch zip) is refused too
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(LandscapeError):
        load_checkpoint(raw)
    assert not (tmp_path / "PWNED_BY_CHECKPOINT").exists()


def test_truncated_and_missing_files(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _model())
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(LandscapeError, match="truncated"):
        load_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(LandscapeError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(LandscapeError, match="not a model checkpoint"):
        load_checkpoint(tmp_path / "list.pt")


def test_weights_that_do_not_fit(tmp_path):
    save_checkpoint(tmp_path / "c.pt", nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 2)))
    with pytest.raises(LandscapeError, match=r"wrong shape 0.weight: checkpoint \(5, 3\)"):
        load_weights(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)), tmp_path / "c.pt")
    with pytest.raises(LandscapeError, match=r"missing 1.running_mean, 1.running_var"):
        load_weights(_model(), tmp_path / "c.pt")


def test_failed_write_keeps_the_old_file(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _model(1))
    before = path.read_bytes()

    with pytest.raises(Exception):
        save_checkpoint(path, {"w": _Unsaveable()})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


class _Unsaveable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle this")


def test_rows_and_json_round_trip(tmp_path):
    rows = [{"step": 0, "loss": 0.5, "name": "a"}, {"step": 10, "loss": 0.25, "extra": True}]
    write_rows(tmp_path / "r.csv", rows)
    back = read_rows(tmp_path / "r.csv")
    assert back[0] == {"step": 0, "loss": 0.5, "name": "a", "extra": ""}
    assert back[1]["loss"] == 0.25 and back[1]["extra"] is True
    write_json(tmp_path / "x.json", {"a": [1, 2]})
    assert (tmp_path / "x.json").read_text().startswith("{")


def test_written_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "c.pt", _model())
        rows = write_rows(tmp_path / "r.csv", [{"a": 1}])
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert rows.stat().st_mode & 0o777 == 0o644
