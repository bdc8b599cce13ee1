"""The parameter table (``modelserve.parameters``) against what the server serves.

Each plane's API description lists exactly the query parameters each operation accepts, and
every constraint it states (type, bounds, enum, pattern, required) is enforced with a 400: the
description and the validators cannot drift apart. The checks walk the served documents, so a
parameter or bound added to the table is checked without a word here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support import RunningServer, start_server

from modelserve.api.openapi import management_openapi, metrics_openapi
from modelserve.engine.worker_pool import MAX_WORKERS_PER_VERSION
from modelserve.parameters import REGISTER, SCALE
from modelserve.protocol_contract import TENSOR_DATATYPES

# What the path templates are filled with, and valid values of the required parameters, so
# that a refusal is about the parameter under test.
PATH_VALUES = {
    "model_name": "probe",
    "version": "1.0",
    "workflow_name": "probe",
    "service_name": "probe",
}
REQUIRED_VALUES = {"url": "probe.mar"}
UNKNOWN = "zz_unknown"
SPEC = Path(__file__).parents[2] / "src" / "modelserve" / "api" / "specs" / "inference.yaml"


@pytest.fixture(scope="module")
def keyed_server(
    tmp_path_factory: pytest.TempPathFactory, model_store: Path
) -> Iterator[RunningServer]:
    """A server with token authorization on, so that the token API is served too."""
    running = start_server(
        tmp_path_factory.mktemp("parameters"),
        model_store,
        config={"disable_token_authorization": "false"},
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def keys(keyed_server: RunningServer) -> dict[str, Any]:
    return json.loads((keyed_server.log_path.parent / "key_file.json").read_text())


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    """Each operation of ``document``: its path (templates filled), method and query
    parameters."""
    for template, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            declared = [*item.get("parameters", ()), *operation.get("parameters", ())]
            query = [parameter for parameter in declared if parameter["in"] == "query"]
            yield template.format(**PATH_VALUES), method.upper(), query


def refusals(parameter: dict[str, Any]) -> Iterator[tuple[Any, str | None]]:
    """Values of ``parameter`` its description refuses, each with the message the table's
    validation answers (None: the check belongs to the engine or the token API, which word
    it as TorchServe does)."""
    name, schema = parameter["name"], parameter["schema"]
    if schema["type"] == "integer":
        low, high = schema["minimum"], schema["maximum"]
        yield low - 1, f"Invalid value for {name}: {low - 1} (must be >= {low})"
        yield high + 1, f"Invalid value for {name}: {high + 1} (must be <= {high})"
        yield "ten", f"Invalid value for {name}: 'ten' (expected an integer)"
    elif schema["type"] == "boolean":
        yield "maybe", f"Invalid value for {name}: 'maybe' (expected true or false)"
    if "enum" in schema:
        yield "zz-not-listed", None
    if "pattern" in schema:
        yield (
            next(value for value in ("..", "a/b") if not re.fullmatch(schema["pattern"], value)),
            None,
        )


def bad_requests(
    client: httpx.Client, document: dict[str, Any], headers_for: dict[str, dict[str, str]]
) -> list[str]:
    """Send every refusal the document implies; what was not answered as expected."""
    wrong = []
    for path, method, query in operations(document):
        headers = headers_for.get(path, headers_for["*"])
        names = sorted(parameter["name"] for parameter in query)
        required = {p["name"]: REQUIRED_VALUES[p["name"]] for p in query if p["required"]}
        cases: list[tuple[dict[str, Any], str | None, str]] = [
            ({**required, UNKNOWN: "1"}, None, f"accepted: {', '.join(names) or 'none'}")
        ]
        for parameter in query:
            name = parameter["name"]
            cases += [
                ({**required, name: value}, message, "") for value, message in refusals(parameter)
            ]
            if parameter["required"]:
                cases.append(({k: v for k, v in required.items() if k != name}, None, ""))
        for params, message, ending in cases:
            response = client.request(method, path, params=params, headers=headers)
            body = response.json() if response.status_code == 400 else {}
            if (
                response.status_code != 400
                or (message is not None and body.get("message") != message)
                or not body.get("message", "").endswith(ending)
            ):
                wrong.append(f"{method} {path} {params}: {response.status_code} {response.text}")
    return wrong


def test_each_management_operation_enforces_what_its_description_states(
    keyed_server: RunningServer, keys: dict[str, Any]
) -> None:
    management = {"Authorization": f"Bearer {keys['management']['key']}"}
    api = {"Authorization": f"Bearer {keys['API']['key']}"}
    with httpx.Client(base_url=keyed_server.management, timeout=60) as client:
        document = client.options("/", headers=management).json()
        assert bad_requests(client, document, {"/token": api, "*": management}) == []
        # Nothing was registered on the way.
        assert client.get("/models", headers=management).json()["models"] == []


def test_the_metrics_plane_describes_its_filter(keyed_server: RunningServer) -> None:
    with httpx.Client(base_url=keyed_server.metrics, timeout=60) as client:
        document = client.options("/").json()
        assert document == client.get("/api-description").json() == metrics_openapi()
        assert bad_requests(client, document, {"*": {}}) == []
        assert client.get("/metrics", params={"name[]": ["ts_inference_requests_total"]}).is_success


def test_parsed_values_have_the_defaults_and_leave_out_the_ignored() -> None:
    assert SCALE.parse({"timeout": "5", "number_gpu": "1"}) == {
        "min_worker": 1,
        "max_worker": None,
        "synchronous": False,
        "model_version": None,
    }
    assert REGISTER.parse({"url": "a.mar", "s3_sse_kms": "true"})["synchronous"] is True


def test_worker_counts_are_capped_where_the_engine_caps_them() -> None:
    """The cap depends on the machine's cores: the description must show this machine's."""
    document = management_openapi()
    capped = [
        (parameter["name"], parameter["schema"]["maximum"])
        for _, _, query in operations(document)
        for parameter in query
        if parameter["name"] in ("initial_workers", "min_worker", "max_worker")
    ]
    assert len(capped) == 5  # register, and scale with and without a version
    assert {maximum for _, maximum in capped} == {MAX_WORKERS_PER_VERSION}


def test_the_v2_datatypes_described_are_the_contracts() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    datatype = spec["shared"]["v2_input"]["content"]["application/json"]["schema"]["properties"][
        "inputs"
    ]["items"]["properties"]["datatype"]
    assert tuple(datatype["enum"]) == TENSOR_DATATYPES
