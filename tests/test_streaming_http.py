"""Answers in parts over TorchServe's REST API: ``/predictions`` sends each part the handler
makes as one HTTP/1.1 chunk, at once (TorchServe's streaming), whichever way the handler sends
it; a client that cannot stream gets the parts joined; a client that leaves cancels."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import h11
import httpx
import orjson
import pytest
from streaming_fixtures import TIMEOUT, Gate, numbers, served, tracebacks
from support import RunningServer, wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from served(tmp_path_factory, "streaming_http")


def chunks(server: RunningServer, path: str, body: dict) -> tuple[h11.Response, list[bytes]]:
    """The response head and each chunk of the body as the server framed it (h11 reads the
    framing; HTTP clients hide it)."""
    address = urlsplit(server.inference)
    connection = h11.Connection(h11.CLIENT)
    content = orjson.dumps(body)
    head = h11.Request(
        method="POST",
        target=path,
        headers=[
            ("host", address.netloc),
            ("content-type", "application/json"),
            ("content-length", str(len(content))),
        ],
    )
    with socket.create_connection((address.hostname, address.port), timeout=TIMEOUT) as sock:
        sock.sendall(connection.send(head) + connection.send(h11.Data(data=content)))
        sock.sendall(connection.send(h11.EndOfMessage()))
        response, framed, current = None, [], b""
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                current += event.data
                if event.chunk_end:
                    framed.append(current)
                    current = b""
            elif isinstance(event, h11.EndOfMessage):
                assert response is not None
                return response, framed


def test_each_piece_reaches_the_client_before_the_next_is_made(
    server: RunningServer, tmp_path: Path
) -> None:
    gate = Gate(tmp_path / "gate")
    body = {"pieces": 5, "delay": 0, **gate.steer(hold_at=2)}
    url = f"{server.inference}/predictions/tokens"
    with httpx.stream("POST", url, json=body, timeout=TIMEOUT) as response:
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.headers["ts_stream_next"] == "true"  # as TorchServe sends it
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.headers["x-request-id"]
        received = response.iter_raw()
        # Piece 2 waits for the gate: piece 1 came while the handler was still at work.
        assert next(received) == b"token 1 of 5\n"
        gate.open()
        rest = b"".join(received)
    assert numbers(b"token 1 of 5\n" + rest) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("mode", ["intermediate", "legacy", "generator"])
def test_each_part_is_one_chunk_whatever_way_the_handler_sends_it(
    server: RunningServer, mode: str
) -> None:
    """TorchServe's send_intermediate_predict_response (both import paths), or a generator."""
    response, framed = chunks(server, "/predictions/modes", {"mode": mode, "pieces": 4})
    assert response.status_code == 200
    assert (b"transfer-encoding", b"chunked") in response.headers
    assert framed == [b"piece 1\n", b"piece 2\n", b"piece 3\n", b"piece 4\n"]


def test_a_whole_answer_is_still_sent_whole(server: RunningServer) -> None:
    response, framed = chunks(server, "/predictions/modes", {"mode": "whole"})
    assert response.status_code == 200
    assert (b"content-length", b"12") in response.headers
    assert framed == []  # not chunked: one body
    answer = httpx.post(f"{server.inference}/predictions/modes", json={"mode": "whole"})
    assert answer.text == "whole answer"


@pytest.mark.parametrize("path", ["/v2/models/modes/infer", "/explanations/modes"])
def test_a_client_that_cannot_take_parts_gets_them_joined(server: RunningServer, path: str) -> None:
    answer = httpx.post(
        server.inference + path, json={"mode": "intermediate", "pieces": 3}, timeout=TIMEOUT
    )
    assert answer.status_code == 200, answer.text
    assert "transfer-encoding" not in answer.headers
    assert answer.text == "piece 1\npiece 2\npiece 3\n"


def test_an_error_after_the_first_part_cuts_the_answer_off(server: RunningServer) -> None:
    url = f"{server.inference}/predictions/modes"
    received = b""
    failing = {"pieces": 5, "fail_after": 2}
    # An incomplete chunked body: the client cannot mistake it for the whole answer.
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", url, json=failing) as response,
    ):
        assert response.status_code == 200
        for piece in response.iter_raw():
            received += piece
    assert received == b"piece 1\npiece 2\n"
    # A part with an error status (TorchServe's code argument) ends it the same way.
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST", url, json={"mode": "intermediate", "pieces": 5, "refuse": True}
        ) as response,
    ):
        assert b"".join(response.iter_raw()) == b"piece 1\n"
    # Everything else still serves.
    answer = httpx.post(url, json={"pieces": 2}, timeout=TIMEOUT)
    assert answer.text == "piece 1\npiece 2\n"


def test_an_error_before_any_part_is_an_ordinary_error(server: RunningServer) -> None:
    answer = httpx.post(
        f"{server.inference}/predictions/modes", json={"pieces": 3, "fail_after": 0}
    )
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["message"] == "failed after 0 pieces"
    refused = httpx.post(f"{server.inference}/predictions/tokens", json={"pieces": 0})
    assert refused.status_code == 400
    assert refused.json()["message"] == '"pieces" must be an integer from 1 to 100000'


def test_a_client_that_leaves_cancels_its_request_in_the_worker(
    server: RunningServer, tmp_path: Path
) -> None:
    logged = len(server.log())
    gate = Gate(tmp_path / "never")
    steer = {"tag": "leaver", "cancel_dir": str(tmp_path), **gate.steer(hold_at=3)}
    url = f"{server.inference}/predictions/tokens"
    with httpx.stream("POST", url, json={"pieces": 10, "delay": 0, **steer}) as response:
        received = response.iter_raw()
        assert next(received) + next(received) == b"token 1 of 10\ntoken 2 of 10\n"
    # The handler, waiting for a gate that never opens, sees the cancellation.
    marker = tmp_path / "leaver"
    wait_until(marker.exists, timeout=TIMEOUT)
    assert marker.read_text() == "2"
    assert not tracebacks(server, since=logged)
