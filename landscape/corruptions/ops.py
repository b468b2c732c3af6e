"""Batched image operations the blur and weather corruptions share.

Every function takes float images ``(B, C, H, W)`` (or single-channel maps ``(B, H, W)``
where said) and works on the whole batch at once, on any device.

Padding follows the libraries the published generation scripts call: ``scipy.ndimage`` and
``skimage.filters.gaussian`` extend the edge (``mode="nearest"``, torch ``"replicate"``);
OpenCV's ``filter2D``, ``blur`` and ``GaussianBlur`` reflect without repeating the edge
(``BORDER_REFLECT_101``, torch ``"reflect"``); ImageMagick's motion blur repeats the edge
pixel (its default virtual-pixel method, ``"edge"``).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from landscape.corruptions.core import Draws

#: ITU-R BT.601 luma weights, as OpenCV's ``COLOR_RGB2GRAY``.
LUMA = (0.299, 0.587, 0.114)


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, device=None) -> torch.Tensor:
    """The normalised 1-D Gaussian of ``scipy.ndimage.gaussian_filter`` (float64): radius
    ``int(truncate * sigma + 0.5)``."""
    radius = max(0, int(truncate * float(sigma) + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    k = torch.exp(-0.5 * (t / float(sigma)) ** 2) if sigma > 0 else (t == 0).double()
    return k / k.sum()


def gaussian_filter(
    x: torch.Tensor, sigma: float, truncate: float = 4.0, mode: str = "replicate"
) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` images, each channel on its own: what
    ``scipy.ndimage.gaussian_filter(x, (0, 0, sigma, sigma), mode="nearest")`` and
    ``skimage.filters.gaussian(x, sigma, channel_axis=-1)`` compute.

    Each pass (:func:`filter_axis`) is a matrix product with the banded matrix of the 1-D
    filter, or a sum of shifted copies where the kernel is short against the side: on a CPU
    either is far faster than a convolution with a single input channel."""
    if sigma <= 0:
        return x
    k = tuple(gaussian_kernel1d(sigma, truncate).tolist())
    r = (len(k) - 1) // 2
    return filter_axis(filter_axis(x, k, r, mode, -1), k, r, mode, -2)


def filter_axis(
    x: torch.Tensor, kernel: tuple[float, ...], anchor: int, mode: str, axis: int
) -> torch.Tensor:
    """The 1-D correlation ``y[i] = sum_t kernel[t] x[i + t - anchor]`` along ``axis`` (-1
    or -2) of ``(..., H, W)`` tensors, the signal extended as :func:`_pad` extends it."""
    n = x.shape[axis]
    if len(kernel) * 8 > n and n <= MATRIX_SIDE:  # long kernel: the banded matrix
        m = filter_matrix(n, kernel, anchor, mode, x.dtype, x.device)
        return torch.matmul(x, m.T) if axis == -1 else torch.matmul(m, x)
    after = len(kernel) - 1 - anchor
    lead = x.shape[:-2]
    y = x.reshape(-1, 1, *x.shape[-2:])
    y = _pad(y, (anchor, after, 0, 0) if axis == -1 else (0, 0, anchor, after), mode)
    y = y.reshape(*lead, *y.shape[-2:])
    out = None
    for t, k in enumerate(kernel):
        term = y.narrow(axis, t, n)
        out = term * k if out is None else out.add_(term, alpha=k)
    return out


#: Up to this side, :func:`filter_axis` may filter by a matrix product.
MATRIX_SIDE = 512


@functools.lru_cache(maxsize=128)
def filter_matrix(
    n: int, kernel: tuple[float, ...], anchor: int, mode: str, dtype: torch.dtype, device
) -> torch.Tensor:
    """The ``(n, n)`` matrix ``M`` of the 1-D correlation ``y[i] = sum_t kernel[t]
    x[i + t - anchor]`` with the signal extended as :func:`_pad` extends it (``mode``
    ``"replicate"``, ``"reflect"`` or ``"constant"``): ``y = M @ x`` (cached per size)."""
    taps = torch.arange(len(kernel)) - anchor
    index = torch.arange(n).view(n, 1) + taps.view(1, -1)  # (n, taps)
    weight = torch.tensor(kernel, dtype=torch.float64).expand(n, -1).contiguous()
    if mode == "replicate":
        index = index.clamp(0, n - 1)
    elif mode == "reflect":
        if n == 1:
            index = torch.zeros_like(index)
        else:  # BORDER_REFLECT_101, periodic with period 2 (n - 1)
            index = torch.remainder(index, 2 * (n - 1))
            index = torch.where(index >= n, 2 * (n - 1) - index, index)
    elif mode == "constant":
        weight = torch.where((index >= 0) & (index < n), weight, 0.0)
        index = index.clamp(0, n - 1)
    else:
        raise ValueError(f"unknown padding mode {mode!r}")
    matrix = torch.zeros(n, n, dtype=torch.float64)
    matrix.scatter_add_(1, index, weight)
    return matrix.to(device, dtype)


def convolve(x: torch.Tensor, kernel: torch.Tensor, mode: str = "reflect") -> torch.Tensor:
    """Correlate every channel of ``(B, C, H, W)`` images with one 2-D kernel, anchored at
    ``(kh // 2, kw // 2)`` and keeping the size: what ``cv2.filter2D`` computes.

    Small kernels sum shifted copies of the padded images (skipping zero taps); large ones
    (more than :data:`FFT_TAPS` taps) multiply in the Fourier domain: the padded images'
    circular correlation, at a size of small primes, cropped to where it is the linear one.
    """
    kh, kw = kernel.shape
    b, c, h, w = x.shape
    kernel = kernel.to(x.device, x.dtype)
    y = _pad(x, (kw // 2, kw - 1 - kw // 2, kh // 2, kh - 1 - kh // 2), mode)
    if kh * kw > FFT_TAPS and x.dtype in (torch.float32, torch.float64):
        size = (_fft_size(y.shape[-2]), _fft_size(y.shape[-1]))
        k = torch.fft.rfft2(kernel.flip(0, 1), s=size)
        planes = y.reshape(-1, *y.shape[-2:])
        out = torch.empty(planes.shape[0], h, w, dtype=x.dtype, device=x.device)
        # a few planes at a time: the spectra of a whole batch fall out of the CPU's caches
        step = FFT_PLANES if x.device.type == "cpu" else planes.shape[0]
        for i in range(0, planes.shape[0], step):
            spectrum = torch.fft.rfft2(planes[i : i + step], s=size) * k
            y = torch.fft.irfft2(spectrum, s=size)
            out[i : i + step] = y[..., kh - 1 : kh - 1 + h, kw - 1 : kw - 1 + w]
        return out.view(b, c, h, w)
    out = None
    for (i, j), k in zip(torch.cartesian_prod(torch.arange(kh), torch.arange(kw)).tolist(),
                         kernel.reshape(-1).tolist()):  # fmt: skip
        if k == 0:
            continue
        term = y[..., i : i + h, j : j + w]
        out = term * k if out is None else out.add_(term, alpha=k)
    return torch.zeros_like(x) if out is None else out


#: Kernels with more taps than this are applied by FFT in :func:`convolve`, on a CPU
#: :data:`FFT_PLANES` image planes at a time.
FFT_TAPS = 49
FFT_PLANES = 6


def _fft_size(n: int) -> int:
    """The smallest ``m >= n`` with no prime factor above 5 (fast FFT lengths)."""
    m = n
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def box_blur(x: torch.Tensor, size: int = 3) -> torch.Tensor:
    """``cv2.blur(x, (size, size))``: the normalised box filter, border reflected (101)."""
    return convolve(x, torch.full((size, size), 1.0 / size**2))


def _pad(x: torch.Tensor, pad: tuple[int, int, int, int], mode: str) -> torch.Tensor:
    """Pad the last two axes; ``"reflect"`` repeats the reflection when the padding is wider
    than the image (OpenCV's ``BORDER_REFLECT_101`` is periodic with period ``2 (n - 1)``)
    and repeats the only pixel of an axis of length 1 (as OpenCV does)."""
    if mode != "reflect":
        return F.pad(x, pad, mode=mode)
    for axis, (before, after) in ((-1, pad[:2]), (-2, pad[2:])):
        if x.shape[axis] == 1:
            x = F.pad(x, (before, after, 0, 0) if axis == -1 else (0, 0, before, after),
                      mode="replicate")  # fmt: skip
            continue
        while before or after:
            n = x.shape[axis] - 1  # the widest single reflection
            step = (min(before, n), min(after, n))
            x = F.pad(x, (*step, 0, 0) if axis == -1 else (0, 0, *step), mode="reflect")
            before, after = before - step[0], after - step[1]
    return x


def disk_kernel(radius: float, alias_blur: float) -> torch.Tensor:
    """The anti-aliased disk of the published ``disk()`` helper (defocus blur): the indicator
    of ``x^2 + y^2 <= radius^2`` on a ``17 x 17`` grid (``2 radius + 1`` beyond radius 8),
    normalised, then ``cv2.GaussianBlur`` with a 3x3 (5x5) window and sigma ``alias_blur``."""
    size = 8 if radius <= 8 else math.ceil(radius)
    t = torch.arange(-size, size + 1, dtype=torch.float32)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    disk = ((xx**2 + yy**2) <= radius**2).float()
    disk = disk / disk.sum()
    ksize = 3 if radius <= 8 else 5
    r = ksize // 2
    g = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / alias_blur) ** 2)
    g = (g / g.sum()).float()
    return convolve(disk.view(1, 1, *disk.shape), torch.outer(g, g))[0, 0]


def grey(x: torch.Tensor) -> torch.Tensor:
    """The grey level ``(B, 1, H, W)`` of RGB images (OpenCV's ``RGB2GRAY`` weights); a
    single-channel image is its own grey level."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def colour(rgb: tuple[float, float, float], channels: int, like: torch.Tensor) -> torch.Tensor:
    """An RGB colour in [0, 255] as a ``(1, C, 1, 1)`` tensor in [0, 1]; on one channel its
    grey level (the same luma weights as :func:`grey`)."""
    c = torch.tensor(rgb, dtype=like.dtype, device=like.device).view(1, 3, 1, 1) / 255.0
    return grey(c) if channels == 1 else c


def clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """The scripts' ``clipped_zoom``: zoom the centre ``ceil(n / factor)`` pixels of each axis
    by ``factor`` and keep the centre ``n`` of the result.

    ``scipy.ndimage.zoom(order=1)`` maps output pixel ``o`` of ``m = round(k * factor)`` to
    input ``o (k - 1) / (m - 1)``, which is bilinear interpolation with aligned corners.
    """
    h, w = x.shape[-2:]
    ch, cw = math.ceil(h / factor), math.ceil(w / factor)
    top, left = (h - ch) // 2, (w - cw) // 2
    mh, mw = round(ch * factor), round(cw * factor)  # Python's round, as SciPy's
    crop = x[..., top : top + ch, left : left + cw]
    z = F.interpolate(crop, size=(mh, mw), mode="bilinear", align_corners=True)
    trim_h, trim_w = (mh - h) // 2, (mw - w) // 2
    return z[..., trim_h : trim_h + h, trim_w : trim_w + w]


def motion_blur(x: torch.Tensor, radius: float, sigma: float, angle: torch.Tensor) -> torch.Tensor:
    """ImageMagick's ``MotionBlurImage(radius, sigma, angle)`` of each image at its own angle.

    The kernel is one-sided: ``width = 2 ceil(radius) + 1`` taps with weights
    ``exp(-i^2 / (2 sigma^2))`` (normalised), tap ``i`` reading the pixel at offset
    ``(ceil(i sin(angle) - 0.5), ceil(i cos(angle) - 0.5))`` (rows, columns), the edge pixel
    repeated outside the image. ``angle`` is ``(B,)`` in degrees.
    """
    b, c, h, w = x.shape
    width = 2 * math.ceil(radius) + 1
    i = torch.arange(width, dtype=torch.float64)
    weights = torch.exp(-(i**2) / (2.0 * sigma**2))
    weights = (weights / weights.sum()).tolist()
    rad = torch.deg2rad(angle.double().cpu())
    taps = i.view(1, -1)
    dy = torch.ceil(taps * torch.sin(rad).view(-1, 1) - 0.5).long()  # (B, width)
    dx = torch.ceil(taps * torch.cos(rad).view(-1, 1) - 0.5).long()
    # every tap reads a shifted copy of the image: a slice of the edge-padded image. With
    # the images in order of angle, those sharing a tap's offset are mostly neighbours (the
    # row offset grows with the angle), so a tap is a few slices of the batch
    order = torch.argsort(rad, stable=True)
    identity = bool((order == torch.arange(b)).all())
    if not identity:
        x = x.index_select(0, order.to(x.device))
        dy, dx = dy[order], dx[order]
    m = width - 1  # no offset is longer
    padded = F.pad(x, (m, m, m, m), mode="replicate")
    out = torch.zeros_like(x)
    for t, k in enumerate(weights):
        shift = torch.stack((dy[:, t], dx[:, t]), 1)
        starts = [0, *((shift[1:] != shift[:-1]).any(1).nonzero().squeeze(1) + 1).tolist(), b]
        for start, stop in zip(starts[:-1], starts[1:]):
            top, left = m + int(shift[start, 0]), m + int(shift[start, 1])
            source = padded[start:stop, :, top : top + h, left : left + w]
            out[start:stop].add_(source, alpha=k)
    if identity:
        return out
    return torch.empty_like(out).index_copy_(0, order.to(x.device), out)


def plasma_fractal(draws: Draws, mapsize: int, decay: float) -> torch.Tensor:
    """The scripts' diamond-square heightmap ``(B, mapsize, mapsize)`` in [0, 1], one per clip.

    A port of their ``plasma_fractal`` (after github.com/FLHerne/mapgen), drawing the same
    uniforms in the same order: each new point is the mean of its four neighbours (wrapping
    around) plus ``wibble * U(-wibble, wibble)``, ``wibble`` starting at 100 and divided by
    ``decay`` at each halving of the step.
    """
    if mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of two, got {mapsize}")
    m = torch.zeros(draws.clips * draws.frames, mapsize, mapsize, device=draws.device)
    step, wibble = mapsize, 100.0

    def wibbled_mean(total: torch.Tensor) -> torch.Tensor:
        return total / 4 + wibble * draws.uniform(-wibble, wibble, *total.shape[1:])

    while step >= 2:
        half = step // 2
        corners = m[:, ::step, ::step]
        squares = corners + corners.roll(-1, 1)
        m[:, half::step, half::step] = wibbled_mean(squares + squares.roll(-1, 2))
        centres, corners = m[:, half::step, half::step], m[:, ::step, ::step]
        left = centres + centres.roll(1, 1) + corners + corners.roll(-1, 2)
        m[:, ::step, half::step] = wibbled_mean(left)
        top = centres + centres.roll(1, 2) + corners + corners.roll(-1, 1)
        m[:, half::step, ::step] = wibbled_mean(top)
        step, wibble = half, wibble / decay
    m = m - m.amin((1, 2), keepdim=True)
    return m / m.amax((1, 2), keepdim=True)


def next_power_of_two(n: int) -> int:
    """The smallest power of two ``>= n`` (the plasma map size for an image side ``n``)."""
    return 1 << max(0, int(n) - 1).bit_length()


#: OpenCV's weights of the 5x5 chamfer mask for ``DIST_L2``: a step along an axis, along a
#: diagonal, a knight's move.
CHAMFER_5X5 = (1.0, 1.4, 2.1969)


def chamfer_distance(edges: torch.Tensor, cap: float) -> torch.Tensor:
    """``cv2.distanceTransform(DIST_L2, 5)`` truncated at ``cap``: the distance ``(B, H, W)``
    from every pixel to the nearest ``True`` of ``edges`` ``(B, H, W)``, measured along paths
    of axis, diagonal and knight's steps weighted by :data:`CHAMFER_5X5`.

    OpenCV computes it in two raster scans; here every pixel relaxes against its 16
    neighbours at once, repeated until nothing changes (at most ``cap`` rounds, as no step is
    shorter than 1). Values are held at ``cap`` throughout: a path through a pixel farther
    than ``cap`` can only end farther still. Sums are float32, as OpenCV 4-5 makes them
    (OpenCV 3 summed in fixed point with 16 fractional bits: 1.4 was 1.3999939).
    """
    a, b, c = CHAMFER_5X5
    h, w = edges.shape[-2:]
    top = float(cap)
    d = torch.where(edges, 0.0, top)
    # the 16 moves grouped by weight, sharing the horizontal minima (min(x + k, y + k) is
    # min(x, y) + k exactly: rounding is monotonic), 13 operations a round instead of 32
    padded = torch.full((*d.shape[:-2], h + 4, w + 4), top, dtype=d.dtype, device=d.device)
    inner = padded[..., 2 : 2 + h, 2 : 2 + w]
    inner.copy_(d)
    for _ in range(int(math.ceil(cap)) + 1):
        rows = padded[..., :, 2 : 2 + w]
        one = torch.minimum(padded[..., :, 1 : 1 + w], padded[..., :, 3 : 3 + w])  # dx = +-1
        two = torch.minimum(padded[..., :, :w], padded[..., :, 4 : 4 + w])  # dx = +-2
        axis = torch.minimum(one[..., 2 : 2 + h, :], rows[..., 1 : 1 + h, :])
        axis = torch.minimum(axis, rows[..., 3 : 3 + h, :]).add_(a)
        diagonal = torch.minimum(one[..., 1 : 1 + h, :], one[..., 3 : 3 + h, :]).add_(b)
        knight = torch.minimum(one[..., :h, :], one[..., 4 : 4 + h, :])
        knight = torch.minimum(knight, two[..., 1 : 1 + h, :])
        knight = torch.minimum(knight, two[..., 3 : 3 + h, :]).add_(c)
        # (no clamp needed: nothing goes above the values already held, all at most cap)
        new = torch.minimum(torch.minimum(inner, axis), torch.minimum(diagonal, knight))
        if torch.equal(new, inner):
            break
        inner.copy_(new)
    return inner.clone()


def equalize_hist(v: torch.Tensor) -> torch.Tensor:
    """``cv2.equalizeHist`` of integer-valued maps ``(B, H, W)`` in [0, 255] (float in, out):
    ``lut[i] = round(255 (cdf[i] - cdf[first]) / (N - cdf[first]))``, ``first`` the lowest
    level present; an image of one level keeps it."""
    b = v.shape[0]
    flat = v.reshape(b, -1).long().clamp_(0, 255)
    n = flat.shape[1]
    hist = torch.zeros(b, 256, device=v.device).scatter_add_(
        1, flat, torch.ones_like(flat, dtype=torch.float32)
    )
    cdf = hist.cumsum(1)
    first = torch.where(hist > 0, cdf, torch.full_like(cdf, float(n + 1))).amin(1, keepdim=True)
    scale = 255.0 / (n - first).clamp(min=1)
    lut = torch.round((cdf - first) * scale).clamp_(0, 255)
    out = lut.gather(1, flat).view_as(v)
    single = first == n  # one level only: cv2 returns the image unchanged
    return torch.where(single.view(b, 1, 1), v, out)
