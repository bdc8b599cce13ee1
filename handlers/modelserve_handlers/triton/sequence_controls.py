"""A Triton stateful model's view of its sequence, as Triton's sequence batcher gives it: the
request's correlation id and START / END flags, and the control input tensors that the
config's ``sequence_batching.control_input`` names (START, END, READY, CORRID).

The frontend keeps each sequence on one worker and writes it in TorchServe's headers on every
request (``ts_request_sequence_id``, and "true" in ``ts_request_sequence_start`` /
``ts_request_sequence_end`` on its first and last one); the id keeps the type the client gave
it (a v2 ``sequence_id`` parameter: a number or a string). Each control tensor holds one
element for the request, shaped ``[1]``, or ``[1, 1]`` when the model batches
(``max_batch_size`` > 0), as Triton shapes them per request. READY is always true: every
request of a batch is ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modelserve.protocol_contract import (
    SEQUENCE_END_HEADER,
    SEQUENCE_ID_HEADER,
    SEQUENCE_ID_PARAMETER,
    SEQUENCE_START_HEADER,
)
from modelserve_handlers.errors import BadInputError
from modelserve_handlers.tensor_io.buffers import object_array
from modelserve_handlers.tensor_io.datatypes import numpy_dtype

from .inputs import v2_datatype

# Triton's TRITONSERVER_REQUEST_FLAG_SEQUENCE_START / _END.
FLAG_SEQUENCE_START = 1
FLAG_SEQUENCE_END = 2
# The control kind a config leaves out when it is the first (protobuf's default enum value).
DEFAULT_KIND = "CONTROL_SEQUENCE_START"
# The datatypes a CORRID control may have, by the type of the id (Triton's rule).
CORRID_TYPES = {int: ("UINT64", "INT64", "UINT32", "INT32"), str: ("BYTES",)}


@dataclass(frozen=True, slots=True)
class RequestSequence:
    """The sequence a request belongs to (correlation id 0: none)."""

    correlation_id: int | str
    start: bool
    end: bool

    @property
    def flags(self) -> int:
        """Triton's request flags: FLAG_SEQUENCE_START | FLAG_SEQUENCE_END."""
        return FLAG_SEQUENCE_START * self.start | FLAG_SEQUENCE_END * self.end


def request_sequence(context: Any, index: int, parameters: dict[str, Any]) -> RequestSequence:
    """Request ``index``'s sequence, from the frontend's headers; ``parameters`` are the
    request's own (a v2 ``sequence_id`` there gives the id its type)."""
    named = context.get_request_header(index, SEQUENCE_ID_HEADER)
    if named is None:
        return RequestSequence(0, False, False)
    typed = parameters.get(SEQUENCE_ID_PARAMETER)
    same = isinstance(typed, int | str) and not isinstance(typed, bool) and str(typed) == named
    return RequestSequence(
        typed if same else named,
        context.get_request_header(index, SEQUENCE_START_HEADER) == "true",
        context.get_request_header(index, SEQUENCE_END_HEADER) == "true",
    )


def control_inputs(
    config: dict[str, Any], context: Any, index: int, request: Any
) -> dict[str, np.ndarray]:
    """The control inputs of request ``index`` of the batch (``request``, decoded in any
    protocol), for a framework model that takes them as inputs (the ``tensor`` handler)."""
    parameters = getattr(request, "parameters", None)
    sequence = request_sequence(context, index, parameters if isinstance(parameters, dict) else {})
    return control_tensors(config, sequence)


def control_tensors(config: dict[str, Any], sequence: RequestSequence) -> dict[str, np.ndarray]:
    """The control inputs ``config`` declares, for one request of ``sequence``;
    BadInputError for a correlation id the CORRID control cannot hold."""
    batching = config.get("sequence_batching") or {}
    shape = (1, 1) if int(config.get("max_batch_size", 0)) > 0 else (1,)
    tensors = {}
    for control_input in batching.get("control_input", []):
        for control in control_input.get("control", []):
            name = control_input["name"]
            kind = control.get("kind", DEFAULT_KIND)
            if kind == "CONTROL_SEQUENCE_CORRID":
                tensors[name] = _correlation_id(name, control, sequence).reshape(shape)
                continue
            on = {
                DEFAULT_KIND: sequence.start,
                "CONTROL_SEQUENCE_END": sequence.end,
                "CONTROL_SEQUENCE_READY": True,
            }[kind]
            tensors[name] = _flag_tensor(control, on).reshape(shape)
    return tensors


def _flag_tensor(control: dict[str, Any], on: bool) -> np.ndarray:
    """The control's false or true value, in the type its ``*_false_true`` pair gives."""
    for key, dtype in (
        ("int32_false_true", np.int32),
        ("fp32_false_true", np.float32),
        ("bool_false_true", np.bool_),
    ):
        pair = control.get(key)
        if pair:
            return np.array([pair[int(on)]], dtype=dtype)
    # Triton refuses such a config at load; a model that got here reads plain 0 / 1.
    return np.array([int(on)], dtype=np.int32)


def _correlation_id(name: str, control: dict[str, Any], sequence: RequestSequence) -> np.ndarray:
    datatype = v2_datatype(str(control.get("data_type", "TYPE_UINT64")))
    sent = type(sequence.correlation_id)
    if datatype not in CORRID_TYPES[sent]:
        raise BadInputError(
            f"sequence batching control '{name}' data-type is "
            f"'{'BYTES' if sent is str else 'UINT64'}', but the model expects '{datatype}'"
        )
    if sent is str:
        return object_array([str(sequence.correlation_id).encode()])
    try:
        return np.array([sequence.correlation_id], dtype=numpy_dtype(datatype))
    except OverflowError as exc:
        raise BadInputError(
            f"sequence batching control '{name}': correlation id {sequence.correlation_id} "
            f"does not fit the model's {datatype}"
        ) from exc
