"""KServe v2 REST bodies ↔ protocol-neutral tensors, as the frontend reads and writes them for
pipelines: JSON values packed little-endian, binary data after the JSON, BYTES as UTF-8 text
(binary where it is not), and bodies that do not add up refused naming the input."""

from __future__ import annotations

import struct

import orjson
import pytest

from modelserve.api.tensor_bodies import decode_infer_body, encode_infer_body
from modelserve.engine.errors import BadRequestException
from modelserve.protocol_contract import Tensor, TensorInferResponse, pack_bytes


def test_json_and_binary_inputs_decode_to_raw_data() -> None:
    header = orjson.dumps(
        {
            "id": "7",
            "inputs": [
                {"name": "a", "shape": [2], "datatype": "UINT8", "data": [1, 255]},
                {"name": "b", "shape": [2], "datatype": "BYTES", "data": ["é", ""]},
                {
                    "name": "c",
                    "shape": [1],
                    "datatype": "INT64",
                    "parameters": {"binary_data_size": 8},
                },
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
            "parameters": {"binary_data_output": False, "priority": 2},
        }
    )
    body = decode_infer_body(header + struct.pack("<q", -5), str(len(header)))
    a, b, c = body.tensors.inputs
    assert a.data == bytes([1, 255]) and b.data == pack_bytes(["é".encode(), b""])
    assert struct.unpack("<q", c.data) == (-5,) and c.parameters == {}
    assert body.tensors.id == "7" and body.tensors.parameters == {"priority": 2}
    assert [output.name for output in body.tensors.outputs] == ["y"]
    assert body.binary == {"y": True} and not body.binary_output


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "a", "shape": [3], "datatype": "FP32", "data": [1, 2]}, "needs 3 elements"),
        ({"name": "a", "shape": [1], "datatype": "UINT8", "data": [256]}, "do not fit"),
        ({"name": "a", "shape": [1], "datatype": "FP99", "data": [1]}, "unknown datatype"),
        ({"name": "a", "shape": [-1], "datatype": "FP32", "data": [1]}, "non-negative"),
    ],
)
def test_a_body_that_does_not_add_up_names_the_input(entry: dict, message: str) -> None:
    with pytest.raises(BadRequestException, match=message) as refused:
        decode_infer_body(orjson.dumps({"inputs": [entry]}), None)
    assert 'input "a"' in refused.value.message


def test_outputs_are_json_unless_binary_is_asked_or_needed() -> None:
    answer = TensorInferResponse(
        [
            Tensor("y", "FP32", [3], struct.pack("<3f", 1.5, -2.0, 0.1)),
            Tensor("text", "BYTES", [1], pack_bytes([b"ok"])),
            Tensor("raw", "BYTES", [1], pack_bytes([b"\xff"])),  # not UTF-8: binary
        ],
        "m",
        "1",
        "7",
    )
    asked = decode_infer_body(
        orjson.dumps({"inputs": [{"name": "x", "shape": [0], "datatype": "FP32", "data": []}]}),
        None,
    )
    encoded = encode_infer_body(answer, asked)
    document = orjson.loads(encoded.body[: encoded.json_length])
    assert (document["model_name"], document["model_version"], document["id"]) == ("m", "1", "7")
    y, text, raw = document["outputs"]
    # 0.1 as FP32 is written as numpy writes it, not as its widened double 0.10000000149…
    assert y["data"] == [1.5, -2.0, 0.1] and text["data"] == ["ok"]
    assert raw["parameters"] == {"binary_data_size": 5}
    assert encoded.body[encoded.json_length :] == pack_bytes([b"\xff"])


# The widened doubles of FP32 values, and numpy's str() of each: the largest FP32 (whose
# shorter roundings overflow FP32), the smallest normal and subnormal, a power of two, and
# values needing 1 to 8 digits.
FP32_AS_NUMPY_WRITES = [
    (3.4028234663852886e38, 3.4028235e38),
    (-1.1754943508222875e-38, -1.1754944e-38),
    (1.401298464324817e-45, 1e-45),
    (0.0009765625, 0.0009765625),
    (0.30000001192092896, 0.3),
    (0.007000000216066837, 0.007),
    (123456.7890625, 123456.79),
    (-2.7182817459106445, -2.7182817),
]
# The same for FP16: the largest, the smallest subnormal, and values needing 1 to 5 digits.
FP16_AS_NUMPY_WRITES = [
    (65504.0, 65500.0),
    (5.960464477539063e-08, 6e-08),
    (0.0999755859375, 0.1),
    (-0.0004000663757324219, -0.0004),
    (3.140625, 3.14),
    (1000.5, 1000.5),
]


@pytest.mark.parametrize(
    ("datatype", "layout", "widened_and_numpy"),
    [("FP32", "f", FP32_AS_NUMPY_WRITES), ("FP16", "e", FP16_AS_NUMPY_WRITES)],
)
def test_short_float_outputs_are_written_as_numpy_writes_them(
    datatype: str, layout: str, widened_and_numpy: list[tuple[float, float]]
) -> None:
    widened = [value for value, _ in widened_and_numpy]
    data = struct.pack(f"<{len(widened)}{layout}", *widened)
    answer = TensorInferResponse([Tensor("y", datatype, [len(widened)], data)], "m", "", "")
    asked = decode_infer_body(
        orjson.dumps({"inputs": [{"name": "x", "shape": [0], "datatype": "FP32", "data": []}]}),
        None,
    )
    (y,) = orjson.loads(encode_infer_body(answer, asked).body)["outputs"]
    assert y["data"] == [written for _, written in widened_and_numpy]
