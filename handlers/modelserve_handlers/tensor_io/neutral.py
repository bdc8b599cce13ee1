"""Protocol-neutral tensor requests (``protocol_contract.TensorInferRequest``: gRPC ModelInfer)
decoded to arrays, and the model's outputs answered as ``TensorInferResponse``.

Each input's data is its own buffer: fixed-size datatypes become arrays over it without a copy
(``numpy.frombuffer``), and each output's data is a view of the output array where its layout
already is the binary one. Every output is answered as raw data: gRPC has no JSON outputs.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from modelserve.protocol_contract import Tensor, TensorInferRequest, TensorInferResponse
from modelserve_handlers.errors import BadInputError

from . import Tensors
from .buffers import array_from_buffer, check_outputs, element_count, raw_data
from .datatypes import output_datatype

# What a size mismatch names as the data's length.
DATA_SIZE = "its data size"


class Neutral(Enum):
    """A tensor request's protocol, where other requests have their protocol header's value
    (a str, so never equal to this) or None (the plain formats)."""

    TENSORS = "tensors"


Protocol = str | Neutral | None


def decode_tensor_request(request: TensorInferRequest) -> dict[str, np.ndarray]:
    """The request's inputs by name, shaped as sent."""
    if not request.inputs:
        raise BadInputError("a tensor request needs at least one input")
    tensors: dict[str, np.ndarray] = {}
    for tensor in request.inputs:
        where = f'input "{tensor.name}"'
        if tensor.name in tensors:
            raise BadInputError(f"{where} is given twice")
        count = element_count(tensor.shape, tensor.datatype, where)
        array = array_from_buffer(tensor.data, tensor.datatype, count, where, DATA_SIZE)
        tensors[tensor.name] = array.reshape(tensor.shape)
    return tensors


def encode_tensor_response(
    request: TensorInferRequest, outputs: Tensors, model_name: str, model_version: str | None
) -> TensorInferResponse:
    """The outputs the request asked for (all when it named none), in the order asked."""
    names = [output.name for output in request.outputs] or list(outputs)
    check_outputs(names, outputs)
    answered = []
    for name in names:
        array = outputs[name]
        datatype = output_datatype(name, array)
        answered.append(Tensor(name, datatype, list(array.shape), raw_data(array, datatype)))
    return TensorInferResponse(answered, model_name, model_version or "", request.id)
