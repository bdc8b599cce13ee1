"""Validated query / JSON parameters: a bad value is a 400 that names the parameter."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from modelserve.engine.errors import BadRequestException
from modelserve.suggestions import did_you_mean

# TorchServe reads its integer parameters as Java ints, so nothing larger is valid there either.
# The bound also keeps values in range of what they feed: asyncio timers (a float of seconds),
# orjson (64-bit integers) in describe and snapshots.
INT_MAX = 2**31 - 1
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def reject_unknown(names: Iterable[str], accepted: Collection[str]) -> None:
    """400 for the first of ``names`` that is not ``accepted``, naming it and the accepted one
    closest to it: a mistyped parameter must not be silently ignored."""
    for name in names:
        if name not in accepted:
            listing = ", ".join(sorted(accepted)) if accepted else "none"
            raise BadRequestException(
                f"Unknown parameter {name!r}{did_you_mean(name, accepted)}; accepted: {listing}"
            )


def int_param(
    params: Mapping[str, Any],
    name: str,
    default: int | None,
    minimum: int = 0,
    maximum: int = INT_MAX,
) -> int | None:
    """An integer parameter in [``minimum``, ``maximum``]; ``default`` when absent or empty."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    # A JSON body may carry true or 2.5: int() would read them as 1 and 2 without a word.
    if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
        raise BadRequestException(f"Invalid value for {name}: {raw!r} (expected an integer)")
    try:
        value = int(raw)
    except (TypeError, ValueError, OverflowError):
        raise BadRequestException(
            f"Invalid value for {name}: {raw!r} (expected an integer)"
        ) from None
    if value < minimum:
        raise BadRequestException(f"Invalid value for {name}: {value} (must be >= {minimum})")
    if value > maximum:
        raise BadRequestException(f"Invalid value for {name}: {value} (must be <= {maximum})")
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
