"""KServe v2 / Open Inference Protocol over REST, through the real server.

Archives of real models (ONNX with two inputs, TorchScript) for the built-in ``tensor``
handler, served by ``modelserve start``; the client is Triton's ``tritonclient.http`` from
PyPI (JSON and binary tensors), plus raw httpx requests for the error cases. Answers are
compared with the frameworks called in-process.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from framework_models import SAMPLE, tensor_archive
from support import build_test_archive, wait_until
from tritonclient.utils import InferenceServerException
from v2_fixtures import TORCHSCRIPT_WARNINGS, B, Served, serving, tensor_models

from modelserve import __version__

pytestmark = TORCHSCRIPT_WARNINGS

MAX_REQUEST_SIZE = 1 << 20


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """pair (ONNX, inputs a/b) and torchscript with a worker each; idle with none."""
    models = tensor_models(tmp_path_factory, "v2")
    tensor_archive(models.store, "idle", models.files["pair"])
    build_test_archive(models.store, "broken", "broken_load.py")
    workers = {"pair.mar": 1, "torchscript.mar": 1, "idle.mar": 0}
    config = {"max_request_size": str(MAX_REQUEST_SIZE)}
    with serving(tmp_path_factory, models, workers, config=config) as served:
        yield served


@pytest.fixture
def client(served: Served) -> Iterator[triton.InferenceServerClient]:
    url = served.server.inference.removeprefix("http://")
    client = triton.InferenceServerClient(url=url, network_timeout=60)
    yield client
    client.close()


def post(served: Served, path: str, body: bytes, headers: dict[str, str] | None = None):
    return httpx.post(served.server.inference + path, content=body, headers=headers, timeout=60)


def assert_error(response: httpx.Response, status: int, fragment: str = "") -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str)
    assert fragment in body["error"]
    return body["error"]


# ----- health and metadata


def test_health(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("pair")
    assert client.is_model_ready("pair", "1.0")
    assert client.is_model_ready("torchscript")
    assert not client.is_model_ready("idle")  # registered with no worker
    assert not client.is_model_ready("nope")


def test_server_metadata(client: triton.InferenceServerClient) -> None:
    metadata = client.get_server_metadata()
    assert metadata["name"] == "modelserve"
    assert metadata["version"] == __version__
    assert "binary_tensor_data" in metadata["extensions"]


def test_model_metadata(client: triton.InferenceServerClient) -> None:
    metadata = client.get_model_metadata("pair")
    assert metadata["name"] == "pair"
    assert metadata["versions"] == ["1.0"]
    assert metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [
        {"name": "a", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "b", "datatype": "INT64", "shape": [-1, 4]},
    ]
    assert metadata["outputs"] == [
        {"name": "sum", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "product", "datatype": "FP32", "shape": [-1, 4]},
    ]
    assert client.get_model_metadata("pair", "1.0") == metadata
    script = client.get_model_metadata("torchscript")
    assert script["platform"] == "pytorch_libtorch"
    assert [tensor["name"] for tensor in script["inputs"]]


def test_metadata_of_unknown_model_and_version(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="Model not found: nope"):
        client.get_model_metadata("nope")
    with pytest.raises(InferenceServerException, match=r"9\.9"):
        client.get_model_metadata("pair", "9.9")


# ----- inference with tritonclient


def pair_inputs(binary: bool) -> list[triton.InferInput]:
    a = triton.InferInput("a", list(SAMPLE.shape), "FP32")
    a.set_data_from_numpy(SAMPLE, binary_data=binary)
    b = triton.InferInput("b", list(B.shape), "INT64")
    b.set_data_from_numpy(B, binary_data=binary)
    return [a, b]


@pytest.mark.parametrize("version", ["", "1.0"])
def test_infer_json(client: triton.InferenceServerClient, served: Served, version: str) -> None:
    expected = served.references["pair"](a=SAMPLE, b=B)
    outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in expected]
    result = client.infer(
        "pair", pair_inputs(binary=False), model_version=version, outputs=outputs, request_id="7"
    )
    response = result.get_response()
    assert response["model_name"] == "pair"
    assert response["id"] == "7"
    for name, value in expected.items():
        assert np.allclose(result.as_numpy(name), value, atol=1e-6)
        assert result.as_numpy(name).shape == (2, 4)


def test_infer_binary_in_and_out(client: triton.InferenceServerClient, served: Served) -> None:
    expected = served.references["pair"](a=SAMPLE, b=B)
    outputs = [triton.InferRequestedOutput(name, binary_data=True) for name in expected]
    result = client.infer("pair", pair_inputs(binary=True), outputs=outputs)
    for name, value in expected.items():
        answer = result.as_numpy(name)
        assert answer.dtype == np.float32
        assert np.allclose(answer, value, atol=1e-6)
    # Only the outputs asked for come back.
    result = client.infer(
        "pair", pair_inputs(binary=True), outputs=[triton.InferRequestedOutput("product")]
    )
    assert result.as_numpy("sum") is None
    assert np.allclose(result.as_numpy("product"), expected["product"], atol=1e-6)


def test_infer_torchscript(client: triton.InferenceServerClient, served: Served) -> None:
    metadata = client.get_model_metadata("torchscript")
    name = metadata["inputs"][0]["name"]
    output = metadata["outputs"][0]["name"]
    expected = served.references["torchscript"](SAMPLE)
    for binary in (False, True):
        tensor = triton.InferInput(name, list(SAMPLE.shape), "FP32")
        tensor.set_data_from_numpy(SAMPLE, binary_data=binary)
        result = client.infer(
            "torchscript",
            [tensor],
            outputs=[triton.InferRequestedOutput(output, binary_data=binary)],
        )
        assert np.allclose(result.as_numpy(output), expected, atol=1e-6)


# ----- raw HTTP: formats and errors


def v2_json(a: np.ndarray = SAMPLE, b: np.ndarray = B) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "a", "shape": list(a.shape), "datatype": "FP32", "data": a.ravel().tolist()},
            {"name": "b", "shape": list(b.shape), "datatype": "INT64", "data": b.ravel().tolist()},
        ]
    }


def test_no_content_type_is_needed(served: Served) -> None:
    expected = served.references["pair"](a=SAMPLE, b=B)
    response = post(served, "/v2/models/pair/infer", json.dumps(v2_json()).encode())
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    assert np.allclose(np.reshape(outputs["sum"]["data"], (2, 4)), expected["sum"])
    # Binary tensor data, built by hand, without a Content-Type either.
    header = {
        "inputs": [
            {
                "name": "a",
                "shape": [2, 4],
                "datatype": "FP32",
                "parameters": {"binary_data_size": 32},
            },
            {
                "name": "b",
                "shape": [2, 4],
                "datatype": "INT64",
                "parameters": {"binary_data_size": 64},
            },
        ],
        "outputs": [{"name": "product", "parameters": {"binary_data": True}}],
    }
    json_part = json.dumps(header).encode()
    body = json_part + SAMPLE.tobytes() + B.tobytes()
    response = post(
        served,
        "/v2/models/pair/versions/1.0/infer",
        body,
        {"Inference-Header-Content-Length": str(len(json_part))},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    answer = json.loads(response.content[:length])
    (output,) = answer["outputs"]
    assert output["name"] == "product"
    size = output["parameters"]["binary_data_size"]
    data = response.content[length : length + size]
    assert len(data) == size == 32
    values = np.array(struct.unpack("<8f", data), dtype=np.float32).reshape(2, 4)
    assert np.allclose(values, expected["product"])


def test_the_protocol_marker_is_the_servers(served: Served) -> None:
    """A client cannot make a v2 request look like another protocol to the handler."""
    body = json.dumps(v2_json()).encode()
    headers = {"modelserve-protocol": "tfserving", "content-type": "application/json"}
    response = post(served, "/v2/models/pair/infer", body, headers)
    assert response.status_code == 200, response.text
    assert [output["name"] for output in response.json()["outputs"]] == ["sum", "product"]


def test_unknown_model_and_version(served: Served) -> None:
    body = json.dumps(v2_json()).encode()
    assert_error(post(served, "/v2/models/nope/infer", body), 404, "nope")
    assert_error(post(served, "/v2/models/pair/versions/9.9/infer", body), 404, "9.9")
    assert_error(httpx.get(served.server.inference + "/v2/models/nope"), 404, "nope")
    assert_error(httpx.get(served.server.inference + "/v2/models/nope/ready"), 404, "nope")
    assert_error(httpx.get(served.server.inference + "/v2/models/pair/versions/9.9/ready"), 404)
    assert_error(httpx.get(served.server.inference + "/v2/no/such/path"), 404)
    # A name with a newline (no registration accepts one) is still this protocol's 404.
    assert_error(httpx.get(served.server.inference + "/v2/models/a%0Ab/ready"), 404, "a\nb")
    assert_error(httpx.get(served.server.inference + "/v2/models/pair/infer"), 405)
    assert_error(httpx.post(served.server.inference + "/v2"), 405)


def test_malformed_json_and_wrong_shape(served: Served) -> None:
    assert_error(post(served, "/v2/models/pair/infer", b'{"inputs": [{'), 400)
    wrong = v2_json()
    wrong["inputs"][0]["shape"] = [2, 3]  # 8 values do not make 2 x 3
    assert_error(post(served, "/v2/models/pair/infer", json.dumps(wrong).encode()), 400, "a")
    assert_error(post(served, "/v2/models/pair/infer", b'{"inputs": "x"}'), 400)


def test_header_length_beyond_the_body(served: Served) -> None:
    body = json.dumps(v2_json()).encode()
    headers = {"Inference-Header-Content-Length": str(len(body) + 1)}
    message = assert_error(post(served, "/v2/models/pair/infer", body, headers), 400)
    assert "inference-header-content-length" in message.lower()
    headers = {"Inference-Header-Content-Length": "-3"}
    assert_error(post(served, "/v2/models/pair/infer", body, headers), 400)


def test_no_worker_and_too_large(served: Served) -> None:
    response = httpx.get(served.server.inference + "/v2/models/idle/ready")
    assert_error(response, 400, "not ready")
    response = post(served, "/v2/models/idle/infer", json.dumps(v2_json()).encode())
    assert_error(response, 503, "no worker")
    assert response.headers["retry-after"] == "1"
    large = b" " * (MAX_REQUEST_SIZE + 1)
    assert_error(post(served, "/v2/models/pair/infer", large), 413, "max_request_size")


def test_server_not_ready_while_a_model_cannot_load(
    served: Served, client: triton.InferenceServerClient
) -> None:
    management = served.server.management
    params = {"url": "broken.mar", "initial_workers": 1, "synchronous": "false"}
    assert httpx.post(management + "/models", params=params).status_code == 202
    try:
        assert not client.is_server_ready()
        response = httpx.get(served.server.inference + "/v2/health/ready")
        assert_error(response, 400, "not ready")
        assert client.is_server_live()
    finally:
        assert httpx.delete(management + "/models/broken", timeout=60).status_code == 200
    wait_until(client.is_server_ready)
