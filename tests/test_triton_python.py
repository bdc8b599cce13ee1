"""Triton Python-backend models (``model.py`` with ``TritonPythonModel``) served unchanged from
a model repository: Triton's add_sub example through its own clients over HTTP and gRPC,
dynamic batches handed to ``execute`` as one list, per-request TritonErrors with Triton's
statuses, BYTES tensors, requested outputs and parameters, and a BLS pipeline (pre-processing
→ the ONNX classifier of the same server) under 200 concurrent requests."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from google.protobuf import text_format
from sklearn.datasets import load_digits
from support import RunningServer, queue_depth, start_server, wait_until
from tritonclient.utils import InferenceServerException

from modelserve.repository.proto import model_config_pb2

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "triton"
FIXTURES = Path(__file__).parent / "fixtures" / "triton_models"
# Here the BLS pipeline runs as more instances than the classifier, whatever the host's cores
# (which a model without instance_group gets a worker each of), so that its BLS requests can be
# made to meet in the classifier's queue: one instance awaits its batch's BLS answers before
# taking the next batch, and each classifier worker holds one BLS batch.
PIPELINE_INSTANCES = 3
CLASSIFIER_INSTANCES = 1


def _example_build() -> Any:
    spec = importlib.util.spec_from_file_location("triton_example_build", EXAMPLES / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def classifier() -> Any:
    """The examples' digit classifier, trained as examples/triton/build.py trains it."""
    build = _example_build()
    return build, build.train()


def _set_instance_count(config_path: Path, count: int) -> None:
    config = text_format.Parse(config_path.read_text(), model_config_pb2.ModelConfig())
    del config.instance_group[:]
    config.instance_group.add(count=count, kind=model_config_pb2.ModelInstanceGroup.KIND_CPU)
    config_path.write_text(text_format.MessageToString(config))


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, classifier: Any, model_store: Path
) -> Iterator[RunningServer]:
    build, trained = classifier
    repository = tmp_path_factory.mktemp("repository")
    for name in ("add_sub", "digits_pipeline"):
        shutil.copytree(EXAMPLES / "model_repository" / name, repository / name)
    _set_instance_count(repository / "digits_pipeline" / "config.pbtxt", PIPELINE_INSTANCES)
    (repository / "digits_classifier" / "1").mkdir(parents=True)
    shutil.copy(
        EXAMPLES / "model_repository" / "digits_classifier" / "config.pbtxt",
        repository / "digits_classifier",
    )
    _set_instance_count(repository / "digits_classifier" / "config.pbtxt", CLASSIFIER_INSTANCES)
    onnx.save(build.onnx_model(trained), repository / "digits_classifier" / "1" / "model.onnx")
    for name in ("batch_errors", "strings"):
        shutil.copytree(FIXTURES / name, repository / name)
    server = start_server(
        tmp_path_factory.mktemp("server"),
        model_store,
        args=["--model-repository", str(repository)],
    )
    wait_until(lambda: "Ready:" in server.log() or "Not serving" in server.log(), 120)
    assert "Not serving" not in server.log(), server.log()
    yield server
    server.stop()


def _http(served: RunningServer) -> triton_http.InferenceServerClient:
    return triton_http.InferenceServerClient(
        served.inference.removeprefix("http://"), concurrency=32, network_timeout=60
    )


# ----- add_sub, Triton's canonical example


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_add_sub_through_tritons_own_client(served: RunningServer, protocol: str) -> None:
    url = served.grpc_inference if protocol == "grpc" else served.inference.removeprefix("http://")
    command = [sys.executable, str(EXAMPLES / "add_sub_client.py"), "--url", url]
    done = subprocess.run(
        command + (["--grpc"] if protocol == "grpc" else []),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS: add_sub" in done.stdout


def test_the_model_log_and_metadata(served: RunningServer) -> None:
    assert "add_sub ready on CPU" in served.log()  # pb_utils.Logger, from initialize(args)
    metadata = httpx.get(f"{served.inference}/v2/models/add_sub").json()
    assert {"name": "INPUT0", "datatype": "FP32", "shape": [-1, 4]} in metadata["inputs"]


# ----- batches and per-request errors


def _x_input(value: int) -> triton_http.InferInput:
    tensor = triton_http.InferInput("X", [1, 1], "INT32")
    tensor.set_data_from_numpy(np.array([[value]], dtype=np.int32))
    return tensor


def _outcome(pending: Any) -> Any:
    """The result of a tritonclient async_infer, or the exception it raised."""
    try:
        return pending.get_result(timeout=120)
    except InferenceServerException as exc:
        return exc


def _infer_x_over_rest(served: RunningServer, value: int) -> int:
    body = {"inputs": [{"name": "X", "shape": [1, 1], "datatype": "INT32", "data": [value]}]}
    url = f"{served.inference}/v2/models/batch_errors/infer"
    return httpx.post(url, json=body, timeout=60).status_code


def _x_request(client: triton_http.InferenceServerClient, value: int) -> Any:
    return _outcome(client.async_infer("batch_errors", [_x_input(value)]))


def test_a_tritonerror_fails_its_request_alone(served: RunningServer) -> None:
    client = _http(served)
    # A slow request holds the only worker, so the eight sent meanwhile queue up and reach
    # execute() as one batch of eight.
    with ThreadPoolExecutor(1) as background:
        slow = background.submit(_infer_x_over_rest, served, -2)
        wait_until(lambda: "batch_errors: holding the worker" in served.log(), 60)
        values = [1, 2, 3, -400, 5, 6, 7, 8]
        pending = [client.async_infer("batch_errors", [_x_input(value)]) for value in values]
        answers = [_outcome(each) for each in pending]
        assert slow.result(timeout=60) == 200
    refused = answers[3]
    assert isinstance(refused, InferenceServerException)
    assert refused.status() == "400" and "X = -400 is refused" in refused.message()
    succeeded = [answer for answer in answers if not isinstance(answer, Exception)]
    assert len(succeeded) == 7
    for value, answer in zip([1, 2, 3, 5, 6, 7, 8], succeeded, strict=True):
        assert int(answer.as_numpy("Y")[0][0]) == 2 * value
    assert [int(answer.as_numpy("BATCH")[0][0]) for answer in succeeded] == [8] * 7
    client.close()


@pytest.mark.parametrize(("value", "status"), [(-404, "404"), (-503, "503"), (-500, "500")])
def test_tritonerror_codes_map_to_statuses(served: RunningServer, value: int, status: str) -> None:
    client = _http(served)
    refused = _x_request(client, value)
    assert isinstance(refused, InferenceServerException)
    assert refused.status() == status and f"X = {value} is refused" in refused.message()
    client.close()


def test_an_exception_in_execute_fails_the_batch(served: RunningServer) -> None:
    client = _http(served)
    failed = _x_request(client, -1)
    assert isinstance(failed, InferenceServerException) and failed.status() == "500"
    assert "X = -1 fails the whole batch" in failed.message()
    wait_until(lambda: "ValueError: X = -1 fails the whole batch" in served.log())
    assert "Traceback" in served.log()
    assert int(_x_request(client, 4).as_numpy("Y")[0][0]) == 8  # and it still serves
    client.close()


def test_a_response_sent_through_the_response_sender(served: RunningServer) -> None:
    client = _http(served)
    assert int(_x_request(client, 100).as_numpy("Y")[0][0]) == 200
    twice = _x_request(client, 200)  # sent and returned: one response too many
    assert isinstance(twice, InferenceServerException) and twice.status() == "500"
    assert "cannot send more than one response" in twice.message()
    client.close()


def test_inputs_are_checked_against_the_config(served: RunningServer) -> None:
    wrong_type = {"inputs": [{"name": "X", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]}
    unknown = {"inputs": [{"name": "Z", "shape": [1, 1], "datatype": "INT32", "data": [1]}]}
    wrong_shape = {"inputs": [{"name": "X", "shape": [1, 2], "datatype": "INT32", "data": [1, 2]}]}
    url = f"{served.inference}/v2/models/batch_errors/infer"
    for body, message in (
        (wrong_type, "datatype FP32 does not match the model's INT32"),
        (unknown, 'unexpected input "Z"'),
        (wrong_shape, "expected shape [-1, 1], got [1, 2]"),
    ):
        answer = httpx.post(url, json=body, timeout=30)
        assert answer.status_code == 400 and message in answer.json()["error"]


# ----- BYTES, requested outputs, parameters


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bytes_requested_outputs_and_parameters(served: RunningServer, protocol: str) -> None:
    module = triton_grpc if protocol == "grpc" else triton_http
    url = served.grpc_inference if protocol == "grpc" else served.inference.removeprefix("http://")
    client = module.InferenceServerClient(url)
    text = np.array([["héllo".encode(), b"", "tritón".encode()]], dtype=np.object_)
    tensor = module.InferInput("TEXT", [1, 3], "BYTES")
    tensor.set_data_from_numpy(text)
    only_upper = client.infer("strings", [tensor], outputs=[module.InferRequestedOutput("UPPER")])
    assert only_upper.as_numpy("UPPER").tolist() == [["HéLLO".encode(), b"", "TRITóN".encode()]]
    assert only_upper.as_numpy("LENGTHS") is None  # not asked for
    answer = client.infer(
        "strings",
        [tensor],
        outputs=[module.InferRequestedOutput("LENGTHS"), module.InferRequestedOutput("PARAMETERS")],
        parameters={"language": "fr", "strict": True},
    )
    assert answer.as_numpy("LENGTHS").tolist() == [[6, 0, 7]]
    parameters = answer.as_numpy("PARAMETERS")[0][0].decode()
    assert '"language":"fr"' in parameters and '"strict":true' in parameters
    client.close()


# ----- BLS


def _classify(client: triton_grpc.InferenceServerClient, image: np.ndarray) -> Any:
    """One image through the pipeline: its answer, or the exception the client raised."""
    tensor = triton_grpc.InferInput("IMAGE", [1, 8, 8], "UINT8")
    tensor.set_data_from_numpy(image.astype(np.uint8).reshape(1, 8, 8))
    try:
        return client.infer("digits_pipeline", [tensor], client_timeout=120)
    except InferenceServerException as exc:
        return exc


def _classifier_batches(served: RunningServer) -> list[int]:
    stats = httpx.get(f"{served.inference}/v2/models/digits_classifier/stats").json()
    return [entry["batch_size"] for entry in stats["model_stats"][0]["batch_stats"]]


def test_a_bls_pipeline_under_200_concurrent_requests(
    served: RunningServer, classifier: Any
) -> None:
    _, trained = classifier
    digits = load_digits()
    images = digits.images[:200]
    expected = trained.predict(images.reshape(200, 64) / 16.0)
    workers = httpx.get(f"{served.management}/models/digits_classifier").json()[0]["workers"]
    # The gRPC client, as it is safe to share between threads (the HTTP one is gevent's).
    client = triton_grpc.InferenceServerClient(served.grpc_inference)
    # The classifier answers in well under a millisecond, so on a busy machine its BLS requests
    # could each find it idle. Its workers are stopped until BLS requests (from the pipeline's
    # several instances) wait in its queue: those must then be executed together.
    for worker in workers:
        os.kill(worker["pid"], signal.SIGSTOP)
    with ThreadPoolExecutor(32) as pool:
        try:
            running = [pool.submit(_classify, client, image) for image in images]
            wait_until(lambda: (queue_depth(served, "digits_classifier") or 0) >= 2, 60)
        finally:
            for worker in workers:
                os.kill(worker["pid"], signal.SIGCONT)
        answers = [future.result() for future in running]
    client.close()
    failures = [answer for answer in answers if isinstance(answer, Exception)]
    assert not failures, failures[:3]
    labels = [int(answer.as_numpy("LABEL")[0][0]) for answer in answers]
    assert labels == expected.tolist()
    assert max(_classifier_batches(served)) > 1  # BLS requests batched with each other


def _classify_over_rest(served: RunningServer, image: np.ndarray) -> httpx.Response:
    pixels = image.astype(int).reshape(-1).tolist()
    body = {"inputs": [{"name": "IMAGE", "shape": [1, 8, 8], "datatype": "UINT8", "data": pixels}]}
    url = f"{served.inference}/v2/models/digits_pipeline/infer"
    return httpx.post(url, json=body, timeout=120)


def test_bls_to_a_killed_model_fails_clearly(served: RunningServer) -> None:
    images = load_digits().images[:150]
    workers = httpx.get(f"{served.management}/models/digits_classifier").json()[0]["workers"]
    with ThreadPoolExecutor(32) as pool:
        running = [pool.submit(_classify_over_rest, served, image) for image in images]
        running[20].result(timeout=120)  # under way
        os.kill(workers[0]["pid"], signal.SIGKILL)
        answers = [future.result(timeout=120) for future in running]  # none hangs
    for answer in answers:
        if answer.status_code != 200:
            assert answer.status_code in (500, 503), answer.text
            assert "digits_classifier" in answer.json()["error"]
    # The classifier's worker is replaced, and the pipeline serves again.
    wait_until(lambda: _classify_over_rest(served, images[0]).status_code == 200, 120)
