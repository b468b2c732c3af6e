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
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
    state = model.state_dict() if isinstance(model, nn.Module) else dict(model)
    opt = optimizer.state_dict() if isinstance(optimizer, torch.optim.Optimizer) else optimizer
    payload = {
        "format": FORMAT,
        "model": _to_cpu(state),
        "optimizer": _to_cpu(opt) if opt is not None else None,
        "meta": dict(meta or {}),
        "controllers": _to_cpu(dict(controllers or {})),
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` or by other code.

    Accepts this project's format, a plain ``state_dict``, and ``{"state_dict": ...}`` or
    ``{"model": ...}`` wrappers. Never executes code from the file.

    Raises:
        LandscapeError: the file is missing, truncated, not a checkpoint, or would need
            arbitrary unpickling (which is refused).
    """
    path = Path(path)
    if not path.is_file():
        raise LandscapeError(f"checkpoint {path} does not exist; check the path")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise LandscapeError(
            f"refused to load {path}: it holds Python objects beyond tensors and plain "
            f"containers, and loading them could run code. Re-save it as a plain state_dict "
            f"(torch.save(model.state_dict(), path)) from code you trust. Detail: "
            f"{str(err).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise LandscapeError(
            f"could not read checkpoint {path}: the file is truncated or not a PyTorch "
            f"checkpoint ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from None
    return _as_checkpoint(obj, path)


def _as_checkpoint(obj: Any, path: Path) -> Checkpoint:
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return Checkpoint(
            model=obj["model"],
            optimizer=obj.get("optimizer"),
            meta=dict(obj.get("meta") or {}),
            controllers=dict(obj.get("controllers") or {}),
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
    if isinstance(source, (str, os.PathLike)):
        state = load_checkpoint(source).model
    elif isinstance(source, Checkpoint):
        state = source.model
    else:
        state = dict(source)
    state = _strip_prefix(state, "module.")  # DataParallel / DDP checkpoints
    own = model.state_dict()
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
    model.load_state_dict(state)
    return model


def _strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def _few(items: list[str], n: int = 4) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _to_cpu(obj: Any) -> Any:
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    return atomic_write(path, lambda f: f.write(text), mode="w")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file raises :class:`LandscapeError`."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise LandscapeError(f"{path} does not exist") from None
    except json.JSONDecodeError as err:
        raise LandscapeError(f"{path} is not valid JSON: {err}") from None


def write_rows(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write tidy rows (one dict per observation) as CSV, atomically; columns as first seen."""
    rows = list(rows)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]

    def write(f: Any) -> None:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)

    return atomic_write(path, write, mode="w")


def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a CSV written by :func:`write_rows`; numbers come back as int or float."""
    with open(path, newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)
