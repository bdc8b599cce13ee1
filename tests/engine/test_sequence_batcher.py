"""The sequence batcher in-process: each sequence on one worker, one request at a time, in
order; one request per sequence per batch; new sequences spread over the free workers; idle
expiry, sequence ends, lost workers and the bounds, each with its error. Workers are plain
names and requests are answered by resolving their futures (the real processes, protocols and
clients are tests/test_sequences.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from batches import SOON_S, Sent, run

from modelserve.engine.errors import (
    BadRequestException,
    ServiceUnavailableException,
    ServingError,
    WorkerDiedException,
)
from modelserve.engine.jobs import InferenceJob
from modelserve.engine.sequence_batcher import SequenceBatcher
from modelserve.engine.sequences import SequencePolicy
from modelserve.protocol_contract import TensorInferRequest
from modelserve.wire import WireRequest


def _policy(**changes: Any) -> SequencePolicy:
    idle_ms = changes.get("idle_ms", 60_000)
    values: dict[str, Any] = {
        "idle_ms": idle_ms,
        "max_sequences": 10,
        "queue_per_sequence": 10,
        "lifetime_ms": 0,
        "requires_id": False,
        "idle_setting": f"sequenceMaxIdleMSec {idle_ms}",
        **changes,
    }
    return SequencePolicy(**values)


def _batcher(
    sent: Sent, lost: str = "its worker died", batch_size: int = 4, **policy: Any
) -> SequenceBatcher[str]:
    return SequenceBatcher(
        "counter:1.0",
        _policy(**policy),
        batch_size=batch_size,
        capacity=20,
        send_batch=sent,
        full_message="queue full",
        max_wait_s=60.0,
        waited_too_long=lambda: ServiceUnavailableException("waited too long"),
        worker_loss=lambda worker: lost,
    )


def _torchserve(request_id: str, sequence: str | None, **headers: str) -> InferenceJob:
    named = {"ts_request_sequence_id": sequence} if sequence else {}
    request = WireRequest(request_id, {**named, **headers}, [])
    return InferenceJob(request, asyncio.get_running_loop().create_future(), time.perf_counter())


def _triton(request_id: str, **parameters: Any) -> InferenceJob:
    request = WireRequest(request_id, {}, [], TensorInferRequest([], parameters=parameters))
    return InferenceJob(request, asyncio.get_running_loop().create_future(), time.perf_counter())


async def _failure(job: InferenceJob) -> ServingError:
    with pytest.raises(ServingError) as raised:
        await asyncio.wait_for(job.future, SOON_S)
    return raised.value


# ----- placement and order


def test_a_sequence_stays_on_its_worker_one_request_at_a_time_in_order() -> None:
    async def scenario() -> list:
        sent = Sent()
        batcher = _batcher(sent)
        for worker in ("w1", "w2"):
            batcher.worker_idle(worker)
        for step in range(3):
            batcher.submit(_torchserve(f"a{step}", "a"))
        await sent.wait_for(1)
        # a1 waits for a0's answer though w2 is free; then goes where a0 went.
        await asyncio.sleep(0)
        assert len(sent.batches) == 1
        assert batcher.queued() == 2
        for index in range(2):
            sent.answer(index)
            batcher.worker_idle(sent.batches[index][0])
            await sent.wait_for(index + 2)
        return await sent.wait_for(3)

    assert run(scenario) == [("w1", ["a0"]), ("w1", ["a1"]), ("w1", ["a2"])]


def test_a_batch_holds_one_request_of_each_sequence_on_the_worker() -> None:
    async def scenario() -> list:
        sent = Sent()
        batcher = _batcher(sent)
        batcher.worker_idle("w1")
        for name in ("a", "b"):
            batcher.submit(_torchserve(f"{name}0", name))
        await sent.wait_for(1)
        sent.answer(0)
        # Both sequences send two more while the worker is busy elsewhere.
        for name in ("a", "b"):
            for step in (1, 2):
                batcher.submit(_torchserve(f"{name}{step}", name))
        await asyncio.sleep(0)
        batcher.worker_idle("w1")
        await sent.wait_for(2)
        sent.answer(1)
        await asyncio.sleep(0)
        batcher.worker_idle("w1")
        return await sent.wait_for(3)

    assert run(scenario) == [("w1", ["a0", "b0"]), ("w1", ["a1", "b1"]), ("w1", ["a2", "b2"])]


def test_new_sequences_go_to_the_free_worker_holding_fewest() -> None:
    async def scenario() -> list:
        sent = Sent()
        batcher = _batcher(sent)
        for worker in ("w1", "w2"):
            batcher.worker_idle(worker)
        batcher.submit(_torchserve("a0", "a"))
        await sent.wait_for(1)
        sent.answer(0)
        await asyncio.sleep(0)
        batcher.worker_idle("w1")
        batcher.submit(_torchserve("b0", "b"))  # w1 holds a: b goes to w2
        await sent.wait_for(2)
        batcher.submit(_torchserve("a1", "a"))
        return await sent.wait_for(3)

    assert run(scenario) == [("w1", ["a0"]), ("w2", ["b0"]), ("w1", ["a1"])]


def test_new_sequences_spread_over_the_free_workers_and_wait_for_room() -> None:
    async def scenario() -> list:
        sent = Sent()
        batcher = _batcher(sent, batch_size=2)
        for worker in ("w1", "w2"):
            batcher.worker_idle(worker)
        for name in "abcd":
            batcher.submit(_torchserve(f"{name}0", name))
        await sent.wait_for(2)
        # Only w1 is free now: it takes two new sequences (its batch), the fifth waits...
        for name in "efg":
            batcher.submit(_torchserve(f"{name}0", name))
        batcher.worker_idle("w1")
        await sent.wait_for(3)
        await asyncio.sleep(0)
        assert len(batcher.sequences) == 7 and batcher.queued() == 1
        # ... for the next free worker, which holds fewer sequences.
        batcher.worker_idle("w2")
        return await sent.wait_for(4)

    assert run(scenario) == [
        ("w1", ["a0", "c0"]),
        ("w2", ["b0", "d0"]),
        ("w1", ["e0", "f0"]),
        ("w2", ["g0"]),
    ]


def test_a_request_without_an_id_starts_a_torchserve_sequence_with_one() -> None:
    async def scenario() -> dict:
        sent = Sent()
        batcher = _batcher(sent)
        batcher.worker_idle("w1")
        job = _torchserve("r", None)
        batcher.submit(job)
        await sent.wait_for(1)
        return job.request.headers

    headers = run(scenario)
    assert headers["ts_request_sequence_id"].startswith("ts-seq-")
    assert headers["ts_request_sequence_start"] == "true"


def test_a_client_gone_while_queued_is_skipped() -> None:
    async def scenario() -> list:
        sent = Sent()
        batcher = _batcher(sent)
        batcher.worker_idle("w1")
        batcher.submit(_torchserve("a0", "a"))
        await sent.wait_for(1)
        gone = _torchserve("a1", "a")
        batcher.submit(gone)
        batcher.submit(_torchserve("a2", "a"))
        gone.future.cancel()
        sent.answer(0)
        await asyncio.sleep(0)
        batcher.worker_idle("w1")
        return await sent.wait_for(2)

    assert run(scenario)[1] == ("w1", ["a2"])


# ----- Triton's rules


def test_triton_requests_must_name_and_start_their_sequence() -> None:
    async def scenario() -> list[str]:
        batcher = _batcher(Sent(), requires_id=True)
        messages = []
        for job in (
            _torchserve("r", None),
            _triton("r", sequence_id=7),
            _triton("r", sequence_start=True),
        ):
            with pytest.raises(BadRequestException) as refused:
                batcher.submit(job)
            messages.append(refused.value.message)
        return messages

    no_id, not_started, start_without_id = run(scenario)
    assert "must specify a non-zero or non-empty correlation ID" in no_id
    assert "must specify the START flag on the first request of the sequence" in not_started
    assert "correlation ID" in start_without_id


def test_a_malformed_sequence_parameter_is_a_400() -> None:
    async def scenario() -> list[str]:
        batcher = _batcher(Sent())
        messages = []
        for parameters in (
            {"sequence_id": 1.5},
            {"sequence_id": -1},
            {"sequence_id": 3, "sequence_start": "yes"},
        ):
            with pytest.raises(BadRequestException) as refused:
                batcher.submit(_triton("r", **parameters))
            messages.append(refused.value.message)
        return messages

    assert run(scenario) == [
        "Unable to parse 'sequence_id': expected an unsigned integer or a string, got 1.5",
        "Unable to parse 'sequence_id': expected an unsigned integer or a string, got -1",
        "Unable to parse 'sequence_start': expected a boolean, got 'yes'",
    ]


def test_an_ended_sequence_is_forgotten_once_answered() -> None:
    async def scenario() -> tuple[str, str, int]:
        sent = Sent()
        batcher = _batcher(sent)
        batcher.worker_idle("w1")
        batcher.submit(_triton("a0", sequence_id=5, sequence_start=True, sequence_end=True))
        await sent.wait_for(1)
        with pytest.raises(BadRequestException) as while_ending:
            batcher.submit(_triton("a1", sequence_id=5))
        sent.answer(0)
        await asyncio.sleep(0)
        with pytest.raises(BadRequestException) as after:
            batcher.submit(_triton("a2", sequence_id=5))
        return while_ending.value.message, after.value.message, len(batcher.sequences)

    while_ending, after, live = run(scenario)
    assert "(the sequence ended with sequence_end)" in while_ending
    assert "must specify the START flag" in after
    assert live == 0


def test_start_on_a_live_sequence_follows_its_requests_on_its_worker() -> None:
    async def scenario() -> list:
        sent = Sent()
        batcher = _batcher(sent)
        for worker in ("w1", "w2"):
            batcher.worker_idle(worker)
        batcher.submit(_triton("a0", sequence_id="s", sequence_start=True))
        await sent.wait_for(1)
        restarted = _triton("b0", sequence_id="s", sequence_start=True)
        batcher.submit(restarted)
        await asyncio.sleep(0)  # w2 is free, but the sequence lives on w1
        sent.answer(0)
        batcher.worker_idle("w1")
        await sent.wait_for(2)
        assert restarted.request.headers["ts_request_sequence_start"] == "true"
        return await sent.wait_for(2)

    assert run(scenario) == [("w1", ["a0"]), ("w1", ["b0"])]


# ----- endings


def test_an_idle_sequence_expires_and_its_next_request_is_told() -> None:
    async def scenario() -> tuple[str, int, list]:
        sent = Sent()
        batcher = _batcher(sent, idle_ms=20)
        batcher.worker_idle("w1")
        batcher.submit(_torchserve("a0", "a"))
        await sent.wait_for(1)
        sent.answer(0)
        batcher.worker_idle("w1")
        async with asyncio.timeout(SOON_S):
            while batcher.sequences:
                await asyncio.sleep(0.01)
        with pytest.raises(BadRequestException) as refused:
            batcher.submit(_torchserve("a1", "a"))
        batcher.submit(_torchserve("a2", "a"))  # the next one starts it again
        return refused.value.message, batcher.expired, await sent.wait_for(2)

    message, expired, batches = run(scenario)
    assert message == (
        "Sequence a of model counter expired after 20 ms without a request "
        "(sequenceMaxIdleMSec 20); its state is gone: the next request with this id "
        "starts it again"
    )
    assert expired == 1
    assert batches[1] == ("w1", ["a2"])


def test_a_sequence_past_its_lifetime_ends() -> None:
    async def scenario() -> str:
        sent = Sent()
        batcher = _batcher(sent, lifetime_ms=10)
        batcher.worker_idle("w1")
        batcher.submit(_torchserve("a0", "a"))
        await sent.wait_for(1)
        await asyncio.sleep(0.02)
        with pytest.raises(BadRequestException) as refused:
            batcher.submit(_torchserve("a1", "a"))
        return refused.value.message

    assert "ended after its sequenceTimeoutMSec (10 ms)" in run(scenario)


def test_a_lost_worker_ends_its_sequences_and_fails_what_they_queued() -> None:
    async def scenario() -> tuple[ServingError, str, list]:
        sent = Sent()
        batcher = _batcher(sent, lost="its worker 9001 died")
        for worker in ("w1", "w2"):
            batcher.worker_idle(worker)
        batcher.submit(_torchserve("a0", "a"))
        await sent.wait_for(1)
        queued = _torchserve("a1", "a")
        batcher.submit(queued)
        batcher.worker_unavailable("w1")
        failure = await _failure(queued)
        with pytest.raises(BadRequestException) as refused:
            batcher.submit(_torchserve("a2", "a"))
        batcher.submit(_torchserve("b0", "b"))
        return failure, refused.value.message, await sent.wait_for(2)

    failure, message, batches = run(scenario)
    assert isinstance(failure, WorkerDiedException)
    assert failure.message == "Sequence a of model counter ended: its worker 9001 died"
    assert message.startswith("Sequence a of model counter ended: its worker 9001 died; its state")
    assert batches[1] == ("w2", ["b0"])


# ----- bounds


def test_the_bounds_are_503s() -> None:
    async def scenario() -> list[str]:
        sent = Sent()
        batcher = _batcher(sent, max_sequences=2, queue_per_sequence=1)
        batcher.worker_idle("w1")
        batcher.submit(_torchserve("a0", "a"))
        batcher.submit(_torchserve("b0", "b"))
        await sent.wait_for(1)
        batcher.submit(_torchserve("a1", "a"))
        messages = []
        for job in (_torchserve("c0", "c"), _torchserve("a2", "a")):
            with pytest.raises(ServiceUnavailableException) as refused:
                batcher.submit(job)
            messages.append(refused.value.message)
        return messages

    too_many, too_deep = run(scenario)
    assert too_many == (
        'Model "counter" cannot start sequence c: it has 2 live sequences, the most it keeps '
        "(maxNumSequence); retry once one ends or expires"
    )
    assert too_deep == (
        'Model "counter": sequence a already has 1 requests waiting, the most it may '
        "(maxSequenceJobQueueSize 1); retry once one is answered"
    )


def test_closing_fails_what_waits_and_drains() -> None:
    async def scenario() -> ServingError:
        sent = Sent()
        batcher = _batcher(sent)
        waiting = _torchserve("a0", "a")
        batcher.submit(waiting)  # no worker yet
        drained = asyncio.ensure_future(batcher.drained())
        batcher.fail_pending(ServiceUnavailableException("unloaded"))
        await asyncio.wait_for(drained, SOON_S)
        assert not batcher.sequences
        return await _failure(waiting)

    assert run(scenario).message == "unloaded"
