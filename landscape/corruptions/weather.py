"""The weather corruptions (snow, frost, fog, spatter) of Hendrycks & Dietterich 2019.

Each follows the published per-image function of the generation scripts
(``ImageNet-C/create_c/make_{cifar,tinyimagenet,imagenet}_c.py`` in
github.com/hendrycks/robustness) on a whole batch at once, drawing every random number from
:class:`~landscape.corruptions.core.Draws`, so all frames of a video clip get the same snow,
frost crop, fog and spatter. Deviations from the scripts, and why:

* frost: the scripts blend with crops of five frost photographs that we do not ship. We
  blend with five procedural frost textures instead (:func:`frost_textures`): needles with
  side branches and twigs, drawn from fixed seeds (the same textures in every run, as the
  photographs are), blurred, over a soft cloudy ground and fine grain, coloured with the
  per-channel mean and spread of the photographs (measured at the CIFAR script's 0.2 scale:
  blue-green, white, grey-blue, grey). A texture is twice the image side, and each clip
  takes a random texture and a random crop, as the scripts do. On one channel the texture's
  grey level is used.
* snow: none; ImageMagick's motion blur is :func:`~ops.motion_blur`, the same kernel, and
  the flakes are quantised to 8 bits before and after it as the scripts' PNG round trip does.
* spatter: none in substance. The liquid mode's OpenCV steps (Canny, the 5x5 chamfer
  distance transform, box blurs, histogram equalisation, the emboss filter) are
  reimplemented in torch (:func:`canny`, :func:`~ops.chamfer_distance`,
  :func:`~ops.equalize_hist`) and give OpenCV's values on the same noise; the layer is made
  from torch's normal draws instead of NumPy's.
* fog: the map side is the next power of two at or above the image side, as the scripts
  (32 for CIFAR, 64 for Tiny ImageNet, 256 for ImageNet).

Parameter tables: ``"cifar"``, ``"tiny"`` and ``"imagenet"`` are copied from the scripts named
beside each table. ``"mnist"`` (28 px greyscale) is derived from the CIFAR table: lengths in
pixels times 28/32 (snow's motion-blur radius, rounded half up to 7, 9, 9, 11, 12 px, and
sigma; spatter's noise sigma and mud sigma); intensities, thresholds, blend weights, zoom
factors, the liquid's strength and the fog's roughness unchanged; frost textures and fog
maps follow the image size by construction (a 32 px map cropped to 28). On one channel the
colour steps act on the grey level: snow brightens ``max(x, 1.5 x + 0.5)`` of the grey image
itself, and spatter adds the grey level (luma) of its turquoise water and mud brown.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from landscape.corruptions import ops
from landscape.corruptions.core import Draws, register

_MNIST = 28 / 32  # the length scale of the "mnist" table relative to CIFAR's

# ---------------------------------------------------------------------------------------------

_SNOW_CIFAR = (
    (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
    (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
)


@register(
    "snow",
    {  # (mean, std of the flake noise, its zoom, threshold, blur radius, blur sigma, blend)
        "cifar": _SNOW_CIFAR,  # make_cifar_c.py
        "tiny": (  # make_tinyimagenet_c.py
            (0.1, 0.2, 1, 0.6, 8, 3, 0.8),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.8),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6),
        ),
        "imagenet": (  # make_imagenet_c.py
            (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
            (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
            (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
            (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
            (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
        ),
        # blur radius (rounded half up: 7, 9, 9, 11, 12) and sigma * 28/32
        "mnist": tuple(
            (m, s, z, t, math.floor(r * _MNIST + 0.5), sb * _MNIST, b)
            for m, s, z, t, r, sb, b in _SNOW_CIFAR
        ),
    },
)
def snow(x: torch.Tensor, p: tuple, draws: Draws) -> torch.Tensor:
    """Flakes: normal noise, zoomed, thresholded and motion-blurred at an angle uniform in
    [-135, -45) degrees (falling); the image is brightened towards ``1.5 grey + 0.5`` with
    weight ``1 - blend``, then the flakes and their half-turn are added."""
    mean, std, zoom, threshold, radius, sigma, blend = p
    h, w = x.shape[-2:]
    flakes = mean + std * draws.randn(1, h, w)
    flakes = ops.clipped_zoom(flakes, zoom)
    flakes = torch.where(flakes < threshold, 0.0, flakes).clamp_(0.0, 1.0)
    flakes = torch.floor(flakes * 255) / 255  # the scripts' 8-bit grey image for ImageMagick
    flakes = ops.motion_blur(flakes, radius, sigma, draws.uniform(-135.0, -45.0))
    flakes = torch.round(flakes * 255) / 255  # and ImageMagick's 8-bit output
    x = blend * x + (1 - blend) * torch.maximum(x, ops.grey(x) * 1.5 + 0.5)
    return x + flakes + flakes.flip(-2, -1)


# ---------------------------------------------------------------------------------------------

_FROST_CIFAR = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))


@register(
    "frost",
    {  # (image weight, frost weight)
        "cifar": _FROST_CIFAR,  # make_cifar_c.py
        "tiny": (  # make_tinyimagenet_c.py
            (1, 0.3),
            (0.9, 0.4),
            (0.8, 0.45),
            (0.75, 0.5),
            (0.7, 0.55),
        ),
        "imagenet": (  # make_imagenet_c.py
            (1, 0.4),
            (0.8, 0.6),
            (0.7, 0.7),
            (0.65, 0.7),
            (0.6, 0.75),
        ),
        "mnist": _FROST_CIFAR,  # = cifar (blend weights)
    },
)
def frost(x: torch.Tensor, p: tuple[float, float], draws: Draws) -> torch.Tensor:
    """``image_weight * x + frost_weight * texture``, the texture a random crop of one of the
    five procedural textures of :func:`frost_textures` per clip."""
    image_weight, frost_weight = p
    b, c, h, w = x.shape
    bank = frost_textures(h, w).to(x.device, x.dtype)  # (5, 3, 2H, 2W)
    if c == 1:
        bank = ops.grey(bank)
    which = draws.integers(0, bank.shape[0])
    top = draws.integers(0, bank.shape[-2] - h + 1).view(b, 1, 1)
    left = draws.integers(0, bank.shape[-1] - w + 1).view(b, 1, 1)
    rows = top + torch.arange(h, device=x.device).view(1, h, 1)
    cols = left + torch.arange(w, device=x.device).view(1, 1, w)
    crop = bank[which.view(b, 1, 1), :, rows, cols]  # (B, H, W, C)
    return image_weight * x + frost_weight * crop.permute(0, 3, 1, 2)


#: Per-channel (mean, standard deviation) of the five frost photographs the scripts draw
#: from (frost1.png ... frost5.jpg of ImageNet-C, RGB, resized by 0.2 as make_cifar_c.py).
_FROST_COLOURS = (
    ((0.304, 0.584, 0.650), (0.105, 0.064, 0.060)),
    ((0.787, 0.805, 0.841), (0.084, 0.087, 0.089)),
    ((0.787, 0.805, 0.841), (0.084, 0.087, 0.089)),  # frost3.png is frost2.png again
    ((0.541, 0.601, 0.649), (0.114, 0.114, 0.119)),
    ((0.440, 0.483, 0.528), (0.174, 0.169, 0.163)),
)
_FROST_SEED = 20190328  # the textures are fixed, as the photographs are


@functools.lru_cache(maxsize=8)
def frost_textures(h: int, w: int) -> torch.Tensor:
    """Five frost textures ``(5, 3, 2h, 2w)`` in [0, 1] for ``h x w`` images (CPU, cached).

    Each is made from its own fixed seed: straight needles (length 20-60% of the image side,
    directions spread about a dominant one), each with side branches at 30-60 degrees and
    twigs on the branches, drawn with a taper towards their tips and a Gaussian profile
    (sigma ``max(0.5, side / 224)`` px); added to a soft cloud (Gaussian-smoothed noise) and
    fine grain; standardised and coloured with the mean and spread of one photograph.
    """
    size = max(h, w)
    th, tw = 2 * h, 2 * w
    width = max(0.5, size / 224)
    out = []
    for k, (mean, std) in enumerate(_FROST_COLOURS):
        g = torch.Generator().manual_seed(_FROST_SEED + k)
        lines = _crystals(g, th, tw, size)[None, None]
        # a one-pixel line blurred by sigma peaks at about 1 / (sqrt(2 pi) sigma)
        lines = ops.gaussian_filter(lines, width)[0, 0] * math.sqrt(2 * math.pi) * width
        cloud = torch.randn(1, 1, th, tw, generator=g)
        cloud = ops.gaussian_filter(cloud, size / 6)[0, 0]
        cloud = cloud / cloud.std().clamp(min=1e-6)
        grain = torch.randn(th, tw, generator=g)
        intensity = lines.clamp(max=1.0) + 0.25 * cloud + 0.08 * grain
        intensity = (intensity - intensity.mean()) / intensity.std()
        mean_t, std_t = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
        out.append((mean_t + std_t * intensity).clamp(0.0, 1.0))
    return torch.stack(out)


def _crystals(g: torch.Generator, h: int, w: int, size: int) -> torch.Tensor:
    """Needles with branches and twigs on an ``(h, w)`` canvas: each pixel the brightest
    line through it."""
    count = int(round(24 * h * w / size**2))  # needles per image area
    main = 2 * math.pi * torch.rand((), generator=g).item()
    spread = 0.5 + torch.rand((), generator=g).item()  # radians about the main direction
    start = torch.rand(count, 2, generator=g) * torch.tensor([h, w])
    angle = main + spread * (2 * torch.rand(count, generator=g) - 1)
    length = size * (0.2 + 0.4 * torch.rand(count, generator=g))
    bright = 0.6 + 0.4 * torch.rand(count, generator=g)
    segments = [(start, angle, length, bright)]
    for per, frac in ((10, 0.3), (4, 0.4)):  # branches on needles, twigs on branches
        start, angle, length, bright = segments[-1]
        n = start.shape[0]
        at = 0.05 + 0.9 * torch.rand(n, per, generator=g)  # where along the parent
        side = torch.where(torch.rand(n, per, generator=g) < 0.5, -1.0, 1.0)
        turn = side * math.radians(30) * (1 + torch.rand(n, per, generator=g))
        direction = torch.stack((torch.sin(angle), torch.cos(angle)), -1)[:, None]
        base = start[:, None] + (at * length[:, None])[..., None] * direction
        grow = frac * length[:, None] * (1.2 - at) * (0.5 + torch.rand(n, per, generator=g))
        segments.append(
            (
                base.reshape(-1, 2),
                (angle[:, None] + turn).reshape(-1),
                grow.reshape(-1),
                (0.85 * bright[:, None]).expand(n, per).reshape(-1),
            )
        )
    canvas = torch.zeros(h * w)
    for start, angle, length, bright in segments:
        steps = max(2, int(2 * float(length.max())) + 1)  # two samples per pixel of length
        t = torch.linspace(0, 1, steps).view(1, -1)
        ys = (start[:, :1] + t * (length * torch.sin(angle))[:, None]).round().long()
        xs = (start[:, 1:] + t * (length * torch.cos(angle))[:, None]).round().long()
        weight = bright[:, None] * (1 - 0.6 * t)  # tapering towards the tip
        keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        canvas.scatter_reduce_(0, (ys * w + xs)[keep], weight[keep], reduce="amax")
    return canvas.view(h, w)


# ---------------------------------------------------------------------------------------------

_FOG_CIFAR = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))


@register(
    "fog",
    {  # (strength, roughness decay of the plasma fractal)
        "cifar": _FOG_CIFAR,  # make_cifar_c.py
        "tiny": ((0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)),  # make_tinyimagenet_c.py
        "imagenet": ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),  # make_imagenet_c.py
        "mnist": _FOG_CIFAR,  # = cifar (an intensity and a ratio)
    },
)
def fog(x: torch.Tensor, p: tuple[float, float], draws: Draws) -> torch.Tensor:
    """``(x + strength * plasma) * peak / (peak + strength)``, the plasma fractal
    (:func:`~ops.plasma_fractal`) cropped to the image and ``peak`` the image's maximum."""
    strength, decay = p
    h, w = x.shape[-2:]
    plasma = ops.plasma_fractal(draws, ops.next_power_of_two(max(h, w)), decay)
    peak = x.amax((1, 2, 3), keepdim=True)
    return (x + strength * plasma[:, None, :h, :w].to(x.dtype)) * peak / (peak + strength)


# ---------------------------------------------------------------------------------------------

_SPATTER_CIFAR = (
    (0.62, 0.1, 0.7, 0.7, 0.5, 0),
    (0.65, 0.1, 0.8, 0.7, 0.5, 0),
    (0.65, 0.3, 1, 0.69, 0.5, 0),
    (0.65, 0.1, 0.7, 0.69, 0.6, 1),
    (0.65, 0.1, 0.5, 0.68, 0.6, 1),
)
_WATER, _MUD = (175, 238, 238), (63, 42, 20)  # pale turquoise, mud brown (RGB)
_EMBOSS = torch.tensor([[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])


@register(
    "spatter",
    {  # (mean, std of the noise, its sigma, threshold, strength (liquid) or sigma (mud), mud)
        "cifar": _SPATTER_CIFAR,  # make_cifar_c.py
        "tiny": (  # make_tinyimagenet_c.py
            (0.62, 0.1, 0.7, 0.7, 0.6, 0),
            (0.65, 0.1, 0.8, 0.7, 0.6, 0),
            (0.65, 0.3, 1, 0.69, 0.6, 0),
            (0.65, 0.1, 0.7, 0.68, 0.6, 1),
            (0.65, 0.1, 0.5, 0.67, 0.6, 1),
        ),
        "imagenet": (  # make_imagenet_c.py
            (0.65, 0.3, 4, 0.69, 0.6, 0),
            (0.65, 0.3, 3, 0.68, 0.6, 0),
            (0.65, 0.3, 2, 0.68, 0.5, 0),
            (0.65, 0.3, 1, 0.65, 1.5, 1),
            (0.67, 0.4, 1, 0.65, 1.5, 1),
        ),
        # the noise sigma * 28/32, and the mud's sigma (a length; the liquid's is a strength)
        "mnist": tuple(
            (m, s, round(sg * _MNIST, 4), t, round(c * _MNIST, 4) if mud else c, mud)
            for m, s, sg, t, c, mud in _SPATTER_CIFAR
        ),
    },
)
def spatter(x: torch.Tensor, p: tuple, draws: Draws) -> torch.Tensor:
    """Liquid drops (``mud = 0``) or mud (``mud = 1``) from thresholded smoothed noise.

    Liquid: the drops' edges (Canny 50/150 of the 8-bit layer), the distance to them (capped
    at 20, box-blurred, histogram-equalised, embossed, box-blurred) times the layer, scaled to
    ``strength`` at its peak, add pale turquoise. Mud: the drop mask blurred by ``sigma`` and
    kept where above 0.8 replaces the image by mud brown in proportion.
    """
    mean, std, sigma, threshold, strength, mud = p
    b, c, h, w = x.shape
    # float64 where the device has it, as the scripts: the layer is cut at thresholds and
    # truncated to 8 bits, where float32 rounding would move a few pixels across
    wide = torch.float32 if x.device.type == "mps" else torch.float64
    layer = mean + std * draws.randn(1, h, w).to(wide)
    layer = ops.gaussian_filter(layer, sigma)
    layer = torch.where(layer < threshold, 0.0, layer)
    if mud:
        m = ops.gaussian_filter((layer > threshold).to(x.dtype), strength)
        m = torch.where(m < 0.8, 0.0, m)
        return x * (1 - m) + ops.colour(_MUD, c, x) * m
    # .astype(np.uint8), which wraps values above 255 round to 0 (x86): a drop peaking above 1
    # gets a dark core in the scripts' data, and so here
    # (the layer is 0 or above the threshold here: truncation is the floor)
    level = ((layer[:, 0] * 255).to(torch.int64) & 255).to(x.dtype)
    dist = ops.chamfer_distance(canny(level, 50, 150), 20.0)
    # cv2.blur of float32 sums in float64, scales by 1/9 and rounds to float32; then
    # .astype(np.uint8) truncates, so a mean of exactly 20 must not come out as 19.999998
    box = ops.convolve(dist[:, None].to(wide), torch.ones(3, 3))
    dist = torch.floor((box * (1 / 9)).to(x.dtype))
    dist = ops.equalize_hist(dist[:, 0])[:, None]
    dist = ops.convolve(dist, _EMBOSS).clamp_(0, 255)  # filter2D to CV_8U saturates
    dist = torch.round(ops.box_blur(dist))  # cv2.blur of uint8 rounds
    m = (level[:, None] * dist).to(x.dtype)
    m = m / m.amax((2, 3), keepdim=True).clamp(min=1e-12) * strength
    return x + m * ops.colour(_WATER, c, x)


# ---------------------------------------------------------------------------------------------

_TG22 = int(math.tan(math.radians(22.5)) * (1 << 15) + 0.5)  # OpenCV's fixed-point tan(22.5)


def canny(v: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``cv2.Canny(v, low, high)`` of 8-bit maps ``(B, H, W)`` (float in): 3x3 Sobel with
    the edge repeated, L1 magnitude, non-maximum suppression in four directions with
    OpenCV's fixed-point angle tests and tie rules, then hysteresis (8-connected growth from
    pixels above ``high`` through those above ``low``). Returns ``(B, H, W)`` booleans."""
    b, h, w = v.shape
    p = F.pad(v[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    # the separable 3x3 Sobel pair on shifted copies (integers: exact in float32)
    across = p[:, :, 2:] - p[:, :, :-2]  # x[.., j + 1] - x[.., j - 1], every padded row
    gx = across[:, :-2] + 2 * across[:, 1:-1] + across[:, 2:]
    down = p[:, 2:] - p[:, :-2]  # x[i + 1] - x[i - 1], every padded column
    gy = down[..., :-2] + 2 * down[..., 1:-1] + down[..., 2:]
    mag = gx.abs() + gy.abs()
    mp = F.pad(mag, (1, 1, 1, 1))  # OpenCV's magnitude buffer has a zero border

    def at(dy: int, dx: int) -> torch.Tensor:
        return mp[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    # OpenCV's integer angle tests; every product stays below 2^31
    # (shifts by a Python int as products: several times faster on a CPU, equal here)
    ax, ay = gx.abs().to(torch.int32), gy.abs().to(torch.int32) * (1 << 15)
    tg22 = ax * _TG22
    horizontal = ay < tg22
    vertical = ay > tg22 + ax * (1 << 16)
    same_sign = (gx < 0) == (gy < 0)  # OpenCV's (xs ^ ys) >= 0, s = 1
    keep = torch.where(
        horizontal,
        (mag > at(0, -1)) & (mag >= at(0, 1)),
        torch.where(
            vertical,
            (mag > at(-1, 0)) & (mag >= at(1, 0)),
            torch.where(
                same_sign,
                (mag > at(-1, -1)) & (mag > at(1, 1)),
                (mag > at(-1, 1)) & (mag > at(1, -1)),
            ),
        ),
    )
    weak = keep & (mag > low)
    edges = weak & (mag > high)
    while True:
        # 8-connected growth: the 3x3 dilation of the edges, as two shifted ORs per axis
        e = F.pad(edges, (1, 1, 1, 1))
        e = e[:, :, :-2] | e[:, :, 1:-1] | e[:, :, 2:]
        grown = weak & (e[:, :-2] | e[:, 1:-1] | e[:, 2:])
        if torch.equal(grown, edges):
            return edges
        edges = grown
