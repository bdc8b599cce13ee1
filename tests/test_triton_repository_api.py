"""Triton's repository, configuration and statistics extensions over gRPC, called with
``tritonclient.grpc`` on a real server in explicit model control: index, load (with a config
override, and with the model's files sent in the request, over gRPC and REST) and unload; the
model config as Triton's ModelConfig message; statistics that count the requests sent."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from framework_models import save_onnx_pair
from support import RunningServer, start_server, wait_until
from triton_fixtures import add_version, pair_config
from tritonclient.utils import InferenceServerException

A = np.array([[1, 2, 3, 4]], dtype=np.float32)
B = np.array([[10, 20, 30, 40]], dtype=np.int64)
CONFIG = pair_config(8, "dynamic_batching { max_queue_delay_microseconds: 1500 }\n")


@pytest.fixture(scope="module")
def onnx_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    onnx, _ = save_onnx_pair(tmp_path_factory.mktemp("onnx"))
    return onnx.read_bytes()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_store: Path) -> Iterator[RunningServer]:
    onnx, _ = save_onnx_pair(tmp_path_factory.mktemp("onnx"))
    repository = tmp_path_factory.mktemp("repository")
    for name in ("pair", "other"):
        add_version(repository / name, "1", onnx)
    (repository / "pair" / "config.pbtxt").write_text(CONFIG)
    args = ["--model-repository", str(repository), "--model-control-mode=explicit"]
    server = start_server(
        tmp_path_factory.mktemp("server"), model_store, args=[*args, "--load-model=pair"]
    )
    wait_until(lambda: "Ready:" in server.log(), timeout=60)
    yield server
    server.stop()


@pytest.fixture
def client(served: RunningServer) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(served.grpc_inference)
    yield client
    client.close()


def _infer(client: triton.InferenceServerClient, model: str) -> np.ndarray:
    inputs = [triton.InferInput("a", [1, 4], "FP32"), triton.InferInput("b", [1, 4], "INT64")]
    inputs[0].set_data_from_numpy(A)
    inputs[1].set_data_from_numpy(B)
    return client.infer(model, inputs).as_numpy("sum")


def _index(client: triton.InferenceServerClient) -> set[tuple[str, str, str]]:
    models = client.get_model_repository_index().models
    return {(entry.name, entry.version, entry.state) for entry in models}


def test_server_metadata_names_the_extensions(client: triton.InferenceServerClient) -> None:
    extensions = set(client.get_server_metadata().extensions)
    assert {"model_repository", "model_configuration", "statistics"} <= extensions


def test_the_model_config_message(client: triton.InferenceServerClient) -> None:
    config = client.get_model_config("pair").config  # tritonclient's own ModelConfig message
    assert (config.name, config.platform, config.max_batch_size) == ("pair", "onnxruntime_onnx", 8)
    assert [tensor.name for tensor in config.input] == ["a", "b"]
    assert list(config.input[0].dims) == [4]
    assert config.dynamic_batching.max_queue_delay_microseconds == 1500
    with pytest.raises(InferenceServerException, match="nope") as missing:
        client.get_model_config("nope")
    assert missing.value.status() == "StatusCode.NOT_FOUND"


def test_load_index_and_unload_round_trip(client: triton.InferenceServerClient) -> None:
    assert _index(client) == {("pair", "1", "READY")}
    client.load_model("other")
    assert client.is_model_ready("other")
    assert _index(client) == {("pair", "1", "READY"), ("other", "1", "READY")}
    assert np.array_equal(_infer(client, "other"), A + B)

    override = client.get_model_config("other", as_json=True)["config"]  # int64s as strings
    override["max_batch_size"] = 2
    client.load_model("other", config=json.dumps(override))
    assert client.get_model_config("other").config.max_batch_size == 2

    with pytest.raises(InferenceServerException, match="no model nope"):
        client.load_model("nope")
    with pytest.raises(InferenceServerException, match="not valid"):
        client.load_model("other", config='{"max_batch_size": "many"}')
    assert client.is_model_ready("other")  # the bad load left it serving

    client.unload_model("other")
    assert not client.is_model_ready("other")
    assert _index(client) == {("pair", "1", "READY")}


def test_statistics_count_the_requests_sent(client: triton.InferenceServerClient) -> None:
    (before,) = client.get_inference_statistics("pair", "1").model_stats
    for _ in range(3):
        assert np.array_equal(_infer(client, "pair"), A + B)
    (after,) = client.get_inference_statistics("pair", "1").model_stats
    assert (after.name, after.version) == ("pair", "1")
    successes = after.inference_stats.success.count - before.inference_stats.success.count
    assert successes == 3
    assert after.inference_count - before.inference_count == 3
    assert after.inference_stats.compute_infer.ns > before.inference_stats.compute_infer.ns
    every_model = client.get_inference_statistics().model_stats
    assert "pair" in {entry.name for entry in every_model}


def test_load_with_the_model_files_in_the_request(
    client: triton.InferenceServerClient, served: RunningServer, onnx_bytes: bytes
) -> None:
    config = json.dumps({"max_batch_size": 4, "backend": "onnxruntime"})
    # Version 7 exists only in the request: the model is read from the files sent.
    client.load_model("other", config=config, files={"file:7/model.onnx": onnx_bytes})
    assert client.is_model_ready("other", "7")
    assert client.get_model_config("other").config.max_batch_size == 4
    assert np.array_equal(_infer(client, "other"), A + B)

    with pytest.raises(InferenceServerException, match="need the config parameter") as refused:
        client.load_model("other", files={"file:1/model.onnx": onnx_bytes})
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException, match=r"with no '\.\.'"):
        client.load_model("other", config=config, files={"file:1/../../x": onnx_bytes})

    # REST takes the contents base64-encoded, as Triton does.
    body = {
        "parameters": {
            "config": config,
            "file:8/model.onnx": base64.b64encode(onnx_bytes).decode(),
        }
    }
    url = f"{served.inference}/v2/repository/models/other/load"
    assert httpx.post(url, json=body, timeout=60).status_code == 200
    assert client.is_model_ready("other", "8")
    body["parameters"]["file:8/model.onnx"] = "not base64!"
    refused_rest = httpx.post(url, json=body, timeout=60)
    assert refused_rest.status_code == 400 and "not base64" in refused_rest.json()["error"]
    assert client.is_model_ready("other", "8")  # the refused load left it serving
    client.unload_model("other")
