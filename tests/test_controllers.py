"""The controller interface carries what IMP, DST and distillation need (ahead of them).

Each test writes a small controller of the kind a later method needs and checks that the
loop gives it the right information at the right time, and that resume stays exact.
"""

from __future__ import annotations

import torch

from landscape.io import load_checkpoint, save_checkpoint
from landscape.sparse import apply_masks, density, prunable_parameters
from landscape.specs import DataSpec, ModelSpec, RunSpec, Seeds, TrainSpec
from landscape.train import Controller, FixedMask, build_model, child_spec, train


def _spec(steps: int = 24, checkpoint_steps=(4,)) -> RunSpec:
    return RunSpec(
        data=DataSpec("test-blobs"),
        model=ModelSpec("mlp", {"widths": [16]}),
        train=TrainSpec(lr=0.05, steps=steps, batch_size=32, checkpoint_steps=checkpoint_steps),
        seeds=Seeds(init_seed=4, noise_seed=0),
    )


def _magnitude_masks(state: dict[str, torch.Tensor], names, keep: float):
    """Layerwise magnitude masks keeping the largest ``keep`` fraction of each tensor."""
    masks = {}
    for name in names:
        w = state[name].abs().flatten()
        k = max(1, int(keep * w.numel()))
        threshold = w.kthvalue(w.numel() - k + 1).values
        masks[name] = state[name].abs() >= threshold
    return masks


def test_imp_round_rewinds_to_a_saved_step_under_a_mask(runs):
    parent = _spec()
    dense = train(parent, runs)
    names = list(prunable_parameters(build_model(parent, 4, (1, 12))))
    masks = _magnitude_masks(load_checkpoint(dense.checkpoint_path(24)).model, names, 0.4)
    # the child starts from the dense parent's step 4 (rewinding) and trains under the mask
    sparse = train(child_spec(parent, 4, noise_seed=0), runs, controllers=[FixedMask(masks)])
    rewound = load_checkpoint(dense.checkpoint_path(4)).model
    model = build_model(parent, 4, (1, 12))
    model.load_state_dict(rewound)
    apply_masks(model, masks)
    start = load_checkpoint(sparse.checkpoint_path(4)).model
    for k, v in model.state_dict().items():
        assert torch.equal(start[k], v)
    end = load_checkpoint(sparse.checkpoint_path(24)).model
    assert all(torch.all(end[n][~m] == 0) for n, m in masks.items())
    assert abs(density(masks) - 0.4) < 0.01


class RegrowEvery(Controller):
    """A SET/RigL-shaped updater: every ``interval`` steps drop the smallest kept weights of
    one layer and grow the same number where the dense gradient is largest, zeroing the
    grown weights and their momentum."""

    name = "regrow"

    def __init__(self, masks, interval: int = 5, fraction: float = 0.2):
        self.masks = {k: v.clone() for k, v in masks.items()}
        self.interval, self.fraction = interval, fraction
        self.grad = None
        self.updates = 0
        self.grown_momentum = []

    def on_start(self, state):
        apply_masks(state.model, self.masks)

    def after_backward(self, state):
        if (state.step + 1) % self.interval == 0:  # the step about to be taken updates
            self.grad = state.model.fc1.weight.grad.detach().clone()

    def after_step(self, state):
        if self.grad is not None:
            w, mask = state.model.fc1.weight, self.masks["fc1.weight"]
            n = max(1, int(self.fraction * int(mask.sum())))
            kept_mag = torch.where(mask, w.detach().abs(), torch.inf).flatten()
            drop = kept_mag.topk(n, largest=False).indices
            grow_score = torch.where(mask, -torch.inf, self.grad.abs()).flatten()
            grow = grow_score.topk(n).indices
            flat = mask.flatten()
            flat[drop] = False
            flat[grow] = True
            buf = state.optimizer.state[w]["momentum_buffer"]
            with torch.no_grad():
                w.view(-1)[grow] = 0.0
                buf.view(-1)[grow] = 0.0
            self.grown_momentum.append(float(buf.view(-1)[grow].abs().sum()))
            self.grad = None
            self.updates += 1
        apply_masks(state.model, self.masks)

    def state_dict(self):
        return {"masks": dict(self.masks), "updates": self.updates}

    def load_state_dict(self, state):
        self.masks = {k: v.clone() for k, v in state["masks"].items()}
        self.updates = state["updates"]


def test_dst_updater_reads_dense_gradients_and_edits_optimizer_state(tmp_path):
    spec = _spec()
    model = build_model(spec, 4, (1, 12))
    names = list(prunable_parameters(model))
    start = _magnitude_masks(model.state_dict(), names, 0.5)
    ctl = RegrowEvery(start)
    run = train(spec, tmp_path / "a", controllers=[ctl])
    assert ctl.updates == 24 // 5
    assert ctl.grown_momentum == [0.0] * ctl.updates
    assert not torch.equal(ctl.masks["fc1.weight"], start["fc1.weight"])
    assert int(ctl.masks["fc1.weight"].sum()) == int(start["fc1.weight"].sum())
    final = load_checkpoint(run.checkpoint_path(24))
    assert torch.all(final.model["fc1.weight"][~ctl.masks["fc1.weight"]] == 0)
    # the controller's evolving mask is checkpointed, so resume is exact
    train(spec, tmp_path / "b", controllers=[RegrowEvery(start)], stop_at=13)
    resumed = train(spec, tmp_path / "b", controllers=[RegrowEvery(start)])
    again = load_checkpoint(resumed.checkpoint_path(24))
    assert all(torch.equal(again.model[k], v) for k, v in final.model.items())


class ExpertTrajectory(Controller):
    """Saves the weights at every epoch boundary, as trajectory matching needs."""

    name = "trajectory"

    def on_start(self, state):
        if state.step == 0:
            self._save(state, 0)

    def on_epoch_end(self, state):
        self._save(state, state.step // state.steps_per_epoch)

    def _save(self, state, epoch):
        save_checkpoint(
            state.run_dir / "trajectory" / f"epoch_{epoch}.pt",
            state.model,
            meta={"epoch": epoch, "step": state.step},
        )


def test_expert_trajectories_are_saved_every_epoch(runs):
    spec = _spec(steps=24, checkpoint_steps=(8, 16))  # 256 / 32 = 8 steps per epoch
    run = train(spec, runs, controllers=[ExpertTrajectory()])
    files = sorted((run.dir / "trajectory").iterdir())
    assert [f.name for f in files] == [f"epoch_{e}.pt" for e in range(4)]
    for epoch in range(4):
        saved = load_checkpoint(run.dir / "trajectory" / f"epoch_{epoch}.pt")
        assert saved.meta["step"] == 8 * epoch
        ckpt = load_checkpoint(run.checkpoint_path(8 * epoch))
        assert all(torch.equal(saved.model[k], v) for k, v in ckpt.model.items())
