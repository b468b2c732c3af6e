"""The digital corruptions (brightness, contrast, saturate, pixelate, JPEG, elastic) of
Hendrycks & Dietterich 2019, batched in PyTorch.

Each follows the published per-image function of the generation scripts
(``ImageNet-C/create_c/make_{cifar,tinyimagenet,imagenet}_c.py`` in
github.com/hendrycks/robustness), with the libraries they call replaced by batched torch
code that computes the same thing: ``skimage.color.rgb2hsv``/``hsv2rgb``
(:func:`rgb_to_hsv`, :func:`hsv_to_rgb`), PIL's ``BOX`` resize in 8-bit fixed point
(:func:`pil_box_resize`), PIL's JPEG (torchvision's libjpeg, per image), and OpenCV's
``warpAffine`` plus SciPy's ``map_coordinates`` (``grid_sample``).

Parameter tables: ``"cifar"``, ``"tiny"`` and ``"imagenet"`` are copied from the scripts named
beside each table. ``"mnist"`` (28 px greyscale) is derived from the CIFAR table:

* brightness, contrast, saturate, JPEG quality: the CIFAR values, which are intensities or
  qualities, not lengths.
* pixelate: the CIFAR factors; a factor is a fraction of the image size, so a 28 px image is
  box-averaged to ``int(28 * c)`` px (26, 25, 23, 21, 18) and scaled back.
* elastic_transform: the CIFAR rows with the image size 32 replaced by 28 (the scripts write
  every entry as ``IMSIZE * coefficient``): displacement amplitude, smoothing sigma and affine
  jitter are all lengths in pixels.

On one channel (greyscale), the colour operations act on its luminance: the grey level is
the HSV value, so brightness adds to it (``clip(x + c)``, as ``imagecorruptions`` does for
greyscale). A grey pixel has no chroma: its saturation is 0 and its hue undefined, and
``skimage`` would turn it reddish once the saturation is raised (hue 0 is red). We leave
greyscale images unchanged under saturate, at every severity (so does ``imagecorruptions``,
which keeps the red channel, the HSV value); the ``"mnist"`` saturate table is the CIFAR one
and only matters for 28 px colour images.
"""

from __future__ import annotations

import functools
import math
import warnings

import torch
import torch.nn.functional as F
from torchvision.io import decode_jpeg, encode_jpeg

from landscape.corruptions.core import Draws, register, register_uint8

# ---------------------------------------------------------------------------------------------
# Colour: brightness, contrast, saturate


@register(
    "brightness",
    {
        "cifar": (0.05, 0.1, 0.15, 0.2, 0.3),  # make_cifar_c.py
        "tiny": (0.1, 0.2, 0.3, 0.4, 0.5),  # make_tinyimagenet_c.py
        "imagenet": (0.1, 0.2, 0.3, 0.4, 0.5),  # make_imagenet_c.py
        "mnist": (0.05, 0.1, 0.15, 0.2, 0.3),  # = cifar
    },
    random=False,
)
def brightness(x: torch.Tensor, shift: float, draws: Draws) -> torch.Tensor:
    """Add ``shift`` to the HSV value (clipped to [0, 1]); on greyscale, to the grey level."""
    if x.shape[1] == 1:
        return x + shift
    h, s, v = rgb_to_hsv(x).unbind(1)
    return hsv_to_rgb(torch.stack((h, s, (v + shift).clamp(0.0, 1.0)), 1))


@register(
    "contrast",
    {
        "cifar": (0.75, 0.5, 0.4, 0.3, 0.15),  # make_cifar_c.py
        "tiny": (0.4, 0.3, 0.2, 0.1, 0.05),  # make_tinyimagenet_c.py
        "imagenet": (0.4, 0.3, 0.2, 0.1, 0.05),  # make_imagenet_c.py
        "mnist": (0.75, 0.5, 0.4, 0.3, 0.15),  # = cifar
    },
    random=False,
)
def contrast(x: torch.Tensor, factor: float, draws: Draws) -> torch.Tensor:
    """Shrink every channel towards its own mean over the image by ``factor``."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean) * factor + mean


@register(
    "saturate",
    {  # (scale, offset) of the HSV saturation
        "cifar": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),  # make_cifar_c.py
        "tiny": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (30, 0.2)),  # make_tinyimagenet_c.py
        "imagenet": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),  # make_imagenet_c.py
        "mnist": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),  # = cifar
    },
    random=False,
)
def saturate(x: torch.Tensor, p: tuple[float, float], draws: Draws) -> torch.Tensor:
    """Set the HSV saturation to ``clip(s * scale + offset)``; greyscale is left unchanged."""
    if x.shape[1] == 1:
        return x
    scale, offset = p
    h, s, v = rgb_to_hsv(x).unbind(1)
    return hsv_to_rgb(torch.stack((h, (s * scale + offset).clamp(0.0, 1.0), v), 1))


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """``skimage.color.rgb2hsv`` of ``(B, 3, H, W)`` RGB in [0, 1], as ``(B, 3, H, W)`` HSV.

    As in skimage, a grey pixel has hue and saturation 0, and where two channels tie for
    the maximum, blue wins over green and green over red.
    """
    r, g, b = x.unbind(1)
    v = x.amax(1)
    delta = v - x.amin(1)
    grey = delta == 0
    safe = torch.where(grey, 1.0, delta)
    s = torch.where(grey, 0.0, delta / torch.where(grey, 1.0, v))
    h = torch.where(
        b == v, 4.0 + (r - g) / safe, torch.where(g == v, 2.0 + (b - r) / safe, (g - b) / safe)
    )
    h = torch.where(grey, 0.0, torch.remainder(h / 6.0, 1.0))
    return torch.stack((h, s, v), 1)


# For each sextant of the hue circle, which of (v, t, p, q) is red, green and blue
# (the table of skimage.color.hsv2rgb).
_SEXTANT = torch.tensor([[0, 1, 2], [3, 0, 2], [2, 0, 1], [2, 3, 0], [1, 2, 0], [0, 2, 3]])


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """``skimage.color.hsv2rgb`` of ``(B, 3, H, W)`` HSV in [0, 1], as RGB."""
    h, s, v = hsv.unbind(1)
    sextant = torch.floor(h * 6.0)
    f = h * 6.0 - sextant
    p = v * (1.0 - s)
    q = v * (1.0 - f * s)
    t = v * (1.0 - (1.0 - f) * s)
    choices = torch.stack((v, t, p, q), 1)
    index = _SEXTANT.to(hsv.device)[sextant.long() % 6].permute(0, 3, 1, 2)
    return torch.gather(choices, 1, index)


# ---------------------------------------------------------------------------------------------
# Resampling: pixelate, JPEG


@register(
    "pixelate",
    {  # the side of the coarse image as a fraction of the image's
        "cifar": (0.95, 0.9, 0.85, 0.75, 0.65),  # make_cifar_c.py
        "tiny": (0.9, 0.8, 0.7, 0.6, 0.5),  # make_tinyimagenet_c.py
        "imagenet": (0.6, 0.5, 0.4, 0.3, 0.25),  # make_imagenet_c.py
        "mnist": (0.95, 0.9, 0.85, 0.75, 0.65),  # = cifar (a fraction of the size)
    },
    random=False,
)
def pixelate(x: torch.Tensor, factor: float, draws: Draws) -> torch.Tensor:
    """PIL ``BOX`` resize of the 8-bit image to ``int(side * factor)`` and back (as the
    scripts do; the way back is a nearest-neighbour copy, which ``imagecorruptions`` asks
    for by name)."""
    levels = torch.round(x * 255.0).to(torch.uint8)
    return (pixelate_uint8(levels, factor, draws).to(x.dtype)) / 255.0


@register_uint8("pixelate")
def pixelate_uint8(x: torch.Tensor, factor: float, draws: Draws) -> torch.Tensor:
    """:func:`pixelate` on 8-bit levels, shrunk and enlarged as bytes."""
    h, w = x.shape[-2:]
    if max(h, w) > 64:  # gathered windows (see _box_gather)
        small = _box_gather(_box_gather(x, int(w * factor), -1), int(h * factor), -2)
    else:  # matrix products
        small = _box_levels(x.float(), int(h * factor), int(w * factor))
    small = small.to(torch.uint8)
    # enlarging copies one coarse pixel to each fine one (PIL NEAREST): columns, then rows
    cols = _pil_box_taps(small.shape[-1], w)[0].to(x.device)
    rows = _pil_box_taps(small.shape[-2], h)[0].to(x.device)
    cols = cols.expand(*small.shape[:-1], w)  # gather: faster than index_select on the last axis
    return torch.gather(small, -1, cols).index_select(-2, rows)


_PIL_BITS = 22  # PRECISION_BITS of Pillow's 8-bit resampling (libImaging/Resample.c)


@functools.lru_cache(maxsize=64)
def _pil_box_taps(size_in: int, size_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pillow's ``BOX`` filter from ``size_in`` to ``size_out`` pixels: for each output pixel
    the input pixels ``[first, last)`` it averages and their common fixed-point weight.

    A port of ``precompute_coeffs`` and ``normalize_coeffs_8bpc``: an output pixel averages
    the input pixels whose centres fall in its box, each with weight 1 before normalisation
    (not the area of overlap), so the weights of one output pixel are equal and contiguous.
    """
    scale = size_in / size_out
    support = 0.5 * max(scale, 1.0)
    first, last, weight = [], [], []
    for i in range(size_out):
        centre = (i + 0.5) * scale
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), size_in)
        taps = [j for j in range(lo, hi) if -0.5 < (j - centre + 0.5) / max(scale, 1.0) <= 0.5]
        assert taps == list(range(taps[0], taps[-1] + 1)), "BOX taps are contiguous"
        first.append(taps[0])
        last.append(taps[-1] + 1)
        weight.append(math.floor(0.5 + (1.0 / len(taps)) * (1 << _PIL_BITS)))
    return torch.tensor(first), torch.tensor(last), torch.tensor(weight, dtype=torch.int32)


@functools.lru_cache(maxsize=64)
def _pil_box_matrix(size_in: int, size_out: int, dtype: torch.dtype, device) -> torch.Tensor:
    """The ``(size_out, size_in)`` 0/1 matrix of the ``BOX`` windows of :func:`_pil_box_taps`
    (window sums as one matrix product; exact, as sums of 8-bit levels are)."""
    first, last, _ = _pil_box_taps(size_in, size_out)
    j = torch.arange(size_in).view(1, -1)
    return ((j >= first.view(-1, 1)) & (j < last.view(-1, 1))).to(device, dtype)


def pil_box_resize(q: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``Image.resize((width, height), Image.BOX)`` of 8-bit images held as int32
    ``(B, C, H, W)``: a horizontal then a vertical pass, each rounded to 8 bits with Pillow's
    fixed-point arithmetic."""
    return _box_levels(q.float(), height, width).to(torch.int32)


def _box_levels(q: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """:func:`pil_box_resize` of 8-bit levels held as floats ``(B, C, H, W)`` (out alike): the
    window sums of each pass are a matrix product (integers below 2^24: exact in float32),
    rounded in Pillow's fixed point (products stay below 2^31)."""
    if width != q.shape[-1]:
        q = _box_pass(q, width, -1)
    if height != q.shape[-2]:
        q = _box_pass(q, height, -2)
    return q


def _box_gather(q: torch.Tensor, size_out: int, axis: int) -> torch.Tensor:
    """One Pillow ``BOX`` pass along ``axis`` (-1 or -2) of 8-bit levels (uint8, or floats
    holding whole levels; float out), the window sums added up from the input gathered at
    each offset into the windows: on large images cheaper than the matrix product, whose cost
    grows with the side."""
    size_in = q.shape[axis]
    first, last, weight = (t.to(q.device) for t in _pil_box_taps(size_in, size_out))
    length = last - first
    if axis == -1:
        shape = (*q.shape[:-1], size_out)

        def take(index):  # gather: faster than index_select on the last axis
            return torch.gather(q, -1, index.expand(shape))
    else:

        def take(index):
            return q.index_select(-2, index)

    if size_out >= size_in:  # enlarging: every output pixel copies one input pixel
        return take(first)
    along = (lambda t: t) if axis == -1 else (lambda t: t.view(-1, 1))
    window = take(first).float()  # gathering bytes moves a quarter of the memory of floats
    for t in range(1, int(length.max())):
        part = take((first + t).clamp(max=size_in - 1))
        if bool((length > t).all()):
            window += part
        else:
            window += part * along(length > t)
    return _round_fixed(window, weight, along)


def _round_fixed(window: torch.Tensor, weight: torch.Tensor, along) -> torch.Tensor:
    """Pillow's rounding of window sums (whole numbers held as floats) to 8 bits:
    ``(sum * weight + 2^21) >> 22``, clipped to [0, 255]. Where float32 gives exactly that for
    every possible sum of every window length present (checked once per length: true below
    161 pixels) it computes in float32, else in int32 (products stay below 2^31)."""
    if all(_float_rounding_exact(int(w)) for w in torch.unique(weight).tolist()):
        scale = along((weight.double() / (1 << _PIL_BITS)).float())
        return window.mul_(scale).add_(0.5).floor_().clamp_(0, 255)
    fixed = window.to(torch.int32).mul_(along(weight)).add_(1 << (_PIL_BITS - 1))
    fixed >>= _PIL_BITS  # a Python int shift: twice as fast as bitwise_right_shift on a CPU
    return fixed.clamp_(0, 255).to(window.dtype)


@functools.lru_cache(maxsize=256)
def _float_rounding_exact(weight: int) -> bool:
    """Whether float32 ``floor(sum * (weight / 2^22) + 0.5)`` equals Pillow's fixed-point
    rounding for every sum of 8-bit levels a window with this weight can have."""
    n = round((1 << _PIL_BITS) / weight)  # the window's length
    sums = torch.arange(255 * n + 1, dtype=torch.int64)
    exact = ((sums * weight + (1 << (_PIL_BITS - 1))) >> _PIL_BITS).clamp(0, 255)
    scale = torch.tensor(weight / (1 << _PIL_BITS), dtype=torch.float32)
    fast = (sums.float() * scale + 0.5).floor().clamp(0, 255).long()
    return torch.equal(exact, fast)


def _box_pass(q: torch.Tensor, size_out: int, axis: int) -> torch.Tensor:
    """One Pillow ``BOX`` pass along ``axis`` (-1 or -2) of 8-bit levels held as floats."""
    size_in = q.shape[axis]
    _, _, weight = _pil_box_taps(size_in, size_out)
    m = _pil_box_matrix(size_in, size_out, q.dtype, q.device)
    window = torch.matmul(q, m.T) if axis == -1 else torch.matmul(m, q)
    if size_out >= size_in:  # enlarging: every output pixel copies one input pixel
        return window
    along = (lambda t: t) if axis == -1 else (lambda t: t.view(-1, 1))
    return _round_fixed(window, weight.to(q.device), along)


@register(
    "jpeg_compression",
    {  # libjpeg quality
        "cifar": (80, 65, 58, 50, 40),  # make_cifar_c.py
        "tiny": (65, 58, 50, 40, 25),  # make_tinyimagenet_c.py
        "imagenet": (25, 18, 15, 10, 7),  # make_imagenet_c.py
        "mnist": (80, 65, 58, 50, 40),  # = cifar
    },
    random=False,
)
def jpeg_compression(x: torch.Tensor, quality: int, draws: Draws) -> torch.Tensor:
    """Encode as JPEG at ``quality`` and decode again (libjpeg via torchvision, one image at
    a time on the CPU; colour with 4:2:0 chroma subsampling as PIL's default, greyscale as a
    one-channel JPEG)."""
    images = torch.round(x.detach().cpu() * 255.0).to(torch.uint8)
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its image codecs for TorchCodec's; they are still
        # libjpeg, and what PIL's JPEG calls
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = decode_jpeg(encode_jpeg(list(images), quality=int(quality)))
    return (torch.stack(decoded).to(x.device, x.dtype)) / 255.0


# ---------------------------------------------------------------------------------------------
# Geometry: elastic_transform


def _elastic(size: float, rows: tuple[tuple[float, float, float], ...]):
    """The scripts' ``(IMSIZE * a, IMSIZE * b, IMSIZE * c)`` rows for ``IMSIZE = size``."""
    return tuple((size * a, size * b, size * c) for a, b, c in rows)


# (alpha, sigma, affine jitter) of each script's rows, as multiples of its IMSIZE
_ELASTIC_CIFAR = (
    (0, 0, 0.08),
    (0.05, 0.2, 0.07),
    (0.08, 0.06, 0.06),
    (0.1, 0.04, 0.05),
    (0.1, 0.03, 0.03),
)  # make_cifar_c.py, IMSIZE = 32
_ELASTIC_TINY = (
    (0, 0, 0.08),
    (0.05, 0.3, 0.06),
    (0.1, 0.08, 0.06),
    (0.1, 0.03, 0.03),
    (0.16, 0.03, 0.02),
)  # make_tinyimagenet_c.py, IMSIZE = 64
_ELASTIC_IMAGENET = (
    (2, 0.7, 0.1),
    (2, 0.08, 0.2),
    (0.05, 0.01, 0.02),
    (0.07, 0.01, 0.02),
    (0.12, 0.01, 0.02),
)  # make_imagenet_c.py, multiples of 244 ("should have been 224"; kept, as published)


@register(
    "elastic_transform",
    {  # (displacement amplitude alpha, its smoothing sigma, affine jitter), all in pixels
        "cifar": _elastic(32, _ELASTIC_CIFAR),
        "tiny": _elastic(64, _ELASTIC_TINY),
        "imagenet": _elastic(244, _ELASTIC_IMAGENET),
        "mnist": _elastic(28, _ELASTIC_CIFAR),  # the CIFAR rows with IMSIZE = 28
    },
)
def elastic_transform(x: torch.Tensor, p: tuple[float, float, float], draws: Draws) -> torch.Tensor:
    """A random affine map, then a smooth random displacement field.

    As the scripts: three control points at ``centre +- side // 3`` move by uniform jitter in
    ``[-jitter, jitter]`` px and the image follows the affine map they define (bilinear,
    border reflected without repeating the edge: ``cv2.warpAffine(BORDER_REFLECT_101)``).
    Then every pixel moves by ``alpha * G_sigma * U(-1, 1)`` px in x and in y (uniform noise
    smoothed by a Gaussian truncated at 3 sigma, ``mode="reflect"``), sampled bilinearly with
    the border reflected about the edge (``map_coordinates(order=1, mode="reflect")``).

    Two details differ from the scripts, neither on square images with current libraries:
    the centre is ``(W // 2, H // 2)`` where the scripts pass ``(H // 2, W // 2)`` as
    ``(x, y)``; and the affine map is sampled at float coordinates as OpenCV >= 4.11 does
    (older OpenCV rounded them to 1/32 px).
    """
    alpha, sigma, jitter = p
    h, w = x.shape[-2:]
    shift = draws.uniform(-jitter, jitter, 3, 2).double()  # the order of the scripts' draws
    noise = draws.uniform(-1.0, 1.0, 2, h, w).double()
    rows, cols = _pixel_grid(h, w, x.device)
    src_x, src_y = _affine_source(shift, rows, cols)
    x = _sample(x, src_x, src_y, align_corners=True)  # reflect about the edge pixel
    field = alpha * _smooth_reflect(noise, sigma).float()  # (B, 2, H, W): dx, dy
    return _sample(x, cols + field[:, 0], rows + field[:, 1], align_corners=False)


def _affine_source(
    shift: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each output pixel comes from under the affine map that takes the three control
    points to themselves plus ``shift`` ``(B, 3, 2)`` (``cv2.getAffineTransform`` and the
    inverse map ``cv2.warpAffine`` samples with); ``(B, H, W)`` x and y in pixels."""
    h, w = rows.shape
    side = min(h, w) // 3
    centre = torch.tensor([w // 2, h // 2], dtype=torch.float64, device=rows.device)
    corners = torch.tensor([[1, 1], [1, -1], [-1, -1]], dtype=torch.float64, device=rows.device)
    points = centre + side * corners  # (3, 2), (x, y) each
    moved = torch.cat((points + shift, torch.ones_like(shift[..., :1])), -1)  # (B, 3, 3)
    back = torch.linalg.solve(moved, points.expand_as(shift))  # [x' y' 1] @ back = [x y]
    src_x = cols * back[:, 0, 0, None, None] + rows * back[:, 1, 0, None, None]
    src_y = cols * back[:, 0, 1, None, None] + rows * back[:, 1, 1, None, None]
    return src_x + back[:, 2, 0, None, None], src_y + back[:, 2, 1, None, None]


def _pixel_grid(h: int, w: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(h, dtype=torch.float64, device=device).view(h, 1).expand(h, w)
    cols = torch.arange(w, dtype=torch.float64, device=device).view(1, w).expand(h, w)
    return rows, cols


def _sample(
    x: torch.Tensor, src_x: torch.Tensor, src_y: torch.Tensor, align_corners: bool
) -> torch.Tensor:
    """Bilinear samples of ``x`` at pixel coordinates ``(B, H, W)``, reflecting at the border.

    ``align_corners=True`` reflects about the edge pixel's centre (OpenCV's
    ``BORDER_REFLECT_101``), ``False`` about its outer edge (SciPy's ``"reflect"``).
    """
    h, w = x.shape[-2:]
    if align_corners:
        gx, gy = 2.0 * src_x / max(w - 1, 1) - 1.0, 2.0 * src_y / max(h - 1, 1) - 1.0
    else:
        gx, gy = (2.0 * src_x + 1.0) / w - 1.0, (2.0 * src_y + 1.0) / h - 1.0
    grid = torch.stack((gx, gy), -1).to(x.dtype)
    return F.grid_sample(
        x, grid, mode="bilinear", padding_mode="reflection", align_corners=align_corners
    )


def _smooth_reflect(noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """``scipy.ndimage.gaussian_filter(mode="reflect", truncate=3)`` of every ``(H, W)`` plane
    of ``(B, K, H, W)`` float64, as one matrix product per axis (the kernel may be wider
    than the image, as for ImageNet's sigma of 171 px on 224 px)."""
    h, w = noise.shape[-2:]
    along_h = _gaussian_matrix(h, float(sigma)).to(noise.device)
    along_w = _gaussian_matrix(w, float(sigma)).to(noise.device)
    return along_h @ noise @ along_w.T


@functools.lru_cache(maxsize=64)
def _gaussian_matrix(n: int, sigma: float) -> torch.Tensor:
    """The ``(n, n)`` matrix of SciPy's 1-D Gaussian filter with the signal extended by
    reflection about its outer edges (``d c b a | a b c d | d c b a``), truncated at 3 sigma."""
    if sigma <= 0:
        return torch.eye(n, dtype=torch.float64)
    radius = int(3.0 * sigma + 0.5)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    index = torch.arange(n).view(n, 1) + taps.long().view(1, -1)  # (n, taps)
    index = torch.remainder(index, 2 * n)
    index = torch.where(index >= n, 2 * n - 1 - index, index)
    matrix = torch.zeros(n, n, dtype=torch.float64)
    matrix.scatter_add_(1, index, kernel.expand(n, -1).contiguous())
    return matrix
