"""Finding the payload in one row of a handler's ``data``."""

from __future__ import annotations

from typing import Any

from modelserve_handlers.errors import BadInputError

# A body that decodes to one of these carries nothing to predict on.
EMPTY_VALUES: tuple[Any, ...] = (b"", "", [], {})
PAYLOAD_NAMES = ("data", "body")
# How many of a request's other parameters an error message names.
NAMED_PARAMETERS = 5


def row_payload(row: dict[str, Any]) -> Any:
    """TorchServe's lookup: a form field named ``data``, else the request ``body``."""
    return row.get("data") or row.get("body")


def required_payload(row: dict[str, Any], expected: str) -> Any:
    """The row's payload; BadInputError saying what to send when there is none."""
    payload = row_payload(row)
    if payload is None or payload in EMPTY_VALUES:
        raise BadInputError(missing_payload(row, expected))
    return payload


def missing_payload(row: dict[str, Any], expected: str) -> str:
    """The error message for a row without a payload, ``expected`` saying what to send.

    A request whose bytes arrived under another name (a form field, a query parameter) is
    never called empty: the message names those parameters and their sizes.
    """
    wanted = f"expected {expected} in the body or in a 'data' form field"
    others = [name for name in row if name not in PAYLOAD_NAMES]
    if not others:
        empty = "empty 'data' form field" if "data" in row else "empty request body"
        return f"{empty}: {wanted}"
    named = ", ".join(f"{name!r} ({_size(row[name])})" for name in others[:NAMED_PARAMETERS])
    if len(others) > NAMED_PARAMETERS:
        named += f" and {len(others) - NAMED_PARAMETERS} more"
    return f"{wanted}; the request had only the parameters {named}"


def _size(value: Any) -> str:
    if isinstance(value, bytes | bytearray | str):
        unit = "byte" if isinstance(value, bytes | bytearray) else "character"
        return f"{len(value)} {unit}{'' if len(value) == 1 else 's'}"
    return payload_kind(value)


_JSON_KINDS: dict[type, str] = {
    dict: "a JSON object",
    list: "a JSON array",
    int: "a JSON number",
    float: "a JSON number",
    bool: "a JSON boolean",
}


def payload_kind(payload: Any) -> str:
    """How to name a payload of the wrong type in an error message."""
    return _JSON_KINDS.get(type(payload), type(payload).__name__)
