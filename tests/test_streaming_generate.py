"""KServe's generate extension: ``generate_stream`` sends each part as a server-sent event as
the handler makes it, ``generate`` answers one JSON object; errors are the v2 ``{"error"}``
before the first part and an error event after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from streaming_fixtures import TIMEOUT, Gate, numbers, served
from support import RunningServer

EVENT_STREAM = "text/event-stream; charset=utf-8"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from served(tmp_path_factory, "streaming_generate")


def events(lines: Iterator[str]) -> Iterator[dict]:
    """Each server-sent event's JSON data, as it arrives."""
    for line in lines:
        if line.startswith("data: "):
            yield orjson.loads(line.removeprefix("data: "))
        else:
            assert line == "", line


def test_generate_stream_sends_each_piece_as_an_event_as_it_is_made(
    server: RunningServer, tmp_path: Path
) -> None:
    gate = Gate(tmp_path / "gate")
    body = {"id": "42", "text_input": "count", "pieces": 4, "delay": 0, **gate.steer(hold_at=2)}
    url = f"{server.inference}/v2/models/tokens/generate_stream"
    with httpx.stream("POST", url, json=body, timeout=TIMEOUT) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == EVENT_STREAM
        received = events(response.iter_lines())
        first = next(received)  # while the handler waits for the gate
        assert first == {
            "id": "42",
            "model_name": "tokens",
            "model_version": "1.0",
            "text_output": "token 1 of 4\n",
        }
        gate.open()
        rest = list(received)
    text = "".join(event["text_output"] for event in [first, *rest])
    assert numbers(text.encode()) == [1, 2, 3, 4]


def test_generate_answers_the_parts_joined_in_one_object(server: RunningServer) -> None:
    url = f"{server.inference}/v2/models/tokens/versions/1.0/generate"
    answer = httpx.post(url, json={"pieces": 3, "delay": 0})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "model_name": "tokens",
        "model_version": "1.0",
        "text_output": "token 1 of 3\ntoken 2 of 3\ntoken 3 of 3\n",
    }


def test_json_parts_give_their_fields(server: RunningServer) -> None:
    url = f"{server.inference}/v2/models/modes/generate_stream"
    with httpx.stream("POST", url, json={"mode": "json", "pieces": 2}) as response:
        received = list(events(response.iter_lines()))
    assert [(event["text_output"], event["index"]) for event in received] == [
        ("piece 1", 1),
        ("piece 2", 2),
    ]
    assert all(event["model_name"] == "modes" for event in received)


def test_an_error_after_the_first_part_is_the_last_event(server: RunningServer) -> None:
    url = f"{server.inference}/v2/models/modes/generate_stream"
    with httpx.stream("POST", url, json={"pieces": 4, "fail_after": 1}) as response:
        assert response.status_code == 200  # sent with the first part
        received = list(events(response.iter_lines()))
    assert received[0]["text_output"] == "piece 1\n"
    assert received[1:] == [{"error": "failed after 1 pieces"}]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"not json", 400, "the request body is not JSON"),
        (b"[1]", 400, "the request body must be a JSON object"),
        (b'{"id": 7}', 400, '"id" must be a string'),
        (b'{"pieces": 0}', 400, '"pieces" must be an integer from 1 to 100000'),
        (b'{"pieces": 2, "fail_after": 0}', 500, "failed after 0 pieces"),
    ],
)
@pytest.mark.parametrize("route", ["generate", "generate_stream"])
def test_errors_before_any_part_are_v2_json_errors(
    server: RunningServer, route: str, body: bytes, status: int, message: str
) -> None:
    model = "modes" if b"fail_after" in body else "tokens"
    answer = httpx.post(f"{server.inference}/v2/models/{model}/{route}", content=body)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"].startswith(message)


def test_an_unknown_model_is_a_404(server: RunningServer) -> None:
    answer = httpx.post(f"{server.inference}/v2/models/nope/generate_stream", json={})
    assert answer.status_code == 404
    assert answer.json() == {"error": "Model not found: nope"}
