"""Masks, sparsity distributions and pruning."""

from landscape.sparse.distributions import DISTRIBUTIONS, check_density, layer_densities
from landscape.sparse.flops import forward_flops, layer_flops, layer_positions
from landscape.sparse.masks import (
    Masks,
    apply_masks,
    check_masks,
    density,
    full_masks,
    hamming_distance,
    intersection,
    jaccard_distance,
    layer_density,
    load_masks,
    mask_digest,
    prunable_parameters,
    save_masks,
    union,
)
from landscape.sparse.pruning import (
    SCOPES,
    check_scope,
    magnitude_prune,
    random_masks,
    random_prune,
    shuffle_masks,
)

__all__ = [
    "DISTRIBUTIONS",
    "SCOPES",
    "Masks",
    "apply_masks",
    "check_density",
    "check_scope",
    "check_masks",
    "density",
    "forward_flops",
    "full_masks",
    "hamming_distance",
    "intersection",
    "jaccard_distance",
    "layer_densities",
    "layer_density",
    "layer_flops",
    "layer_positions",
    "load_masks",
    "magnitude_prune",
    "mask_digest",
    "prunable_parameters",
    "random_masks",
    "random_prune",
    "save_masks",
    "shuffle_masks",
    "union",
]
