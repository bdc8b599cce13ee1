"""Resolving an archive's handler string into something the worker can call.

Accepted forms, as TorchServe 0.12 resolves them (reference §5.1), plus one extension:

* ``file.py`` / ``module`` / ``path/to/module.py``: a module in the model directory;
* ``module:function``: a function entry point, called as ``function(data, context)``;
* a built-in short name (``image_classifier`` …) from ``modelserve_handlers``;
* ``module:ClassName`` (extension): that class is the handler.

A module with a module-level ``handle`` function is a function entry point; otherwise it must
define exactly one class, which is instantiated and initialised.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from modelserve_handlers import BUILTIN_HANDLERS

from modelserve.suggestions import did_you_mean
from modelserve.worker.context import Context

BUILTIN_PACKAGE = "modelserve_handlers"
HandleFunction = Callable[[list[dict[str, Any]], Context], list[Any]]


class HandlerLoadError(Exception):
    """The handler string names nothing loadable; the message says why."""


def split_handler(handler: str) -> tuple[str, str | None]:
    """``dir/module.py:fn`` → (``module``, ``fn``)."""
    module_part, _, function = handler.partition(":")
    module_name = module_part.rsplit("/", 1)[-1]
    module_name = module_name.removesuffix(".py")
    # A leading dot would be a relative import, which import_module refuses with a TypeError.
    if not module_name or module_name.startswith("."):
        raise HandlerLoadError(f"handler {handler!r} names no module")
    return module_name, function or None


def _is_missing(module_name: str, error: ModuleNotFoundError) -> bool:
    """Whether the import failed because ``module_name`` itself, or a package on its dotted
    path, does not exist, rather than because of one of the module's own imports."""
    missing = error.name
    return missing is not None and (module_name == missing or module_name.startswith(missing + "."))


def _import_handler_module(module_name: str, model_dir: str) -> ModuleType:
    if model_dir not in sys.path:
        sys.path.insert(0, model_dir)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not _is_missing(module_name, exc):
            raise  # the handler exists but one of its own imports is missing
    builtin = f"{BUILTIN_PACKAGE}.{module_name}"
    try:
        return importlib.import_module(builtin)
    except ModuleNotFoundError as exc:
        if not _is_missing(builtin, exc):
            raise
        candidates = [*BUILTIN_HANDLERS, *(path.stem for path in Path(model_dir).glob("*.py"))]
        raise HandlerLoadError(
            f"handler module {module_name!r} is neither in the model directory nor a built-in"
            + did_you_mean(module_name, candidates)
        ) from None


def _single_class(module: ModuleType) -> type:
    classes = [
        member
        for _, member in inspect.getmembers(module, inspect.isclass)
        if member.__module__ == module.__name__
    ]
    if len(classes) != 1:
        raise HandlerLoadError(
            f"handler module {module.__name__!r} must define exactly one class "
            f"(found {len(classes)}), or a module-level handle(data, context) function"
        )
    return classes[0]


def _class_entry_point(handler_class: type, context: Context) -> HandleFunction:
    instance = handler_class()
    if not callable(getattr(instance, "handle", None)):
        raise HandlerLoadError(f"handler class {handler_class.__name__} has no handle() method")
    if callable(getattr(instance, "initialize", None)):
        instance.initialize(context)
    return instance.handle


def load_entry_point(handler: str, model_dir: str, context: Context) -> HandleFunction:
    """Import and initialise the handler; returns ``handle(data, context)``."""
    module_name, function_name = split_handler(handler)
    module = _import_handler_module(module_name, model_dir)
    attribute = getattr(module, function_name or "handle", None)
    if function_name and attribute is None:
        raise HandlerLoadError(
            f"handler module {module_name!r} has no attribute {function_name!r}"
            + did_you_mean(
                function_name, [name for name in vars(module) if not name.startswith("_")]
            )
        )
    if inspect.isclass(attribute):
        return _class_entry_point(attribute, context)
    if callable(attribute):
        attribute(None, context)  # TorchServe's function handlers initialise on a None call
        return attribute
    return _class_entry_point(_single_class(module), context)
