"""The four noise corruptions (Gaussian, shot, impulse, speckle) of Hendrycks & Dietterich 2019.

Each follows the published per-image NumPy function of the generation scripts
(``ImageNet-C/create_c/make_{cifar,tinyimagenet,imagenet}_c.py`` in
github.com/hendrycks/robustness) on a whole batch at once, drawing every random number from
:class:`~landscape.corruptions.core.Draws`, so all frames of a video clip carry the same noise.

Parameter tables: ``"cifar"``, ``"tiny"`` and ``"imagenet"`` are copied from the scripts named
beside each table. ``"mnist"`` (28 px greyscale) takes the CIFAR values unchanged: every
parameter here is an intensity (a standard deviation, a photon count, a fraction of pixels),
not a length in pixels, so nothing scales with the image size, and on one channel each noise
acts on the grey level exactly as it acts on each of the three colour channels.
"""

from __future__ import annotations

import math

import torch

from landscape.corruptions.core import Draws, register, register_uint8


@register(
    "gaussian_noise",
    {
        "cifar": (0.04, 0.06, 0.08, 0.09, 0.10),  # make_cifar_c.py
        "tiny": (0.04, 0.08, 0.12, 0.15, 0.18),  # make_tinyimagenet_c.py
        "imagenet": (0.08, 0.12, 0.18, 0.26, 0.38),  # make_imagenet_c.py
        "mnist": (0.04, 0.06, 0.08, 0.09, 0.10),  # = cifar (an intensity)
    },
)
def gaussian_noise(x: torch.Tensor, sigma: float, draws: Draws) -> torch.Tensor:
    """``x + N(0, sigma^2)``, independently for every pixel and channel."""
    return x + sigma * draws.randn(*x.shape[1:])


@register(
    "shot_noise",
    {
        "cifar": (500, 250, 100, 75, 50),  # make_cifar_c.py
        "tiny": (250, 100, 50, 30, 15),  # make_tinyimagenet_c.py
        "imagenet": (60, 25, 12, 5, 3),  # make_imagenet_c.py
        "mnist": (500, 250, 100, 75, 50),  # = cifar (photons at full intensity)
    },
)
def shot_noise(x: torch.Tensor, photons: float, draws: Draws) -> torch.Tensor:
    """``Poisson(x * photons) / photons`` for every pixel and channel.

    Images (``draws.frames == 1``) take ``torch.poisson`` with the batch's generator. The
    frames of a clip must share their draw, so there the count is the exact Poisson inverse
    CDF of one uniform per pixel, shared by the frames (:func:`poisson_quantile`): equal
    pixels in two frames get equal counts and a brighter pixel never gets fewer. Both are
    exact Poisson draws; the inverse CDF is ~5x slower on the CPU (one incomplete gamma
    function per pixel), hence the two paths.
    """
    lam = x * photons
    if draws.frames == 1:
        counts = torch.poisson(lam.cpu(), generator=draws.per_clip()).to(x.device)
    else:
        counts = poisson_quantile(lam.double(), draws.rand(*x.shape[1:]).double()).to(x.dtype)
    return counts / photons


def poisson_quantile(lam: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The smallest ``k`` with ``P(Poisson(lam) <= k) > u``, elementwise (float64 in, out).

    For ``u`` uniform on [0, 1) this is an exact Poisson(``lam``) draw. The Cornish-Fisher
    guess ``round(lam + sqrt(lam) z + (z^2 - 1) / 6)`` (``z`` the normal quantile of ``u``)
    is checked against the exact CDF (the regularised upper incomplete gamma function); the
    1-3% of guesses that miss (by one or two counts) walk the CDF to the answer.
    """
    shape = lam.shape
    lam, u = lam.reshape(-1), u.reshape(-1)
    z = math.sqrt(2.0) * torch.erfinv(2.0 * u.clamp(1e-12, 1 - 1e-12) - 1.0)
    positive = lam > 0
    k = torch.floor(lam + lam.sqrt() * z + (z * z - 1.0) / 6.0 + 0.5).clamp_(min=0.0)
    k = torch.where(positive, k, 0.0)
    cdf = torch.special.gammaincc(k + 1.0, lam)  # P(X <= k)
    pmf = torch.exp(k * torch.where(positive, lam, 1.0).log() - lam - torch.lgamma(k + 1.0))
    miss = ((cdf <= u) | ((k > 0) & (cdf - pmf > u))).nonzero().squeeze(1)
    if len(miss):
        k[miss] = _walk_cdf(k[miss], cdf[miss], pmf[miss], lam[miss], u[miss])
    return k.reshape(shape)


def _walk_cdf(k, cdf, pmf, lam, u) -> torch.Tensor:
    """Step ``k`` up while ``P(X <= k) <= u``, then down while ``P(X <= k - 1) > u``
    (``cdf``, ``pmf``: ``P(X <= k)``, ``P(X = k)``; every ``lam`` here is positive)."""
    while True:
        up = cdf <= u
        if not up.any():
            break
        k = k + up
        pmf = torch.where(up, pmf * lam / k, pmf)
        cdf = torch.where(up, cdf + pmf, cdf)
    while True:
        down = (k > 0) & (cdf - pmf > u)
        if not down.any():
            return k
        cdf = torch.where(down, cdf - pmf, cdf)
        pmf = torch.where(down, pmf * k / lam, pmf)
        k = k - down.double()


@register(
    "impulse_noise",
    {
        "cifar": (0.01, 0.02, 0.03, 0.05, 0.07),  # make_cifar_c.py
        "tiny": (0.01, 0.02, 0.05, 0.08, 0.14),  # make_tinyimagenet_c.py
        "imagenet": (0.03, 0.06, 0.09, 0.17, 0.27),  # make_imagenet_c.py
        "mnist": (0.01, 0.02, 0.03, 0.05, 0.07),  # = cifar (a fraction of pixels)
    },
)
def impulse_noise(x: torch.Tensor, amount: float, draws: Draws) -> torch.Tensor:
    """Salt and pepper (``skimage.util.random_noise(mode="s&p")``): each pixel and channel
    independently becomes 1 with probability ``amount / 2``, 0 with ``amount / 2``."""
    u = draws.rand(*x.shape[1:])
    return x.masked_fill(u < amount, 0.0).masked_fill_(u < amount / 2, 1.0)


@register_uint8("impulse_noise")
def impulse_noise_uint8(x: torch.Tensor, amount: float, draws: Draws) -> torch.Tensor:
    """:func:`impulse_noise` on 8-bit levels: the same draws, 255 for salt."""
    u = draws.rand(*x.shape[1:])
    return x.masked_fill(u < amount, 0).masked_fill_(u < amount / 2, 255)


@register(
    "speckle_noise",
    {
        "cifar": (0.06, 0.1, 0.12, 0.16, 0.2),  # make_cifar_c.py
        "tiny": (0.15, 0.2, 0.25, 0.3, 0.35),  # make_tinyimagenet_c.py
        "imagenet": (0.15, 0.2, 0.35, 0.45, 0.6),  # make_imagenet_c.py
        "mnist": (0.06, 0.1, 0.12, 0.16, 0.2),  # = cifar (a relative intensity)
    },
)
def speckle_noise(x: torch.Tensor, sigma: float, draws: Draws) -> torch.Tensor:
    """Multiplicative noise ``x + x * N(0, sigma^2)``."""
    return x + x * (sigma * draws.randn(*x.shape[1:]))
