"""Dynamic batching through real worker processes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import RunningServer, wait_until


def test_concurrent_requests_share_a_batch_and_each_gets_its_own_answer(
    server: RunningServer,
) -> None:
    register = httpx.post(
        server.management + "/models",
        params={
            "url": "probe.mar",
            "model_name": "batched",
            "batch_size": 8,
            "max_batch_delay": 50,
            "initial_workers": 1,
        },
        timeout=60,
    )
    assert register.status_code == 200, register.text

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.inference, timeout=60) as client:
            # Each batch takes 0.3 s of "model work", so requests queue behind the first.
            return await asyncio.gather(
                *(
                    client.post("/predictions/batched", json={"echo": index, "sleep": 0.3})
                    for index in range(8)
                )
            )

    try:
        responses = asyncio.run(send_all())
        assert [response.status_code for response in responses] == [200] * 8
        answers = [response.json() for response in responses]
        assert [answer["echo"] for answer in answers] == list(range(8))
        assert len({answer["request_id"] for answer in answers}) == 8
        sizes = [answer["batch"] for answer in answers]
        assert max(sizes) > 1, sizes
        assert all(size <= 8 for size in sizes)
    finally:
        httpx.delete(server.management + "/models/batched", timeout=60)


def test_lone_request_is_not_held_for_the_batch_delay(server: RunningServer) -> None:
    # With a 10 s max_batch_delay a single request must still be answered at once: the
    # delay is a ceiling, not a sleep. The client timeout (5 s) is the assertion.
    httpx.post(
        server.management + "/models",
        params={
            "url": "probe.mar",
            "model_name": "patient",
            "batch_size": 8,
            "max_batch_delay": 10_000,
            "initial_workers": 1,
        },
        timeout=60,
    )
    try:
        response = httpx.post(server.inference + "/predictions/patient", json={}, timeout=5)
        assert response.status_code == 200
        assert response.json()["batch"] == 1
    finally:
        httpx.delete(server.management + "/models/patient", timeout=60)


# ----- max_batch_delay: an idle worker holds a partial batch back while batch-mates are coming


@contextmanager
def registered(server: RunningServer, name: str, **params: int) -> Iterator[str]:
    """The probe model registered as ``name`` with ``params``; its predictions URL."""
    response = httpx.post(
        server.management + "/models",
        params={"url": "probe.mar", "model_name": name, "synchronous": "true", **params},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    try:
        yield f"{server.inference}/predictions/{name}"
    finally:
        httpx.delete(f"{server.management}/models/{name}", timeout=60)


def pending_requests(server: RunningServer, name: str) -> int:
    """Requests queued in the frontend for ``name``, per the describe API."""
    description = httpx.get(f"{server.management}/models/{name}", timeout=10).json()
    return description[0]["jobQueueStatus"]["pendingRequests"]


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """One prediction; its JSON answer (the probe reports the size of its batch)."""
    response = httpx.post(url, json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def send_while_held(
    server: RunningServer, name: str, url: str, pool: ThreadPoolExecutor
) -> tuple[Future, Future]:
    """Send one request, wait until it sits in the queue (or was answered), send a second."""
    first = pool.submit(post, url, {"echo": "first"})
    wait_until(lambda: first.done() or pending_requests(server, name) == 1)
    return first, pool.submit(post, url, {"echo": "second"})


def test_idle_worker_holds_a_request_for_the_clients_on_their_way(
    server: RunningServer, tmp_path: Path
) -> None:
    # Two clients, each sending again once answered. B's request queues behind A's; when A's
    # answer leaves, the idle worker holds B's request (up to max_batch_delay) for A, on its
    # way back, instead of computing a batch of one; A's next request and B's leave together.
    started = tmp_path / "started"
    with (
        registered(
            server, "patient_one", batch_size=4, max_batch_delay=2000, initial_workers=1
        ) as url,
        ThreadPoolExecutor(2) as pool,
    ):

        def client_a() -> dict[str, Any]:
            post(url, {"touch": str(started), "sleep": 1})
            return post(url, {"echo": "a"})

        a = pool.submit(client_a)
        wait_until(started.exists)
        b = pool.submit(post, url, {"echo": "b"})
        assert [a.result()["batch"], b.result()["batch"]] == [2, 2]


def test_idle_worker_holds_a_request_while_another_batch_is_in_flight(
    server: RunningServer, tmp_path: Path
) -> None:
    # One worker is busy; the other is idle. A request that arrives now waits for a batch-mate
    # (a device the workers share is busy anyway) and the two leave together.
    started = tmp_path / "started"
    with (
        registered(
            server, "patient_two", batch_size=2, max_batch_delay=3000, initial_workers=2
        ) as url,
        ThreadPoolExecutor(3) as pool,
    ):
        busy = pool.submit(post, url, {"touch": str(started), "sleep": 3})
        wait_until(started.exists)
        first, second = send_while_held(server, "patient_two", url, pool)
        assert [first.result()["batch"], second.result()["batch"]] == [2, 2]
        assert busy.result()["batch"] == 1


@pytest.mark.parametrize("delay_ms", [0, 300])
def test_a_held_request_leaves_alone_once_max_batch_delay_has_passed(
    server: RunningServer, tmp_path: Path, delay_ms: int
) -> None:
    # The busy worker's batch takes far longer than the delay, and no batch-mate comes: the
    # request is answered alone while that batch still runs, so it waited at most the delay.
    started = tmp_path / "started"
    with (
        registered(
            server, f"bounded{delay_ms}", batch_size=4, max_batch_delay=delay_ms, initial_workers=2
        ) as url,
        ThreadPoolExecutor(2) as pool,
    ):
        busy = pool.submit(post, url, {"touch": str(started), "sleep": 5})
        wait_until(started.exists)
        assert post(url, {"echo": "alone"})["batch"] == 1
        assert not busy.done()
        busy.result()
