"""A stream's bookkeeping in-process: credit goes back to the worker as the adapter takes
parts, the queue never holds more than the window, errors come after the parts before them,
and a non-streaming job gets its parts joined (the real-process behaviour is
tests/test_streaming_*.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from modelserve.engine.errors import ServingError
from modelserve.engine.jobs import InferenceJob
from modelserve.engine.streams import ResponseStream, StreamLimits, take_part
from modelserve.wire import WireRequest, WireResponse

LIMITS = StreamLimits(window=4, chunk_timeout_s=30, stream_timeout_s=60, max_response_size=100)


class Control:
    """What the stream told the worker."""

    def __init__(self) -> None:
        self.granted: list[int] = []
        self.cancelled = 0

    def grant(self, count: int) -> None:
        self.granted.append(count)

    def cancel(self) -> None:
        self.cancelled += 1


def part(text: str, status: int = 200) -> WireResponse:
    return WireResponse(status, "", "text/plain", {}, text.encode())


def job(streaming: bool) -> InferenceJob:
    future = asyncio.get_running_loop().create_future()
    return InferenceJob(WireRequest("r", {}, []), future, time.perf_counter(), streaming=streaming)


def test_credit_returns_as_parts_are_taken_and_the_queue_stays_within_the_window() -> None:
    async def scenario() -> None:
        control = Control()
        streaming = job(streaming=True)
        take_part(streaming, part("1"), control, LIMITS)
        stream = await streaming.future
        assert isinstance(stream, ResponseStream)
        for text in "234":
            take_part(streaming, part(text), control, LIMITS)
        assert [(await anext(stream)).body for _ in range(2)] == [b"1", b"2"]
        assert control.granted == [2]  # half a window at a time
        take_part(streaming, part("5"), control, LIMITS)
        take_part(streaming, part("6"), control, LIMITS)  # a full window waits: 3, 4, 5, 6
        assert [(await anext(stream)).body for _ in range(2)] == [b"3", b"4"]
        assert control.granted == [2, 2]
        streaming.resolve(part("last"))
        assert [each.body async for each in stream] == [b"5", b"6", b"last"]
        assert control.granted == [2, 2]  # none once the worker has ended
        assert control.cancelled == 0

    asyncio.run(scenario())


def test_a_worker_past_its_window_ends_the_stream_after_the_parts_it_may_send() -> None:
    async def scenario() -> None:
        control = Control()
        streaming = job(streaming=True)
        for text in "12345":
            take_part(streaming, part(text), control, LIMITS)
        stream = await streaming.future
        received = []
        with pytest.raises(ServingError, match="more than stream_window"):
            async for each in stream:
                received.append(each.body)
        assert received == [b"1", b"2", b"3", b"4"]
        assert control.cancelled == 1

    asyncio.run(scenario())


def test_an_error_part_after_the_first_ends_the_stream_with_it() -> None:
    async def scenario() -> None:
        control = Control()
        streaming = job(streaming=True)
        take_part(streaming, part("1"), control, LIMITS)
        take_part(streaming, part('{"message": "refused"}', 400), control, LIMITS)
        stream = await streaming.future
        assert (await anext(stream)).body == b"1"
        with pytest.raises(ServingError, match="refused") as failure:
            await anext(stream)
        assert failure.value.status == 400
        assert control.cancelled == 1

    asyncio.run(scenario())


def test_a_client_that_takes_whole_answers_gets_the_parts_joined() -> None:
    async def scenario() -> None:
        control = Control()
        gathering = job(streaming=False)
        for text in ("a", "b"):
            take_part(gathering, part(text), control, LIMITS)
        assert control.granted == [1, 1]  # nobody to wait for: the worker goes on at once
        gathering.resolve(None)  # the parts were the whole answer
        assert (await gathering.future).body == b"ab"
        too_large = job(streaming=False)
        take_part(too_large, part("x" * 60), control, LIMITS)
        take_part(too_large, part("y" * 60), control, LIMITS)
        with pytest.raises(ServingError, match="exceed max_response_size"):
            await too_large.future
        assert control.cancelled == 1

    asyncio.run(scenario())


def test_cancelling_tells_the_worker_once_and_ends_a_waiting_consumer() -> None:
    async def scenario() -> None:
        control = Control()
        streaming = job(streaming=True)
        take_part(streaming, part("1"), control, LIMITS)
        stream = await streaming.future
        assert (await anext(stream)).body == b"1"
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        stream.cancel()
        stream.cancel()
        with pytest.raises(StopAsyncIteration):
            await waiting
        assert control.cancelled == 1

    asyncio.run(scenario())
