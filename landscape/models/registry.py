"""The model registry: a name -> constructor map, and `create_model` to build by name.

Every registered constructor has the signature
``fn(num_classes: int, in_shape: tuple[int, ...], **kwargs) -> nn.Module`` and returns a
plain ``nn.Module`` whose weights are drawn from the global torch RNG (seed it, or fork it,
to fix the initialisation). Names of the form ``tv:<name>`` build any torchvision
classification model instead, always without pretrained weights, and names of the form
``path/to/file.py:ClassName`` or ``package.module:ClassName`` build a class (or factory
function) from the user's own code, so checkpoints of any architecture can be analysed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from landscape.errors import LandscapeError

TORCHVISION_PREFIX = "tv:"

ModelFactory = Callable[..., nn.Module]

_REGISTRY: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator that registers a model constructor under ``name``.

    Args:
        name: the registry name, e.g. ``"resnet20"``; must be new and must not start with
            ``"tv:"`` (that prefix is reserved for torchvision models).

    Returns:
        A decorator that records the constructor and returns it unchanged.

    Example:
        >>> @register_model("tiny")
        ... def tiny(num_classes: int, in_shape: tuple[int, ...]) -> nn.Module:
        ...     return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
    """
    if not isinstance(name, str) or not name or name.startswith(TORCHVISION_PREFIX):
        raise LandscapeError(
            f"cannot register a model as {name!r}: use a non-empty name that does not start "
            f"with {TORCHVISION_PREFIX!r}"
        )

    def decorator(factory: ModelFactory) -> ModelFactory:
        if name in _REGISTRY:
            raise LandscapeError(f"a model named {name!r} is already registered; pick another name")
        _REGISTRY[name] = factory
        return factory

    return decorator


def list_models() -> list[str]:
    """Names of the registered models, sorted (the open-ended ``tv:`` family not included)."""
    return sorted(_REGISTRY)


def create_model(
    name: str,
    num_classes: int = 10,
    in_shape: tuple[int, ...] = (3, 32, 32),
    **kwargs: Any,
) -> nn.Module:
    """Build a freshly initialised model by name.

    Args:
        name: a name from :func:`list_models`, ``"tv:<name>"`` for any torchvision
            classification model (e.g. ``"tv:resnet18"``), built without pretrained weights,
            or ``"file.py:ClassName"`` / ``"module:ClassName"`` for your own class or
            factory (it gets ``num_classes`` and ``in_shape`` if its signature names them,
            and ``kwargs``; the file's code runs, so name only code you trust).
        num_classes: size of the output layer.
        in_shape: shape of one example without the batch dimension: ``(C, L)`` for 1-D
            signals, ``(C, H, W)`` for images. Flatten sizes are derived from it.
        **kwargs: model-specific options (e.g. ``width=2``); see each constructor.

    Returns:
        The model, in training mode, on the CPU (or the default device), mapping inputs of
        shape ``(B, *in_shape)`` to logits of shape ``(B, num_classes)``.

    Raises:
        LandscapeError: for an unknown name, an option the model does not take, or a value
            it cannot use.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise LandscapeError(f"num_classes must be a whole number >= 1, got {num_classes!r}")
    in_shape = _as_shape(in_shape)
    if isinstance(name, str) and name.startswith(TORCHVISION_PREFIX):
        return _create_torchvision(name[len(TORCHVISION_PREFIX) :], num_classes, in_shape, kwargs)
    if not isinstance(name, str):
        raise LandscapeError(f"a model name must be a string, got {name!r}")
    if ":" in name and name not in _REGISTRY:
        return _create_external(name, num_classes, in_shape, kwargs)
    factory = _REGISTRY.get(name)
    if factory is None:
        raise LandscapeError(
            f"unknown model {name!r}; choose one of: {', '.join(list_models())}; or "
            f"'{TORCHVISION_PREFIX}<torchvision name>' for any torchvision classification "
            f"model, e.g. '{TORCHVISION_PREFIX}resnet18'; or 'path/to/file.py:ClassName' "
            f"for your own"
        )
    _check_kwargs(name, factory, kwargs)
    return factory(num_classes=num_classes, in_shape=in_shape, **kwargs)


def _as_shape(in_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(in_shape)
    except TypeError:
        shape = ()
    if not shape or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape
    ):
        raise LandscapeError(
            f"in_shape must be a non-empty tuple of positive ints such as (3, 32, 32), "
            f"got {in_shape!r}"
        )
    return shape


def _check_kwargs(name: str, factory: ModelFactory, kwargs: dict[str, Any]) -> None:
    """Refuse options the constructor does not take, naming the ones it does."""
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    options = [p for p in params if p not in ("num_classes", "in_shape")]
    unknown = sorted(k for k in kwargs if k not in params)
    if unknown and not takes_any:
        offered = ", ".join(f"{p}={params[p].default!r}" for p in options) or "none"
        raise LandscapeError(
            f"model {name!r} does not take option(s) {', '.join(unknown)}; its options "
            f"(with defaults) are: {offered}"
        )


def _create_torchvision(
    tv_name: str, num_classes: int, in_shape: tuple[int, ...], kwargs: dict[str, Any]
) -> nn.Module:
    """A torchvision classification model with random weights."""
    import torchvision  # imported here: it is slow to import and only this path needs it

    valid = torchvision.models.list_models(module=torchvision.models)
    if tv_name not in valid:
        raise LandscapeError(
            f"unknown torchvision classification model {tv_name!r}; valid names are those of "
            f"torchvision.models.list_models(module=torchvision.models): {', '.join(valid)}"
        )
    if "weights" in kwargs or "weights_backbone" in kwargs:
        raise LandscapeError(
            f"tv:{tv_name}: landscape never loads pretrained weights; drop the 'weights' option "
            "and load a state dict into the model yourself if you need one"
        )
    if len(in_shape) != 3 or in_shape[0] != 3:
        raise LandscapeError(
            f"tv:{tv_name} expects RGB images, in_shape (3, H, W), got {in_shape}; use a "
            f"landscape model ({', '.join(list_models())}) for other inputs"
        )
    try:
        return torchvision.models.get_model(
            tv_name, weights=None, num_classes=num_classes, **kwargs
        )
    except (TypeError, ValueError, AssertionError) as err:  # torchvision names the option
        raise LandscapeError(f"tv:{tv_name} does not accept the options {kwargs}: {err}") from err


def _create_external(
    name: str, num_classes: int, in_shape: tuple[int, ...], kwargs: dict[str, Any]
) -> nn.Module:
    """Build ``ClassName`` from ``file.py:ClassName`` or ``package.module:ClassName``."""
    target, _, attr = name.rpartition(":")
    if not target or not attr.isidentifier():
        raise LandscapeError(
            f"model {name!r}: write your own model as 'path/to/file.py:ClassName' or "
            f"'package.module:ClassName'"
        )
    module = _load_module(target, name)
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        found = sorted(
            k
            for k, v in vars(module).items()
            if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module.__name__
        )
        raise LandscapeError(
            f"model {name!r}: {target} has no class or function {attr!r}; its nn.Module "
            f"classes are: {', '.join(found) or 'none'}"
        )
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    given = dict(kwargs)
    for key, value in (("num_classes", num_classes), ("in_shape", in_shape)):
        if key in params and key not in given:
            given[key] = value
    try:
        model = factory(**given)
    except TypeError as err:
        raise LandscapeError(
            f"model {name!r} cannot be built with {given}: {err}; its signature is "
            f"{attr}{_signature(factory)} (pass options with --model-arg KEY=VALUE)"
        ) from err
    except Exception as err:  # the user's own code failed: one line, the chain keeps the rest
        detail = f"{type(err).__name__}: {err}"
        raise LandscapeError(f"building model {name!r} failed: {detail}") from err
    if not isinstance(model, nn.Module):
        raise LandscapeError(
            f"model {name!r} returned a {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def _signature(factory: Callable[..., Any]) -> str:
    try:
        return str(inspect.signature(factory))
    except (TypeError, ValueError):
        return "(...)"


def _load_module(target: str, name: str) -> Any:
    """Import a ``.py`` file (once per path) or a module importable from here or the cwd."""
    path = Path(target).expanduser()
    if target.endswith(".py") or os.sep in target or "/" in target:
        if not path.is_file():
            what = "is a folder, not a .py file" if path.is_dir() else "does not exist"
            raise LandscapeError(f"model {name!r}: the file {path} {what}")
        resolved = path.resolve()
        digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:10]
        key = f"landscape_user_models.{resolved.stem}_{digest}"
        if key in sys.modules:
            return sys.modules[key]
        spec = importlib.util.spec_from_file_location(key, resolved)
        if spec is None or spec.loader is None:
            raise LandscapeError(f"model {name!r}: cannot import {path} as Python code")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module  # dataclasses and pickling look the module up by name
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            del sys.modules[key]
            raise LandscapeError(
                f"model {name!r}: importing {path} failed: {type(err).__name__}: {err}"
            ) from err
        return module
    try:
        return _import(target)
    except ModuleNotFoundError as err:
        raise LandscapeError(
            f"model {name!r}: no module named {err.name!r}; give a path to the .py file, or "
            f"run from the folder that holds the package"
        ) from None
    except Exception as err:
        raise LandscapeError(
            f"model {name!r}: importing {target} failed: {type(err).__name__}: {err}"
        ) from err


def _import(target: str) -> Any:
    """``import target``, looking in the current directory too (as ``python -m`` would)."""
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as err:
        top = target.split(".")[0]
        if err.name != top or "" in sys.path or os.getcwd() in sys.path:
            raise
    sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(target)
    finally:
        sys.path.remove(os.getcwd())
