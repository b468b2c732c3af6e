"""Masks, sparsity distributions and pruning."""

from landscape.sparse.masks import (
    Masks,
    apply_masks,
    check_masks,
    density,
    mask_digest,
    prunable_parameters,
    random_masks,
)

__all__ = [
    "Masks",
    "apply_masks",
    "check_masks",
    "density",
    "mask_digest",
    "prunable_parameters",
    "random_masks",
]
