"""One training loop and the controllers that steer it."""

from landscape.train.controller import Controller, FixedMask, LoopState
from landscape.train.distill import (
    DistilledSet,
    DistillSpec,
    distill,
    distribution_matching_loss,
    evaluate_distilled,
    gradient_distance,
    matching_loss,
    summarize_distilled,
    trajectory_matching_loss,
)
from landscape.train.imp import (
    Level,
    imp,
    one_shot,
    random_at_density,
    random_control,
    reinit_control,
    train_masked,
)
from landscape.train.loop import Run, TrainingDiverged, build_model, load_splits, run_key, train
from landscape.train.spawn import child_spec, spawn

__all__ = [
    "Controller",
    "DistillSpec",
    "DistilledSet",
    "FixedMask",
    "Level",
    "LoopState",
    "Run",
    "TrainingDiverged",
    "build_model",
    "child_spec",
    "distill",
    "distribution_matching_loss",
    "evaluate_distilled",
    "gradient_distance",
    "imp",
    "load_splits",
    "matching_loss",
    "one_shot",
    "random_at_density",
    "random_control",
    "reinit_control",
    "run_key",
    "spawn",
    "summarize_distilled",
    "train",
    "train_masked",
    "trajectory_matching_loss",
]
