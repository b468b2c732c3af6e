"""The training loop: checkpoints, metrics, reuse, bitwise resume, NaN, controllers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from landscape.errors import LandscapeError
from landscape.io import load_checkpoint
from landscape.sparse import density, random_masks
from landscape.specs import DataSpec, ModelSpec, RunSpec, Seeds, TrainSpec
from landscape.train import Controller, FixedMask, TrainingDiverged, build_model, run_key, train


def _spec(**train_kw) -> RunSpec:
    kw = dict(lr=0.05, steps=30, batch_size=32, eval_every=10, checkpoint_steps=(10,))
    kw.update(train_kw)
    return RunSpec(
        data=DataSpec("test-blobs"),
        model=ModelSpec("mlp", {"widths": [16]}),
        train=TrainSpec(**kw),
        seeds=Seeds(init_seed=1, noise_seed=2),
    )


def _image_spec(**train_kw) -> RunSpec:
    kw = dict(
        lr=0.05,
        steps=25,
        batch_size=32,
        eval_every=5,
        schedule="cosine",
        warmup_steps=3,
        checkpoint_steps=(5,),
    )
    kw.update(train_kw)
    return RunSpec(
        data=DataSpec("test-images", augment=("crop", "flip")),
        model=ModelSpec("mlp", {"widths": [16]}),
        train=TrainSpec(**kw),
    )


def _weights(run, step=None):
    step = run.spec.train.steps if step is None else step
    return load_checkpoint(run.checkpoint_path(step)).model


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_writes_checkpoints_metrics_and_spec(runs):
    spec = _spec()
    run = train(spec, runs)
    assert run.dir == runs / spec.run_hash()
    assert run.saved_steps() == [0, 10, 30]
    assert not (run.dir / "checkpoints" / "resume.pt").exists()
    rows = run.metrics()
    assert [r["step"] for r in rows] == [0, 10, 20, 30]
    assert rows[-1]["test_error"] < rows[0]["test_error"]  # it learns the blobs
    assert rows[-1]["train_loss"] < rows[1]["train_loss"]
    meta = load_checkpoint(run.checkpoint_path(10)).meta
    assert meta["step"] == 10 and meta["num_classes"] == 4 and meta["in_shape"] == [1, 12]
    # the step-0 checkpoint is the initialisation drawn from init_seed alone
    init = build_model(spec, 4, (1, 12)).state_dict()
    assert _equal(_weights(run, 0), init)
    assert _equal(run.load_model().state_dict(), _weights(run))


def test_an_existing_run_is_reused_not_retrained(runs):
    run = train(_spec(), runs)
    final = run.checkpoint_path(30)
    stamp = final.stat().st_mtime_ns
    again = train(_spec(), runs)
    assert again.dir == run.dir and final.stat().st_mtime_ns == stamp


def test_a_different_spec_in_the_directory_is_an_error(runs):
    run = train(_spec(steps=10, eval_every=0, checkpoint_steps=()), runs)
    (run.dir / "spec.json").write_text('{"spec": {}, "controllers": []}')
    with pytest.raises(LandscapeError, match="different run"):
        train(_spec(steps=10, eval_every=0, checkpoint_steps=()), runs)


@pytest.mark.parametrize("make_spec", [_spec, _image_spec])
@pytest.mark.parametrize("stop", [7, 10, 17])
def test_resume_is_bitwise_identical(tmp_path, make_spec, stop):
    whole = train(make_spec(), tmp_path / "a")
    cut = train(make_spec(), tmp_path / "b", stop_at=stop)
    assert not cut.checkpoint_path(0).with_name(f"step_{make_spec().train.steps}.pt").exists()
    resumed = train(make_spec(), tmp_path / "b")
    assert _equal(_weights(whole), _weights(resumed))
    assert whole.metrics() == resumed.metrics()


def test_nan_loss_stops_cleanly_and_keeps_good_checkpoints(runs):
    class Poison(Controller):
        name = "poison"

        def after_step(self, state):
            if state.step == 12:
                with torch.no_grad():
                    next(state.model.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match=r"became nan at step 12.*steps 0, 10"):
        train(_spec(), runs, controllers=[Poison()])
    run_dir = runs / run_key(_spec(), [Poison()])
    kept = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert kept == ["step_0.pt", "step_10.pt"]
    assert torch.isfinite(
        next(iter(load_checkpoint(run_dir / "checkpoints/step_10.pt").model.values()))
    ).all()


def test_fixed_mask_keeps_pruned_weights_zero_and_resumes(tmp_path):
    spec = _spec()
    model = build_model(spec, 4, (1, 12))
    masks = random_masks(model, 0.3, torch.Generator().manual_seed(0))
    run = train(spec, tmp_path / "a", controllers=[FixedMask(masks)])
    assert run.dir.name == run_key(spec, [FixedMask(masks)]) != spec.run_hash()
    for step in run.saved_steps():
        ckpt = load_checkpoint(run.checkpoint_path(step))
        for name, mask in masks.items():
            assert torch.all(ckpt.model[name][~mask] == 0)
            assert torch.any(ckpt.model[name][mask] != 0)
        assert density(ckpt.controllers["fixed_mask"]["masks"]) == pytest.approx(density(masks))
    train(spec, tmp_path / "b", controllers=[FixedMask(masks)], stop_at=13)
    resumed = train(spec, tmp_path / "b", controllers=[FixedMask(masks)])
    assert _equal(_weights(run), _weights(resumed))


class Recorder(Controller):
    """Sees every hook; its counters survive resume through state_dict."""

    name = "recorder"

    def __init__(self):
        self.after_steps = 0
        self.epoch_ends = []
        self.dense_grad_seen = False
        self.masks = None

    def on_start(self, state):
        self.starts = state.step

    def after_backward(self, state):
        # the gradient of a masked weight is generally nonzero: RigL reads exactly this
        w = state.model.fc1.weight
        if self.masks is not None and (w.grad[~self.masks["fc1.weight"]] != 0).any():
            self.dense_grad_seen = True

    def after_step(self, state):
        self.after_steps += 1
        # a DST-style edit of the optimiser state: clear momentum of the first row
        buf = state.optimizer.state[state.model.fc1.weight]["momentum_buffer"]
        buf[0].zero_()

    def on_epoch_end(self, state):
        self.epoch_ends.append(state.step)

    def state_dict(self):
        return {"after_steps": self.after_steps, "epoch_ends": list(self.epoch_ends)}

    def load_state_dict(self, state):
        self.after_steps = state["after_steps"]
        self.epoch_ends = list(state["epoch_ends"])


def test_controller_hooks_and_state(tmp_path):
    spec = _spec()  # 256 examples / 32 = 8 steps per epoch
    masks = random_masks(build_model(spec, 4, (1, 12)), 0.5, torch.Generator().manual_seed(1))
    rec = Recorder()
    rec.masks = masks
    train(spec, tmp_path / "a", controllers=[FixedMask(masks), rec])
    assert rec.after_steps == 30 and rec.epoch_ends == [8, 16, 24]
    assert rec.dense_grad_seen
    cut = Recorder()
    train(spec, tmp_path / "b", controllers=[FixedMask(masks), cut], stop_at=20)
    resumed = Recorder()
    run = train(spec, tmp_path / "b", controllers=[FixedMask(masks), resumed])
    assert resumed.starts == 20
    assert resumed.after_steps == 30 and resumed.epoch_ends == [8, 16, 24]
    ckpt = load_checkpoint(run.checkpoint_path(30))
    assert ckpt.optimizer["state"][0]["momentum_buffer"][0].abs().sum() == 0


def test_batch_larger_than_data_is_an_error(runs):
    with pytest.raises(LandscapeError, match="exceeds"):
        train(_spec(batch_size=1000), runs)


def test_a_spec_that_cannot_build_leaves_nothing_on_disk(runs):
    bad = RunSpec(data=DataSpec("test-blobs"), model=ModelSpec("no-such-model"))
    with pytest.raises(LandscapeError, match="unknown model"):
        train(bad, runs)
    assert not (runs / bad.run_hash()).exists()


@pytest.mark.parametrize("poison_at", [10, 30])  # a saved step, and the last step
def test_non_finite_weights_are_never_checkpointed(runs, poison_at):
    class PoisonWeights(Controller):
        name = "poison_weights"

        def after_step(self, state):
            if state.step == poison_at:
                with torch.no_grad():
                    state.model.fc1.weight[0, 0] = float("inf")

    with pytest.raises(TrainingDiverged, match=f"non-finite at step {poison_at}"):
        train(_spec(), runs, controllers=[PoisonWeights()])
    run_dir = runs / run_key(_spec(), [PoisonWeights()])
    kept = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert kept == (["step_0.pt"] if poison_at == 10 else ["step_0.pt", "step_10.pt"])


def test_the_same_run_from_another_data_root_is_reused(runs):
    run = train(_spec(steps=8, eval_every=0, checkpoint_steps=()), runs)
    moved = _spec(steps=8, eval_every=0, checkpoint_steps=())
    moved = moved.replace(data=DataSpec("test-blobs", root="/elsewhere"))
    assert train(moved, runs).dir == run.dir


def test_dropout_resumes_exactly(tmp_path):
    spec = _spec(steps=20).replace(model=ModelSpec("test-dropout-mlp", {"p": 0.3}))
    whole = train(spec, tmp_path / "a")
    train(spec, tmp_path / "b", stop_at=7)
    resumed = train(spec, tmp_path / "b")
    assert _equal(_weights(whole), _weights(resumed))


def test_dropout_masks_are_drawn_from_the_noise_seed(tmp_path):
    """Every example is the same, so the data order cannot tell two noise seeds apart:
    only dropout can, and only if its masks come from the noise seed."""
    from landscape.data import DatasetInfo, Split

    info = DatasetInfo("same", 4, (1, 12), (0.0,), (1.0,), ("a", "b", "c", "d"))
    x = torch.randn(1, 1, 12, generator=torch.Generator().manual_seed(0)).expand(64, 1, 12)
    y = torch.full((64,), 2)
    data = (
        Split(x.contiguous(), y, info, origin="same/train"),
        Split(x[:8].contiguous(), y[:8], info, origin="same/test"),
    )

    def final(p: float, noise_seed: int, root: str):
        spec = RunSpec(
            data=DataSpec("same"),
            model=ModelSpec("test-dropout-mlp", {"p": p}),
            train=TrainSpec(lr=0.05, steps=12, batch_size=16),
            seeds=Seeds(init_seed=0, noise_seed=noise_seed),
        )
        return _weights(train(spec, tmp_path / root, data=data))

    assert _equal(final(0.0, 1, "a"), final(0.0, 2, "a"))  # the order alone changes nothing
    assert not _equal(final(0.3, 1, "a"), final(0.3, 2, "a"))
    assert _equal(final(0.3, 1, "a"), final(0.3, 1, "b"))  # and the same seed, the same masks


REPO = Path(__file__).resolve().parents[1]
_CRASHING_RUN = """
import os, sys
sys.path.insert(0, sys.argv[3])
import numpy as np
import torch
from landscape.data import DatasetInfo, Split
from tests._crash import sigkill_after
from landscape.specs import DataSpec, ModelSpec, RunSpec, TrainSpec
from landscape.train import train

root, kill_at = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(1)
info = DatasetInfo("blobs", 4, (1, 12), (0.0,), (1.0,), ("a", "b", "c", "d"))
rng = np.random.default_rng(0)
splits = []
for n, part in ((128, "train"), (64, "test")):
    y = rng.integers(0, 4, size=n)
    x = rng.normal(size=(n, 1, 12)) + y[:, None, None]
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    splits.append(Split(x, y, info, origin=f"blobs/{part}"))
spec = RunSpec(
    data=DataSpec("blobs"),
    model=ModelSpec("mlp", {"widths": [16]}),
    train=TrainSpec(lr=0.05, steps=30, batch_size=32, checkpoint_steps=(10,)),
)
taken = sigkill_after(kill_at)
print(os.path.join(root, spec.run_hash()), flush=True)
train(spec, root, data=tuple(splits), device="cpu", resume_every=4, progress=False)
print(taken())
"""


def _launch(root, kill_at: int):
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-c", _CRASHING_RUN, str(root), str(kill_at), str(REPO)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_killed_run_resumes_from_its_last_resume_point(tmp_path):
    """A real crash (SIGKILL inside step 15) loses at most resume_every (4) steps."""
    import signal
    from pathlib import Path

    crash, whole = _launch(tmp_path / "b", 15), _launch(tmp_path / "a", 0)
    out, err = crash.communicate(timeout=120)
    assert crash.returncode == -signal.SIGKILL, err
    run_dir = Path(out.split()[0])
    # resume points at 4, 8, 12 (the saved step 10 is a full checkpoint): 12 survives
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "resume.pt",
        "step_0.pt",
        "step_10.pt",
    ]
    assert load_checkpoint(run_dir / "checkpoints" / "resume.pt").meta["step"] == 12
    out_whole, err = whole.communicate(timeout=120)
    assert whole.returncode == 0, err
    rerun = _launch(tmp_path / "b", 0)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert out.split()[1] == "18"  # steps 12..30 retrained, no more
    assert not (run_dir / "checkpoints" / "resume.pt").exists()
    done = load_checkpoint(run_dir / "checkpoints" / "step_30.pt").model
    ref = load_checkpoint(Path(out_whole.split()[0]) / "checkpoints" / "step_30.pt").model
    assert _equal(done, ref)  # bitwise


def _conv_spec(**train_kw) -> RunSpec:
    kw = dict(lr=0.05, steps=12, batch_size=32, eval_every=6)
    kw.update(train_kw)
    model = ModelSpec("convnet", {"depth": 2, "width": 4, "norm": "batch"})
    return RunSpec(data=DataSpec("test-images"), model=model, train=TrainSpec(**kw))


def test_bf16_autocast_is_another_run_close_to_fp32(tmp_path):
    fp32, bf16 = _conv_spec(), _conv_spec(precision="bf16")
    assert fp32.run_hash() == _conv_spec(precision="fp32").run_hash()  # the default
    assert bf16.run_hash() != fp32.run_hash()
    a, b = train(fp32, tmp_path), train(bf16, tmp_path)
    wa, wb = _weights(a), _weights(b)
    assert all(wb[k].dtype == wa[k].dtype for k in wa)  # weights stay float32
    gap = max((wa[k] - wb[k]).abs().max().item() for k in wa if wa[k].is_floating_point())
    assert 0 < gap < 0.05  # bfloat16 rounding, not another training
    assert abs(a.metrics()[-1]["train_loss"] - b.metrics()[-1]["train_loss"]) < 0.05
    with pytest.raises(LandscapeError, match="unknown precision"):
        TrainSpec(precision="fp16")


def test_channels_last_trains_the_same_run(tmp_path):
    spec = _conv_spec()
    a = train(spec, tmp_path / "a", channels_last=False)
    b = train(spec, tmp_path / "b", channels_last=True)
    assert a.dir.name == b.dir.name
    wa, wb = _weights(a), _weights(b)
    assert max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa) < 1e-5
    assert train(spec, tmp_path / "b").dir == b.dir  # reused whatever the layout


@pytest.mark.slow
def test_compiled_training_step_trains_the_same_run(tmp_path):
    spec = _spec(steps=8, eval_every=0, checkpoint_steps=())
    a = train(spec, tmp_path / "a")
    b = train(spec, tmp_path / "b", compile=True)
    wa, wb = _weights(a), _weights(b)
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-5
