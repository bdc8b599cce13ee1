"""Dynamic batching through real worker processes."""

from __future__ import annotations

import asyncio

import httpx
from support import RunningServer


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
