"""A Triton model repository with one model per framework, as a Triton user has it: ONNX with
dynamic batching on two CPU instances, TorchScript with an explicit config and two versions
under ``version_policy: { all {} }``, and a TensorFlow SavedModel with no config.pbtxt at all.
tritonclient over HTTP and gRPC lists them, reads their configs and infers each; the answers
equal the frameworks' own, computed in-process."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from framework_models import SAMPLE, save_onnx_pair, save_tf_saved_model, save_torchscript
from support import RunningServer, start_server, wait_until
from triton_fixtures import add_version, pair_config

A = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.float32)
B = np.array([[1, 1, 1, 1], [2, 2, 2, 2]], dtype=np.int64)
TORCHSCRIPT_CONFIG = """
name: "tiny_torch"
platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]
version_policy: { all {} }
"""
CLIENTS = {"http": triton_http, "grpc": triton_grpc}


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("repository")
    built = tmp_path_factory.mktemp("built")
    onnx, pair_reference = save_onnx_pair(built)
    add_version(root / "pair", "1", onnx)
    scheduling = "dynamic_batching { }\ninstance_group [ { count: 2 kind: KIND_CPU } ]\n"
    (root / "pair" / "config.pbtxt").write_text(pair_config(8, scheduling))
    torchscript, torch_reference = save_torchscript(built)
    for version in ("1", "2"):
        (root / "tiny_torch" / version).mkdir(parents=True)
        shutil.copy(torchscript, root / "tiny_torch" / version / "model.pt")
    (root / "tiny_torch" / "config.pbtxt").write_text(TORCHSCRIPT_CONFIG)
    saved, tf_reference = save_tf_saved_model(built, [SAMPLE])
    shutil.copytree(saved, root / "tiny_tf" / "1" / "model.savedmodel")
    return {
        "root": root,
        "pair": pair_reference(a=A, b=B),
        "torch": torch_reference(SAMPLE),
        "tf": tf_reference(SAMPLE),
    }


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, repository: dict[str, Any], model_store: Path
) -> Iterator[RunningServer]:
    server = start_server(
        tmp_path_factory.mktemp("server"),
        model_store,
        args=[f"--model-repository={repository['root']}"],
    )
    wait_until(lambda: "Ready:" in server.log() or "Not serving" in server.log(), 180)
    yield server
    server.stop()


def _client(served: RunningServer, protocol: str) -> Any:
    if protocol == "http":
        return triton_http.InferenceServerClient(served.inference.removeprefix("http://"))
    return triton_grpc.InferenceServerClient(served.grpc_inference)


def _infer(client: Any, protocol: str, model: str, version: str, **inputs: np.ndarray) -> Any:
    module = CLIENTS[protocol]
    tensors = []
    for name, value in inputs.items():
        datatype = "FP32" if value.dtype == np.float32 else "INT64"
        tensor = module.InferInput(name, list(value.shape), datatype)
        tensor.set_data_from_numpy(value)
        tensors.append(tensor)
    return client.infer(model, tensors, model_version=version)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_each_framework_answers_as_in_process(
    served: RunningServer, repository: dict[str, Any], protocol: str
) -> None:
    client = _client(served, protocol)
    try:
        if protocol == "http":
            entries = client.get_model_repository_index()
        else:
            entries = client.get_model_repository_index(as_json=True)["models"]
        assert {(e["name"], e["version"]) for e in entries} == {
            ("pair", "1"),
            ("tiny_torch", "1"),
            ("tiny_torch", "2"),
            ("tiny_tf", "1"),
        }
        pair = _infer(client, protocol, "pair", "1", a=A, b=B)
        for output, expected in repository["pair"].items():
            assert np.allclose(pair.as_numpy(output), expected)
        for version in ("1", "2"):
            answer = _infer(client, protocol, "tiny_torch", version, INPUT__0=SAMPLE)
            assert np.allclose(answer.as_numpy("OUTPUT__0"), repository["torch"], atol=1e-6)
        answer = _infer(client, protocol, "tiny_tf", "1", x=SAMPLE)
        assert np.allclose(answer.as_numpy("y"), repository["tf"], atol=1e-5)
    finally:
        client.close()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_configs_as_written_or_completed(served: RunningServer, protocol: str) -> None:
    client = _client(served, protocol)
    try:

        def config(name: str) -> dict[str, Any]:
            found = client.get_model_config(
                name, **({} if protocol == "http" else {"as_json": True})
            )
            return found if protocol == "http" else found["config"]

        torch_config = config("tiny_torch")
        assert torch_config["platform"] == "pytorch_libtorch"
        assert torch_config["version_policy"] == {"all": {}}
        assert [t["name"] for t in torch_config["input"]] == ["INPUT__0"]
        pair = config("pair")
        assert pair["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}]
        # No config.pbtxt: completed from the SavedModel's serving signature.
        tf_config = config("tiny_tf")
        assert tf_config["platform"] == "tensorflow_savedmodel"
        assert [t["name"] for t in tf_config["input"]] == ["x"]
        assert [t["name"] for t in tf_config["output"]] == ["y"]
    finally:
        client.close()
