"""Masks, layer densities (uniform / ER / ERK) and pruning, on hand-built networks.

Every expected number is written out here (ERK solved by hand from Evci et al. 2020,
magnitude pruning read off hand-set weights), never taken from the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.models import create_model
from landscape.sparse import (
    apply_masks,
    check_masks,
    density,
    full_masks,
    hamming_distance,
    intersection,
    jaccard_distance,
    layer_densities,
    layer_density,
    load_masks,
    magnitude_prune,
    mask_digest,
    prunable_parameters,
    random_masks,
    random_prune,
    save_masks,
    shuffle_masks,
    union,
)


def _mlp(widths=(32,)) -> nn.Module:
    """fc1 (32, 12), out (4, 32) for the default widths: 384 + 128 = 512 prunable weights."""
    torch.manual_seed(0)
    return create_model("mlp", num_classes=4, in_shape=(1, 12), widths=list(widths))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _bool(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)


def _kept(masks) -> dict[str, int]:
    return {n: int(m.sum()) for n, m in masks.items()}


def _weighted_mean(densities: dict[str, float], model: nn.Module) -> float:
    params = dict(model.named_parameters())
    total = sum(params[n].numel() for n in densities)
    return sum(d * params[n].numel() for n, d in densities.items()) / total


# --- layer densities: uniform, ER, ERK -----------------------------------------------------


def test_erk_matches_the_formula_when_no_layer_saturates():
    # ERK score sum(shape)/prod(shape): fc1 (32, 12) -> 44/384, out (4, 32) -> 36/128.
    # density 0.5 keeps 256 of 512: eps = 256 / (44 + 36) = 3.2, so
    # fc1 = 3.2 * 44/384 = 0.3666..., out = 3.2 * 36/128 = 0.9 (below 1: no re-solve)
    got = layer_densities(_mlp(), 0.5, "erk")
    assert got.keys() == {"fc1.weight", "out.weight"}
    assert got["fc1.weight"] == pytest.approx(3.2 * 44 / 384, abs=1e-12)
    assert got["out.weight"] == pytest.approx(0.9, abs=1e-12)
    assert _weighted_mean(got, _mlp()) == pytest.approx(0.5, abs=1e-12)


def test_erk_keeps_a_layer_dense_that_the_formula_would_push_above_one():
    # density 0.7 keeps 358.4 of 512: eps = 358.4 / 80 = 4.48 puts out at 4.48 * 36/128 = 1.26,
    # so out stays dense (128 weights) and eps is solved again for fc1 alone:
    # (358.4 - 128) / 44 = 5.236..., fc1 = 5.236... * 44/384 = 230.4 / 384 = 0.6
    assert 4.48 * 36 / 128 > 1
    got = layer_densities(_mlp(), 0.7, "erk")
    assert got == {"fc1.weight": pytest.approx(0.6, abs=1e-12), "out.weight": 1.0}
    assert _weighted_mean(got, _mlp()) == pytest.approx(0.7, abs=1e-12)


def test_erk_solves_again_until_no_layer_exceeds_one():
    """A cascade: the first solve saturates only C; solving again saturates B as well."""
    model = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 8), nn.Linear(8, 2))
    # n: A 4096, B 512, C 16 (4624 in all); scores: A 128/4096, B 72/512, C 10/16
    target = 0.315
    budget = target * 4624
    eps1 = budget / (128 + 72 + 10)
    assert eps1 * 10 / 16 > 1 and eps1 * 72 / 512 < 1  # first pass: only C saturates
    eps2 = (budget - 16) / (128 + 72)
    assert eps2 * 72 / 512 > 1  # second pass: B saturates too
    eps3 = (budget - 16 - 512) / 128
    got = layer_densities(model, target, "erk")
    assert got == {
        "0.weight": pytest.approx(eps3 * 128 / 4096, abs=1e-12),  # 0.22669...
        "1.weight": 1.0,
        "2.weight": 1.0,
    }
    assert max(got.values()) <= 1.0
    assert _weighted_mean(got, model) == pytest.approx(target, abs=1e-12)


def _small_conv() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(128, 4))


def test_er_ignores_the_kernel_and_so_differs_from_erk_on_a_conv_net():
    model = _small_conv()
    # conv (8, 3, 3, 3): 216 weights, ER (3 + 8) / 24, ERK 17 / 216; linear (4, 128): 512
    # weights, score 132 / 512 for both. Density 0.3 keeps 218.4 of 728.
    er_eps = 218.4 / (216 * 11 / 24 + 132)
    erk_eps = 218.4 / (17 + 132)
    er = layer_densities(model, 0.3, "er")
    erk = layer_densities(model, 0.3, "erk")
    assert er["0.weight"] == pytest.approx(er_eps * 11 / 24, abs=1e-12)  # 0.4333
    assert er["3.weight"] == pytest.approx(er_eps * 132 / 512, abs=1e-12)  # 0.2438
    assert erk["0.weight"] == pytest.approx(erk_eps * 17 / 216, abs=1e-12)  # 0.1154
    assert erk["3.weight"] == pytest.approx(erk_eps * 132 / 512, abs=1e-12)  # 0.3779
    for got in (er, erk):
        assert _weighted_mean(got, model) == pytest.approx(0.3, abs=1e-12)


@pytest.mark.parametrize("target", [0.05, 0.3, 0.9, 1.0])
def test_uniform_is_the_target_in_every_layer_and_no_density_exceeds_one(target):
    model = create_model("convnet", num_classes=4, in_shape=(3, 6, 6), depth=2, width=8)
    assert layer_densities(model, target, "uniform") == {
        "conv1.weight": target,
        "conv2.weight": target,
        "out.weight": target,
    }
    for distribution in ("er", "erk"):
        got = layer_densities(model, target, distribution)
        assert all(0 < d <= 1.0 for d in got.values())
        assert _weighted_mean(got, model) == pytest.approx(target, abs=1e-9)


def test_spared_layers_stay_outside_the_distribution():
    # with the output spared only fc1 (384 weights) is counted: it gets the target
    assert layer_densities(_mlp(), 0.25, "erk", spare_output=True) == {
        "fc1.weight": pytest.approx(0.25, abs=1e-12)
    }
    # fc1 of (8, 8) spared: fc2 (8, 8) scores 16/64, out (4, 8) 12/32; 0.5 keeps 48 of 96,
    # eps = 48 / (16 + 12)
    assert layer_densities(_mlp(widths=(8, 8)), 0.5, "erk", spare_first=True) == {
        "fc2.weight": pytest.approx(48 / 28 * 16 / 64, abs=1e-12),
        "out.weight": pytest.approx(48 / 28 * 12 / 32, abs=1e-12),
    }


# --- which tensors get masks -------------------------------------------------------------


def test_spare_first_and_spare_output_leave_those_layers_out():
    model = _mlp(widths=(8, 8))
    assert list(full_masks(model)) == ["fc1.weight", "fc2.weight", "out.weight"]
    assert list(full_masks(model, spare_first=True)) == ["fc2.weight", "out.weight"]
    assert list(full_masks(model, spare_output=True)) == ["fc1.weight", "fc2.weight"]
    assert list(full_masks(model, spare_first=True, spare_output=True)) == ["fc2.weight"]
    pruned = magnitude_prune(model, 0.5, spare_first=True, spare_output=True)
    assert _kept(pruned) == {"fc2.weight": 32}  # half of 8 x 8, the rest has no mask
    masks = full_masks(model)
    assert all(m.dtype == torch.bool and bool(m.all()) for m in masks.values())
    assert [tuple(m.shape) for m in masks.values()] == [(8, 12), (8, 8), (4, 8)]


def test_biases_and_norm_parameters_are_never_prunable():
    model = nn.Sequential(
        nn.Conv1d(2, 4, 3),
        nn.BatchNorm1d(4),
        nn.Flatten(),
        nn.LayerNorm(8),
        nn.Linear(8, 3),
    )
    params = prunable_parameters(model)
    assert list(params) == ["0.weight", "4.weight"]
    assert params["0.weight"] is model[0].weight
    for norm in ("batch", "instance", "group"):
        convnet = create_model(
            "convnet", num_classes=4, in_shape=(3, 6, 6), depth=2, width=4, norm=norm
        )
        assert list(full_masks(convnet)) == ["conv1.weight", "conv2.weight", "out.weight"]
    # a model that is itself a layer names its weight "weight"
    assert list(full_masks(nn.Linear(3, 2))) == ["weight"]


def test_apply_masks_zeroes_exactly_the_masked_weights():
    model = nn.Sequential(nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        model[0].bias.copy_(torch.tensor([5.0, 6.0]))
    out = apply_masks(model, {"0.weight": _bool([[True, False], [False, True]])})
    assert out is model
    assert torch.equal(model[0].weight, torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
    assert torch.equal(model[0].bias, torch.tensor([5.0, 6.0]))


# --- magnitude pruning on hand-set weights -------------------------------------------------

# magnitudes 1..16 in layer 0 and 0.01..0.08 in layer 1, scattered and with mixed signs
_W0 = [
    [7.0, -3.0, 12.0, 1.0],
    [16.0, -9.0, 4.0, 10.0],
    [2.0, 14.0, -6.0, 11.0],
    [5.0, -13.0, 8.0, 15.0],
]
_W1 = [[0.05, -0.02, 0.08, 0.01], [-0.07, 0.03, 0.06, 0.04]]


def _handset(w0=_W0, w1=_W1) -> nn.Module:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(w0))
        model[1].weight.copy_(torch.tensor(w1))
        for layer in model:  # tiny biases: they would go first if biases were ranked
            layer.bias.fill_(1e-6)
    return model


def test_global_pruning_takes_the_small_layer_first_and_layerwise_takes_a_share_of_each():
    model = _handset()
    # 24 weights, 25% -> 6 removed: globally the six smallest, all in layer 1 (0.01..0.06)
    glob = magnitude_prune(model, 0.25, scope="global")
    assert torch.equal(glob["0.weight"], torch.ones(4, 4, dtype=torch.bool))
    assert torch.equal(glob["1.weight"], _bool([[0, 0, 1, 0], [1, 0, 0, 0]]))
    # layer-wise: 4 of 16 (magnitudes 1, 2, 3, 4) and 2 of 8 (0.01, 0.02)
    layer = magnitude_prune(model, 0.25, scope="layer")
    assert torch.equal(
        layer["0.weight"], _bool([[1, 0, 1, 0], [1, 1, 0, 1], [0, 1, 1, 1], [1, 1, 1, 1]])
    )
    assert torch.equal(layer["1.weight"], _bool([[1, 0, 1, 0], [1, 1, 1, 1]]))
    assert _kept(glob) == {"0.weight": 16, "1.weight": 2}
    assert _kept(layer) == {"0.weight": 12, "1.weight": 6}
    # the model is left as it was
    assert torch.equal(model[0].weight, torch.tensor(_W0))


def test_pruning_removes_a_fraction_of_the_remaining_weights_and_never_revives_any():
    model = _handset()
    first = magnitude_prune(model, 0.25, scope="layer")  # 18 remain
    with torch.no_grad():  # pruned weights made the largest: they must still stay pruned
        for i, name in enumerate(("0.weight", "1.weight")):
            model[i].weight[~first[name]] = 100.0
    second = magnitude_prune(model, 0.5, first, scope="global")
    # 9 of the 18 survivors go: the six of layer 1 (0.03..0.08) and 5, 6, 7 of layer 0
    assert _kept(second) == {"0.weight": 9, "1.weight": 0}
    assert torch.equal(
        second["0.weight"], _bool([[0, 0, 1, 0], [1, 1, 0, 1], [0, 1, 0, 1], [0, 1, 1, 1]])
    )
    assert all(not bool((second[n] & ~first[n]).any()) for n in first)  # nothing revived
    assert torch.equal(first["1.weight"], _bool([[1, 0, 1, 0], [1, 1, 1, 1]]))  # input kept


def test_density_after_levels_of_twenty_percent_is_point_eight_to_the_level():
    model = _mlp()  # 384 + 128 weights
    for scope in ("global", "layer"):
        masks, remaining = None, {"fc1.weight": 384, "out.weight": 128}
        for level in range(1, 7):
            masks = magnitude_prune(model, 0.2, masks, scope)
            if scope == "layer":
                remaining = {n: r - round(0.2 * r) for n, r in remaining.items()}
                assert _kept(masks) == remaining
            else:
                total = sum(remaining.values())
                remaining = {"all": total - round(0.2 * total)}
                assert sum(_kept(masks).values()) == remaining["all"]
            # each level rounds by at most half a weight per pruned group
            assert abs(density(masks) - 0.8**level) <= level * len(remaining) * 0.5 / 512
    # 512 -> 410 -> 328 -> 262 -> 210 -> 168 -> 134 globally
    assert sum(_kept(magnitude_prune(model, 0.2)).values()) == 410


def test_ties_fall_on_the_lower_flat_index_in_module_order():
    signs = torch.tensor([1.0, -1.0]).repeat(8)
    model = _handset(signs.view(4, 4).tolist(), signs[:8].view(2, 4).tolist())  # all |w| = 1
    glob = magnitude_prune(model, 0.25)  # 6 of 24: layer 0's flat indices 0..5
    assert glob["0.weight"].flatten().tolist() == [False] * 6 + [True] * 10
    assert bool(glob["1.weight"].all())
    layer = magnitude_prune(model, 0.25, scope="layer")  # 4 of 16 and 2 of 8
    assert layer["0.weight"].flatten().tolist() == [False] * 4 + [True] * 12
    assert layer["1.weight"].flatten().tolist() == [False] * 2 + [True] * 6
    # among survivors: 9 of the 18 left by the global step, layer 0's indices 6..14 first
    again = magnitude_prune(model, 0.5, glob)
    assert again["0.weight"].flatten().tolist() == [False] * 15 + [True]
    assert bool(again["1.weight"].all())
    assert all(torch.equal(glob[n], magnitude_prune(model, 0.25)[n]) for n in glob)


def test_fraction_zero_removes_nothing():
    assert _kept(magnitude_prune(_handset(), 0.0)) == {"0.weight": 16, "1.weight": 8}


# --- comparing, saving and naming masks --------------------------------------------------


def _pair():
    a = {"w": _bool([[1, 1, 1, 0]]), "v": _bool([0, 0])}
    b = {"w": _bool([[1, 0, 0, 1]]), "v": _bool([1, 0])}
    return a, b


def test_union_intersection_and_distances_on_hand_made_masks():
    a, b = _pair()
    u, i = union(a, b), intersection(a, b)
    assert torch.equal(u["w"], _bool([[1, 1, 1, 1]])) and torch.equal(u["v"], _bool([1, 0]))
    assert torch.equal(i["w"], _bool([[1, 0, 0, 0]])) and torch.equal(i["v"], _bool([0, 0]))
    # they differ at w[1], w[2], w[3] and v[0]: 4 of 6 weights
    assert hamming_distance(a, b) == pytest.approx(4 / 6)
    assert hamming_distance(a, b, normalized=False) == 4.0
    # both keep 1 weight (w[0]); either keeps 5: 1 - 1/5
    assert jaccard_distance(a, b) == pytest.approx(0.8)
    assert jaccard_distance(a, a) == 0.0 and hamming_distance(a, a) == 0.0
    empty = {"w": _bool([[0, 0, 0, 0]]), "v": _bool([0, 0])}
    assert jaccard_distance(empty, empty) == 0.0
    assert density(a) == pytest.approx(3 / 6)
    assert layer_density(a) == {"w": 0.75, "v": 0.0}


def test_comparisons_refuse_mask_sets_of_different_layouts():
    a, b = _pair()
    for fn in (union, intersection, hamming_distance, jaccard_distance):
        with pytest.raises(LandscapeError, match="different tensors"):
            fn(a, {"w": b["w"]})
        with pytest.raises(LandscapeError, match="shape"):
            fn(a, {"w": b["w"], "v": _bool([1, 0, 1])})


def test_save_and_load_round_trip(tmp_path):
    model = _mlp()
    masks = magnitude_prune(model, 0.3)
    path = save_masks(tmp_path / "m" / "masks.pt", masks)
    loaded = load_masks(path)
    assert loaded.keys() == masks.keys()
    assert all(loaded[n].dtype == torch.bool and torch.equal(loaded[n], masks[n]) for n in masks)
    assert _kept(load_masks(path, model)) == _kept(masks)
    # 0/1 float masks are stored as bool
    save_masks(tmp_path / "f.pt", {n: m.float() for n, m in masks.items()})
    assert all(torch.equal(load_masks(tmp_path / "f.pt")[n], masks[n]) for n in masks)
    assert mask_digest(loaded) == mask_digest(masks)


def test_load_refuses_foreign_files_and_other_architectures(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("these are not masks\n")
    with pytest.raises(LandscapeError, match="not a mask file"):
        load_masks(text)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(LandscapeError, match="not a mask file"):
        load_masks(tmp_path / "other.pt")
    with pytest.raises(LandscapeError, match="no mask file"):
        load_masks(tmp_path / "missing.pt")
    save_masks(tmp_path / "masks.pt", full_masks(_mlp(widths=(16,))))
    with pytest.raises(LandscapeError, match="another architecture"):
        load_masks(tmp_path / "masks.pt", _mlp(widths=(32,)))
    with pytest.raises(LandscapeError, match="another architecture"):
        load_masks(tmp_path / "masks.pt", _small_conv())


def test_mask_digest_names_the_content():
    a, b = _pair()
    copy = {"v": a["v"].clone(), "w": a["w"].clone()}  # other order, other tensors
    assert mask_digest(copy) == mask_digest(a)
    assert mask_digest(a) != mask_digest(b)
    flipped = {"w": a["w"].clone(), "v": _bool([0, 1])}
    assert mask_digest(flipped) != mask_digest(a)
    assert len(mask_digest(a)) == 12 and int(mask_digest(a), 16) >= 0


# --- random pruning and random masks -----------------------------------------------------


def test_random_prune_removes_exact_counts_deterministically():
    model = _mlp()
    layer = random_prune(model, 0.3, scope="layer", generator=_gen(0))
    assert _kept(layer) == {"fc1.weight": 384 - round(0.3 * 384), "out.weight": 128 - 38}
    glob = random_prune(model, 0.3, generator=_gen(0))
    assert sum(_kept(glob).values()) == 512 - round(0.3 * 512)
    again = random_prune(model, 0.5, layer, scope="layer", generator=_gen(1))
    assert _kept(again) == {"fc1.weight": 269 - round(0.5 * 269), "out.weight": 90 - 45}
    assert all(not bool((again[n] & ~layer[n]).any()) for n in layer)  # never revives
    same = random_prune(model, 0.3, scope="layer", generator=_gen(0))
    other = random_prune(model, 0.3, scope="layer", generator=_gen(1))
    assert all(torch.equal(same[n], layer[n]) for n in layer)
    assert hamming_distance(other, layer) > 0.1  # about 2 * 0.3 * 0.7 = 0.42 apart


def test_random_masks_keep_exact_counts_per_layer():
    model = _mlp()
    uniform = random_masks(model, 0.3, _gen(0))
    assert _kept(uniform) == {"fc1.weight": round(0.3 * 384), "out.weight": round(0.3 * 128)}
    # ERK at 0.5 (solved in test_erk_matches_the_formula...): fc1 0.3666, out 0.9
    erk = random_masks(model, 0.5, _gen(0), distribution="erk")
    assert _kept(erk) == {"fc1.weight": round(3.2 * 44), "out.weight": round(0.9 * 128)}
    # per-layer densities, e.g. another mask set's; a tiny density still keeps one weight
    given = random_masks(model, {"fc1.weight": 0.25, "out.weight": 0.001}, _gen(0))
    assert _kept(given) == {"fc1.weight": 96, "out.weight": 1}
    assert all(m.dtype == torch.bool for m in given.values())
    same, other = random_masks(model, 0.3, _gen(0)), random_masks(model, 0.3, _gen(1))
    assert all(torch.equal(same[n], uniform[n]) for n in uniform)
    assert hamming_distance(other, uniform) > 0.1  # about 2 * 0.3 * 0.7 = 0.42 apart


def test_shuffle_masks_keeps_counts_and_moves_the_weights():
    masks = magnitude_prune(_mlp(), 0.6)
    shuffled = shuffle_masks(masks, _gen(0))
    assert _kept(shuffled) == _kept(masks)
    assert hamming_distance(shuffled, masks) > 0.1
    assert all(torch.equal(shuffle_masks(masks, _gen(0))[n], shuffled[n]) for n in masks)
    assert hamming_distance(shuffle_masks(masks, _gen(1)), shuffled) > 0.1
    assert all(torch.equal(m, magnitude_prune(_mlp(), 0.6)[n]) for n, m in masks.items())


# --- bad input -----------------------------------------------------------------------------


def test_masks_for_another_architecture_are_refused():
    model = _mlp()
    with pytest.raises(LandscapeError, match="lacks"):
        check_masks(model, {"fc9.weight": torch.ones(32, 12, dtype=torch.bool)})
    with pytest.raises(LandscapeError, match=r"shape \(12, 32\)"):
        check_masks(model, {"fc1.weight": torch.ones(12, 32, dtype=torch.bool)})
    with pytest.raises(LandscapeError, match="dict"):
        check_masks(model, [torch.ones(32, 12)])
    other = full_masks(_mlp(widths=(16,)))
    for call in (
        lambda: apply_masks(model, other),
        lambda: magnitude_prune(model, 0.2, other),
        lambda: random_prune(model, 0.2, other, generator=_gen(0)),
    ):
        with pytest.raises(LandscapeError, match="another architecture"):
            call()
    with pytest.raises(LandscapeError, match="another architecture"):
        random_masks(model, {"fc9.weight": 0.5}, _gen(0))
    with pytest.raises(LandscapeError, match="Module"):
        prunable_parameters({"fc1.weight": torch.zeros(2)})


@pytest.mark.parametrize("fraction", [1.0, -0.1, 1.5, math.nan, "0.2", True])
def test_fraction_outside_zero_to_one_is_refused(fraction):
    model = _mlp()
    with pytest.raises(LandscapeError, match="fraction"):
        magnitude_prune(model, fraction)
    with pytest.raises(LandscapeError, match="fraction"):
        random_prune(model, fraction, generator=_gen(0))


@pytest.mark.parametrize("value", [0, 0.0, -0.5, 1.5, math.inf, np.float64(2.0)])
def test_density_outside_zero_to_one_is_refused(value):
    model = _mlp()
    with pytest.raises(LandscapeError, match="density"):
        layer_densities(model, value, "erk")
    with pytest.raises(LandscapeError, match="density"):
        random_masks(model, value, _gen(0))
    with pytest.raises(LandscapeError, match="density of fc1.weight"):
        random_masks(model, {"fc1.weight": value}, _gen(0))


def test_unknown_scope_distribution_and_no_generator_are_refused():
    model = _mlp()
    with pytest.raises(LandscapeError, match="unknown scope 'local'.*global, layer"):
        magnitude_prune(model, 0.2, scope="local")
    with pytest.raises(LandscapeError, match="unknown scope"):
        random_prune(model, 0.2, scope="Layer", generator=_gen(0))
    with pytest.raises(LandscapeError, match="unknown distribution 'erdos'.*uniform, er, erk"):
        layer_densities(model, 0.5, "erdos")
    with pytest.raises(LandscapeError, match="unknown distribution"):
        random_masks(model, 0.5, _gen(0), distribution="ERK")
    with pytest.raises(LandscapeError, match="torch.Generator"):
        random_masks(model, 0.5, 0)
    with pytest.raises(LandscapeError, match="torch.Generator"):
        random_prune(model, 0.2, generator=0)
    with pytest.raises(LandscapeError, match="torch.Generator"):
        shuffle_masks(full_masks(model), None)
    with pytest.raises(LandscapeError, match="no linear or convolutional"):
        layer_densities(nn.Sequential(nn.ReLU()), 0.5)
