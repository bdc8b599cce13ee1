"""What a server in a container relies on, on a real server: health checks a probe can call
without a key (open_health_checks) while everything else stays keyed, a config file whose
``model_snapshot`` names the models (KServe's TorchServe layout), and a snapshot directory that
cannot be written, told once. The image itself is tested in tests/test_container_image.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf.empty_pb2 import Empty
from support import RunningServer, start_server, wait_until

from modelserve.grpc.proto import inference_pb2_grpc as ts_grpc
from modelserve.grpc.proto import open_inference_pb2 as v2
from modelserve.grpc.proto import open_inference_pb2_grpc as v2_grpc

TOKEN = "a-long-enough-static-token-0123"
HEALTH_PATHS = ("/ping", "/v2/health/live", "/v2/health/ready")


@pytest.fixture(scope="module")
def open_health(
    tmp_path_factory: pytest.TempPathFactory, model_store: Path
) -> Iterator[RunningServer]:
    """A keyed server (static token) whose health checks are open, serving probe."""
    running = start_server(
        tmp_path_factory.mktemp("open_health"),
        model_store,
        models=["probe=probe.mar"],
        config={"auth_token": TOKEN, "open_health_checks": "true"},
    )
    wait_until(lambda: "Ready: probe" in running.log(), timeout=60)
    yield running
    running.stop()


def test_health_checks_answer_without_a_key_and_nothing_else_does(
    open_health: RunningServer,
) -> None:
    for path in HEALTH_PATHS:
        response = httpx.get(open_health.inference + path)
        assert response.status_code == 200, (path, response.text)
    assert httpx.get(open_health.inference + "/ping").json() == {"status": "Healthy"}
    # A trailing slash is the same route, and as open.
    assert httpx.get(open_health.inference + "/ping/").status_code == 200
    keyed = [
        httpx.post(open_health.inference + "/predictions/probe", json={}),
        httpx.get(open_health.inference + "/v2/models/probe/ready"),
        httpx.get(open_health.inference + "/v2"),
        httpx.get(open_health.management + "/models"),
    ]
    assert [response.status_code for response in keyed] == [401] * len(keyed)
    authorized = {"Authorization": f"Bearer {TOKEN}"}
    predicted = httpx.post(
        open_health.inference + "/predictions/probe", json={"echo": 1}, headers=authorized
    )
    assert predicted.status_code == 200 and predicted.json()["echo"] == 1
    assert "health checks answer without a key" in open_health.log()


def test_grpc_health_checks_answer_without_a_key(open_health: RunningServer) -> None:
    with grpc.insecure_channel(open_health.grpc_inference) as channel:
        stub = v2_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(v2.ServerLiveRequest()).live is True
        assert stub.ServerReady(v2.ServerReadyRequest()).ready is True
        assert "Healthy" in ts_grpc.InferenceAPIsServiceStub(channel).Ping(Empty()).health
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelReady(v2.ModelReadyRequest(name="probe"))
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_health_checks_need_the_key_by_default(tmp_path: Path, model_store: Path) -> None:
    server = start_server(tmp_path / "keyed", model_store, config={"auth_token": TOKEN})
    try:
        for path in HEALTH_PATHS:
            assert httpx.get(server.inference + path).status_code == 401, path
        with (
            grpc.insecure_channel(server.grpc_inference) as channel,
            pytest.raises(grpc.RpcError) as refused,
        ):
            v2_grpc.GRPCInferenceServiceStub(channel).ServerLive(v2.ServerLiveRequest())
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.stop()


def _kserve_config(store: Path, model_store: Path) -> dict[str, str]:
    """KServe's TorchServe config.properties (the keys as KServe's examples write them), naming
    the models in ``model_snapshot``, with the archives copied into its model-store/."""
    store.mkdir(parents=True)
    for archive in ("probe.mar", "probe_v2.mar", "other.mar"):
        (store / archive).write_bytes((model_store / archive).read_bytes())
    snapshot = {
        "name": "startup.cfg",
        "modelCount": 2,
        "models": {
            "probe": {
                "1.0": {"defaultVersion": False, "marName": "probe.mar", "minWorkers": 1,
                        "maxWorkers": 1, "batchSize": 1, "maxBatchDelay": 10,
                        "responseTimeout": 120},
                "2.0": {"defaultVersion": True, "marName": "probe_v2.mar", "minWorkers": 1,
                        "maxWorkers": 1, "batchSize": 2, "maxBatchDelay": 10,
                        "responseTimeout": 60},
            },
        },
    }  # fmt: skip
    return {
        "enable_metrics_api": "true",
        "metrics_format": "prometheus",
        "number_of_netty_threads": "4",
        "job_queue_size": "10",
        "enable_envvars_config": "true",
        "model_snapshot": json.dumps(snapshot),
    }


def test_a_config_model_snapshot_names_the_models_served(tmp_path: Path, model_store: Path) -> None:
    store = tmp_path / "mnt" / "models" / "model-store"
    config = _kserve_config(store, model_store)
    # The config's model_snapshot is restored with --ncs too (which only turns this server's
    # own snapshots off); the command line's models are served beside it.
    server = start_server(
        tmp_path / "server", store, models=["other=other.mar"], config=config, args=["--ncs"]
    )
    try:
        wait_until(lambda: "Ready:" in server.log() or "Not serving" in server.log(), timeout=60)
        described = httpx.get(server.management + "/models/probe/all").json()
        by_version = {entry["modelVersion"]: entry for entry in described}
        assert set(by_version) == {"1.0", "2.0"}
        assert by_version["2.0"]["batchSize"] == 2 and by_version["2.0"]["responseTimeout"] == 60
        default = httpx.get(server.management + "/models/probe").json()[0]
        assert default["modelVersion"] == "2.0"
        answer = httpx.post(server.inference + "/predictions/probe", json={}, timeout=60)
        assert answer.status_code == 200 and answer.json()["version"] == "2.0"
        assert httpx.get(server.management + "/models/other").status_code == 200
        assert f"from {tmp_path / 'server' / 'config.properties'}" in server.log()
    finally:
        server.stop()


def test_a_broken_model_snapshot_stops_the_start_naming_it(
    tmp_path: Path, model_store: Path
) -> None:
    config = {"model_snapshot": '{"models": ['}
    with pytest.raises(AssertionError, match=r"model_snapshot of .*config\.properties"):
        start_server(tmp_path / "server", model_store, config=config)


def test_an_unwritable_snapshot_dir_is_one_error_line(tmp_path: Path, model_store: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the snapshot directory should be")
    server = start_server(
        tmp_path / "server", model_store, config={"snapshot_dir": str(blocker / "snapshots")}
    )
    try:
        for url in ("probe.mar", "other.mar", "files.mar"):
            registered = httpx.post(server.management + "/models", params={"url": url})
            assert registered.status_code == 200, registered.text
        served = httpx.post(
            server.management + "/models", params={"url": "probe_v2.mar", "model_name": "v2"}
        )
        assert served.status_code == 200
        errors = [line for line in server.log().splitlines() if "cannot write a snapshot" in line]
        assert len(errors) == 1, errors
        assert "enable_snapshots=false" in errors[0]
    finally:
        server.stop()
