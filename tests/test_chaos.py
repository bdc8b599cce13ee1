"""Chaos: workers killed at random under load; every request still ends, and quickly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
from support import (
    RunningServer,
    process_alive,
    ready_workers,
    start_server,
    wait_until,
    worker_processes,
)

REQUESTS = 2000
CONCURRENCY = 32
KILL_EVERY_S = 0.2
RESPONSE_TIMEOUT_S = 5
# A request may wait response_timeout in the queue (then 503); the rest is slack for a loaded box.
LONGEST_ANSWER_S = RESPONSE_TIMEOUT_S + 2
# The whole load phase; far more than it needs, so only a hang reaches it.
LOAD_DEADLINE_S = 50


class Outcome:
    """What one request got back, and how long it took."""

    __slots__ = ("body", "elapsed_s", "error", "status")

    def __init__(
        self, status: int, body: bytes, elapsed_s: float, error: str | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.elapsed_s = elapsed_s
        self.error = error


async def _send_all(url: str) -> list[Outcome]:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=LOAD_DEADLINE_S) as client:

        async def one(index: int) -> Outcome:
            async with gate:
                started = time.monotonic()
                try:
                    response = await client.post(url, json={"echo": index})
                except httpx.HTTPError as exc:
                    return Outcome(0, b"", time.monotonic() - started, repr(exc))
                return Outcome(response.status_code, response.content, time.monotonic() - started)

        return await asyncio.gather(*(one(index) for index in range(REQUESTS)))


async def _kill_workers(server: RunningServer, model: str, stop: asyncio.Event) -> int:
    """SIGKILL a random READY worker of ``model`` every KILL_EVERY_S; returns how many died."""
    kills = 0
    chooser = random.Random(20260131)
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), KILL_EVERY_S)
            if stop.is_set():
                break
            response = await client.get(f"{server.management}/models/{model}")
            ready = [w["pid"] for w in response.json()[0]["workers"] if w["status"] == "READY"]
            if not ready:
                continue
            # A worker without a pid (-1) must never be "killed": kill(-1) is every process.
            assert all(pid > 0 for pid in ready), f"READY workers without a pid: {ready}"
            try:
                os.kill(chooser.choice(ready), signal.SIGKILL)
                kills += 1
            except ProcessLookupError:  # died already (killed a moment ago, not yet reaped)
                pass
    return kills


async def _load_with_chaos(server: RunningServer, model: str) -> tuple[list[Outcome], int]:
    stop = asyncio.Event()
    killer = asyncio.create_task(_kill_workers(server, model, stop))
    try:
        outcomes = await asyncio.wait_for(
            _send_all(f"{server.inference}/predictions/{model}"), LOAD_DEADLINE_S
        )
    finally:
        stop.set()
        kills = await killer
    return outcomes, kills


def _is_error_body(outcome: Outcome) -> bool:
    try:
        body = orjson.loads(outcome.body)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(body, dict)
        and body.get("code") == outcome.status
        and isinstance(body.get("type"), str)
        and isinstance(body.get("message"), str)
    )


def test_random_worker_kills_under_load(tmp_path: Path, model_store: Path) -> None:
    server = start_server(tmp_path, model_store)
    model = "probe"
    try:
        registered = httpx.post(
            server.management + "/models",
            params={
                "url": "probe.mar",
                "initial_workers": 2,
                "batch_size": 4,
                "response_timeout": RESPONSE_TIMEOUT_S,
            },
            timeout=60,
        )
        assert registered.status_code == 200, registered.text

        outcomes, kills = asyncio.run(_load_with_chaos(server, model))

        statuses = Counter(outcome.status for outcome in outcomes)
        errors = Counter(
            orjson.loads(outcome.body).get("type") for outcome in outcomes if outcome.status >= 500
        )
        slowest = max(outcome.elapsed_s for outcome in outcomes)
        ok = sum(count for status, count in statuses.items() if 200 <= status < 300)
        failed = sum(count for status, count in statuses.items() if status >= 500)
        print(
            f"\nchaos: {REQUESTS} requests, concurrency {CONCURRENCY}, {kills} workers killed: "
            f"{ok} 2xx, {failed} 5xx {dict(errors)}; slowest {slowest:.2f} s"
        )
        assert len(outcomes) == REQUESTS
        no_answer = [outcome.error for outcome in outcomes if outcome.error is not None]
        assert not no_answer, f"{len(no_answer)} requests got no response, e.g. {no_answer[0]}"
        unexpected = {status for status in statuses if not (200 <= status < 300 or status >= 500)}
        assert not unexpected, statuses
        bad_bodies = [o.body[:200] for o in outcomes if o.status >= 500 and not _is_error_body(o)]
        assert not bad_bodies, bad_bodies[:3]
        assert slowest <= LONGEST_ANSWER_S, f"a request took {slowest:.2f} s"
        assert kills >= 5, f"only {kills} workers were killed: the test proved little"
        assert ok > 0

        def healthy() -> bool:
            ping = httpx.get(server.inference + "/ping", timeout=10)
            return ping.status_code == 200 and ping.json() == {"status": "Healthy"}

        wait_until(healthy, timeout=30)
        wait_until(lambda: ready_workers(server, model) == 2, timeout=30)
        after = httpx.post(f"{server.inference}/predictions/{model}", json={}, timeout=10)
        assert after.status_code == 200, after.text
    finally:
        workers = [process.pid for process in worker_processes(server)]
        code = server.stop()
    assert code == 0
    assert len(workers) == 2, workers
    wait_until(lambda: not any(process_alive(pid) for pid in workers), timeout=10)
    assert not (tmp_path / "runtime" / str(server.process.pid)).exists()
