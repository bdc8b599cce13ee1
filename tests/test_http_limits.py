"""Size limits on every plane: request head, body, form parts."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from support import RunningServer, start_server, wait_until

HEADER_LIMIT = 4096
BODY_LIMIT = 3 * 1024 * 1024


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, model_store: Path) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("limits"),
        model_store,
        models=["files=files.mar"],
        config={"max_header_size": str(HEADER_LIMIT), "max_request_size": str(BODY_LIMIT)},
    )
    wait_until(lambda: httpx.get(running.inference + "/ping").json()["status"] == "Healthy")
    yield running
    running.stop()


@pytest.mark.parametrize("plane", ["inference", "management", "metrics"])
def test_oversized_headers_get_431(limited: RunningServer, plane: str) -> None:
    base = getattr(limited, plane)
    assert httpx.get(base + "/ping", headers={"X-Pad": "a" * 1000}).status_code != 431
    response = httpx.get(base + "/ping", headers={"X-Pad": "a" * (HEADER_LIMIT + 1)})
    assert response.status_code == 431
    body = response.json()
    assert body["type"] == "RequestHeaderFieldsTooLargeException"
    assert str(HEADER_LIMIT) in body["message"]


def test_many_small_headers_and_long_urls_count_too(limited: RunningServer) -> None:
    many = {f"X-H{i}": "v" * 40 for i in range(200)}
    assert httpx.get(limited.inference + "/ping", headers=many).status_code == 431
    long_path = "/predictions/" + "a" * (HEADER_LIMIT + 10)
    assert httpx.get(limited.inference + long_path).status_code == 431


def test_endless_headers_are_cut_off(limited: RunningServer) -> None:
    """A client streaming header lines forever is answered and disconnected, not buffered."""
    address = urlsplit(limited.inference)
    with socket.create_connection((address.hostname, address.port), timeout=10) as client:
        client.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        for index in range(10_000):
            try:
                client.sendall(f"X-Line-{index}: {'v' * 100}\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                break
        while chunk := client.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431")


def test_metrics_plane_limits_bodies(limited: RunningServer) -> None:
    response = httpx.request("GET", limited.metrics + "/metrics", content=b"x" * (BODY_LIMIT + 1))
    assert response.status_code == 413


def test_form_fields_may_use_the_whole_body_limit(limited: RunningServer) -> None:
    """A text field is bounded by max_request_size, not by a smaller per-part default."""
    field = "a" * (2 * 1024 * 1024)
    response = httpx.post(limited.inference + "/predictions/files", data={"data": field})
    assert response.status_code == 200, response.text


def test_too_many_form_parts_get_400(limited: RunningServer) -> None:
    parts = {f"field{i}": "x" for i in range(1001)}
    response = httpx.post(limited.inference + "/predictions/files", data=parts)
    assert response.status_code == 400
    assert response.json()["type"] == "BadRequestException"
