"""A worker pool's bookkeeping, in the test's process with real worker processes: which workers
it counts as ready, which batch each worker holds, who is retired on a scale-down, and what
becomes of a batch whose worker dies (the HTTP-level behaviour is tests/test_reliability.py)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from in_process import run_engine

from modelserve.engine.dataplane import DataPlane
from modelserve.engine.engine import Engine
from modelserve.engine.errors import WorkerDiedException
from modelserve.engine.registration import RegisterOptions
from modelserve.engine.worker_process import READY
from modelserve.wire import RequestParameter, WireRequest

# Generous bounds for what must happen soon: a worker loads the probe handler in ~1 s.
SOON_S = 60.0


def _request(request_id: str, body: dict[str, object]) -> WireRequest:
    return WireRequest(
        request_id, {}, [RequestParameter("body", "application/json", orjson.dumps(body))]
    )


async def _until(condition: Callable[[], object], what: str) -> None:
    """Let the loop run until ``condition()`` holds (it changes on worker messages)."""
    try:
        async with asyncio.timeout(SOON_S):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {SOON_S:g} s: {what}") from None


def test_scaling_counts_ready_workers_and_retires_the_newest(
    model_store: Path, tmp_path: Path
) -> None:
    async def scenario(engine: Engine) -> dict[str, object]:
        plane = DataPlane(engine)
        await plane.register(RegisterOptions(url="probe.mar", initial_workers=2, synchronous=True))
        pool = engine.registry.get("probe").pool
        seen: dict[str, object] = {"target": pool.target, "ready": pool.ready_count()}
        oldest, newest = sorted(pool.workers.values(), key=lambda worker: worker.started_at)
        await plane.scale("probe", None, 1, None, synchronous=True)
        seen["retiring"] = [worker.id for worker in pool.workers.values() if worker.retiring]
        seen["after scale-down"] = (pool.target, pool.ready_count())
        await _until(lambda: newest.id not in pool.workers, "the retired worker exits")
        seen["left"] = [worker.id for worker in pool.live_workers()]
        return {**seen, "oldest": oldest.id, "newest": newest.id}

    seen = run_engine(model_store, tmp_path / "run", scenario)
    assert (seen["target"], seen["ready"]) == (2, 2)
    assert seen["retiring"] == [seen["newest"]]
    assert seen["after scale-down"] == (1, 1)  # a retiring worker is not counted
    assert seen["left"] == [seen["oldest"]]


def test_a_dead_workers_batch_fails_at_once_and_a_new_worker_takes_its_place(
    model_store: Path, tmp_path: Path
) -> None:
    started = tmp_path / "batch-started"

    async def scenario(engine: Engine) -> dict[str, object]:
        plane = DataPlane(engine)
        await plane.register(RegisterOptions(url="probe.mar", initial_workers=1, synchronous=True))
        pool = engine.registry.get("probe").pool
        (worker,) = pool.workers.values()
        slow = _request("slow", {"touch": str(started), "sleep": 120})
        answer = asyncio.create_task(plane.infer("probe", None, slow))
        await _until(started.exists, "the batch is in the handler")
        seen: dict[str, object] = {
            "in flight": [[job.request.request_id for job in b.jobs] for b in worker.batches]
        }
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises(WorkerDiedException, match="Worker died"):
            async with asyncio.timeout(SOON_S):
                await answer
        seen["gone"] = worker.id not in pool.workers and not worker.batches
        await _until(lambda: pool.ready_count() == 1, "a new worker loads")
        (replacement,) = pool.workers.values()
        seen["replacement"] = (replacement.id != worker.id, replacement.state)
        quick = await plane.infer("probe", None, _request("quick", {"echo": "again"}))
        seen["served after"] = orjson.loads(quick.body)["echo"]
        return seen

    seen = run_engine(model_store, tmp_path / "run", scenario)
    assert seen["in flight"] == [["slow"]]
    assert seen["gone"] is True
    assert seen["replacement"] == (True, READY)
    assert seen["served after"] == "again"
