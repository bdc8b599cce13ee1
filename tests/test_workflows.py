"""TorchServe workflows end to end: .war archives built by our ``workflow-archiver`` and by the
real ``torch-workflow-archiver`` 0.2.15 (same MANIFEST apart from the date), registered on a
real server, answering ``/wfpredict`` through a pre-processing function, two node models in
parallel and an aggregating function (TorchServe's dog-breed example shape); listing,
describing (TorchServe's fields, then the nodes, edges and state) and unregistering; request,
failure and per-node latency metrics; bad archives and specs (a cycle, an unknown node, a node
nothing feeds, a node defined twice) and failing nodes as clear errors; a client that goes away
cancels the node it waits on, and the nodes after it never run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import (
    RunningServer,
    build_test_archive,
    pipeline_samples,
    request_counts,
    send_and_leave,
    start_server,
    wait_until,
)

from modelserve.engine import snapshot

FIXTURES = Path(__file__).parent / "fixtures" / "workflow"
# The dog-breed workflow itself is the documented example's.
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "workflows"
REAL = Path(sys.executable).parent / "torch-workflow-archiver"
OURS = [sys.executable, "-m", "modelserve_archiver.workflow_cli"]
MANIFEST = "WAR-INF/MANIFEST.json"
NODES = ("pre_processing", "cat_dog", "breed", "aggregate")
BAD_SPECS = ("cycle", "unknown_node", "missing_mar", "two_starts", "twice")


def _archive(
    command: list[str],
    store: Path,
    name: str,
    spec: Path,
    handler: Path = EXAMPLE / "workflow_handler.py",
) -> Path:
    """Build ``<name>.war`` from ``spec`` and ``handler`` (the example's handler file)."""
    subprocess.run(
        [
            *command,
            "--workflow-name",
            name,
            "--spec-file",
            str(spec),
            "--handler",
            str(handler),
            "--export-path",
            str(store),
            "-f",
        ],
        check=True,
        capture_output=True,
    )
    return store / f"{name}.war"


def _manifest_text(war: Path) -> str:
    with zipfile.ZipFile(war) as archive:
        return archive.read(MANIFEST).decode()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Node model archives and workflow archives of every fixture spec."""
    store = tmp_path_factory.mktemp("workflow_store")
    for model in ("cat_dog", "breed"):
        build_test_archive(store, model, str(EXAMPLE / f"{model}.py"))
    spec = EXAMPLE / "dog_breed.yaml"
    _archive(OURS, store, "dogs", spec)
    for bad in BAD_SPECS:
        _archive(OURS, store, bad, FIXTURES / f"{bad}.yaml")
    _archive(OURS, store, "naps", FIXTURES / "naps.yaml", FIXTURES / "nap_handler.py")
    if REAL.exists():  # named as ours, so that the manifests compare whole
        real = _archive([str(REAL)], tmp_path_factory.mktemp("real"), "dogs", spec)
        shutil.move(real, store / "dogs_real.war")
    return store


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, store: Path) -> Iterator[RunningServer]:
    """A server of ``store``; nap_handler's nap marks and ends its naps with NAP_MARKER and
    NAP_RELEASE."""
    workdir = tmp_path_factory.mktemp("server")
    naps = {name: str(workdir / name.lower()) for name in ("NAP_MARKER", "NAP_RELEASE")}
    server = start_server(workdir, store, env=naps)
    yield server
    server.stop()


@pytest.fixture
def api(served: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.management, timeout=120) as client:
        yield client


@pytest.fixture
def infer(served: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.inference, timeout=120) as client:
        yield client


def test_our_manifest_equals_the_real_archivers_apart_from_the_date(store: Path) -> None:
    if not REAL.exists():
        pytest.skip("torch-workflow-archiver (a dev dependency) is not installed")
    ours, real = (_manifest_text(store / name) for name in ("dogs.war", "dogs_real.war"))
    dates = (json.loads(ours)["createdOn"], json.loads(real)["createdOn"])
    assert ours.replace(*dates) == real
    with zipfile.ZipFile(store / "dogs.war") as a, zipfile.ZipFile(store / "dogs_real.war") as b:
        assert sorted(a.namelist()) == sorted(b.namelist())


def test_an_existing_war_is_kept_without_force(store: Path) -> None:
    command = [*OURS, "--workflow-name", "dogs", "--spec-file", str(EXAMPLE / "dog_breed.yaml")]
    command += ["--handler", str(EXAMPLE / "workflow_handler.py"), "--export-path", str(store)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1
    assert "already exists" in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("war", ["dogs", "dogs_real"])
def test_a_workflow_registers_answers_and_unregisters(
    war: str, store: Path, served: RunningServer, api: httpx.Client, infer: httpx.Client
) -> None:
    if not (store / f"{war}.war").exists():
        pytest.skip("torch-workflow-archiver (a dev dependency) is not installed")
    reply = api.post("/workflows", params={"url": f"{war}.war", "workflow_name": war})
    assert reply.status_code == 200, reply.text
    registered = f"Workflow {war} has been registered and scaled successfully."
    assert reply.json() == {"status": registered}
    models = {m["modelName"] for m in api.get("/models").json()["models"]}
    assert {f"{war}__{node}" for node in NODES} <= models
    batch = api.get(f"/models/{war}__breed").json()[0]
    assert (batch["batchSize"], batch["maxBatchDelay"]) == (4, 20)

    answer = infer.post(f"/wfpredict/{war}", content=b"my dog")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"animal": "dog", "breed": "breed of MY DOG"}
    samples = pipeline_samples(served, war, "workflow")
    assert samples[("modelserve_pipeline_requests_total", ())] == 1
    assert samples[("modelserve_pipeline_latency_seconds_count", ())] == 1
    for node in NODES:
        key = (("model", f"{war}__{node}"), ("step", node))
        assert samples[("modelserve_pipeline_step_latency_seconds_count", key)] == 1
    # Snapshots leave the node models out, as TorchServe's do: restored without their
    # workflow they would serve alone.
    port = served.inference.rsplit(":", 1)[1]
    written = sorted((served.log_path.parent / "logs" / "config" / port).glob("*-snapshot.cfg"))
    assert written, "registering the node models wrote no snapshot"
    for path in written:
        names = {entry.name for entry in snapshot.read_snapshot(path)}
        assert not any(name.startswith(f"{war}__") for name in names), (path, names)

    (described,) = api.get(f"/workflows/{war}").json()
    torchserve = {key: described.pop(key) for key in list(described)[:7]}
    assert torchserve == {
        "workflowName": war,
        "workflowUrl": f"{war}.war",
        "minWorkers": 1,
        "maxWorkers": 1,
        "batchSize": 4,
        "maxBatchDelay": 20,
        "workflowDag": "{pre_processing=[cat_dog, breed], cat_dog=[aggregate], "
        "breed=[aggregate], aggregate=[]}",
    }
    assert sorted(described) == ["edges", "nodes", "ready"] and described["ready"] is True
    assert [(node["name"], node["modelName"]) for node in described["nodes"]] == [
        (node, f"{war}__{node}") for node in NODES
    ]
    for node in described["nodes"]:
        assert node["state"] == "AVAILABLE" and len(node["workers"]) == 1
    assert [(edge["from"], edge["to"]) for edge in described["edges"]] == [
        ("pre_processing", "cat_dog"),
        ("pre_processing", "breed"),
        ("cat_dog", "aggregate"),
        ("breed", "aggregate"),
    ]
    assert api.delete(f"/workflows/{war}").json() == {"status": f'Workflow "{war}" unregistered'}
    assert api.get(f"/workflows/{war}").status_code == 404
    assert infer.post(f"/wfpredict/{war}", content=b"x").status_code == 404
    models = {m["modelName"] for m in api.get("/models").json()["models"]}
    assert not any(name.startswith(f"{war}__") for name in models)


def test_workflows_are_listed_in_pages(api: httpx.Client) -> None:
    for name in ("a_dogs", "b_dogs"):
        assert api.post("/workflows", params={"url": "dogs.war", "workflow_name": name}).is_success
    try:
        first = api.get("/workflows", params={"limit": 1}).json()
        assert first == {
            "nextPageToken": "1",
            "workflows": [{"workflowName": "a_dogs", "workflowUrl": "dogs.war"}],
        }
        rest = api.get("/workflows", params={"limit": 5, "next_page_token": 1}).json()
        assert rest == {"workflows": [{"workflowName": "b_dogs", "workflowUrl": "dogs.war"}]}
        again = api.post("/workflows", params={"url": "dogs.war", "workflow_name": "a_dogs"})
        assert again.status_code == 409
    finally:
        for name in ("a_dogs", "b_dogs"):
            api.delete(f"/workflows/{name}")


def test_a_failing_node_model_names_the_node(
    served: RunningServer, api: httpx.Client, infer: httpx.Client
) -> None:
    assert api.post("/workflows", params={"url": "dogs.war", "workflow_name": "fails"}).is_success
    try:
        reply = infer.post("/wfpredict/fails", content=b"FAIL")
        assert reply.status_code >= 500
        message = reply.json()["message"]
        assert "node cat_dog" in message and "fails__cat_dog" in message
        assert "after 1 attempt" in message  # the spec's retry-attempts: 0 for this node
        failed_in_cat_dog = (("reason", "step"), ("step", "cat_dog"))
        failures = ("modelserve_pipeline_failures_total", failed_in_cat_dog)
        assert pipeline_samples(served, "fails", "workflow")[failures] == 1
        ok = infer.post("/wfpredict/fails", content=b"a cat")
        assert ok.json() == {"animal": "cat", "breed": "breed of A CAT"}
    finally:
        api.delete("/workflows/fails")


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("no_such.war", 404, ["no_such.war"]),
        ("cycle.war", 400, ["cycle"]),
        ("unknown_node.war", 400, ["no_such_function", "workflow_handler.py"]),
        ("missing_mar.war", 404, ["node breed", "no_such_model.mar"]),
        ("two_starts.war", 400, ["exactly one start node", "pre_processing, breed"]),
        ("twice.war", 400, ["'breed' is given twice"]),
    ],
)
def test_bad_workflows_are_refused_naming_why(
    url: str, status: int, words: list[str], api: httpx.Client
) -> None:
    reply = api.post("/workflows", params={"url": url})
    assert reply.status_code == status, reply.text
    for word in words:
        assert word in reply.json()["message"]
    assert api.get("/workflows").json() == {"workflows": []}
    models = {m["modelName"] for m in api.get("/models").json()["models"]}
    assert not any("__" in name for name in models)  # a refused workflow keeps no node model


def test_a_client_that_goes_away_cancels_the_nodes_not_yet_answered(
    served: RunningServer, api: httpx.Client, infer: httpx.Client
) -> None:
    marker = served.log_path.parent / "nap_marker"
    release = served.log_path.parent / "nap_release"
    assert api.post("/workflows", params={"url": "naps.war"}).is_success
    try:
        connection = send_and_leave(served.inference, "/wfpredict/naps", b"hello", "text/plain")
        try:
            wait_until(marker.exists, 60)  # the second node, nap, holds the request
        finally:
            connection.close()
        # nap's request is cancelled at once, while nap's worker still waits on it ...
        wait_until(lambda: request_counts(served, "naps__nap")["fail"] == 1, 60)
        release.touch()
        # ... and once nap has finished, last, the third node, never hears of it: a request
        # of its own, queued after anything the workflow sent, is all it gets.
        wait_until(lambda: request_counts(served, "naps__nap")["executions"] == 1, 60)
        assert infer.post("/predictions/naps__last", content=b"mine").text == "mine"
        assert request_counts(served, "naps__last") == {"success": 1, "fail": 0, "executions": 1}
        cancelled = (("reason", "cancelled"), ("step", ""))
        failures = ("modelserve_pipeline_failures_total", cancelled)
        assert pipeline_samples(served, "naps", "workflow")[failures] == 1
    finally:
        api.delete("/workflows/naps")
        release.unlink(missing_ok=True)
