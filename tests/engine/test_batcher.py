"""The batcher in-process: which jobs leave together, to which worker, and when; the queue
bound, requeueing, abandoned jobs, the wait limit, draining and max_batch_delay holds. Workers
are plain names here: the batcher only hands them batches (the real-process behaviour is
tests/test_batching.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
from batches import SOON_S, Sent, run

from modelserve.engine.batcher import Batcher
from modelserve.engine.errors import ServiceUnavailableException
from modelserve.engine.jobs import InferenceJob
from modelserve.wire import WireRequest


def _job(request_id: str) -> InferenceJob:
    future = asyncio.get_running_loop().create_future()
    return InferenceJob(WireRequest(request_id, {}, []), future, time.perf_counter())


def _batcher(sent: Sent, **options: object) -> Batcher[str]:
    values: dict = {
        "batch_size": 4,
        "capacity": 8,
        "full_message": "queue full",
        "max_wait_s": 60.0,
        "waited_too_long": lambda: ServiceUnavailableException("waited too long"),
        **options,
    }
    return Batcher(send_batch=sent, **values)


def test_a_lone_job_goes_to_an_idle_worker_at_once() -> None:
    async def scenario() -> list:
        sent = Sent()
        batcher = _batcher(sent, max_batch_delay_s=1.0)
        batcher.worker_idle("w1")
        batcher.submit(_job("a"))
        return await sent.wait_for(1)

    assert run(scenario) == [("w1", ["a"])]


def test_jobs_queued_while_workers_are_busy_leave_together_up_to_batch_size() -> None:
    async def scenario() -> tuple[list, int]:
        sent = Sent()
        batcher = _batcher(sent, batch_size=3)
        for name in "abcde":
            batcher.submit(_job(name))
        batcher.worker_idle("w1")
        return await sent.wait_for(1), len(batcher.pending)

    batches, left = run(scenario)
    assert batches == [("w1", ["a", "b", "c"])]
    assert left == 2


def test_a_full_queue_refuses_with_503() -> None:
    async def scenario() -> None:
        batcher = _batcher(Sent(), capacity=2)
        batcher.submit(_job("a"))
        batcher.submit(_job("b"))
        with pytest.raises(ServiceUnavailableException, match="queue full"):
            batcher.submit(_job("c"))

    run(scenario)


def test_requeued_jobs_go_back_to_the_head_in_order_and_abandoned_ones_are_skipped() -> None:
    async def scenario() -> list:
        sent = Sent()
        batcher = _batcher(sent)
        later = _job("later")
        batcher.submit(later)
        first, gone, second = _job("first"), _job("gone"), _job("second")
        gone.future.cancel()  # its client went away while it was out
        batcher.requeue([first, gone, second])
        batcher.worker_idle("w1")
        return await sent.wait_for(1)

    assert run(scenario) == [("w1", ["first", "second", "later"])]


def test_a_job_no_worker_takes_in_time_ends_with_503() -> None:
    async def scenario() -> BaseException | None:
        batcher = _batcher(Sent(), max_wait_s=0.2)
        job = _job("a")
        batcher.submit(job)
        async with asyncio.timeout(SOON_S):
            with pytest.raises(ServiceUnavailableException, match="waited too long"):
                await job.future
        return None

    run(scenario)


def test_drained_returns_once_the_workers_have_taken_every_queued_job() -> None:
    async def scenario() -> tuple[bool, list]:
        sent = Sent()
        batcher = _batcher(sent, batch_size=2)
        await batcher.drained()  # nothing queued: at once
        for name in "abc":
            batcher.submit(_job(name))
        waiting = asyncio.create_task(batcher.drained())
        batcher.worker_idle("w1")
        await sent.wait_for(1)
        still_waiting = not waiting.done()  # "c" is still queued
        batcher.worker_idle("w1")
        async with asyncio.timeout(SOON_S):
            await waiting
        return still_waiting, sent.batches

    still_waiting, batches = run(scenario)
    assert still_waiting
    assert batches == [("w1", ["a", "b"]), ("w1", ["c"])]


def test_a_worker_with_nothing_in_flight_is_preferred_to_a_busy_one_with_a_free_slot() -> None:
    async def scenario() -> list:
        sent = Sent()
        busy = {"busy"}
        batcher = _batcher(sent, batch_size=1, in_flight=lambda worker: int(worker in busy))
        batcher.worker_idle("idle")
        batcher.worker_idle("busy")  # its second slot: most recently idle, but busy
        batcher.submit(_job("a"))
        return await sent.wait_for(1)

    assert run(scenario) == [("idle", ["a"])]


def test_a_partial_batch_waits_for_mates_while_another_batch_is_in_flight() -> None:
    async def scenario() -> list:
        sent = Sent()
        batcher = _batcher(sent, max_batch_delay_s=SOON_S)
        batcher.worker_idle("w1")
        batcher.submit(_job("a"))
        await sent.wait_for(1)  # "a" is in flight on w1
        batcher.worker_idle("w2")
        batcher.submit(_job("b"))
        for _ in range(10):  # many loop turns: "b" is held while "a" is in flight
            await asyncio.sleep(0)
        assert len(sent.batches) == 1
        batcher.submit(_job("c"))
        batcher.submit(_job("d"))
        batcher.submit(_job("e"))  # the batch is full: it leaves at once
        return await sent.wait_for(2)

    assert run(scenario) == [("w1", ["a"]), ("w2", ["b", "c", "d", "e"])]


def test_a_hold_ends_after_max_batch_delay_even_when_no_mate_comes() -> None:
    async def scenario() -> tuple[list, float]:
        sent = Sent()
        batcher = _batcher(sent, max_batch_delay_s=0.1)
        batcher.worker_idle("w1")
        batcher.submit(_job("a"))
        await sent.wait_for(1)
        batcher.worker_idle("w2")
        held_at = time.perf_counter()
        batcher.submit(_job("b"))
        batches = await sent.wait_for(2)
        return batches, time.perf_counter() - held_at

    batches, held_s = run(scenario)
    assert batches == [("w1", ["a"]), ("w2", ["b"])]
    assert held_s >= 0.09  # it was held (timer granularity aside) ...
    assert held_s < SOON_S  # ... and released by the delay, not by anything else


def test_batch_size_one_never_holds() -> None:
    async def scenario() -> list:
        sent = Sent()
        batcher = _batcher(sent, batch_size=1, max_batch_delay_s=SOON_S)
        batcher.worker_idle("w1")
        batcher.submit(_job("a"))
        await sent.wait_for(1)
        batcher.worker_idle("w2")
        batcher.submit(_job("b"))
        return await sent.wait_for(2)

    assert run(scenario) == [("w1", ["a"]), ("w2", ["b"])]
