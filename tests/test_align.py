"""Permutation alignment by weight matching: function-preserving permutations for every
family with a spec, exact recovery of a hidden permutation, masks, and real alignments."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.analysis import (
    align,
    interpolate,
    permutation_spec,
    permute,
    permute_masks,
    random_permutations,
    register_permutation_spec,
    weight_matching,
)
from landscape.analysis.align import PermutationSpec
from landscape.errors import LandscapeError
from landscape.models import create_model
from landscape.sparse import apply_masks, random_masks

# (id, model name, in_shape, constructor options): a small instance of every family
CASES = [
    ("mlp", "mlp", (1, 12), {"widths": [16, 8]}),
    ("mlp-linear", "mlp", (1, 12), {"widths": []}),
    ("lenet300-100", "lenet300-100", (1, 6, 6), {}),
    ("conv1d", "conv1d", (1, 40), {"channels": 6}),
    ("convnet-instance", "convnet", (1, 12, 12), {"width": 8, "depth": 2, "norm": "instance"}),
    ("convnet-group", "convnet", (1, 12, 12), {"width": 8, "depth": 2, "norm": "group"}),
    ("convnet-batch", "convnet", (1, 12, 12), {"width": 8, "depth": 2, "norm": "batch"}),
    ("convnet-none", "convnet", (1, 12, 12), {"width": 8, "depth": 2, "norm": "none"}),
    ("vgg11", "vgg11", (3, 8, 8), {"width": 0.125}),
    ("vgg16-no-bn", "vgg16", (3, 8, 8), {"width": 0.125, "batch_norm": False}),
    ("resnet20", "resnet20", (3, 8, 8), {"width": 0.5}),
    ("wrn", "wrn", (3, 8, 8), {"depth": 10, "width": 1}),
]


def _model(name: str, shape, kwargs, seed: int = 0) -> nn.Module:
    """A model whose norm layers hold random scales, shifts and running statistics, so that
    a permutation that misses one of them shows in the outputs."""
    torch.manual_seed(seed)
    model = create_model(name, num_classes=4, in_shape=shape, **kwargs)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


def _x(shape, n: int = 6) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(7))


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name, shape, kwargs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_random_permutations_keep_the_function(name, shape, kwargs):
    model = _model(name, shape, kwargs)
    perms = random_permutations(model, generator=torch.Generator().manual_seed(1))
    permuted = permute(model, perms)
    x = _x(shape)
    with torch.no_grad():
        ref = model(x)
        torch.testing.assert_close(permuted(x), ref, rtol=1e-5, atol=1e-5 * ref.abs().max())
        if perms:  # the weights did move: the test would catch a permutation left out
            moved = [
                not torch.equal(v, permuted.state_dict()[k]) for k, v in model.state_dict().items()
            ]
            assert any(moved)
        # training mode too: batch statistics permute with their channels
        model.train(), permuted.train()
        torch.testing.assert_close(permuted(x), model(x), rtol=1e-5, atol=1e-5 * ref.abs().max())


@pytest.mark.parametrize("name, shape, kwargs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_weight_matching_recovers_a_hidden_permutation(name, shape, kwargs):
    model = _model(name, shape, kwargs)
    hidden = random_permutations(model, generator=torch.Generator().manual_seed(2))
    copy_b = permute(model, hidden)
    found = weight_matching(model, copy_b, generator=torch.Generator().manual_seed(3))
    # permute(copy_b, found) undoes ``hidden``: found is its inverse, exactly
    assert set(found) == set(hidden)
    for p, perm in hidden.items():
        assert found[p].dtype == torch.int64
        assert torch.equal(found[p], torch.argsort(perm)), p
    aligned = align(model, copy_b)
    for k, v in model.state_dict().items():
        assert torch.equal(aligned.model.state_dict()[k], v), k
    assert aligned.converged and aligned.objective_after >= aligned.objective_before
    # the line between a model and its aligned permuted copy is flat: no barrier
    x = _x(shape, 32)
    y = torch.randint(0, 4, (32,), generator=torch.Generator().manual_seed(8))
    line = interpolate(model, aligned.model, (x, y), points=5, bn_reset=False)
    assert line.loss_barrier == pytest.approx(0.0, abs=1e-5)
    assert line.error_barrier == pytest.approx(0.0, abs=1e-9)


def test_interpolate_aligns_a_permuted_copy_and_reports_both_lines():
    model = _model("mlp", (1, 12), {"widths": [32]})
    copy_b = permute(model, random_permutations(model))
    x = _x((1, 12), 64)
    y = model(x).argmax(1).detach()  # the model's own labels: error 0 at both ends
    plain = interpolate(model, copy_b, (x, y), points=5)
    line = interpolate(model, copy_b, (x, y), points=5, align=True)
    assert line.unaligned == plain  # the unaligned line is the plain one
    assert plain.loss_barrier > 0.05  # a permuted copy is far away in weight space
    assert line.loss_barrier == pytest.approx(0.0, abs=1e-5)
    assert max(line.error) == 0.0
    out = line.to_dict()
    assert out["unaligned"]["loss_barrier"] == plain.loss_barrier
    json.dumps(out)  # JSON-ready
    rows = line.rows(pair="ab")
    assert len(rows) == 10 and [r["aligned"] for r in rows] == [False] * 5 + [True] * 5
    assert rows[0]["pair"] == "ab" and "aligned" not in plain.rows()[0]
    assert "unaligned" not in plain.to_dict()


@pytest.mark.parametrize("case", ["mlp", "convnet-batch", "resnet20"])
def test_masks_permute_with_their_weights(case):
    _, name, shape, kwargs = next(c for c in CASES if c[0] == case)
    model = _model(name, shape, kwargs)
    masks = random_masks(model, 0.3, torch.Generator().manual_seed(4))
    perms = random_permutations(model, generator=torch.Generator().manual_seed(5))
    before = {k: m.clone() for k, m in masks.items()}
    moved = permute_masks(model, masks, perms)
    # the permuted masked model is the masked permuted model
    masked_then_permuted = permute(apply_masks(copy.deepcopy(model), masks), perms)
    permuted_then_masked = apply_masks(permute(model, perms), moved)
    for k, v in masked_then_permuted.state_dict().items():
        assert torch.equal(permuted_then_masked.state_dict()[k], v), k
    assert all(torch.equal(masks[k], before[k]) for k in masks)  # the input is kept
    assert {k: int(m.sum()) for k, m in moved.items()} == {
        k: int(m.sum()) for k, m in masks.items()
    }
    # align carries B's masks along: aligning B onto itself permuted undoes the permutation
    found = align(model, permute(model, perms), masks_b=moved)
    assert all(torch.equal(found.masks[k], masks[k]) for k in masks)


def _trained_mlp(seed: int, x, y) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model("mlp", num_classes=4, in_shape=(1, 12), widths=[32])
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(150):
        batch = torch.randint(0, len(y), (32,), generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        F.cross_entropy(model(x[batch]), y[batch]).backward()
        opt.step()
    return model


def test_aligning_two_trained_networks_lowers_their_barrier():
    from landscape.data import get_dataset

    train = get_dataset("test-blobs", split="train")
    test = get_dataset("test-blobs", split="test")
    a, b = (_trained_mlp(seed, train.x, train.y) for seed in (0, 1))
    found = align(a, b, generator=torch.Generator().manual_seed(0))
    assert found.objective_after > found.objective_before
    assert found.converged and 1 <= found.iterations < 100
    line = interpolate(a, b, test, points=11, align=True)
    assert line.loss_barrier < line.unaligned.loss_barrier
    assert line.loss[0] == line.unaligned.loss[0]  # the same endpoints: A, and B's function
    assert line.loss[-1] == pytest.approx(line.unaligned.loss[-1], rel=1e-5)
    # the order of the sweeps is random but seeded
    again = align(a, b, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(again.perms[p], found.perms[p]) for p in found.perms)
    assert json.loads(json.dumps(found.to_dict()))["perms"]["fc1"] == found.perms["fc1"].tolist()


def test_inputs_are_left_as_found():
    _, name, shape, kwargs = next(c for c in CASES if c[0] == "convnet-batch")
    a, b = _model(name, shape, kwargs, seed=0), _model(name, shape, kwargs, seed=1)
    a.train()
    b.eval()
    b.conv1.weight.requires_grad_(False)
    states = _state(a), _state(b)
    masks = random_masks(b, 0.5, torch.Generator().manual_seed(0))
    found = align(a, b, masks_b=masks)
    interpolate(
        a, b, (_x(shape, 8), torch.zeros(8, dtype=torch.long)), points=3, bn_reset=False, align=True
    )
    assert a.training and not b.training
    assert not b.conv1.weight.requires_grad and a.conv1.weight.requires_grad
    for model, state in zip((a, b), states):
        for k, v in model.state_dict().items():
            assert torch.equal(v, state[k]), k
    # the aligned copy keeps B's modes and flags
    assert not found.model.training and not found.model.conv1.weight.requires_grad


def test_group_norm_permutes_within_groups_only():
    """GroupNorm normalises each group of channels together: a channel moved into another
    group changes the function, so its permutations are block-diagonal."""
    _, name, shape, kwargs = next(c for c in CASES if c[0] == "convnet-group")
    model = _model(name, shape, kwargs)
    spec = permutation_spec(model)
    assert spec.blocks == {"conv1": 4, "conv2": 4}  # 8 channels in 4 groups of 2
    for perm in random_permutations(model, generator=torch.Generator().manual_seed(3)).values():
        assert torch.equal(perm // 2, torch.arange(8) // 2)
    across = {"conv1": torch.tensor([2, 1, 0, 3, 4, 5, 6, 7]), "conv2": torch.arange(8)}
    with pytest.raises(LandscapeError, match="between GroupNorm groups"):
        permute(model, across)
    # what the refusal prevents: the same reordering, done by hand, changes the outputs
    wrong = copy.deepcopy(model)
    with torch.no_grad():
        for k in ("conv1.weight", "conv1.bias", "norm1.weight", "norm1.bias"):
            wrong.get_parameter(k).copy_(model.get_parameter(k)[across["conv1"]])
        wrong.conv2.weight.copy_(model.conv2.weight[:, across["conv1"]])
    x = _x(shape)
    assert not torch.allclose(wrong(x), model(x), atol=1e-4)
    # instance norm (one channel per group) allows any permutation
    instance = _model("convnet", shape, {**kwargs, "norm": "instance"})
    assert set(permutation_spec(instance).blocks.values()) == {1}


def test_specs_name_their_axes():
    model = _model("resnet20", (3, 8, 8), {"width": 0.5})
    spec = permutation_spec(model)
    assert isinstance(spec, PermutationSpec) and spec.family == "resnet20"
    # one stream per stage, one inner permutation per block
    assert {p for p in spec.sizes if p.startswith("stage")} == {"stage1", "stage2", "stage3"}
    assert len(spec.sizes) == 3 + 9
    assert spec.axes["blocks.3.shortcut.0.weight"] == ("stage2", "stage1", None, None)
    assert spec.axes["blocks.4.conv2.weight"] == ("stage2", "blocks.4.conv1", None, None)
    assert spec.axes["blocks.4.bn2.running_var"] == ("stage2",)
    assert spec.axes["fc.weight"] == (None, "stage3")
    conv1d = permutation_spec(_model("conv1d", (1, 40), {"channels": 6}))
    assert conv1d.axes["out.weight"] == (None, "conv3") and conv1d.sizes["conv3"] == 6


def test_new_families_can_register_a_spec():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(12, 8)
            self.out = nn.Linear(8, 4)

        def forward(self, x):
            return self.out(torch.tanh(self.hidden(x.flatten(1))))

    with pytest.raises(LandscapeError, match="no permutation spec for Net"):
        permutation_spec(Net())

    @register_permutation_spec(Net, "tanh-net")
    def _spec(model):
        axes = {"hidden.weight": ("h", None), "hidden.bias": ("h",)}
        axes |= {"out.weight": (None, "h"), "out.bias": (None,)}
        return PermutationSpec("tanh-net", axes, {"h": 8}, {"h": 1})

    torch.manual_seed(0)
    net = Net()
    perms = random_permutations(net)
    x = _x((1, 12))
    torch.testing.assert_close(permute(net, perms)(x), net(x))
    assert torch.equal(weight_matching(net, permute(net, perms))["h"], torch.argsort(perms["h"]))


def test_unknown_families_are_refused_with_the_supported_ones():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 4))
    with pytest.raises(LandscapeError) as info:
        align(model, copy.deepcopy(model))
    message = str(info.value)
    for family in ("mlp", "lenet300-100", "conv1d", "convnet", "vgg11", "vgg16", "resnet20"):
        assert family in message
    with pytest.raises(LandscapeError, match="no permutation spec"):
        interpolate(model, copy.deepcopy(model), (_x((1, 12)), torch.zeros(6).long()), align=True)
