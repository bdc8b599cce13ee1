"""Answers in parts over TorchServe's gRPC API: ``StreamPredictions`` sends one message per
part as the handler makes it, ``StreamPredictions2`` streams each request's parts with its
``sequence_id``; ``Predictions`` gets them joined; one batch may hold both kinds of client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from streaming_fixtures import TIMEOUT, Gate, numbers, register_tokens, served, tracebacks
from support import RunningServer, queue_depth, wait_until

from modelserve.grpc.proto import inference_pb2, inference_pb2_grpc

STREAM_LOG = (
    '"POST /org.pytorch.serve.grpc.inference.InferenceAPIsService/StreamPredictions gRPC" {}'
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from served(tmp_path_factory, "streaming_grpc")


@pytest.fixture(scope="module")
def stub(server: RunningServer) -> Iterator[inference_pb2_grpc.InferenceAPIsServiceStub]:
    with grpc.insecure_channel(server.grpc_inference) as channel:
        yield inference_pb2_grpc.InferenceAPIsServiceStub(channel)


def asking(
    model: str, sequence: str | None = None, **body: object
) -> inference_pb2.PredictionsRequest:
    return inference_pb2.PredictionsRequest(
        model_name=model, input={"data": json.dumps(body).encode()}, sequence_id=sequence
    )


def test_stream_predictions_sends_each_piece_as_it_is_made(
    server: RunningServer, stub: inference_pb2_grpc.InferenceAPIsServiceStub, tmp_path: Path
) -> None:
    gate = Gate(tmp_path / "gate")
    request = asking("tokens", pieces=4, delay=0, **gate.steer(hold_at=2))
    replies = stub.StreamPredictions(request, timeout=TIMEOUT)
    first = next(replies).prediction  # while the handler waits for the gate
    assert first == b"token 1 of 4\n"
    gate.open()
    rest = [reply.prediction for reply in replies]
    assert numbers(first + b"".join(rest)) == [1, 2, 3, 4]
    assert len(rest) == 3  # one message per piece
    wait_until(lambda: STREAM_LOG.format(200) in server.log(), timeout=TIMEOUT)


@pytest.mark.parametrize("mode", ["intermediate", "legacy", "generator"])
def test_one_message_per_part_whatever_way_the_handler_sends_it(
    stub: inference_pb2_grpc.InferenceAPIsServiceStub, mode: str
) -> None:
    replies = stub.StreamPredictions(asking("modes", mode=mode, pieces=3), timeout=TIMEOUT)
    assert [reply.prediction for reply in replies] == [b"piece 1\n", b"piece 2\n", b"piece 3\n"]


def test_predictions_gets_the_parts_joined(
    stub: inference_pb2_grpc.InferenceAPIsServiceStub,
) -> None:
    reply = stub.Predictions(asking("modes", mode="intermediate", pieces=3), timeout=TIMEOUT)
    assert reply.prediction == b"piece 1\npiece 2\npiece 3\n"


def test_an_error_after_the_first_part_ends_the_call_with_its_status(
    server: RunningServer, stub: inference_pb2_grpc.InferenceAPIsServiceStub
) -> None:
    replies = stub.StreamPredictions(asking("modes", pieces=4, fail_after=2), timeout=TIMEOUT)
    received = []
    with pytest.raises(grpc.RpcError) as failure:
        for reply in replies:
            received.append(reply.prediction)
    assert received == [b"piece 1\n", b"piece 2\n"]
    assert failure.value.code() == grpc.StatusCode.INTERNAL
    assert failure.value.details() == "failed after 2 pieces"
    wait_until(lambda: STREAM_LOG.format(500) in server.log(), timeout=TIMEOUT)


def test_stream_predictions2_streams_each_request_with_its_sequence(
    stub: inference_pb2_grpc.InferenceAPIsServiceStub,
) -> None:
    requests = [
        asking("modes", "first", mode="generator", pieces=2),
        asking("modes", "second", mode="sequence"),
        asking("modes", "third", pieces=3, fail_after=1),
        asking("missing", "fourth"),
        asking("modes", "fifth", mode="intermediate", pieces=2),
    ]
    replies = list(stub.StreamPredictions2(iter(requests), timeout=TIMEOUT))
    answered = [(reply.sequence_id, reply.prediction, reply.status.code) for reply in replies]
    assert answered == [
        ("first", b"piece 1\n", 0),
        ("first", b"piece 2\n", 0),
        ("second", b"sequence second", 0),  # the handler sees it: context.get_sequence_id
        ("third", b"piece 1\n", 0),
        ("third", b"", grpc.StatusCode.INTERNAL.value[0]),
        ("fourth", b"", grpc.StatusCode.NOT_FOUND.value[0]),
        ("fifth", b"piece 1\n", 0),
        ("fifth", b"piece 2\n", 0),
    ]
    assert replies[4].status.message == "failed after 1 pieces"


def test_a_client_that_cancels_cancels_its_request_in_the_worker(
    server: RunningServer, stub: inference_pb2_grpc.InferenceAPIsServiceStub, tmp_path: Path
) -> None:
    logged = len(server.log())
    gate = Gate(tmp_path / "never")
    steer = {"tag": "canceller", "cancel_dir": str(tmp_path), **gate.steer(hold_at=3)}
    replies = stub.StreamPredictions(asking("tokens", pieces=10, delay=0, **steer), timeout=TIMEOUT)
    assert [next(replies).prediction, next(replies).prediction] == [
        b"token 1 of 10\n",
        b"token 2 of 10\n",
    ]
    replies.cancel()
    marker = tmp_path / "canceller"
    wait_until(marker.exists, timeout=TIMEOUT)
    assert marker.read_text() == "2"
    wait_until(lambda: STREAM_LOG.format(499) in server.log(), timeout=TIMEOUT)
    assert not tracebacks(server, since=logged)


def test_one_batch_holds_a_streaming_and_a_whole_answer_client(
    server: RunningServer, stub: inference_pb2_grpc.InferenceAPIsServiceStub, tmp_path: Path
) -> None:
    register_tokens(server, "batched", batch_size=4, max_batch_delay=2000, initial_workers=1)
    gate = Gate(tmp_path / "gate")
    batches = tmp_path / "batches"
    with ThreadPoolExecutor(3) as pool:
        # The worker holds a first request until the gate opens; the next two wait for it.
        held = pool.submit(
            stub.Predictions,
            asking("batched", pieces=1, delay=0, batch_log=str(batches), **gate.steer(hold_at=1)),
            timeout=TIMEOUT,
        )
        wait_until(batches.exists, timeout=TIMEOUT)
        streamed = pool.submit(
            lambda: [
                r.prediction
                for r in stub.StreamPredictions(
                    asking("batched", pieces=3, delay=0), timeout=TIMEOUT
                )
            ]
        )
        whole = pool.submit(
            stub.Predictions,
            asking("batched", pieces=2, delay=0, batch_log=str(batches)),
            timeout=TIMEOUT,
        )
        wait_until(lambda: queue_depth(server, "batched") == 2, timeout=TIMEOUT)
        gate.open()
        assert held.result().prediction == b"token 1 of 1\n"
        assert streamed.result() == [b"token 1 of 3\n", b"token 2 of 3\n", b"token 3 of 3\n"]
        assert whole.result().prediction == b"token 1 of 2\ntoken 2 of 2\n"
    assert batches.read_text().split() == ["1", "2"]
