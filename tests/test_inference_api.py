"""Inference API through the real server: predictions, explanations, ping, errors."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from support import RunningServer


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    """An inference client, with probe (1 worker), files (1 worker), other (0 workers)."""
    with httpx.Client(base_url=server.management, timeout=60) as management:
        for params in (
            {"url": "probe.mar", "initial_workers": 1},
            {"url": "files.mar", "initial_workers": 1},
            {"url": "other.mar", "initial_workers": 0},
        ):
            assert management.post("/models", params=params).status_code == 200
        with httpx.Client(base_url=server.inference, timeout=60) as inference:
            yield inference
        for name in ("probe", "files", "other"):
            management.delete(f"/models/{name}")


def test_predict_json_body(client: httpx.Client) -> None:
    response = client.post(
        "/predictions/probe", json={"echo": "hi"}, headers={"X-Probe": "from-client"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["echo"] == "hi"
    assert body["explain"] == "False"
    assert body["url_path"] == ""
    assert body["header"] == "from-client"  # case-insensitive header lookup
    assert body["params"] == ["body"]
    assert body["request_id"] == response.headers["x-request-id"]
    # One worker: it gets every core but the frontend's, and no fewer than one thread.
    assert body["omp_threads"] == str(max(1, (os.cpu_count() or 1) - 1))


def test_query_parameters_reach_the_handler(client: httpx.Client) -> None:
    body = client.post("/predictions/probe?alpha=1&beta=2", json={}).json()
    assert body["params"] == ["alpha", "beta", "body"]


def test_explanations_and_url_path(client: httpx.Client) -> None:
    body = client.post("/explanations/probe/1.0", json={}).json()
    assert body["explain"] == "True"
    body = client.post("/predictions/probe/1.0/extra/segments", json={}).json()
    assert body["url_path"] == "extra/segments"


def test_raw_and_multipart_bodies(client: httpx.Client) -> None:
    raw = client.post(
        "/predictions/files", content=b"\x89PNG....", headers={"content-type": "image/png"}
    )
    assert raw.json() == {"body": {"type": "bytes", "size": 8}}
    text = client.post(
        "/predictions/files", content=b"hello", headers={"content-type": "text/plain"}
    )
    assert text.json() == {"body": {"type": "str", "size": 5}}
    form = client.post(
        "/predictions/files",
        files={"data": ("x.bin", b"\x00" * 1000, "application/octet-stream")},
        data={"note": "abc"},
    )
    assert form.status_code == 200
    assert form.json() == {
        "data": {"type": "bytes", "size": 1000},
        "note": {"type": "bytes", "size": 3},
    }


def test_handler_sets_status_and_content_type(client: httpx.Client) -> None:
    response = client.post("/predictions/probe", json={"status": 202, "content_type": "text/csv"})
    assert response.status_code == 202
    assert response.headers["content-type"].startswith("text/csv")
    assert '"batch":1' in response.text


def test_handler_exception_is_500_with_type_and_message(client: httpx.Client) -> None:
    response = client.post("/predictions/probe", json={"fail": "tensor shape mismatch"})
    assert response.status_code == 500
    assert response.json() == {
        "code": 500,
        "type": "RuntimeError",
        "message": "tensor shape mismatch",
    }
    assert client.post("/predictions/probe", json={}).status_code == 200  # worker survived


@pytest.mark.parametrize(
    ("path", "status", "error_type", "message"),
    [
        ("/predictions/ghost", 404, "ModelNotFoundException", "Model not found: ghost"),
        (
            "/predictions/probe/3.0",
            404,
            "ModelVersionNotFoundException",
            "Model version: 3.0 does not exist for model: probe",
        ),
        ("/predictions/other", 503, "ServiceUnavailableException", "has no worker"),
        ("/nowhere", 404, "ResourceNotFoundException", "Requested resource is not found"),
    ],
)
def test_inference_errors(
    client: httpx.Client, path: str, status: int, error_type: str, message: str
) -> None:
    response = client.post(path, json={})
    assert response.status_code == status
    body = response.json()
    assert body["code"] == status and body["type"] == error_type
    assert message in body["message"]


def test_no_worker_503_says_retry_after(client: httpx.Client) -> None:
    assert client.post("/predictions/other", json={}).headers["retry-after"] == "1"


def test_oversized_body_is_413(client: httpx.Client) -> None:
    response = client.post("/predictions/probe", content=b"x" * 7_000_000)
    assert response.status_code == 413
    assert "max_request_size" in response.json()["message"]


def test_ping_and_api_description(client: httpx.Client) -> None:
    assert client.get("/ping").json() == {"status": "Healthy"}
    assert client.post("/ping").status_code == 200
    document = client.options("/").json()
    assert "/predictions/{model_name}" in document["paths"]
    assert client.options("/predictions/probe").json()["openapi"].startswith("3.")
