"""Spec hashing: stable, sensitive to what matters, blind to what does not."""

from __future__ import annotations

import json

import pytest

from landscape.errors import LandscapeError
from landscape.specs import DataSpec, ModelSpec, ParentRef, RunSpec, Seeds, TrainSpec


def test_default_hash_is_pinned():
    # The hash of the default spec is part of the on-disk format: changing it renames runs.
    assert RunSpec().hash_fields() == {}
    assert RunSpec().run_hash() == "44136fa355b3"


def test_hash_depends_on_changed_fields_only():
    a = RunSpec(train=TrainSpec(lr=0.05))
    assert a.hash_fields() == {"train": {"lr": 0.05}}
    assert a.run_hash() != RunSpec().run_hash()
    assert RunSpec(train=TrainSpec(lr=0.05)).run_hash() == a.run_hash()
    assert RunSpec(seeds=Seeds(noise_seed=1)).run_hash() != RunSpec().run_hash()
    assert (
        RunSpec(seeds=Seeds(init_seed=1)).run_hash()
        != RunSpec(seeds=Seeds(noise_seed=1)).run_hash()
    )


def test_root_is_not_hashed_and_kwargs_order_is_irrelevant():
    assert RunSpec(data=DataSpec(root="/somewhere")).run_hash() == RunSpec().run_hash()
    one = ModelSpec("mlp", {"widths": [8, 8], "a": 1})
    two = ModelSpec("mlp", (("a", 1), ("widths", [8, 8])))
    assert RunSpec(model=one).run_hash() == RunSpec(model=two).run_hash()


def test_round_trip_through_json():
    spec = RunSpec(
        data=DataSpec("cifar10", augment=("crop", "flip")),
        model=ModelSpec("resnet20", {"width": 2}),
        train=TrainSpec(steps=50, checkpoint_steps=(10, 0), milestones=(20,), schedule="step"),
        seeds=Seeds(3, 4),
        parent=ParentRef("abc", 10),
    )
    back = RunSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec
    assert back.run_hash() == spec.run_hash()
    assert spec.train.checkpoint_steps == (0, 10)


def test_lr_schedule():
    t = TrainSpec(lr=1.0, steps=10, warmup_steps=2, schedule="cosine")
    assert t.lr_at(0) == pytest.approx(0.5)
    assert t.lr_at(1) == pytest.approx(1.0)
    assert t.lr_at(2) == pytest.approx(1.0)
    assert t.lr_at(6) == pytest.approx(0.5)  # halfway through the 8 cosine steps
    s = TrainSpec(lr=1.0, steps=10, schedule="step", milestones=(3, 6), gamma=0.1)
    assert [s.lr_at(i) for i in (0, 3, 6)] == pytest.approx([1.0, 0.1, 0.01])
    assert TrainSpec(steps=10, checkpoint_steps=(4,)).saved_steps() == (0, 4, 10)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"optimizer": "rmsprop"},
        {"schedule": "poly"},
        {"steps": 0},
        {"lr": -1.0},
        {"steps": 10, "checkpoint_steps": (11,)},
    ],
)
def test_bad_train_spec_raises(kwargs):
    with pytest.raises(LandscapeError):
        TrainSpec(**kwargs)


def test_unknown_field_raises():
    with pytest.raises(LandscapeError, match="does not describe a run"):
        RunSpec.from_dict({"train": {"learning_rate": 0.1}})


def test_numbers_and_lists_do_not_change_the_hash():
    assert RunSpec(train=TrainSpec(lr=1)).run_hash() == RunSpec(train=TrainSpec(lr=1.0)).run_hash()
    assert (
        RunSpec(train=TrainSpec(weight_decay=0)).run_hash()
        == RunSpec(train=TrainSpec(weight_decay=0.0)).run_hash()
    )
    spec = RunSpec(model=ModelSpec("mlp", {"widths": [16, 8]}))
    hash(spec)  # hashable, so usable as a dict key or in a set
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert dict(spec.model.kwargs)["widths"] == (16, 8)
