"""Many streams at once through ``/predictions``: every piece of every stream arrives, once
and in order; clients that leave half way are cancelled in the worker (the handler sees it
before it makes another piece), their workers go on serving, and the log stays clean."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from streaming_fixtures import TIMEOUT, Gate, numbers, register_tokens, served, tracebacks
from support import RunningServer, wait_until

STREAMS = 100
PIECES = 50
HALF = PIECES // 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    for running in served(tmp_path_factory, "streaming_load"):
        # Batches of up to 25 streams on two workers: half the streams are under way at once.
        register_tokens(running, "many", batch_size=25, max_batch_delay=100, initial_workers=2)
        yield running


async def stream(client: httpx.AsyncClient, url: str, body: dict, leave_after: int = 0) -> bytes:
    """What one client receives; with ``leave_after``, it disconnects once it has that many
    pieces."""
    received = b""
    async with client.stream("POST", url, json=body) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            received += chunk
            if leave_after and received.count(b"\n") >= leave_after:
                break
    return received


async def streams(server: RunningServer, bodies: list[dict], leave_after: list[int]) -> list[bytes]:
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(limits=limits, timeout=TIMEOUT) as client:
        url = f"{server.inference}/predictions/many"
        return await asyncio.gather(
            *(
                stream(client, url, body, leave)
                for body, leave in zip(bodies, leave_after, strict=True)
            )
        )


def test_a_hundred_concurrent_streams_each_get_every_piece_once_in_order(
    server: RunningServer,
) -> None:
    logged = len(server.log())
    bodies = [{"pieces": PIECES, "delay": 0.002}] * STREAMS
    received = asyncio.run(streams(server, bodies, [0] * STREAMS))
    for text in received:
        assert numbers(text) == list(range(1, PIECES + 1))
    assert not tracebacks(server, since=logged)


def test_fifty_clients_that_leave_half_way_are_cancelled_and_free_their_workers(
    server: RunningServer, tmp_path: Path
) -> None:
    logged = len(server.log())
    never = Gate(tmp_path / "never")
    markers = tmp_path / "cancelled"
    markers.mkdir()
    bodies, leave_after = [], []
    for index in range(STREAMS):
        body: dict = {"pieces": PIECES, "delay": 0.002}
        if index % 2:  # leaves after half its pieces; the handler waits for it at the next
            body |= {"tag": f"stream-{index}", "cancel_dir": str(markers), **never.steer(HALF + 1)}
        bodies.append(body)
        leave_after.append(HALF if index % 2 else 0)
    received = asyncio.run(streams(server, bodies, leave_after))
    for index, text in enumerate(received):
        expected = HALF if index % 2 else PIECES
        assert numbers(text)[:expected] == list(range(1, expected + 1))
    # Each leaver's handler saw the cancellation while it waited, before making another piece.
    wait_until(lambda: len(list(markers.iterdir())) == STREAMS // 2, timeout=TIMEOUT)
    assert {marker.read_text() for marker in markers.iterdir()} == {str(HALF)}
    # The workers are free: new streams are served.
    again = asyncio.run(streams(server, [{"pieces": 3, "delay": 0}] * 10, [0] * 10))
    assert all(numbers(text) == [1, 2, 3] for text in again)
    assert not tracebacks(server, since=logged)
