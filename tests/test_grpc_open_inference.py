"""KServe v2 / Open Inference Protocol over gRPC (``inference.GRPCInferenceService``) on the
gRPC inference port, called with Triton's ``tritonclient.grpc`` from PyPI.

Archives of real models (ONNX with two inputs, TorchScript) for the built-in ``tensor``
handler, served by ``modelserve start``; answers are compared with the frameworks called
in-process.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from framework_models import SAMPLE, tensor_archive
from support import build_test_archive, start_server
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException
from v2_fixtures import TORCHSCRIPT_WARNINGS, B, Served, serving, tensor_models

from modelserve import __version__

pytestmark = TORCHSCRIPT_WARNINGS

TOKEN = "a-long-enough-static-token-0123"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """pair (ONNX, inputs a/b) and torchscript with a worker each; idle with none; and a
    function handler (probe) that does not speak v2."""
    models = tensor_models(tmp_path_factory, "grpc_v2")
    tensor_archive(models.store, "idle", models.files["pair"])
    build_test_archive(models.store, "probe", "probe.py")
    workers = {"pair.mar": 1, "torchscript.mar": 1, "idle.mar": 0, "probe.mar": 1}
    with serving(tmp_path_factory, models, workers) as served:
        yield served


@pytest.fixture
def client(served: Served) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(served.server.grpc_inference)
    yield client
    client.close()


@pytest.fixture
def stub(served: Served) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    """Triton's generated stub, for requests tritonclient does not build (typed contents)."""
    with grpc.insecure_channel(served.server.grpc_inference) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def pair_inputs() -> list[triton.InferInput]:
    a = triton.InferInput("a", list(SAMPLE.shape), "FP32")
    a.set_data_from_numpy(SAMPLE)
    b = triton.InferInput("b", list(B.shape), "INT64")
    b.set_data_from_numpy(B)
    return [a, b]


# ----- health and metadata


def test_health(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_model_ready("pair")
    assert client.is_model_ready("pair", "1.0")
    assert client.is_model_ready("torchscript")
    assert not client.is_model_ready("idle")  # registered with no worker
    assert not client.is_model_ready("nope")
    assert not client.is_model_ready("pair", "9.9")
    # ready = every model that should serve has a worker ("idle" is not meant to).
    assert client.is_server_ready()


def test_server_metadata(client: triton.InferenceServerClient) -> None:
    metadata = client.get_server_metadata(as_json=True)
    assert metadata["name"] == "modelserve"
    assert metadata["version"] == __version__
    assert "binary_tensor_data" in metadata["extensions"]


def test_model_metadata_matches_rest(client: triton.InferenceServerClient, served: Served) -> None:
    metadata = client.get_model_metadata("pair", as_json=True)
    assert metadata["name"] == "pair"
    assert metadata["versions"] == ["1.0"]
    assert metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [
        {"name": "a", "datatype": "FP32", "shape": ["-1", "4"]},  # int64 as JSON strings
        {"name": "b", "datatype": "INT64", "shape": ["-1", "4"]},
    ]
    assert [output["name"] for output in metadata["outputs"]] == ["sum", "product"]
    assert client.get_model_metadata("pair", "1.0", as_json=True) == metadata
    rest = httpx.get(served.server.inference + "/v2/models/torchscript").json()
    script = client.get_model_metadata("torchscript")
    assert script.platform == rest["platform"] == "pytorch_libtorch"
    assert [(tensor.name, tensor.datatype, list(tensor.shape)) for tensor in script.inputs] == [
        (tensor["name"], tensor["datatype"], tensor["shape"]) for tensor in rest["inputs"]
    ]


def test_metadata_of_unknown_model_and_version(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="Model not found: nope") as failure:
        client.get_model_metadata("nope")
    assert failure.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException, match=r"9\.9"):
        client.get_model_metadata("pair", "9.9")


# ----- inference


@pytest.mark.parametrize("version", ["", "1.0"])
def test_infer(client: triton.InferenceServerClient, served: Served, version: str) -> None:
    expected = served.references["pair"](a=SAMPLE, b=B)
    result = client.infer("pair", pair_inputs(), model_version=version, request_id="7")
    response = result.get_response()
    assert response.model_name == "pair"
    assert response.model_version == "1.0"
    assert response.id == "7"
    assert [output.name for output in response.outputs] == ["sum", "product"]
    for name, value in expected.items():
        answer = result.as_numpy(name)
        assert answer.dtype == np.float32 and answer.shape == (2, 4)
        assert np.allclose(answer, value, atol=1e-6)


def test_only_the_outputs_asked_for(client: triton.InferenceServerClient, served: Served) -> None:
    expected = served.references["pair"](a=SAMPLE, b=B)
    # binary_data=False is an HTTP notion: over gRPC every output is raw contents.
    outputs = [triton.InferRequestedOutput("product")]
    result = client.infer("pair", pair_inputs(), outputs=outputs)
    assert result.as_numpy("sum") is None
    assert np.allclose(result.as_numpy("product"), expected["product"], atol=1e-6)


def test_infer_torchscript(client: triton.InferenceServerClient, served: Served) -> None:
    metadata = client.get_model_metadata("torchscript")
    name, output = metadata.inputs[0].name, metadata.outputs[0].name
    tensor = triton.InferInput(name, list(SAMPLE.shape), "FP32")
    tensor.set_data_from_numpy(SAMPLE)
    result = client.infer("torchscript", [tensor])
    expected = served.references["torchscript"](SAMPLE)
    assert np.allclose(result.as_numpy(output), expected, atol=1e-6)


def test_typed_contents(stub: service_pb2_grpc.GRPCInferenceServiceStub, served: Served) -> None:
    """Inputs in InferTensorContents' typed fields, as KServe clients may send them."""
    request = service_pb2.ModelInferRequest(model_name="pair")
    a = request.inputs.add(name="a", datatype="FP32", shape=[2, 4])
    a.contents.fp32_contents.extend(SAMPLE.ravel().tolist())
    b = request.inputs.add(name="b", datatype="INT64", shape=[2, 4])
    b.contents.int64_contents.extend(B.ravel().tolist())
    response = stub.ModelInfer(request, timeout=60)
    expected = served.references["pair"](a=SAMPLE, b=B)
    assert len(response.raw_output_contents) == len(response.outputs) == 2
    for output, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        assert output.datatype == "FP32" and list(output.shape) == [2, 4]
        answer = np.frombuffer(raw, dtype="<f4").reshape(2, 4)
        assert np.allclose(answer, expected[output.name], atol=1e-6)


def test_concurrent_requests(client: triton.InferenceServerClient, served: Served) -> None:
    """Requests in flight together (batched by the server where they fit) all answer right."""
    rows = [SAMPLE * (index + 1) for index in range(16)]

    def infer(row: np.ndarray) -> np.ndarray:
        a = triton.InferInput("a", list(row.shape), "FP32")
        a.set_data_from_numpy(row)
        b = triton.InferInput("b", list(B.shape), "INT64")
        b.set_data_from_numpy(B)
        return client.infer("pair", [a, b]).as_numpy("sum")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(infer, rows))
    for row, answer in zip(rows, answers, strict=True):
        assert np.allclose(answer, served.references["pair"](a=row, b=B)["sum"], atol=1e-5)


# ----- errors


def test_unknown_model_is_not_found(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="Model not found: nope") as failure:
        client.infer("nope", pair_inputs())
    assert failure.value.status() == "StatusCode.NOT_FOUND"


def test_handler_refusals_are_invalid_arguments(client: triton.InferenceServerClient) -> None:
    # A shape that does not match the data: the handler's 400 {"error": ...}.
    a = triton.InferInput("a", [2, 4], "FP32")
    a.set_data_from_numpy(SAMPLE)
    b = triton.InferInput("b", [2, 4], "INT64")
    b.set_data_from_numpy(B)
    b.set_shape([3, 4])
    with pytest.raises(InferenceServerException) as failure:
        client.infer("pair", [a, b])
    assert failure.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert 'input "b"' in failure.value.message()
    with pytest.raises(InferenceServerException, match='unknown output "nothing"') as failure:
        client.infer("pair", pair_inputs(), outputs=[triton.InferRequestedOutput("nothing")])
    assert failure.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_requests_the_server_refuses(stub: service_pb2_grpc.GRPCInferenceServiceStub) -> None:
    request = service_pb2.ModelInferRequest(model_name="pair", raw_input_contents=[b"x"])
    request.inputs.add(name="a", datatype="FP32", shape=[1])
    request.inputs.add(name="b", datatype="INT64", shape=[1])
    with pytest.raises(grpc.RpcError) as failure:
        stub.ModelInfer(request, timeout=60)
    assert failure.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "raw_input_contents has 1 entries for 2 inputs" in failure.value.details()
    request = service_pb2.ModelInferRequest(model_name="pair")
    tensor = request.inputs.add(name="a", datatype="FP32", shape=[1, 4])
    tensor.parameters["shared_memory_region"].string_param = "region"
    with pytest.raises(grpc.RpcError) as failure:
        stub.ModelInfer(request, timeout=60)
    assert failure.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "shared memory is not supported" in failure.value.details()
    # A method of Triton's service that modelserve does not offer.
    with pytest.raises(grpc.RpcError) as failure:
        stub.SystemSharedMemoryStatus(service_pb2.SystemSharedMemoryStatusRequest(), timeout=60)
    assert failure.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_a_handler_that_does_not_speak_v2(client: triton.InferenceServerClient) -> None:
    # The probe echoes JSON: not a v2 response, which is the model's fault, not the client's.
    with pytest.raises(InferenceServerException, match="not a v2 response") as failure:
        client.infer("probe", pair_inputs())
    assert failure.value.status() == "StatusCode.INTERNAL"


# ----- keys


def test_token_authorization(tmp_path: Path, model_store: Path) -> None:
    running = start_server(tmp_path, model_store, config={"auth_token": TOKEN})
    client = triton.InferenceServerClient(running.grpc_inference)
    try:
        with pytest.raises(InferenceServerException) as failure:
            client.is_server_live()
        assert failure.value.status() == "StatusCode.UNAUTHENTICATED"
        assert client.is_server_live(headers={"authorization": f"Bearer {TOKEN}"})
    finally:
        client.close()
        running.stop()
