"""The inference hot paths (``api/hot_path.py``) and the one-write response
(``api/http_protocol.py``) answer as the full stack does (``/predictions``, v2 infer, TF
Serving's ``:predict``): a client that waits for
``100 Continue`` gets it, HEAD answers, each protocol's error body, the repeated header's first
value, the access log line."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from support import RunningServer, wait_until


@pytest.fixture(scope="module")
def probe(server: RunningServer) -> Iterator[RunningServer]:
    """The server with the probe model (it echoes what it was sent) on one worker."""
    with httpx.Client(base_url=server.management, timeout=60) as management:
        params = {"url": "probe.mar", "initial_workers": 1, "synchronous": "true"}
        assert management.post("/models", params=params).status_code == 200
        yield server
        management.delete("/models/probe")


def _read_head(connection: socket.socket) -> bytes:
    """Bytes up to and including the first blank line."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(4096)
        assert chunk, f"connection closed after {received!r}"
        received += chunk
    return received


def test_expect_100_continue_is_answered_before_the_body_is_sent(probe: RunningServer) -> None:
    body = json.dumps({"echo": "after continue"}).encode()
    address = urlsplit(probe.inference)
    with socket.create_connection((address.hostname, address.port), timeout=30) as connection:
        connection.sendall(
            b"POST /predictions/probe HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        # Held back with the response's head, it would never come: the client waits for it.
        interim = _read_head(connection)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
        connection.sendall(body)
        answer = interim.partition(b"\r\n\r\n")[2] or _read_head(connection)
        while b"after continue" not in answer:
            chunk = connection.recv(4096)
            assert chunk, f"connection closed after {answer!r}"
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")


def test_head_is_answered_with_the_length_and_no_body(probe: RunningServer) -> None:
    response = httpx.head(probe.inference + "/ping", timeout=30)
    assert response.status_code == 200
    assert int(response.headers["content-length"]) > 0
    assert response.content == b""


def test_errors_keep_each_protocols_body(probe: RunningServer) -> None:
    torchserve = httpx.post(probe.inference + "/predictions/absent", json={}, timeout=30)
    assert torchserve.status_code == 404
    assert torchserve.json()["type"] == "ModelNotFoundException"
    v2 = httpx.post(probe.inference + "/v2/models/absent/infer", json={}, timeout=30)
    assert v2.status_code == 404
    assert set(v2.json()) == {"error"}
    tf_serving = httpx.post(probe.inference + "/v1/models/absent:predict", json={}, timeout=30)
    assert tf_serving.status_code == 404
    assert set(tf_serving.json()) == {"error"}
    # A route the hot path does not take (a trailing slash) answers the same.
    slash = httpx.post(probe.inference + "/predictions/absent/", json={}, timeout=30)
    assert (slash.status_code, slash.json()) == (404, torchserve.json())
    slash = httpx.post(probe.inference + "/v1/models/absent:predict/", json={}, timeout=30)
    assert slash.status_code == 404
    assert set(slash.json()) == {"error"}


def test_a_repeated_header_reaches_the_handler_with_its_first_value(
    probe: RunningServer,
) -> None:
    response = httpx.post(
        probe.inference + "/predictions/probe",
        json={"echo": "hi"},
        headers=[("X-Probe", "first"), ("X-Probe", "second")],
        timeout=30,
    )
    assert response.status_code == 200
    assert response.json()["header"] == "first"


def test_hot_path_requests_are_in_the_access_log(probe: RunningServer) -> None:
    response = httpx.post(probe.inference + "/predictions/probe/1.0", json={}, timeout=30)
    assert response.status_code == 200
    line = '"POST /predictions/probe/1.0 HTTP/1.1" 200'
    wait_until(lambda: line in probe.log())
