"""gRPC v2 ModelInfer in protocol-neutral form: tensors travel to the worker as raw buffers
(one ZeroMQ frame each) and come back as ``raw_output_contents``, with no REST body between.

A real server with ONNX models behind the ``tensor`` handler (``pair``: FP32 and INT64 inputs,
``strings``: BYTES) and two function handlers: ``echo`` (fixtures/handlers/tensor_echo.py)
answers tensor requests itself, ``probe`` does not. In process: the tensor handler run by the
worker's ModelService on a mixed batch (tensors and a REST body) that went through the wire.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from framework_models import SAMPLE, save_onnx_pair, save_onnx_strings, tensor_archive
from modelserve_handlers.tensor_io.neutral import decode_tensor_request
from support import (
    RunningServer,
    build_test_archive,
    queue_depth,
    start_server,
    wait_until,
    worker_processes,
)
from tritonclient.grpc import service_pb2, service_pb2_grpc

from modelserve import wire
from modelserve.protocol_contract import (
    HEADER_LENGTH,
    PROTOCOL_HEADER,
    V2,
    Tensor,
    TensorInferRequest,
)
from modelserve.wire import RequestParameter, WireRequest, WorkerSpec
from modelserve.worker.service import ModelService

B = np.array([[1, 2, 3, 4], [-1, 0, 1, 2]], dtype=np.int64)
TEXT = np.array([b"a", b"hello", "\u00e9t\u00e9".encode(), b""], dtype=object)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    build = tmp_path_factory.mktemp("grpc_tensor_models")
    store = tmp_path_factory.mktemp("grpc_tensor_store")
    tensor_archive(store, "pair", save_onnx_pair(build)[0])
    tensor_archive(store, "strings", save_onnx_strings(build))
    build_test_archive(store, "echo", "tensor_echo.py")
    build_test_archive(store, "probe", "probe.py")
    server = start_server(tmp_path_factory.mktemp("grpc_tensor_server"), store)
    try:
        with httpx.Client(base_url=server.management, timeout=120) as management:
            for url, settings in (
                ("pair.mar", {}),
                ("strings.mar", {}),
                # Batches of up to 4: requests queued behind a held one are served together.
                ("echo.mar", {"batch_size": 4, "max_batch_delay": 50}),
                ("probe.mar", {}),
            ):
                params = {"url": url, "initial_workers": 1, **settings}
                response = management.post("/models", params=params)
                assert response.status_code == 200, response.text
        yield server
    finally:
        server.stop()


@pytest.fixture
def stub(served: RunningServer) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(served.grpc_inference) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def infer_call(stub: service_pb2_grpc.GRPCInferenceServiceStub, request: Any) -> Any:
    """The call's error (code, details), or its response."""
    try:
        return stub.ModelInfer(request, timeout=60)
    except grpc.RpcError as error:
        return error.code(), error.details()


def raw_request(model: str, *tensors: tuple[str, str, list[int], bytes]) -> Any:
    request = service_pb2.ModelInferRequest(model_name=model)
    for name, datatype, shape, data in tensors:
        request.inputs.add(name=name, datatype=datatype, shape=shape)
        request.raw_input_contents.append(data)
    return request


# ----- BYTES


def test_bytes_tensors_raw_and_typed(
    served: RunningServer, stub: service_pb2_grpc.GRPCInferenceServiceStub
) -> None:
    text = triton.InferInput("text", [len(TEXT)], "BYTES")
    text.set_data_from_numpy(TEXT)
    client = triton.InferenceServerClient(served.grpc_inference)
    try:
        answer = client.infer("strings", [text]).as_numpy("echo")
    finally:
        client.close()
    assert answer.tolist() == TEXT.tolist()
    request = service_pb2.ModelInferRequest(model_name="strings")
    typed = request.inputs.add(name="text", datatype="BYTES", shape=[len(TEXT)])
    typed.contents.bytes_contents.extend(TEXT.tolist())
    response = stub.ModelInfer(request, timeout=60)
    (output,) = response.outputs
    assert (output.name, output.datatype, list(output.shape)) == ("echo", "BYTES", [len(TEXT)])
    # Each element: a 4-byte little-endian length, then its bytes.
    assert response.raw_output_contents[0] == b"".join(
        struct.pack("<I", len(item)) + item for item in TEXT.tolist()
    )


# ----- refusals


def test_data_that_do_not_fit_the_shape_are_invalid_arguments(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
) -> None:
    a, b = SAMPLE.tobytes(), B.tobytes()
    cases = [
        (
            raw_request("pair", ("a", "FP32", [2, 4], a[:12]), ("b", "INT64", [2, 4], b)),
            'input "a": 8 FP32 values take 32 bytes, its data size is 12',
        ),
        (
            raw_request("pair", ("a", "FP32", [2, 4], a), ("b", "INT64", [3, 4], b)),
            'input "b": 12 INT64 values take 96 bytes, its data size is 64',
        ),
        (
            raw_request("pair", ("a", "FP32", [-1, 4], a), ("b", "INT64", [2, 4], b)),
            'input "a": "shape" must be a list of non-negative integers',
        ),
        (
            raw_request("pair", ("a", "BF16", [2, 4], a[:16]), ("b", "INT64", [2, 4], b)),
            "input \"a\": unsupported datatype 'BF16'",
        ),
        (
            raw_request("strings", ("text", "BYTES", [1], struct.pack("<I", 5) + b"ab")),
            'input "text": a BYTES element runs past the end of the data',
        ),
    ]
    for request, message in cases:
        code, details = infer_call(stub, request)
        assert code is grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith(message)


# ----- any handler may answer tensors


def test_a_handler_answers_tensor_requests_itself(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
) -> None:
    data = [bytes(range(256)) * 3, b"\x00\x01"]
    request = raw_request("echo", ("x", "UINT8", [3, 256], data[0]), ("y", "INT16", [1], data[1]))
    request.id = "call-1"
    response = stub.ModelInfer(request, timeout=60)
    assert (response.model_name, response.model_version, response.id) == ("echo", "", "call-1")
    assert [(output.name, output.datatype, list(output.shape)) for output in response.outputs] == [
        ("x", "UINT8", [3, 256]),
        ("y", "INT16", [1]),
    ]
    assert list(response.raw_output_contents) == data
    assert response.parameters["batch"].int64_param == 1


def test_a_batch_of_tensor_and_rest_requests(
    served: RunningServer, stub: service_pb2_grpc.GRPCInferenceServiceStub, tmp_path: Path
) -> None:
    """A gRPC tensor request and a REST request queued together are served in one batch."""
    started, hold = tmp_path / "started", tmp_path / "hold"
    held = raw_request("echo", ("x", "UINT8", [1], b"\x07"))
    held.parameters["started"].string_param = str(started)
    held.parameters["hold"].string_param = str(hold)
    tensors = raw_request("echo", ("x", "FP32", [2, 4], SAMPLE.tobytes()))
    rest_url = served.inference + "/predictions/echo"
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(infer_call, stub, held)
        wait_until(started.exists)
        grpc_answer = pool.submit(infer_call, stub, tensors)
        rest_answer = pool.submit(httpx.post, rest_url, json={"echo": 1}, timeout=60)
        wait_until(lambda: queue_depth(served, "echo") == 2)
        hold.touch()
        assert first.result().parameters["batch"].int64_param == 1
        response = grpc_answer.result()
        rest = rest_answer.result()
    assert response.parameters["batch"].int64_param == 2
    assert response.raw_output_contents[0] == SAMPLE.tobytes()
    assert rest.status_code == 200 and rest.json() == {"batch": 2}


def test_output_tensors_the_wire_cannot_carry(
    served: RunningServer, stub: service_pb2_grpc.GRPCInferenceServiceStub
) -> None:
    workers = {process.pid for process in worker_processes(served)}
    request = raw_request("echo", ("x", "UINT8", [1], b"\x07"))
    request.parameters["bad_shape"].bool_param = True
    code, details = infer_call(stub, request)
    assert code is grpc.StatusCode.INTERNAL
    assert "the handler's answer" in details
    # The worker answered the failure and goes on serving.
    assert list(infer_call(stub, raw_request("echo", ("x", "UINT8", [1], b"\x07"))).outputs)
    assert {process.pid for process in worker_processes(served)} == workers


def test_tensors_answered_to_a_rest_request(served: RunningServer) -> None:
    response = httpx.post(served.inference + "/predictions/echo", json={"tensors": True})
    assert response.status_code == 500
    assert response.json()["type"] == "InvalidModelOutput"
    assert "not a tensor request" in response.json()["message"]


def test_a_handler_that_answers_no_tensors(stub: service_pb2_grpc.GRPCInferenceServiceStub) -> None:
    code, details = infer_call(stub, raw_request("probe", ("x", "UINT8", [1], b"\x07")))
    assert code is grpc.StatusCode.INTERNAL
    assert details.startswith("model probe: the handler's answer is not a v2 response")


# ----- the tensor handler, in process


def test_tensor_inputs_are_read_without_a_copy() -> None:
    buffer = bytearray(SAMPLE.tobytes())
    request = TensorInferRequest([Tensor("a", "FP32", [2, 4], memoryview(buffer))])
    array = decode_tensor_request(request)["a"]
    assert np.array_equal(array, SAMPLE)
    buffer[:4] = struct.pack("<f", 42.0)  # the array is a view of the received buffer
    assert array[0, 0] == 42.0


def v2_binary_body(a: np.ndarray, b: np.ndarray) -> tuple[bytes, int]:
    header = {
        "inputs": [
            {"name": name, "datatype": datatype, "shape": list(array.shape)}
            | {"parameters": {"binary_data_size": array.nbytes}}
            for name, datatype, array in (("a", "FP32", a), ("b", "INT64", b))
        ],
        "outputs": [{"name": "sum", "parameters": {"binary_data": True}}],
    }
    json_part = json.dumps(header).encode()
    return json_part + a.tobytes() + b.tobytes(), len(json_part)


def neutral(a: bytes, b: bytes, b_shape: list[int]) -> WireRequest:
    inputs = [Tensor("a", "FP32", [2, 4], a), Tensor("b", "INT64", b_shape, b)]
    return WireRequest("grpc", {}, [], TensorInferRequest(inputs, id="n"))


def test_a_mixed_batch_through_the_wire_and_the_tensor_handler(tmp_path: Path) -> None:
    """Tensor requests and a v2 REST body in one batch; the bad one is refused alone."""
    pair_file, reference = save_onnx_pair(tmp_path)
    manifest = {"model": {"serializedFile": pair_file.name, "modelVersion": "1.0"}}
    spec = WorkerSpec("w", "", "pair", "1.0", str(tmp_path), "tensor", 4, manifest)
    service = ModelService(spec)
    assert service.tensor_metadata()["platform"] == "onnxruntime_onnx"
    body, json_length = v2_binary_body(SAMPLE * 2, B)
    rest_headers = {PROTOCOL_HEADER: V2, HEADER_LENGTH: str(json_length)}
    batch = [
        neutral(SAMPLE.tobytes(), B.tobytes(), [2, 4]),
        WireRequest("rest", rest_headers, [RequestParameter("body", None, body)]),
        neutral(SAMPLE.tobytes(), B.tobytes(), [3, 4]),
    ]
    header, *frames = wire.encode_batch(1, batch)
    # As the worker receives them: writable buffers, tensor data uncopied.
    received = wire.decode_batch(
        wire.decode_header(header), [memoryview(bytearray(frame)) for frame in frames]
    )
    outcome, telemetry = service.predict(received)
    assert isinstance(outcome, list)
    header, *frames = wire.encode_result(1, outcome, telemetry)
    good, rest, bad = wire.decode_result(
        wire.decode_header(header), [bytes(frame) for frame in frames]
    )

    expected = reference(a=SAMPLE, b=B)
    assert good.status == 200 and good.tensors is not None
    assert (good.tensors.model_name, good.tensors.model_version, good.tensors.id) == (
        "pair",
        "1.0",
        "n",
    )
    for tensor in good.tensors.outputs:
        assert (tensor.datatype, tensor.shape) == ("FP32", [2, 4])
        answer = np.frombuffer(tensor.data, dtype="<f4").reshape(2, 4)
        assert np.allclose(answer, expected[tensor.name], atol=1e-6)
    assert [tensor.name for tensor in good.tensors.outputs] == ["sum", "product"]

    assert rest.status == 200 and rest.tensors is None
    split = int(rest.headers[HEADER_LENGTH])
    assert json.loads(rest.body[:split])["outputs"][0]["name"] == "sum"
    rest_sum = np.frombuffer(rest.body[split:], dtype="<f4").reshape(2, 4)
    assert np.allclose(rest_sum, reference(a=SAMPLE * 2, b=B)["sum"], atol=1e-6)

    assert (bad.status, bad.tensors) == (400, None)
    assert bad.body == b'input "b": 12 INT64 values take 96 bytes, its data size is 64'
