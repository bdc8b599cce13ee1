"""A trailing slash is served, never redirected, on every route of every plane (issue 13, item
10): ``/ping/`` answers what ``/ping`` answers, so curl without -L prints the answer."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import RunningServer, start_server, wait_until


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_store: Path) -> Iterator[RunningServer]:
    """probe with a ready worker."""
    running = start_server(
        tmp_path_factory.mktemp("slashes"),
        model_store,
        models=["probe=probe.mar"],
        config={"default_workers_per_model": "1"},
    )
    wait_until(lambda: httpx.get(running.inference + "/ping").status_code == 200)
    yield running
    running.stop()


def both(method: str, url: str, **kwargs: Any) -> tuple[httpx.Response, httpx.Response]:
    """The answers to ``url`` and to ``url/``; the second must be no redirect."""
    plain = httpx.request(method, url, timeout=60, **kwargs)
    slashed = httpx.request(method, url + "/", timeout=60, follow_redirects=False, **kwargs)
    assert slashed.status_code == plain.status_code, (url, slashed.status_code, slashed.text)
    assert slashed.headers["content-type"] == plain.headers["content-type"]
    return plain, slashed


# (method, plane, path) whose answers do not change from one call to the next
STABLE = [
    ("GET", "inference", "/ping"),
    ("GET", "inference", "/api-description"),
    ("GET", "inference", "/v2"),
    ("GET", "inference", "/v2/health/live"),
    ("GET", "inference", "/v2/health/ready"),
    ("GET", "inference", "/v2/models/probe"),
    ("GET", "inference", "/v2/models/probe/ready"),
    ("GET", "inference", "/v2/models/probe/versions/1.0/ready"),
    ("GET", "inference", "/v1/models/probe"),
    ("GET", "inference", "/v1/models/probe/versions/1.0"),
    ("GET", "inference", "/predictions/nope"),  # 404 for both
    ("GET", "management", "/models"),
    ("GET", "management", "/api-description"),
    ("GET", "management", "/models/nope"),  # 404 for both
    ("PUT", "management", "/models/probe/1.0/set-default"),
]


@pytest.mark.parametrize(("method", "plane", "path"), STABLE)
def test_the_same_answer_with_a_trailing_slash(
    served: RunningServer, method: str, plane: str, path: str
) -> None:
    plain, slashed = both(method, getattr(served, plane) + path)
    assert slashed.content == plain.content


@pytest.mark.parametrize(
    "path",
    [
        "/predictions/probe",
        "/predictions/probe/1.0",
        "/explanations/probe",
        "/v2/models/probe/infer",
        "/v2/models/probe/versions/1.0/infer",
        "/v1/models/probe:predict",
        "/v1/models/probe/versions/1.0:predict",
    ],
)
def test_inference_with_a_trailing_slash(served: RunningServer, path: str) -> None:
    plain, slashed = both("POST", served.inference + path, json={"echo": path})
    assert plain.status_code == 200, plain.text
    assert slashed.json()["echo"] == plain.json()["echo"] == path
    assert slashed.json()["version"] == "1.0"


def test_management_with_a_trailing_slash(served: RunningServer) -> None:
    management = served.management
    response = httpx.post(management + "/models/", params={"url": "other.mar"}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["status"].startswith('Model "other" Version: 1.0 registered')
    scaled = httpx.put(
        management + "/models/other/", params={"min_worker": 2, "synchronous": "true"}, timeout=60
    )
    assert scaled.json() == {"status": "Workers scaled to 2 for model: other"}
    [described] = httpx.get(management + "/models/other/1.0/").json()
    assert described["minWorkers"] == 2
    deleted = httpx.delete(management + "/models/other/", timeout=60)
    assert deleted.json() == {"status": 'Model "other" unregistered'}


def test_metrics_with_a_trailing_slash(served: RunningServer) -> None:
    plain, slashed = both("GET", served.metrics + "/metrics")
    assert plain.status_code == 200
    assert "ts_inference_requests_total" in slashed.text


def curl(*args: str) -> str:
    """curl as a user types it: no -L."""
    result = subprocess.run(
        ["curl", "-s", *args], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout


def test_curl_without_follow_prints_the_answer(served: RunningServer) -> None:
    assert json.loads(curl(served.inference + "/ping/")) == {"status": "Healthy"}
    answer = curl(
        "-X",
        "POST",
        served.inference + "/predictions/probe/",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{"echo": "curl"}',
    )
    assert json.loads(answer)["echo"] == "curl"
    registered = curl("-X", "POST", served.management + "/models/?url=other.mar")
    assert "registered" in json.loads(registered)["status"]
    deleted = curl("-X", "DELETE", served.management + "/models/other/")
    assert json.loads(deleted) == {"status": 'Model "other" unregistered'}


def test_the_root_and_unknown_paths(served: RunningServer) -> None:
    root = httpx.request("OPTIONS", served.inference + "/")
    assert root.json()["info"]["title"] == "modelserve inference API"
    for path in ("/nothing/", "/v1/", "/v1", "/v2/nothing/"):
        response = httpx.get(served.inference + path)
        assert response.status_code == 404, (path, response.status_code)


def test_the_access_log_shows_the_path_sent(served: RunningServer) -> None:
    httpx.get(served.inference + "/ping/")
    wait_until(lambda: '"GET /ping/ HTTP/1.1" 200' in served.log())


def test_with_token_authorization(
    tmp_path_factory: pytest.TempPathFactory, model_store: Path
) -> None:
    """What needs no key (the API description) or another key (the token API) keeps its rule
    with a trailing slash."""
    server = start_server(
        tmp_path_factory.mktemp("slashes_keyed"),
        model_store,
        config={"disable_token_authorization": "false"},
    )
    try:
        keys = json.loads((server.log_path.parent / "key_file.json").read_text())
        for plane in (server.inference, server.management):
            assert httpx.get(plane + "/api-description/").status_code == 200
            assert httpx.get(plane + "/models/").status_code == 401
        token = httpx.get(
            server.management + "/token/",
            params={"type": "management"},
            headers={"Authorization": f"Bearer {keys['API']['key']}"},
        )
        assert token.status_code == 200, token.text
        new_key = token.json()["management"]["key"]
        listing = httpx.get(
            server.management + "/models/", headers={"Authorization": f"Bearer {new_key}"}
        )
        assert listing.json() == {"models": []}
    finally:
        server.stop()
