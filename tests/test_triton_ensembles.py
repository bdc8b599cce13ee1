"""Triton ensembles served from a model repository as pipelines of the frontend's DAG engine:
pre-processing (Python) → an ONNX model → post-processing (Python) answers tritonclient over
gRPC exactly as the three steps called one after another, and over REST (JSON or binary) as
over gRPC; metadata, config, readiness and the repository index answer for it as for any model;
every step batches its requests under 32 concurrent clients; a broken ensemble (an unknown step
model, a cycle, a tensor nothing produces, a tensor produced twice, a map naming an input the
step model does not have) is a load error naming the problem, at start and through the
repository API (a 400 over REST, INVALID_ARGUMENT over gRPC), while the rest of the repository
serves; a failing step fails the request naming the step, a step whose worker is killed fails
the requests it held naming the step, and a step past the pipeline's timeout is a 504 naming
the ensemble, answered within that bound. The ensemble counts its requests in its own
statistics and metrics (per step too) and is described, nodes, edges and state, on the
management API; a client that goes away (REST or gRPC) cancels the step it waits on, and the
steps after it never run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from framework_models import save_onnx_linear
from support import (
    RunningServer,
    queue_depth,
    request_counts,
    sample,
    scrape,
    send_and_leave,
    start_server,
    wait_until,
)
from tritonclient.utils import InferenceServerException

FIXTURES = Path(__file__).parent / "fixtures" / "triton_ensemble"
ENSEMBLES = (
    "classify",
    "napping",
    "nap_between",
    "bad_unknown",
    "bad_cycle",
    "bad_unmapped",
    "bad_twice",
    "bad_map",
)
RAW = np.arange(12, dtype=np.float32).reshape(3, 4)
STEPS = ("pre", "linear", "post")
# A burst of single-row requests from 32 clients.
CLIENTS = 32
BURST = 256
# The impatient server's pipeline timeout (default_response_timeout), and how long its nap
# step would sleep: far past it, so that an answer before then shows the timeout cut it short.
TIMEOUT_S = 2
LONG_NAP_S = 60.0
# Each broken ensemble, and the words its load error names the problem with.
BROKEN = [
    ("bad_unknown", "model nowhere"),
    ("bad_cycle", "a cycle: steps pre, linear#1"),
    ("bad_unmapped", "tensor 'ghost', which no step produces"),
    ("bad_twice", "tensor 'logits' is produced twice"),
    ("bad_map", "step linear maps input 'z', which model linear does not have"),
]


def _repository(tmp_path_factory: pytest.TempPathFactory, models: tuple[str, ...]) -> Path:
    """A repository holding the fixture ``models`` (linear's model.onnx written here)."""
    repository = tmp_path_factory.mktemp("repository")
    for name in models:
        shutil.copytree(FIXTURES / name, repository / name)
        if name in ENSEMBLES:
            (repository / name / "1").mkdir()  # an ensemble's version directory holds nothing
    if "linear" in models:
        (repository / "linear" / "1").mkdir()
        onnx_file, _ = save_onnx_linear(tmp_path_factory.mktemp("onnx"))
        shutil.copy(onnx_file, repository / "linear" / "1" / "model.onnx")
    return repository


def _serve(
    tmp_path_factory: pytest.TempPathFactory,
    model_store: Path,
    repository: Path,
    config: dict[str, str] | None = None,
) -> RunningServer:
    """A server of ``repository`` once it has loaded all of it, in explicit model control
    (so that the repository API loads too); nap marks its batches in NAP_MARKER and ends its
    naps once NAP_RELEASE exists."""
    workdir = tmp_path_factory.mktemp("server")
    server = start_server(
        workdir,
        model_store,
        config=config,
        args=[
            "--model-repository",
            str(repository),
            "--model-control-mode=explicit",
            "--load-model=*",
        ],
        env={
            "NAP_MARKER": str(workdir / "nap-started"),
            "NAP_RELEASE": str(workdir / "nap-release"),
        },
    )
    wait_until(lambda: "Ready:" in server.log() or "Not serving" in server.log(), 120)
    return server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_store: Path) -> Iterator[RunningServer]:
    models = tuple(path.name for path in FIXTURES.iterdir() if path.is_dir())
    server = _serve(tmp_path_factory, model_store, _repository(tmp_path_factory, models))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def impatient(
    tmp_path_factory: pytest.TempPathFactory, model_store: Path
) -> Iterator[RunningServer]:
    """A server whose pipelines time out after TIMEOUT_S."""
    repository = _repository(tmp_path_factory, ("nap", "pre", "napping"))
    config = {"default_response_timeout": str(TIMEOUT_S)}
    server = _serve(tmp_path_factory, model_store, repository, config)
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


@pytest.mark.parametrize(("ensemble", "named"), BROKEN)
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


@pytest.mark.parametrize(("ensemble", "named"), BROKEN)
def test_a_broken_ensemble_loaded_through_the_repository_api_is_refused_naming_it(
    served: RunningServer, client: triton_grpc.InferenceServerClient, ensemble: str, named: str
) -> None:
    url = f"{served.inference}/v2/repository/models/{ensemble}/load"
    answer = httpx.post(url, timeout=60)
    assert answer.status_code == 400, answer.text
    assert f"ensemble {ensemble}" in answer.json()["error"] and named in answer.json()["error"]
    with pytest.raises(InferenceServerException) as refused:
        client.load_model(ensemble)
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert named in refused.value.message()
    assert not client.is_model_ready(ensemble)
    assert client.is_model_ready("classify")


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


def _max_batch(served: RunningServer, model: str) -> int:
    """The largest batch ``model`` has executed, from its statistics."""
    stats = httpx.get(f"{served.inference}/v2/models/{model}/stats", timeout=30).json()
    return max(entry["batch_size"] for entry in stats["model_stats"][0]["batch_stats"])


def _worker_pids(served: RunningServer, model: str) -> list[int]:
    workers = httpx.get(f"{served.management}/models/{model}", timeout=30).json()[0]["workers"]
    return [worker["pid"] for worker in workers]


def test_every_step_batches_under_32_concurrent_clients(
    client: triton_grpc.InferenceServerClient, served: RunningServer
) -> None:
    distinct = (np.arange(16).reshape(4, 1, 4) * [1, -1, 1, -1]).astype(np.float32)
    # Each row answered alone first: what it must be answered in a batch.
    alone = [_infer(client, "classify", "RAW", row).as_numpy("LABEL").tolist() for row in distinct]
    rows = [distinct[i % len(distinct)] for i in range(BURST)]
    expected = [alone[i % len(distinct)] for i in range(BURST)]
    # Each step answers in about a millisecond, so on a busy machine requests could trickle
    # through a step one by one. Every step's workers are stopped, and let go in step order
    # once requests wait in that step's queue: those must then be executed together.
    stopped = {step: _worker_pids(served, step) for step in STEPS}
    for pids in stopped.values():
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
    with ThreadPoolExecutor(CLIENTS) as pool:
        try:
            running = [pool.submit(_infer, client, "classify", "RAW", row) for row in rows]
            for step, pids in stopped.items():
                wait_until(lambda step=step: (queue_depth(served, step) or 0) >= 2, 60)
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
        finally:
            for pids in stopped.values():
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
        answers = [future.result() for future in running]
    assert [answer.as_numpy("LABEL").tolist() for answer in answers] == expected
    assert {step: _max_batch(served, step) > 1 for step in STEPS} == dict.fromkeys(STEPS, True)


def _nap(served: RunningServer, seconds: float) -> httpx.Response:
    """napping over REST: its nap step sleeps ``seconds``."""
    body = {"inputs": [{"name": "RAW", "shape": [1, 4], "datatype": "FP32", "data": [seconds] * 4}]}
    return httpx.post(f"{served.inference}/v2/models/napping/infer", json=body, timeout=120)


def test_a_step_whose_worker_is_killed_fails_its_requests_naming_it(
    served: RunningServer,
) -> None:
    marker = served.log_path.parent / "nap-started"
    marker.unlink(missing_ok=True)
    (worker,) = httpx.get(f"{served.management}/models/nap", timeout=30).json()[0]["workers"]
    with ThreadPoolExecutor(8) as pool:
        running = [pool.submit(_nap, served, 3.0) for _ in range(8)]
        wait_until(marker.exists, 60)  # a batch sleeps in nap's worker
        os.kill(worker["pid"], signal.SIGKILL)
        answers = [future.result(timeout=120) for future in running]  # none hangs
    failed = [answer for answer in answers if answer.status_code != 200]
    assert failed, "the batch in the killed worker was answered"
    for answer in failed:
        assert answer.status_code in (500, 503), answer.text
        assert "ensemble napping: step nap (model nap): " in answer.json()["error"]
    assert any("Worker died (killed by signal 9)" in answer.text for answer in failed)
    # The others were answered by nap's next worker, and the ensemble serves again.
    for answer in answers:
        if answer.status_code == 200:
            assert answer.json()["outputs"][0]["data"] == [(3.0 - 3.5) / 2] * 4
    wait_until(lambda: _nap(served, 0).status_code == 200, 120)


def test_a_step_past_the_pipeline_timeout_is_a_504_naming_the_ensemble(
    impatient: RunningServer,
) -> None:
    started = time.monotonic()
    answer = _nap(impatient, LONG_NAP_S)
    waited = time.monotonic() - started
    assert answer.status_code == 504, answer.text
    assert answer.json()["error"] == f"ensemble napping: not finished within {TIMEOUT_S} s"
    assert waited < LONG_NAP_S / 2  # the step's nap was not waited for
    # nap's worker, cut short by its own response_timeout, is replaced: the ensemble serves.
    wait_until(lambda: _nap(impatient, 0).status_code == 200, 120)


def _statistics(served: RunningServer, model: str) -> dict:
    """``model``'s statistics (Triton's JSON)."""
    stats = httpx.get(f"{served.inference}/v2/models/{model}/stats", timeout=30).json()
    (entry,) = stats["model_stats"]
    return entry


def _value(samples: dict[tuple, float], name: str, **labels: str) -> float:
    """A sample of ``scrape``; 0 while its series does not exist."""
    return sample(samples, name, **labels) or 0.0


def test_the_ensemble_counts_its_requests_in_its_statistics_and_metrics(
    client: triton_grpc.InferenceServerClient, served: RunningServer
) -> None:
    before, samples_before = _statistics(served, "classify"), scrape(served)
    for _ in range(3):
        _infer(client, "classify", "RAW", RAW)
    refused = RAW.copy()
    refused[0, 0] = 999
    with pytest.raises(InferenceServerException):
        _infer(client, "classify", "RAW", refused)
    after, samples = _statistics(served, "classify"), scrape(served)

    # Triton's statistics of the ensemble itself: 3 answered, 1 failed, 3 executions.
    assert (after["name"], after["version"]) == ("classify", "1")
    gained = {
        key: after["inference_stats"][key]["count"] - before["inference_stats"][key]["count"]
        for key in ("success", "fail", "queue", "compute_infer")
    }
    assert gained == {"success": 3, "fail": 1, "queue": 3, "compute_infer": 3}
    assert after["inference_count"] - before["inference_count"] == 3
    assert after["execution_count"] - before["execution_count"] == 3
    assert after["inference_stats"]["success"]["ns"] > before["inference_stats"]["success"]["ns"]
    every = httpx.get(f"{served.inference}/v2/models/stats", timeout=30).json()["model_stats"]
    assert "classify" in [entry["name"] for entry in every]

    def gain(name: str, **labels: str) -> float:
        return _value(samples, name, **labels) - _value(samples_before, name, **labels)

    triton = {"model": "classify", "version": "1"}
    assert gain("nv_inference_request_success", **triton) == 3
    assert gain("nv_inference_request_failure", **triton) == 1
    pipeline = {"pipeline": "classify", "platform": "ensemble", "hostname": socket.gethostname()}
    assert gain("modelserve_pipeline_requests_total", **pipeline) == 4
    failed_in_pre = {**pipeline, "reason": "step", "step": "pre"}
    assert gain("modelserve_pipeline_failures_total", **failed_in_pre) == 1
    assert gain("modelserve_pipeline_latency_seconds_count", **pipeline) == 4
    steps = {
        step: gain(
            "modelserve_pipeline_step_latency_seconds_count", **pipeline, step=step, model=step
        )
        for step in STEPS
    }
    assert steps == {"pre": 4, "linear": 3, "post": 3}  # the refused request stopped at pre


def test_the_ensemble_is_described_on_the_management_api(served: RunningServer) -> None:
    answer = httpx.get(f"{served.management}/models/classify", timeout=30)
    assert answer.status_code == 200, answer.text
    (described,) = answer.json()
    assert {key: described[key] for key in ("modelName", "modelVersion", "platform", "ready")} == {
        "modelName": "classify",
        "modelVersion": "1",
        "platform": "ensemble",
        "ready": True,
    }
    nodes = described["nodes"]
    assert [(node["name"], node["modelName"], node["modelVersion"]) for node in nodes] == [
        ("pre", "pre", "1"),
        ("linear", "linear", "1"),
        ("post", "post", "1"),
    ]
    assert nodes[0]["inputMap"] == {"RAW": "RAW"} and nodes[0]["outputMap"] == {"x": "features"}
    for node in nodes:
        assert node["state"] == "AVAILABLE"
        assert [worker["status"] for worker in node["workers"]] == ["READY"]
    assert described["edges"] == [
        {"from": "pre", "to": "linear", "tensors": ["features"]},
        {"from": "linear", "to": "post", "tensors": ["logits"]},
    ]
    customized = httpx.get(
        f"{served.management}/models/classify", params={"customized": "true"}, timeout=30
    )
    assert customized.status_code == 400 and "classify" in customized.json()["message"]


def _nap_between_raw(nap_s: float) -> np.ndarray:
    """A row nap_between's nap step sleeps ``nap_s`` on (pre hands it (RAW - 3.5) / 2)."""
    return np.full((1, 4), 3.5 + 2 * nap_s, dtype=np.float32)


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_a_client_that_goes_away_cancels_the_steps_not_yet_answered(
    served: RunningServer, client: triton_grpc.InferenceServerClient, protocol: str
) -> None:
    marker = served.log_path.parent / "nap-started"
    release = served.log_path.parent / "nap-release"
    marker.unlink(missing_ok=True)
    release.unlink(missing_ok=True)
    before = {model: request_counts(served, model) for model in ("nap", "linear", "nap_between")}
    samples_before = scrape(served)
    raw = _nap_between_raw(LONG_NAP_S)
    try:
        if protocol == "rest":
            inputs = [
                {"name": "RAW", "shape": [1, 4], "datatype": "FP32", "data": raw.ravel().tolist()}
            ]
            body = json.dumps({"inputs": inputs}).encode()
            path = "/v2/models/nap_between/infer"
            connection = send_and_leave(served.inference, path, body, "application/json")
            leave = connection.close
        else:
            tensor = triton_grpc.InferInput("RAW", [1, 4], "FP32")
            tensor.set_data_from_numpy(raw)
            call = client.async_infer("nap_between", [tensor], lambda result, error: None)
            leave = call.cancel
        try:
            wait_until(marker.exists, 60)  # the second step, nap, holds the request
        finally:
            leave()
        # nap's request is cancelled at once, while nap's worker still sleeps on it ...
        wait_until(lambda: request_counts(served, "nap")["fail"] == before["nap"]["fail"] + 1, 60)
    finally:
        release.touch()
    try:
        # ... and once nap has finished its batch, linear, the third step, never hears of it:
        # a request of linear's own, queued after anything the ensemble sent, is all it gets.
        wait_until(
            lambda: request_counts(served, "nap")["executions"] == before["nap"]["executions"] + 1,
            60,
        )
        _infer(client, "linear", "x", np.zeros((1, 4), dtype=np.float32))
        assert request_counts(served, "linear")["success"] == before["linear"]["success"] + 1
        assert request_counts(served, "linear")["fail"] == before["linear"]["fail"]
        assert request_counts(served, "nap")["success"] == before["nap"]["success"]
    finally:
        release.unlink()
    assert request_counts(served, "nap_between")["fail"] == before["nap_between"]["fail"] + 1
    cancelled = {
        "pipeline": "nap_between",
        "platform": "ensemble",
        "reason": "cancelled",
        "step": "",
        "hostname": socket.gethostname(),
    }
    failures = "modelserve_pipeline_failures_total"
    now = _value(scrape(served), failures, **cancelled)
    assert now - _value(samples_before, failures, **cancelled) == 1
