"""The blur corruptions (defocus, glass, motion, zoom, Gaussian) of Hendrycks & Dietterich 2019.

Each follows the published per-image function of the generation scripts
(``ImageNet-C/create_c/make_{cifar,tinyimagenet,imagenet}_c.py`` in
github.com/hendrycks/robustness) on a whole batch at once; the libraries they call are
replaced by the batched operations of :mod:`landscape.corruptions.ops`, which compute the same
thing (OpenCV's ``filter2D`` and ``GaussianBlur``, ``skimage.filters.gaussian``, SciPy's
``zoom``, ImageMagick's ``MotionBlur``). Deviations from the scripts:

* glass_blur: none in substance. The scripts' Python loop of pixel "swaps" in fact copies
  (NumPy views alias; see :func:`glass_source`), and we compute the same copies for the
  same offsets at once, chains included. The 8-bit storage between the two blurs is kept;
  float32 against the scripts' float64 puts about 1 pixel in 200 (CIFAR) one level apart.
* motion_blur returns floats where ImageMagick rounds to ``uint8``: at most 1/255 apart.

Parameter tables: ``"cifar"``, ``"tiny"`` and ``"imagenet"`` are copied from the scripts named
beside each table. ``"mnist"`` (28 px greyscale) is derived from the CIFAR table by scaling
lengths in pixels by 28/32 where a length is a continuous quantity:

* gaussian_blur and glass_blur sigmas, motion_blur radius (rounded to whole pixels: 5, 5, 5,
  7, 8) and sigma: times 28/32.
* glass_blur's displacement (1 px) and pass counts: unchanged, 1 px is the smallest shuffle.
* defocus_blur: the CIFAR values unchanged. The disk is drawn on the pixel grid, so its
  radius is quantised: radii below 1 (severities 1-3) select the centre pixel alone, and
  radius 1 and 1.5 the plus-shaped and 3x3 footprints. Times 28/32 (0.875, 1.31), severity
  4 would shrink to the centre pixel (nearly the identity, milder than severity 3) and 5 to
  the plus shape: not a 12% smaller blur but a different order.
* zoom_blur: the CIFAR zoom factors unchanged (ratios, not lengths).

On one channel every operation acts on the grey level as it acts on each colour channel.
"""

from __future__ import annotations

import numpy as np
import torch

from landscape.corruptions import ops
from landscape.corruptions.core import Draws, register

_MNIST = 28 / 32  # the length scale of the "mnist" table relative to CIFAR's


def _scaled(values, scale: float = _MNIST):
    """Lengths of the CIFAR table for 28 px images (four decimals keep the table readable)."""
    return tuple(round(v * scale, 4) for v in values)


# ---------------------------------------------------------------------------------------------


_DEFOCUS_CIFAR = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))


@register(
    "defocus_blur",
    {  # (disk radius, anti-alias sigma), pixels
        "cifar": _DEFOCUS_CIFAR,  # make_cifar_c.py
        "tiny": ((0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)),  # make_tinyimagenet_c.py
        "imagenet": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),  # make_imagenet_c.py
        "mnist": _DEFOCUS_CIFAR,  # = cifar (the disk radius is quantised; see the docstring)
    },
    random=False,
)
def defocus_blur(x: torch.Tensor, p: tuple[float, float], draws: Draws) -> torch.Tensor:
    """Correlation with the anti-aliased disk :func:`~ops.disk_kernel` (``cv2.filter2D``,
    border reflected without repeating the edge)."""
    radius, alias_blur = p
    kernel = ops.disk_kernel(radius, alias_blur)
    # the scripts' grid is 17 x 17 even for a disk of radius 0.3: the rows and columns of
    # zeros around it change nothing but the cost (the kernel is symmetric about its centre)
    reach = int(kernel.nonzero().sub(kernel.shape[0] // 2).abs().max())
    centre = kernel.shape[0] // 2
    return ops.convolve(
        x, kernel[centre - reach : centre + reach + 1, centre - reach : centre + reach + 1]
    )


# ---------------------------------------------------------------------------------------------

_GLASS_CIFAR = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))


@register(
    "glass_blur",
    {  # (Gaussian sigma, largest displacement in px, passes of local shuffling)
        "cifar": _GLASS_CIFAR,  # make_cifar_c.py
        "tiny": (  # make_tinyimagenet_c.py
            (0.1, 1, 1),
            (0.5, 1, 1),
            (0.6, 1, 2),
            (0.7, 2, 1),
            (0.9, 2, 2),
        ),
        "imagenet": (  # make_imagenet_c.py
            (0.7, 1, 2),
            (0.9, 2, 1),
            (1, 2, 3),
            (1.1, 3, 2),
            (1.5, 4, 2),
        ),
        "mnist": tuple((s * _MNIST, d, n) for s, d, n in _GLASS_CIFAR),  # sigma * 28/32
    },
)
def glass_blur(x: torch.Tensor, p: tuple[float, int, int], draws: Draws) -> torch.Tensor:
    """Gaussian blur, stored as 8 bits (``np.uint8`` truncates), ``passes`` rounds of the
    scripts' local pixel copying (:func:`glass_source`), and the same Gaussian blur again
    (``skimage.filters.gaussian``, edge repeated)."""
    sigma, max_delta, passes = p
    b, c, h, w = x.shape
    x = torch.floor(ops.gaussian_filter(x, sigma) * 255) / 255
    index = torch.arange(h * w, device=x.device).expand(b, h * w)
    for _ in range(passes):
        offsets = draws.integers(-max_delta, max_delta, 2, h, w)  # (B, 2, H, W): dy, dx
        index = index.gather(1, glass_source(offsets[:, 0], offsets[:, 1], max_delta))
    x = x.reshape(b, c, h * w).gather(2, index.unsqueeze(1).expand(b, c, h * w))
    return ops.gaussian_filter(x.view(b, c, h, w), sigma)


def glass_source(dy: torch.Tensor, dx: torch.Tensor, max_delta: int) -> torch.Tensor:
    """Where each pixel's value comes from after one pass of the scripts' pixel "swaps".

    The scripts visit ``(h, w)`` for ``h, w`` from ``H - d`` down to ``d + 1`` (``d`` the
    largest displacement) and run ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` with
    ``(h', w') = (h + dy, w + dx)``, ``dy, dx`` uniform in ``[-d, d)``. On an RGB array
    ``x[h, w]`` is a view, so this is not a swap: ``x[h, w]`` receives ``x[h', w']`` and
    ``x[h', w']`` is written back unchanged (the published data sets were made this way).
    A pass is therefore a gather, in which a pixel copies its neighbour's value *as it is
    when visited*: the original value, unless the neighbour was visited before (it lies
    later in row-major order, possible when ``d >= 2`` draws a positive offset), in which
    case the neighbour's own source, and so on. We follow those chains by pointer doubling,
    so the result is the scripts' exactly, for the same offsets.

    Args:
        dy, dx: ``(B, H, W)`` integer offsets in ``[-d, d)`` (only the visited pixels' are
            used).
        max_delta: ``d``.

    Returns:
        ``(B, H * W)`` long: output pixel ``i`` takes the value of input pixel
        ``source[:, i]`` (row-major).
    """
    b, h, w = dy.shape
    d = int(max_delta)
    rows = torch.arange(h, device=dy.device).view(1, h, 1)
    cols = torch.arange(w, device=dy.device).view(1, 1, w)
    visited = ((rows > d) & (rows <= h - d) & (cols > d) & (cols <= w - d)).expand(b, h, w)
    here = (rows * w + cols).expand(b, h, w).reshape(b, h * w)
    there = ((rows + dy).clamp(0, h - 1) * w + (cols + dx).clamp(0, w - 1)).reshape(b, h * w)
    visited = visited.reshape(b, h * w)
    # visited in decreasing row-major order: a larger index was visited earlier
    chained = visited & visited.gather(1, there) & (there > here)
    follow = torch.where(chained, there, here)
    source = torch.where(visited & ~chained, there, here)
    while True:
        further = follow.gather(1, follow)
        if torch.equal(further, follow):
            return source.gather(1, follow)
        follow = further


# ---------------------------------------------------------------------------------------------

_MOTION_CIFAR = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))


@register(
    "motion_blur",
    {  # (ImageMagick radius, sigma), pixels
        "cifar": _MOTION_CIFAR,  # make_cifar_c.py
        "tiny": ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)),  # make_tinyimagenet_c.py
        "imagenet": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),  # make_imagenet_c.py
        # radius and sigma * 28/32, the radius rounded to whole pixels
        "mnist": tuple((round(r * _MNIST), s * _MNIST) for r, s in _MOTION_CIFAR),
    },
)
def motion_blur(x: torch.Tensor, p: tuple[float, float], draws: Draws) -> torch.Tensor:
    """ImageMagick's ``MotionBlur(radius, sigma, angle)`` at an angle uniform in [-45, 45)
    degrees per clip (:func:`~ops.motion_blur`)."""
    radius, sigma = p
    return ops.motion_blur(x, radius, sigma, draws.uniform(-45.0, 45.0))


# ---------------------------------------------------------------------------------------------


def _zooms(stop: float, step: float) -> tuple[float, ...]:
    """The scripts' ``np.arange(1, stop, step)``, float end point included as NumPy does
    (``np.arange(1, 1.06, 0.01)`` has 7 factors, 1.06 among them)."""
    return tuple(float(z) for z in np.arange(1, stop, step))


_ZOOM_CIFAR = tuple(_zooms(stop, 0.01) for stop in (1.06, 1.11, 1.16, 1.21, 1.26))


@register(
    "zoom_blur",
    {  # the zoom factors averaged
        "cifar": _ZOOM_CIFAR,  # make_cifar_c.py
        "tiny": _ZOOM_CIFAR,  # make_tinyimagenet_c.py (the same factors)
        "imagenet": (  # make_imagenet_c.py
            _zooms(1.11, 0.01),
            _zooms(1.16, 0.01),
            _zooms(1.21, 0.02),
            _zooms(1.26, 0.02),
            _zooms(1.31, 0.03),
        ),
        "mnist": _ZOOM_CIFAR,  # = cifar (ratios)
    },
    random=False,
)
def zoom_blur(x: torch.Tensor, factors: tuple[float, ...], draws: Draws) -> torch.Tensor:
    """The mean of the image and its centre zooms by each factor (:func:`~ops.clipped_zoom`),
    ``(x + sum_z zoom_z(x)) / (len(factors) + 1)`` as the scripts."""
    out = x.clone()
    for factor in factors:
        out += ops.clipped_zoom(x, factor)
    return out / (len(factors) + 1)


# ---------------------------------------------------------------------------------------------

_GAUSSIAN_CIFAR = (0.4, 0.6, 0.7, 0.8, 1.0)


@register(
    "gaussian_blur",
    {  # sigma, pixels
        "cifar": _GAUSSIAN_CIFAR,  # make_cifar_c.py
        "tiny": (0.5, 0.75, 1, 1.25, 1.5),  # make_tinyimagenet_c.py
        "imagenet": (1, 2, 3, 4, 6),  # make_imagenet_c.py
        "mnist": _scaled(_GAUSSIAN_CIFAR),  # * 28/32
    },
    random=False,
)
def gaussian_blur(x: torch.Tensor, sigma: float, draws: Draws) -> torch.Tensor:
    """``skimage.filters.gaussian(x, sigma)``: truncated at 4 sigma, edge repeated."""
    return ops.gaussian_filter(x, sigma)
