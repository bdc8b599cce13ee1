"""Answers in parts: what the frontend does with the parts a worker sends before a request's
final answer (docs/streaming.md).

A job whose client takes parts as they come (``InferenceJob.streaming``: chunked HTTP, SSE,
gRPC streams) gets a ``ResponseStream`` at its first part: its future resolves with it, and
the adapter iterates it. Any other job gathers its parts (``GatheredParts``) and its future
resolves with them joined: a client that cannot take parts gets the whole answer at once, as
a TorchServe client that reads a chunked body to its end does.

Bounds, so that a slow or vanished client never makes anyone buffer without limit:

* a worker sends at most ``window`` parts of a request ahead of its client; the stream grants
  more as the adapter takes them (``StreamControl.grant``), so its queue never holds more;
* ``chunk_timeout_s``: the most a stream waits for its next part, and the most a full queue
  waits for the client to take one; ``stream_timeout_s``: the most a whole answer takes.
  Either ends the stream with a 504 and cancels the request in the worker;
* each part, and a gathered answer in all, is at most ``max_response_size``.

A part with an error status (>= 400) ends the answer with that error. As the first part it is
the answer itself, rendered as any error answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from modelserve.engine.errors import InternalServerException, ServingError
from modelserve.engine.jobs import InferenceJob
from modelserve.engine.worker_failures import ResponseTooLargeException
from modelserve.wire import EmptyAnswer, WireResponse, failure_message


class StreamTimeoutException(ServingError):
    """A stream waited too long for its next part, for its client, or in all."""

    status = 504


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """The bounds of one version's streams (server settings ``stream_*``)."""

    window: int
    chunk_timeout_s: float
    stream_timeout_s: float
    max_response_size: int


class StreamControl(Protocol):
    """The way back to the worker that makes a request's parts."""

    def grant(self, count: int) -> None:
        """The client took ``count`` parts: the worker may send that many more."""

    def cancel(self) -> None:
        """Nobody wants the rest: the worker drops it, and its handler can see it."""


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """How a stream went, for its metrics: parts the client took, seconds from the request's
    arrival to its first part and to its end."""

    succeeded: bool
    parts: int
    first_part_s: float
    duration_s: float


def take_part(
    job: InferenceJob, part: WireResponse, control: StreamControl, limits: StreamLimits
) -> None:
    """Route one part a worker sent for ``job``: to its stream or its gathered parts, made at
    the first part."""
    if job.parts is not None:
        job.parts.put(part)
        return
    if job.future.done():  # the client gave up before the first part
        control.cancel()
        return
    refusal = _refusal(part, limits.max_response_size)
    if refusal is not None:
        control.cancel()
        if part.status >= 400:
            job.future.set_result(part)  # an error part as the first is the answer
        else:
            job.future.set_exception(refusal)
        return
    if job.streaming:
        stream = ResponseStream(part, control, limits, job.enqueued_at)
        job.parts = stream
        job.future.set_result(stream)
    else:
        job.parts = GatheredParts(job, part, control, limits.max_response_size)


def _refusal(part: WireResponse, limit: int) -> ServingError | None:
    """Why a part ends its answer instead of joining it: an error status, or its size."""
    if part.status >= 400:
        return ServingError(failure_message(part), status=part.status)
    if part.size() > limit:
        return ResponseTooLargeException(
            f"A part of {part.size()} bytes exceeds max_response_size ({limit} bytes)"
        )
    return None


class GatheredParts:
    """The parts of a job whose client takes one answer: joined when the worker ends it."""

    def __init__(
        self, job: InferenceJob, first: WireResponse, control: StreamControl, limit: int
    ) -> None:
        self._future = job.future
        self._control = control
        self._limit = limit
        self._parts = [first]
        self._size = first.size()
        control.grant(1)

    def put(self, part: WireResponse) -> None:
        """One more part: kept, and the worker may send another at once."""
        if self._future.done():
            self._control.cancel()
            return
        if part.status >= 400:  # the answer failed: the error is the answer
            self._control.cancel()
            self._future.set_result(part)
            return
        self._size += part.size()
        if self._size > self._limit:
            self._control.cancel()
            self._future.set_exception(self._too_large(len(self._parts) + 1))
            return
        self._parts.append(part)
        self._control.grant(1)

    def finish(self, final: WireResponse | None) -> None:
        """The worker's last word: the answer is every part, and ``final`` when there is one."""
        if self._future.done():
            return
        if final is not None and final.status >= 400:
            self._future.set_result(final)
            return
        parts = self._parts if final is None else [*self._parts, final]
        if final is not None and self._size + final.size() > self._limit:
            self._future.set_exception(self._too_large(len(parts)))
            return
        if any(part.tensors is not None for part in parts):
            self._future.set_exception(
                InternalServerException(
                    f"The model answered in {len(parts)} parts with output tensors, which "
                    "this protocol cannot carry as one answer: ask through a streaming one "
                    "(docs/streaming.md)",
                    type_name="InvalidModelOutput",
                )
            )
            return
        first = parts[0]
        body = b"".join(part.body for part in parts)
        self._future.set_result(
            WireResponse(first.status, first.reason, first.content_type, first.headers, body)
        )

    def fail(self, error: BaseException) -> None:
        """The request failed after some parts: the client gets the error alone."""
        if not self._future.done():
            self._future.set_exception(error)

    def _too_large(self, parts: int) -> ResponseTooLargeException:
        return ResponseTooLargeException(
            f"The answer's {parts} parts exceed max_response_size ({self._limit} bytes)"
        )


class ResponseStream:
    """The parts of one answer, in order, as an async iterator: the adapter renders each as
    it comes. It ends after the worker's final part, or raises the ``ServingError`` that
    ended the answer; ``cancel()`` stops it early (the client went away)."""

    def __init__(
        self,
        first: WireResponse,
        control: StreamControl,
        limits: StreamLimits,
        arrived_at: float,
    ) -> None:
        # The first part: its status and headers are the answer's (HTTP sends them first).
        self.first = first
        self.on_end: Callable[[StreamSummary], None] | None = None
        self._control = control
        self._limits = limits
        self._parts: deque[WireResponse] = deque((first,))
        self._final: WireResponse | None = None
        # The worker has said all (final part, end, error); the consumer is done with it.
        self._ended = False
        self._closed = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._taken = 0
        self._ungranted = 0
        self._grant_step = max(1, limits.window // 2)
        self._stall_timer: asyncio.TimerHandle | None = None
        self._arrived_at = arrived_at
        self._first_at = time.perf_counter()
        self._deadline = arrived_at + limits.stream_timeout_s

    # ----- the worker's side (the pool)

    def put(self, part: WireResponse) -> None:
        """One more part, in order."""
        if self._ended:
            return
        refusal = _refusal(part, self._limits.max_response_size)
        if refusal is None and len(self._parts) >= self._limits.window:
            refusal = InternalServerException(
                f"The worker sent more than stream_window ({self._limits.window}) parts "
                "ahead of the client"
            )
        if refusal is not None:
            self._control.cancel()
            self._fail(refusal)
            return
        self._parts.append(part)
        if len(self._parts) == self._limits.window and self._stall_timer is None:
            # The worker cannot send more until the client takes some: it gets so long.
            self._stall_timer = asyncio.get_running_loop().call_later(
                self._limits.chunk_timeout_s, self._client_stalled, self._taken
            )
        self._wake()

    def finish(self, final: WireResponse | None) -> None:
        """The worker ended the answer, with a last part (``final``) or without."""
        if self._ended:
            return
        if final is not None:
            refusal = _refusal(final, self._limits.max_response_size)
            if refusal is not None:
                self._fail(refusal)
                return
        self._final = final
        self._ended = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        """The answer failed (the handler raised, the worker died): the client gets the parts
        that came before, then ``error``."""
        if not self._ended:
            self._fail(error)

    # ----- the adapter's side

    @property
    def at_end(self) -> bool:
        """Whether the part just taken was the last (known once the worker said so)."""
        return self._ended and not self._parts and self._final is None and self._error is None

    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> WireResponse:
        while True:
            if self._parts and not self._ended and time.perf_counter() >= self._deadline:
                self._time_out(self._too_long())  # parts that keep coming do not extend it
            if self._parts:
                self._took(granted=True)
                return self._parts.popleft()
            if self._ended and self._final is not None:
                final, self._final = self._final, None
                self._took(granted=False)
                return final
            if self._ended or self._closed:
                error = self._error
                self._close(succeeded=error is None and not self._closed)
                if error is not None:
                    self._error = None
                    raise error
                raise StopAsyncIteration
            await self._next_arrival()

    def cancel(self) -> None:
        """Stop early (the client went away): the worker drops the rest of the answer."""
        if self._closed:
            return
        if not self._ended:
            self._control.cancel()
        self._ended = True
        self._parts.clear()
        self._final = None
        self._error = None
        self._close(succeeded=False)
        self._wake()  # a consumer waiting for the next part ends

    # ----- internals

    def _took(self, granted: bool) -> None:
        self._taken += 1
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        if granted and not self._ended:
            self._ungranted += 1
            if self._ungranted >= self._grant_step:
                self._control.grant(self._ungranted)
                self._ungranted = 0

    async def _next_arrival(self) -> None:
        now = time.perf_counter()
        whole = self._deadline - now
        wait_s = min(self._limits.chunk_timeout_s, whole)
        if wait_s > 0:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(wait_s):
                    await self._waiter
                return
            except TimeoutError:
                pass
            finally:
                self._waiter = None
        if self._ended:  # the answer came as the time ran out
            return
        if wait_s >= whole:
            self._time_out(self._too_long())
            return
        self._time_out(
            "No part of the answer came within stream_chunk_timeout "
            f"({self._limits.chunk_timeout_s:g} s)"
        )

    def _client_stalled(self, taken_then: int) -> None:
        self._stall_timer = None
        if self._ended or self._taken != taken_then:
            return
        self._time_out(
            "The client took no part of the answer within stream_chunk_timeout "
            f"({self._limits.chunk_timeout_s:g} s)"
        )

    def _too_long(self) -> str:
        return f"The answer took longer than stream_timeout ({self._limits.stream_timeout_s:g} s)"

    def _time_out(self, why: str) -> None:
        """A timeout ends the stream: the worker stops, and what waits for the client goes
        (it is too late for it)."""
        self._control.cancel()
        self._parts.clear()
        self._fail(StreamTimeoutException(why))

    def _fail(self, error: BaseException) -> None:
        """End with ``error``, after the parts already queued."""
        self._error = error
        self._ended = True
        self._final = None
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _close(self, succeeded: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        if self.on_end is not None:
            now = time.perf_counter()
            self.on_end(
                StreamSummary(
                    succeeded,
                    self._taken,
                    self._first_at - self._arrived_at,
                    now - self._arrived_at,
                )
            )


class AnswerParts:
    """Every part of one answer, in order, for an adapter that always streams (gRPC): the
    whole answer as its only part, or each part of its ``ResponseStream``, or none for an
    ``EmptyAnswer``. ``cancel()`` stops
    it from anywhere (a callback at the call's end), whatever it awaits."""

    def __init__(self, start: Callable[[], Awaitable[WireResponse | ResponseStream]]) -> None:
        self._start: Callable[[], Awaitable[WireResponse | ResponseStream]] | None = start
        self._stream: ResponseStream | None = None
        self._cancelled = False

    def __aiter__(self) -> AnswerParts:
        return self

    async def __anext__(self) -> WireResponse:
        if self._start is not None:
            start, self._start = self._start, None
            answer = await start()  # cancelling the awaiting task cancels the request
            if isinstance(answer, EmptyAnswer):
                raise StopAsyncIteration  # an answer of no response: an empty stream
            if not isinstance(answer, ResponseStream):
                return answer
            self._stream = answer
            if self._cancelled:
                answer.cancel()
        if self._stream is None:
            raise StopAsyncIteration
        return await self._stream.__anext__()

    def cancel(self) -> None:
        """Stop: the worker drops the rest of the answer (nothing once it has ended)."""
        self._cancelled = True
        if self._stream is not None:
            self._stream.cancel()
