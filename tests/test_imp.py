"""Iterative magnitude pruning with rewinding, its controls, and resuming a killed search.

One IMP search (3 levels of 20%, rewinding to step 5, SGD with momentum 0.9 and weight
decay 5e-4) is trained once per module and checked from several sides; the expected masks
are the global magnitude ranking computed here with numpy from the saved weights.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape.data import Split, get_dataset
from landscape.errors import LandscapeError
from landscape.io import load_checkpoint
from landscape.sparse import density, load_masks, random_masks
from landscape.specs import DataSpec, ModelSpec, RunSpec, Seeds, TrainSpec
from landscape.train import build_model, train
from landscape.train.imp import (
    imp,
    one_shot,
    random_at_density,
    random_control,
    reinit_control,
    summary_rows,
)

NAMES = ("fc1.weight", "out.weight")  # 384 + 128 = 512 prunable weights
REPO = Path(__file__).resolve().parents[1]
KW = {"device": "cpu", "progress": False}


def _spec(**train_kw) -> RunSpec:
    kw = dict(lr=0.05, steps=30, batch_size=32, momentum=0.9, weight_decay=5e-4)
    kw.update(train_kw)
    return RunSpec(
        data=DataSpec("test-blobs"),
        model=ModelSpec("mlp", {"widths": [32]}),
        train=TrainSpec(**kw),
        seeds=Seeds(init_seed=1, noise_seed=2),
    )


def _weights(run, step=None) -> dict[str, torch.Tensor]:
    return load_checkpoint(
        run.checkpoint_path(run.spec.train.steps if step is None else step)
    ).model


def _expected_masks(weights, previous=None, rate=0.2):
    """Global magnitude pruning written out: drop the ``round(rate * alive)`` smallest
    survivors; the cut must not fall on a tie, so the answer is unique."""
    alive = {
        n: np.ones(weights[n].shape, bool) if previous is None else previous[n].numpy()
        for n in NAMES
    }
    w = {n: np.abs(weights[n].numpy()) for n in NAMES}
    values = np.sort(np.concatenate([w[n][alive[n]] for n in NAMES]))
    k = round(rate * values.size)
    assert values[k] > values[k - 1]
    return {n: torch.from_numpy(alive[n] & (w[n] > values[k - 1])) for n in NAMES}


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _Steps:
    """Counts optimiser steps taken through ``torch.optim.SGD.step``."""

    def __init__(self, monkeypatch):
        self.taken = 0
        plain = torch.optim.SGD.step

        def step(opt, *args, **kwargs):
            self.taken += 1
            return plain(opt, *args, **kwargs)

        monkeypatch.setattr(torch.optim.SGD, "step", step)


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """``imp`` for 3 levels rewinding to step 5, and its runs root."""
    root = tmp_path_factory.mktemp("imp") / "runs"
    return root, imp(_spec(), levels=3, rewind_step=5, root=root, **KW)


# --- one search, checked from several sides ------------------------------------------------


def test_levels_keep_point_eight_to_the_level(search):
    _, levels = search
    kept = [512, 410, 328, 262]  # 512 -> 512 - round(0.2 * 512) = 410 -> 328 -> 262
    assert [lv.level for lv in levels] == [0, 1, 2, 3]
    assert levels[0].masks is None and levels[0].density == 1.0
    for lv in levels[1:]:
        assert sum(int(m.sum()) for m in lv.masks.values()) == kept[lv.level]
        assert lv.density == kept[lv.level] / 512
        assert abs(lv.density - 0.8**lv.level) <= lv.level * 0.5 / 512
    # the dense run trained 30 steps of 32 examples, each later search 25 (from step 5)
    assert [lv.examples_seen for lv in levels] == [0, 960, 1760, 2560]
    rows = summary_rows(levels)
    assert [r["density"] for r in rows] == [1.0, 410 / 512, 328 / 512, 262 / 512]
    assert all(0.0 <= r["test_error"] <= 1.0 for r in rows)


def test_each_mask_ranks_the_previous_levels_trained_weights(search):
    _, levels = search
    for before, after in zip(levels, levels[1:]):
        expected = _expected_masks(_weights(before.run), before.masks)
        assert _same(after.masks, expected)


def test_each_level_run_holds_its_masks_and_descends_from_the_dense_run(search):
    _, levels = search
    dense = levels[0].run
    assert not (dense.dir / "masks.pt").exists()
    assert dense.spec.train.saved_steps() == (0, 5, 30)  # the rewind step is kept
    dirs = {lv.run.dir for lv in levels}
    assert len(dirs) == 4
    for lv in levels[1:]:
        assert _same(load_masks(lv.run.dir / "masks.pt"), lv.masks)
        assert lv.run.spec.parent.run_hash == dense.dir.name and lv.run.spec.parent.step == 5
        assert lv.run.spec.seeds == dense.spec.seeds  # the same SGD noise
        assert lv.search_run == lv.run
        assert lv.run.saved_steps() == [5, 30]


def test_pruned_weights_stay_exactly_zero_in_every_checkpoint(search):
    _, levels = search
    for lv in levels[1:]:
        for step in lv.run.saved_steps():
            ckpt = load_checkpoint(lv.run.checkpoint_path(step))
            for name in NAMES:
                assert torch.count_nonzero(ckpt.model[name][~lv.masks[name]]) == 0
                assert torch.count_nonzero(ckpt.model[name][lv.masks[name]]) == int(
                    lv.masks[name].sum()
                )
    # the mask has work to do: the final momentum at pruned weights is not zero, so without
    # re-masking after each step they would move
    last = levels[3]
    state = load_checkpoint(last.run.checkpoint_path(30)).optimizer["state"]
    buffer = state[0]["momentum_buffer"]  # fc1.weight is the model's first parameter
    assert torch.count_nonzero(buffer[~last.masks["fc1.weight"]]) > 0


def test_rewinding_restores_the_dense_step_k_weights_on_the_survivors(search):
    _, levels = search
    dense = load_checkpoint(levels[0].run.checkpoint_path(5))
    for lv in levels[1:]:
        start = load_checkpoint(lv.run.checkpoint_path(5))
        assert start.model.keys() == dense.model.keys()
        for name, value in dense.model.items():
            expected = value * lv.masks[name] if name in lv.masks else value
            assert torch.equal(start.model[name], expected), name
        # the rewound momentum too, with the pruned entries gone
        for i, name in enumerate(("fc1.weight", "fc1.bias", "out.weight", "out.bias")):
            buffer = dense.optimizer["state"][i]["momentum_buffer"]
            if name in lv.masks:
                buffer = buffer * lv.masks[name]
            assert torch.equal(start.optimizer["state"][i]["momentum_buffer"], buffer), name
    assert not torch.equal(dense.model["fc1.weight"], _weights(levels[0].run, 0)["fc1.weight"])


def test_a_second_call_trains_nothing_and_writes_nothing(search, monkeypatch):
    root, levels = search
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    steps = _Steps(monkeypatch)
    again = imp(_spec(), levels=3, rewind_step=5, root=root, **KW)
    assert steps.taken == 0
    assert [lv.run.dir for lv in again] == [lv.run.dir for lv in levels]
    assert all(_same(a.masks, b.masks) for a, b in zip(again[1:], levels[1:]))
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


_KILLED_IMP = """
import json, sys
sys.path.insert(0, sys.argv[4])
import torch
import tests.conftest  # registers test-blobs
from tests._crash import sigkill_after
from landscape.specs import RunSpec
from landscape.train.imp import imp

root, kill_at, spec = sys.argv[1], int(sys.argv[2]), RunSpec.from_dict(json.loads(sys.argv[3]))
torch.set_num_threads(1)
taken = sigkill_after(kill_at)
imp(spec, levels=3, rewind_step=5, root=root, device="cpu", progress=False, resume_every=4)
print(taken())
"""


def test_a_search_killed_mid_level_finishes_where_it_stopped(search, tmp_path, monkeypatch):
    """SIGKILL after 65 steps: 30 dense + 25 of level 1 + 10 of level 2 (its step 15)."""
    root, whole = search
    crash = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLED_IMP,
            str(tmp_path),
            "65",
            json.dumps(_spec().to_dict()),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crash.returncode == -signal.SIGKILL, crash.stderr
    cut = tmp_path / whole[2].run.dir.name / "checkpoints"
    # level 2 kept its rewind point and the resume point at step 12; it had not finished
    assert sorted(p.name for p in cut.iterdir()) == ["resume.pt", "step_5.pt"]
    assert load_checkpoint(cut / "resume.pt").meta["step"] == 12
    assert not (tmp_path / whole[3].run.dir.name).exists()
    steps = _Steps(monkeypatch)
    levels = imp(_spec(), levels=3, rewind_step=5, root=tmp_path, **KW)
    assert steps.taken == (30 - 12) + 25  # the rest of level 2, then all of level 3
    for lv, ref in zip(levels, whole):
        assert lv.run.dir.name == ref.run.dir.name
        assert lv.level == 0 or _same(lv.masks, ref.masks)
        assert _same(_weights(lv.run), _weights(ref.run))  # bitwise
    assert _same(load_masks(levels[3].run.dir / "masks.pt"), whole[3].masks)
    assert not (cut / "resume.pt").exists()


def test_adam_levels_rewound_to_initialisation_keep_pruned_weights_at_zero(tmp_path):
    spec = _spec(optimizer="adam", lr=0.01, steps=20)
    levels = imp(spec, levels=2, rewind_step=0, root=tmp_path, **KW)
    init = build_model(spec, 4, (1, 12)).state_dict()
    assert levels[0].run.spec == spec  # step 0 is always kept: the dense run is spec's own
    assert _same(_weights(levels[0].run, 0), init)
    for lv in levels[1:]:
        start = _weights(lv.run, 0)
        for name, value in init.items():
            expected = value * lv.masks[name] if name in lv.masks else value
            assert torch.equal(start[name], expected), name
        final = _weights(lv.run)
        assert all(torch.count_nonzero(final[n][~lv.masks[n]]) == 0 for n in NAMES)
        assert _same(
            lv.masks,
            _expected_masks(_weights(levels[lv.level - 1].run), levels[lv.level - 1].masks),
        )
    assert [lv.density for lv in levels] == [1.0, 410 / 512, 328 / 512]


# --- masks found on another spec -----------------------------------------------------------


def test_masks_found_on_another_spec_train_on_the_real_one(tmp_path, monkeypatch):
    spec = _spec()
    find = _spec(steps=20, lr=0.02)
    levels = imp(spec, levels=2, find_on=find, root=tmp_path, **KW)
    real, searched = levels[0].run, levels[0].search_run
    assert real.spec == spec and searched.spec == find and real.dir != searched.dir
    for lv in levels[1:]:
        assert lv.run.dir != lv.search_run.dir
        assert lv.run.spec.parent.run_hash == real.dir.name
        assert lv.search_run.spec.parent.run_hash == searched.dir.name
        assert lv.run.spec.train.steps == 30 and lv.search_run.spec.train.steps == 20
        assert _same(load_masks(lv.run.dir / "masks.pt"), lv.masks)
        assert not _same(_weights(lv.run), _weights(lv.search_run))
    # each mask ranks the previous *search* run's weights, not the real run's
    for before, after in zip(levels, levels[1:]):
        assert _same(after.masks, _expected_masks(_weights(before.search_run), before.masks))
    assert not _same(levels[1].masks, _expected_masks(_weights(real)))
    assert [lv.examples_seen for lv in levels] == [0, 640, 1280]  # 20 steps x 32 each

    # the hybrid: real-data IMP from the mask found on the other spec
    steps = _Steps(monkeypatch)
    hybrid = imp(spec, levels=1, start_masks=levels[1].masks, root=tmp_path, **KW)
    assert hybrid[0].density == density(levels[1].masks) == 410 / 512
    assert hybrid[0].run.dir == levels[1].run.dir  # the same subnetwork: reused
    assert hybrid[1].density == 328 / 512
    assert _same(hybrid[1].masks, _expected_masks(_weights(levels[1].run), levels[1].masks))
    assert steps.taken == 30  # only level 1 trained


@pytest.mark.parametrize(
    "find_on",
    [
        _spec().replace(model=ModelSpec("mlp", {"widths": [16]})),
        _spec().replace(seeds=Seeds(init_seed=3, noise_seed=2)),
    ],
    ids=["other-model", "other-init-seed"],
)
def test_find_on_another_network_is_refused(find_on, tmp_path):
    with pytest.raises(LandscapeError, match="same network from the same init_seed"):
        imp(_spec(), levels=1, find_on=find_on, root=tmp_path, **KW)
    assert list(tmp_path.iterdir()) == []  # refused before training


def test_start_masks_for_another_architecture_are_refused(tmp_path):
    other = build_model(_spec().replace(model=ModelSpec("mlp", {"widths": [16]})), 4, (1, 12))
    masks = random_masks(other, 0.5, torch.Generator().manual_seed(0))
    with pytest.raises(LandscapeError, match="another architecture"):
        imp(_spec(), levels=1, start_masks=masks, root=tmp_path, **KW)
    assert list(tmp_path.iterdir()) == []


# --- controls ------------------------------------------------------------------------------


def test_one_shot_prunes_the_trained_dense_network_once(search):
    root, levels = search
    level = one_shot(_spec(), 0.5, rewind_step=5, root=root, **KW)
    assert level.density == 0.5
    assert sum(int(m.sum()) for m in level.masks.values()) == 256
    assert level.search_run.dir == levels[0].run.dir  # the dense run, reused
    assert _same(level.masks, _expected_masks(_weights(levels[0].run), rate=0.5))
    assert _same(load_masks(level.run.dir / "masks.pt"), level.masks)


def test_random_control_keeps_the_count_of_every_layer(search):
    root, levels = search
    masks = levels[2].masks
    run = random_control(_spec(), masks, seed=0, rewind_step=5, root=root, **KW)
    drawn = load_masks(run.dir / "masks.pt")
    assert {n: int(m.sum()) for n, m in drawn.items()} == {
        n: int(m.sum()) for n, m in masks.items()
    }
    assert not _same(drawn, masks)
    final = _weights(run)
    assert all(torch.count_nonzero(final[n][~drawn[n]]) == 0 for n in NAMES)
    assert run.spec.parent.run_hash == levels[0].run.dir.name


def test_reinit_control_trains_the_mask_from_another_initialisation(search):
    root, levels = search
    masks = levels[1].masks
    with pytest.raises(LandscapeError, match="another init_seed"):
        reinit_control(_spec(), masks, init_seed=1, root=root, **KW)
    run = reinit_control(_spec(), masks, init_seed=7, root=root, **KW)
    other = _spec().replace(seeds=Seeds(init_seed=7, noise_seed=2))
    init = build_model(other, 4, (1, 12)).state_dict()
    start = _weights(run, 0)
    assert all(torch.equal(start[n], init[n] * masks[n]) for n in NAMES)
    assert not torch.equal(init["fc1.weight"], build_model(_spec(), 4, (1, 12)).fc1.weight)


def test_random_at_density_spreads_the_target_by_erk(tmp_path):
    run = random_at_density(_spec(), 0.5, "erk", seed=0, root=tmp_path, **KW)
    masks = load_masks(run.dir / "masks.pt")
    # ERK at 0.5 on fc1 (32, 12) and out (4, 32): eps = 256 / (44 + 36) = 3.2, so
    # fc1 keeps 3.2 * 44 = 140.8 -> 141 and out 0.9 * 128 = 115.2 -> 115 weights
    assert {n: int(m.sum()) for n, m in masks.items()} == {"fc1.weight": 141, "out.weight": 115}
    assert density(masks) == 0.5
    assert run.spec.parent.step == 0


# --- data a spec does not name -------------------------------------------------------------


def test_preloaded_data_the_spec_does_not_name_is_refused(tmp_path):
    spec = _spec()
    train_split = get_dataset("test-blobs", split="train")
    test_split = get_dataset("test-blobs", split="test")
    with pytest.raises(LandscapeError, match=r"subset\(100, seed=0\)"):
        train(spec, tmp_path, data=(train_split.subset(100), test_split), **KW)
    with pytest.raises(LandscapeError, match="subset"):
        imp(spec, levels=1, root=tmp_path, data=(train_split.subset(100), test_split), **KW)
    by_hand = Split(train_split.x.clone(), train_split.y.clone(), train_split.info)
    with pytest.raises(LandscapeError, match="a Split built by hand"):
        train(spec, tmp_path, data=(by_hand, test_split), **KW)
    unnamed_test = dataclasses.replace(test_split, origin=None)
    with pytest.raises(LandscapeError, match="test data given is a Split built by hand"):
        train(spec, tmp_path, data=(train_split, unnamed_test), **KW)
    assert not tmp_path.joinpath(spec.run_hash()).exists()
    # the whole splits are accepted
    run = train(spec, tmp_path, data=(train_split, test_split), **KW)
    assert run.saved_steps() == [0, 30]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda root: imp(_spec(), levels=1, scope="local", root=root), "unknown scope"),
        (
            lambda root: imp(_spec(), levels=1, rewind_step=_spec().train.steps, root=root),
            "not before",
        ),
        (lambda root: one_shot(_spec(), 0.0, root=root), "target_density must lie in"),
        (lambda root: one_shot(_spec(), 1.0, root=root), "target_density must lie in"),
    ],
)
def test_bad_settings_are_refused_before_any_training(tmp_path, call, message):
    with pytest.raises(LandscapeError, match=message):
        call(tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
