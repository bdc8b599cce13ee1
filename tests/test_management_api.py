"""Management API through the real server: TorchServe 0.12 status codes and bodies."""

from __future__ import annotations

import httpx
import pytest
from support import RunningServer, ready_workers, wait_until, worker_processes

from modelserve.engine.worker_pool import MAX_WORKERS_PER_VERSION


@pytest.fixture()
def api(server: RunningServer):
    """A client on the management plane; unregisters whatever a test registered."""
    with httpx.Client(base_url=server.management, timeout=60) as client:
        yield client
        listing = client.get("/models").json()["models"]
        for entry in listing:
            for version in client.get(f"/models/{entry['modelName']}/all").json():
                client.delete(f"/models/{entry['modelName']}/{version['modelVersion']}")
            client.delete(f"/models/{entry['modelName']}")


def test_register_sync_describe_and_unregister(api: httpx.Client, server: RunningServer) -> None:
    response = api.post("/models", params={"url": "probe.mar", "initial_workers": 1})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": 'Model "probe" Version: 1.0 registered with 1 initial workers'
    }
    assert response.text.endswith("\n")
    described = api.get("/models/probe").json()
    assert len(described) == 1
    entry = described[0]
    assert entry["modelName"] == "probe"
    assert entry["modelVersion"] == "1.0"
    assert entry["modelUrl"] == "probe.mar"
    assert entry["runtime"] == "python"
    assert (entry["minWorkers"], entry["maxWorkers"]) == (1, 1)
    assert (entry["batchSize"], entry["maxBatchDelay"]) == (1, 100)
    assert entry["loadedAtStartup"] is False
    assert entry["jobQueueStatus"] == {"remainingCapacity": 100, "pendingRequests": 0}
    [worker] = entry["workers"]
    assert worker["status"] == "READY"
    assert worker["pid"] > 0 and worker["memoryUsage"] > 0
    assert worker["startTime"].endswith("Z") and worker["gpu"] is False
    assert int(worker["id"]) >= 9000

    response = api.delete("/models/probe")
    assert response.status_code == 200
    assert response.json() == {"status": 'Model "probe" unregistered'}
    assert api.get("/models/probe").status_code == 404


def test_register_with_json_body_and_zero_workers(api: httpx.Client) -> None:
    response = api.post(
        "/models", json={"url": "probe.mar", "model_name": "renamed", "batch_size": 4}
    )
    assert response.status_code == 200
    assert "registered with 0 initial workers" in response.json()["status"]
    entry = api.get("/models/renamed").json()[0]
    assert entry["batchSize"] == 4 and entry["workers"] == []


def test_register_async_returns_202_then_workers_come_up(
    api: httpx.Client, server: RunningServer
) -> None:
    response = api.post(
        "/models", params={"url": "probe.mar", "initial_workers": 1, "synchronous": "false"}
    )
    assert response.status_code == 202
    assert response.json() == {"status": "Processing worker updates..."}
    wait_until(lambda: ready_workers(server, "probe") == 1)


@pytest.mark.parametrize(
    ("params", "status", "error_type", "message"),
    [
        ({}, 400, "BadRequestException", "Parameter url is required."),
        ({"url": "missing.mar"}, 404, "ModelNotFoundException", "Model not found at: missing.mar"),
        ({"url": "../probe.mar"}, 404, "ModelNotFoundException", ".."),
        ({"url": "probe.mar", "batch_size": "abc"}, 400, "BadRequestException", "batch_size"),
        ({"url": "probe.mar", "batch_size": "0"}, 400, "BadRequestException", "batch_size"),
        (
            {"url": "probe.mar", "initial_workers": "-1"},
            400,
            "BadRequestException",
            "initial_workers",
        ),
        ({"url": "probe.mar", "synchronous": "maybe"}, 400, "BadRequestException", "synchronous"),
        (
            {"url": "probe.mar", "runtime": "java"},
            400,
            "BadRequestException",
            "Invalid RuntimeType value: java",
        ),
    ],
)
def test_register_rejects_bad_parameters(
    api: httpx.Client, params: dict, status: int, error_type: str, message: str
) -> None:
    response = api.post("/models", params=params)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status
    assert body["type"] == error_type
    assert message in body["message"]


def test_register_malformed_json_body(api: httpx.Client) -> None:
    response = api.post(
        "/models", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]


def test_duplicate_registration_is_409(api: httpx.Client) -> None:
    assert api.post("/models", params={"url": "probe.mar"}).status_code == 200
    response = api.post("/models", params={"url": "probe.mar"})
    assert response.status_code == 409
    assert response.json()["type"] == "ConflictStatusException"
    assert response.json()["message"] == "Model version 1.0 is already registered for model probe"


def test_failed_load_reports_the_handler_error_and_unregisters(api: httpx.Client) -> None:
    response = api.post("/models", params={"url": "broken.mar", "initial_workers": 1})
    assert response.status_code == 500
    body = response.json()
    assert "Failed to start workers for model broken version: 1.0" in body["message"]
    assert "FileNotFoundError: weights.bin is missing from the archive" in body["message"]
    assert api.get("/models/broken").status_code == 404


def test_scale_sync_up_and_down(api: httpx.Client, server: RunningServer) -> None:
    api.post("/models", params={"url": "probe.mar", "initial_workers": 1})
    response = api.put("/models/probe", params={"min_worker": 3, "synchronous": "true"})
    assert response.status_code == 200
    assert response.json() == {"status": "Workers scaled to 3 for model: probe"}
    assert ready_workers(server, "probe") == 3
    pids = {w["pid"] for w in api.get("/models/probe").json()[0]["workers"]}
    assert len(pids) == 3

    response = api.put(
        "/models/probe/1.0", params={"min_worker": 1, "max_worker": 1, "synchronous": "true"}
    )
    assert response.status_code == 200
    assert response.json() == {"status": "Workers scaled to 1 for model: probe, version: 1.0"}
    wait_until(lambda: len(api.get("/models/probe").json()[0]["workers"]) == 1)
    entry = api.get("/models/probe").json()[0]
    assert (entry["minWorkers"], entry["maxWorkers"]) == (1, 1)


def test_scale_async_is_202(api: httpx.Client, server: RunningServer) -> None:
    api.post("/models", params={"url": "probe.mar"})
    response = api.put("/models/probe", params={"min_worker": 2})
    assert response.status_code == 202
    assert response.json() == {"status": "Processing worker updates..."}
    wait_until(lambda: ready_workers(server, "probe") == 2)


@pytest.mark.parametrize(
    ("path", "params", "status", "fragment"),
    [
        (
            "/models/probe",
            {"min_worker": 3, "max_worker": 2},
            400,
            "max_worker cannot be less than min_worker.",
        ),
        ("/models/probe", {"min_worker": "-2"}, 400, "min_worker"),
        ("/models/probe", {"min_worker": "many"}, 400, "min_worker"),
        ("/models/nope", {"min_worker": 1}, 404, "Model not found: nope"),
        (
            "/models/probe/9.9",
            {"min_worker": 1},
            404,
            "Model version: 9.9 does not exist for model: probe",
        ),
    ],
)
def test_scale_errors(
    api: httpx.Client, path: str, params: dict, status: int, fragment: str
) -> None:
    api.post("/models", params={"url": "probe.mar"})
    response = api.put(path, params=params)
    assert response.status_code == status
    assert fragment in response.json()["message"]


def test_list_models_paginates_like_torchserve(api: httpx.Client) -> None:
    for name in ("m_a", "m_b", "m_c"):
        assert (
            api.post("/models", params={"url": "probe.mar", "model_name": name}).status_code == 200
        )
    page = api.get("/models", params={"limit": 2}).json()
    assert page == {
        "nextPageToken": "2",
        "models": [
            {"modelName": "m_a", "modelUrl": "probe.mar"},
            {"modelName": "m_b", "modelUrl": "probe.mar"},
        ],
    }
    last = api.get("/models", params={"limit": 2, "next_page_token": 2}).json()
    assert last == {"models": [{"modelName": "m_c", "modelUrl": "probe.mar"}]}
    exact = api.get("/models", params={"limit": 3}).json()
    assert (
        exact["nextPageToken"] == "3"
    )  # TorchServe emits it when the page ends exactly at the end
    assert api.get("/models", params={"limit": "x"}).status_code == 400


def test_versions_describe_all_set_default_and_unregister_rules(api: httpx.Client) -> None:
    assert api.post("/models", params={"url": "probe.mar"}).status_code == 200
    assert api.post("/models", params={"url": "probe_v2.mar"}).status_code == 200
    versions = [entry["modelVersion"] for entry in api.get("/models/probe/all").json()]
    assert versions == ["1.0", "2.0"]
    assert api.get("/models/probe").json()[0]["modelVersion"] == "1.0"

    response = api.delete("/models/probe/1.0")
    assert response.status_code == 403
    assert response.json()["message"] == "Cannot remove default version for model probe"

    response = api.put("/models/probe/2.0/set-default")
    assert response.status_code == 200
    assert response.json() == {
        "status": 'Default version successfully updated for model "probe" to "2.0"'
    }
    assert api.get("/models/probe").json()[0]["modelVersion"] == "2.0"
    response = api.put("/models/probe/7.0/set-default")
    assert response.status_code == 404
    assert response.json()["message"] == "Model version 7.0 does not exist for model probe"
    assert api.put("/models/ghost/1.0/set-default").status_code == 404

    assert api.delete("/models/probe/1.0").status_code == 200
    assert api.delete("/models/probe/1.0").status_code == 404


def test_unknown_paths_and_methods(api: httpx.Client) -> None:
    response = api.get("/nothing/here")
    assert response.status_code == 404
    assert response.json()["type"] == "ResourceNotFoundException"
    response = api.patch("/models")
    assert response.status_code == 405
    assert response.json()["type"] == "MethodNotAllowedException"
    assert api.get("/models/ghost").status_code == 404
    assert api.delete("/models/ghost").json()["message"] == "Model not found: ghost"


def test_options_describes_the_api(api: httpx.Client) -> None:
    document = api.options("/").json()
    assert document["openapi"].startswith("3.")
    assert "/models/{model_name}/{version}/set-default" in document["paths"]


# ----- regressions found by the schemathesis fuzzing (test_api_fuzz.py)


@pytest.mark.parametrize(
    ("method", "path", "params", "name"),
    [
        ("PUT", "/models/probe", {"min_worker": MAX_WORKERS_PER_VERSION + 1}, "min_worker"),
        ("PUT", "/models/probe/1.0", {"max_worker": 100000}, "max_worker"),
        ("POST", "/models", {"url": "probe.mar", "initial_workers": 100000}, "initial_workers"),
    ],
)
def test_worker_counts_above_the_cap_are_400(
    api: httpx.Client,
    server: RunningServer,
    method: str,
    path: str,
    params: dict[str, object],
    name: str,
) -> None:
    """A worker count above MAX_WORKERS_PER_VERSION is refused instead of spawning it."""
    if method == "PUT":
        assert api.post("/models", params={"url": "probe.mar"}).status_code == 200
    response = api.request(method, path, params=params)
    assert response.status_code == 400
    assert response.json() == {
        "code": 400,
        "type": "BadRequestException",
        "message": f"Invalid value for {name}: {params[name]} "
        f"(must be <= {MAX_WORKERS_PER_VERSION})",
    }
    assert worker_processes(server) == []


@pytest.mark.parametrize(
    ("params", "name", "shown"),
    [
        # Larger than 64 bits: describe (orjson) could not render the version.
        ({"max_batch_delay": 10**20}, "max_batch_delay", str(10**20)),
        # Beyond a float: the response timer would overflow on the first batch.
        ({"response_timeout": 10**400}, "response_timeout", str(10**400)),
        ({"batch_size": 2**31}, "batch_size", str(2**31)),
    ],
)
def test_integers_beyond_a_java_int_are_400(
    api: httpx.Client, params: dict[str, int], name: str, shown: str
) -> None:
    """Integer parameters stop at 2**31 - 1, as TorchServe's Integer.parseInt does."""
    response = api.post("/models", params={"url": "probe.mar", **params})
    assert response.status_code == 400
    assert response.json() == {
        "code": 400,
        "type": "BadRequestException",
        "message": f"Invalid value for {name}: {shown} (must be <= {2**31 - 1})",
    }
    assert api.get("/models/probe").status_code == 404


def test_json_body_integers_must_be_whole(api: httpx.Client) -> None:
    """A JSON 2.5 is not silently registered as batch size 2."""
    response = api.post("/models", json={"url": "probe.mar", "batch_size": 2.5})
    assert response.status_code == 400
    assert response.json() == {
        "code": 400,
        "type": "BadRequestException",
        "message": "Invalid value for batch_size: 2.5 (expected an integer)",
    }
    assert api.post("/models", json={"url": "probe.mar", "batch_size": 4.0}).status_code == 200
    assert api.get("/models/probe").json()[0]["batchSize"] == 4


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        ("no_such_module", "handler module 'no_such_module' is neither in the model directory nor"),
        ("0.0.0+unknown", "handler module '0.0.0+unknown' is neither in the model directory nor"),
        ("..", "handler '..' names no module"),
    ],
)
def test_a_handler_that_names_nothing_is_400(api: httpx.Client, handler: str, reason: str) -> None:
    """The worker cannot even find the handler: the request is wrong, not the server."""
    params = {"url": "probe.mar", "handler": handler, "initial_workers": 1}
    response = api.post("/models", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "InvalidHandlerException"
    assert body["message"].startswith(
        f"Failed to start workers for model probe version: 1.0: HandlerLoadError: {reason}"
    )
    assert api.get("/models/probe").status_code == 404


@pytest.mark.parametrize("name", ["../../escaped", "a/b", "a\\b", "a\x00b", "..", ".", "a\nb"])
def test_model_names_no_path_can_hold_are_400(
    api: httpx.Client, server: RunningServer, name: str
) -> None:
    """A name with "/" could never be addressed, "../" wrote the model outside the runtime
    directory, and a NUL byte was a 500."""
    response = api.post("/models", params={"url": "probe.mar", "model_name": name})
    assert response.status_code == 400
    assert response.json() == {
        "code": 400,
        "type": "BadRequestException",
        "message": f"Invalid model name {name!r}: it must not be empty, '.' or '..', or contain "
        "'/', '\\' or control characters",
    }
    assert api.get("/models").json()["models"] == []
    assert not list(server.log_path.parent.glob("**/escaped-*"))
