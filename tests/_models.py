"""Models the tests register, importable by spawned worker processes (which skip conftest)."""

from __future__ import annotations

from math import prod

from torch import nn

from landscape.models import list_models, register_model


def dropout_mlp(num_classes: int, in_shape: tuple[int, ...], p: float = 0.0) -> nn.Module:
    """An MLP with dropout, to check that stochastic layers are seeded per step."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(prod(in_shape), 16),
        nn.ReLU(),
        nn.Dropout(p),
        nn.Linear(16, num_classes),
    )


def register() -> None:
    """Register the test models once per process."""
    if "test-dropout-mlp" not in list_models():
        register_model("test-dropout-mlp")(dropout_mlp)
