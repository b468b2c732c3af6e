"""Benchmark: batched image corruptions against `imagecorruptions`, image by image.

For every one of the 19 corruptions at severity 3, both sides corrupt the same images side by
side in one run:

- ``imagecorruptions`` (the per-image numpy package, ImageNet parameters) on ``(224, 224, 3)``
  uint8 images, one call per image, where it runs on this machine's numpy / scikit-image
  (its glass_blur, gaussian_blur and fog fail on numpy 2 / scikit-image 0.26: those are
  reported as ``peer_failed``);
- ours, :func:`landscape.corruptions.corrupt` with the ImageNet table on the same images as
  one ``(N, 3, 224, 224)`` batch; and ours on CIFAR-sized ``(N, 3, 32, 32)`` batches with the
  CIFAR table (images per second, no peer: the package has no CIFAR parameters).

Prints a line per corruption and, as its last line, one JSON object whose ``ratios`` hold
``speedup_vs_imagecorruptions`` (the suite: the peer's total seconds per image over ours, on
the corruptions both run) and ``min_speedup_vs_imagecorruptions`` (the slowest corruption's
ratio). Goals: the suite at least 20x, no corruption slower than the peer. On a CPU it uses
one thread unless told otherwise (``--threads``).

    python benchmarks/corruptions.py --quick
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import torch

from landscape.corruptions import CORRUPTIONS, corrupt
from landscape.devices import resolve_device

SEVERITY = 3


def _peer():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import imagecorruptions
    except ImportError:
        return None
    return imagecorruptions


def _seconds(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images")
    parser.add_argument("--device", default=None, help="default: CUDA if available, else CPU")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    n_large, n_small, repeats = (4, 500, 1) if args.quick else (16, 5000, 2)
    rng = np.random.default_rng(0)
    # smooth random images (not white noise): blurs and JPEG see image-like content
    base = rng.integers(0, 256, size=(n_large, 28, 28, 3)).astype(np.uint8)
    large = np.stack(
        [np.kron(b, np.ones((8, 8, 1), dtype=np.uint8)) for b in base]
    )  # (N, 224, 224, 3)
    large_t = torch.from_numpy(large).permute(0, 3, 1, 2).contiguous().to(device)
    small_t = torch.from_numpy(rng.integers(0, 256, size=(n_small, 3, 32, 32)).astype(np.uint8))
    small_t = small_t.to(device)
    peer = _peer()
    rows: dict[str, dict] = {}
    peer_total = ours_total = 0.0
    for name in CORRUPTIONS:
        gen = torch.Generator().manual_seed(0)
        corrupt(large_t[:1], name, SEVERITY, "imagenet", gen)  # one-off work: frost textures
        corrupt(small_t[:1], name, SEVERITY, "cifar", gen)
        ours = _seconds(lambda n=name, g=gen: corrupt(large_t, n, SEVERITY, "imagenet", g), repeats)
        ours /= n_large
        cifar = _seconds(lambda n=name, g=gen: corrupt(small_t, n, SEVERITY, "cifar", g), repeats)
        row = {"ours_ms_per_image_224": 1e3 * ours, "ours_images_per_s_32": n_small / cifar}
        if peer is not None:
            try:
                np.random.seed(0)

                def one_by_one(n=name):
                    return [peer.corrupt(im, corruption_name=n, severity=SEVERITY) for im in large]

                t = _seconds(one_by_one, repeats) / n_large
                row.update(peer_ms_per_image_224=1e3 * t, speedup=t / ours)
                peer_total += t
                ours_total += ours
            except Exception as err:  # the peer's own failures on numpy 2 / scikit-image 0.26
                row["peer_failed"] = f"{type(err).__name__}: {str(err)[:60]}"
        rows[name] = row
        peer_text = (
            f"peer {row['peer_ms_per_image_224']:.1f} ms, speedup {row['speedup']:.1f}x"
            if "speedup" in row
            else f"peer failed ({row.get('peer_failed', 'not installed')})"
        )
        print(
            f"{name:>18}: ours {row['ours_ms_per_image_224']:.2f} ms/image at 224 px, "
            f"{row['ours_images_per_s_32']:,.0f} images/s at 32 px; {peer_text}"
        )
    speedups = [r["speedup"] for r in rows.values() if "speedup" in r]
    ratios = {}
    if speedups:
        ratios = {
            "speedup_vs_imagecorruptions": peer_total / ours_total,
            "min_speedup_vs_imagecorruptions": min(speedups),
        }
    print(
        json.dumps(
            {
                "device": str(device),
                "threads": torch.get_num_threads(),
                "severity": SEVERITY,
                "images_224": n_large,
                "images_32": n_small,
                "corruptions": rows,
                "ratios": ratios,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
