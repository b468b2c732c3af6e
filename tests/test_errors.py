"""The table of bad inputs: every one ends in one `LandscapeError` that says what to do.

Each new command or public function adds its rows here: the Python API in ``API_CASES``
(a call that must raise, and a pattern its message must match), the command line in
``CLI_CASES`` (arguments that must print one ``landscape <cmd>: error:`` line, exit 2).
The inputs the library accepts instead of refusing (runs, run directories, numpy arrays,
int32 labels, user model files) are checked at the end.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from landscape.analysis import (
    align,
    barriers,
    evaluate,
    hessian_diagonal,
    hessian_eigenvalues,
    hessian_spectrum,
    hessian_trace,
    interpolate,
    interpolate_state,
    permute,
    permute_masks,
    predict,
    random_permutations,
    register_permutation_spec,
    weight_matching,
)
from landscape.analysis.surface import plane, random_direction, surface
from landscape.cli import main
from landscape.data import BatchIterator, DatasetInfo, Split, get_dataset, normalize, read_idx
from landscape.devices import resolve_device
from landscape.errors import LandscapeError
from landscape.io import (
    load_checkpoint,
    load_weights,
    read_json,
    read_rows,
    save_checkpoint,
    write_json,
    write_rows,
)
from landscape.models import create_model
from landscape.plot import barrier_vs_rewind, save_figure
from landscape.sparse import apply_masks, random_masks, save_masks
from landscape.specs import DataSpec, ModelSpec, RunSpec, Seeds, TrainSpec
from landscape.train import (
    EDST,
    SET,
    Controller,
    FixedMask,
    GraNet,
    RigL,
    dense_ensemble,
    dst_ensemble,
    edst_spec,
    make_dst,
    spawn,
    train,
)

USER_MODEL = '''
from torch import nn


class TinyNet(nn.Module):
    """A user's own architecture: its keys match no registry model."""

    def __init__(self, num_classes, hidden=8):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(12, hidden), nn.ReLU())
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.out(self.body(x))


class WrongIn(nn.Module):
    """Built for 7 features; the test data has 12."""

    def __init__(self, num_classes):
        super().__init__()
        self.fc = nn.Linear(7, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


class TwoOut(nn.Module):
    """Ignores num_classes: two outputs for four classes."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 2)

    def forward(self, x):
        return self.fc(x.flatten(1))


class NotAModel:
    pass


def broken():
    raise ValueError("boom")
'''


def _spec(**train_kw) -> RunSpec:
    kw = dict(lr=0.05, steps=6, batch_size=32, checkpoint_steps=(2,))
    kw.update(train_kw)
    return RunSpec(
        data=DataSpec("test-blobs"),
        model=ModelSpec("mlp", {"widths": [8]}),
        train=TrainSpec(**kw),
    )


def _mlp(seed: int = 0, classes: int = 4) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, classes))


def _bn() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.Linear(8, 4))


def _xy(n: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 12, generator=g), torch.randint(0, 4, (n,), generator=g)


class _TupleOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        return self.fc(x.flatten(1)), x


@pytest.fixture(scope="module")
def w(tmp_path_factory) -> SimpleNamespace:
    """Files and runs the cases point at, made once for the module."""
    root = tmp_path_factory.mktemp("errors")
    runs = root / "runs"
    run = train(_spec(), runs, progress=False)
    (root / "notes.txt").write_text("not a checkpoint\n")
    (root / "line.json").write_text(json.dumps({"alphas": [0, 1]}))
    (root / "empty.pt").write_bytes(b"")
    np.save(root / "array.npy", np.zeros(3))
    (root / "empty_dir").mkdir()
    (root / "a_file").write_text("x")
    (root / "binary.csv").write_bytes(b"\xff\xfe\x00\x01" * 10)
    (root / "bad.json").write_text("{")
    write_rows(root / "other.csv", [{"step": 1, "test_loss": 0.3}])
    (root / "user_models.py").write_text(USER_MODEL)
    (root / "short.csv").write_text("rewind_step,error_barrier,network\n0,0.1\n")
    (root / "header.csv").write_text("rewind_step,error_barrier,network\n")
    os.mkfifo(root / "fifo")
    (root / "renamed").mkdir()
    shutil.copytree(run.dir, root / "renamed" / "my-best-run")
    torch.save({"format": "landscape-checkpoint/1", "meta": {}}, root / "malformed.pt")
    save_masks(root / "other_masks.pt", {"fc9.weight": torch.ones(3, 3, dtype=torch.bool)})
    torch.save(_dropout_mlp().state_dict(), root / "dropout_mlp.pt")  # a family with no spec
    return SimpleNamespace(
        root=root,
        runs=runs,
        run=run,
        ckpt=str(run.checkpoint_path(6)),
        spec=_spec(),
        x=_xy()[0],
        y=_xy()[1],
    )


_NO_CUDA = not torch.cuda.is_available()

# (id, call, pattern the message must match)
API_CASES = [
    # evaluation: models, data, labels, shapes
    ("eval-state-dict", lambda w: evaluate(_mlp().state_dict(), (w.x, w.y)), "state_dict"),
    ("eval-path", lambda w: evaluate(w.ckpt, (w.x, w.y)), "is a path, not a model"),
    ("eval-int", lambda w: evaluate(3, (w.x, w.y)), "must be a torch.nn.Module"),
    ("eval-uint8", lambda w: evaluate(_mlp(), ((w.x * 9).byte(), w.y)), r"uint8.*/ 255"),
    ("eval-float-labels", lambda w: evaluate(_mlp(), (w.x, w.y.float())), "integer class"),
    ("eval-bool-labels", lambda w: evaluate(_mlp(), (w.x, w.y > 1)), "integer class"),
    ("eval-labels-high", lambda w: evaluate(_mlp(), (w.x, w.y + 4)), r"span 4\.\.7.*4 outputs"),
    ("eval-labels-negative", lambda w: evaluate(_mlp(), (w.x, w.y - 9)), "labels span -9"),
    ("eval-shape", lambda w: evaluate(_mlp(), (w.x[..., :5], w.y)), r"inputs of shape \(10, 1, 5"),
    ("eval-lengths", lambda w: evaluate(_mlp(), (w.x, w.y[:4])), "labels y of shape"),
    ("eval-tuple-out", lambda w: evaluate(_TupleOut(), (w.x, w.y)), r"logits of shape"),
    ("eval-batch-zero", lambda w: evaluate(_mlp(), (w.x, w.y), batch_size=0), "batch_size"),
    ("eval-batch-float", lambda w: evaluate(_mlp(), (w.x, w.y), batch_size=2.5), "batch_size"),
    ("eval-string-data", lambda w: evaluate(_mlp(), "mnist1d"), "cannot evaluate on a str"),
    ("eval-dict-data", lambda w: evaluate(_mlp(), {"x": w.x}), "cannot evaluate on a dict"),
    ("eval-bad-batch", lambda w: evaluate(_mlp(), [w.x]), "must be an \\(x, y\\) pair"),
    ("eval-mixed-dtype", lambda w: evaluate(_mixed(), (w.x, w.y)), "mix dtypes"),
    ("predict-state-dict", lambda w: predict({"w": w.x}, (w.x, w.y)), "state_dict"),
    ("predict-labels", lambda w: predict(_mlp(), (w.x, w.y + 10)), "labels span"),
    # interpolation
    ("interp-points-float", lambda w: interpolate(_mlp(0), _mlp(1), (w.x, w.y), points=2.5), "points"),
    ("interp-points-bool", lambda w: interpolate(_mlp(0), _mlp(1), (w.x, w.y), points=True), "points"),
    ("interp-points-one", lambda w: interpolate(_mlp(0), _mlp(1), (w.x, w.y), points=1), ">= 2"),
    ("interp-alphas-str", lambda w: interpolate(_mlp(0), _mlp(1), (w.x, w.y), alphas="01"), "sequence"),
    ("interp-alphas-nan", lambda w: interpolate(_mlp(0), _mlp(1), (w.x, w.y), alphas=[0, math.nan, 1]), r"alphas\[1\]"),
    ("interp-alphas-empty", lambda w: interpolate(_mlp(0), _mlp(1), (w.x, w.y), alphas=[]), "empty"),
    ("interp-no-ends", lambda w: interpolate(_mlp(0), _mlp(1), (w.x, w.y), alphas=[0.5]), "include 0 and 1"),
    ("interp-batch", lambda w: interpolate(_mlp(0), _mlp(1), (w.x, w.y), batch_size=-1), "batch_size"),
    ("interp-chunk", lambda w: interpolate(_mlp(0), _mlp(1), (w.x, w.y), alpha_chunk=0), "alpha_chunk"),
    ("interp-bn-batch", lambda w: interpolate(_mlp(0), _mlp(1), (w.x, w.y), bn_batch_size=0), "bn_batch_size"),
    ("interp-dtypes", lambda w: interpolate(_mlp(0), _mlp(1).double(), (w.x, w.y)), r"float32 weights but model_b torch\.float64"),
    ("interp-state-dict", lambda w: interpolate(_mlp(0), _mlp(1).state_dict(), (w.x, w.y)), "model_b is a dict"),
    ("interp-architecture", lambda w: interpolate(_mlp(0), _mlp(1, 5), (w.x, w.y)), "differ in architecture"),
    ("interp-bn-data", lambda w: interpolate(_bn(), _bn(), (w.x, w.y)), "pass train_data"),
    ("interp-uint8", lambda w: interpolate(_mlp(0), _mlp(1), (w.x.byte(), w.y)), "uint8"),
    ("interp-labels", lambda w: interpolate(_mlp(0), _mlp(1), (w.x, w.y + 3)), "labels span"),
    ("interp-shape", lambda w: interpolate(_mlp(0), _mlp(1), (w.x[..., :5], w.y)), "cannot run on inputs"),
    ("surface-dirs", lambda w: surface(_mlp(), (w.x, w.y), [{}, {}, {}]), "one or two directions"),
    ("surface-dir-name", lambda w: surface(_mlp(), (w.x, w.y), [{"nope": w.x}]), "not a parameter"),
    ("surface-dir-shape", lambda w: surface(_mlp(), (w.x, w.y), [{"1.weight": w.x}]), "must be a tensor of shape"),
    ("surface-ys", lambda w: surface(_mlp(), (w.x, w.y), [{}], ys=[0.0]), "second direction"),
    ("surface-span", lambda w: surface(_mlp(), (w.x, w.y), [{}], span=-1), "span"),
    ("surface-bn-data", lambda w: surface(_bn(), (w.x, w.y), [{}]), "train_data"),
    ("surface-empty", lambda w: surface(_mlp(), (w.x[:0], w.y[:0]), [{}]), "empty data"),
    ("surface-shape", lambda w: surface(_mlp(), (w.x[..., :5], w.y), [{}]), "cannot run on inputs"),
    ("direction-norm", lambda w: random_direction(_mlp(), normalization="unit"), "unknown normalization"),
    ("direction-generator", lambda w: random_direction(_mlp(), generator="0"), "generator must be"),
    ("direction-vectors", lambda w: random_direction(_mlp(), keep_vectors=1), "keep_vectors must be"),
    ("plane-same", lambda w: plane(_mlp(0), _mlp(0), _mlp(1)), "same point"),
    ("plane-arch", lambda w: plane(_mlp(0), _mlp(1, 5), _mlp(2)), "differ in architecture"),
    ("hessian-method", lambda w: hessian_diagonal(_mlp(), (w.x, w.y), "lanczos"), "unknown Hessian diagonal method"),
    ("hessian-probes-exact", lambda w: hessian_diagonal(_mlp(), (w.x, w.y), "exact", probes=5), "probes= is for Hutchinson"),
    ("hessian-probes-zero", lambda w: hessian_diagonal(_mlp(), (w.x, w.y), "hutchinson", probes=0), "probes must be"),
    ("hessian-block", lambda w: hessian_diagonal(_mlp(), (w.x, w.y), block=0), "block must be"),
    ("hessian-batches", lambda w: hessian_diagonal(_mlp(), (w.x, w.y), batches=0), "batches must be"),
    ("hessian-generator", lambda w: hessian_diagonal(_mlp(), (w.x, w.y), "hutchinson", generator=0), "generator must be"),
    ("hessian-masks-arch", lambda w: hessian_diagonal(_mlp(), (w.x, w.y), masks={"9.weight": torch.ones(2)}), "lacks"),
    ("hessian-frozen", lambda w: hessian_diagonal(_mlp().requires_grad_(False), (w.x, w.y)), "no parameters that require a gradient"),
    ("hessian-empty", lambda w: hessian_diagonal(_mlp(), (w.x[:0], w.y[:0])), "empty"),
    ("hessian-uint8", lambda w: hessian_diagonal(_mlp(), (w.x.byte(), w.y)), "uint8"),
    ("hessian-labels", lambda w: hessian_diagonal(_mlp(), (w.x, w.y + 3)), "labels span"),
    ("hessian-shape", lambda w: hessian_diagonal(_mlp(), (w.x[..., :5], w.y)), "cannot run on inputs"),
    ("hessian-state-dict", lambda w: hessian_diagonal(_mlp().state_dict(), (w.x, w.y)), "is a dict"),
    ("hessian-backpack-bn", lambda w: hessian_diagonal(_bn(), (w.x, w.y), "backpack"), "nn.Sequential of the layers"),
    ("hessian-k", lambda w: hessian_eigenvalues(_mlp(), (w.x, w.y), k=1000), "Lanczos needs k <"),
    ("hessian-which", lambda w: hessian_eigenvalues(_mlp(), (w.x, w.y), which="BE"), "which must be"),
    ("hessian-trace-method", lambda w: hessian_trace(_mlp(), (w.x, w.y), "exactly"), "unknown trace method"),
    ("hessian-hutchpp-probes", lambda w: hessian_trace(_mlp(), (w.x, w.y), "hutchpp", probes=10_000), "fewer probes"),
    ("hessian-spectrum-steps", lambda w: hessian_spectrum(_mlp(), (w.x, w.y), lanczos_steps=10_000), "fewer steps"),
    ("interp-state-keys", lambda w: interpolate_state({"a": w.x}, {"b": w.x}, 0.5), "different entries"),
    ("interp-state-alpha", lambda w: interpolate_state({"a": w.x}, {"a": w.x}, "half"), "alpha must be a number"),
    ("barriers-lengths", lambda w: barriers([0, 1], [0.1]), "one value per alpha"),
    ("barriers-text", lambda w: barriers(["a", "b"], [0.1, 0.2]), "sequences of numbers"),
    ("interp-empty", lambda w: interpolate(_mlp(0), _mlp(1), (w.x[:0], w.y[:0])), "empty data"),
    ("interp-nan-weights", lambda w: interpolate(_nan_mlp(), _mlp(1), (w.x, w.y)), "non-finite weights"),
    ("interp-meta", lambda w: interpolate(_meta_mlp(), _meta_mlp(), (w.x, w.y)), "meta device"),
    ("interp-bn-single", lambda w: interpolate(_bn(), _bn(), (w.x, w.y), train_data=_xy(129)), "a single one"),
    ("interp-bn-empty", lambda w: interpolate(_bn(), _bn(), (w.x, w.y), train_data=_xy(0)), "train_data is empty"),
    ("interp-bn-reset-text", lambda w: interpolate(_mlp(0), _mlp(1), (w.x, w.y), bn_reset="no"), "bn_reset must be"),
    ("interp-state-shape", lambda w: interpolate_state({"a": w.x}, {"a": w.y}, 0.5), "shape or dtype"),
    ("interp-state-list", lambda w: interpolate_state([w.x], [w.x], 0.5), "two state_dicts"),
    # permutation alignment (weight matching)
    ("align-family", lambda w: align(_mlp(0), _mlp(1)), r"no permutation spec for Sequential: weight matching supports mlp, lenet300-100, conv1d, convnet, vgg11, vgg16, resnet20"),
    ("align-architecture", lambda w: align(_net("mlp", widths=[8]), _net("mlp", widths=[6])), "differ in architecture"),
    ("align-classes", lambda w: align(_net("mlp"), _net("conv1d", (1, 12))), "model_a is a MLP but model_b a Conv1dNet"),
    ("align-groups", lambda w: align(_net("convnet", (1, 8, 8), width=8, norm="group"), _net("convnet", (1, 8, 8), width=8)), "different permutation specs"),
    ("align-generator", lambda w: align(_net("mlp"), _net("mlp"), generator=0), "generator must be"),
    ("align-max-iter", lambda w: weight_matching(_net("mlp"), _net("mlp"), max_iter=0), "max_iter must be"),
    ("align-nan", lambda w: align(_net("mlp", nan=True), _net("mlp")), "non-finite weights"),
    ("align-masks-arch", lambda w: align(_net("mlp"), _net("mlp"), masks_b={"9.weight": torch.ones(2)}), "lacks"),
    ("align-state-dict", lambda w: align(_net("mlp"), _net("mlp").state_dict()), "model_b is a dict"),
    ("permute-not-dict", lambda w: permute(_net("mlp"), [torch.arange(8)]), "perms must be a dict"),
    ("permute-missing", lambda w: permute(_net("mlp"), {}), r"missing \['fc1'\]"),
    ("permute-not-perm", lambda w: permute(_net("mlp"), {"fc1": torch.zeros(8, dtype=torch.long)}), r"not a permutation of 0\.\.7: it repeats"),
    ("permute-float", lambda w: permute(_net("mlp"), {"fc1": torch.arange(8.0)}), r"integer tensor of shape \(8,\).*torch\.float32"),
    ("permute-groups", lambda w: permute(_net("convnet", (1, 8, 8), width=8, depth=1, norm="group"), {"conv1": torch.tensor([2, 1, 0, 3, 4, 5, 6, 7])}), "between GroupNorm groups"),
    ("permute-module", lambda w: permute(3, {}), "needs an nn.Module"),
    ("permute-masks-shape", lambda w: permute_masks(_net("mlp"), {"fc1.weight": torch.ones(2, dtype=torch.bool)}, {"fc1": torch.arange(8)}), "has shape"),
    ("permute-random-generator", lambda w: random_permutations(_net("mlp"), generator="seed"), "generator must be"),
    ("permute-register", lambda w: register_permutation_spec("mlp"), "needs an nn.Module class"),
    ("interp-align-text", lambda w: interpolate(_mlp(0), _mlp(1), (w.x, w.y), align="yes"), "align must be True or False"),
    ("interp-align-family", lambda w: interpolate(_mlp(0), _mlp(1), (w.x, w.y), align=True), "no permutation spec"),
    ("eval-meta", lambda w: evaluate(_meta_mlp(), (w.x, w.y)), "meta device"),
    # checkpoints and tables
    ("ckpt-text", lambda w: load_checkpoint(w.root / "notes.txt"), r"not a PyTorch checkpoint \(it starts like a text"),
    ("ckpt-json", lambda w: load_checkpoint(w.root / "line.json"), r"not a PyTorch checkpoint \(it is a JSON"),
    ("ckpt-npy", lambda w: load_checkpoint(w.root / "array.npy"), "numpy"),
    ("ckpt-empty", lambda w: load_checkpoint(w.root / "empty.pt"), "it is empty"),
    ("ckpt-missing", lambda w: load_checkpoint(w.root / "nope.pt"), "does not exist"),
    ("ckpt-empty-dir", lambda w: load_checkpoint(w.root / "empty_dir"), "without checkpoints"),
    ("ckpt-not-path", lambda w: load_checkpoint(3), "must be a string or a Path"),
    ("weights-into-dict", lambda w: load_weights({}, w.ckpt), "needs the model to load into"),
    ("weights-from-int", lambda w: load_weights(_mlp(), 3), "cannot load weights from a int"),
    ("weights-misfit", lambda w: load_weights(_mlp(), _bn().state_dict()), "do not fit"),
    ("save-not-model", lambda w: save_checkpoint(w.root / "c.pt", 3), "needs a model or a state_dict"),
    ("save-onto-dir", lambda w: save_checkpoint(w.root / "empty_dir", _mlp()), "is a directory"),
    ("save-under-file", lambda w: save_checkpoint(w.root / "a_file" / "c.pt", _mlp()), "cannot write"),
    ("rows-missing", lambda w: read_rows(w.root / "nope.csv"), "does not exist"),
    ("rows-dir", lambda w: read_rows(w.root / "empty_dir"), "is a directory"),
    ("rows-binary", lambda w: read_rows(w.root / "binary.csv"), "not a CSV"),
    ("rows-write", lambda w: write_rows(w.root / "r.csv", [1, 2]), "rows as dicts"),
    ("json-missing", lambda w: read_json(w.root / "nope.json"), "does not exist"),
    ("json-invalid", lambda w: read_json(w.root / "notes.txt"), "not valid JSON"),
    ("rows-short", lambda w: read_rows(w.root / "short.csv"), "line 2 has fewer cells"),
    ("write-fifo", lambda w: write_json(w.root / "fifo", {}), "not a regular file"),
    ("write-json-object", lambda w: write_json(w.root / "x.json", {"p": object()}), "as JSON"),
    ("ckpt-malformed", lambda w: load_checkpoint(w.root / "malformed.pt"), "malformed"),
    ("ckpt-save-path-object", lambda w: save_checkpoint(w.root / "c.pt", _mlp(), meta={"p": Path("x")}), r"\['meta'\]\['p'\].*PosixPath"),
    ("weights-list-values", lambda w: load_weights(_mlp(), {"1.weight": [[1.0]]}), "non-tensor entries"),
    ("idx-folder", lambda w: read_idx(w.root / "empty_dir"), "is a folder"),
    # models
    ("model-unknown", lambda w: create_model("nope"), "unknown model 'nope'.*file.py:ClassName"),
    ("model-name-type", lambda w: create_model(3), "must be a string"),
    ("model-classes", lambda w: create_model("mlp", num_classes=0), "num_classes"),
    ("model-option", lambda w: create_model("mlp", depth=3), "does not take option"),
    ("model-file-missing", lambda w: create_model(f"{w.root}/none.py:Net"), "does not exist"),
    ("model-file-attr", lambda w: create_model(f"{w.root}/user_models.py:Nope"), "classes are: TinyNet"),
    ("model-file-kwargs", lambda w: create_model(f"{w.root}/user_models.py:TinyNet", width=3), "signature is TinyNet"),
    ("model-file-not-module", lambda w: create_model(f"{w.root}/user_models.py:NotAModel"), "not a torch.nn.Module"),
    ("model-file-raises", lambda w: create_model(f"{w.root}/user_models.py:broken"), "ValueError: boom"),
    ("model-module-missing", lambda w: create_model("no_such_pkg.models:Net"), "no module named"),
    ("model-file-folder", lambda w: create_model(f"{w.root}:Net"), "is a folder"),
    ("model-tv-option", lambda w: create_model("tv:resnet18", replace_stride_with_dilation=[True]), "does not accept"),
    # data
    ("data-unknown", lambda w: get_dataset("nope"), "valid names are"),
    ("data-name-type", lambda w: get_dataset(["mnist1d"]), "unknown dataset"),
    ("data-split", lambda w: get_dataset("test-blobs", split="val"), "unknown split"),
    ("data-root-file", lambda w: get_dataset("mnist1d", root=w.root / "a_file"), "is a file"),
    ("split-numpy", lambda w: Split(w.x.numpy(), w.y, get_dataset("test-blobs").info), "torch.as_tensor"),
    ("split-subset", lambda w: get_dataset("test-blobs").subset(-5), "subset size"),
    ("split-labels", lambda w: Split(w.x, w.y + 10, get_dataset("test-blobs").info), r"labels span 10\.\.13.*count from 1"),
    ("info-classes", lambda w: DatasetInfo("d", "4", (1, 12), (0.0,), (1.0,), tuple("abcd")), "num_classes"),
    ("info-shape", lambda w: DatasetInfo("d", 4, 12, (0.0,), (1.0,), tuple("abcd")), "in_shape"),
    ("normalize-numpy", lambda w: normalize(w.x.numpy(), get_dataset("test-blobs").info), "expected a tensor"),
    ("mnist1d-root", lambda w: get_dataset("mnist1d", root=w.root / "nowhere"), "not a folder"),
    ("batches-index", lambda w: BatchIterator(get_dataset("test-blobs"), 8).batch(0, 2.5), "batch index"),
    ("batches-epoch", lambda w: BatchIterator(get_dataset("test-blobs"), 8).batch("0", 0), "epoch must be a whole number"),
    ("batches-start", lambda w: next(BatchIterator(get_dataset("test-blobs"), 8).epoch(0, start=-3)), "start"),
    ("split-device", lambda w: get_dataset("test-blobs").to("gpu"), "unknown device"),
    ("batches-size", lambda w: BatchIterator(get_dataset("test-blobs"), 2.5), "batch_size"),
    ("batches-augment", lambda w: BatchIterator(get_dataset("test-blobs"), 8, augment=("rot",)), "unknown augmentation"),
    ("batches-crop-1d", lambda w: BatchIterator(get_dataset("test-blobs"), 8, augment=("crop",)), "2-D images"),
    ("batches-split", lambda w: BatchIterator((w.x, w.y), 8), "needs a landscape.data.Split"),
    # specs
    ("spec-lr-text", lambda w: TrainSpec(lr="abc"), "TrainSpec.lr must be a number"),
    ("spec-lr-zero", lambda w: TrainSpec(lr=0), "lr must be positive"),
    ("spec-steps-float", lambda w: TrainSpec(steps=1.5), "TrainSpec.steps must be a whole number"),
    ("spec-steps-zero", lambda w: TrainSpec(steps=0), "TrainSpec.steps"),
    ("spec-momentum", lambda w: TrainSpec(momentum=-0.5), "TrainSpec.momentum"),
    ("spec-nesterov", lambda w: TrainSpec(nesterov="yes"), "nesterov"),
    ("spec-ckpt-negative", lambda w: TrainSpec(checkpoint_steps=[-1]), "checkpoint_steps"),
    ("spec-ckpt-text", lambda w: TrainSpec(checkpoint_steps="5"), "list of steps"),
    ("spec-ckpt-beyond", lambda w: TrainSpec(steps=10, checkpoint_steps=[20]), "outside the run"),
    ("spec-warmup", lambda w: TrainSpec(steps=10, warmup_steps=20), "warmup_steps"),
    ("spec-optimizer", lambda w: TrainSpec(optimizer="rmsprop"), "unknown optimizer"),
    ("spec-schedule", lambda w: TrainSpec(schedule=3), "unknown schedule"),
    ("spec-seed-text", lambda w: Seeds(init_seed="x"), "init_seed"),
    ("spec-seed-negative", lambda w: Seeds(noise_seed=-1), "noise_seed"),
    ("spec-data-name", lambda w: DataSpec(name=3), "DataSpec.name"),
    ("spec-augment", lambda w: DataSpec(augment=[1]), "DataSpec.augment"),
    ("spec-model-kwargs", lambda w: ModelSpec("mlp", kwargs=[1, 2]), "ModelSpec.kwargs"),
    ("spec-from-dict-key", lambda w: RunSpec.from_dict({"train": {"nope": 1}}), "does not describe a run"),
    ("spec-from-dict-type", lambda w: RunSpec.from_dict({"train": "fast"}), "does not describe a run"),
    ("spec-nesterov-adam", lambda w: TrainSpec(optimizer="adam", nesterov=True), "nesterov needs"),
    ("spec-nesterov-still", lambda w: TrainSpec(momentum=0, nesterov=True), "nesterov needs"),
    ("spec-momentum-one", lambda w: TrainSpec(momentum=1.0), "below 1"),
    ("spec-milestones-cosine", lambda w: TrainSpec(milestones=[5]), "only apply to schedule='step'"),
    ("spec-milestones-late", lambda w: TrainSpec(schedule="step", steps=10, milestones=[50]), "beyond"),
    ("spec-model-classes", lambda w: ModelSpec("mlp", {"num_classes": 3}), "come from the dataset"),
    ("spec-run-parts", lambda w: RunSpec(data="mnist1d"), "RunSpec.data must be a DataSpec"),
    # training and spawning
    ("train-spec-type", lambda w: train({"steps": 3}, w.runs), "needs a landscape.specs.RunSpec"),
    ("train-device-index", lambda w: train(_spec(steps=3), w.runs, device="cuda:99"), "cuda"),
    ("train-device-name", lambda w: train(_spec(steps=3), w.runs, device="gpu"), "unknown device"),
    ("train-resume-every", lambda w: train(_spec(steps=3), w.runs, resume_every=-1), "resume_every"),
    ("train-stop-at", lambda w: train(_spec(steps=3), w.runs, stop_at=1.5), "stop_at"),
    ("train-controller", lambda w: train(_spec(steps=3), w.runs, controllers=[object()]), "Controller instances"),
    ("train-controller-names", lambda w: train(_spec(steps=3), w.runs, controllers=[Controller(), Controller()]), "share a name"),
    ("train-data", lambda w: train(_spec(steps=3), w.runs, data=(w.x, w.y)), r"\(train, test\) pair"),
    ("train-root-file", lambda w: train(_spec(steps=3), w.root / "a_file"), "is a file"),
    ("train-batch", lambda w: train(_spec(steps=3, batch_size=1000), w.runs), "exceeds"),
    ("train-other-data", lambda w: train(_spec(steps=3), w.runs, data=(get_dataset("test-images"),) * 2), "the data given is 'test-images'"),
    ("train-model-input", lambda w: train(_user_spec(w, "WrongIn"), w.runs), "cannot run on inputs of shape"),
    ("train-model-outputs", lambda w: train(_user_spec(w, "TwoOut"), w.runs), "2 outputs"),
    ("spawn-last-step", lambda w: spawn(w.spec, 6, [1, 2], w.runs), "last step"),
    ("spawn-factory", lambda w: spawn(w.spec, 2, [1, 2], w.runs, controllers_factory=FixedMask), "controllers_factory"),
    ("run-step", lambda w: w.run.load_model(step=3), "no checkpoint at step 3"),
    ("spawn-no-seeds", lambda w: spawn(w.spec, 2, [], w.runs), "noise_seeds is empty"),
    ("spawn-same-seeds", lambda w: spawn(w.spec, 2, [1, 1], w.runs), "must differ"),
    ("spawn-seeds-text", lambda w: spawn(w.spec, 2, "12", w.runs), "list of seeds"),
    ("spawn-step", lambda w: spawn(w.spec, 3, [1, 2], w.runs), "no checkpoint at step 3"),
    ("spawn-step-negative", lambda w: spawn(w.spec, -2, [1, 2], w.runs), "step must be"),
    # masks
    ("mask-density-zero", lambda w: random_masks(_mlp(), 0, torch.Generator()), "density"),
    ("mask-density-text", lambda w: random_masks(_mlp(), "half", torch.Generator()), "density"),
    ("mask-generator", lambda w: random_masks(_mlp(), 0.5, 0), "torch.Generator"),
    ("mask-shape", lambda w: apply_masks(_mlp(), {"1.weight": torch.ones(3, 3).bool()}), "another architecture"),
    ("mask-name", lambda w: apply_masks(_mlp(), {"9.weight": torch.ones(3).bool()}), "lacks"),
    ("fixed-mask-type", lambda w: FixedMask([1, 2]), "dict of parameter name"),
    # dynamic sparse training and ensembles
    ("dst-method", lambda w: make_dst("snip"), "unknown DST method 'snip'"),
    ("dst-option", lambda w: make_dst("rigl", densty=0.2), "bad options for rigl"),
    ("dst-drop", lambda w: RigL(0.2, drop_fraction=1.5), "drop_fraction"),
    ("dst-density", lambda w: SET(0), "density"),
    ("dst-interval", lambda w: SET(0.2, update_every=0), "update_every"),
    ("dst-distribution", lambda w: SET(0.2, distribution="erdos"), "unknown distribution"),
    ("dst-decay", lambda w: SET(0.2, decay="linear"), "unknown decay"),
    ("dst-end-step", lambda w: train(_spec(steps=3), w.runs, controllers=[SET(0.5, end_step=9)]), "beyond the run"),
    ("granet-init", lambda w: GraNet(0.5, init_density=0.3), "init_density"),
    ("edst-length", lambda w: train(_spec(steps=3), w.runs, controllers=[EDST(0.5, explore_steps=2, phase_steps=2)]), "must last 8 steps"),
    ("edst-large-drop", lambda w: EDST(0.5, explore_steps=2, phase_steps=2, large_drop=1), "large_drop"),
    ("edst-refine", lambda w: edst_spec(_spec(), 2, explore_steps=2, phase_steps=2, refine_factors=[0.1]), "refine_factors"),
    ("ensemble-members", lambda w: dense_ensemble(_spec(steps=3), 0, w.runs), "members"),
    ("ensemble-dst-method", lambda w: dst_ensemble(_spec(steps=3), "snip", 2, w.runs), "unknown DST method"),
    # devices and plots
    ("device-index", lambda w: resolve_device("cuda:99"), "cuda"),
    ("device-name", lambda w: resolve_device("gpu"), "unknown device"),
    ("device-type", lambda w: resolve_device(2.5), "must be a string"),
    ("plot-columns", lambda w: barrier_vs_rewind([{"rewind_step": 0}]), "lack the column"),
    ("plot-rows-type", lambda w: barrier_vs_rewind("barriers.csv"), "read_rows"),
    ("plot-rows-numeric", lambda w: barrier_vs_rewind([{"rewind_step": 0, "error_barrier": "x", "network": "n"}]), "must hold numbers"),
    ("plot-save-under-file", lambda w: _save_under(w.root / "a_file" / "fig"), "cannot write the figure"),
    ("plot-save-folder", lambda w: _save_under(w.root / "empty_dir"), "file stem"),
    ("plot-save-dot", lambda w: _save_under("."), "file stem"),
    ("plot-empty-table", lambda w: barrier_vs_rewind(read_rows(w.root / "header.csv")), "no rows"),
]  # fmt: skip


if _NO_CUDA:
    API_CASES.append(("device-cuda", lambda w: resolve_device("cuda"), "no usable CUDA GPU"))


def _nan_mlp() -> nn.Module:
    model = _mlp()
    with torch.no_grad():
        model[1].weight[0, 0] = math.nan
    return model


def _net(name: str, in_shape: tuple[int, ...] = (1, 12), nan: bool = False, **kw) -> nn.Module:
    """A registry model for the alignment rows; ``mlp`` defaults to one hidden layer of 8."""
    if name == "mlp":
        kw.setdefault("widths", [8])
    torch.manual_seed(0)
    model = create_model(name, num_classes=4, in_shape=in_shape, **kw)
    if nan:
        with torch.no_grad():
            next(model.parameters())[0, 0] = math.nan
    return model


def _dropout_mlp() -> nn.Module:
    """The layout of the registered ``test-dropout-mlp`` (a plain Sequential)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Dropout(), nn.Linear(16, 4))


def _meta_mlp() -> nn.Module:
    with torch.device("meta"):
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 4))


def _user_spec(w, cls: str) -> RunSpec:
    return _spec(steps=3).replace(model=ModelSpec(f"{w.root}/user_models.py:{cls}"))


def _mixed() -> nn.Module:
    model = _mlp()
    model[3].double()
    return model


def _save_under(stem: Path):
    import matplotlib.pyplot as plt

    return save_figure(plt.figure(), stem)


@pytest.mark.parametrize("call, pattern", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_bad_input_raises_one_clear_error(w, call, pattern):
    with pytest.raises(LandscapeError, match=pattern) as info:
        call(w)
    assert "\n" not in str(info.value)


# (id, arguments, pattern of the one error line); "{...}" fields come from the fixture
CLI_CASES = [
    ("no-command", [], "landscape", "required: command"),
    ("unknown-command", ["fly"], "landscape", "invalid choice"),
    ("train-missing-data", ["train", "--model", "mlp"], "landscape train", r"required: --data.*--help"),
    ("train-ckpt-steps", ["train", "--model", "mlp", "--data", "test-blobs", "--checkpoint-steps", "5,x"], "landscape train", r"--checkpoint-steps: expected whole numbers.*'5,x'"),
    ("train-steps", ["train", "--model", "mlp", "--data", "test-blobs", "--steps", "0"], "landscape train", r"--steps: expected a whole number >= 1"),
    ("train-lr", ["train", "--model", "mlp", "--data", "test-blobs", "--lr", "fast"], "landscape train", r"--lr: invalid float"),
    ("train-model", ["train", "--model", "nope", "--data", "test-blobs", "--runs", "{runs}"], "landscape train", "unknown model 'nope'"),
    ("train-model-arg", ["train", "--model", "mlp", "--model-arg", "widths", "--data", "test-blobs"], "landscape train", "KEY=VALUE"),
    ("train-data", ["train", "--model", "mlp", "--data", "nope"], "landscape train", "unknown dataset 'nope'"),
    ("train-device", ["train", "--model", "mlp", "--data", "test-blobs", "--device", "cuda:99", "--runs", "{runs}"], "landscape train", "cuda"),
    ("train-model-arg-classes", ["train", "--model", "mlp", "--model-arg", "num_classes=3", "--data", "test-blobs"], "landscape train", "comes from the dataset"),
    ("train-nesterov", ["train", "--model", "mlp", "--data", "test-blobs", "--nesterov", "--momentum", "0"], "landscape train", "nesterov needs"),
    ("train-user-model", ["train", "--model", "{root}/user_models.py:WrongIn", "--data", "test-blobs", "--runs", "{runs}"], "landscape train", "cannot run on inputs"),
    ("train-runs-file", ["train", "--model", "mlp", "--data", "test-blobs", "--runs", "{root}/a_file"], "landscape train", "is a file"),
    ("spawn-renamed", ["spawn", "{root}/renamed/my-best-run", "--step", "2", "--noise-seeds", "1,2"], "landscape spawn", "under another name"),
    ("spawn-missing", ["spawn", "{root}/nope", "--step", "2", "--noise-seeds", "1,2"], "landscape spawn", "does not exist"),
    ("spawn-not-run", ["spawn", "{root}/empty_dir", "--step", "2", "--noise-seeds", "1,2"], "landscape spawn", "is not a run directory"),
    ("spawn-step", ["spawn", "{rundir}", "--step", "3", "--noise-seeds", "1,2"], "landscape spawn", "no checkpoint at step 3"),
    ("spawn-seeds", ["spawn", "{rundir}", "--step", "2", "--noise-seeds", "1,x"], "landscape spawn", "--noise-seeds"),
    ("interp-text", ["interpolate", "{root}/notes.txt", "{ckpt}", "--data", "test-blobs"], "landscape interpolate", "not a PyTorch checkpoint"),
    ("interp-json", ["interpolate", "{root}/line.json", "{ckpt}", "--data", "test-blobs"], "landscape interpolate", "it is a JSON file"),
    ("interp-missing", ["interpolate", "{root}/nope.pt", "{ckpt}", "--data", "test-blobs"], "landscape interpolate", "does not exist"),
    ("interp-empty-dir", ["interpolate", "{root}/empty_dir", "{ckpt}", "--data", "test-blobs"], "landscape interpolate", "without checkpoints"),
    ("interp-bn-examples", ["interpolate", "{ckpt}", "{ckpt}", "--data", "test-blobs", "--bn-examples", "-5"], "landscape interpolate", r"--bn-examples: expected a whole number >= 0 \(0 for the whole split\)"),
    ("interp-points", ["interpolate", "{ckpt}", "{ckpt}", "--data", "test-blobs", "--points", "1"], "landscape interpolate", "--points"),
    ("interp-device", ["interpolate", "{ckpt}", "{ckpt}", "--data", "test-blobs", "--device", "tpu:0"], "landscape interpolate", "device"),
    ("interp-wrong-model", ["interpolate", "{ckpt}", "{ckpt}", "--data", "test-blobs", "--model", "lenet300-100"], "landscape interpolate", "do not fit the model"),
    ("interp-wrong-data", ["interpolate", "{ckpt}", "{ckpt}", "--data", "test-images"], "landscape interpolate", "cannot run on inputs|do not fit"),
    ("interp-foreign-no-model", ["interpolate", "{root}/foreign.pt", "{root}/foreign.pt", "--data", "test-blobs"], "landscape interpolate", "does not say which model"),
    ("interp-user-class", ["interpolate", "{ckpt}", "{ckpt}", "--data", "test-blobs", "--model", "{root}/user_models.py:Nope"], "landscape interpolate", "has no class or function 'Nope'"),
    ("interp-json-dir", ["interpolate", "{ckpt}", "{ckpt}", "--data", "test-blobs", "--json", "{root}/empty_dir"], "landscape interpolate", "is a directory"),
    ("plot-missing", ["plot", "barrier", "{root}/nope.csv", "--out", "{root}/fig"], "landscape plot", "does not exist"),
    ("plot-columns", ["plot", "barrier", "{root}/other.csv", "--out", "{root}/fig"], "landscape plot", "lack the column"),
    ("plot-out-folder", ["plot", "barrier", "{root}/other.csv", "--out", "{root}/empty_dir"], "landscape plot", "lack the column|file stem"),
    ("plot-short-row", ["plot", "barrier", "{root}/short.csv", "--out", "{root}/fig"], "landscape plot", "fewer cells"),
    ("interp-json-fifo", ["interpolate", "{ckpt}", "{ckpt}", "--data", "test-blobs", "--json", "{root}/fifo"], "landscape interpolate", "not a regular file"),
    ("plot-kind", ["plot", "surface", "{root}/other.csv", "--out", "{root}/fig"], "landscape plot", "invalid choice"),
    ("surface-two", ["surface", "{ckpt}", "{ckpt}", "--data", "test-blobs", "--out", "{root}/s"], "landscape surface", "one checkpoint .* or three"),
    ("surface-out", ["surface", "{ckpt}", "--data", "test-blobs"], "landscape surface", "required: --out"),
    ("surface-points", ["surface", "{ckpt}", "--data", "test-blobs", "--points", "1", "--out", "{root}/s"], "landscape surface", "--points"),
    ("surface-span", ["surface", "{ckpt}", "--data", "test-blobs", "--span", "0", "--out", "{root}/s"], "landscape surface", "span must be"),
    ("surface-plane-line", ["surface", "{ckpt}", "{ckpt}", "{ckpt}", "--data", "test-blobs", "--out", "{root}/s"], "landscape surface", "same point"),
    ("surface-masks", ["surface", "{ckpt}", "--data", "test-blobs", "--masks", "{root}/other_masks.pt", "--out", "{root}/s"], "landscape surface", "another architecture|lacks"),
    ("hessian-missing", ["hessian", "{root}/nope.pt", "--data", "test-blobs"], "landscape hessian", "does not exist"),
    ("hessian-method", ["hessian", "{ckpt}", "--data", "test-blobs", "--method", "lanczos"], "landscape hessian", "invalid choice"),
    ("hessian-probes", ["hessian", "{ckpt}", "--data", "test-blobs", "--method", "exact", "--probes", "3"], "landscape hessian", "probes= is for Hutchinson"),
    ("hessian-masks", ["hessian", "{ckpt}", "--data", "test-blobs", "--masks", "{root}/nope.pt"], "landscape hessian", "no mask file"),
    ("hessian-masks-arch", ["hessian", "{ckpt}", "--data", "test-blobs", "--masks", "{root}/other_masks.pt"], "landscape hessian", "another architecture|lacks"),
    ("hessian-spectrum", ["hessian", "{ckpt}", "--data", "test-blobs", "--spectrum"], "landscape hessian", "--spectrum writes a CSV"),
    ("hessian-batches", ["hessian", "{ckpt}", "--data", "test-blobs", "--batches", "0"], "landscape hessian", "--batches: expected a whole number >= 1"),
    ("hessian-wrong-data", ["hessian", "{ckpt}", "--data", "test-images"], "landscape hessian", "cannot run on inputs|do not fit"),
    ("align-missing", ["align", "{root}/nope.pt", "{ckpt}", "--data", "test-blobs"], "landscape align", "does not exist"),
    ("align-family", ["align", "{root}/dropout_mlp.pt", "{root}/dropout_mlp.pt", "--data", "test-blobs", "--model", "test-dropout-mlp"], "landscape align", "no permutation spec for Sequential.*supports mlp"),
    ("align-max-iter", ["align", "{ckpt}", "{ckpt}", "--data", "test-blobs", "--max-iter", "0"], "landscape align", "--max-iter: expected a whole number >= 1"),
    ("align-seed", ["align", "{ckpt}", "{ckpt}", "--data", "test-blobs", "--seed", "-1"], "landscape align", "--seed: expected a whole number >= 0"),
    ("align-points", ["align", "{ckpt}", "{ckpt}", "--data", "test-blobs", "--points", "1"], "landscape align", "--points"),
    ("align-wrong-model", ["align", "{ckpt}", "{ckpt}", "--data", "test-blobs", "--model", "lenet300-100"], "landscape align", "do not fit the model"),
    ("align-save-dir", ["align", "{ckpt}", "{ckpt}", "--data", "test-blobs", "--save", "{root}/empty_dir"], "landscape align", "is a directory"),
    ("align-json-dir", ["align", "{ckpt}", "{ckpt}", "--data", "test-blobs", "--json", "{root}/empty_dir"], "landscape align", "is a directory"),
    ("align-save-masks-dense", ["align", "{ckpt}", "{ckpt}", "--data", "test-blobs", "--save-masks", "{root}/m.pt"], "landscape align", "has no masks"),
    ("interp-align-family", ["interpolate", "{root}/dropout_mlp.pt", "{root}/dropout_mlp.pt", "--data", "test-blobs", "--model", "test-dropout-mlp", "--align"], "landscape interpolate", "no permutation spec"),
    ("train-precision", ["train", "--model", "mlp", "--data", "test-blobs", "--precision", "fp16"], "landscape train", "invalid choice"),
    ("sweep-missing", ["sweep", "{root}/nope.json"], "landscape sweep", "does not exist"),
    ("sweep-format", ["sweep", "{root}/other.csv"], "landscape sweep", r"\.json, \.toml or \.py"),
    ("sweep-executor", ["sweep", "{root}/nope.json", "--executor", "pbs"], "landscape sweep", "invalid choice"),
    ("sweep-parallel", ["sweep", "{root}/nope.json", "--max-parallel", "0"], "landscape sweep", "--max-parallel: expected a whole number >= 1"),
    ("sweep-not-json", ["sweep", "{root}/bad.json"], "landscape sweep", "not valid JSON"),
]  # fmt: skip


@pytest.mark.parametrize(
    "argv, prog, pattern", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_cli_user_error_is_one_line_and_status_2(w, capsys, argv, prog, pattern):
    torch.save(_mlp().state_dict(), w.root / "foreign.pt")
    fields = {"root": w.root, "runs": w.runs, "rundir": w.run.dir, "ckpt": w.ckpt}
    assert main([a.format(**fields) for a in argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    assert __import__("re").search(pattern, lines[0]), lines[0]
    assert "Traceback" not in captured.err


def test_cli_refuses_cuda_without_a_gpu(capsys, tmp_path):
    if not _NO_CUDA:
        pytest.skip("this machine has CUDA")
    argv = ["train", "--model", "mlp", "--data", "test-blobs", "--device", "cuda"]
    assert main(argv + ["--runs", str(tmp_path)]) == 2
    assert "no usable CUDA GPU" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written for a run that cannot start


# What the library accepts instead of refusing


def test_runs_stand_in_for_models(w):
    a, b = spawn(w.spec, 2, [1, 2], w.runs, progress=False)
    data = _xy(40)
    by_module = interpolate(a.load_model(), b.load_model(), data, points=5)
    assert interpolate(a, b, data, points=5) == by_module
    assert interpolate(a.load_model(), b, data, points=5) == by_module
    assert evaluate(a, data) == evaluate(a.load_model(), data)


def test_numpy_arrays_and_small_integer_labels_are_data(w):
    model = _mlp()
    x, y = _xy(30)
    ref = evaluate(model, (x, y))
    assert evaluate(model, (x.numpy(), y.numpy())) == ref
    assert evaluate(model, (x, y.int())) == ref
    assert evaluate(model, [(x[:16], y[:16].numpy()), (x[16:], y[16:])]) == ref
    line = interpolate(model, _mlp(1), (x.numpy(), y.numpy()), points=3)
    assert line == interpolate(model, _mlp(1), (x, y), points=3)


def test_alphas_are_the_nearest_floats():
    line = interpolate(_mlp(0), _mlp(1), _xy(), points=11)
    assert line.alphas == [i / 10 for i in range(11)]
    assert "0.30000000000000004" not in json.dumps(line.to_dict())
    assert json.dumps(line.alphas[3]) == "0.3"


def test_a_run_directory_names_its_latest_checkpoint(w, capsys):
    args = ["--data", "test-blobs", "--points", "3"]
    assert main(["interpolate", str(w.run.dir), w.ckpt, *args]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        f"landscape: using {w.ckpt}, the latest checkpoint in {w.run.dir}"
    )
    assert json.loads(captured.out)["loss_barrier"] == 0.0  # the same weights at both ends
    cut = train(_spec(steps=8, checkpoint_steps=(2, 4)), w.runs, stop_at=5, progress=False)
    assert main(["interpolate", str(cut.dir), w.ckpt, *args]) == 0
    err = capsys.readouterr().err
    assert "step_4.pt" in err and "unfinished (it trains to step 8)" in err


def test_the_cli_builds_a_users_own_class(w, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("user_models_ref", w.root / "user_models.py")
    user = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(user)
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(user.TinyNet(4, hidden=6))
        torch.save(models[-1].state_dict(), w.root / f"tiny{seed}.pt")
    argv = ["interpolate", str(w.root / "tiny0.pt"), str(w.root / "tiny1.pt")]
    argv += ["--data", "test-blobs", "--points", "5", "--model-arg", "hidden=6"]
    assert main(argv + ["--model", f"{w.root}/user_models.py:TinyNet"]) == 0
    ours = json.loads(capsys.readouterr().out)
    ref = interpolate(*models, get_dataset("test-blobs", split="test"), points=5)
    assert ours["loss"] == pytest.approx(ref.loss, abs=1e-6)
    # the same class named as module:ClassName, importable from the working directory
    import os

    cwd = os.getcwd()
    os.chdir(w.root)
    try:
        assert main(argv + ["--model", "user_models:TinyNet"]) == 0
    finally:
        os.chdir(cwd)
    assert json.loads(capsys.readouterr().out)["loss"] == ours["loss"]


def test_a_failed_start_leaves_no_run_behind(w, tmp_path):
    for cls in ("WrongIn", "TwoOut"):
        with pytest.raises(LandscapeError):
            train(_user_spec(w, cls), tmp_path / "runs")
    with pytest.raises(LandscapeError, match="unknown augmentation"):
        train(_spec(steps=3).replace(data=DataSpec("test-blobs", ("rot",))), tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_writes_follow_links_and_keep_them(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("{}")
    (tmp_path / "link.json").symlink_to(target)
    write_json(tmp_path / "link.json", {"a": np.float32(0.5), "b": torch.tensor(2)})
    assert (tmp_path / "link.json").is_symlink()
    assert json.loads(target.read_text()) == {"a": 0.5, "b": 2}


@pytest.mark.filterwarnings("ignore:Validating sparse tensor invariants")
def test_checkpoints_from_other_code_and_numpy_metadata_load(tmp_path):
    model = _bn()
    state = model.state_dict()
    # torch.compile's prefix, sparse tensors, no num_batches_tracked (older PyTorch)
    foreign = {f"_orig_mod.{k}": v.to_sparse() if v.dim() == 2 else v for k, v in state.items()}
    foreign = {k: v for k, v in foreign.items() if not k.endswith("num_batches_tracked")}
    torch.save(foreign, tmp_path / "f.pt")
    loaded = load_weights(_bn(), tmp_path / "f.pt").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    meta = {"acc": np.float64(0.9), "shape": np.array([1, 2])}
    save_checkpoint(tmp_path / "c.pt", model, meta=meta)
    back = load_checkpoint(tmp_path / "c.pt").meta
    assert back["acc"] == 0.9 and back["shape"].tolist() == [1, 2]


def test_figure_stems_and_csv_byte_order_marks(tmp_path):
    import matplotlib.pyplot as plt

    paths = save_figure(plt.figure(), tmp_path / "lr0.1")
    assert [p.name for p in paths] == ["lr0.1.pdf", "lr0.1.png"]
    assert [p.name for p in save_figure(plt.figure(), tmp_path / "b.png")] == ["b.pdf", "b.png"]
    (tmp_path / "excel.csv").write_bytes("\ufeffrewind_step,x\n1,0.5\n".encode())
    assert read_rows(tmp_path / "excel.csv") == [{"rewind_step": 1, "x": 0.5}]


def test_alphas_may_be_an_array_and_model_kwargs_name_one_run():
    a, b, data = _mlp(0), _mlp(1), _xy()
    ref = interpolate(a, b, data, alphas=[0.0, 0.5, 1.0])
    assert interpolate(a, b, data, alphas=np.linspace(0, 1, 3)) == ref
    assert interpolate(a, b, data, alphas=torch.linspace(0, 1, 3)).loss == ref.loss
    one = RunSpec(model=ModelSpec("resnet20", {"width": 1}))
    assert one.run_hash() == RunSpec(model=ModelSpec("resnet20", {"width": 1.0})).run_hash()
