"""``ts.utils.util``: the helpers TorchServe handlers import from it."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

import yaml
from modelserve_handlers.errors import PredictionException
from modelserve_handlers.labels import load_label_mapping, map_class_to_label
from modelserve_handlers.text import HTML_MARKUP as CLEANUP_REGEX

__all__ = [
    "CLEANUP_REGEX",
    "PredictionException",
    "deprecated",
    "get_yaml_config",
    "list_classes_from_module",
    "load_label_mapping",
    "map_class_to_label",
]


def list_classes_from_module(module: ModuleType, parent_class: type | None = None) -> list[type]:
    """The classes defined in ``module`` itself (not imported), subclasses of
    ``parent_class`` only when given."""
    classes = [
        member
        for _, member in inspect.getmembers(module, inspect.isclass)
        if member.__module__ == module.__name__
    ]
    if parent_class is None:
        return classes
    return [member for member in classes if issubclass(member, parent_class)]


def get_yaml_config(yaml_file_path: str) -> dict[str, Any]:
    """A yaml file's content (safe loading)."""
    with open(yaml_file_path, encoding="utf-8") as yaml_file:
        return yaml.safe_load(yaml_file) or {}


def deprecated(
    version: str, replacement: str = "", klass: type[Warning] = PendingDeprecationWarning
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a function to warn, on each call, that it goes away in ``version``."""

    def deprecator(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            warnings.warn(
                f"{function.__name__} is deprecated in {version} and moved to {replacement}",
                klass,
                stacklevel=2,
            )
            return function(*args, **kwargs)

        return wrapper

    return deprecator
