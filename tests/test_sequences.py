"""Stateful models served for real: TorchServe's sequence batching (the
``ts_request_sequence_id`` header over REST, ``sequence_id`` over gRPC Predictions and
StreamPredictions2) and Triton's sequence batcher (``sequence_id`` / ``sequence_start`` /
``sequence_end`` from tritonclient over HTTP and gRPC). The handlers record every request
(worker pid, sequence, step, batch) in a file: each sequence stays on one worker and arrives in
order while others run beside it, a batch holds one request per sequence, an idle sequence
expires, a dead worker ends its sequences, and every refusal says why."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from framework_models import save_onnx_sequence_controls
from support import (
    FIXTURES,
    RunningServer,
    build_test_archive,
    queue_depth,
    ready_workers,
    scrape,
    start_server,
    wait_until,
)
from tritonclient.utils import InferenceServerException

from modelserve.grpc.proto import inference_pb2, inference_pb2_grpc

STEPS = 10
SEQUENCE_HEADER = "ts_request_sequence_id"
# model name -> its model-config YAML (the handler's record file is added per test run).
TORCHSERVE_MODELS = {
    # Two workers, batches of up to 4: sequences must be routed to stay on theirs.
    "counter": {
        "minWorkers": 2,
        "maxWorkers": 2,
        "batchSize": 4,
        "sequenceBatching": True,
        "sequenceMaxIdleMSec": 60000,
        "maxNumSequence": 16,
        "maxSequenceJobQueueSize": 10,
    },
    # One worker whose idle sequences expire quickly; batches of up to 4.
    "brief": {
        "minWorkers": 1,
        "maxWorkers": 1,
        "batchSize": 4,
        "sequenceBatching": True,
        "sequenceMaxIdleMSec": 300,
        "maxSequenceJobQueueSize": 10,
    },
    # One worker, one sequence at a time, one request waiting in it.
    "single": {
        "minWorkers": 1,
        "maxWorkers": 1,
        "batchSize": 1,
        "sequenceBatching": True,
        "sequenceMaxIdleMSec": 60000,
    },
}


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def torchserve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    """A server with the TorchServe-style stateful models, and the directory their handlers
    record in (``<model>.jsonl``)."""
    store = tmp_path_factory.mktemp("sequence_store")
    records = tmp_path_factory.mktemp("sequence_records")
    for name, config in TORCHSERVE_MODELS.items():
        yaml_path = store / f"{name}.yaml"
        document = {**config, "handler": {"record": str(records / f"{name}.jsonl")}}
        yaml_path.write_text(json.dumps(document))  # JSON is YAML
        build_test_archive(store, name, "sequence_recorder.py", config_file=yaml_path)
    idle_less = store / "idle_less.yaml"
    idle_less.write_text(json.dumps({"sequenceBatching": True, "handler": {"record": ""}}))
    build_test_archive(store, "idle_less", "sequence_recorder.py", config_file=idle_less)
    server = start_server(
        tmp_path_factory.mktemp("sequence_server"),
        store,
        models=[f"{name}={name}.mar" for name in TORCHSERVE_MODELS],
    )
    for name, config in TORCHSERVE_MODELS.items():
        wait_until(
            lambda name=name, config=config: ready_workers(server, name) == config["minWorkers"],
            120,
        )
    yield server, records
    server.stop()


def _post(server: RunningServer, model: str, body: dict, sequence: str | None) -> httpx.Response:
    headers = {SEQUENCE_HEADER: sequence} if sequence else {}
    return httpx.post(
        f"{server.inference}/predictions/{model}", json=body, headers=headers, timeout=60
    )


def _metric(server: RunningServer, model: str, name: str) -> float:
    """Sample ``name`` of the model's version 1.0, per /metrics."""
    labels = {"model_name": model, "model_version": "1.0"}
    return next(
        value
        for (sample_name, keys), value in scrape(server).items()
        if sample_name == name and labels.items() <= dict(keys).items()
    )


def _run_sequence(send: Callable[[int], dict]) -> list[dict]:
    """``send(step)`` for steps 1..STEPS, each after the previous one's answer."""
    return [send(step) for step in range(1, STEPS + 1)]


def _assert_one_worker_in_order(records: list[dict], sequence: str) -> int:
    """The sequence's records: one worker, steps 1..STEPS in order, counted 1..STEPS; its pid."""
    mine = [entry for entry in records if entry["sequence"] == sequence]
    assert [entry["step"] for entry in mine] == list(range(1, STEPS + 1))
    assert [entry["count"] for entry in mine] == list(range(1, STEPS + 1))
    pids = {entry["pid"] for entry in mine}
    assert len(pids) == 1, f"sequence {sequence} ran on workers {pids}"
    return pids.pop()


# ----- TorchServe's sequence batching


def test_sequences_stay_on_their_worker_in_order_beside_each_other(
    torchserve: tuple[RunningServer, Path],
) -> None:
    server, records = torchserve
    channel = grpc.insecure_channel(server.grpc_inference)
    stub = inference_pb2_grpc.InferenceAPIsServiceStub(channel)

    def over_rest(sequence: str) -> list[dict]:
        return _run_sequence(lambda step: _post(server, "counter", {"step": step}, sequence).json())

    def over_grpc(sequence: str) -> list[dict]:
        def send(step: int) -> dict:
            request = inference_pb2.PredictionsRequest(
                model_name="counter",
                input={"json": json.dumps({"step": step}).encode()},
                sequence_id=sequence,
            )
            return json.loads(stub.Predictions(request, timeout=60).prediction)

        return _run_sequence(send)

    def over_grpc_stream(sequence: str) -> list[dict]:
        # StreamPredictions2: the sequence's requests on one call, answered in turn.
        asked = (
            inference_pb2.PredictionsRequest(
                model_name="counter",
                input={"json": json.dumps({"step": step}).encode()},
                sequence_id=sequence,
            )
            for step in range(1, STEPS + 1)
        )
        replies = list(stub.StreamPredictions2(asked, timeout=60))
        assert {reply.sequence_id for reply in replies} == {sequence}
        return [json.loads(reply.prediction) for reply in replies]

    sequences = {
        "rest-a": over_rest,
        "rest-b": over_rest,
        "grpc-c": over_grpc,
        "grpc-d": over_grpc,
        "stream-e": over_grpc_stream,
    }
    try:
        with ThreadPoolExecutor(len(sequences)) as pool:
            futures = {name: pool.submit(run, name) for name, run in sequences.items()}
            answers = {name: future.result() for name, future in futures.items()}
    finally:
        channel.close()
    recorded = _records(records / "counter.jsonl")
    pids = {sequence: _assert_one_worker_in_order(recorded, sequence) for sequence in sequences}
    for sequence, replies in answers.items():
        assert [reply["count"] for reply in replies] == list(range(1, STEPS + 1))
        assert {reply["sequence"] for reply in replies} == {sequence}
    # New sequences go to the free worker holding the fewest: both workers serve some.
    assert len(set(pids.values())) == 2, pids


def test_a_batch_holds_one_request_per_sequence(
    torchserve: tuple[RunningServer, Path], tmp_path: Path
) -> None:
    server, records = torchserve
    hold = tmp_path / "hold"
    hold.touch()
    with ThreadPoolExecutor(5) as pool:
        first = pool.submit(_post, server, "brief", {"step": 1, "hold": str(hold)}, "held")
        wait_until(lambda: Path(f"{hold}.started").exists())
        # Queued in this order while the worker is held: held's next two, and two others.
        queued = []
        for depth, (sequence, step) in enumerate(
            (("held", 2), ("other-x", 1), ("other-y", 1), ("held", 3)), start=1
        ):
            queued.append(pool.submit(_post, server, "brief", {"step": step}, sequence))
            wait_until(lambda depth=depth: queue_depth(server, "brief") == depth)
        hold.unlink()
        answers = [future.result().json() for future in (first, *queued)]
    assert [answer["count"] for answer in answers] == [1, 2, 1, 1, 3]
    batches = {}
    for entry in _records(records / "brief.jsonl"):
        if entry["sequence"] in ("held", "other-x", "other-y"):
            batches.setdefault(entry["batch"], []).append((entry["sequence"], entry["step"]))
    assert list(batches.values()) == [
        [("held", 1)],
        [("held", 2), ("other-x", 1), ("other-y", 1)],
        [("held", 3)],
    ]


def test_an_idle_sequence_expires_and_its_next_request_is_told(
    torchserve: tuple[RunningServer, Path],
) -> None:
    server, _ = torchserve
    expired = "modelserve_sequences_expired_total"
    expired_before = _metric(server, "brief", expired)
    assert _post(server, "brief", {"step": 1}, "fading").json()["count"] == 1
    wait_until(lambda: "Sequence fading of brief:1.0 expired" in server.log(), 30)
    assert _metric(server, "brief", expired) >= expired_before + 1
    told = _post(server, "brief", {"step": 2}, "fading")
    assert told.status_code == 400
    assert told.json()["message"] == (
        "Sequence fading of model brief expired after 300 ms without a request "
        "(sequenceMaxIdleMSec 300); its state is gone: the next request with this id starts it "
        "again"
    )
    # The next one starts it again: the handler is told so and counts from 1.
    assert _post(server, "brief", {"step": 3}, "fading").json()["count"] == 1


def test_a_request_naming_no_sequence_starts_one_of_its_own(
    torchserve: tuple[RunningServer, Path],
) -> None:
    server, records = torchserve
    answer = _post(server, "brief", {"step": 1}, None).json()
    assert answer["count"] == 1
    assert answer["sequence"].startswith("ts-seq-")
    assert answer in _records(records / "brief.jsonl")


def test_the_bounds_are_503s_that_say_which(
    torchserve: tuple[RunningServer, Path], tmp_path: Path
) -> None:
    server, _ = torchserve
    (described,) = httpx.get(f"{server.management}/models/single").json()
    assert {key: described[key] for key in ("stateful", "maxNumSequence")} == {
        "stateful": True,
        "maxNumSequence": 1,
    }
    assert described["maxSequenceJobQueueSize"] == 1
    hold = tmp_path / "hold"
    hold.touch()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(_post, server, "single", {"step": 1, "hold": str(hold)}, "only")
        wait_until(lambda: Path(f"{hold}.started").exists())
        second = pool.submit(_post, server, "single", {"step": 2}, "only")
        wait_until(lambda: queue_depth(server, "single") == 1)
        too_deep = _post(server, "single", {"step": 3}, "only")
        too_many = _post(server, "single", {"step": 1}, "another")
        assert _metric(server, "single", "modelserve_sequences") == 1
        hold.unlink()
        assert [first.result().status_code, second.result().status_code] == [200, 200]
    assert too_deep.status_code == 503
    assert too_deep.json()["message"] == (
        'Model "single": sequence only already has 1 requests waiting, the most it may '
        "(maxSequenceJobQueueSize 1); retry once one is answered"
    )
    assert too_many.status_code == 503
    assert "cannot start sequence another: it has 1 live sequences" in too_many.json()["message"]


def test_a_stateful_model_without_an_idle_time_is_refused(
    torchserve: tuple[RunningServer, Path],
) -> None:
    server, _ = torchserve
    refused = httpx.post(f"{server.management}/models?url=idle_less.mar", timeout=60)
    assert refused.status_code == 400
    assert refused.json()["message"] == (
        "model idle_less: sequenceBatching needs sequenceMaxIdleMSec, a number of milliseconds "
        "> 0 after which an idle sequence expires"
    )


def test_a_dead_worker_ends_its_sequences(torchserve: tuple[RunningServer, Path]) -> None:
    server, _ = torchserve
    pid = _post(server, "counter", {"step": 1}, "doomed").json()["pid"]
    os.kill(pid, signal.SIGKILL)

    def worker_pids() -> set[int]:
        (described,) = httpx.get(f"{server.management}/models/counter").json()
        return {worker["pid"] for worker in described["workers"]}

    wait_until(lambda: pid not in worker_pids())
    told = _post(server, "counter", {"step": 2}, "doomed")
    assert told.status_code == 400
    assert told.json()["message"].startswith("Sequence doomed of model counter ended: its worker")
    assert "died; its state is gone" in told.json()["message"]
    # The other worker and the restarted one go on serving.
    wait_until(lambda: ready_workers(server, "counter") == 2, 120)
    assert _post(server, "counter", {"step": 3}, "doomed").json()["count"] == 1


# ----- Triton's sequence batcher, through tritonclient


# Triton's simple_sequence example configuration (docs/user_guide/model_execution.md), for an
# ONNX model that reports the control inputs it got (framework_models.save_onnx_sequence_controls).
SIMPLE_SEQUENCE = """
name: "simple_sequence"
platform: "onnxruntime_onnx"
max_batch_size: 8
sequence_batching {
  control_input [
    { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },
    { name: "READY" control [ { kind: CONTROL_SEQUENCE_READY int32_false_true: [ 0, 1 ] } ] }
  ]
}
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
instance_group [ { kind: KIND_CPU } ]
"""


@pytest.fixture(scope="module")
def triton(
    tmp_path_factory: pytest.TempPathFactory, model_store: Path
) -> Iterator[tuple[RunningServer, Path]]:
    """A server for a repository holding the stateful Python model and Triton's
    simple_sequence (ONNX), and the Python model's record file."""
    repository = tmp_path_factory.mktemp("sequence_repository")
    (repository / "simple_sequence" / "1").mkdir(parents=True)
    (repository / "simple_sequence" / "config.pbtxt").write_text(SIMPLE_SEQUENCE)
    save_onnx_sequence_controls(repository / "simple_sequence" / "1").rename(
        repository / "simple_sequence" / "1" / "model.onnx"
    )
    model = repository / "sequence_recorder"
    shutil.copytree(FIXTURES / "triton_models" / "sequence_recorder", model)
    record = tmp_path_factory.mktemp("triton_records") / "records.jsonl"
    config = model / "config.pbtxt"
    config.write_text(
        config.read_text()
        + f'parameters {{ key: "record" value: {{ string_value: "{record}" }} }}\n'
    )
    server = start_server(
        tmp_path_factory.mktemp("triton_server"),
        model_store,
        args=["--model-repository", str(repository)],
    )
    wait_until(lambda: ready_workers(server, "sequence_recorder") == 2, 120)
    wait_until(lambda: ready_workers(server, "simple_sequence") == 1, 120)
    yield server, record
    server.stop()


def _triton_client(server: RunningServer, protocol: str) -> tuple[Any, Any]:
    """tritonclient's module for ``protocol`` ("http" or "grpc"), and a client of ``server``."""
    if protocol == "grpc":
        return triton_grpc, triton_grpc.InferenceServerClient(server.grpc_inference)
    url = server.inference.removeprefix("http://")
    return triton_http, triton_http.InferenceServerClient(url)


def _infer(
    client: Any, module: Any, value: int, model: str = "sequence_recorder", **sequence: Any
) -> int:
    data = module.InferInput("INPUT", [1, 1], "INT32")
    data.set_data_from_numpy(np.array([[value]], dtype=np.int32))
    result = client.infer(model, [data], **sequence)
    output = "SUM" if model == "sequence_recorder" else "OUTPUT"
    return int(result.as_numpy(output)[0, 0])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_triton_sequences_through_tritonclient(
    triton: tuple[RunningServer, Path], protocol: str
) -> None:
    server, record = triton
    base = 1000 if protocol == "grpc" else 2000
    ids = [base + offset for offset in range(4)]
    sums: dict[int, list[int]] = {}
    lock = threading.Lock()

    def run(sequence: int) -> None:
        module, client = _triton_client(server, protocol)
        got = [
            _infer(
                client,
                module,
                step,
                sequence_id=sequence,
                sequence_start=step == 1,
                sequence_end=step == STEPS,
            )
            for step in range(1, STEPS + 1)
        ]
        client.close()
        with lock:
            sums[sequence] = got

    with ThreadPoolExecutor(len(ids)) as pool:
        list(pool.map(run, ids))
    running = [sum(range(1, step + 1)) for step in range(1, STEPS + 1)]
    assert sums == {sequence: running for sequence in ids}
    recorded = [entry for entry in _records(record) if entry["sequence"] in ids]
    pids = set()
    for sequence in ids:
        mine = [entry for entry in recorded if entry["sequence"] == sequence]
        assert [entry["step"] for entry in mine] == list(range(1, STEPS + 1))
        assert len({entry["pid"] for entry in mine}) == 1
        pids |= {entry["pid"] for entry in mine}
        first, middle, last = mine[0], mine[4], mine[-1]
        # flags(): START = 1, END = 2; the control inputs, shaped [1, 1] (max_batch_size > 0).
        assert [first["flags"], middle["flags"], last["flags"]] == [1, 0, 2]
        assert first["START"] == ["float32", [1, 1], [[1.0]]]
        assert middle["START"] == ["float32", [1, 1], [[0.0]]]
        assert [middle["END"], last["END"]] == [["int32", [1, 1], [[0]]], ["int32", [1, 1], [[1]]]]
        assert middle["READY"] == ["bool", [1, 1], [[True]]]
        assert middle["CORRID"] == ["uint64", [1, 1], [[sequence]]]
        # The sequence parameters are Triton's, not the model's.
        assert first["parameters"] == {}
    assert len(pids) == 2


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_triton_sequence_errors(triton: tuple[RunningServer, Path], protocol: str) -> None:
    server, _ = triton
    module, client = _triton_client(server, protocol)
    sequence = 3000 if protocol == "grpc" else 4000

    def refusal(**parameters: Any) -> str:
        with pytest.raises(InferenceServerException) as refused:
            _infer(client, module, 1, **parameters)
        status = refused.value.status()
        assert status in ("400", "StatusCode.INVALID_ARGUMENT"), status
        return refused.value.message()

    assert "must specify a non-zero or non-empty correlation ID" in refusal()
    assert (
        f"inference request for sequence {sequence} to model 'sequence_recorder' must specify "
        "the START flag on the first request of the sequence"
    ) in refusal(sequence_id=sequence)
    assert "sequence batching control 'CORRID' data-type is 'BYTES'" in refusal(
        sequence_id="text", sequence_start=True
    )
    assert (
        _infer(client, module, 5, sequence_id=sequence, sequence_start=True, sequence_end=True) == 5
    )
    assert "must specify the START flag" in refusal(sequence_id=sequence)
    client.close()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_framework_model_gets_its_control_inputs(
    triton: tuple[RunningServer, Path], protocol: str
) -> None:
    server, _ = triton
    module, client = _triton_client(server, protocol)
    sequence = 5000 if protocol == "grpc" else 6000
    outputs = [
        _infer(
            client,
            module,
            step,
            "simple_sequence",
            sequence_id=sequence,
            sequence_start=step == 1,
            sequence_end=step == 3,
        )
        for step in (1, 2, 3)
    ]
    client.close()
    # OUTPUT = INPUT + 100 * START + 10 * READY
    assert outputs == [111, 12, 13]


def test_triton_sequences_over_a_grpc_stream(triton: tuple[RunningServer, Path]) -> None:
    # Triton's simple_grpc_sequence_stream_infer_client: two sequences interleaved on one
    # ModelStreamInfer call (start_stream / async_stream_infer), answered in turn.
    server, _ = triton
    answers: queue.Queue = queue.Queue()
    client = triton_grpc.InferenceServerClient(server.grpc_inference)
    client.start_stream(callback=lambda result, error: answers.put(error or result))
    sent = []
    for step in range(1, 5):
        for sequence in (7001, 7002):
            data = triton_grpc.InferInput("INPUT", [1, 1], "INT32")
            data.set_data_from_numpy(np.array([[step * (sequence - 7000)]], dtype=np.int32))
            client.async_stream_infer(
                "sequence_recorder",
                [data],
                request_id=f"{sequence}-{step}",
                sequence_id=sequence,
                sequence_start=step == 1,
                sequence_end=step == 4,
            )
            sent.append(f"{sequence}-{step}")
    results = [answers.get(timeout=60) for _ in sent]
    client.stop_stream()
    assert [result.get_response().id for result in results] == sent
    sums = [int(result.as_numpy("SUM")[0, 0]) for result in results]
    # 7001 sends 1, 2, 3, 4 and 7002 twice that: their running sums, interleaved.
    assert sums == [1, 2, 3, 6, 6, 12, 10, 20]
    # The model config API describes the sequence batcher as config.pbtxt has it.
    config = client.get_model_config("sequence_recorder", as_json=True)["config"]
    assert config["sequence_batching"]["max_sequence_idle_microseconds"] == "60000000"
    client.close()
