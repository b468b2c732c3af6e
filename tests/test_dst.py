"""Dynamic sparse training controllers, FreeTickets ensembles and training FLOPs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from scipy import stats
from torch import nn

from landscape.errors import LandscapeError
from landscape.io import load_checkpoint, read_rows
from landscape.sparse import forward_flops, hamming_distance, layer_flops, layer_positions
from landscape.specs import DataSpec, ModelSpec, RunSpec, Seeds, TrainSpec
from landscape.train import (
    EDST,
    MEST,
    SET,
    GraNet,
    LoopState,
    RigL,
    child_spec,
    dense_ensemble,
    dst_ensemble,
    edst_ensemble,
    edst_spec,
    make_dst,
    run_key,
    train,
    training_flops,
)
from landscape.train.dst import drop_fraction_at


def _spec(steps: int = 40, **train) -> RunSpec:
    train = {"lr": 0.05, "steps": steps, "batch_size": 32, **train}
    return RunSpec(
        data=DataSpec("test-blobs"),
        model=ModelSpec("mlp", {"widths": [32]}),
        train=TrainSpec(**train),
        seeds=Seeds(init_seed=1, noise_seed=0),
    )


OPTIONS = {"density": 0.3, "update_every": 5, "distribution": "uniform"}


def _state(model: nn.Module, step: int, run_dir: Path, steps: int = 100) -> LoopState:
    spec = _spec(steps)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return LoopState(spec, run_dir, model, optimizer, step, 0, 10)


def _layer_counts(run) -> dict[str, set[int]]:
    counts: dict[str, set[int]] = {}
    for row in read_rows(run.dir / "dst.csv"):
        counts.setdefault(row["layer"], set()).add(row["active"])
    return counts


@pytest.mark.parametrize("method", ["set", "rigl", "mest"])
def test_per_layer_density_is_the_same_after_every_update(runs, method):
    run = dst_ensemble(_spec(), method, 1, runs, options=OPTIONS).runs[0]
    rows = read_rows(run.dir / "dst.csv")
    assert {r["step"] for r in rows} == {0, 5, 10, 15, 20, 25}  # T_end = 0.75 x 40 = 30
    assert all(len(c) == 1 for c in _layer_counts(run).values())
    assert sum(r["moved"] for r in rows) > 0  # the masks did change
    ckpt = load_checkpoint(run.checkpoint_path(40))
    for name, mask in ckpt.controllers[method]["masks"].items():
        assert torch.all(ckpt.model[name][~mask] == 0)
        assert int(mask.sum()) == round(0.3 * mask.numel())


def test_edst_keeps_layer_densities_through_its_large_jumps(runs):
    ensemble = edst_ensemble(_spec(), 3, runs, explore_steps=12, phase_steps=10, options=OPTIONS)
    run = ensemble.runs[0]
    events = {(r["step"], r["event"]) for r in read_rows(run.dir / "dst.csv")}
    # the jump follows the ticket saved at steps 22 and 32; its mask rules from step 23 on
    assert {(23, "refine"), (33, "refine")} <= events
    assert not {(22, "update"), (32, "update")} & events  # tickets are saved as trained
    assert all(len(c) == 1 for c in _layer_counts(run).values())
    masks = [m.masks for m in ensemble.members]
    assert [m.step for m in ensemble.members] == [22, 32, 42]
    for member in ensemble.members:  # every ticket is trained: its weights are nonzero
        weights = load_checkpoint(run.checkpoint_path(member.step)).model
        for name, mask in member.masks.items():
            assert torch.count_nonzero(weights[name]) == int(mask.sum())
    for i in range(3):
        for j in range(i + 1, 3):
            assert hamming_distance(masks[i], masks[j]) > 0  # M distinct tickets


def test_set_grows_uniformly_and_only_at_inactive_positions(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(10, 4, bias=False)
    mask = torch.zeros(4, 10, dtype=torch.bool)
    mask[:, :5] = True  # 20 active, 20 inactive
    counts = torch.zeros(4, 10)
    trials = 400
    for step in range(trials):
        ctrl = SET(0.5, masks={"weight": mask}, update_every=1, drop_fraction=0.2)
        state = _state(model, step, tmp_path)
        with torch.no_grad():
            model.weight.copy_(torch.arange(1.0, 41.0).view(4, 10))
        ctrl.masks = {"weight": mask.clone()}
        ctrl.ever = {"weight": mask.clone()}
        ctrl.records = [{}]
        ctrl._refresh(model)
        ctrl.drop_and_grow(state, 0.2, "random", "update")
        new = ctrl.masks["weight"]
        grown = new & ~(mask & (model.weight.abs() > 0))
        counts += grown.float()
        assert int(new.sum()) == 20
    # magnitude drop removes the 4 smallest active weights (values 1..4 in row 0): they may
    # come back; growth lands only on positions inactive after the drop
    kept_after_drop = mask.clone()
    kept_after_drop[0, :4] = False
    assert counts[kept_after_drop].sum() == 0
    candidates = counts[~kept_after_drop]
    assert candidates.sum() == 4 * trials
    # uniform over the 24 candidates: a chi-square test at a fixed seed
    p = stats.chisquare(candidates.numpy()).pvalue
    assert p > 0.01


def test_rigl_grows_the_largest_gradients_at_zero_with_momentum_reset(tmp_path):
    model = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5, -0.1, 0.0, 0.0], [0.3, 0.0, -0.7, 0.0]]))
    mask = model.weight != 0  # 4 active of 8
    ctrl = RigL(0.5, masks={"weight": mask}, update_every=10, drop_fraction=0.5, decay="constant")
    state = _state(model, 9, tmp_path)
    ctrl.on_start(state)
    model.weight.grad = torch.tensor([[9.0, 0.0, 1.0, 3.0], [0.0, 8.0, 0.5, 2.0]])
    state.optimizer.step()  # creates momentum everywhere (dense gradient)
    ctrl.after_backward(state)  # step 9 -> 10 is an update: the dense gradient is kept
    state.step = 10
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5, -0.1, 0.0, 0.0], [0.3, 0.0, -0.7, 0.0]]))
    ctrl.after_step(state)
    new = ctrl.masks["weight"]
    # drop 2 smallest magnitudes (-0.1 and 0.3); grow the 2 largest |grad| among the
    # positions inactive after the drop: (1, 1) with 8 and (0, 3) with 3 (not (0, 0): active)
    expected = torch.tensor([[True, False, False, True], [False, True, True, False]])
    assert torch.equal(new, expected)
    grown = torch.tensor([[False, False, False, True], [False, True, False, False]])
    assert torch.all(model.weight[grown] == 0)
    momentum = state.optimizer.state[model.weight]["momentum_buffer"]
    assert torch.all(momentum[~(expected & mask)] == 0)
    assert torch.all(momentum[expected & mask] != 0)
    rows = [r for r in ctrl.records if r["event"] == "update"]
    assert rows[0]["moved"] == 2 and rows[0]["dense_gradient"] is True
    assert rows[0]["itop_rate"] == pytest.approx(6 / 8)


def test_mest_drops_by_magnitude_plus_gradient(tmp_path):
    model = nn.Linear(4, 1, bias=False)
    weights = torch.tensor([[0.1, 0.2, 0.3, 0.0]])
    with torch.no_grad():
        model.weight.copy_(weights)
    mask = weights != 0
    ctrl = MEST(
        0.75,
        masks={"weight": mask},
        update_every=1,
        drop_fraction=0.34,
        decay="constant",
        gradient_weight=1.0,
    )
    state = _state(model, 0, tmp_path)
    ctrl.on_start(state)
    model.weight.grad = torch.tensor([[0.5, 0.0, 0.0, 0.0]])
    ctrl.after_backward(state)
    state.step = 1
    ctrl.after_step(state)
    # scores 0.6, 0.2, 0.3: the weight of magnitude 0.2 goes (it may regrow, at zero), not
    # the smallest one (0.1)
    assert model.weight[0, 0].item() == pytest.approx(0.1) and model.weight[0, 1].item() == 0
    assert ctrl.masks["weight"][0, 0] and int(ctrl.masks["weight"].sum()) == 3


def test_cosine_drop_schedule():
    assert drop_fraction_at(0, 0.5, 100) == pytest.approx(0.5)
    assert drop_fraction_at(50, 0.5, 100) == pytest.approx(0.25)
    assert drop_fraction_at(25, 0.5, 100) == pytest.approx(0.25 * (1 + math.cos(math.pi / 4)))
    assert drop_fraction_at(100, 0.5, 100) == 0.0
    assert drop_fraction_at(30, 0.5, 100, "constant") == 0.5
    ctrl = RigL(0.2, update_every=10)
    assert ctrl.end(400) == 300  # T_end defaults to 0.75 of the run
    assert [s for s in range(400) if ctrl.update_due(s, 400)] == list(range(10, 300, 10))


def test_granet_prunes_gradually_to_its_density(runs):
    ctrl = GraNet(0.2, init_density=0.6, update_every=5, distribution="uniform")
    assert ctrl.density_at(0, 40) == pytest.approx(0.6)
    assert ctrl.density_at(10, 40) == pytest.approx(0.2 + 0.4 * 0.5**3)
    assert ctrl.density_at(20, 40) == pytest.approx(0.2)
    run = train(_spec(), runs, controllers=[ctrl])
    rows = read_rows(run.dir / "dst.csv")
    density = {r["step"]: r["density"] for r in rows if r["event"] in ("init", "update")}
    assert density[0] == pytest.approx(0.6, abs=0.01)
    assert density[20] == pytest.approx(0.2, abs=0.01)
    assert all(density[a] >= density[b] for a, b in zip(sorted(density), sorted(density)[1:]))


def test_granet_reaches_its_density_when_prune_end_is_not_an_update_step(runs):
    ctrl = GraNet(0.2, init_density=0.6, update_every=6, distribution="uniform")
    assert ctrl.last_prune(40) == 18  # the window ends at 20; updates fall at 6, 12, 18
    run = train(_spec(), runs, controllers=[ctrl])
    final = read_rows(run.dir / "dst.csv")[-1]
    assert final["density"] == pytest.approx(0.2, abs=0.005)
    with pytest.raises(LandscapeError, match="never reach density"):
        train(_spec(), runs, controllers=[GraNet(0.2, update_every=25, prune_end=20)])


@pytest.mark.parametrize(
    "method, cut",
    [("set", 20), ("mest", 23), ("rigl", 20), ("granet", 23), ("edst", 22), ("edst", 27)],
)
def test_resumed_dst_run_is_bitwise_equal(tmp_path, method, cut):
    """Cut at an update step (20), between updates (23, 27) or at an EDST ticket (22)."""

    def make():
        if method == "edst":
            return EDST(0.3, explore_steps=12, phase_steps=10, update_every=4)
        return make_dst(method, **OPTIONS)

    spec = _spec() if method != "edst" else edst_spec(_spec(), 3, explore_steps=12, phase_steps=10)
    whole = train(spec, tmp_path / "a", controllers=[make()])
    train(spec, tmp_path / "b", controllers=[make()], stop_at=cut)
    resumed = train(spec, tmp_path / "b", controllers=[make()])
    end = spec.train.steps
    a, b = (
        load_checkpoint(whole.checkpoint_path(end)),
        load_checkpoint(resumed.checkpoint_path(end)),
    )
    assert all(torch.equal(a.model[k], b.model[k]) for k in a.model)
    momentum = [s["momentum_buffer"] for s in a.optimizer["state"].values()]
    again = [s["momentum_buffer"] for s in b.optimizer["state"].values()]
    assert all(torch.equal(x, y) for x, y in zip(momentum, again))
    assert read_rows(whole.dir / "dst.csv") == read_rows(resumed.dir / "dst.csv")


def test_edst_spec_follows_the_freetickets_learning_rate_cycle():
    spec = edst_spec(_spec(lr=0.1), 3, explore_steps=30, phase_steps=20)
    t = spec.train
    assert t.steps == 90 and set(t.checkpoint_steps) == {50, 70}
    lrs = [t.lr_at(s) for s in (0, 29, 30, 39, 40, 49, 50, 60, 70, 80, 89)]
    assert lrs == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.01, 0.001, 0.01, 0.001, 0.001]
    )


def test_flops_of_a_dense_and_a_sparse_mlp_match_the_analytic_count():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 4))
    assert forward_flops(model, (1, 12)) == 2 * (12 * 32 + 32 * 4)
    masks = {"1.weight": torch.rand(32, 12) < 0.25, "3.weight": torch.ones(4, 32, dtype=torch.bool)}
    expected = 2 * (int(masks["1.weight"].sum()) + 4 * 32)
    assert forward_flops(model, (1, 12), masks) == expected
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 36, 2))
    assert layer_positions(conv, (3, 6, 6)) == {"0.weight": 36, "2.weight": 1}
    assert layer_flops(conv, (3, 6, 6))["0.weight"] == 2 * 36 * 8 * 3 * 9


def test_training_flops_count_rigls_dense_gradient_steps(runs):
    dense = dense_ensemble(_spec(), 1, runs).runs[0]
    f_dense = 2 * (12 * 32 + 32 * 4) * 32  # one forward pass on a batch of 32
    assert training_flops(dense) == pytest.approx(3 * f_dense * 40)
    rigl = dst_ensemble(_spec(), "rigl", 1, runs, options=OPTIONS).runs[0]
    set_ = dst_ensemble(_spec(), "set", 1, runs, options=OPTIONS).runs[0]
    f_sparse = 2 * (round(0.3 * 384) + round(0.3 * 128)) * 32
    assert training_flops(set_) == pytest.approx(3 * f_sparse * 40)
    # five updates (steps 5..25), each one step of 2 f_S + f_D instead of 3 f_S
    assert training_flops(rigl) == pytest.approx(3 * f_sparse * 40 + 5 * (f_dense - f_sparse))
    assert training_flops(rigl, dense=True) == training_flops(dense)


def test_training_flops_of_a_child_count_only_its_own_steps(runs):
    parent = _spec(checkpoint_steps=(20,))
    set_ = SET(**OPTIONS)
    train(parent, runs, controllers=[set_], stop_at=20)
    child = train(
        child_spec(parent, 20, 1, run_key(parent, [set_])), runs, controllers=[SET(**OPTIONS)]
    )
    f_sparse = 2 * (round(0.3 * 384) + round(0.3 * 128)) * 32
    assert training_flops(child) == pytest.approx(3 * f_sparse * 20)
    assert training_flops(child, dense=True) == pytest.approx(3 * 2 * (12 * 32 + 32 * 4) * 32 * 20)


def test_bad_dst_settings_are_refused():
    with pytest.raises(LandscapeError, match="choose one of"):
        make_dst("snip")
    with pytest.raises(LandscapeError, match="drop_fraction"):
        RigL(0.2, drop_fraction=1.0)
    with pytest.raises(LandscapeError, match="fixes its growth"):
        SET(0.2, growth="gradient")
    with pytest.raises(LandscapeError, match="init_density"):
        GraNet(0.5, init_density=0.2)
    with pytest.raises(LandscapeError, match="lr_factors"):
        TrainSpec(schedule="step", milestones=(5,), lr_factors=(0.1, 0.2))


def test_edst_refuses_a_run_of_the_wrong_length(runs):
    with pytest.raises(LandscapeError, match="edst_spec"):
        train(_spec(), runs, controllers=[EDST(0.3, explore_steps=10, phase_steps=5)])
    assert not runs.exists()  # refused before anything was written
