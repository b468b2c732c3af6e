"""Tests for landscape.models: every registered model, the registry, and parameter counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.models import create_model, list_models, register_model
from landscape.models import registry as registry_module

NUM_CLASSES = 7

# Per-example shapes each model is exercised on; a model missing here gets CIFAR's.
SHAPES: dict[str, list[tuple[int, ...]]] = {
    "conv1d": [(1, 40)],
    "mlp": [(1, 40), (1, 28, 28), (3, 32, 32)],
    "lenet300-100": [(1, 28, 28)],
    "convnet": [(1, 28, 28), (3, 32, 32)],
    "resnet20": [(3, 32, 32), (1, 28, 28)],
    "vgg11": [(3, 32, 32), (1, 28, 28)],
    "vgg16": [(3, 32, 32)],
    "wrn": [(3, 32, 32)],
}
# Options that shrink big models so the whole file stays fast on a laptop CPU.
SMALL: dict[str, dict] = {
    "convnet": {"width": 16},
    "vgg11": {"width": 0.125},
    "vgg16": {"width": 0.125},
    "wrn": {"depth": 10, "width": 1},
}
# Models too big to run on CPU in a unit test and with no option to shrink them: their
# forward/backward is traced on the meta device (shapes only, no arithmetic).
HEAVY = {"wrn28-10"}

CASES = [(name, shape) for name in list_models() for shape in SHAPES.get(name, [(3, 32, 32)])] + [
    ("tv:resnet18", (3, 32, 32))
]


def build(name: str, in_shape: tuple[int, ...], seed: int = 0) -> nn.Module:
    """The test-sized model ``name`` for ``in_shape``, initialised from ``seed``."""
    torch.manual_seed(seed)
    return create_model(name, num_classes=NUM_CLASSES, in_shape=in_shape, **SMALL.get(name, {}))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- every model


@pytest.mark.parametrize(("name", "in_shape"), CASES)
def test_forward_backward_reaches_every_parameter(name, in_shape):
    if name in HEAVY:
        with torch.device("meta"):
            model = build(name, in_shape)
            x = torch.randn(2, *in_shape)
    else:
        model = build(name, in_shape)
        x = torch.randn(2, *in_shape)
    out = model(x)
    assert out.shape == (2, NUM_CLASSES)
    nn.functional.cross_entropy(out, torch.arange(2, device=out.device)).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        if name not in HEAVY:
            assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"
            assert p.grad.abs().sum() > 0, f"{name}: zero gradient for {pname}"


# torchvision's ImageNet models are left out: on 32x32 inputs their last BatchNorm sees one
# value per channel, which training-mode BN cannot normalise for a batch of one.
@pytest.mark.parametrize(
    ("name", "in_shape"), [c for c in CASES if c[0] in list_models() and c[0] not in HEAVY]
)
def test_batch_of_one_in_train_and_eval_mode(name, in_shape):
    model = build(name, in_shape)
    x = torch.randn(1, *in_shape)
    assert model(x).shape == (1, NUM_CLASSES)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (1, NUM_CLASSES)


@pytest.mark.parametrize("name", [n for n in list_models() if n not in HEAVY])
def test_same_seed_same_weights(name):
    in_shape = SHAPES.get(name, [(3, 32, 32)])[0]
    a, b = build(name, in_shape, seed=3).state_dict(), build(name, in_shape, seed=3).state_dict()
    other = build(name, in_shape, seed=4).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], other[k]) for k in a)


def test_no_dropout_by_default():
    for name in list_models():
        in_shape = SHAPES.get(name, [(3, 32, 32)])[0]
        with torch.device("meta"):
            model = create_model(name, in_shape=in_shape)
        drops = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
        assert all(p == 0 for p in drops), name


# ---------------------------------------------------------------- parameter counts
# Each count is derived here from the architecture, independently of the model code.


def conv_params(c_in: int, c_out: int, k: int, bias: bool) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def linear_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def resnet20_params(in_channels: int, num_classes: int, width: int = 1) -> int:
    """Stem, 3 stages x 3 basic blocks (two conv3x3 + two BN), option-B projections."""
    widths = [16 * width, 32 * width, 64 * width]
    total = conv_params(in_channels, widths[0], 3, False) + 2 * widths[0]
    c_in = widths[0]
    for c in widths:
        for _ in range(3):
            total += conv_params(c_in, c, 3, False) + conv_params(c, c, 3, False) + 4 * c
            if c_in != c:
                total += conv_params(c_in, c, 1, False) + 2 * c
            c_in = c
    return total + linear_params(widths[-1], num_classes)


def wrn_params(depth: int, k: int, in_channels: int, num_classes: int) -> int:
    """Stem, 3 groups of (depth-4)/6 pre-activation blocks, final BN, linear."""
    n = (depth - 4) // 6
    total = conv_params(in_channels, 16, 3, False)
    c_in = 16
    for c in (16 * k, 32 * k, 64 * k):
        for _ in range(n):
            total += 2 * c_in + conv_params(c_in, c, 3, False) + 2 * c + conv_params(c, c, 3, False)
            if c_in != c:
                total += conv_params(c_in, c, 1, False)
            c_in = c
    return total + 2 * c_in + linear_params(c_in, num_classes)


def test_lenet300_100_has_266610_parameters_on_mnist():
    model = create_model("lenet300-100", num_classes=10, in_shape=(1, 28, 28))
    assert n_params(model) == 266_610
    expected = linear_params(784, 300) + linear_params(300, 100) + linear_params(100, 10)
    assert expected == 266_610


def test_mlp_widths_set_the_hidden_layers():
    model = create_model("mlp", num_classes=5, in_shape=(2, 10), widths=[16, 8])
    assert n_params(model) == linear_params(20, 16) + linear_params(16, 8) + linear_params(8, 5)
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linear] == [16, 8, 5]


def test_conv1d_matches_the_mnist1d_reference_count():
    # Lengths 40 -> 19 -> 10 -> 5 with kernels 5, 3, 3 (stride 2, padding 1).
    c = 25
    expected = (c * 5 + c) + 2 * (c * c * 3 + c) + linear_params(5 * c, 10)
    assert expected == 5210
    assert n_params(create_model("conv1d", num_classes=10, in_shape=(1, 40))) == expected
    small = create_model("conv1d", num_classes=10, in_shape=(1, 40), channels=4)
    assert n_params(small) == (4 * 5 + 4) + 2 * (4 * 4 * 3 + 4) + linear_params(20, 10)


def test_conv1d_matches_mnist1d_convbase_if_available():
    models = pytest.importorskip("mnist1d.models", reason="this mnist1d ships no models module")
    reference = models.ConvBase(output_size=10)
    assert n_params(create_model("conv1d", num_classes=10, in_shape=(1, 40))) == n_params(reference)


def test_resnet20_count_with_option_b_shortcuts():
    assert n_params(create_model("resnet20", num_classes=10)) == resnet20_params(3, 10) == 272_474
    assert n_params(create_model("resnet20", num_classes=NUM_CLASSES)) == resnet20_params(3, 7)
    with torch.device("meta"):
        wide = create_model("resnet20", num_classes=10, width=4)
    assert n_params(wide) == resnet20_params(3, 10, width=4)


def test_wrn28_10_has_36_5m_parameters_without_running_it():
    with torch.device("meta"):  # shapes only: nothing is allocated or computed
        alias = create_model("wrn28-10", num_classes=10)
        explicit = create_model("wrn", num_classes=10, depth=28, width=10)
    assert n_params(alias) == n_params(explicit) == wrn_params(28, 10, 3, 10) == 36_479_194
    small = create_model("wrn", num_classes=NUM_CLASSES, depth=16, width=2)
    assert n_params(small) == wrn_params(16, 2, 3, NUM_CLASSES)


def test_convnet_counts_match_the_distillation_papers():
    # ConvNetD3, width 128: 320,010 parameters on CIFAR-10 (Cazenavette et al. 2022).
    with torch.device("meta"):
        cifar = create_model("convnet", num_classes=10, in_shape=(3, 32, 32))
        mnist = create_model("convnet", num_classes=10, in_shape=(1, 28, 28))
    rest = 2 * conv_params(128, 128, 3, True) + 3 * 2 * 128 + linear_params(128 * 4 * 4, 10)
    assert n_params(cifar) == conv_params(3, 128, 3, True) + rest == 320_010
    # The first convolution pads MNIST by 3, so 28x28 behaves like 32x32 (4x4 features).
    assert n_params(mnist) == conv_params(1, 128, 3, True) + rest


@pytest.mark.parametrize(("name", "config"), [("vgg11", "A"), ("vgg16", "D")])
def test_vgg_counts(name, config):
    convs = {
        "A": [64, 128, 256, 256, 512, 512, 512, 512],
        "D": [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512],
    }[config]
    with torch.device("meta"):
        bn = create_model(name, num_classes=10)
        plain = create_model(name, num_classes=10, batch_norm=False)
    c_in, with_bn, without_bn = 3, 0, 0
    for c in convs:
        with_bn += conv_params(c_in, c, 3, False) + 2 * c
        without_bn += conv_params(c_in, c, 3, True)
        c_in = c
    assert n_params(bn) == with_bn + linear_params(512, 10)
    assert n_params(plain) == without_bn + linear_params(512, 10)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())


# ---------------------------------------------------------------- options and errors


@pytest.mark.parametrize(
    ("norm", "layer"),
    [
        ("instance", nn.GroupNorm),
        ("group", nn.GroupNorm),
        ("batch", nn.BatchNorm2d),
        ("none", None),
    ],
)
def test_convnet_norms(norm, layer):
    model = create_model("convnet", num_classes=NUM_CLASSES, width=8, depth=2, norm=norm)
    norms = [m for m in model.modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d))]
    if layer is None:
        assert norms == []
    else:
        assert len(norms) == 2 and all(type(m) is layer for m in norms)
        if norm == "instance":
            assert all(m.num_groups == m.num_channels == 8 and m.affine for m in norms)
        if norm == "group":
            assert all(m.num_groups == 4 for m in norms)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, NUM_CLASSES)


def test_convnet_rejects_bad_norms():
    with pytest.raises(LandscapeError, match="instance, group, batch, none"):
        create_model("convnet", norm="layer")
    with pytest.raises(LandscapeError, match="multiple of 4"):
        create_model("convnet", width=6, norm="group")


def test_unknown_name_lists_every_model_and_the_torchvision_family():
    with pytest.raises(LandscapeError) as err:
        create_model("resnet21")
    message = str(err.value)
    assert "resnet21" in message and "tv:" in message
    for name in list_models():
        assert name in message


def test_unknown_torchvision_name_lists_torchvision_models():
    with pytest.raises(LandscapeError, match="list_models") as err:
        create_model("tv:resnet_nope")
    assert "resnet18" in str(err.value)


def test_torchvision_models_never_take_pretrained_weights_or_odd_shapes():
    with pytest.raises(LandscapeError, match="pretrained"):
        create_model("tv:resnet18", weights="DEFAULT")
    with pytest.raises(LandscapeError, match=r"\(3, H, W\)"):
        create_model("tv:resnet18", in_shape=(1, 28, 28))
    with pytest.raises(LandscapeError, match="options"):
        create_model("tv:resnet18", not_an_option=1)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("mlp", {"depth": 3}, "widths"),
        ("wrn28-10", {"depth": 16}, "dropout"),
        ("lenet300-100", {"widths": (10,)}, "none"),
        ("mlp", {"widths": "100"}, "sequence"),
        ("mlp", {"widths": (100, 0)}, ">= 1"),
        ("conv1d", {"channels": 2.5}, "channels"),
        ("resnet20", {"width": -1}, "width"),
        ("vgg16", {"batch_norm": "yes"}, "batch_norm"),
        ("wrn", {"depth": 27}, "6n \\+ 4"),
        ("wrn", {"depth": 4}, "6n \\+ 4"),
        ("wrn", {"dropout": 1.0}, "dropout"),
        ("convnet", {"first_padding": -1}, "first_padding"),
    ],
)
def test_bad_options_raise_landscape_error(name, kwargs, match):
    with pytest.raises(LandscapeError, match=match):
        create_model(name, **kwargs)


@pytest.mark.parametrize(
    ("name", "in_shape"),
    [
        ("conv1d", (3, 32, 32)),
        ("conv1d", (1, 2)),
        ("convnet", (1, 40)),
        ("convnet", (3, 4, 4)),
        ("resnet20", (3, 0, 32)),
        ("mlp", ()),
    ],
)
def test_unusable_in_shapes_raise_landscape_error(name, in_shape):
    with pytest.raises(LandscapeError, match="in_shape|too short|shrink"):
        create_model(name, in_shape=in_shape)


def test_bad_num_classes_raise_landscape_error():
    with pytest.raises(LandscapeError, match="num_classes"):
        create_model("mlp", num_classes=0)


def test_register_model_adds_a_buildable_name(monkeypatch):
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))

    @register_model("tiny-test")
    def tiny(num_classes: int, in_shape: tuple[int, ...], hidden: int = 3) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(in_shape), num_classes))

    assert "tiny-test" in list_models()
    assert list_models() == sorted(list_models())
    model = create_model("tiny-test", num_classes=4, in_shape=(2, 3))
    assert model(torch.randn(5, 2, 3)).shape == (5, 4)
    with pytest.raises(LandscapeError, match="hidden=3"):
        create_model("tiny-test", depth=2)
    with pytest.raises(LandscapeError, match="already registered"):
        register_model("tiny-test")(tiny)
    with pytest.raises(LandscapeError, match="tv:"):
        register_model("tv:mine")


def test_wrn_dropout_option_adds_dropout_layers():
    model = create_model("wrn", depth=10, width=1, dropout=0.3)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.3] * 3
