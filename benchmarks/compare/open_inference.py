"""The benchmark's request and answer in the Open Inference Protocol (KServe v2) JSON form.

MLServer, Triton (through PyTriton) and modelserve's ``/v2/models/{m}/infer`` all take the one
sample as the FP32 tensor ``input__0`` shaped ``[1, ...sample shape]`` and answer its class
index as the INT64 output ``class``.
"""

from __future__ import annotations

import json
from array import array

from compare.models import ModelFiles

INPUT_NAME = "input__0"
OUTPUT_NAME = "class"
JSON_TYPE = "application/json"


def sample_values(files: ModelFiles) -> list[float]:
    """The one sample of the shared request body (raw float32 bytes, machine order) as floats.

    Every float32 prints and parses back exactly, so a JSON body carrying these values gives
    the model the very input the raw body does.
    """
    return array("f", files.body).tolist()


def v2_request(files: ModelFiles) -> tuple[bytes, str]:
    """A v2 inference request carrying the one sample as an FP32 ``[1, ...shape]`` tensor."""
    assert files.input_shape is not None
    tensor = {
        "name": INPUT_NAME,
        "shape": [1, *files.input_shape],
        "datatype": "FP32",
        "data": sample_values(files),
    }
    return json.dumps({"inputs": [tensor]}).encode(), JSON_TYPE


def v2_answer_class(body: bytes) -> int | None:
    """The ``class`` output of a v2 inference response, or None if it carries none."""
    try:
        outputs = json.loads(body)["outputs"]
        return next(int(o["data"][0]) for o in outputs if o["name"] == OUTPUT_NAME)
    except (ValueError, KeyError, TypeError, IndexError, StopIteration):
        return None
