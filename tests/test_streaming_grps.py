"""grps's streaming (``?streaming=true`` over HTTP, gRPC ``PredictStreaming``) with the token
generator (examples/streaming/tokens.py): each part of the answer is one HTTP chunk (a
GrpsMessage as a line of JSON) or one gRPC message, sent as the handler makes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import orjson
import pytest
from streaming_fixtures import TIMEOUT, Gate, served
from support import RunningServer

from modelserve.grps.proto import grps_pb2 as pb
from modelserve.grps.proto import grps_pb2_grpc as pb_grpc


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from served(tmp_path_factory, "grps_streaming")


def _predict_url(server: RunningServer) -> str:
    return f"{server.inference}/grps/v1/infer/predict"


def test_http_streaming_sends_each_piece_as_a_chunk_as_it_is_made(
    server: RunningServer, tmp_path: Path
) -> None:
    gate = Gate(tmp_path / "gate")
    body = {"str_data": json.dumps({"pieces": 3, "delay": 0, **gate.steer(hold_at=2)})}
    params = {"model": "tokens", "streaming": "true"}
    with httpx.stream(
        "POST", _predict_url(server), json=body, params=params, timeout=TIMEOUT
    ) as response:
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.headers["content-type"] == "application/octet-stream"
        chunks = response.iter_raw()
        # Piece 2 waits for the gate: piece 1 came while the handler was still at work.
        first = orjson.loads(next(chunks))
        gate.open()
        rest = [orjson.loads(chunk) for chunk in chunks]
    messages = [first, *rest]
    ok = {"code": 200, "msg": "OK", "status": "SUCCESS"}
    assert messages == [{"status": ok, "str_data": f"token {index} of 3\n"} for index in (1, 2, 3)]


def test_without_streaming_the_pieces_come_joined(server: RunningServer) -> None:
    body = {"str_data": json.dumps({"pieces": 2, "delay": 0})}
    answer = httpx.post(_predict_url(server), json=body, params={"model": "tokens"})
    assert answer.json()["str_data"] == "token 1 of 2\ntoken 2 of 2\n"


def test_http_streaming_refusal_is_a_grps_error(server: RunningServer) -> None:
    body = {"str_data": json.dumps({"pieces": 0})}
    params = {"model": "tokens", "streaming": "true"}
    answer = httpx.post(_predict_url(server), json=body, params=params, timeout=TIMEOUT)
    assert answer.status_code == 400
    assert answer.json()["status"]["status"] == "FAILURE"
    assert '"pieces" must be an integer' in answer.json()["status"]["msg"]


def test_grpc_predict_streaming_sends_one_message_per_piece(server: RunningServer) -> None:
    with grpc.insecure_channel(server.grpc_inference) as channel:
        stub = pb_grpc.GrpsServiceStub(channel)
        request = pb.GrpsMessage(model="tokens", str_data=json.dumps({"pieces": 4, "delay": 0}))
        replies = list(stub.PredictStreaming(request, timeout=TIMEOUT))
        assert [reply.str_data for reply in replies] == [f"token {i} of 4\n" for i in range(1, 5)]
        assert all(reply.status.status == pb.Status.SUCCESS for reply in replies)
        refused = pb.GrpsMessage(model="tokens", str_data=json.dumps({"pieces": 0}))
        (failure,) = stub.PredictStreaming(refused, timeout=TIMEOUT)
        assert (failure.status.code, failure.status.status) == (400, pb.Status.FAILURE)
        unknown = pb.GrpsMessage(model="nope", str_data="{}")
        (failure,) = stub.PredictStreaming(unknown, timeout=TIMEOUT)
        assert failure.status.code == 404
