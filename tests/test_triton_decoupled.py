"""Triton decoupled Python models (``model_transaction_policy { decoupled: true }``) through
tritonclient's gRPC streaming (``start_stream`` / ``async_stream_infer``, KServe v2
``ModelStreamInfer``): Triton's ``repeat`` example sends one response per element of IN from a
thread of its own, after ``execute`` returned, then the FINAL flag alone. The client gets every
response in order and, when it asks, the final flag; unary infer refuses decoupled models as
Triton does; a model that is not decoupled answers a stream once."""

from __future__ import annotations

import queue
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from support import RunningServer, start_server, wait_until
from tritonclient.utils import InferenceServerException

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = ROOT / "examples" / "triton" / "model_repository"
FINAL = "triton_final_response"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_store: Path) -> Iterator[RunningServer]:
    repository = tmp_path_factory.mktemp("repository")
    for name in ("repeat_int32", "add_sub"):
        shutil.copytree(REPOSITORY / name, repository / name)
    server = start_server(
        tmp_path_factory.mktemp("server"), model_store, args=["--model-repository", str(repository)]
    )
    wait_until(lambda: "Ready:" in server.log() or "Not serving" in server.log(), 120)
    assert "Not serving" not in server.log(), server.log()
    yield server
    server.stop()


def _repeat_inputs(values: list[int], delays_ms: list[int]) -> list[Any]:
    arrays = {
        "IN": np.array(values, dtype=np.int32),
        "DELAY": np.array(delays_ms, dtype=np.uint32),
        "WAIT": np.array([0], dtype=np.uint32),
    }
    inputs = []
    for name, array in arrays.items():
        tensor = triton_grpc.InferInput(
            name, list(array.shape), "INT32" if name == "IN" else "UINT32"
        )
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


class Stream:
    """A tritonclient stream whose callback queues what it gets."""

    def __init__(self, served: RunningServer) -> None:
        self.client = triton_grpc.InferenceServerClient(served.grpc_inference)
        self.got: queue.Queue[tuple[Any, Any]] = queue.Queue()
        self.client.start_stream(callback=lambda result, error: self.got.put((result, error)))

    def next(self) -> tuple[Any, Any]:
        return self.got.get(timeout=60)

    def until_final(self) -> list[Any]:
        """Every result up to and with the one flagged final."""
        results = []
        while True:
            result, error = self.next()
            assert error is None, (error.status(), error.message(), str(error))
            results.append(result)
            if result.get_response().parameters[FINAL].bool_param:
                return results

    def close(self) -> None:
        self.client.stop_stream()
        self.client.close()


@pytest.fixture
def stream(served: RunningServer) -> Iterator[Stream]:
    opened = Stream(served)
    yield opened
    opened.close()


def test_every_response_in_order_then_the_final_flag(stream: Stream) -> None:
    values = [4, 2, 0, 1, 7]
    stream.client.async_stream_infer(
        "repeat_int32",
        _repeat_inputs(values, [5] * len(values)),
        request_id="seven",
        enable_empty_final_response=True,
    )
    results = stream.until_final()
    *parts, final = results
    assert [int(result.as_numpy("OUT")[0]) for result in parts] == values
    assert [int(result.as_numpy("IDX")[0]) for result in parts] == list(range(len(values)))
    assert all(not result.get_response().parameters[FINAL].bool_param for result in parts)
    assert [result.get_response().id for result in results] == ["seven"] * len(results)
    assert final.get_response().outputs == []  # Triton's response for the FINAL flag alone


def test_requests_of_one_stream_are_answered_in_turn(stream: Stream) -> None:
    for values in ([1, 2, 3], [9], []):  # [] : no response at all, the FINAL flag alone
        stream.client.async_stream_infer(
            "repeat_int32",
            _repeat_inputs(values, [1] * len(values)),
            enable_empty_final_response=True,
        )
    answers = [stream.until_final() for _ in range(3)]
    assert [[int(r.as_numpy("OUT")[0]) for r in answer[:-1]] for answer in answers] == [
        [1, 2, 3],
        [9],
        [],
    ]


def test_without_the_final_flag_only_the_responses_come(stream: Stream) -> None:
    stream.client.async_stream_infer("repeat_int32", _repeat_inputs([5, 6], [1, 1]))
    # Then a request of a model that is not decoupled marks where the first one ended.
    stream.client.async_stream_infer("add_sub", _add_sub_inputs())
    got = [stream.next() for _ in range(3)]
    assert all(error is None for _result, error in got)
    assert [result.get_response().model_name for result, _error in got] == [
        "repeat_int32",
        "repeat_int32",
        "add_sub",
    ]
    assert all(FINAL not in result.get_response().parameters for result, _error in got)


def _add_sub_inputs() -> list[Any]:
    inputs = []
    for name in ("INPUT0", "INPUT1"):
        tensor = triton_grpc.InferInput(name, [1, 4], "FP32")
        tensor.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
        inputs.append(tensor)
    return inputs


def test_a_model_that_is_not_decoupled_answers_once_flagged_final(stream: Stream) -> None:
    stream.client.async_stream_infer("add_sub", _add_sub_inputs(), enable_empty_final_response=True)
    (result,) = stream.until_final()
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.full((1, 4), 2, np.float32))


def test_a_model_error_is_the_requests_answer_and_the_stream_goes_on(stream: Stream) -> None:
    stream.client.async_stream_infer(
        "repeat_int32", _repeat_inputs([1, 2], [1]), enable_empty_final_response=True
    )
    result, error = stream.next()
    assert result is None
    assert "IN and DELAY must have the same shape" in error.message()
    stream.client.async_stream_infer(
        "repeat_int32", _repeat_inputs([3], [1]), enable_empty_final_response=True
    )
    assert int(stream.until_final()[0].as_numpy("OUT")[0]) == 3


def test_unary_infer_refuses_a_decoupled_model_as_triton_does(served: RunningServer) -> None:
    client = triton_grpc.InferenceServerClient(served.grpc_inference)
    with pytest.raises(InferenceServerException) as raised:
        client.infer("repeat_int32", _repeat_inputs([1], [1]))
    assert raised.value.status() == "StatusCode.UNIMPLEMENTED"
    assert "ModelInfer RPC doesn't support models with decoupled" in raised.value.message()
    body = {
        "inputs": [
            {"name": "IN", "datatype": "INT32", "shape": [1], "data": [1]},
            {"name": "DELAY", "datatype": "UINT32", "shape": [1], "data": [1]},
            {"name": "WAIT", "datatype": "UINT32", "shape": [1], "data": [0]},
        ]
    }
    response = httpx.post(f"{served.inference}/v2/models/repeat_int32/infer", json=body, timeout=30)
    assert response.status_code == 501
    assert "HTTP end point doesn't support models with decoupled" in response.json()["error"]


def test_a_client_that_cancels_frees_the_model_for_the_next_request(served: RunningServer) -> None:
    # 600 responses, 100 ms apart: a minute of work unless the cancellation reaches the model
    # (its thread asks response_sender.is_cancelled() before each response).
    first = Stream(served)
    first.client.async_stream_infer("repeat_int32", _repeat_inputs(list(range(600)), [100] * 600))
    result, error = first.next()
    assert error is None and int(result.as_numpy("OUT")[0]) == 0
    first.client.stop_stream(cancel_requests=True)
    first.client.close()
    # The model has one instance: the next request is served once the first let it go.
    second = Stream(served)
    try:
        second.client.async_stream_infer(
            "repeat_int32", _repeat_inputs([8], [0]), enable_empty_final_response=True
        )
        assert int(second.until_final()[0].as_numpy("OUT")[0]) == 8
    finally:
        second.close()
