"""CORS headers from TorchServe's cors_allowed_origin / _methods / _headers keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import RunningServer, start_server

ORIGIN = "https://app.example"
TOKEN = "cors-test-static-token-0123456789"


@pytest.fixture(scope="module")
def cors_server(
    tmp_path_factory: pytest.TempPathFactory, model_store: Path
) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("cors"),
        model_store,
        config={
            "cors_allowed_origin": ORIGIN,
            "cors_allowed_methods": "GET, POST, PUT, OPTIONS",
            "cors_allowed_headers": "X-Custom-Header",
            "auth_token": TOKEN,
        },
    )
    yield running
    running.stop()


def test_allowed_origin_gets_the_header(cors_server: RunningServer) -> None:
    response = httpx.get(
        cors_server.inference + "/ping",
        headers={"Origin": ORIGIN, "Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    metrics = httpx.get(cors_server.metrics + "/metrics", headers={"Origin": ORIGIN})
    assert metrics.headers["access-control-allow-origin"] == ORIGIN


def test_other_origin_gets_no_header(cors_server: RunningServer) -> None:
    response = httpx.get(
        cors_server.inference + "/ping",
        headers={"Origin": "https://evil.example", "Authorization": f"Bearer {TOKEN}"},
    )
    assert "access-control-allow-origin" not in response.headers


def test_preflight_is_answered_without_a_key(cors_server: RunningServer) -> None:
    """Browsers send no Authorization header on a preflight."""
    response = httpx.options(
        cors_server.management + "/models/probe",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "X-Custom-Header",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "PUT" in response.headers["access-control-allow-methods"]
    assert "x-custom-header" in response.headers["access-control-allow-headers"].lower()
    refused = httpx.options(
        cors_server.management + "/models/probe",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "DELETE"},
    )
    assert refused.status_code == 400


def test_no_cors_headers_unless_configured(server: RunningServer) -> None:
    response = httpx.get(server.inference + "/ping", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers
