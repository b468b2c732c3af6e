"""Tests for landscape.analysis.spectral: the Fourier filter against numpy, radius-accuracy rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from landscape.analysis import (
    evaluate,
    frequency_filter,
    frequency_mask,
    radius_accuracy,
    spectral_rows,
    spectrum_radius,
)
from landscape.data import DatasetInfo, Split, get_dataset, normalize
from landscape.errors import LandscapeError

SIZES = [(6, 6), (5, 7), (8, 5)]  # even square, odd, mixed
RADII = [0, 1, 1.5, 2, 2.5, 3]


def images(n: int = 3, c: int = 2, h: int = 6, w: int = 6, dtype=torch.float64, seed: int = 0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def reference(x: np.ndarray, radius: float, kind: str, shape: str) -> np.ndarray:
    """Brute force: a mask built bin by bin around (H // 2, W // 2), numpy's FFT per channel."""
    n, c, h, w = x.shape
    mask = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            du, dv = i - h // 2, j - w // 2
            d = math.hypot(du, dv) if shape == "circle" else max(abs(du), abs(dv))
            mask[i, j] = (d <= radius) if kind == "low" else (d > radius)
    out = np.empty_like(x)
    for a in range(n):
        for b in range(c):
            spectrum = np.fft.fftshift(np.fft.fft2(x[a, b]))
            out[a, b] = np.real(np.fft.ifft2(np.fft.ifftshift(spectrum * mask)))
    return out


# ----------------------------------------------------------------------------- the filter


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["low", "high"])
@pytest.mark.parametrize("shape", ["circle", "square"])
def test_filter_matches_numpy_reference(size, kind, shape):
    x = images(h=size[0], w=size[1])
    for radius in RADII:
        want = reference(x.numpy(), radius, kind, shape)
        got = frequency_filter(x, radius, kind, shape)
        assert got.dtype == torch.float64 and got.shape == x.shape
        np.testing.assert_allclose(got.numpy(), want, atol=1e-12, err_msg=f"radius {radius}")
        got32 = frequency_filter(x.float(), radius, kind, shape)
        assert got32.dtype == torch.float32
        np.testing.assert_allclose(got32.numpy(), want, atol=1e-5)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("shape", ["circle", "square"])
def test_low_plus_high_is_the_image(size, shape):
    x = images(h=size[0], w=size[1], dtype=torch.float32)
    for radius in RADII + [10.0]:
        low = frequency_filter(x, radius, "low", shape)
        high = frequency_filter(x, radius, "high", shape)
        assert (low + high - x).abs().max() < 1e-5
        assert (low - x).abs().max() > 1e-3 or radius >= spectrum_radius(*size, shape)


@pytest.mark.parametrize("size", SIZES)
def test_radius_zero_keeps_only_each_channels_mean(size):
    x = images(h=size[0], w=size[1])
    means = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    for shape in ("circle", "square"):
        torch.testing.assert_close(frequency_filter(x, 0, "low", shape), means)
        torch.testing.assert_close(frequency_filter(x, 0, "high", shape), x - means)
    # just below one bin away, still the DC alone
    torch.testing.assert_close(frequency_filter(x, 0.999), means)


@pytest.mark.parametrize("n", [4, 5, 6, 7])
def test_the_dc_bin_is_at_the_centre_for_even_and_odd_sizes(n):
    assert np.fft.fftshift(np.fft.fftfreq(n))[n // 2] == 0.0
    for shape in ("circle", "square"):
        mask = frequency_mask(n, n + 1, 0, shape)
        assert mask.sum() == 1 and mask[n // 2, (n + 1) // 2]
    # the four nearest neighbours join at radius 1 in both shapes; the diagonals at sqrt(2)
    # in the circle, already at 1 in the square
    assert frequency_mask(n, n, 1, "circle").sum() == 5
    assert frequency_mask(n, n, math.sqrt(2), "circle").sum() == 9
    assert frequency_mask(n, n, 1, "square").sum() == 9


def test_spectrum_radius_is_where_the_low_pass_becomes_the_identity():
    assert spectrum_radius(32, 32) == pytest.approx(16 * math.sqrt(2))
    assert spectrum_radius(32, 32, "square") == 16.0
    assert spectrum_radius(5, 6) == pytest.approx(math.hypot(2, 3))
    for h, w in [(5, 6), (6, 6), (7, 7), (2, 26)]:
        for shape in ("circle", "square"):
            r = spectrum_radius(h, w, shape)
            assert frequency_mask(h, w, r, shape).all()
            assert not frequency_mask(h, w, math.nextafter(r, 0), shape).all()
            x = images(h=h, w=w)
            torch.testing.assert_close(frequency_filter(x, r, "low", shape), x)
            torch.testing.assert_close(frequency_filter(x, r + 100, "low", shape), x)
            assert torch.equal(frequency_filter(x, r, "high", shape), torch.zeros_like(x))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("shape", ["circle", "square"])
def test_energy_is_monotone_in_radius(size, shape):
    x = images(n=4, h=size[0], w=size[1], seed=1)
    radii = np.arange(0, spectrum_radius(*size, shape) + 1, 0.25)
    low = [frequency_filter(x, float(r), "low", shape).square().sum().item() for r in radii]
    high = [frequency_filter(x, float(r), "high", shape).square().sum().item() for r in radii]
    assert all(b >= a - 1e-9 for a, b in zip(low, low[1:]))
    assert all(b <= a + 1e-9 for a, b in zip(high, high[1:]))
    assert low[-1] == pytest.approx(x.square().sum().item()) and high[-1] == 0.0
    assert low[0] < low[-1] and len(set(np.round(low, 9))) > 2


def test_reproduces_wang_et_al_masks_just_below_an_integer_radius():
    """HaohanWang/HFC utility/frequencyHelper.py keeps dist < r around (rows/2, rows/2)."""
    n = 8
    for r in range(1, 6):  # every integer radius with bins on its edge (5.66 covers all)
        theirs = np.array(
            [[np.sqrt((i - n / 2) ** 2 + (j - n / 2) ** 2) < r for j in range(n)] for i in range(n)]
        )
        assert np.array_equal(frequency_mask(n, n, r - 1e-3).numpy(), theirs)
        assert not np.array_equal(frequency_mask(n, n, r).numpy(), theirs)  # boundary kept


def test_filter_keeps_dtype_and_device_of_half_precision_images():
    x = images(dtype=torch.float16)
    out = frequency_filter(x, 1.5)
    assert out.dtype == torch.float16 and out.device == x.device
    ref = frequency_filter(x.double(), 1.5)
    assert (out.double() - ref).abs().max() < 2e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_filter_on_cuda_matches_cpu():
    x = images(n=5, c=3, h=32, w=32, dtype=torch.float32)
    for kind in ("low", "high"):
        for shape in ("circle", "square"):
            got = frequency_filter(x.cuda(), 6, kind, shape)
            assert got.is_cuda
            torch.testing.assert_close(got.cpu(), frequency_filter(x, 6, kind, shape))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x: frequency_filter(x, -1), "radius must be a number >= 0"),
        (lambda x: frequency_filter(x, float("nan")), "radius must be a number"),
        (lambda x: frequency_filter(x, "3"), "radius must be a number"),
        (lambda x: frequency_filter(x, 1, "band"), "unknown kind 'band'; valid: low, high"),
        (lambda x: frequency_filter(x, 1, "low", "disk"), "unknown shape 'disk'"),
        (lambda x: frequency_filter(x * 2 - 1, 1), "normalize=False"),
        (lambda x: frequency_filter(x.clone().fill_(float("nan")), 1), "in [0, 1]"),
        (lambda x: frequency_filter((x * 255).to(torch.uint8), 1), "x.float() / 255"),
        (lambda x: frequency_filter(x[0], 1), "(N, C, H, W)"),
        (lambda x: frequency_filter(x.numpy(), 1), "must be a tensor"),
        (lambda x: frequency_mask(4, 4, 1, "round"), "unknown shape"),
        (lambda x: spectrum_radius(0, 4), "height must be a whole number >= 1"),
    ],
)
def test_filter_errors(call, message):
    with pytest.raises(LandscapeError, match=None) as info:
        call(images())
    assert message in str(info.value)


# ----------------------------------------------------------------------------- accuracy

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(4 * 6 * 6, 4),
    )


def raw_split(n: int = 40) -> Split:
    g = torch.Generator().manual_seed(3)
    info = DatasetInfo("raw-test", 4, (3, 6, 6), MEAN, STD, ("a", "b", "c", "d"))
    x = torch.rand(n, 3, 6, 6, generator=g)
    return Split(x=x, y=torch.randint(0, 4, (n,), generator=g), info=info)


def manual(model, split, radius, kind, shape="circle", batch_size=16):
    x = normalize(frequency_filter(split.x, radius, kind, shape), split.info)
    return evaluate(model, (x, split.y), batch_size=batch_size)


@pytest.mark.parametrize("kind", ["low", "high"])
def test_radius_accuracy_equals_evaluate_on_filtered_normalised_images(kind):
    model, split = tiny_model(), raw_split()
    model.train()
    radii = [0, 1, 2.5, 4]
    rows = radius_accuracy(model, split, radii, kind, batch_size=16)
    assert model.training and all(m.training for m in model.modules())  # left as found
    assert [r["radius"] for r in rows] == radii and {r["kind"] for r in rows} == {kind}
    assert list(rows[0]) == ["kind", "radius", "accuracy", "error", "loss", "count"]
    for row, radius in zip(rows, radii):
        want = manual(model, split, radius, kind)
        assert row["count"] == 40 and row["error"] == want.error
        assert row["accuracy"] == pytest.approx(1 - want.error)
        assert row["loss"] == pytest.approx(want.loss, rel=1e-6)
    assert len({round(r["loss"], 6) for r in rows}) == len(radii)  # the radius matters


def test_every_way_to_normalise_gives_the_same_rows():
    model, split = tiny_model(), raw_split()
    radii = [0, 2, 3]
    want = radius_accuracy(model, split, radii, "low", batch_size=7)
    pair = (split.x, split.y)
    for norm in (
        (MEAN, STD),
        (torch.tensor(MEAN), np.array(STD)),
        split.info,
        lambda x: normalize(x, split.info),
    ):
        got = radius_accuracy(model, pair, radii, "low", normalize=norm, batch_size=7)
        assert [r["error"] for r in got] == [r["error"] for r in want]
        assert [r["loss"] for r in got] == pytest.approx([r["loss"] for r in want], rel=1e-6)
    # the batch size does not change the numbers, nor numpy inputs
    other = radius_accuracy(model, (split.x.numpy(), split.y.numpy()), radii, normalize=split.info)
    assert [r["error"] for r in other] == [r["error"] for r in want]


def test_raw_inputs_with_normalize_false_and_a_float64_model():
    model, split = tiny_model().double(), raw_split()
    (row,) = radius_accuracy(model, split, [2], "high", normalize=False)
    x = frequency_filter(split.x.double(), 2, "high")
    want = evaluate(model, (x, split.y))
    assert row["error"] == want.error and row["loss"] == pytest.approx(want.loss, rel=1e-12)


def test_spectral_rows_has_both_kinds_and_the_identity_at_the_spectrum_radius():
    model, split = tiny_model(), raw_split()
    top = spectrum_radius(6, 6)
    rows = spectral_rows(model, split, [0, top])
    assert [(r["kind"], r["radius"]) for r in rows] == [
        ("low", 0),
        ("low", top),
        ("high", 0),
        ("high", top),
    ]
    clean = evaluate(model, (normalize(split.x, split.info), split.y))
    assert rows[1]["error"] == clean.error
    assert rows[1]["loss"] == pytest.approx(clean.loss, rel=1e-5)
    # the high-pass of everything is a black image, normalised to -mean/std everywhere
    black = normalize(torch.zeros_like(split.x), split.info)
    assert rows[3]["loss"] == pytest.approx(evaluate(model, (black, split.y)).loss, rel=1e-6)
    square = spectral_rows(model, split, [1], shape="square")
    assert square[0]["loss"] == pytest.approx(manual(model, split, 1, "low", "square").loss)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"radii": [-1]}, "a radius must be a number >= 0"),
        ({"radii": []}, "radii is empty"),
        ({"radii": 3}, "radii must be a list"),
        ({"radii": [1, 2, 1]}, "radii repeat a value"),
        ({"kind": "mid"}, "unknown kind 'mid'"),
        ({"shape": "hexagon"}, "unknown shape 'hexagon'"),
        ({"normalize": (MEAN[:2], STD)}, "one value per channel (3)"),
        ({"normalize": (MEAN, (0.2, 0.0, 0.3))}, "std must be positive"),
        ({"normalize": "imagenet"}, "normalize must be (mean, std)"),
        ({"normalize": lambda x: x[:, :1]}, "normalize returned (16, 1, 6, 6)"),
        ({"batch_size": 0}, "batch_size must be a whole number >= 1"),
    ],
)
def test_radius_accuracy_errors(kwargs, message):
    args = {"radii": [1], "kind": "low", "batch_size": 16} | kwargs
    with pytest.raises(LandscapeError) as info:
        radius_accuracy(tiny_model(), raw_split(), **args)
    assert message in str(info.value)


def test_radius_accuracy_refuses_normalised_data_and_unnormalised_pairs():
    model, split = tiny_model(), raw_split()
    with pytest.raises(LandscapeError, match="say how the model's inputs are normalised"):
        radius_accuracy(model, (split.x, split.y), [1])
    with pytest.raises(LandscapeError, match="pass images and labels together"):
        radius_accuracy(model, split.x, split.y, [1])
    with pytest.raises(LandscapeError, match="Split or an \\(images, labels\\) pair"):
        radius_accuracy(model, [(split.x, split.y)], [1])
    normalised = get_dataset("test-images", split="test")  # the default: normalised
    with pytest.raises(LandscapeError, match=r"get_dataset\(\.\.\., normalize=False\)"):
        radius_accuracy(model, normalised, [1])
    blobs = get_dataset("test-blobs", split="test", normalize=False)  # (1, 12): not images
    with pytest.raises(LandscapeError, match=r"\(N, C, H, W\)"):
        radius_accuracy(model, blobs, [1])
