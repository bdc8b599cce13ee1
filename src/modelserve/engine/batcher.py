"""Dynamic batching for one model version.

Requests queue here; idle workers take up to ``batch_size`` of them as one batch. Dispatch is
greedy: an idle worker never waits for batch-mates, so a lone request goes out at once and
``max_batch_delay`` is honoured as a ceiling that is never reached. Requests that arrive while
every worker is busy accumulate and leave together as the next batch. Requests parsed in the
same event-loop turn are coalesced by deferring dispatch by one loop callback.

No request waits forever: one waiting longer than ``max_wait_s`` for a worker (none can load,
all keep crashing) is answered 503. The check runs on a timer only while requests are queued.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from modelserve.engine.errors import ServiceUnavailableException
from modelserve.engine.jobs import InferenceJob

WorkerT = TypeVar("WorkerT")


class Batcher(Generic[WorkerT]):
    """A bounded job queue plus the set of idle workers of one model version."""

    def __init__(
        self,
        batch_size: int,
        capacity: int,
        send_batch: Callable[[WorkerT, list[InferenceJob]], None],
        full_message: str,
        max_wait_s: float,
        waited_too_long: Callable[[], BaseException],
        in_flight: Callable[[WorkerT], int] = lambda _worker: 0,
    ) -> None:
        self.batch_size = batch_size
        self.capacity = capacity
        self._send_batch = send_batch
        self._full_message = full_message
        self._max_wait_s = max_wait_s
        self._waited_too_long = waited_too_long
        self._in_flight = in_flight
        self.pending: deque[InferenceJob] = deque()
        self.idle: deque[WorkerT] = deque()
        self._dispatch_scheduled = False
        self._expiry: asyncio.TimerHandle | None = None

    def submit(self, job: InferenceJob) -> None:
        """Queue a job; raises 503 when the queue is full."""
        if len(self.pending) >= self.capacity:
            raise ServiceUnavailableException(self._full_message)
        self.pending.append(job)
        if self.idle and not self._dispatch_scheduled:
            self._dispatch_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_dispatch)
        if self._expiry is None:
            self._arm_expiry()

    def worker_idle(self, worker: WorkerT) -> None:
        """A worker finished its batch (or loaded): give it work at once if there is any."""
        self.idle.append(worker)
        self.dispatch()

    def worker_unavailable(self, worker: WorkerT) -> None:
        """A worker is retiring or gone: never hand it another batch (a worker that may hold
        several batches is in ``idle`` once per free slot)."""
        while worker in self.idle:
            self.idle.remove(worker)

    def requeue(self, jobs: list[InferenceJob]) -> None:
        """Put jobs back at the head of the queue, in order (their worker never got them)."""
        self.pending.extendleft(reversed(jobs))
        self.dispatch()

    def fail_pending(self, error: BaseException) -> None:
        """End every queued job with ``error``."""
        while self.pending:
            self.pending.popleft().fail(error)

    def _arm_expiry(self) -> None:
        interval = min(1.0, self._max_wait_s / 4)
        self._expiry = asyncio.get_running_loop().call_later(interval, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        cutoff = time.perf_counter() - self._max_wait_s
        pending = self.pending
        # The queue is in arrival order (requeued jobs go back to the head, and are older).
        while pending and pending[0].enqueued_at <= cutoff:
            pending.popleft().fail(self._waited_too_long())
        if pending:
            self._arm_expiry()

    def _scheduled_dispatch(self) -> None:
        self._dispatch_scheduled = False
        self.dispatch()

    def dispatch(self) -> None:
        """Hand queued jobs to idle workers, up to ``batch_size`` each."""
        pending, idle = self.pending, self.idle
        while idle and pending:
            jobs: list[InferenceJob] = []
            while pending and len(jobs) < self.batch_size:
                job = pending.popleft()
                if not job.future.done():  # the client gave up while queued
                    jobs.append(job)
            if jobs:
                self._send_batch(self._take_idle(), jobs)

    def _take_idle(self) -> WorkerT:
        """A free worker slot: a worker with nothing in flight when there is one, so a second
        batch never queues behind a busy worker while another sits idle; among those, the most
        recently idle (warmest caches)."""
        idle = self.idle
        for index in range(len(idle) - 1, -1, -1):
            if not self._in_flight(idle[index]):
                worker = idle[index]
                del idle[index]
                return worker
        return idle.pop()
