"""Finding the payload in one row of a handler's ``data``."""

from __future__ import annotations

from typing import Any

from modelserve_handlers.errors import BadInputError

# A body that decodes to one of these carries nothing to predict on.
EMPTY_VALUES: tuple[Any, ...] = (b"", "", [], {})


def row_payload(row: dict[str, Any]) -> Any:
    """TorchServe's lookup: a form field named ``data``, else the request ``body``."""
    return row.get("data") or row.get("body")


def required_payload(row: dict[str, Any], expected: str) -> Any:
    """The row's payload; BadInputError saying what to send when there is none."""
    payload = row_payload(row)
    if payload is None or payload in EMPTY_VALUES:
        raise BadInputError(
            f"empty request: expected {expected} in the body or in a 'data' form field"
        )
    return payload


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
