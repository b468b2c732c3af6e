"""Data-parallel training (two CPU processes over gloo) against one process.

What the README promises: without BatchNorm and dropout, and with BatchNorm (synchronised
by default), two processes end where one does; with ``sync_batchnorm=False`` or with
dropout they do not, and the run says so. Only process 0 writes: every other process
would fail the test at its first write.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from landscape.data import DatasetInfo, Split, register_dataset
from landscape.data.distilled import load_synthetic
from landscape.errors import LandscapeError
from landscape.io import load_checkpoint, read_rows
from landscape.sparse import load_masks, mask_digest
from landscape.specs import DataSpec, ModelSpec, RunSpec, TrainSpec
from landscape.train import EDST, imp, make_dst, train
from landscape.train.distill import DistillSpec, distill
from landscape.train.distributed import Group, check_batch, shard
from tests._models import register as register_test_models

register_test_models()  # the spawned workers import this module, not conftest

_TRAIN = TrainSpec(lr=0.05, steps=12, batch_size=32, eval_every=6, checkpoint_steps=(6,))
SPECS = {
    "plain": RunSpec(
        data=DataSpec("blobs"), model=ModelSpec("mlp", {"widths": [16]}), train=_TRAIN
    ),
    "batchnorm": RunSpec(
        data=DataSpec("images"),
        model=ModelSpec("convnet", {"depth": 2, "width": 4, "norm": "batch"}),
        train=_TRAIN,
    ),
    "dropout": RunSpec(
        data=DataSpec("blobs"), model=ModelSpec("test-dropout-mlp", {"p": 0.3}), train=_TRAIN
    ),
}


def _splits(name: str, shape: tuple[int, ...]) -> tuple[Split, Split]:
    info = DatasetInfo(name, 4, shape, (0.0,) * shape[0], (1.0,) * shape[0], tuple("abcd"))
    rng = np.random.default_rng(0)
    out = []
    for n, part in ((128, "train"), (64, "test")):
        y = rng.integers(0, 4, size=n)
        x = rng.normal(size=(n, *shape)) + y.reshape(-1, *([1] * len(shape)))
        x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
        out.append(Split(x, y, info, origin=f"{name}/{part}"))
    return out[0], out[1]


def _data(name: str) -> tuple[Split, Split]:
    data = SPECS[name].data.name
    return _splits(data, (3, 8, 8) if data == "images" else (1, 12))


@register_dataset("test-ddp-images")
def _ddp_images(root, split):
    part = _splits("test-ddp-images", (3, 8, 8))[0 if split == "train" else 1]
    return part.x.numpy(), part.y.numpy(), part.info


#: MTT: expert trajectories trained data-parallel, then the same synthetic optimisation on
#: every process; process 0 alone writes the set.
MTT = DistillSpec(
    DataSpec("test-ddp-images"),
    method="mtt",
    ipc=2,
    model=ModelSpec("convnet", {"width": 8, "depth": 1}),
    iterations=3,
    num_experts=2,
    max_start_epoch=2,
    expert_epochs=1,
    syn_steps=3,
    expert_batch=32,
    lr_images=10.0,
)


def _distill(root):
    return distill(MTT, f"{root}/mtt/distilled", device="cpu", progress=False)


def _no_writes_here(rank: int) -> None:
    """Make any file this process writes through landscape (or torch.save) an error."""
    import landscape.io

    def refuse(*args, **kwargs):
        raise AssertionError(f"process {rank} wrote a file; only process 0 may")

    landscape.io.atomic_write = refuse
    torch.save = refuse


#: Dynamic sparse training under DDP: drop-and-grow decided from the averaged gradients
#: (RigL) or from the run's seeds (SET's random growth), so every process decides alike.
DST = {
    "rigl": {"update_every": 3},
    "set": {"update_every": 4},
    "granet": {"update_every": 2, "init_density": 0.6, "prune_end": 8},
    "edst": {"update_every": 2, "tickets": 2, "explore_steps": 6, "phase_steps": 3},
}


def _dst(method: str):
    options = dict(density=0.3, drop_fraction=0.5, **DST[method])
    if method == "edst":  # the FreeTickets ensemble's controller
        return EDST(**options)
    return make_dst(method, **options)


def _train_dst(method: str, root, rank: int | None = None):
    """Train the plain spec under ``method``; with ``rank``, check that every process ends
    with the same masks (their digests gathered from all processes)."""
    controller = _dst(method)
    train(
        SPECS["plain"],
        f"{root}/{method}",
        controllers=[controller],
        data=_data("plain"),
        device="cpu",
        progress=False,
    )
    if rank is not None:
        digests = [None] * dist.get_world_size()
        dist.all_gather_object(digests, mask_digest(controller.masks))
        assert len(set(digests)) == 1, f"the processes' masks differ: {digests}"
    return controller


def _train_imp(root, rank: int | None = None):
    """Two IMP levels of the plain spec (rewound to step 6); with ``rank``, check that every
    process holds the same masks at every level."""
    levels = imp(
        SPECS["plain"],
        levels=2,
        rate=0.5,
        rewind_step=6,
        root=f"{root}/imp",
        data=_data("plain"),
        device="cpu",
        progress=False,
    )
    if rank is not None:
        for level in levels[1:]:
            digests = [None] * dist.get_world_size()
            dist.all_gather_object(digests, mask_digest(level.masks))
            assert len(set(digests)) == 1, f"level {level.level}: masks differ: {digests}"
    return levels


def _resume(root) -> None:
    """The plain spec cut short at step 5 and resumed (resume points every 2 steps)."""
    for stop in (5, None):
        train(
            SPECS["plain"],
            f"{root}/resumed",
            data=_data("plain"),
            device="cpu",
            progress=False,
            resume_every=2,
            stop_at=stop,
        )


def _worker(rank: int, world: int, init_file: str, root: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    if rank != 0:
        _no_writes_here(rank)
    try:
        for name, spec in SPECS.items():
            train(spec, f"{root}/{name}", data=_data(name), device="cpu", progress=False)
        spec = SPECS["batchnorm"]
        train(spec, f"{root}/unsynced", data=_data("batchnorm"), sync_batchnorm=False)
        for method in DST:
            _train_dst(method, root, rank)
        _train_imp(root, rank)
        _resume(root)
        _distill(root)
    finally:
        dist.destroy_process_group()


def _final(root, spec: RunSpec) -> dict[str, torch.Tensor]:
    return load_checkpoint(root / spec.run_hash() / "checkpoints" / "step_12.pt").model


def _gap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in b)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, str(root / "init"), str(root / "ddp")), nprocs=2, join=True)
    one = root / "one"
    for name, spec in SPECS.items():
        train(spec, one / name, data=_data(name), device="cpu", progress=False)
    for method in DST:
        _train_dst(method, one)
    _train_imp(one)
    _distill(one)
    return root / "ddp", one


def test_imp_on_two_processes_finds_the_masks_of_one(two_processes):
    ddp, one = two_processes
    found = {}
    for root in (ddp, one):
        masks = sorted((root / "imp").rglob("masks.pt"))
        found[root] = {p.parent.name: load_masks(p) for p in masks}
    a, b = found[ddp], found[one]
    assert len(a) == 2 and a.keys() == b.keys()  # levels 1 and 2, the same run hashes
    for run in a:
        assert all(torch.equal(a[run][k], b[run][k]) for k in b[run])


def test_mtt_distils_on_two_processes_as_on_one(two_processes):
    ddp, one = two_processes
    sets = [load_synthetic(root / "mtt" / "distilled" / MTT.key())[0] for root in (ddp, one)]
    assert sets[0].shape == (8, 3, 8, 8)
    assert torch.allclose(sets[0], sets[1], rtol=1e-4, atol=1e-5)
    experts = sorted(p.name for p in (ddp / "mtt").iterdir() if p.name != "distilled")
    assert len(experts) == 2  # the experts are runs of the loop, trained data-parallel
    assert experts == sorted(p.name for p in (one / "mtt").iterdir() if p.name != "distilled")


def test_a_run_cut_short_resumes_on_two_processes(two_processes):
    ddp, one = two_processes
    spec = SPECS["plain"]
    resumed = _final(ddp / "resumed", spec)
    assert _gap(resumed, _final(one / "plain", spec)) < 1e-5  # as if never interrupted
    ckpt = load_checkpoint(ddp / "resumed" / spec.run_hash() / "checkpoints" / "step_12.pt")
    assert ckpt.meta["processes"] == 2


@pytest.mark.parametrize("method", sorted(DST))
def test_dynamic_sparse_training_on_two_processes_ends_like_one(two_processes, method):
    """The masks agree on every process (checked inside the workers) and with one process;
    the weights agree to float summation order, and the update records are the same."""
    ddp, one = two_processes
    runs = [next((root / method).iterdir()) for root in (ddp, one)]  # the one DST run
    assert runs[0].name == runs[1].name  # the same spec hash
    a, b = (load_checkpoint(run / "checkpoints" / "step_12.pt") for run in runs)
    assert _gap(a.model, b.model) < 1e-5
    masks_a, masks_b = (next(iter(c.controllers.values()))["masks"] for c in (a, b))
    assert masks_a.keys() == masks_b.keys() and len(masks_a) == 2
    assert all(torch.equal(masks_a[k], masks_b[k]) for k in masks_b)
    rows_a, rows_b = (read_rows(run / "dst.csv") for run in runs)
    assert len(rows_a) >= 3 and rows_a == rows_b  # the updates moved the same weights
    assert any(r["moved"] > 0 for r in rows_a)


@pytest.mark.parametrize("name", ["plain", "batchnorm"])
def test_two_processes_train_like_one(two_processes, name):
    ddp, one = two_processes
    spec = SPECS[name]
    a, b = _final(ddp / name, spec), _final(one / name, spec)
    assert a.keys() == b.keys()
    assert (
        load_checkpoint(ddp / name / spec.run_hash() / "checkpoints" / "step_12.pt").meta[
            "processes"
        ]
        == 2
    )
    assert _gap(a, b) < 1e-5  # float summation order only
    if name == "batchnorm":  # the running statistics are the global batch's too
        assert any(k.endswith("running_var") for k in a)
        assert a["norm1.num_batches_tracked"] == b["norm1.num_batches_tracked"] == 12
    run = ddp / name / spec.run_hash()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step_0.pt",
        "step_12.pt",
        "step_6.pt",
    ]
    rows = read_rows(run / "metrics.csv")
    assert [r["step"] for r in rows] == [0, 6, 12]
    ref = read_rows(one / name / spec.run_hash() / "metrics.csv")
    assert rows[-1]["train_loss"] == pytest.approx(ref[-1]["train_loss"], abs=1e-5)


def test_what_does_not_match_one_process(two_processes):
    """Per-process BatchNorm statistics, and per-process dropout masks, as documented."""
    ddp, one = two_processes
    spec = SPECS["batchnorm"]
    assert _gap(_final(ddp / "unsynced", spec), _final(one / "batchnorm", spec)) > 1e-4
    spec = SPECS["dropout"]
    assert _gap(_final(ddp / "dropout", spec), _final(one / "dropout", spec)) > 1e-4


def test_the_global_batchnorm_matches_pytorch_in_one_process():
    """With one process the all-reduces are the identity: forward, backward and running
    statistics must then equal nn.BatchNorm2d's."""
    from functools import partial

    from landscape.train.distributed import _global_batch_norm

    torch.manual_seed(0)
    ref, ours = nn.BatchNorm2d(3, momentum=None), nn.BatchNorm2d(3, momentum=None)
    with torch.no_grad():
        for m in (ref, ours):
            m.weight.copy_(torch.tensor([0.5, 1.5, -1.0]))
            m.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    import landscape.train.distributed as d

    saved = d.all_reduce
    d.all_reduce = lambda t: t  # one process: the sum over processes is the tensor itself
    try:
        ours.forward = partial(_global_batch_norm, ours, ours.forward)
        for step in range(2):
            x = torch.randn(6, 3, 4, 4) * (step + 1) + step
            xr, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
            gr = torch.randn(6, 3, 4, 4)
            (ref(xr) * gr).sum().backward()
            (ours(xo) * gr).sum().backward()
            torch.testing.assert_close(xo.grad, xr.grad, rtol=1e-5, atol=1e-6)
        for name in ("weight", "bias"):
            torch.testing.assert_close(getattr(ours, name).grad, getattr(ref, name).grad)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            torch.testing.assert_close(getattr(ours, name), getattr(ref, name))
        ours.eval(), ref.eval()
        x = torch.randn(2, 3, 4, 4)
        torch.testing.assert_close(ours(x), ref(x))
    finally:
        d.all_reduce = saved


def test_batchnorm_becomes_syncbatchnorm_for_cuda():
    """The CUDA path converts (this machine may have no GPU: the conversion needs none)."""
    from landscape.train.distributed import synchronise_batchnorm

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    weight, mean = model[1].weight, model[1].running_mean
    keys = list(model.state_dict())
    out = synchronise_batchnorm(model, torch.device("cuda"), enabled=True)
    assert out is model and isinstance(model[1], nn.SyncBatchNorm)
    assert model[1].weight is weight and model[1].running_mean is mean  # optimiser unaffected
    assert list(model.state_dict()) == keys  # checkpoints unaffected
    plain = nn.Sequential(nn.BatchNorm2d(4))
    synchronise_batchnorm(plain, torch.device("cuda"), enabled=False)
    assert type(plain[0]) is nn.BatchNorm2d


def test_batches_split_evenly():
    x, y = torch.arange(12.0).view(6, 2), torch.arange(6)
    assert shard(x, y, Group(1, 3))[1].tolist() == [2, 3]
    assert shard(x, y, Group())[1].tolist() == list(range(6))
    with pytest.raises(LandscapeError, match="multiple of 4"):
        check_batch(30, Group(0, 4))


def test_torchrun_runs_the_command_line(tmp_path):
    """``torchrun --nproc-per-node 2 -m landscape dst ...`` (gloo on the CPU) writes the run
    a one-process command writes: same spec hash, weights to float summation order, masks."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    args = ["dst", "--model", "mlp", "--model-arg", "widths=[16]", "--data", "mnist1d"]
    args += ["--steps", "8", "--batch-size", "32", "--update-every", "3", "--density", "0.3"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    root = Path(__file__).resolve().parents[1]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    torchrun += ["--nproc-per-node", "2"]  # a free port on this machine
    for cmd, runs in ((torchrun, "two"), ([sys.executable], "one")):
        out = subprocess.run(
            [*cmd, "-m", "landscape", *args, "--runs", str(tmp_path / runs)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.count("rigl: density") == 1  # process 0 alone reports
    two, one = (next((tmp_path / r).iterdir()) for r in ("two", "one"))
    assert two.name == one.name
    a, b = (load_checkpoint(run / "checkpoints" / "step_8.pt") for run in (two, one))
    assert (a.meta["processes"], b.meta["processes"]) == (2, 1)  # two trained as one
    assert _gap(a.model, b.model) < 1e-5
    masks = [c.controllers["rigl"]["masks"] for c in (a, b)]
    assert all(torch.equal(masks[0][k], masks[1][k]) for k in masks[1])
