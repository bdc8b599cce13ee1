"""Triton ensembles served from a model repository as pipelines of the frontend's DAG engine:
pre-processing (Python) → an ONNX model → post-processing (Python) answers tritonclient over
gRPC exactly as the three steps called one after another, and over REST (JSON or binary) as
over gRPC; metadata, config, readiness and the repository index answer for it as for any model;
a broken ensemble (an unknown step model, a cycle, a tensor nothing produces, a tensor produced
twice) is a load error naming the problem while the rest of the repository serves; a failing
step fails the request naming the step."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from framework_models import save_onnx_linear
from support import RunningServer, start_server, wait_until
from tritonclient.utils import InferenceServerException

FIXTURES = Path(__file__).parent / "fixtures" / "triton_ensemble"
ENSEMBLES = ("classify", "bad_unknown", "bad_cycle", "bad_unmapped", "bad_twice")
RAW = np.arange(12, dtype=np.float32).reshape(3, 4)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_store: Path) -> Iterator[RunningServer]:
    repository = tmp_path_factory.mktemp("repository")
    shutil.copytree(FIXTURES, repository, dirs_exist_ok=True)
    (repository / "README.md").unlink()
    for name in ENSEMBLES:
        (repository / name / "1").mkdir()  # an ensemble's version directory holds nothing
    (repository / "linear" / "1").mkdir()
    onnx_file, _ = save_onnx_linear(tmp_path_factory.mktemp("onnx"))
    shutil.copy(onnx_file, repository / "linear" / "1" / "model.onnx")
    server = start_server(
        tmp_path_factory.mktemp("server"), model_store, args=["--model-repository", str(repository)]
    )
    wait_until(lambda: "Ready:" in server.log() or "Not serving" in server.log(), 120)
    yield server
    server.stop()


@pytest.fixture
def client(served: RunningServer) -> triton_grpc.InferenceServerClient:
    return triton_grpc.InferenceServerClient(served.grpc_inference)


def _infer(
    client: triton_grpc.InferenceServerClient, model: str, name: str, value: np.ndarray
) -> triton_grpc.InferResult:
    tensor = triton_grpc.InferInput(name, list(value.shape), "FP32")
    tensor.set_data_from_numpy(value)
    return client.infer(model, [tensor], client_timeout=60)


def test_the_ensemble_answers_as_its_steps_called_by_hand(
    client: triton_grpc.InferenceServerClient,
) -> None:
    features = _infer(client, "pre", "RAW", RAW).as_numpy("x")
    logits = _infer(client, "linear", "x", features).as_numpy("y")
    by_hand = _infer(client, "post", "y", logits)
    result = _infer(client, "classify", "RAW", RAW)
    assert result.as_numpy("LABEL").tolist() == by_hand.as_numpy("LABEL").tolist()
    np.testing.assert_array_equal(result.as_numpy("SCORES"), by_hand.as_numpy("SCORES"))
    assert result.get_response().model_name == "classify"


def test_requested_outputs_only(client: triton_grpc.InferenceServerClient) -> None:
    tensor = triton_grpc.InferInput("RAW", list(RAW.shape), "FP32")
    tensor.set_data_from_numpy(RAW)
    asked = [triton_grpc.InferRequestedOutput("LABEL")]
    result = client.infer("classify", [tensor], outputs=asked, client_timeout=60)
    assert [output.name for output in result.get_response().outputs] == ["LABEL"]


def test_metadata_config_readiness_and_index(
    client: triton_grpc.InferenceServerClient, served: RunningServer
) -> None:
    metadata = client.get_model_metadata("classify", as_json=True)
    assert metadata["platform"] == "ensemble"
    assert metadata["inputs"] == [{"name": "RAW", "datatype": "FP32", "shape": ["-1", "4"]}]
    assert [output["name"] for output in metadata["outputs"]] == ["LABEL", "SCORES"]
    config = client.get_model_config("classify", as_json=True)["config"]
    steps = config["ensemble_scheduling"]["step"]
    assert [step["model_name"] for step in steps] == ["pre", "linear", "post"]
    assert client.is_model_ready("classify")
    index = {
        entry["name"]: entry for entry in client.get_model_repository_index(as_json=True)["models"]
    }
    assert index["classify"]["state"] == "READY"
    rest = httpx.get(f"{served.inference}/v2/models/classify/ready", timeout=30)
    assert rest.status_code == 200


@pytest.mark.parametrize(
    ("ensemble", "named"),
    [
        ("bad_unknown", "model nowhere"),
        ("bad_cycle", "a cycle: steps pre, linear#1"),
        ("bad_unmapped", "tensor 'ghost', which no step produces"),
        ("bad_twice", "tensor 'logits' is produced twice"),
    ],
)
def test_a_broken_ensemble_is_a_load_error_naming_it(
    served: RunningServer, client: triton_grpc.InferenceServerClient, ensemble: str, named: str
) -> None:
    assert f"model {ensemble} not served" in served.log()
    line = next(
        line for line in served.log().splitlines() if f"model {ensemble} not served" in line
    )
    assert named in line, line
    assert not client.is_model_ready(ensemble)
    assert client.is_model_ready("classify")  # the rest of the repository serves


def test_a_failing_step_fails_the_request_naming_it(
    client: triton_grpc.InferenceServerClient,
) -> None:
    refused = RAW.copy()
    refused[1, 0] = 999
    with pytest.raises(InferenceServerException) as failure:
        _infer(client, "classify", "RAW", refused)
    assert "step pre (model pre): pre refuses 999" in failure.value.message()
    assert failure.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_rest_answers_as_grpc(
    client: triton_grpc.InferenceServerClient, served: RunningServer
) -> None:
    over_grpc = _infer(client, "classify", "RAW", RAW)
    http = triton_http.InferenceServerClient(served.inference.removeprefix("http://"))
    tensor = triton_http.InferInput("RAW", list(RAW.shape), "FP32")
    tensor.set_data_from_numpy(RAW, binary_data=True)  # binary in, binary out
    over_http = http.infer("classify", [tensor])
    http.close()
    for name in ("LABEL", "SCORES"):
        np.testing.assert_array_equal(over_http.as_numpy(name), over_grpc.as_numpy(name))
    # Plain JSON in and out, as curl sends it.
    body = {
        "id": "42",
        "inputs": [{"name": "RAW", "shape": [3, 4], "datatype": "FP32", "data": RAW.tolist()}],
        "outputs": [{"name": "LABEL"}],
    }
    answer = httpx.post(f"{served.inference}/v2/models/classify/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert (document["model_name"], document["id"]) == ("classify", "42")
    assert [output["name"] for output in document["outputs"]] == ["LABEL"]
    assert document["outputs"][0]["data"] == over_grpc.as_numpy("LABEL").reshape(-1).tolist()


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([{"name": "RAW", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3]}], "needs 4"),
        ([{"name": "OTHER", "shape": [1], "datatype": "FP32", "data": [1]}], "'RAW' is missing"),
        ([{"name": "RAW", "shape": [1, 4], "datatype": "FP32", "data": ["a"] * 4}], "fit"),
    ],
)
def test_a_bad_rest_body_is_refused(served: RunningServer, inputs: list, message: str) -> None:
    url = f"{served.inference}/v2/models/classify/infer"
    answer = httpx.post(url, json={"inputs": inputs}, timeout=30)
    assert answer.status_code == 400 and message in answer.json()["error"]
