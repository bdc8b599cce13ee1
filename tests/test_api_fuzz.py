"""Fuzzing of the management and inference planes with schemathesis.

The requests are generated from the planes' OpenAPI documents (the ones the server serves at
``OPTIONS /``), so the documents are tested too: every generated request, valid or not, must get
an answer that is not a 5xx, with a status, content type and body the document declares, within
a timeout (a hang fails the test). The numbers of examples are bounded and generation is
derandomized, so CI sends the same cases every time.

For a deeper local search: ``MODELSERVE_FUZZ_EXAMPLES=300 MODELSERVE_FUZZ_RANDOM=1 pytest
tests/test_api_fuzz.py`` (new random cases on every run).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema
from support import RunningServer, build_test_archive, start_server

from modelserve.api.openapi import inference_openapi, management_openapi

# Examples per operation in the fuzzing phase (about 1000 cases in all, 15 s on two cores); the
# coverage phase adds its deterministic boundary cases (empty, too small, too large, wrong type,
# unexpected methods) on top.
MAX_EXAMPLES = int(os.environ.get("MODELSERVE_FUZZ_EXAMPLES", "50"))
# Seconds one request may take before it counts as a hang. A synchronous scale or register
# starts at most MAX_WORKERS_PER_VERSION workers of a model that loads in milliseconds.
REQUEST_TIMEOUT_S = 30.0
# Body keys that make tests/fixtures/handlers/probe.py misbehave on purpose: fail raises in the
# handler (a deliberate 500), sleep holds the worker past any timeout, status sets an arbitrary
# response status, touch creates a file, content_type sets any content type.
PROBE_CONTROL_KEYS = frozenset({"fail", "sleep", "status", "touch", "content_type"})
# Names that once were a 500 (NUL) or a model registered where no URL could reach it or
# extracted outside the runtime directory ("/", ".."); the register document's pattern refuses
# most of them, so they come up in the negative cases.
ODD_NAMES = ["a/b", "../escaped", "..", "a\x00b", "a\\b", "%2F", "é"]
# What the generated path and query values are mixed with (schemathesis dictionaries), so that
# the cases reach a model that exists and an archive that registers instead of stopping at 404,
# and try the names and handlers most likely to break something.
FUZZ_SETTINGS = {
    "dictionaries": {
        "models": {"values": ["probe"]},
        "new_names": {"values": ["probe", "fuzzed", *ODD_NAMES]},
        "versions": {"values": ["1.0", "2.0", "all", *ODD_NAMES]},
        "archives": {"values": ["probe.mar", "probe_v2.mar"]},
        "handlers": {"values": ["probe", "probe.py:handle", "0.0.0+unknown", "..", "os"]},
    },
    "parameters": {
        "path.model_name": {"dictionary": "models", "probability": 0.6},
        "path.version": {"dictionary": "versions", "probability": 0.6},
        "query.url": {"dictionary": "archives", "probability": 0.6},
        "query.model_name": {"dictionary": "new_names", "probability": 0.5},
        "query.handler": {"dictionary": "handlers", "probability": 0.3},
    },
}
# The checks of every response: no 5xx, and a status, content type and body the document
# declares for the operation.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# Response statuses of the fuzz cases, per plane.
statuses: defaultdict[str, Counter[int]] = defaultdict(Counter)


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store with only what the fuzzer may register: probe 1.0 and probe 2.0."""
    store = tmp_path_factory.mktemp("fuzz_store")
    build_test_archive(store, "probe", "probe.py", "1.0")
    v2_dir = tmp_path_factory.mktemp("fuzz_probe_v2")
    build_test_archive(v2_dir, "probe", "probe.py", "2.0")
    (v2_dir / "probe.mar").rename(store / "probe_v2.mar")
    return store


@pytest.fixture(scope="module")
def fuzz_server(
    tmp_path_factory: pytest.TempPathFactory, fuzz_store: Path
) -> Iterator[RunningServer]:
    """A server of this module alone, with probe registered and one worker per model."""
    running = start_server(
        tmp_path_factory.mktemp("fuzz_server"),
        fuzz_store,
        models=["probe=probe.mar"],
        config={"default_workers_per_model": "1"},
    )
    yield running
    assert running.process.poll() is None, f"the server died:\n{running.log()}"
    running.stop()


def fuzz_schema(document: dict[str, Any]) -> OpenApiSchema:
    """A plane's OpenAPI document, as schemathesis fuzzes it."""
    return schemathesis.openapi.from_dict(
        document, config=schemathesis.Config.from_dict(FUZZ_SETTINGS)
    )


@pytest.fixture
def probe_serving(fuzz_server: RunningServer) -> None:
    """probe 1.0 registered as the default version, with a ready worker, whatever the
    management fuzzing did to it: with no worker, predictions would rightly get 503."""
    with httpx.Client(base_url=fuzz_server.management, timeout=REQUEST_TIMEOUT_S) as api:
        if api.get("/models/probe/1.0").status_code == 404:
            assert api.post("/models", params={"url": "probe.mar"}).status_code == 200
        assert api.put("/models/probe/1.0/set-default").status_code == 200
        scale = {"min_worker": 1, "synchronous": "true"}
        assert api.put("/models/probe/1.0", params=scale).status_code == 200


def unregister_new_models(server: RunningServer) -> None:
    """Unregister every model but probe, so that workers of fuzzed registrations do not pile
    up (each may start up to MAX_WORKERS_PER_VERSION of them)."""
    with httpx.Client(base_url=server.management, timeout=REQUEST_TIMEOUT_S) as api:
        for model in api.get("/models").json()["models"]:
            if model["modelName"] == "probe":
                continue
            name = model["modelName"]
            path = "/models/" + quote(name, safe="")
            described = api.get(path)
            assert described.status_code == 200, f"{name!r} is registered but unreachable"
            default = described.json()[0]["modelVersion"]
            versions = [entry["modelVersion"] for entry in api.get(path + "/all").json()]
            # The default version goes last: it cannot be removed while others exist.
            for version in sorted(versions, key=lambda version: version == default):
                response = api.delete(f"{path}/{quote(version, safe='')}")
                assert response.status_code == 200, response.text


fuzz_settings = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("MODELSERVE_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=list(HealthCheck),
)

# The documents are built in-process at collection time, when no server runs yet (schemathesis
# 4.32's fixture-loaded schemas, schemathesis.pytest.from_fixture, fail on pytest 9.2);
# test_served_documents checks that the server serves exactly these.
inference = fuzz_schema(inference_openapi())
management = fuzz_schema(management_openapi())


def test_served_documents(fuzz_server: RunningServer) -> None:
    """Each plane serves the document fuzzed here, at OPTIONS / and GET /api-description."""
    for url, document in (
        (fuzz_server.inference, inference_openapi()),
        (fuzz_server.management, management_openapi()),
    ):
        assert httpx.request("OPTIONS", url + "/").json() == document
        assert httpx.get(url + "/api-description").json() == document


def call(case: schemathesis.Case, plane: str, base_url: str) -> None:
    """Send the case and run the checks on its response; count it."""
    response = case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=REQUEST_TIMEOUT_S)
    statuses[plane][response.status_code] += 1


@inference.parametrize()
@fuzz_settings
def test_inference_plane(
    case: schemathesis.Case, fuzz_server: RunningServer, probe_serving: None
) -> None:
    """No generated inference request gets a 5xx or hangs."""
    if isinstance(case.body, dict):
        # probe fails on these keys on purpose; what a handler does is up to the handler.
        case.body = {
            key: value for key, value in case.body.items() if key not in PROBE_CONTROL_KEYS
        }
    call(case, "inference", fuzz_server.inference)


@management.parametrize()
@fuzz_settings
def test_management_plane(case: schemathesis.Case, fuzz_server: RunningServer) -> None:
    """No generated management request gets a 5xx or hangs."""
    try:
        call(case, "management", fuzz_server.management)
    finally:
        if case.method == "POST":  # the one operation that adds models
            unregister_new_models(fuzz_server)


def test_fuzzing_reached_the_model(
    request: pytest.FixtureRequest, record_testsuite_property: Callable[[str, object], None]
) -> None:
    """Report the cases run, and check that they did not all stop at a 404: some reached the
    registered model (a 2xx), some were refused (a 4xx), on both planes."""
    if not statuses:
        pytest.skip("the fuzz tests did not run in this session")
    lines = []
    for plane, counts in sorted(statuses.items()):
        total = sum(counts.values())
        record_testsuite_property(f"fuzz_cases_{plane}", total)
        summary = ", ".join(f"{status}: {count}" for status, count in sorted(counts.items()))
        lines.append(f"fuzz: {total} {plane} cases (status: count {summary})")
    lines.append(f"fuzz: {sum(sum(counts.values()) for counts in statuses.values())} cases")
    # Shown in the terminal even when output is captured (-q included).
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\n" + "\n".join(lines))
    for plane, counts in statuses.items():
        assert any(200 <= status < 300 for status in counts), plane
        assert any(400 <= status < 500 for status in counts), plane
