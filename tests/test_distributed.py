"""Data-parallel training (two CPU processes over gloo) matches one process."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from landscape.data import DatasetInfo, Split
from landscape.errors import LandscapeError
from landscape.io import load_checkpoint, read_rows
from landscape.specs import DataSpec, ModelSpec, RunSpec, TrainSpec
from landscape.train import train
from landscape.train.distributed import Group, check_batch, shard

SPEC = RunSpec(
    data=DataSpec("test-blobs"),
    model=ModelSpec("mlp", {"widths": [16]}),
    train=TrainSpec(lr=0.05, steps=12, batch_size=32, eval_every=6, checkpoint_steps=(6,)),
)


def _splits() -> tuple[Split, Split]:
    info = DatasetInfo("test-blobs", 4, (1, 12), (0.0,), (1.0,), ("a", "b", "c", "d"))
    rng = np.random.default_rng(0)
    out = []
    for n in (128, 64):
        y = rng.integers(0, 4, size=n)
        x = rng.normal(size=(n, 1, 12)) + y[:, None, None]
        out.append(Split(torch.tensor(x, dtype=torch.float32), torch.tensor(y), info))
    return out[0], out[1]


def _worker(rank: int, world: int, init_file: str, root: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        train(SPEC, root, data=_splits(), device="cpu", progress=False)
    finally:
        dist.destroy_process_group()


def test_two_processes_train_like_one(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "ddp")), nprocs=2, join=True)
    ddp = tmp_path / "ddp" / SPEC.run_hash()
    single = train(SPEC, tmp_path / "one", data=_splits(), device="cpu")
    a = load_checkpoint(ddp / "checkpoints" / "step_12.pt").model
    b = load_checkpoint(single.checkpoint_path(12)).model
    for k in b:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)
    # one process wrote the files: one set of checkpoints and one metrics table
    assert sorted(p.name for p in (ddp / "checkpoints").iterdir()) == [
        "step_0.pt",
        "step_12.pt",
        "step_6.pt",
    ]
    rows = read_rows(ddp / "metrics.csv")
    assert [r["step"] for r in rows] == [0, 6, 12]
    assert rows[-1]["train_loss"] == pytest.approx(single.metrics()[-1]["train_loss"], abs=1e-5)


def test_batches_split_evenly():
    x, y = torch.arange(12.0).view(6, 2), torch.arange(6)
    assert shard(x, y, Group(1, 3))[1].tolist() == [2, 3]
    assert shard(x, y, Group())[1].tolist() == list(range(6))
    with pytest.raises(LandscapeError, match="multiple of 4"):
        check_batch(30, Group(0, 4))
