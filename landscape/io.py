"""Checkpoints and result tables: safe loading, atomic writes.

A checkpoint is a dict of plain containers and tensors::

    {"format": "landscape-checkpoint/1", "model": state_dict, "optimizer": state_dict | None,
     "meta": {"step": int, ...}, "controllers": {name: state_dict}}

It is written to a temporary file in the same directory and renamed, so a crash never leaves
a half-written file under the real name, and it is read with ``torch.load(weights_only=True)``
so a file that would need arbitrary unpickling is refused without running anything.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from landscape.errors import LandscapeError

FORMAT = "landscape-checkpoint/1"


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        model: the model's state_dict.
        optimizer: the optimiser's state_dict, if the file had one.
        meta: small metadata (``step``, ``run_hash``, ...); empty for foreign files.
        controllers: per-controller state (masks, ...), keyed by controller name.
    """

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    controllers: dict[str, Any] = field(default_factory=dict)


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it over ``path``.

    A symbolic link is followed (its target is replaced, the link stays); a path that names
    a directory or a special file (a device, a pipe) is refused, never replaced.
    """
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)) or not str(path):
        raise LandscapeError(f"a file to write must be a non-empty path, got {path!r}")
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    if path.is_dir():
        raise LandscapeError(f"cannot write {path}: it is a directory; give a file name")
    if path.exists() and not path.is_file():
        raise LandscapeError(
            f"cannot write {path}: it is not a regular file (a device or a pipe), and "
            f"landscape only replaces regular files; give a file name"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise LandscapeError(
            f"cannot write {path}: {err.strerror or err} (is a folder on the way a file, or "
            f"read-only?); choose another place"
        ) from None
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module | Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    controllers: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically; tensors are moved to the CPU so any device can read it."""
    if not isinstance(model, (nn.Module, Mapping)):
        raise LandscapeError(
            f"save_checkpoint needs a model or a state_dict, got {type(model).__name__}"
        )
    state = model.state_dict() if isinstance(model, nn.Module) else dict(model)
    opt = optimizer.state_dict() if isinstance(optimizer, torch.optim.Optimizer) else optimizer
    payload = {
        "format": FORMAT,
        "model": state,
        "optimizer": opt,
        "meta": dict(meta or {}),
        "controllers": dict(controllers or {}),
    }
    payload = _loadable(payload, "checkpoint")
    return atomic_write(path, lambda f: torch.save(payload, f))


_PLAIN = (str, int, float, bool, type(None), torch.dtype, torch.device, torch.Size)


def _loadable(obj: Any, where: str) -> Any:
    """``obj`` in the types ``torch.load(weights_only=True)`` reads back, tensors on the CPU.

    Tensors move to the CPU so any device can read the file. Numpy scalars and arrays
    become Python numbers and tensors; anything else that would need unpickling (a Path, a
    custom object) is refused here, at save time, naming the key, so no checkpoint is
    written that could never be loaded again.
    """
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, np.generic):  # before the plain types: np.float64 is a float
        return obj.item()
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, Mapping):
        return type(obj)((k, _loadable(v, f"{where}[{k!r}]")) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_loadable(v, f"{where}[{i}]") for i, v in enumerate(obj))
    raise LandscapeError(
        f"cannot save {where}: a {type(obj).__name__} could not be loaded back without "
        f"running code; store tensors, numbers, strings, lists and dicts (e.g. str(path))"
    )


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint file that ``path`` names.

    A file is itself; a run directory (or its ``checkpoints/`` folder) names its latest
    ``step_<k>.pt``, the one with the largest ``k``.

    Raises:
        LandscapeError: nothing exists at ``path``, or a directory holds no checkpoints.
    """
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise LandscapeError(f"a checkpoint path must be a string or a Path, got {path!r}")
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise LandscapeError(f"checkpoint {path} does not exist; check the path")
    if not path.is_dir():
        raise LandscapeError(f"{path} is not a regular file; pass a checkpoint file (.pt)")
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    steps = step_checkpoints(folder)
    if not steps:
        raise LandscapeError(
            f"{path} is a directory without checkpoints (no {folder}/step_<k>.pt); pass a "
            f"checkpoint file, or a run directory that has trained"
        )
    return steps[max(steps)]


def step_checkpoints(folder: str | os.PathLike) -> dict[int, Path]:
    """The ``step_<k>.pt`` files in ``folder`` by step ``k``; other names are ignored."""
    found = Path(folder).glob("step_*.pt")
    return {int(p.stem[5:]): p for p in found if p.stem[5:].isdigit() and p.is_file()}


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` or by other code.

    Accepts this project's format, a plain ``state_dict``, and ``{"state_dict": ...}`` or
    ``{"model": ...}`` wrappers; a run directory means its latest checkpoint (see
    :func:`resolve_checkpoint`). Never executes code from the file.

    Raises:
        LandscapeError: the file is missing, truncated, not a checkpoint, or would need
            arbitrary unpickling (which is refused).
    """
    path = resolve_checkpoint(path)
    _check_header(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f" (it needs {found.group(1)})" if found else ""
        raise LandscapeError(
            f"refused to load {path}: it holds Python objects beyond tensors and plain "
            f"containers{what}, and loading them could run code. Re-save it as a plain "
            f"state_dict (torch.save(model.state_dict(), path)) from code you trust"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise LandscapeError(
            f"could not read checkpoint {path}: the file is truncated or not a PyTorch "
            f"checkpoint ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from None
    return _as_checkpoint(obj, path)


def _check_header(path: Path) -> None:
    """Refuse files that are not PyTorch checkpoints before unpickling anything.

    ``torch.save`` writes a zip archive (``PK``); its legacy format and plain pickles start
    with the pickle protocol byte ``0x80``. Anything else (JSON, text, numpy) is named here,
    where ``torch.load`` would fail with a misleading message or a bare ``KeyError``.
    """
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as err:
        raise LandscapeError(f"cannot read {path}: {err.strerror}") from None
    if head.startswith(b"PK") or head.startswith(b"\x80"):
        return
    if not head:
        kind = "it is empty"
    elif head.startswith(b"\x93NUMPY"):
        kind = "it is a numpy .npy file"
    elif path.suffix == ".safetensors":
        kind = "it is a safetensors file; load it with safetensors.torch.load_file, then save "
        kind += "the state_dict with torch.save"
    elif head.lstrip()[:1] in (b"{", b"["):
        kind = "it is a JSON file"
    else:
        kind = "it starts like a text file" if head.isascii() else "it has an unknown format"
    raise LandscapeError(
        f"{path} is not a PyTorch checkpoint ({kind}); pass a file written by torch.save, "
        f"such as a run's checkpoints/step_<k>.pt"
    )


def _as_checkpoint(obj: Any, path: Path) -> Checkpoint:
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        parts = (obj.get("model"), obj.get("meta") or {}, obj.get("controllers") or {})
        if not (isinstance(parts[0], dict) and _is_state_dict(parts[0])) or not all(
            isinstance(p, dict) for p in parts[1:]
        ):
            raise LandscapeError(
                f"{path} says it is a landscape checkpoint but its model, meta or "
                f"controllers entry is malformed; the file is damaged, write it again"
            )
        return Checkpoint(
            model=parts[0],
            optimizer=obj.get("optimizer"),
            meta=dict(parts[1]),
            controllers=dict(parts[2]),
        )
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict) and _is_state_dict(obj[key]):
                return Checkpoint(model=obj[key])
        if _is_state_dict(obj):
            return Checkpoint(model=obj)
    raise LandscapeError(
        f"{path} is not a model checkpoint: expected a state_dict (name -> tensor) or a dict "
        f"with one under 'state_dict' or 'model'"
    )


def _is_state_dict(d: Mapping[str, Any]) -> bool:
    return bool(d) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in d.items())


def load_weights(model: nn.Module, source: str | os.PathLike | Checkpoint | Mapping) -> nn.Module:
    """Load weights into ``model`` (in place) from a path, a checkpoint or a state_dict.

    Raises:
        LandscapeError: the weights do not fit the model; the message lists the missing,
            unexpected and mis-shaped entries.
    """
    if not isinstance(model, nn.Module):
        raise LandscapeError(
            f"load_weights needs the model to load into (an nn.Module), got "
            f"{type(model).__name__}; build it first, e.g. with landscape.models.create_model"
        )
    if isinstance(source, (str, os.PathLike)):
        state = load_checkpoint(source).model
    elif isinstance(source, Checkpoint):
        state = source.model
    elif isinstance(source, Mapping):
        state = dict(source)
    else:
        raise LandscapeError(
            f"cannot load weights from a {type(source).__name__}; pass a checkpoint path, a "
            f"Checkpoint or a state_dict (parameter name -> tensor)"
        )
    odd = [k for k, v in state.items() if not torch.is_tensor(v)]
    if odd:
        raise LandscapeError(
            f"the weights hold non-tensor entries ({_few(sorted(map(str, odd)))}); a "
            f"state_dict maps parameter names to tensors"
        )
    for prefix in ("module.", "_orig_mod."):  # DataParallel / DDP, torch.compile
        state = _strip_prefix(state, prefix)
    state = {k: v.to_dense() if v.layout != torch.strided else v for k, v in state.items()}
    if any(v.is_meta for v in state.values()):
        raise LandscapeError("the weights are on the meta device (shapes, no values)")
    own = model.state_dict()
    for k in set(own) - set(state):  # BatchNorm saved before PyTorch counted its batches
        if k.endswith("num_batches_tracked"):
            state[k] = own[k].clone()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected {_few(unexpected)}")
        if shapes:
            parts.append(f"wrong shape {_few(shapes)}")
        raise LandscapeError(
            "checkpoint weights do not fit the model (" + "; ".join(parts) + "). "
            "Check --model, its width/depth options and the number of classes."
        )
    with torch.no_grad():
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[-1].strip()
            raise LandscapeError(f"cannot load the weights into the model: {first}") from None
    return model


def _strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def _few(items: list[str], n: int = 4) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    except (TypeError, ValueError) as err:
        raise LandscapeError(f"cannot write {path} as JSON: {err}") from None
    return atomic_write(path, lambda f: f.write(text), mode="w")


def _json_default(obj: Any) -> Any:
    """Numpy numbers and 0-d tensors as Python numbers; anything else is refused."""
    if isinstance(obj, np.generic) or (torch.is_tensor(obj) and obj.numel() == 1):
        return obj.item()
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return obj.tolist()
    raise TypeError(f"a {type(obj).__name__} is not JSON data")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file raises :class:`LandscapeError`."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise LandscapeError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise LandscapeError(f"{path} is a directory, not a JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise LandscapeError(f"{path} is not valid JSON: {err}") from None
    except OSError as err:
        raise LandscapeError(f"cannot read {path}: {err.strerror or err}") from None


def write_rows(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write tidy rows (one dict per observation) as CSV, atomically; columns as first seen."""
    rows = list(rows)
    if not all(isinstance(row, Mapping) for row in rows):
        raise LandscapeError("write_rows needs rows as dicts (column name -> value)")
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]

    def write(f: Any) -> None:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)

    return atomic_write(path, write, mode="w")


def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a CSV written by :func:`write_rows`; numbers come back as int or float.

    Raises:
        LandscapeError: the file is missing, a directory, or not a CSV table.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: Excel's byte-order mark
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise LandscapeError(f"{path} does not exist; give the CSV a study wrote") from None
    except IsADirectoryError:
        raise LandscapeError(f"{path} is a directory; give a CSV file in it") from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise LandscapeError(f"{path} is not a CSV table: {err}") from None
    except OSError as err:
        raise LandscapeError(f"cannot read {path}: {err.strerror or err}") from None
    for i, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            raise LandscapeError(
                f"{path} is not a well-formed CSV table: line {i} has "
                f"{'more' if None in row else 'fewer'} cells than the header"
            )
    return [{k: _number(v) for k, v in row.items()} for row in rows]


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)
