"""Interpolation: endpoints, a from-scratch reference at every alpha, barriers, BN reset, peers.

The reference shares no code with the library: it mixes the state_dicts by hand, resets
BatchNorm with ``torch.optim.swa_utils.update_bn``, and scores plain forward passes.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader, TensorDataset

from landscape.analysis import barriers, evaluate, interpolate
from landscape.analysis.interpolate import has_batchnorm
from landscape.errors import LandscapeError


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))


def _bn_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(24, 4),
        nn.BatchNorm1d(4),
    )


def _data(n: int, shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 4, (n,), generator=g)


def _reference(model_a, model_b, data, alphas, train_data=None, bn_batch=128):
    """Loss and error at each alpha, computed from scratch.

    Floating entries of the state_dicts (weights and BatchNorm statistics) are mixed as
    ``(1 - a) A + a B``, integer ones (``num_batches_tracked``) come from A. With
    ``train_data``, PyTorch's ``update_bn`` recomputes the statistics, over batches of
    ``bn_batch`` in order. Returns ``(losses, errors)`` as float lists.
    """
    x, y = data
    sa, sb = model_a.state_dict(), model_b.state_dict()
    losses, errors = [], []
    for a in alphas:
        mixed = {k: (1 - a) * sa[k] + a * sb[k] if sa[k].is_floating_point() else sa[k] for k in sa}
        m = copy.deepcopy(model_a)
        m.load_state_dict(mixed)
        if train_data is not None:
            update_bn(DataLoader(TensorDataset(*train_data), batch_size=bn_batch), m)
        m.eval()
        with torch.no_grad():
            logits = m(x.to(next(m.parameters()).dtype)).double()
        losses.append(F.cross_entropy(logits, y).item())
        errors.append((logits.argmax(dim=1) != y).double().mean().item())
    return losses, errors


def test_endpoints_equal_the_models_own_evaluation():
    a, b = _mlp(0), _mlp(1)
    data = _data(50, (12,))
    result = interpolate(a, b, data, points=5)
    assert result.alphas == [0.0, 0.25, 0.5, 0.75, 1.0]
    ea, eb = evaluate(a, data), evaluate(b, data)
    assert result.loss[0] == pytest.approx(ea.loss, abs=1e-6)
    assert result.loss[-1] == pytest.approx(eb.loss, abs=1e-6)
    assert result.error[0] == ea.error and result.error[-1] == eb.error
    assert result.count == 50


def test_every_alpha_matches_the_reference_and_chunking_is_invisible():
    a, b = _mlp(0), _mlp(1)
    data = _data(97, (12,))
    alphas = [0.0, 0.1, 0.37, 0.5, 0.9, 1.0]
    loss, error = _reference(a, b, data, alphas)
    assert len(set(error)) > 2  # the error curve has shape, so a wrong path would show
    for chunk in (None, 1, 4):
        res = interpolate(a, b, data, alphas=alphas, alpha_chunk=chunk, batch_size=10)
        assert res.loss == pytest.approx(loss, abs=1e-5)
        assert res.error == pytest.approx(error, abs=1e-12)


def test_batches_iterable_gives_the_same_answer_as_tensors():
    a, b = _mlp(0), _mlp(1)
    x, y = _data(40, (12,))
    whole = interpolate(a, b, (x, y), points=3)
    batches = interpolate(
        a, b, ((x[i : i + 16], y[i : i + 16]) for i in range(0, 40, 16)), points=3, alpha_chunk=1
    )
    assert batches.loss == pytest.approx(whole.loss, abs=1e-6)
    assert batches.error == whole.error


def test_barriers_by_hand():
    assert barriers([0, 0.5, 1], [0.1, 0.5, 0.3]) == pytest.approx((0.3, 0.3))
    # asymmetric endpoints: the two definitions differ
    mean_b, line_b = barriers([0, 0.25, 0.5, 0.75, 1], [0.0, 0.3, 0.2, 0.9, 1.0])
    assert mean_b == pytest.approx(1.0 - 0.5)
    assert line_b == pytest.approx(0.9 - 0.75)
    # a convex curve under the chord: no barrier above the line, Frankle's is from the ends
    mean_b, line_b = barriers([0, 0.5, 1], [1.0, 0.2, 0.6])
    assert mean_b == pytest.approx(1.0 - 0.8) and line_b == pytest.approx(0.0)
    with pytest.raises(LandscapeError, match="include 0 and 1"):
        barriers([0.2, 1.0], [0.1, 0.2])


def test_result_barriers_are_computed_from_its_curves():
    res = interpolate(_mlp(0), _mlp(3), _data(64, (12,)), points=11)
    assert (res.error_barrier, res.error_barrier_linear) == pytest.approx(
        barriers(res.alphas, res.error)
    )
    assert (res.loss_barrier, res.loss_barrier_linear) == pytest.approx(
        barriers(res.alphas, res.loss)
    )
    assert res.loss_barrier > 0  # two unrelated random nets: the midpoint is worse
    keys = {
        "alphas",
        "loss",
        "error",
        "loss_barrier",
        "error_barrier",
        "loss_barrier_linear",
        "error_barrier_linear",
        "bn_reset",
        "count",
    }
    assert set(res.to_dict()) == keys
    assert res.rows(k=3)[1] == {
        "k": 3,
        "alpha": 0.1,
        "loss": res.loss[1],
        "error": res.error[1],
        "bn_reset": False,
    }


def test_models_are_left_as_found():
    a, b = _bn_net(0), _bn_net(1)
    a.train()
    b.eval()
    before = {k: v.clone() for k, v in a.state_dict().items()}
    interpolate(a, b, _data(20, (3, 5, 5)), points=3, train_data=_data(30, (3, 5, 5), 1))
    assert a.training and not b.training
    for k, v in a.state_dict().items():
        assert torch.equal(v, before[k])


def _bn_pair():
    a, b = _bn_net(0), _bn_net(1)
    # give the stored statistics values that the reset must overwrite
    for m, shift in ((a, 1.0), (b, -2.0)):
        m.train()
        with torch.no_grad():
            m(_data(64, (3, 5, 5), 9)[0] * 3 + shift)
    return a, b


def test_bn_reset_matches_update_bn_at_every_alpha():
    a, b = _bn_pair()
    test, train = _data(200, (3, 5, 5)), _data(70, (3, 5, 5), 1)
    alphas = [0.0, 0.25, 0.5, 0.8, 1.0]
    reset = interpolate(a, b, test, alphas=alphas, train_data=train, bn_batch_size=32)
    loss, error = _reference(a, b, test, alphas, train_data=train, bn_batch=32)
    assert reset.bn_reset
    assert reset.loss == pytest.approx(loss, abs=1e-5)
    assert reset.error == pytest.approx(error, abs=1e-12)


def test_without_reset_the_running_statistics_are_interpolated():
    a, b = _bn_pair()
    test = _data(200, (3, 5, 5))
    alphas = [0.0, 0.3, 0.5, 0.7, 1.0]
    kept = interpolate(a, b, test, alphas=alphas, bn_reset=False)
    loss, error = _reference(a, b, test, alphas)
    assert not kept.bn_reset
    assert kept.loss == pytest.approx(loss, abs=1e-5)
    assert kept.error == pytest.approx(error, abs=1e-12)
    reset = interpolate(a, b, test, alphas=alphas, train_data=_data(70, (3, 5, 5), 1))
    assert abs(reset.loss[2] - kept.loss[2]) > 1e-3  # the two choices really differ


def test_bn_reset_is_a_no_op_without_batchnorm():
    a, b = _mlp(0), _mlp(1)
    assert not has_batchnorm(a)
    data = _data(30, (12,))
    on = interpolate(a, b, data, points=3, bn_reset=True, train_data=_data(30, (12,), 2))
    off = interpolate(a, b, data, points=3, bn_reset=False)
    assert on.loss == off.loss and not on.bn_reset


def test_errors_are_clear():
    with pytest.raises(LandscapeError, match="pass train_data"):
        interpolate(_bn_net(0), _bn_net(1), _data(8, (3, 5, 5)), points=3)
    other = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 4))
    with pytest.raises(LandscapeError, match="differ in architecture"):
        interpolate(_mlp(0), other, _data(8, (12,)))
    with pytest.raises(LandscapeError, match="include 0 and 1"):
        interpolate(_mlp(0), _mlp(1), _data(8, (12,)), alphas=[0.5])
    with pytest.raises(LandscapeError, match="points"):
        interpolate(_mlp(0), _mlp(1), _data(8, (12,)), points=1)


def test_matches_loss_landscapes_linear_interpolation():
    loss_landscapes = pytest.importorskip("loss_landscapes")
    from loss_landscapes.metrics import Loss

    a, b = _mlp(0), _mlp(1)
    x, y = _data(128, (12,))
    steps = 20
    # loss-landscapes evaluates alpha = 1/steps, 2/steps, ..., 1 on one batch, moving a in place
    theirs = loss_landscapes.linear_interpolation(
        copy.deepcopy(a), copy.deepcopy(b), Loss(nn.CrossEntropyLoss(), x, y), steps=steps
    )
    ours = interpolate(a, b, (x, y), alphas=[0.0] + [i / steps for i in range(1, steps + 1)])
    assert ours.loss[1:] == pytest.approx(theirs.tolist(), abs=1e-5)


class _OutOfOrder(nn.Module):
    """Registers its last layer first, so the static first-layer guess is wrong."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(16, 4)
        self.body = nn.Linear(12, 16)

    def forward(self, x):
        return self.head(torch.relu(self.body(x.flatten(1))))


class _RawParameterFirst(nn.Module):
    """Uses a parameter directly before its first layer."""

    def __init__(self):
        super().__init__()
        self.shift = nn.Parameter(torch.randn(12))
        self.body = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))

    def forward(self, x):
        return self.body(x.flatten(1) + self.shift)


def _unseeded_mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))


@pytest.mark.parametrize("make", [_OutOfOrder, _RawParameterFirst, _unseeded_mlp])
def test_the_first_layer_shortcut_is_exact_or_off(make):
    from landscape.analysis.interpolate import _Line

    torch.manual_seed(0)
    a = make()
    torch.manual_seed(1)
    b = make()
    data = _data(40, (12,))
    alphas = [0.0, 0.3, 0.5, 1.0]
    res = interpolate(a, b, data, alphas=alphas)
    loss, error = _reference(a, b, data, alphas)
    assert res.loss == pytest.approx(loss, abs=1e-5)
    assert res.error == pytest.approx(error, abs=1e-12)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    line = _Line(a, b)
    list(line.logits(line.states([0.5]), data[0]))
    # only the plain MLP keeps the shortcut; the other two must have turned it off
    assert (line.first == "1") == isinstance(a, nn.Sequential)


def _mixed_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(12, 16, bias=False),
        nn.LeakyReLU(0.2),
        nn.Dropout(0.5),
        nn.Linear(16, 16),
        nn.Tanh(),
        nn.Identity(),
        nn.Linear(16, 8),
        nn.Sigmoid(),
        nn.Linear(8, 4, bias=False),
        nn.ReLU(),
    )


def _hooked_mlp() -> nn.Module:
    model = _mixed_mlp()
    model[4].register_forward_hook(lambda m, i, out: out * 2)
    return model


def _shared_mlp() -> nn.Module:
    layer = nn.Linear(16, 16)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), layer, nn.ReLU(), layer, nn.Linear(16, 4))


def _rewired_mlp() -> nn.Module:
    model = _mixed_mlp()
    model[7].forward = lambda u: 2 * nn.functional.linear(u, model[7].weight, model[7].bias)
    return model


@pytest.mark.parametrize(
    "make, stacked",
    [(_mixed_mlp, True), (_hooked_mlp, False), (_shared_mlp, False), (_rewired_mlp, False)],
)
def test_mlps_run_every_alpha_in_one_stacked_pass_only_when_their_modules_tell_the_forward(
    make, stacked
):
    from landscape.analysis.interpolate import _Line

    torch.manual_seed(0)
    a = make()
    torch.manual_seed(1)
    b = make()
    data = _data(70, (3, 4))
    alphas = [0.0, 0.2, 0.5, 0.7, 1.0]
    loss, error = _reference(a, b, data, alphas)
    for chunk, batch in ((None, None), (2, 16)):
        res = interpolate(a, b, data, alphas=alphas, alpha_chunk=chunk, batch_size=batch)
        assert res.loss == pytest.approx(loss, abs=1e-5)
        assert res.error == pytest.approx(error, abs=1e-12)
    # a hook may change what a layer returns, a layer may serve twice, an instance may set
    # its own forward: such models take the plain path
    assert (_Line(a, b).plan is not None) == stacked
    assert a.training and b.training  # the callers' models are left as they were


def test_a_shuffling_loader_scores_each_batch_with_its_own_activations():
    torch.manual_seed(0)
    a, b = _mixed_mlp(), _mixed_mlp()
    x, y = _data(96, (3, 4))
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    alphas = [0.0, 0.3, 0.6, 1.0]
    loss, error = _reference(a, b, (x, y), alphas)
    res = interpolate(a, b, loader, alphas=alphas, alpha_chunk=2)  # each chunk reshuffles
    assert res.loss == pytest.approx(loss, abs=1e-5)
    assert res.error == pytest.approx(error, abs=1e-12)


def test_conv1d_channels_last_path_matches_the_plain_model():
    torch.manual_seed(0)
    a = nn.Sequential(
        nn.Conv1d(2, 5, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(5, 5, 3, padding=1),
        nn.Flatten(),
        nn.Linear(5 * 8, 4),
    )
    torch.manual_seed(1)
    b = copy.deepcopy(a)
    for p in b.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    data = _data(33, (2, 16))
    alphas = [0.0, 0.25, 0.5, 1.0]
    res = interpolate(a, b, data, alphas=alphas)
    loss, error = _reference(a, b, data, alphas)
    assert res.loss == pytest.approx(loss, abs=1e-5)
    assert res.error == pytest.approx(error, abs=1e-12)


def test_dtype_follows_the_model():
    a, b = _mlp(0).double(), _mlp(1).double()
    data = _data(20, (12,))  # float32 data, float64 models
    res = interpolate(a, b, data, alphas=[0.0, 0.5, 1.0])
    loss, _ = _reference(a, b, data, [0.0, 0.5, 1.0])
    assert res.loss == pytest.approx(loss, abs=1e-12)


class _BatchNormRegisteredLast(nn.Module):
    """A BatchNorm that runs before the layer registered first."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 4)
        self.bn = nn.BatchNorm1d(12)

    def forward(self, x):
        return self.fc(self.bn(x.flatten(1)))


def test_reset_never_touches_the_callers_buffers():
    torch.manual_seed(0)
    a, b = _BatchNormRegisteredLast(), _BatchNormRegisteredLast()
    before = {k: v.clone() for k, v in a.state_dict().items()}
    res = interpolate(a, b, _data(20, (12,)), points=3, train_data=_data(40, (12,), 1))
    assert res.bn_reset
    assert all(torch.equal(v, before[k]) for k, v in a.state_dict().items())


def test_bad_pairs_and_extrapolated_alphas():
    x, y = _data(10, (12,))
    with pytest.raises(LandscapeError, match="labels y of shape"):
        interpolate(_mlp(0), _mlp(1), (x, y[:5]))
    with pytest.raises(LandscapeError, match="labels y of shape"):
        evaluate(_mlp(0), (x, y[:, None]))
    # the maximum is over [0, 1]; points beyond are extrapolation
    assert barriers([-0.5, 0, 0.5, 1, 1.5], [9.0, 0.0, 0.4, 0.0, 9.0]) == pytest.approx((0.4, 0.4))


def _shared_relu() -> list[nn.Module]:
    act = nn.ReLU()
    return [nn.Flatten(), act, nn.Linear(12, 8), act, nn.Linear(8, 3)]


@pytest.mark.parametrize(
    "layers",
    [
        lambda: [nn.Flatten(), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)],
        lambda: [nn.Identity(), nn.ReLU(), nn.Linear(12, 3)],
        lambda: [nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)],
        lambda: _shared_relu(),  # one ReLU after a Flatten and after a Linear
    ],
)
def test_in_place_relus_never_touch_the_callers_data_or_model(layers):
    """The private copy runs ReLUs in place where only the layer before reads their input:
    the curve equals a plain evaluation, and the caller's data and modules are untouched."""
    torch.manual_seed(0)
    a, b = nn.Sequential(*layers()), nn.Sequential(*layers())
    x, y = torch.randn(40, 12) - 0.5, torch.randint(0, 3, (40,))
    before = x.clone()
    res = interpolate(a, b, (x, y), points=5)
    assert torch.equal(x, before)
    assert not any(getattr(m, "inplace", False) for m in [*a, *b])
    for alpha, loss in zip(res.alphas, res.loss):
        mix = copy.deepcopy(a)
        with torch.no_grad():
            for p, q in zip(mix.parameters(), b.parameters()):
                p.lerp_(q, alpha)
            assert loss == pytest.approx(F.cross_entropy(mix(x), y).item(), rel=1e-5)


def test_a_hook_on_the_layer_before_keeps_its_relu_out_of_place():
    """A forward hook may keep a layer's output: the ReLU after it must not overwrite it."""
    torch.manual_seed(0)
    a, b = (nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)) for _ in range(2))
    seen = []
    a[0].register_forward_hook(lambda m, i, out: seen.append(out))
    x, y = torch.randn(40, 12), torch.randint(0, 3, (40,))
    interpolate(a, b, (x, y), points=3)
    assert seen and all((out < 0).any() for out in seen)  # the pre-activations, negatives kept
