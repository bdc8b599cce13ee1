"""TorchServe's gRPC services (inference 7070, management 7071) on the real server, called
through a client generated from our own .proto files (the committed *_pb2_grpc stubs)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import orjson
import psutil
import pytest
import trustme
from google.protobuf import empty_pb2
from support import RunningServer, free_ports, start_server, wait_until

from modelserve.config import Settings
from modelserve.grpc.proto import (
    inference_pb2,
    inference_pb2_grpc,
    management_pb2,
    management_pb2_grpc,
)
from modelserve.security.exposure import access_policy, token_auth_wanted

TOKEN = "a-long-enough-static-token-0123"
Inference = inference_pb2_grpc.InferenceAPIsServiceStub
Management = management_pb2_grpc.ManagementAPIsServiceStub
TIMEOUT = 60


class Clients:
    """Stubs on both ports of one server."""

    def __init__(self, server: RunningServer, credentials: grpc.ChannelCredentials | None = None):
        if credentials is None:
            self._channels = [grpc.insecure_channel(server.grpc_inference)]
            self._channels.append(grpc.insecure_channel(server.grpc_management))
        else:
            self._channels = [
                grpc.secure_channel(target, credentials)
                for target in (server.grpc_inference, server.grpc_management)
            ]
        self.inference = Inference(self._channels[0])
        self.management = Management(self._channels[1])

    def close(self) -> None:
        for channel in self._channels:
            channel.close()


@pytest.fixture(scope="module")
def clients(server: RunningServer) -> Iterator[Clients]:
    stubs = Clients(server)
    yield stubs
    stubs.close()


def predict(clients: Clients, model: str, version: str = "", **inputs: bytes) -> dict:
    request = inference_pb2.PredictionsRequest(
        model_name=model, model_version=version, input=inputs
    )
    return orjson.loads(clients.inference.Predictions(request, timeout=TIMEOUT).prediction)


def register(clients: Clients, **fields: object) -> str:
    request = management_pb2.RegisterModelRequest(**fields)
    return clients.management.RegisterModel(request, timeout=TIMEOUT).msg


def describe(clients: Clients, model: str, version: str = "") -> list[dict]:
    request = management_pb2.DescribeModelRequest(model_name=model, model_version=version)
    return orjson.loads(clients.management.DescribeModel(request, timeout=TIMEOUT).msg)


def status_of(call: object) -> tuple[grpc.StatusCode, str]:
    """The status code and details a failing call ended with."""
    with pytest.raises(grpc.RpcError) as failure:
        call()
    return failure.value.code(), failure.value.details()


# ----- the inference service


def test_ping_answers_the_rest_health_document(clients: Clients) -> None:
    reply = clients.inference.Ping(empty_pb2.Empty(), timeout=TIMEOUT)
    assert orjson.loads(reply.health) == {"status": "Healthy"}


def test_management_calls_drive_the_engine(clients: Clients, server: RunningServer) -> None:
    message = register(clients, url="probe.mar", initial_workers=1, synchronous=True)
    assert message == 'Model "probe" Version: 1.0 registered with 1 initial workers'
    message = register(clients, url="probe_v2.mar")  # proto3 default: not synchronous
    assert message == (
        'Model "probe" Version: 2.0 registered with 0 initial workers. '
        "Use scale workers API to add workers for the model."
    )
    # The same state the REST API shows.
    (entry,) = describe(clients, "probe")
    assert entry["modelVersion"] == "1.0" and len(entry["workers"]) == 1
    assert describe(clients, "probe") == httpx.get(server.management + "/models/probe").json()
    assert [item["modelVersion"] for item in describe(clients, "probe", "all")] == ["1.0", "2.0"]

    scale = management_pb2.ScaleWorkerRequest(
        model_name="probe", model_version="2.0", min_worker=1, synchronous=True
    )
    assert clients.management.ScaleWorker(scale, timeout=TIMEOUT).msg == (
        "Workers scaled to 1 for model: probe, version: 2.0"
    )
    assert len(describe(clients, "probe", "2.0")[0]["workers"]) == 1

    listing = clients.management.ListModels(management_pb2.ListModelsRequest(), timeout=TIMEOUT)
    assert orjson.loads(listing.msg)["models"] == [{"modelName": "probe", "modelUrl": "probe.mar"}]
    page = management_pb2.ListModelsRequest(limit=1)
    assert orjson.loads(clients.management.ListModels(page).msg)["nextPageToken"] == "1"

    assert predict(clients, "probe", json=b"{}")["version"] == "1.0"
    default = management_pb2.SetDefaultRequest(model_name="probe", model_version="2.0")
    assert clients.management.SetDefault(default, timeout=TIMEOUT).msg == (
        'Default version successfully updated for model "probe" to "2.0"'
    )
    assert predict(clients, "probe", json=b"{}")["version"] == "2.0"
    assert predict(clients, "probe", "1.0", json=b"{}")["version"] == "1.0"

    remove = management_pb2.UnregisterModelRequest(model_name="probe", model_version="1.0")
    assert clients.management.UnregisterModel(remove, timeout=TIMEOUT).msg == (
        'Model "probe" unregistered'
    )
    code, _ = status_of(lambda: describe(clients, "probe", "1.0"))
    assert code is grpc.StatusCode.NOT_FOUND
    assert [item["modelVersion"] for item in describe(clients, "probe", "all")] == ["2.0"]


def test_predictions_pass_each_input_as_a_request_parameter(clients: Clients) -> None:
    register(clients, url="other.mar", initial_workers=1, synchronous=True)
    answer = predict(clients, "other", json=b'{"echo": [1, 2]}', extra=b"\x00\xff")
    assert answer["params"] == ["extra", "json"]
    assert answer["echo"] == [1, 2]
    assert answer["batch"] == 1 and answer["request_id"]


def test_stream_predictions_answer_once(clients: Clients) -> None:
    register(clients, url="other.mar", model_name="streamed", initial_workers=1, synchronous=True)
    request = inference_pb2.PredictionsRequest(model_name="streamed", input={"json": b"{}"})
    replies = list(clients.inference.StreamPredictions(request, timeout=TIMEOUT))
    assert len(replies) == 1
    assert orjson.loads(replies[0].prediction)["params"] == ["json"]


def test_stream_predictions2_answer_in_order_with_failures_inline(clients: Clients) -> None:
    register(clients, url="other.mar", model_name="sequenced", initial_workers=1, synchronous=True)
    requests = [
        inference_pb2.PredictionsRequest(
            model_name="sequenced", input={"json": b'{"echo": 1}'}, sequence_id="s1"
        ),
        inference_pb2.PredictionsRequest(model_name="missing", input={"json": b"{}"}),
        inference_pb2.PredictionsRequest(model_name="sequenced", input={"json": b'{"echo": 3}'}),
    ]
    replies = list(clients.inference.StreamPredictions2(iter(requests), timeout=TIMEOUT))
    assert len(replies) == 3
    assert orjson.loads(replies[0].prediction)["echo"] == 1 and replies[0].sequence_id == "s1"
    assert replies[1].status.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "missing" in replies[1].status.message
    assert orjson.loads(replies[2].prediction)["echo"] == 3
    assert not replies[2].HasField("status")


# ----- errors: TorchServe's HTTP → gRPC status mapping


def test_unknown_models_are_not_found(clients: Clients) -> None:
    code, details = status_of(lambda: predict(clients, "nothing", json=b"{}"))
    assert code is grpc.StatusCode.NOT_FOUND and "nothing" in details
    code, _ = status_of(lambda: describe(clients, "nothing"))
    assert code is grpc.StatusCode.NOT_FOUND
    scale = management_pb2.ScaleWorkerRequest(model_name="nothing", min_worker=1)
    code, _ = status_of(lambda: clients.management.ScaleWorker(scale, timeout=TIMEOUT))
    assert code is grpc.StatusCode.NOT_FOUND
    code, _ = status_of(lambda: register(clients, url="no-such-archive.mar"))
    assert code is grpc.StatusCode.NOT_FOUND
    unregister = management_pb2.UnregisterModelRequest(model_name="nothing")
    code, _ = status_of(lambda: clients.management.UnregisterModel(unregister, timeout=TIMEOUT))
    assert code is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "Parameter url is required."),
        ({"url": "probe.mar", "initial_workers": -1}, "Invalid value for initial_workers: -1"),
        ({"url": "probe.mar", "batch_size": -2}, "Invalid value for batch_size: -2"),
        ({"url": "probe.mar", "runtime": "java"}, "Invalid RuntimeType value: java"),
    ],
)
def test_bad_register_parameters_are_invalid_arguments(
    clients: Clients, fields: dict, message: str
) -> None:
    code, details = status_of(lambda: register(clients, **fields))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(message)


def test_bad_scale_and_predict_requests_are_invalid_arguments(clients: Clients) -> None:
    register(clients, url="other.mar", model_name="scaled", initial_workers=0)
    scale = management_pb2.ScaleWorkerRequest(model_name="scaled", min_worker=2, max_worker=1)
    code, details = status_of(lambda: clients.management.ScaleWorker(scale, timeout=TIMEOUT))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert details == "max_worker cannot be less than min_worker."
    code, details = status_of(lambda: predict(clients, "", json=b"{}"))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert details == "Parameter model_name is required."


def test_conflicts_and_handler_failures_map_like_rest(
    clients: Clients, server: RunningServer
) -> None:
    register(clients, url="other.mar", model_name="twice", initial_workers=1, synchronous=True)
    code, details = status_of(lambda: register(clients, url="other.mar", model_name="twice"))
    assert code is grpc.StatusCode.ABORTED  # 409
    assert "twice" in details
    # A handler exception and a handler-set status: the REST status, mapped.
    rest = httpx.post(server.inference + "/predictions/twice", json={"fail": "tensor mismatch"})
    code, details = status_of(
        lambda: predict(clients, "twice", json=b'{"fail": "tensor mismatch"}')
    )
    assert (rest.status_code, code) == (500, grpc.StatusCode.INTERNAL)
    assert details == rest.json()["message"]
    code, details = status_of(lambda: predict(clients, "twice", json=b'{"status": 413}'))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert orjson.loads(details)["params"] == ["json"]
    code, _ = status_of(lambda: predict(clients, "twice", json=b'{"status": 418}'))
    assert code is grpc.StatusCode.FAILED_PRECONDITION


def test_register_of_a_model_that_fails_to_load(clients: Clients) -> None:
    code, details = status_of(
        lambda: register(clients, url="broken.mar", initial_workers=1, synchronous=True)
    )
    assert code is grpc.StatusCode.INTERNAL
    assert "weights.bin is missing" in details


# ----- binding, keys, TLS


def test_ports_default_to_loopback() -> None:
    settings = Settings()
    assert (settings.grpc_inference_port, settings.grpc_management_port) == (7070, 7071)
    for plane in ("inference", "management"):
        assert settings.grpc_address(plane).host == "127.0.0.1"
    assert not token_auth_wanted(settings)


def _other_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, if it has one."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


def test_server_listens_on_loopback_only(server: RunningServer) -> None:
    port = int(server.grpc_inference.rpartition(":")[2])
    assert f"gRPC inference API listening on grpc://127.0.0.1:{port}" in server.log()
    other = _other_address()
    if other is None:
        pytest.skip("no non-loopback IPv4 address to probe")
    with pytest.raises(OSError), socket.create_connection((other, port), timeout=2):
        pass


def test_public_grpc_address_turns_keys_on_and_model_control_off() -> None:
    public = Settings(grpc_management_address="0.0.0.0")
    assert token_auth_wanted(public)
    refusal = access_policy(
        Settings(grpc_management_address="0.0.0.0", disable_token_authorization=True)
    ).model_control_refusal
    assert refusal is not None and "grpc://0.0.0.0:7071" in refusal
    assert not token_auth_wanted(Settings(grpc_management_address="0.0.0.0", enable_grpc=False))


def test_token_authorization(tmp_path: Path, model_store: Path) -> None:
    running = start_server(tmp_path, model_store, config={"auth_token": TOKEN})
    stubs = Clients(running)
    try:
        good = [("authorization", f"Bearer {TOKEN}")]
        listing = management_pb2.ListModelsRequest()
        for metadata in (None, [("authorization", "Bearer wrong-token")], [("x", TOKEN)]):
            code, _ = status_of(
                lambda m=metadata: stubs.inference.Ping(empty_pb2.Empty(), metadata=m)
            )
            assert code is grpc.StatusCode.UNAUTHENTICATED
            code, _ = status_of(lambda m=metadata: stubs.management.ListModels(listing, metadata=m))
            assert code is grpc.StatusCode.UNAUTHENTICATED
        # Streaming calls are refused too, before any request is read.
        request = inference_pb2.PredictionsRequest(model_name="probe")
        code, _ = status_of(lambda: list(stubs.inference.StreamPredictions(request)))
        assert code is grpc.StatusCode.UNAUTHENTICATED
        assert stubs.inference.Ping(empty_pb2.Empty(), metadata=good).health
        registered = management_pb2.RegisterModelRequest(
            url="probe.mar", initial_workers=1, synchronous=True
        )
        assert stubs.management.RegisterModel(registered, metadata=good, timeout=TIMEOUT).msg
        answer = stubs.inference.Predictions(
            inference_pb2.PredictionsRequest(model_name="probe", input={"json": b"{}"}),
            metadata=[("authorization", f"bearer {TOKEN}")],  # the scheme is case-insensitive
            timeout=TIMEOUT,
        )
        assert orjson.loads(answer.prediction)["version"] == "1.0"
    finally:
        stubs.close()
        running.stop()


def test_refused_model_control_is_a_failed_precondition(tmp_path: Path, model_store: Path) -> None:
    (port,) = free_ports(1)
    config = {"grpc_management_address": "0.0.0.0", "grpc_management_port": str(port)}
    running = start_server(tmp_path, model_store, config=config, args=["--dt"])
    stubs = Clients(running)
    try:
        code, details = status_of(lambda: register(stubs, url="probe.mar"))
        assert code is grpc.StatusCode.FAILED_PRECONDITION
        assert "without token authorization" in details and "grpc://0.0.0.0" in details
        remove = management_pb2.UnregisterModelRequest(model_name="probe")
        code, _ = status_of(lambda: stubs.management.UnregisterModel(remove))
        assert code is grpc.StatusCode.FAILED_PRECONDITION
        # The REST management plane refuses the same way (405).
        assert httpx.post(running.management + "/models?url=probe.mar").status_code == 405
        assert orjson.loads(stubs.management.ListModels(management_pb2.ListModelsRequest()).msg)
    finally:
        stubs.close()
        running.stop()


def test_busy_port_is_a_startup_error(
    tmp_path: Path, model_store: Path, server: RunningServer
) -> None:
    # The port of another modelserve: gRPC would share it (SO_REUSEPORT) unless told not to.
    port = server.grpc_inference.rpartition(":")[2]
    with pytest.raises(AssertionError, match="cannot listen on grpc_inference_port"):
        start_server(tmp_path, model_store, config={"grpc_inference_port": port})


def test_grpc_disabled(tmp_path: Path, model_store: Path) -> None:
    running = start_server(tmp_path, model_store, config={"enable_grpc": "false"})
    try:
        assert "grpc://" not in running.log()
        assert "  gRPC        off" in running.log()  # the start summary says so
        with grpc.insecure_channel(running.grpc_inference) as channel:
            code, _ = status_of(lambda: Inference(channel).Ping(empty_pb2.Empty(), timeout=5))
            assert code is grpc.StatusCode.UNAVAILABLE
    finally:
        running.stop()


def test_tls(tmp_path: Path, model_store: Path) -> None:
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    chain, key = tmp_path / "server.pem", tmp_path / "server.key"
    issued.private_key_pem.write_to_path(str(key))
    chain.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    config = {
        "enable_grpc_ssl": "true",
        "certificate_file": str(chain),
        "private_key_file": str(key),
    }
    running = start_server(tmp_path / "server", model_store, config=config)
    trusted = Clients(running, grpc.ssl_channel_credentials(authority.cert_pem.bytes()))
    try:
        wait_until(lambda: trusted.inference.Ping(empty_pb2.Empty(), timeout=10).health)
        listing = trusted.management.ListModels(management_pb2.ListModelsRequest(), timeout=10)
        assert orjson.loads(listing.msg) == {"models": []}
        assert f"gRPC inference API listening on grpcs://{running.grpc_inference}" in running.log()
        with grpc.insecure_channel(running.grpc_inference) as plain:
            code, _ = status_of(lambda: Inference(plain).Ping(empty_pb2.Empty(), timeout=5))
            assert code is grpc.StatusCode.UNAVAILABLE
    finally:
        trusted.close()
        running.stop()


def test_tls_without_certificate_is_a_startup_error(tmp_path: Path, model_store: Path) -> None:
    with pytest.raises(AssertionError, match="enable_grpc_ssl is true: set certificate_file"):
        start_server(tmp_path, model_store, config={"enable_grpc_ssl": "true"})
