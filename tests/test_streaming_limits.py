"""The bounds of a stream (docs/streaming.md): a handler silent longer than
``stream_chunk_timeout``, an answer longer than ``stream_timeout`` and a client that takes
nothing each end the stream and cancel the request in its worker; a worker never runs more
than ``stream_window`` parts ahead of a client that does not read; a stream holds its
``max_concurrency`` slot until it ends."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import httpx
import orjson
import pytest
from streaming_fixtures import TIMEOUT, Gate, served
from support import RunningServer, gauge, wait_until

from modelserve.grpc.proto import inference_pb2, inference_pb2_grpc

CHUNK_TIMEOUT_S = 1
STREAM_TIMEOUT_S = 3
WINDOW = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    config = {
        "stream_chunk_timeout": str(CHUNK_TIMEOUT_S),
        "stream_timeout": str(STREAM_TIMEOUT_S),
        "stream_window": str(WINDOW),
    }
    yield from served(tmp_path_factory, "streaming_limits", config)


def test_a_handler_silent_past_the_chunk_timeout_is_cancelled(
    server: RunningServer, tmp_path: Path
) -> None:
    gate = Gate(tmp_path / "never")
    steer = {"tag": "silent", "cancel_dir": str(tmp_path), **gate.steer(hold_at=2)}
    body = json.dumps({"pieces": 3, "delay": 0, **steer}).encode()
    request = inference_pb2.PredictionsRequest(model_name="tokens", input={"data": body})
    with grpc.insecure_channel(server.grpc_inference) as channel:
        replies = inference_pb2_grpc.InferenceAPIsServiceStub(channel).StreamPredictions(
            request, timeout=TIMEOUT
        )
        assert next(replies).prediction == b"token 1 of 3\n"
        with pytest.raises(grpc.RpcError) as failure:
            next(replies)
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert failure.value.details() == (
        f"No part of the answer came within stream_chunk_timeout ({CHUNK_TIMEOUT_S} s)"
    )
    wait_until((tmp_path / "silent").exists, timeout=TIMEOUT)
    assert (tmp_path / "silent").read_text() == "1"


def test_an_answer_past_the_stream_timeout_ends_with_an_error_event(
    server: RunningServer, tmp_path: Path
) -> None:
    body = {"pieces": 1000, "delay": 0.05, "tag": "long", "cancel_dir": str(tmp_path)}
    url = f"{server.inference}/v2/models/tokens/generate_stream"
    with httpx.stream("POST", url, json=body, timeout=TIMEOUT) as response:
        lines = [line for line in response.iter_lines() if line]
    assert orjson.loads(lines[-1].removeprefix("data: ")) == {
        "error": f"The answer took longer than stream_timeout ({STREAM_TIMEOUT_S} s)"
    }
    assert all("text_output" in orjson.loads(line.removeprefix("data: ")) for line in lines[:-1])
    wait_until((tmp_path / "long").exists, timeout=TIMEOUT)
    assert int((tmp_path / "long").read_text()) < 1000


def test_a_client_that_reads_nothing_holds_the_worker_back_then_is_cancelled(
    server: RunningServer, tmp_path: Path
) -> None:
    record = tmp_path / "made"
    pieces, size = 100, 1 << 20
    body = orjson.dumps({"pieces": pieces, "size": size, "record": str(record)})
    address = urlsplit(server.inference)
    head = (
        f"POST /predictions/modes HTTP/1.1\r\nhost: {address.netloc}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((address.hostname, address.port)) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        client.sendall(head + body)  # and then reads nothing
        # The worker waits for the client, until stream_chunk_timeout gives up on it.
        wait_until(record.exists, timeout=TIMEOUT)
    made = int(record.read_text())
    # Only what the socket buffers and the stream window hold was made, not all 100 MB.
    assert made < pieces
    assert httpx.post(f"{server.inference}/predictions/modes", json={"pieces": 1}).text == (
        "piece 1\n"
    )


@pytest.fixture
def one_slot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Two workers, one ``max_concurrency`` slot: what keeps a second request out of the
    workers is a request in flight alone."""
    yield from served(tmp_path_factory, "one_slot", {"max_concurrency": "1"})


def test_a_stream_holds_its_max_concurrency_slot_until_it_ends(
    one_slot: RunningServer, tmp_path: Path
) -> None:
    gate = Gate(tmp_path / "gate")
    url = f"{one_slot.inference}/predictions/tokens"
    body = {"pieces": 3, "delay": 0, **gate.steer(hold_at=2)}
    with (
        httpx.stream("POST", url, json=body, timeout=TIMEOUT) as streaming,
        ThreadPoolExecutor(1) as pool,
    ):
        pieces = streaming.iter_raw()
        assert next(pieces) == b"token 1 of 3\n"  # the stream is open, its slot taken
        second = pool.submit(httpx.post, url, json={"pieces": 1, "delay": 0}, timeout=TIMEOUT)
        wait_until(lambda: gauge(one_slot, "modelserve_inference_waiting") == 1)
        assert not second.done()
        gate.open()
        assert b"".join(pieces) == b"token 2 of 3\ntoken 3 of 3\n"
        answer = second.result(timeout=TIMEOUT)
    assert answer.status_code == 200
    assert answer.text == "token 1 of 1\n"
