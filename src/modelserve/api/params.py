"""Validated query / JSON parameters: a bad value is a 400 that names the parameter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelserve.engine.errors import BadRequestException

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def int_param(
    params: Mapping[str, Any], name: str, default: int | None, minimum: int = 0
) -> int | None:
    """An integer parameter ≥ ``minimum``; ``default`` when absent or empty."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise BadRequestException(f"Invalid value for {name}: {raw!r} (expected an integer)")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadRequestException(
            f"Invalid value for {name}: {raw!r} (expected an integer)"
        ) from None
    if value < minimum:
        raise BadRequestException(f"Invalid value for {name}: {value} (must be >= {minimum})")
    return value


def bool_param(params: Mapping[str, Any], name: str, default: bool) -> bool:
    """A boolean parameter (true/false/1/0/yes/no); ``default`` when absent or empty."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    text = str(raw).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadRequestException(f"Invalid value for {name}: {raw!r} (expected true or false)")


def str_param(params: Mapping[str, Any], name: str) -> str | None:
    """A string parameter; None when absent or empty."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise BadRequestException(f"Invalid value for {name}: {raw!r} (expected a string)")
    return raw
