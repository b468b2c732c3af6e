"""Children of a checkpoint: same weights at step k, different SGD noise after it."""

from __future__ import annotations

import pytest
import torch

from landscape.errors import LandscapeError
from landscape.io import load_checkpoint, read_json
from landscape.specs import DataSpec, ModelSpec, RunSpec, Seeds, TrainSpec
from landscape.train import child_spec, spawn, train


def _parent() -> RunSpec:
    return RunSpec(
        data=DataSpec("test-images", augment=("crop", "flip")),
        model=ModelSpec("mlp", {"widths": [16]}),
        train=TrainSpec(lr=0.05, steps=24, batch_size=32, checkpoint_steps=(6,), eval_every=6),
        seeds=Seeds(init_seed=3, noise_seed=0),
    )


def _w(run, step):
    return load_checkpoint(run.checkpoint_path(step)).model


def test_children_share_step_k_and_differ_after(runs):
    a, b = spawn(_parent(), 6, [1, 2], runs)
    parent = runs / _parent().run_hash()
    at_k = load_checkpoint(parent / "checkpoints" / "step_6.pt")
    for child in (a, b):
        assert child.spec.parent.run_hash == parent.name and child.spec.parent.step == 6
        assert child.spec.seeds.init_seed == 3
        assert read_json(child.dir / "spec.json")["spec"]["parent"] == {
            "run_hash": parent.name,
            "step": 6,
        }
        assert child.saved_steps() == [6, 24]
        for k, v in at_k.model.items():
            assert torch.equal(_w(child, 6)[k], v)
        assert [r["step"] for r in child.metrics()] == [6, 12, 18, 24]
    fa, fb = _w(a, 24), _w(b, 24)
    assert any(not torch.equal(fa[k], fb[k]) for k in fa)
    assert a.dir != b.dir


def test_the_parent_trains_only_as_far_as_needed_and_resumes_exactly(runs):
    (same,) = spawn(_parent(), 6, [0], runs)
    parent_dir = runs / _parent().run_hash()
    assert not (parent_dir / "checkpoints" / "step_24.pt").exists()
    # finishing the parent later resumes it; a child with its noise seed retraces it
    train(_parent(), runs)
    parent_final = load_checkpoint(parent_dir / "checkpoints" / "step_24.pt")
    for k, v in parent_final.model.items():
        assert torch.equal(_w(same, 24)[k], v)


def test_bad_requests(runs):
    with pytest.raises(LandscapeError, match="no checkpoint at step 5"):
        child_spec(_parent(), 5, 1)
    with pytest.raises(LandscapeError, match="must differ"):
        spawn(_parent(), 6, [1, 1], runs)
    with pytest.raises(LandscapeError, match="train the parent"):
        train(child_spec(_parent(), 6, 1), runs)


def test_a_child_keeps_its_own_mask_when_the_parents_differs(runs):
    from landscape.sparse import random_masks
    from landscape.train import FixedMask, build_model

    parent = _parent()
    model = build_model(parent, 4, (3, 6, 6))
    old = random_masks(model, 0.5, torch.Generator().manual_seed(0))
    new = random_masks(model, 0.3, torch.Generator().manual_seed(1))
    parent_run = train(parent, runs, controllers=[FixedMask(old)], stop_at=6)
    child = train(child_spec(parent, 6, 1, parent_run.dir.name), runs, controllers=[FixedMask(new)])
    final = _w(child, 24)
    for name, mask in new.items():
        assert torch.all(final[name][~mask] == 0)
    # with the same mask the child inherits the parent's controller state
    same = train(child_spec(parent, 6, 2, parent_run.dir.name), runs, controllers=[FixedMask(old)])
    assert all(torch.all(_w(same, 24)[n][~m] == 0) for n, m in old.items())


def test_an_unfinished_parent_says_how_to_finish(runs):
    spawn(_parent(), 6, [1], runs)
    from landscape.train import Run

    with pytest.raises(LandscapeError, match="not reached it yet"):
        Run(_parent(), runs / _parent().run_hash()).load_model()
