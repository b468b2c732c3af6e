"""Loss surfaces: filter-normalised directions, the plane of three models, grid evaluation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from landscape.analysis import evaluate
from landscape.analysis.surface import plane, plane_surface, random_direction, surface
from landscape.errors import LandscapeError
from landscape.models import create_model


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))


def _conv(seed=0):
    torch.manual_seed(seed)
    return create_model(
        "convnet", num_classes=4, in_shape=(1, 8, 8), width=8, depth=2, norm="group"
    )


def _bn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4)
    )


def _data(shape=(1, 12), n=60, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 4, (n,), generator=g)


def _at(model, origin, dirs, coords):
    """A copy of ``model`` at ``origin + sum c_k d_k`` (written out here, independently)."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in m.named_parameters():
            value = origin[name].clone() if origin else p.detach().clone()
            for c, d in zip(coords, dirs):
                value += c * d.get(name, torch.zeros_like(value))
            p.copy_(value)
        if origin:
            for name, b in m.named_buffers():
                b.copy_(origin[name])
    return m


def _reset_bn(model, x):
    """BatchNorm statistics recomputed by hand: the cumulative average over batches of 128."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), 128):
            model(x[i : i + 128])
    model.eval()


@pytest.mark.parametrize("factory, shape", [(_mlp, (1, 12)), (_conv, (1, 8, 8))])
def test_the_grid_equals_point_by_point_evaluation(factory, shape):
    model = factory()
    data = _data(shape)
    d1 = random_direction(model, generator=torch.Generator().manual_seed(1))
    d2 = random_direction(model, generator=torch.Generator().manual_seed(2), keep_vectors=True)
    xs, ys = [-1.0, 0.0, 0.5], [-0.5, 1.0]
    result = surface(model, data, [d1, d2], xs=xs, ys=ys, point_chunk=2, batch_size=16)
    assert result.count == 60 and len(result.loss) == 2 and len(result.loss[0]) == 3
    for j, y in enumerate(ys):
        for i, x in enumerate(xs):
            expected = evaluate(_at(model, None, [d1, d2], (x, y)), data)
            assert result.loss[j][i] == pytest.approx(expected.loss, rel=1e-5, abs=1e-6)
            assert result.error[j][i] == pytest.approx(expected.error)
    rows = result.rows(net="m")
    assert len(rows) == 6 and rows[1] == {
        "net": "m",
        "x": 0.0,
        "y": -0.5,
        "loss": result.loss[0][1],
        "error": result.error[0][1],
    }
    line = surface(model, data, [d1], points=5, span=2.0)
    assert line.xs == [-2.0, -1.0, 0.0, 1.0, 2.0] and line.ys is None
    assert line.loss[2] == pytest.approx(evaluate(model, data).loss, rel=1e-6)


def test_batchnorm_statistics_are_recomputed_at_every_point():
    model = _bn()
    data, train = _data(), _data(n=300, seed=7)
    d1 = random_direction(model, generator=torch.Generator().manual_seed(3))
    result = surface(model, data, [d1], xs=[0.0, 0.7], train_data=train)
    assert result.bn_reset
    for i, x in enumerate([0.0, 0.7]):
        m = _at(model, None, [d1], (x,))
        _reset_bn(m, train[0])
        assert result.loss[i] == pytest.approx(evaluate(m, data).loss, rel=1e-5)
    with pytest.raises(LandscapeError, match="train_data"):
        surface(model, data, [d1], xs=[0.0])
    kept = surface(model, data, [d1], xs=[0.0], bn_reset=False)
    assert kept.loss[0] == pytest.approx(evaluate(model, data).loss, rel=1e-6)


def test_filter_normalised_directions_match_each_filters_norm():
    model = _conv()
    d = random_direction(model)
    for name, p in model.named_parameters():
        if p.dim() <= 1:
            assert torch.all(d[name] == 0), name  # biases and norm weights: zero
            continue
        norms_d = d[name].reshape(len(p), -1).norm(dim=1)
        norms_w = p.detach().reshape(len(p), -1).norm(dim=1)
        torch.testing.assert_close(norms_d, norms_w)
    kept = random_direction(model, keep_vectors=True)
    assert torch.equal(kept["conv1.bias"], model.conv1.bias.detach())
    layer = random_direction(model, normalization="layer")
    for name, p in model.named_parameters():
        if p.dim() > 1:
            assert float(layer[name].norm()) == pytest.approx(float(p.detach().norm()), rel=1e-5)
    raw = random_direction(model, normalization="none")
    g = torch.Generator().manual_seed(0)
    first = torch.randn(model.conv1.weight.shape, generator=g, dtype=torch.float64).float()
    torch.testing.assert_close(raw["conv1.weight"], first)
    again = random_direction(model)
    assert all(torch.equal(d[k], again[k]) for k in d)  # seeded
    other = random_direction(model, generator=torch.Generator().manual_seed(9))
    assert not torch.equal(d["conv1.weight"], other["conv1.weight"])


def test_masked_directions_stay_in_the_subnetwork():
    model = _mlp()
    g = torch.Generator().manual_seed(4)
    masks = {"1.weight": torch.rand(16, 12, generator=g) < 0.5}
    masks["1.weight"][3] = False  # a filter pruned whole
    d = random_direction(model, masks=masks)
    assert torch.all(d["1.weight"][~masks["1.weight"]] == 0)
    assert torch.all(d["1.weight"][3] == 0)
    kept = model[1].weight.detach() * masks["1.weight"]
    norms = d["1.weight"].norm(dim=1)
    torch.testing.assert_close(norms, kept.norm(dim=1))  # norms of unpruned weights only


def test_the_plane_passes_through_its_three_models():
    a, b, c = _mlp(0), _mlp(1), _mlp(2)
    data = _data()
    p = plane(a, b, c)
    flat = {n: torch.cat([t.reshape(-1) for t in d.values()]) for n, d in (("u", p.u), ("v", p.v))}
    assert float(flat["u"].norm()) == pytest.approx(1.0, rel=1e-5)
    assert float(flat["v"].norm()) == pytest.approx(1.0, rel=1e-5)
    assert float(flat["u"] @ flat["v"]) == pytest.approx(0.0, abs=1e-5)
    for name, model in (("a", a), ("b", b), ("c", c)):
        x, y = p.coordinates[name]
        at = _at(a, p.origin, [p.u, p.v], (x, y))
        for (n, t), (_, s) in zip(at.named_parameters(), model.named_parameters()):
            torch.testing.assert_close(t, s, rtol=1e-4, atol=1e-5)
        result = surface(a, data, [p.u, p.v], xs=[x], ys=[y], origin=p.origin)
        assert result.loss[0][0] == pytest.approx(evaluate(model, data).loss, rel=1e-4)
    grid = plane_surface(a, b, c, data, points=5, margin=0.1)
    assert set(grid.marks) == {"a", "b", "c"} and len(grid.xs) == len(grid.ys) == 5
    xs = [m[0] for m in grid.marks.values()]
    assert min(grid.xs) < min(xs) and max(grid.xs) > max(xs)
    with pytest.raises(LandscapeError, match="one line"):
        plane(a, b, _mid(a, b))
    with pytest.raises(LandscapeError, match="same point"):
        plane(a, a, c)


def _mid(a, b):
    m = copy.deepcopy(a)
    with torch.no_grad():
        for p, q in zip(m.parameters(), b.parameters()):
            p.lerp_(q, 0.5)
    return m


def test_the_model_is_left_as_found():
    model = _bn().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    d = random_direction(model)
    surface(model, _data(), [d, d], points=3, train_data=_data(n=200))
    assert model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, d, v: surface(m, d, [v, v, v]), "one or two directions"),
        (lambda m, d, v: surface(m, d, v), "list of one or two"),
        (lambda m, d, v: surface(m, d, [{"nope": torch.zeros(1)}]), "not a parameter"),
        (lambda m, d, v: surface(m, d, [{"1.weight": torch.zeros(2)}]), "shape"),
        (lambda m, d, v: surface(m, d, [{"1.weight": torch.full((16, 12), math.nan)}]), "NaN"),
        (lambda m, d, v: surface(m, d, [v], ys=[0.0]), "second direction"),
        (lambda m, d, v: surface(m, d, [v], xs=[]), "empty"),
        (lambda m, d, v: surface(m, d, [v], points=1), "points"),
        (lambda m, d, v: surface(m, d, [v], span=0), "span"),
        (lambda m, d, v: surface(m, (d[0][:0], d[1][:0]), [v]), "empty data"),
        (lambda m, d, v: random_direction(m, normalization="unit"), "unknown normalization"),
        (lambda m, d, v: random_direction(m, generator=1), "generator must be"),
        (lambda m, d, v: random_direction(m, masks={"x": torch.ones(1)}), "lacks"),
        (lambda m, d, v: plane(m, _conv(), m), "architecture"),
        (lambda m, d, v: plane_surface(m, _mlp(1), _mlp(2), d, margin=-1), "margin"),
    ],
)
def test_bad_input_gets_one_clear_error(call, message):
    model, data = _mlp(), _data()
    with pytest.raises(LandscapeError, match=message):
        call(model, data, random_direction(model))
