"""Dynamic batching for one model version.

Requests queue here; idle workers take up to ``batch_size`` of them as one batch. A full batch
leaves at once. So does a partial one, unless batch-mates are on their way: then the idle
workers hold it back until it fills, the mates stop coming, or ``max_batch_delay`` has passed
since the hold began (or, when shorter, the time a batch takes in a worker lately), whichever
is first. Mates are on their way when another batch of this version is in flight (its clients
send again once answered, and a device the workers share is busy meanwhile anyway) or when
fewer requests are outstanding than at the recent peak (clients just answered are coming
back); a hold that nobody comes to makes the batcher forget that peak. So a lone request at
low load goes out at once, and under load the batches fill instead of the workers computing
batches of one or two; docs/performance.md has the measurements (benchmarks/run_batching.py).
No request is held longer than ``max_batch_delay``; with ``batch_size`` 1 or a delay of 0
nothing is ever held.

Requests that arrive while every worker is busy accumulate and leave together as the next
batch. Requests parsed in the same event-loop turn are coalesced by deferring dispatch by one
loop callback. What holding costs: a comparison per request while it is possible, a counter
of requests in flight (one addition per batch), and one timer per held batch.

No request waits forever: one waiting longer than ``max_wait_s`` for a worker (none can load,
all keep crashing) is answered 503. The check runs on a timer only while requests are queued.

A version on its way out waits for its queue to empty (``drained``) before its workers stop,
so the requests queued on it are answered rather than failed.
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

# The weight of the newest batch in the running average of batch times.
BATCH_TIME_WEIGHT = 0.2

# How long a peak of outstanding requests counts: a client of a steady load is away from the
# queue for one round trip, so the load shows its full size within a window. Windows turn over
# only when requests arrive, so the clients of a slow model, away for a whole batch, are not
# forgotten meanwhile. A load that has gone is forgotten at once by the first hold nobody comes
# to (see Batcher._hold_expired).
PEAK_WINDOW_S = 0.25


class PeakOutstanding:
    """The most requests queued or in flight at once during the current and the last window."""

    __slots__ = ("_current", "_previous", "_window_end")

    def __init__(self) -> None:
        self._window_end = 0.0
        self._current = self._previous = 0

    def arrived(self, now: float, outstanding: int) -> None:
        """A request arrived at ``now`` (perf_counter) and ``outstanding`` are queued or in
        flight, itself included."""
        if now >= self._window_end:
            self._previous, self._current = self._current, 0
            self._window_end = now + PEAK_WINDOW_S
        if outstanding > self._current:
            self._current = outstanding

    def peak(self) -> int:
        """The most requests outstanding at once lately."""
        return max(self._current, self._previous)

    def forget(self, outstanding: int) -> None:
        """The peak proved stale (nobody came back): only ``outstanding`` count from now on."""
        self._current = self._previous = outstanding


class JobQueue:
    """What a version's queue does whatever order it keeps: it fails the jobs that wait
    longer than ``max_wait_s`` for a worker (checked on a timer only while jobs wait), and
    tells ``drained`` once none waits."""

    def __init__(self, max_wait_s: float, waited_too_long: Callable[[], BaseException]) -> None:
        self._max_wait_s = max_wait_s
        self._waited_too_long = waited_too_long
        self._expiry: asyncio.TimerHandle | None = None
        # Resolved once the queue is empty, while someone waits for that (``drained``).
        self._empty: asyncio.Future[None] | None = None

    def queued(self) -> int:
        """Requests waiting for a worker."""
        raise NotImplementedError

    def _fail_waiting_since(self, cutoff: float) -> None:
        """Fail every queued job enqueued at or before ``cutoff`` (perf_counter) with
        ``self._waited_too_long()``."""
        raise NotImplementedError

    async def drained(self) -> None:
        """Return once no job is queued: workers took them all, or they failed or expired."""
        if not self.queued():
            return
        self._empty = asyncio.get_running_loop().create_future()
        try:
            await self._empty
        finally:
            self._empty = None

    def _tell_if_empty(self) -> None:
        if self._empty is not None and not self.queued() and not self._empty.done():
            self._empty.set_result(None)

    def _arm_expiry(self) -> None:
        """Check the wait limit soon (while jobs wait: the caller checks ``_expiry`` is None,
        which saves a call per request)."""
        interval = min(1.0, self._max_wait_s / 4)
        self._expiry = asyncio.get_running_loop().call_later(interval, self._check_waits)

    def _check_waits(self) -> None:
        self._expiry = None
        self._fail_waiting_since(time.perf_counter() - self._max_wait_s)
        if self.queued():
            self._arm_expiry()
        self._tell_if_empty()


class Batcher(JobQueue, Generic[WorkerT]):
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
        max_batch_delay_s: float = 0.0,
    ) -> None:
        super().__init__(max_wait_s, waited_too_long)
        self.batch_size = batch_size
        self.capacity = capacity
        self._send_batch = send_batch
        self._full_message = full_message
        self._in_flight = in_flight
        self.pending: deque[InferenceJob] = deque()
        self.idle: deque[WorkerT] = deque()
        self._dispatch_scheduled = False
        # Zero when no batch is ever held back (batch_size 1, or a delay of 0): then neither
        # holds nor the peak bookkeeping run.
        self._delay_s = max_batch_delay_s if batch_size > 1 else 0.0
        self._peak = PeakOutstanding()
        self._jobs_in_flight = 0
        # An idle worker holds the partial batch at the head of the queue back; the timer ends
        # the hold at max_batch_delay (None once it has fired, while holding stays True).
        self._holding = False
        self._hold_timer: asyncio.TimerHandle | None = None
        self._queued_at_hold = 0
        # How long a batch takes in a worker, lately: a hold never lasts longer, since a mate
        # that comes later is served as soon by the next batch (and, when batch time grows
        # with batch size, sooner). Until measured, the delay alone bounds holds.
        self._batch_s = self._delay_s

    def queued(self) -> int:
        """Requests waiting for a worker."""
        return len(self.pending)

    def submit(self, job: InferenceJob) -> None:
        """Queue a job; raises 503 when the queue is full."""
        if len(self.pending) >= self.capacity:
            raise ServiceUnavailableException(self._full_message)
        self.pending.append(job)
        if self._delay_s:
            self._peak.arrived(job.enqueued_at, len(self.pending) + self._jobs_in_flight)
        if self.idle and not self._dispatch_scheduled:
            self._dispatch_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_dispatch)
        if self._expiry is None:
            self._arm_expiry()

    def worker_idle(self, worker: WorkerT) -> None:
        """A worker finished its batch (or loaded): give it work at once if there is any."""
        self.idle.append(worker)
        self.dispatch()

    def batch_ended(self, size: int, worker_s: float | None = None) -> None:
        """A batch of ``size`` jobs sent to a worker was answered (after ``worker_s`` seconds of
        work in the worker), failed, or never arrived."""
        self._jobs_in_flight -= size
        if worker_s is not None and self._delay_s:
            self._batch_s += (worker_s - self._batch_s) * BATCH_TIME_WEIGHT

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
        if self._holding:
            self._end_hold()
        while self.pending:
            self.pending.popleft().fail(error)
        self._tell_if_empty()

    def _fail_waiting_since(self, cutoff: float) -> None:
        pending = self.pending
        # The queue is in arrival order (requeued jobs go back to the head, and are older).
        while pending and pending[0].enqueued_at <= cutoff:
            pending.popleft().fail(self._waited_too_long())

    def _scheduled_dispatch(self) -> None:
        self._dispatch_scheduled = False
        self.dispatch()

    def dispatch(self) -> None:
        """Hand queued jobs to idle workers, up to ``batch_size`` each."""
        pending, idle = self.pending, self.idle
        while idle and pending:
            if self._delay_s and len(pending) < self.batch_size and self._hold():
                return
            jobs: list[InferenceJob] = []
            while pending and len(jobs) < self.batch_size:
                job = pending.popleft()
                if not job.future.done():  # the client gave up while queued
                    jobs.append(job)
            if self._holding:  # the held batch is on its way (or was all abandoned)
                self._end_hold()
            if jobs:
                self._jobs_in_flight += len(jobs)
                self._send_batch(self._take_idle(), jobs)
        if self._empty is not None:  # someone waits in drained(): no call otherwise
            self._tell_if_empty()

    def _hold(self) -> bool:
        """Whether the idle workers keep the partial batch back for batch-mates: only while
        they are on their way, and never longer than ``max_batch_delay`` in all."""
        if not self._holding:
            if not self._mates_coming():
                return False
            self._holding = True
            self._queued_at_hold = len(self.pending)
            self._hold_timer = asyncio.get_running_loop().call_later(
                min(self._delay_s, self._batch_s), self._hold_expired
            )
            return True
        return self._hold_timer is not None and self._mates_coming()

    def _mates_coming(self) -> bool:
        """More requests are due soon: another batch is in flight (its clients send again once
        answered, and a device it shares with the idle worker is busy meanwhile), or fewer
        requests are outstanding than at the recent peak (the missing clients are on their way
        back)."""
        in_flight = self._jobs_in_flight
        return in_flight > 0 or len(self.pending) + in_flight < self._peak.peak()

    def _hold_expired(self) -> None:
        self._hold_timer = None
        if len(self.pending) <= self._queued_at_hold:
            # Nobody came for a whole delay: the load the peak remembers has gone.
            self._peak.forget(len(self.pending) + self._jobs_in_flight)
        self.dispatch()

    def _end_hold(self) -> None:
        self._holding = False
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None

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
