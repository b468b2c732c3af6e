"""Accuracy on low-pass and high-pass filtered test images against the filter's radius.

The frequency-domain analysis of Wang et al. 2020 ("High-frequency Component Helps Explain
the Generalization of Convolutional Neural Networks", CVPR; code: github.com/HaohanWang/HFC,
``utility/frequencyHelper.py``), which Wu et al. 2024 ("Dynamic Sparse Training versus Dense
Training: The Unexpected Winner in Image Corruption Robustness", arXiv 2410.03030) use to
explain why DST models are more robust: each channel of a raw image is 2-D Fourier
transformed and centred (``fftshift``), frequencies within (low-pass) or outside
(high-pass) a radius ``r`` of the centre are kept, and the real part of the inverse
transform is the filtered image. A "radius-accuracy" curve is the test accuracy on the
filtered images against ``r``.

Conventions (every function here follows them):

- After ``fftshift`` the zero frequency (DC) sits at index ``(H // 2, W // 2)``, for even
  and odd sizes alike; the centred bin ``(u, v)`` has the integer frequency
  ``(u - H // 2, v - W // 2)`` (cycles per image along each axis).
- ``shape="circle"`` keeps, for the low-pass, the bins with ``hypot(du, dv) <= r``
  (Euclidean distance, as Wang et al.'s ``mask_radial``; the "ideal low-pass filter"
  ``D(u, v) <= D0`` of Gonzalez & Woods, Digital Image Processing); ``shape="square"``
  keeps ``max(|du|, |dv|) <= r`` (Chebyshev distance: a centred square of side
  ``floor(r) * 2 + 1`` bins). Wang et al.'s released code uses the circle, hence the
  default. The high-pass keeps exactly the other bins, so low + high = the image.
- The boundary is included: radius 0 keeps the DC bin alone, so the low-pass image is each
  channel's mean everywhere and the high-pass image is the image minus that mean. Wang et
  al.'s code keeps ``distance < r`` (strict) around ``(rows / 2, rows / 2)``: on even,
  square images its radius ``r`` (an integer) is this module's ``r - 1e-3`` (any radius in
  ``[sqrt(r**2 - 1), r)``), and its ``r = 0`` keeps nothing.
- From :func:`spectrum_radius` on (circle: ``hypot(H // 2, W // 2)``, 22.63 for 32 x 32;
  square: ``max(H // 2, W // 2)``, 16) the low-pass keeps every bin, so it returns the
  image (up to float rounding) and the high-pass returns zeros.
- The real part of the inverse is taken as Wang et al. do. It matters for even sizes only:
  the bin at index 0 (frequency ``-H / 2``) has no mirror ``+H / 2``, so a mask can break
  the spectrum's Hermitian symmetry; the real part equals filtering with the mask averaged
  with its mirror. Filtered images are not clipped to [0, 1].

Rows are tidy, one per ``(kind, radius)``: ``kind`` ("low" or "high"), ``radius``,
``accuracy`` and ``error`` (fractions), ``loss`` (mean cross-entropy), ``count``.
Nothing here trains or plots.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from landscape.analysis.evaluate import (
    DEFAULT_BATCH,
    as_model,
    as_tensors,
    evaluate,
    iter_batches,
    model_device,
    model_dtype,
)
from landscape.checks import integer, number
from landscape.errors import LandscapeError

KINDS = ("low", "high")
SHAPES = ("circle", "square")

Normalizer = Callable[[torch.Tensor], torch.Tensor]


def spectrum_radius(height: int, width: int, shape: str = "circle") -> float:
    """The smallest radius whose low-pass keeps every bin of an ``height x width`` spectrum.

    Circle: ``hypot(height // 2, width // 2)``, the distance from the DC bin to the farthest
    corner; square: ``max(height // 2, width // 2)``.
    """
    height, width = integer("height", height, 1), integer("width", width, 1)
    _choice("shape", shape, SHAPES)
    half_h, half_w = height // 2, width // 2
    if shape == "square":
        return float(max(half_h, half_w))
    return math.sqrt(half_h * half_h + half_w * half_w)  # rounded as frequency_mask rounds


def frequency_mask(
    height: int,
    width: int,
    radius: float,
    shape: str = "circle",
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The low-pass mask of the centred spectrum: ``True`` where a bin is kept.

    Args:
        height, width: the image's size.
        radius: in frequency bins (pixels of the centred spectrum), >= 0.
        shape: ``"circle"`` (``hypot(du, dv) <= radius``) or ``"square"``
            (``max(|du|, |dv|) <= radius``), with ``(du, dv)`` the offset from the DC bin
            at ``(height // 2, width // 2)``.
        device: where the mask lives.

    Returns:
        A bool tensor ``(height, width)`` in ``fftshift`` layout; the high-pass mask is
        its negation.
    """
    height, width = integer("height", height, 1), integer("width", width, 1)
    radius = number("radius", radius, minimum=0)
    _choice("shape", shape, SHAPES)
    du = np.arange(height).reshape(-1, 1) - height // 2
    dv = np.arange(width).reshape(1, -1) - width // 2
    if shape == "circle":
        # numpy's sqrt is correctly rounded (torch's CPU kernels are not always), so the
        # corner bin at exactly spectrum_radius() is kept; comparing du**2 + dv**2 with
        # radius**2 would drop it when radius**2 rounds down
        keep = np.sqrt((du * du + dv * dv).astype(np.float64)) <= radius
    else:
        keep = np.maximum(np.abs(du), np.abs(dv)) <= radius
    return torch.from_numpy(keep).to(device)


def frequency_filter(
    images: torch.Tensor, radius: float, kind: str = "low", shape: str = "circle"
) -> torch.Tensor:
    """Low-pass or high-pass filter every channel of raw images in the Fourier domain.

    ``real(ifft2(ifftshift(mask * fftshift(fft2(x)))))`` per image and channel, with the
    mask of :func:`frequency_mask` (negated for ``kind="high"``); see the module's
    docstring for where the centre is and what radius 0 and large radii give.

    Args:
        images: raw images ``(N, C, H, W)``, floating point in [0, 1] (a split loaded with
            ``get_dataset(..., normalize=False)``), on any device.
        radius: in frequency bins, >= 0 (a float is fine).
        kind: ``"low"`` keeps the bins within ``radius`` of the centre, ``"high"`` the rest.
        shape: ``"circle"`` or ``"square"``.

    Returns:
        The filtered images, same shape, dtype and device, not clipped to [0, 1].

    Raises:
        LandscapeError: images of another shape or dtype, values outside [0, 1] (normalised
            images), a negative radius, an unknown kind or shape.
    """
    images = _raw_images(images, "images")
    radius = number("radius", radius, minimum=0)
    _choice("kind", kind, KINDS)
    _choice("shape", shape, SHAPES)
    return _filter(images, _keep(images, radius, kind, shape))


def radius_accuracy(
    model: Any,
    data: Any,
    radii: Sequence[float],
    kind: str = "low",
    *,
    normalize: Any = None,
    shape: str = "circle",
    batch_size: int = DEFAULT_BATCH,
) -> list[dict[str, Any]]:
    """Test accuracy, error and loss of ``model`` on filtered images, one row per radius.

    For each radius every batch of raw images is filtered (:func:`frequency_filter`) on the
    model's device, normalised as the model expects, and scored by the shared evaluator
    (:func:`landscape.analysis.evaluate`), so the filtered set is never held whole.

    Args:
        model: a classifier returning ``(N, classes)`` logits, or a ``Run``; left in the
            train/eval mode it was found in.
        data: a Split loaded with ``get_dataset(name, split="test", normalize=False)``, or
            ``(images, labels)``: raw images ``(N, C, H, W)`` in [0, 1] and int labels.
        radii: the radii, in row order (frequency bins; see :func:`spectrum_radius` for the
            radius from which the low-pass is the identity).
        kind: ``"low"`` or ``"high"``.
        normalize: how filtered images become the model's inputs: ``(mean, std)`` with one
            value per channel, a ``DatasetInfo`` (its mean/std), a function raw -> inputs, or
            ``False`` for a model that takes raw [0, 1] images. ``None`` (the default)
            uses a Split's ``info.mean``/``info.std``; for ``(images, labels)`` it is an
            error, since a forgotten normalisation gives wrong numbers silently.
        shape: ``"circle"`` or ``"square"``.
        batch_size: images per filter and forward pass.

    Returns:
        Rows ``kind``, ``radius``, ``accuracy``, ``error``, ``loss``, ``count``.

    Raises:
        LandscapeError: bad radii, kind, shape or normalisation; normalised images; data
            that does not fit the model.
    """
    model = as_model(model)
    images, labels, info = _data(data)
    images = _raw_images(images, "the data's images")
    norm = _normalizer(normalize, info, images.shape[1])
    _choice("kind", kind, KINDS)
    _choice("shape", shape, SHAPES)
    radii = _radii(radii)
    batch_size = integer("batch_size", batch_size, 1)
    device, dtype = model_device(model), model_dtype(model)
    rows = []
    for radius in radii:
        keep = _keep(images, float(radius), kind, shape, device)
        batches = _filtered(images, labels, keep, norm, batch_size, device, dtype)
        result = evaluate(model, batches, batch_size=batch_size)
        rows.append(
            {
                "kind": kind,
                "radius": radius,
                "accuracy": 1.0 - result.error,
                "error": result.error,
                "loss": result.loss,
                "count": result.count,
            }
        )
    return rows


def spectral_rows(
    model: Any,
    data: Any,
    radii: Sequence[float],
    *,
    normalize: Any = None,
    shape: str = "circle",
    batch_size: int = DEFAULT_BATCH,
) -> list[dict[str, Any]]:
    """:func:`radius_accuracy` for the low-pass, then the high-pass, at the same radii.

    Returns:
        ``2 * len(radii)`` rows: the ``"low"`` rows in radius order, then the ``"high"``.
    """
    return [
        row
        for kind in KINDS
        for row in radius_accuracy(
            model, data, radii, kind, normalize=normalize, shape=shape, batch_size=batch_size
        )
    ]


def _filter(images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Filter checked images with ``keep``, a mask already in unshifted (``fft2``) layout."""
    x = images if images.dtype in (torch.float32, torch.float64) else images.float()
    spectrum = torch.fft.fft2(x)
    filtered = torch.fft.ifft2(torch.where(keep, spectrum, 0)).real
    return filtered.to(images.dtype).contiguous()


def _keep(
    images: torch.Tensor, radius: float, kind: str, shape: str, device: Any = None
) -> torch.Tensor:
    """The kept bins for ``images``' size, moved from centred to ``fft2`` layout.

    Shifting the (H, W) mask back once is cheaper than shifting every image's spectrum
    there and back, and the two are the same permutation.
    """
    height, width = images.shape[-2:]
    device = images.device if device is None else device
    keep = frequency_mask(height, width, radius, shape, device)
    return torch.fft.ifftshift(keep if kind == "low" else ~keep)


def _filtered(
    images: torch.Tensor,
    labels: torch.Tensor,
    keep: torch.Tensor,
    norm: Normalizer | None,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Filtered, normalised ``(x, y)`` batches on the model's device, in its dtype."""
    for x, y in iter_batches((images, labels), batch_size, device, dtype):
        x = _filter(x, keep)
        if norm is not None:
            shape = x.shape
            x = norm(x)
            if not torch.is_tensor(x) or x.shape != shape:
                got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
                raise LandscapeError(
                    f"normalize returned {got} for images of shape {tuple(shape)}; it must "
                    f"return a tensor of the same shape"
                )
        yield x, y


def _raw_images(images: Any, what: str) -> torch.Tensor:
    """``images`` as a checked ``(N, C, H, W)`` floating tensor with values in [0, 1]."""
    if not torch.is_tensor(images):
        raise LandscapeError(
            f"{what} must be a tensor (N, C, H, W), got {type(images).__name__} "
            f"(convert numpy arrays with torch.as_tensor)"
        )
    if images.dim() != 4 or images.numel() == 0:
        raise LandscapeError(
            f"{what} must be images (N, C, H, W) with at least one pixel, got shape "
            f"{tuple(images.shape)}; for (N, H, W, C) arrays use x.permute(0, 3, 1, 2)"
        )
    if not images.is_floating_point():
        hint = " (x.float() / 255 for 8-bit images)" if images.dtype == torch.uint8 else ""
        raise LandscapeError(f"{what} must be floating point in [0, 1], got {images.dtype}{hint}")
    low, high = (float(v) for v in torch.aminmax(images))
    if not (low >= 0.0 and high <= 1.0):  # written so that NaN fails too
        raise LandscapeError(
            f"{what} must be raw images in [0, 1] (found values from {low:.3g} to {high:.3g}): "
            f"the filter acts on pixels before normalisation. Load the split with "
            f"get_dataset(..., normalize=False) and pass normalize= for the model's inputs"
        )
    return images


def _data(data: Any) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """``(images, labels, info)`` of a Split (``info`` its DatasetInfo) or a pair."""
    if torch.is_tensor(data):
        raise LandscapeError(
            "pass images and labels together: radius_accuracy(model, (images, labels), radii, "
            "kind, normalize=...), or a Split from get_dataset(..., normalize=False)"
        )
    pair = as_tensors(data, "data")
    if pair is None:
        raise LandscapeError(
            f"data must be a Split or an (images, labels) pair, got {type(data).__name__}; "
            f"batches from a loader cannot be filtered once per radius"
        )
    return pair[0], pair[1], getattr(data, "info", None)


def _normalizer(normalize: Any, info: Any, channels: int) -> Normalizer | None:
    """The function that turns filtered raw images into the model's inputs (``None``: none)."""
    if normalize is None:
        if info is None:
            raise LandscapeError(
                "say how the model's inputs are normalised: normalize=(mean, std) per channel, "
                "a DatasetInfo, a function, or normalize=False for a model that takes raw "
                "[0, 1] images"
            )
        normalize = info
    if normalize is False:
        return None
    if hasattr(normalize, "mean") and hasattr(normalize, "std"):  # a DatasetInfo
        normalize = (normalize.mean, normalize.std)
    if callable(normalize):
        return normalize
    if not isinstance(normalize, (tuple, list)) or len(normalize) != 2:
        raise LandscapeError(
            f"normalize must be (mean, std), a DatasetInfo, a function or False, got {normalize!r}"
        )
    mean, std = (
        _per_channel(f"normalize's {n}", v, channels) for n, v in zip(("mean", "std"), normalize)
    )
    if any(s <= 0 for s in std):
        raise LandscapeError(f"normalize's std must be positive, got {std}")

    def standardise(x: torch.Tensor) -> torch.Tensor:
        view = (1, channels, 1, 1)
        m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(view)
        s = torch.tensor(std, dtype=x.dtype, device=x.device).view(view)
        return (x - m) / s

    return standardise


def _per_channel(name: str, values: Any, channels: int) -> list[float]:
    values = values.tolist() if hasattr(values, "tolist") else values
    if not isinstance(values, (tuple, list)) or len(values) != channels:
        raise LandscapeError(f"{name} needs one value per channel ({channels}), got {values!r}")
    return [number(name, v) for v in values]


def _radii(radii: Any) -> list[float]:
    """Radii as given (ints stay ints), each a number >= 0, none repeated."""
    if getattr(radii, "ndim", None) == 1 and hasattr(radii, "tolist"):  # a tensor or array
        radii = radii.tolist()
    if isinstance(radii, (str, bytes)) or not isinstance(radii, Sequence):
        raise LandscapeError(f"radii must be a list of numbers >= 0, got {radii!r}")
    out = []
    for r in radii:
        checked = number("a radius", r, minimum=0)
        out.append(int(r) if isinstance(r, int) else checked)
    if not out:
        raise LandscapeError("radii is empty; give the radii to evaluate, e.g. range(0, 17, 2)")
    if len(set(out)) != len(out):
        raise LandscapeError(f"radii repeat a value: {out}; give each radius once")
    return out


def _choice(name: str, value: Any, valid: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in valid:
        raise LandscapeError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
