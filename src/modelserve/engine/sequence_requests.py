"""Which sequence a request to a stateful model belongs to, whichever protocol named it.

* KServe v2 (Triton's sequence extension): the request's ``parameters`` ``sequence_id`` (a
  uint64 or a string; 0 and "" name none), ``sequence_start`` and ``sequence_end`` (booleans),
  in a gRPC ModelInfer request or in the JSON of a REST one (its JSON part, when binary data
  follows). Triton's rules apply: an id the server does not know needs ``sequence_start``.
* TorchServe: the ``ts_request_sequence_id`` header (REST), or ``sequence_id`` of a gRPC
  ``PredictionsRequest`` (the servicer puts it in that header); ``ts_request_sequence_start``
  and ``ts_request_sequence_end`` headers of "true" start and end one. An id the server does
  not know starts a sequence, as in TorchServe.

Once the batcher has placed the request, ``mark_request`` writes TorchServe's three headers
on it, so every handler reads the same thing: the id (``context.get_sequence_id``), and
"true" on a sequence's first and last request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from modelserve.engine.errors import BadRequestException
from modelserve.protocol_contract import (
    HEADER_LENGTH,
    PROTOCOL_HEADER,
    SEQUENCE_END_HEADER,
    SEQUENCE_END_PARAMETER,
    SEQUENCE_ID_HEADER,
    SEQUENCE_ID_PARAMETER,
    SEQUENCE_PARAMETERS,
    SEQUENCE_START_HEADER,
    SEQUENCE_START_PARAMETER,
    V2,
)
from modelserve.wire import WireRequest

SequenceId = int | str


@dataclass(frozen=True, slots=True)
class SequenceMark:
    """How a request names its sequence."""

    # None: the request names no sequence.
    sequence_id: SequenceId | None
    start: bool
    end: bool
    # Named by Triton's parameters: an unknown id needs ``start`` (TorchServe's header: no).
    triton: bool


def read_mark(request: WireRequest) -> SequenceMark:
    """The request's sequence as its protocol names it; 400 for a malformed one."""
    parameters = _v2_parameters(request)
    if any(key in parameters for key in SEQUENCE_PARAMETERS):
        sequence_id = parameters.get(SEQUENCE_ID_PARAMETER, 0)
        if isinstance(sequence_id, bool) or not isinstance(sequence_id, int | str):
            raise _unparsable(SEQUENCE_ID_PARAMETER, "an unsigned integer or a string", sequence_id)
        if isinstance(sequence_id, int) and sequence_id < 0:
            raise _unparsable(SEQUENCE_ID_PARAMETER, "an unsigned integer or a string", sequence_id)
        return SequenceMark(
            sequence_id or None,
            _flag(parameters, SEQUENCE_START_PARAMETER),
            _flag(parameters, SEQUENCE_END_PARAMETER),
            triton=True,
        )
    headers = request.headers
    return SequenceMark(
        headers.get(SEQUENCE_ID_HEADER) or None,
        headers.get(SEQUENCE_START_HEADER, "").lower() == "true",
        headers.get(SEQUENCE_END_HEADER, "").lower() == "true",
        triton=False,
    )


def mark_request(request: WireRequest, sequence_id: SequenceId, start: bool, end: bool) -> None:
    """Write the request's sequence in TorchServe's headers, for the handler."""
    headers = request.headers
    headers[SEQUENCE_ID_HEADER] = str(sequence_id)
    for header, value in ((SEQUENCE_START_HEADER, start), (SEQUENCE_END_HEADER, end)):
        if value:
            headers[header] = "true"
        else:
            headers.pop(header, None)


def _v2_parameters(request: WireRequest) -> dict[str, Any]:
    """The request's v2 parameters: a gRPC request's, or those in a REST request's JSON."""
    if request.tensors is not None:
        return request.tensors.parameters
    if request.headers.get(PROTOCOL_HEADER) != V2 or not request.parameters:
        return {}
    body = request.parameters[0].value
    length = request.headers.get(HEADER_LENGTH)
    if length is not None and length.strip().isdigit():
        body = body[: int(length)]
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestException(f"the request body is not JSON: {exc}") from exc
    parameters = document.get("parameters") if isinstance(document, dict) else None
    return parameters if isinstance(parameters, dict) else {}


def _flag(parameters: dict[str, Any], name: str) -> bool:
    value = parameters.get(name, False)
    if not isinstance(value, bool):
        raise _unparsable(name, "a boolean", value)
    return value


def _unparsable(name: str, expected: str, value: Any) -> BadRequestException:
    # Triton's words ("Unable to parse 'sequence_id'"), and what was wrong.
    return BadRequestException(f"Unable to parse '{name}': expected {expected}, got {value!r}")
