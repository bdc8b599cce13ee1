"""Wire messages survive a round trip with bodies kept as separate frames."""

from __future__ import annotations

from modelserve import wire
from modelserve.protocol_contract import (
    RequestedOutput,
    Tensor,
    TensorInferRequest,
    TensorInferResponse,
    pack_bytes,
)


def test_batch_round_trip_keeps_bodies_out_of_the_header() -> None:
    requests = [
        wire.WireRequest(
            "r1", {"a": "b"}, [wire.RequestParameter("body", "image/png", b"\x00" * 64)]
        ),
        wire.WireRequest(
            "r2",
            {},
            [
                wire.RequestParameter("q", None, b"1"),
                wire.RequestParameter("body", "application/json", b"{}"),
            ],
        ),
    ]
    header_frame, *frames = wire.encode_batch(7, requests)
    assert len(header_frame) < 100 and frames[0] == b"\x00" * 64
    header = wire.decode_header(header_frame)
    assert header["k"] == wire.BATCH and header["id"] == 7
    assert wire.decode_batch(header, frames) == requests


def test_result_and_batch_error_round_trip() -> None:
    responses = [wire.WireResponse(201, "made", "text/plain", {"x": "y"}, b"ok")]
    header_frame, *frames = wire.encode_result(3, responses, wire.BatchTelemetry([], 1.0, 2.0))
    assert wire.decode_result(wire.decode_header(header_frame), frames) == responses
    error = wire.BatchError(507, "MemoryError", "out of memory")
    [header_frame] = wire.encode_batch_error(3, error, wire.BatchTelemetry([], 1.0, 2.0))
    assert wire.decode_result(wire.decode_header(header_frame), []) == error


# ----- tensors in protocol-neutral form


def tensor_request() -> TensorInferRequest:
    inputs = [
        Tensor("a", "FP32", [2, 2], bytes(16), {"note": "x"}),
        Tensor("text", "BYTES", [2], pack_bytes([b"hi", b""])),
        Tensor("b", "INT64", [0, 3], b""),
    ]
    outputs = [RequestedOutput("sum"), RequestedOutput("product", {"k": 1})]
    return TensorInferRequest(inputs, "id-1", {"priority": 2, "flag": True}, outputs)


def test_tensor_request_round_trip_keeps_each_buffer_as_its_frame() -> None:
    rest = wire.WireRequest("r1", {}, [wire.RequestParameter("body", None, b"{}")])
    tensors = wire.WireRequest("r2", {}, [], tensor_request())
    header_frame, *frames = wire.encode_batch(5, [rest, tensors])
    # Every tensor's data is its own frame, the very object given: nothing was copied.
    assert frames[0] == b"{}"
    assert all(
        frame is tensor.data
        for frame, tensor in zip(frames[1:], tensors.tensors.inputs, strict=True)
    )
    assert len(header_frame) < 200
    header = wire.decode_header(header_frame)
    assert wire.carries_tensors(header)
    assert wire.decode_batch(header, frames) == [rest, tensors]
    # As the worker receives them: buffers; tensor data stay those very buffers, other
    # values become bytes.
    received = [memoryview(bytearray(frame)) for frame in frames]
    decoded_rest, decoded = wire.decode_batch(header, received)
    assert type(decoded_rest.parameters[0].value) is bytes
    assert decoded == tensors
    assert all(
        tensor.data is frame
        for tensor, frame in zip(decoded.tensors.inputs, received[1:], strict=True)
    )


def test_a_batch_without_tensors_is_encoded_as_before() -> None:
    request = wire.WireRequest("r1", {"h": "v"}, [wire.RequestParameter("body", "x/y", b"1")])
    header_frame, _ = wire.encode_batch(9, [request])
    assert header_frame == wire.encode_header(
        {"k": wire.BATCH, "id": 9, "r": [("r1", {"h": "v"}, [("body", "x/y")])]}
    )
    telemetry = wire.BatchTelemetry([], 1.0, 2.0)
    header_frame, _ = wire.encode_result(
        9, [wire.WireResponse(200, "", None, {}, b"ok")], telemetry
    )
    assert header_frame == wire.encode_header(
        {"k": wire.RESULT, "id": 9, "code": 200, "r": [(200, "", None, {})], **telemetry.fields()}
    )


def test_tensor_response_round_trip() -> None:
    outputs = [
        Tensor("sum", "FP32", [2, 2], memoryview(bytearray(16)), {"scale": 0.5}),
        Tensor("text", "BYTES", [1], pack_bytes([b"hello"])),
    ]
    answer = TensorInferResponse(outputs, "m", "2", "id-1", {"batch": 3})
    responses = [
        wire.WireResponse(200, "", None, {}, b"", answer),
        wire.WireResponse(400, "Bad Request", "text/plain", {}, b'input "a": no'),
    ]
    header_frame, *frames = wire.encode_result(4, responses, wire.BatchTelemetry([], 1.0, 2.0))
    assert frames[1] is outputs[0].data and frames[2] is outputs[1].data
    received = [bytes(frame) for frame in frames]
    decoded = wire.decode_result(wire.decode_header(header_frame), received)
    assert decoded == responses
    assert decoded[0].tensors.outputs[0].data is received[1]
    # max_response_size counts the tensors' data.
    assert decoded[0].size() == 16 + 4 + 5 and decoded[1].size() == len(responses[1].body)


def test_parts_credit_and_cancel_round_trip() -> None:
    part = wire.WireResponse(200, "", "text/plain", {"x": "y"}, b"token 1")
    header_frame, *frames = wire.encode_part(4, 1, "r2", part)
    header = wire.decode_header(header_frame)
    assert (header["k"], header["id"], header["i"], header["rid"]) == (wire.PART, 4, 1, "r2")
    assert frames == [b"token 1"] and wire.decode_part(header, frames) == part
    [credit] = wire.encode_credit("r2", 8)
    assert wire.decode_header(credit) == {"k": wire.CREDIT, "rid": "r2", "n": 8}
    [cancel] = wire.encode_cancel("r2")
    assert wire.decode_header(cancel) == {"k": wire.CANCEL, "rid": "r2"}


def test_a_result_entry_may_say_the_parts_were_the_answer() -> None:
    responses = [None, wire.WireResponse(200, "", None, {}, b"whole")]
    header_frame, *frames = wire.encode_result(2, responses, wire.BatchTelemetry([], 1.0, 2.0))
    assert frames == [b"whole"]
    assert wire.decode_result(wire.decode_header(header_frame), frames) == responses
