"""Hessian diagonal, trace, eigenvalues and spectrum against float64 dense Hessians.

Every case is a model of a few hundred parameters in float64 with a small dataset; the
reference Hessian of the mean cross-entropy is built by brute force with
``torch.autograd.functional.hessian`` on the flat parameter vector (no curvlinops, no
BackPACK), and every method of :mod:`landscape.analysis.hessian` is checked against it.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from landscape.analysis._tangents import sequential_layers, tangent_diagonal, tangent_layers
from landscape.analysis.hessian import (
    _column_diagonal,
    _Problem,
    backpack_supports,
    diagonal_rows,
    hessian_diagonal,
    hessian_eigenvalues,
    hessian_operator,
    hessian_spectrum,
    hessian_trace,
)
from landscape.errors import LandscapeError
from landscape.models import create_model


class Residual(nn.Module):
    """A tiny residual network: BackPACK refuses it, forward-mode AD works."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(5, 8)
        self.block = nn.Linear(8, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h = torch.tanh(self.inp(x))
        return self.out(h + torch.tanh(self.block(h)))


def _mlp():
    return nn.Sequential(nn.Linear(5, 10), nn.Tanh(), nn.Linear(10, 3))


def _conv():
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 3 * 3, 3),
    )


def _groupnorm():  # GroupNorm's backward has no forward-mode AD: the double-backward path
    return create_model(
        "convnet", num_classes=3, in_shape=(1, 6, 6), width=4, depth=1, norm="group"
    )


def _batchnorm():  # eval-mode BatchNorm: not BackPACK's, forward-over-reverse works
    return create_model(
        "convnet", num_classes=3, in_shape=(1, 6, 6), width=4, depth=1, norm="batch"
    )


def _groupnorm_deep():  # two GroupNorms above the first convolution's parameters
    return create_model(
        "convnet", num_classes=3, in_shape=(2, 8, 8), width=4, depth=2, norm="group"
    )


def _mixed():
    """The layers the forward-tangent diagonal handles: a strided and a dilated Conv1d,
    GroupNorm on channels and on features, eval BatchNorm1d, LeakyReLU, sigmoid, max
    pooling (the MLP case has tanh, the ConvNets 2-D layers)."""
    return nn.Sequential(
        nn.Conv1d(2, 4, 3, padding=1, stride=2),
        nn.GroupNorm(2, 4),
        nn.LeakyReLU(0.1),
        nn.MaxPool1d(2),
        nn.Conv1d(4, 4, 3, dilation=2, padding=1),
        nn.BatchNorm1d(4),
        nn.ReLU(),
        nn.Sequential(nn.Flatten(), nn.Dropout(0.3)),
        nn.Linear(4 * 3, 6),
        nn.GroupNorm(3, 6),
        nn.Sigmoid(),
        nn.Identity(),
        nn.Linear(6, 3),
    )


#: name -> (model factory, input shape, whether BackPACK handles it)
CASES = {
    "mlp": (_mlp, (5,), True),
    "conv": (_conv, (1, 6, 6), True),
    "residual": (Residual, (5,), False),
    "groupnorm": (_groupnorm, (1, 6, 6), False),
    "groupnorm_deep": (_groupnorm_deep, (2, 8, 8), False),
    "batchnorm": (_batchnorm, (1, 6, 6), False),
    "mixed": (_mixed, (2, 22), False),
}


def make_case(name: str, n: int = 23, seed: int = 0):
    factory, shape, backpack = CASES[name]
    torch.manual_seed(seed)
    model = factory().double()
    with torch.no_grad():
        for module in model.modules():  # affine maps and running statistics off their defaults
            if isinstance(module, (nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d)):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    x = torch.randn(n, *shape, dtype=torch.float64)
    y = torch.randint(0, 3, (n,))
    return model, (x, y), backpack


def dense_hessian(model: nn.Module, x, y, masks=None) -> torch.Tensor:
    """The float64 Hessian of the mean cross-entropy over (x, y), parameters flattened in
    order, the model in eval mode and masked weights set to zero."""
    model = copy.deepcopy(model).eval()
    named = list(model.named_parameters())
    with torch.no_grad():
        for name, p in named:
            if masks and name in masks:
                p.mul_(masks[name].double())
    flat0 = torch.cat([p.detach().reshape(-1) for _, p in named])

    def loss(flat):
        params, start = {}, 0
        for name, p in named:
            params[name] = flat[start : start + p.numel()].reshape(p.shape)
            start += p.numel()
        out = torch.func.functional_call(model, params, (x,))
        return nn.functional.cross_entropy(out, y)

    return torch.autograd.functional.hessian(loss, flat0)


def active_flags(model, masks) -> torch.Tensor:
    return torch.cat(
        [
            (masks[n] if n in masks else torch.ones_like(p, dtype=torch.bool)).reshape(-1)
            for n, p in model.named_parameters()
        ]
    )


def random_masks(model, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return {
        n: torch.rand(p.shape, generator=gen) < 0.6
        for n, p in model.named_parameters()
        if p.dim() > 1
    }


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("case", sorted(CASES))
def test_exact_diagonals_match_the_dense_hessian(case):
    model, (x, y), backpack = make_case(case)
    reference = dense_hessian(model, x, y).diag()
    methods = ["exact", "auto"] + (["backpack"] if backpack else [])
    assert backpack_supports(model) == backpack
    for method in methods:
        result = hessian_diagonal(model, (x, y), method, batch_size=7)
        assert result.method == ("backpack" if backpack and method != "exact" else "exact")
        assert result.count == len(y)
        assert rel_err(result.flat(), reference) < 1e-6, method
        assert [tuple(t.shape) for t in result.diagonal.values()] == [
            tuple(p.shape) for p in model.parameters()
        ]
        assert result.trace == pytest.approx(float(reference.sum()), rel=1e-9)


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_tangents_serve_the_sequential_cases(case):
    """The exact diagonal of a Sequential comes from forward tangents, of anything else from
    Hessian columns; the two agree where both apply."""
    model, (x, y), _ = make_case(case)
    problem = _Problem.build(model, (x, y), None, 9, None)
    sequential = case != "residual"
    assert (sequential_layers(problem.model) is not None) == sequential
    if sequential:
        by_columns = _column_diagonal(problem, 16)
        by_tangents = tangent_diagonal(problem, tangent_layers(problem.model, problem.names), 5)
        assert rel_err(by_tangents, by_columns) < 1e-9


def test_forward_tangents_refuse_what_they_do_not_handle():
    assert sequential_layers(nn.Sequential(nn.Linear(3, 3), nn.ELU())) is None
    assert sequential_layers(nn.Sequential(nn.Conv2d(2, 2, 1, groups=2))) is None
    assert sequential_layers(nn.Sequential(nn.BatchNorm1d(3, track_running_stats=False))) is None
    assert sequential_layers(Residual()) is None
    layers = sequential_layers(_mixed())
    assert [name for name, _ in layers][7:9] == ["7.0", "7.1"]  # nested, qualified names


@pytest.mark.parametrize("case", ["mlp", "groupnorm", "groupnorm_deep", "mixed"])
def test_masked_diagonal_is_the_subnetworks(case):
    model, (x, y), backpack = make_case(case)
    masks = random_masks(model)
    flags = active_flags(model, masks)
    reference = dense_hessian(model, x, y, masks).diag() * flags
    for method in ["exact"] + (["backpack"] if backpack else []):
        result = hessian_diagonal(model, (x, y), method, masks=masks, batch_size=9)
        flat = result.flat()
        assert torch.all(flat[~flags] == 0), "zero outside the mask"
        assert rel_err(flat, reference) < 1e-6, method
        first = next(iter(masks))
        assert result.active(first).numel() == int(masks[first].sum())


def test_the_hessian_is_taken_at_the_masked_weights():
    """Pruned weights are zero in the subnetwork: its Hessian differs from the dense model's
    diagonal restricted to the mask (here the first layer's weights change the second's)."""
    model, (x, y), _ = make_case("mlp")
    masks = random_masks(model)
    flags = active_flags(model, masks)
    dense_restricted = dense_hessian(model, x, y).diag() * flags
    ours = hessian_diagonal(model, (x, y), "exact", masks=masks).flat()
    assert rel_err(ours, dense_restricted) > 1e-3


def test_hutchinson_converges_with_its_standard_error():
    model, (x, y), _ = make_case("residual")
    reference = dense_hessian(model, x, y).diag()
    few = hessian_diagonal(model, (x, y), "hutchinson", probes=16)
    many = hessian_diagonal(
        model,
        (x, y),
        "hutchinson",
        probes=4000,
        block=1000,
        generator=torch.Generator().manual_seed(3),
    )
    assert few.method == many.method == "hutchinson" and many.probes == 4000
    err_few = float((few.flat() - reference).norm() / reference.norm())
    err_many = float((many.flat() - reference).norm() / reference.norm())
    assert err_many < 0.1 and err_many < err_few / 4  # error shrinks like 1 / sqrt(probes)
    stderr = torch.cat([s.reshape(-1) for s in many.stderr.values()])
    z = (many.flat() - reference).abs() / stderr.clamp(min=1e-12)
    assert float((z < 4).double().mean()) > 0.99  # the standard errors are honest
    assert abs(many.trace - float(reference.sum())) < 4 * many.trace_stderr


def test_hutchinson_is_seeded_and_restricted_to_the_mask():
    model, (x, y), _ = make_case("mlp")
    masks = random_masks(model)
    flags = active_flags(model, masks)
    a = hessian_diagonal(model, (x, y), "hutchinson", probes=8, masks=masks)
    b = hessian_diagonal(model, (x, y), "hutchinson", probes=8, masks=masks)
    c = hessian_diagonal(
        model,
        (x, y),
        "hutchinson",
        probes=8,
        masks=masks,
        generator=torch.Generator().manual_seed(5),
    )
    assert torch.equal(a.flat(), b.flat()) and not torch.equal(a.flat(), c.flat())
    assert torch.all(a.flat()[~flags] == 0)
    # many probes on the subnetwork converge to the subnetwork's diagonal
    many = hessian_diagonal(model, (x, y), "hutchinson", probes=3000, block=1000, masks=masks)
    reference = dense_hessian(model, x, y, masks).diag() * flags
    assert float((many.flat() - reference).norm() / reference.norm()) < 0.1


def test_auto_picks_by_model_and_size():
    model, data, _ = make_case("groupnorm")
    assert hessian_diagonal(model, data).method == "exact"
    small = hessian_diagonal(model, data, exact_limit=10, probes=None)
    assert small.method == "hutchinson" and small.probes == 100
    model, data, _ = make_case("conv")
    assert hessian_diagonal(model, data, exact_limit=0).method == "backpack"


@pytest.mark.parametrize("case", ["mlp", "groupnorm"])
def test_trace_and_eigenvalues_match_numpy(case):
    model, (x, y), _ = make_case(case)
    h = dense_hessian(model, x, y).numpy()
    eig = np.linalg.eigh(h)[0]
    assert hessian_trace(model, (x, y), "exact").value == pytest.approx(np.trace(h), rel=1e-8)
    top = hessian_eigenvalues(model, (x, y), k=3, tol=1e-10)
    np.testing.assert_allclose(top, eig[::-1][:3], rtol=1e-6)
    low = hessian_eigenvalues(model, (x, y), k=2, which="SA", tol=1e-10)
    np.testing.assert_allclose(low, eig[:2], rtol=1e-6, atol=1e-9)


def test_masked_trace_and_eigenvalues_are_the_submatrixs():
    model, (x, y), _ = make_case("mlp")
    masks = random_masks(model)
    flags = active_flags(model, masks)
    sub = dense_hessian(model, x, y, masks)[flags][:, flags].numpy()
    eig = np.linalg.eigh(sub)[0]
    trace = hessian_trace(model, (x, y), "exact", masks=masks)
    assert trace.value == pytest.approx(np.trace(sub), rel=1e-8) and trace.stderr == 0
    np.testing.assert_allclose(
        hessian_eigenvalues(model, (x, y), k=2, masks=masks, tol=1e-10), eig[::-1][:2], rtol=1e-6
    )
    # Hutch++ is unbiased: its mean over seeds is the trace, within the standard error
    values = [
        hessian_trace(
            model,
            (x, y),
            "hutchpp",
            probes=30,
            masks=masks,
            generator=torch.Generator().manual_seed(s),
        ).value
        for s in range(20)
    ]
    assert abs(np.mean(values) - np.trace(sub)) < 4 * np.std(values) / np.sqrt(len(values))
    with pytest.raises(LandscapeError, match="fewer probes"):
        hessian_trace(model, (x, y), "hutchpp", probes=len(sub), masks=masks)


def test_split_operator_is_the_size_weighted_sum_of_batch_operators():
    model, (x, y), _ = make_case("groupnorm")
    v = torch.randn(sum(p.numel() for p in model.parameters()), dtype=torch.float64)
    whole = hessian_operator(model, (x, y), batch_size=10) @ v
    parts = [(x[:10], y[:10]), (x[10:20], y[10:20]), (x[20:], y[20:])]
    summed = sum(len(b[1]) / len(y) * (hessian_operator(model, b) @ v) for b in parts)
    torch.testing.assert_close(whole, summed, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(whole, dense_hessian(model, x, y) @ v, rtol=1e-8, atol=1e-10)


def test_batches_keeps_only_the_first_batches():
    model, (x, y), _ = make_case("mlp")
    first = hessian_diagonal(model, (x, y), batches=1, batch_size=8)
    assert first.count == 8
    torch.testing.assert_close(first.flat(), dense_hessian(model, x[:8], y[:8]).diag())


def test_spectrum_is_a_density_over_the_eigenvalues():
    model, (x, y), _ = make_case("mlp")
    eig = np.linalg.eigh(dense_hessian(model, x, y).numpy())[0]
    rows = hessian_spectrum(model, (x, y), lanczos_steps=40, points=400)
    grid = np.array([r["eigenvalue"] for r in rows])
    density = np.array([r["density"] for r in rows])
    assert grid.min() <= eig.min() + 1e-6 and grid.max() >= eig.max() - 1e-6
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=0.02)
    assert density.min() >= 0


def test_the_model_is_left_as_found():
    model, (x, y), _ = make_case("mlp")
    model.train()
    model[2].bias.requires_grad_(False)  # frozen: not a variable of the Hessian
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for method in ["backpack", "exact", "hutchinson"]:
        result = hessian_diagonal(model, (x, y), method)
        assert list(result.diagonal) == ["0.weight", "0.bias", "2.weight"]
    hessian_eigenvalues(model, (x, y))
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == [True, True, True, False]
    assert all(p.grad is None for p in model.parameters())
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        assert not hasattr(m, "input0") and not hasattr(m, "output")
    assert not any(hasattr(p, "diag_h") for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_float32_models_get_float32_results_and_data_is_cast():
    model, (x, y), _ = make_case("mlp")
    result = hessian_diagonal(model.float(), (x, y))  # float64 data, float32 model
    assert result.flat().dtype == torch.float32
    reference = dense_hessian(model.double(), x, y).diag()
    assert rel_err(result.flat().double(), reference) < 1e-4


def test_diagonal_rows_summarise_the_unpruned_entries():
    model, data, _ = make_case("mlp")
    masks = random_masks(model)
    result = hessian_diagonal(model, data, masks=masks)
    rows = diagonal_rows(result, network="mlp")
    assert [r["parameter"] for r in rows] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    first = rows[0]
    values = result.diagonal["0.weight"][masks["0.weight"]]
    assert first["network"] == "mlp" and first["count"] == int(masks["0.weight"].sum())
    assert first["mean"] == pytest.approx(float(values.mean()))
    assert first["median"] == pytest.approx(float(np.median(values.numpy())))
    assert first["fraction_negative"] == pytest.approx(float((values < 0).double().mean()))
    assert first["q05"] <= first["q25"] <= first["median"] <= first["q75"] <= first["q95"]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, d: hessian_diagonal(m, d, "lanczos"), "unknown Hessian diagonal method"),
        (lambda m, d: hessian_diagonal(m, d, "exact", probes=10), "probes= is for Hutchinson"),
        (lambda m, d: hessian_diagonal(m, d, "hutchinson", probes=0), "probes must be"),
        (lambda m, d: hessian_diagonal(m, d, block=0), "block must be"),
        (
            lambda m, d: hessian_diagonal(
                m,
                d,
                masks={
                    "0.weight": torch.zeros(10, 5, dtype=torch.bool),
                    "2.weight": torch.zeros(3, 10, dtype=torch.bool),
                },
                batches=1,
            ),
            None,
        ),
        (lambda m, d: hessian_diagonal(m, d, masks={"9.weight": torch.ones(2)}), "lacks"),
        (lambda m, d: hessian_diagonal(m, (d[0][:0], d[1][:0])), "empty"),
        (lambda m, d: hessian_diagonal(m, (d[0][:, :3], d[1])), "cannot run"),
        (lambda m, d: hessian_eigenvalues(m, d, k=500), "Lanczos needs k <"),
        (lambda m, d: hessian_eigenvalues(m, d, which="BE"), "which must be"),
        (lambda m, d: hessian_trace(m, d, "exactly"), "unknown trace method"),
        (lambda m, d: hessian_diagonal(m, d, "hutchinson", generator=3), "generator must be"),
        (lambda m, d: hessian_diagonal(Residual().double(), d, "backpack"), "nn.Sequential"),
        (lambda m, d: hessian_spectrum(m, d, lanczos_steps=500), "fewer steps"),
    ],
)
def test_bad_input_gets_one_clear_error(call, message):
    model, data, _ = make_case("mlp")
    if message is None:  # masks that prune every weight still leave the biases
        result = call(model, data)
        assert torch.all(result.diagonal["0.weight"] == 0)
        return
    with pytest.raises(LandscapeError, match=message):
        call(model, data)


def test_a_mask_over_everything_is_refused():
    model = nn.Sequential(nn.Linear(3, 2, bias=False)).double()
    data = (torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(LandscapeError, match="prune every parameter"):
        hessian_diagonal(model, data, masks={"0.weight": torch.zeros(2, 3, dtype=torch.bool)})


def _shared_activation():
    act = nn.ReLU()
    return nn.Sequential(nn.Linear(5, 6), act, nn.Linear(6, 6), act, nn.Linear(6, 3))


def _tied():
    net = nn.Sequential(
        nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 6), nn.Tanh(),
        nn.Linear(6, 3),
    )  # fmt: skip
    net[4].weight = net[2].weight
    return net


def _in_place_after_groupnorm():
    return nn.Sequential(
        nn.Linear(5, 6), nn.GroupNorm(2, 6), nn.ReLU(inplace=True), nn.Linear(6, 3)
    )


def _weight_norm():
    net = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
    nn.utils.parametrizations.weight_norm(net[0])
    return net


@pytest.mark.parametrize(
    "factory", [_shared_activation, _tied, _in_place_after_groupnorm, _weight_norm]
)
def test_shared_tied_in_place_and_parametrized_layers_stay_exact(factory):
    """Layers used twice, tied weights, an in-place ReLU after a curved layer and a weight
    parametrization: each method either handles them or is not chosen for them."""
    torch.manual_seed(0)
    model = factory().double()
    x, y = torch.randn(11, 5, dtype=torch.float64), torch.randint(0, 3, (11,))
    reference = dense_hessian(model, x, y).diag()
    for method in ("exact", "auto"):
        result = hessian_diagonal(model, (x, y), method)
        assert result.method == "exact"  # BackPACK would miss the second use or the tie
        assert rel_err(result.flat(), reference) < 1e-9, method
