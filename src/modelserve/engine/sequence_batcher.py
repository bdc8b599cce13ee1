"""Sequence batching for a stateful model version: the ``Batcher`` of a version whose model
keeps state between the requests of a sequence (TorchServe's ``sequenceBatching``, Triton's
``sequence_batching``).

* A sequence lives on one worker: its first request binds it to the free worker that holds
  the fewest sequences (among those with room for it in their next batch), and every later
  request goes to that worker, in the order they arrived, one at a time (the next leaves
  once the previous one is answered; for an answer in parts, once its first part came: the
  worker runs its batches one after the other, so it still comes after the whole answer).
* A batch holds at most one request per sequence; requests of different sequences on the
  same worker leave together, up to ``batch_size``, as soon as a slot of the worker is free.
  Nothing is held back for batch-mates (``max_batch_delay`` does not apply).
* A sequence with nothing queued or running expires after the policy's idle time; one that
  ended with ``sequence_end`` is forgotten once its last request is answered; one whose worker
  stops (died, killed, scaled down) ends at once, its queued requests failed. The next request
  for an expired or lost sequence is told why (a 400), and a request after that with the same
  id starts a new sequence as usual.
* Bounds, each a 503 saying which: live sequences (``max_sequences``), requests waiting in
  one sequence (``queue_per_sequence``) and in the whole version (``capacity``).
  A request that waits longer than ``max_wait_s`` is a 503, as in the ``Batcher``.

The version's queue depth counts every queued request. Costs over the ``Batcher``: a dict
lookup, a done-callback and an idle timer per request; stateless models never come here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Generic, TypeVar

from modelserve.engine.batcher import JobQueue
from modelserve.engine.errors import (
    BadRequestException,
    ServiceUnavailableException,
    ServingError,
    WorkerDiedException,
)
from modelserve.engine.jobs import InferenceJob
from modelserve.engine.sequence_requests import SequenceId, mark_request, read_mark
from modelserve.engine.sequences import SequencePolicy

log = logging.getLogger("modelserve.sequences")
WorkerT = TypeVar("WorkerT")

# How many ended sequences are remembered, per live sequence allowed, to tell their next
# request why they are gone (the oldest are forgotten first).
ENDED_MEMORY_PER_SEQUENCE = 4


class Sequence(Generic[WorkerT]):
    """One live sequence: where it runs, what waits, and when it goes idle."""

    __slots__ = ("ending", "idle_timer", "in_flight", "key", "queue", "started_at", "worker")

    def __init__(self, key: SequenceId, now: float) -> None:
        self.key = key
        self.worker: WorkerT | None = None
        self.queue: deque[InferenceJob] = deque()
        # The request the worker has (the sequence's next one waits for its answer).
        self.in_flight: InferenceJob | None = None
        # The last request submitted asked to end the sequence.
        self.ending = False
        self.started_at = now
        self.idle_timer: asyncio.TimerHandle | None = None


class SequenceBatcher(JobQueue, Generic[WorkerT]):
    """The queue of a stateful model version: each sequence on its own worker, in order."""

    def __init__(
        self,
        label: str,
        policy: SequencePolicy,
        batch_size: int,
        capacity: int,
        send_batch: Callable[[WorkerT, list[InferenceJob]], None],
        full_message: str,
        max_wait_s: float,
        waited_too_long: Callable[[], BaseException],
        worker_loss: Callable[[WorkerT], str],
    ) -> None:
        super().__init__(max_wait_s, waited_too_long)
        self.label = label
        self.model = label.partition(":")[0]
        self.policy = policy
        self.batch_size = batch_size
        self.capacity = capacity
        self._send_batch = send_batch
        self._full_message = full_message
        self._worker_loss = worker_loss
        self.idle: deque[WorkerT] = deque()
        self.sequences: dict[SequenceId, Sequence[WorkerT]] = {}
        # Sequences with a request ready to leave, by the worker they are bound to (None:
        # new ones, bound when a worker is free).
        self._ready: dict[WorkerT | None, deque[Sequence[WorkerT]]] = {None: deque()}
        self._bound: dict[WorkerT, int] = {}
        # Why recently ended sequences ended, for their next request.
        self._ended: OrderedDict[SequenceId, str] = OrderedDict()
        self._queued = 0
        self.expired = 0
        self._dispatch_scheduled = False

    # ----- what the pool and the version read

    def queued(self) -> int:
        """Requests waiting (for their sequence's previous one, or for a worker)."""
        return self._queued

    # ----- requests

    def submit(self, job: InferenceJob) -> None:
        """Queue a job on its sequence; a 400 for a request its sequence cannot take, a 503
        past a bound."""
        mark = read_mark(job.request)
        key, start = mark.sequence_id, mark.start
        if key is None:
            if self.policy.requires_id or mark.triton:
                raise BadRequestException(
                    f"inference request to model '{self.model}' must specify a non-zero or "
                    "non-empty correlation ID (the parameter sequence_id)"
                )
            key, start = f"ts-seq-{uuid.uuid4()}", True
        if self._queued >= self.capacity:
            raise ServiceUnavailableException(self._full_message)
        now = time.perf_counter()
        sequence = self.sequences.get(key)
        if sequence is not None and self._outlived(sequence, now) and not start:
            self._end(sequence, self._lifetime_reason(), BadRequestException)
            sequence = None
        if sequence is None:
            sequence = self._open(key, start, mark.triton, now)
            start = True  # the handler sees every sequence's first request marked
        else:
            self._continue(sequence, start)
        mark_request(job.request, key, start, mark.end)
        sequence.ending = mark.end
        sequence.queue.append(job)
        self._queued += 1
        if sequence.idle_timer is not None:
            sequence.idle_timer.cancel()
            sequence.idle_timer = None
        if sequence.in_flight is None and len(sequence.queue) == 1:
            self._ready[sequence.worker].append(sequence)
            self._schedule_dispatch()
        if self._expiry is None:
            self._arm_expiry()

    def _open(self, key: SequenceId, start: bool, triton: bool, now: float) -> Sequence[WorkerT]:
        """A new sequence for ``key``, if the request may start one."""
        ended = self._ended.pop(key, None)
        if not start and ended is not None:
            restart = (
                "start it again with sequence_start"
                if triton
                else "the next request with this id starts it again"
            )
            raise BadRequestException(
                f"Sequence {key} of model {self.model} {ended}; its state is gone: {restart}"
            )
        if not start and triton:
            raise BadRequestException(
                f"inference request for sequence {key} to model '{self.model}' must specify "
                "the START flag on the first request of the sequence"
            )
        if len(self.sequences) >= self.policy.max_sequences:
            raise ServiceUnavailableException(
                f'Model "{self.model}" cannot start sequence {key}: it has '
                f"{len(self.sequences)} live sequences, the most it keeps (maxNumSequence); "
                "retry once one ends or expires"
            )
        sequence: Sequence[WorkerT] = Sequence(key, now)
        self.sequences[key] = sequence
        return sequence

    def _continue(self, sequence: Sequence[WorkerT], start: bool) -> None:
        """Take a request into a live sequence, if it has room."""
        if start and not sequence.ending:
            # Triton's behaviour: the unfinished sequence is cut short, and the new one with
            # the same id follows it on its worker.
            log.warning(
                "Sequence %s of %s started again before it ended; its earlier requests "
                "finish first",
                sequence.key,
                self.label,
            )
        if start:
            sequence.started_at = time.perf_counter()
        elif sequence.ending:
            raise BadRequestException(
                f"inference request for sequence {sequence.key} to model '{self.model}' must "
                "specify the START flag on the first request of the sequence (the sequence "
                "ended with sequence_end)"
            )
        if len(sequence.queue) >= self.policy.queue_per_sequence:
            raise ServiceUnavailableException(
                f'Model "{self.model}": sequence {sequence.key} already has '
                f"{len(sequence.queue)} requests waiting, the most it may "
                f"(maxSequenceJobQueueSize {self.policy.queue_per_sequence}); retry once one "
                "is answered"
            )

    def _outlived(self, sequence: Sequence[WorkerT], now: float) -> bool:
        lifetime_ms = self.policy.lifetime_ms
        return bool(lifetime_ms) and (now - sequence.started_at) * 1000 >= lifetime_ms

    def _lifetime_reason(self) -> str:
        return f"ended after its sequenceTimeoutMSec ({self.policy.lifetime_ms} ms)"

    # ----- workers

    def worker_idle(self, worker: WorkerT) -> None:
        """A worker slot is free (a batch was answered, or the worker loaded)."""
        self._bound.setdefault(worker, 0)
        self.idle.append(worker)
        self._schedule_dispatch()

    def batch_ended(self, size: int, worker_s: float | None = None) -> None:
        """A batch was answered, failed or never arrived. Sequences learn of their own
        request's end from its future, so nothing is counted here (no batch is held back)."""

    def worker_unavailable(self, worker: WorkerT) -> None:
        """A worker retires or is gone: its sequences end now, their state with it."""
        while worker in self.idle:
            self.idle.remove(worker)
        bound = [sequence for sequence in self.sequences.values() if sequence.worker is worker]
        if bound:
            why = f"ended: {self._worker_loss(worker)}"
            log.warning("%s: %d sequences %s", self.label, len(bound), why)
            for sequence in bound:
                self._end(sequence, why, WorkerDiedException)
        self._ready.pop(worker, None)
        self._bound.pop(worker, None)

    def requeue(self, jobs: list[InferenceJob]) -> None:
        """Put jobs back at the head of their sequences (their worker never got them)."""
        for job in jobs:
            sequence = self._sequence_of(job)
            if sequence is None or sequence.in_flight is not job:
                job.fail(ServiceUnavailableException(f"Model {self.label}: the request was lost"))
                continue
            sequence.in_flight = None
            sequence.queue.appendleft(job)
            self._queued += 1
            self._ready[sequence.worker].appendleft(sequence)
        self.dispatch()

    def fail_pending(self, error: BaseException) -> None:
        """End every sequence, failing its queued jobs with ``error``."""
        for sequence in list(self.sequences.values()):
            while sequence.queue:
                sequence.queue.popleft().fail(error)
                self._queued -= 1
            self._forget(sequence)
        self._tell_if_empty()

    # ----- dispatch

    def _schedule_dispatch(self) -> None:
        """Dispatch once the loop has run what is already due: the answers of a batch, whose
        sequences are then ready again together, and the requests parsed in this turn, which
        then leave together."""
        if self.idle and not self._dispatch_scheduled:
            self._dispatch_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_dispatch)

    def _scheduled_dispatch(self) -> None:
        self._dispatch_scheduled = False
        self.dispatch()

    def dispatch(self) -> None:
        """Bind new sequences to free workers, then send each free worker slot a batch of its
        sequences' next requests."""
        idle = self.idle
        self._bind_new()
        for worker in list(dict.fromkeys(idle)):
            ready = self._ready.get(worker)
            while ready and worker in idle:
                jobs = self._take(ready)
                if jobs:
                    idle.remove(worker)
                    self._send_batch(worker, jobs)
        if self._empty is not None:
            self._tell_if_empty()

    def _bind_new(self) -> None:
        """Bind waiting new sequences, one at a time, to the free worker holding the fewest
        sequences among those whose free slots have room for one more in their batches: new
        sequences spread over the free workers, and none is bound to a worker that could not
        take its request now (a busy one may be the better choice by the time it is free)."""
        unbound = self._ready[None]
        while unbound:
            room = [
                worker
                for worker in dict.fromkeys(self.idle)
                if len(self._ready.get(worker, ())) < self.batch_size * self.idle.count(worker)
            ]
            if not room:
                return
            worker = min(room, key=self._bound.__getitem__)
            sequence = unbound.popleft()
            sequence.worker = worker
            self._bound[worker] += 1
            self._ready.setdefault(worker, deque()).append(sequence)

    def _take(self, ready: deque[Sequence[WorkerT]]) -> list[InferenceJob]:
        """The next request of up to ``batch_size`` ready sequences, each now in flight."""
        jobs: list[InferenceJob] = []
        while ready and len(jobs) < self.batch_size:
            sequence = ready.popleft()
            while sequence.queue:
                job = sequence.queue.popleft()
                self._queued -= 1
                if not job.future.done():  # the client gave up while it waited
                    sequence.in_flight = job
                    job.future.add_done_callback(functools.partial(self._answered, sequence, job))
                    jobs.append(job)
                    break
            else:
                self._went_idle(sequence)
        return jobs

    def _answered(self, sequence: Sequence[WorkerT], job: InferenceJob, _future: object) -> None:
        """A sequence's request in flight ended: its next one may leave."""
        if sequence.in_flight is not job or self.sequences.get(sequence.key) is not sequence:
            return  # requeued and sent again, or the sequence has ended meanwhile
        sequence.in_flight = None
        if sequence.queue:
            self._ready[sequence.worker].append(sequence)
            self._schedule_dispatch()
        else:
            self._went_idle(sequence)

    # ----- endings

    def _went_idle(self, sequence: Sequence[WorkerT]) -> None:
        """Nothing of the sequence waits or runs: forget it if it ended, else time it out."""
        if sequence.ending:
            self._forget(sequence)
            return
        delay_s = self.policy.idle_ms / 1000
        if self.policy.lifetime_ms:
            left_s = self.policy.lifetime_ms / 1000 - (time.perf_counter() - sequence.started_at)
            delay_s = max(0.0, min(delay_s, left_s))
        sequence.idle_timer = asyncio.get_running_loop().call_later(
            delay_s, self._expire_idle, sequence
        )

    def _expire_idle(self, sequence: Sequence[WorkerT]) -> None:
        sequence.idle_timer = None
        if self._outlived(sequence, time.perf_counter()):
            self._end(sequence, self._lifetime_reason(), BadRequestException)
            return
        idle = f"{self.policy.idle_ms} ms without a request ({self.policy.idle_setting})"
        log.info("Sequence %s of %s expired after %s", sequence.key, self.label, idle)
        self.expired += 1
        self._end(sequence, f"expired after {idle}", BadRequestException)

    def _end(self, sequence: Sequence[WorkerT], why: str, failure: type[ServingError]) -> None:
        """End a live sequence: fail what it has queued with a ``failure`` saying ``why``,
        and remember why for its next request."""
        error = failure(f"Sequence {sequence.key} of model {self.model} {why}")
        while sequence.queue:
            sequence.queue.popleft().fail(error)
            self._queued -= 1
        self._forget(sequence)
        self._ended[sequence.key] = why
        while len(self._ended) > ENDED_MEMORY_PER_SEQUENCE * self.policy.max_sequences:
            self._ended.popitem(last=False)
        self._tell_if_empty()

    def _forget(self, sequence: Sequence[WorkerT]) -> None:
        if self.sequences.get(sequence.key) is sequence:
            del self.sequences[sequence.key]
        if sequence.idle_timer is not None:
            sequence.idle_timer.cancel()
            sequence.idle_timer = None
        ready = self._ready.get(sequence.worker)
        if ready is not None and sequence in ready:
            ready.remove(sequence)
        if sequence.worker is not None and sequence.worker in self._bound:
            self._bound[sequence.worker] -= 1

    def _sequence_of(self, job: InferenceJob) -> Sequence[WorkerT] | None:
        for sequence in self.sequences.values():
            if sequence.in_flight is job:
                return sequence
        return None

    # ----- requests that wait too long

    def _fail_waiting_since(self, cutoff: float) -> None:
        for sequence in list(self.sequences.values()):
            queue = sequence.queue
            # Each sequence's queue is in arrival order.
            while queue and queue[0].enqueued_at <= cutoff:
                queue.popleft().fail(self._waited_too_long())
                self._queued -= 1
            if not queue and sequence.in_flight is None and sequence.idle_timer is None:
                if sequence in self._ready[sequence.worker]:
                    self._ready[sequence.worker].remove(sequence)
                self._went_idle(sequence)
