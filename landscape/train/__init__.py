"""One training loop and the controllers that steer it."""

from landscape.train.controller import Controller, FixedMask, LoopState
from landscape.train.loop import Run, TrainingDiverged, build_model, load_splits, run_key, train
from landscape.train.spawn import child_spec, spawn

__all__ = [
    "Controller",
    "FixedMask",
    "LoopState",
    "Run",
    "TrainingDiverged",
    "build_model",
    "child_spec",
    "load_splits",
    "run_key",
    "spawn",
    "train",
]
