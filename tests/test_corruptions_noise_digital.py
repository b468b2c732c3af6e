"""The noise and digital corruptions: shapes and ranges on every table and severity, shared
draws across the frames of a clip, severity order, seeds, and agreement with the published
functions (``imagecorruptions`` and the generation scripts' libraries)."""

from __future__ import annotations

import warnings
from io import BytesIO

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from landscape.corruptions import core, corrupt, digital, get_corruption, noise

NOISE = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")
DIGITAL = (
    "brightness",
    "contrast",
    "saturate",
    "pixelate",
    "jpeg_compression",
    "elastic_transform",
)
OURS = NOISE + DIGITAL
RANDOM = (*NOISE, "elastic_transform")
# The reference's parameters do not order these two by mean |y - x|: saturate first
# desaturates (severities 1-2) and then oversaturates (3-5), and elastic_transform's CIFAR
# affine jitter shrinks from 2.56 px to 0.96 px as its local displacement grows.
NOT_MONOTONE = ("saturate", "elastic_transform")


def natural(n: int, channels: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    """uint8 ``(n, channels, size, size)`` images: smooth colour fields with fine texture."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    x = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    x = (x + 0.08 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
    if channels == 1:
        x = x.mean(1, keepdim=True)
    return (x * 255).to(torch.uint8)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_all_registered_with_every_table():
    for name in OURS:
        c = get_corruption(name)
        assert set(c.params) == set(core.TABLES)
        assert all(len(v) == 5 for v in c.params.values())
        assert c.random == (name in RANDOM)


@pytest.mark.parametrize("name", OURS)
@pytest.mark.parametrize("table", core.TABLES)
def test_shapes_dtypes_ranges(name, table):
    rgb, grey = natural(3), natural(2, channels=1, size=28)
    for severity in core.SEVERITIES:
        for x in (rgb, grey):
            y = corrupt(x, name, severity, table, gen())
            assert y.shape == x.shape and y.dtype == torch.uint8
            xf = x.double() / 255
            yf = corrupt(xf, name, severity, table, gen())
            assert yf.shape == x.shape and yf.dtype == torch.float64
            assert 0.0 <= float(yf.min()) and float(yf.max()) <= 1.0
            assert torch.isfinite(yf).all()


@pytest.mark.parametrize("name", OURS)
@pytest.mark.parametrize("channels", (1, 3))
def test_clip_frames_share_the_draw(name, channels):
    frame = natural(1, channels).expand(2, channels, 32, 32)  # two equal clips
    clip = frame.unsqueeze(1).expand(2, 4, channels, 32, 32).contiguous()  # (N, T, C, H, W)
    y = corrupt(clip, name, 5, "cifar", gen(3))
    assert y.shape == clip.shape
    for t in range(1, 4):
        assert torch.equal(y[:, t], y[:, 0])
    # the frames of one clip share a draw, two clips do not
    assert torch.equal(y[0], y[1]) != (name in RANDOM)


def test_clip_gaussian_noise_same_field_on_different_frames():
    base = torch.full((1, 3, 3, 16, 16), 0.4, dtype=torch.float64)
    clip = base + torch.tensor([0.0, 0.1, 0.2], dtype=torch.float64).view(1, 3, 1, 1, 1)
    y = corrupt(clip, "gaussian_noise", 1, "cifar", gen())
    noise_field = y - clip  # sigma 0.04: nothing reaches the clip at 0 or 1 here
    assert torch.allclose(noise_field[:, 1], noise_field[:, 0], atol=1e-6)
    assert torch.allclose(noise_field[:, 2], noise_field[:, 0], atol=1e-6)


def test_clip_shot_noise_counts_are_monotone_in_brightness():
    x = torch.rand(2, 1, 3, 16, 16, generator=gen(), dtype=torch.float64)
    clip = torch.cat((x, (x + 0.2).clamp(max=1.0)), 1)  # frame 1 brighter everywhere
    y = corrupt(clip, "shot_noise", 5, "cifar", gen())
    assert (y[:, 1] >= y[:, 0]).all()


@pytest.mark.parametrize("name", [n for n in OURS if n not in NOT_MONOTONE])
def test_severity_monotone_cifar(name):
    x = natural(8)
    change = [
        float((corrupt(x, name, s, "cifar", gen()).float() - x.float()).abs().mean())
        for s in core.SEVERITIES
    ]
    assert all(a < b for a, b in zip(change, change[1:])), change


def test_saturate_monotone_within_each_direction():
    x = natural(8).float() / 255
    s0 = digital.rgb_to_hsv(x)[:, 1]
    sat = [digital.rgb_to_hsv(corrupt(x, "saturate", s, "cifar"))[:, 1] for s in (1, 2, 3, 4, 5)]
    assert float(sat[1].mean()) < float(sat[0].mean()) < float(s0.mean())
    assert float(s0.mean()) < float(sat[2].mean()) < float(sat[3].mean()) < float(sat[4].mean())


@pytest.mark.parametrize("name", OURS)
def test_seeds(name):
    x = natural(2)
    a, b = corrupt(x, name, 3, "cifar", gen(1)), corrupt(x, name, 3, "cifar", gen(1))
    assert torch.equal(a, b)
    c = corrupt(x, name, 3, "cifar", gen(2))
    assert torch.equal(a, c) != (name in RANDOM)


# ---------------------------------------------------------------------------------------------
# Agreement with the published functions


def _peer():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from imagecorruptions import corruptions
    return corruptions


@pytest.fixture(scope="module")
def imagenet_images():
    """Two 224 px colour images and one greyscale, as uint8 ``(N, C, H, W)``."""
    return natural(2, size=224, seed=5), natural(1, channels=1, size=224, seed=6)


# Tolerances in grey levels (0-255): (max |ours - peer| of the float results before
# truncation, max and mean |ours - peer| of the uint8 results). The colour ones compute in
# float32 where the peer computes in float64: the floats agree to 2e-4 levels, but both sides
# truncate to uint8 and many results are whole grey levels in exact arithmetic (V + 0.2 on
# k / 255 is (k + 51) / 255), so rounding noise on either side moves up to ~12% of them
# (saturate severity 3, 3% for brightness) down by one level. Pixelate and JPEG are
# bit-exact: the same Pillow fixed-point arithmetic, the same libjpeg.
TOLERANCE = {
    "brightness": (1e-3, 1, 0.15),
    "contrast": (1e-3, 1, 0.15),
    "saturate": (1e-3, 1, 0.15),
    "pixelate": (1e-4, 0, 0.0),  # 1e-4: k / 255 held in float32
    "jpeg_compression": (1e-4, 0, 0.0),
}


@pytest.mark.parametrize("name", list(TOLERANCE))
def test_agrees_with_imagecorruptions(name, imagenet_images):
    peer = getattr(_peer(), name)
    float_worst, worst, mean_worst = TOLERANCE[name]
    for x in imagenet_images:
        for severity in core.SEVERITIES:
            ours = corrupt(x, name, severity, "imagenet").permute(0, 2, 3, 1).numpy()
            ours_float = corrupt(x.double() / 255, name, severity, "imagenet") * 255
            ours_float = ours_float.permute(0, 2, 3, 1).numpy()
            for i, image in enumerate(x.permute(0, 2, 3, 1).numpy()):
                pil = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
                theirs = np.asarray(peer(pil, severity), dtype=np.float64).reshape(image.shape)
                assert np.abs(ours_float[i] - theirs).max() <= float_worst, severity
                diff = np.abs(ours[i].astype(int) - np.uint8(theirs).astype(int))
                assert diff.max() <= worst, (severity, diff.max())
                assert diff.mean() <= mean_worst, (severity, diff.mean())


@pytest.mark.parametrize("table", ("cifar", "mnist"))
def test_pixelate_and_jpeg_match_pillow_at_small_sizes(table):
    size = 28 if table == "mnist" else 32
    for channels in (1, 3):
        x = natural(2, channels, size)
        for severity in core.SEVERITIES:
            factor = get_corruption("pixelate").params[table][severity - 1]
            quality = get_corruption("jpeg_compression").params[table][severity - 1]
            pix = corrupt(x, "pixelate", severity, table)
            jpg = corrupt(x, "jpeg_compression", severity, table)
            for i in range(2):
                im = Image.fromarray(x[i].permute(1, 2, 0).squeeze(-1).numpy())
                small = im.resize((int(size * factor),) * 2, Image.BOX)  # make_cifar_c.py
                ref = np.array(small.resize((size, size), Image.BOX))
                assert np.array_equal(pix[i].permute(1, 2, 0).squeeze(-1).numpy(), ref)
                buffer = BytesIO()
                im.save(buffer, "JPEG", quality=quality)
                ref = np.array(Image.open(buffer))
                assert np.array_equal(jpg[i].permute(1, 2, 0).squeeze(-1).numpy(), ref)


def test_hsv_round_trip_matches_skimage():
    from skimage.color import hsv2rgb, rgb2hsv

    x = torch.rand(2, 3, 16, 16, generator=gen(), dtype=torch.float64)
    x[0, :, :4] = 0.5  # grey
    x[0, :, 4:6] = 0.0  # black
    x[1, 1, :4] = x[1, 2, :4]  # green and blue tie
    x[1, 0, 4:8] = x[1, 1, 4:8]  # red and green tie
    for image in x:
        ref = rgb2hsv(image.permute(1, 2, 0).numpy())
        ours = digital.rgb_to_hsv(image[None])[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(ours, ref, atol=1e-12)
        back = digital.hsv_to_rgb(torch.from_numpy(ref).permute(2, 0, 1)[None])
        np.testing.assert_allclose(back[0].permute(1, 2, 0).numpy(), hsv2rgb(ref), atol=1e-12)


def _reference_elastic(image: np.ndarray, p, shift: np.ndarray, noise_field: np.ndarray):
    """``elastic_transform`` of make_cifar_c.py with its random numbers given."""
    import cv2
    from scipy.ndimage import map_coordinates
    from skimage.filters import gaussian

    shape = image.shape
    centre = np.float32(shape[:2]) // 2
    side = min(shape[:2]) // 3
    pts1 = np.float32([centre + side, [centre[0] + side, centre[1] - side], centre - side])
    pts2 = pts1 + shift.astype(np.float32)
    m = cv2.getAffineTransform(pts1, pts2)
    image = cv2.warpAffine(image, m, shape[:2][::-1], borderMode=cv2.BORDER_REFLECT_101)
    dx = (gaussian(noise_field[0], p[1], mode="reflect", truncate=3) * p[0]).astype(np.float32)
    dy = (gaussian(noise_field[1], p[1], mode="reflect", truncate=3) * p[0]).astype(np.float32)
    x, y, z = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    indices = (y + dy[..., None]).reshape(-1, 1), (x + dx[..., None]).reshape(-1, 1)
    indices = (*indices, z.reshape(-1, 1))
    out = map_coordinates(image, indices, order=1, mode="reflect").reshape(shape)
    return np.clip(out, 0, 1)


@pytest.mark.parametrize("table,size", [("cifar", 32), ("mnist", 28), ("imagenet", 64)])
def test_elastic_matches_reference_with_the_same_draws(table, size):
    x = natural(2, size=size, seed=4).float() / 255
    for severity in core.SEVERITIES:
        p = get_corruption("elastic_transform").params[table][severity - 1]
        ours = corrupt(x, "elastic_transform", severity, table, gen(severity))
        draws = core.Draws(gen(severity), 2, 1, torch.device("cpu"))  # the same numbers
        shift = draws.uniform(-p[2], p[2], 3, 2).double().numpy()
        field = draws.uniform(-1.0, 1.0, 2, size, size).double().numpy()
        for i in range(2):
            ref = _reference_elastic(x[i].permute(1, 2, 0).numpy(), p, shift[i], field[i])
            np.testing.assert_allclose(ours[i].permute(1, 2, 0).numpy(), ref, atol=1e-5)


def test_elastic_severity_one_cifar_is_a_pure_affine_map():
    # alpha = 0: only the affine map, which keeps straight lines straight
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 3, 32, 32).contiguous()
    y = corrupt(ramp, "elastic_transform", 1, "cifar", gen())
    inner = y[0, 0, 8:24, 8:24].double()
    second_x = inner[:, 2:] - 2 * inner[:, 1:-1] + inner[:, :-2]
    second_y = inner[2:] - 2 * inner[1:-1] + inner[:-2]
    assert float(second_x.abs().max()) < 1e-5 and float(second_y.abs().max()) < 1e-5
    assert float((y - ramp).abs().max()) > 0.01


# ---------------------------------------------------------------------------------------------
# Statistics of the random corruptions (mid-grey images, many pixels)

GREY = torch.full((8, 3, 64, 64), 0.5, dtype=torch.float64)


@pytest.mark.parametrize("severity", core.SEVERITIES)
def test_gaussian_and_speckle_noise_std(severity):
    sigma = get_corruption("gaussian_noise").params["cifar"][severity - 1]
    d = corrupt(GREY, "gaussian_noise", severity, "cifar", gen()) - GREY
    assert abs(float(d.std()) / sigma - 1) < 0.02 and abs(float(d.mean())) < 0.002
    sigma = get_corruption("speckle_noise").params["cifar"][severity - 1]
    d = corrupt(GREY, "speckle_noise", severity, "cifar", gen()) - GREY
    assert abs(float(d.std()) / (0.5 * sigma) - 1) < 0.02


@pytest.mark.parametrize("frames", (1, 2))
@pytest.mark.parametrize("table", ("cifar", "imagenet"))
def test_shot_noise_mean_and_variance(table, frames):
    x = GREY if frames == 1 else GREY.unsqueeze(1).expand(8, 2, 3, 64, 64)
    for severity in core.SEVERITIES:
        photons = get_corruption("shot_noise").params[table][severity - 1]
        y = corrupt(x, "shot_noise", severity, table, gen()).reshape(-1, 3, 64, 64)[::frames]
        counts = torch.round(y * photons)  # clipping at 1 cuts the upper tail
        assert torch.allclose(y * photons, counts, atol=1e-3)
        kept = counts < photons
        lam = 0.5 * photons
        # mean and variance of the counts below `photons`: the truncated Poisson's, exactly
        from scipy.stats import poisson

        k = np.arange(photons)
        w = poisson.pmf(k, lam) / poisson.cdf(photons - 1, lam)
        mean, var = float((k * w).sum()), float((k**2 * w).sum() - (k * w).sum() ** 2)
        assert abs(float(counts[kept].mean()) - mean) < 0.02 * max(mean, 1)
        assert abs(float(counts[kept].var()) / var - 1) < 0.05


def test_poisson_quantile_is_exact():
    from scipy.stats import poisson

    lam = torch.rand(20000, generator=gen(), dtype=torch.float64) * torch.tensor(
        [0.05, 3.0, 60.0, 600.0], dtype=torch.float64
    ).repeat_interleave(5000)
    lam[:50] = 0.0
    u = torch.rand(20000, generator=gen(1), dtype=torch.float64)
    k = noise.poisson_quantile(lam, u).numpy()
    assert np.array_equal(k, poisson.ppf(u.numpy(), lam.numpy()))


@pytest.mark.parametrize("table", ("cifar", "imagenet"))
def test_impulse_noise_fractions(table):
    for severity in core.SEVERITIES:
        amount = get_corruption("impulse_noise").params[table][severity - 1]
        y = corrupt(GREY, "impulse_noise", severity, table, gen())
        salt, pepper = float((y == 1).double().mean()), float((y == 0).double().mean())
        untouched = float((y == 0.5).double().mean())
        assert abs(salt - amount / 2) < 0.1 * amount / 2 + 1e-3
        assert abs(pepper - amount / 2) < 0.1 * amount / 2 + 1e-3
        assert salt + pepper + untouched == pytest.approx(1.0)


def test_greyscale_colour_operations():
    x = natural(2, channels=1)
    assert torch.equal(corrupt(x, "saturate", 5, "mnist"), x)  # no chroma: unchanged
    y = corrupt(x.float() / 255, "brightness", 3, "mnist")
    assert torch.allclose(y, (x.float() / 255 + 0.15).clamp(max=1.0))
    # on a grey colour image, brightness acts as on its one channel
    rgb = x.expand(2, 3, 32, 32).float() / 255
    assert torch.allclose(corrupt(rgb, "brightness", 3, "cifar")[:, :1], y, atol=1e-6)
