"""The worker processes of one model version: scaling, batches in flight, crashes, restarts."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import time
from typing import Any

from modelserve import wire
from modelserve.engine.batcher import Batcher
from modelserve.engine.cpu_budget import compute_threads
from modelserve.engine.dispatcher import Dispatcher
from modelserve.engine.errors import ServiceUnavailableException, ServingError, WorkerDiedException
from modelserve.engine.jobs import InferenceJob
from modelserve.engine.pool_config import PoolLimits, WorkerLaunch
from modelserve.engine.restart_backoff import RestartBackoff
from modelserve.engine.sequence_batcher import SequenceBatcher
from modelserve.engine.spare_worker import SpareWorker
from modelserve.engine.statistics import VersionStatistics
from modelserve.engine.streams import take_part
from modelserve.engine.worker_failures import (
    LoadFailure,
    ResponseTooLargeException,
    WorkerTimeoutException,
    exit_reason,
    load_error,
)
from modelserve.engine.worker_process import READY, STARTING, InFlightBatch, WorkerProcess
from modelserve.telemetry.frontend_metrics import VersionMetrics

log = logging.getLogger("modelserve.workers")

# The most workers one model version may run (min_worker, max_worker, initial_workers above it
# are a 400). TorchServe has no bound, so one `PUT /models/m?min_worker=100000` makes it spawn
# 100000 processes and takes the host down. Each worker is a whole interpreter with its own copy
# of the model; beyond a few per core (GPU hosts have cores to match) more workers only add
# memory and contention, so this cap refuses nothing useful.
MAX_WORKERS_PER_VERSION = max(32, 4 * (os.cpu_count() or 1))

# Batches a worker may hold at once when it serves one request per batch: the second waits in
# the worker's socket, so the worker starts it the moment it has answered the first instead of
# idling for a round trip through the frontend. With batching on, requests that arrive while a
# worker is busy wait in the frontend to form the next batch instead.
UNBATCHED_PIPELINE_DEPTH = 2


class WorkerPool:
    """Keeps ``target`` worker processes of one model version alive and feeds them batches."""

    def __init__(
        self,
        label: str,
        launch: WorkerLaunch,
        limits: PoolLimits,
        dispatcher: Dispatcher,
        metrics: VersionMetrics,
    ) -> None:
        self.label = label
        self._launch = launch
        self._dispatcher = dispatcher
        self._metrics = metrics
        self.timeouts = timeouts = limits.timeouts
        self.placement = launch.placement
        # How a stateful model keeps its sequences; None for a stateless one.
        self.sequences = limits.sequences
        self.batcher = self._make_batcher(limits)
        self._max_response_size = limits.max_response_size
        self._stream_limits = limits.stream
        self._depth = UNBATCHED_PIPELINE_DEPTH if limits.batch_size == 1 else 1
        self._restarts = RestartBackoff(label, timeouts.max_retry, self._restart_workers)
        self.workers: dict[str, WorkerProcess] = {}
        self.statistics = VersionStatistics()
        self.target = 0
        # Workers that ended without being asked to (crashed, killed, timed out, failed to
        # load); each is restarted with TorchServe's back-off.
        self.worker_failures = 0
        self.last_failure: LoadFailure | None = None
        # The model's tensors as the first worker that could tell described them (READY).
        self.tensor_metadata: dict[str, Any] | None = None
        self._tasks: set[asyncio.Task] = set()
        self._batch_ids = itertools.count(1)
        self._closed = False

    def _make_batcher(
        self, limits: PoolLimits
    ) -> Batcher[WorkerProcess] | SequenceBatcher[WorkerProcess]:
        label, timeouts = self.label, limits.timeouts

        def waited_too_long() -> ServiceUnavailableException:
            return ServiceUnavailableException(
                f"Model {label}: no worker took the request within response_timeout "
                f"({timeouts.response:g} s)"
            )

        queue: dict[str, Any] = {
            "batch_size": limits.batch_size,
            "capacity": limits.queue_capacity,
            "send_batch": self._send_batch,
            "full_message": f"Model {label} has too many queued requests "
            f"(job_queue_size {limits.queue_capacity}); retry later",
            "max_wait_s": timeouts.response,
            "waited_too_long": waited_too_long,
        }
        if limits.sequences is not None:
            return SequenceBatcher(label, limits.sequences, worker_loss=self._worker_loss, **queue)
        return Batcher(
            in_flight=lambda worker: len(worker.batches),
            max_batch_delay_s=limits.max_batch_delay_ms / 1000,
            **queue,
        )

    def _worker_loss(self, worker: WorkerProcess) -> str:
        """What became of a worker that stops serving, for the sequences it held."""
        if worker.retiring:
            return f"its worker {worker.id} was stopped (scaled down, or the model unloaded)"
        if worker.timed_out:
            return f"its worker {worker.id} was killed after exceeding response_timeout"
        return f"its worker {worker.id} died"

    # ----- queries

    def live_workers(self) -> list[WorkerProcess]:
        """Workers that are not on their way out."""
        return [worker for worker in self.workers.values() if not worker.retiring]

    def ready_count(self) -> int:
        """How many workers have loaded the model and can take batches."""
        return sum(1 for worker in self.live_workers() if worker.state == READY)

    def has_ready_worker(self) -> bool:
        """Whether any worker can take batches (``ready_count() > 0``, without counting)."""
        return any(w.state == READY and not w.retiring for w in self.workers.values())

    def submit(self, job: InferenceJob, no_worker_message: str) -> None:
        """Queue a job for this version; 503 when there is no worker at all or the queue is full."""
        if self.target == 0 and not self.workers:
            raise ServiceUnavailableException(no_worker_message)
        self.batcher.submit(job)

    # ----- scaling

    async def scale(self, count: int, *, wait: bool) -> None:
        """Run ``count`` workers; with ``wait``, return once the new ones are loaded.

        Raises WorkerLoadException naming the handler's error when a new worker fails to load.
        """
        self.target = count
        self._restarts.rescaled()
        # Workers started for a management call may take the spare; restarts (below) do not:
        # a worker crashing in a loop would otherwise keep new spares importing torch.
        started = self._reconcile(self._launch.spare)
        if wait and started:
            await self._await_ready(started)

    async def close(self, grace_s: float | None = None) -> None:
        """Stop every worker: the queued requests are taken and the batches in flight finish
        first, for up to ``grace_s`` seconds in all (None: the unregister timeout)."""
        timeout = self.timeouts.unregister if grace_s is None else grace_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self.has_ready_worker():
            # The version gets no new requests (it has left the registry, or the server is
            # stopping), so its queue empties: the requests queued on a version that a new
            # one replaces are answered, not failed.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.batcher.drained(), timeout)
        self._closed = True
        self.target = 0
        self._restarts.cancel()
        self._reconcile()
        if self._tasks:
            remaining = max(0.0, deadline - loop.time())
            _, still_running = await asyncio.wait(self._tasks, timeout=remaining)
            for worker in self.workers.values():
                worker.kill()
            if still_running:
                await asyncio.wait(still_running, timeout=5)
        self.batcher.fail_pending(ServiceUnavailableException(f"Model {self.label} was unloaded"))

    def _reconcile(self, spare: SpareWorker | None = None) -> list[WorkerProcess]:
        live = self.live_workers()
        if len(live) < self.target:
            return [self._start_worker(spare) for _ in range(self.target - len(live))]
        # Retire the newest first: the oldest workers have the warmest caches.
        for worker in sorted(live, key=lambda w: w.started_at, reverse=True)[
            : len(live) - self.target
        ]:
            self._retire(worker)
        return []

    async def _await_ready(self, workers: list[WorkerProcess]) -> None:
        results = await asyncio.gather(
            *(worker.ready for worker in workers), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _start_worker(self, spare: SpareWorker | None) -> WorkerProcess:
        launch = self._launch
        worker_id = launch.next_worker_id()
        gpu_id = self.placement.next_gpu(live.spec.gpu_id for live in self.live_workers())
        spec = launch.make_spec(worker_id, gpu_id)
        threads = compute_threads(launch.threads, self.target)
        worker = WorkerProcess(spec, launch.spec_dir, threads)
        # Nobody may await a worker's readiness (async scaling): never warn about it.
        worker.ready.add_done_callback(lambda future: future.cancelled() or future.exception())
        self.workers[worker_id] = worker
        self._dispatcher.attach(worker_id, functools.partial(self._on_message, worker))
        task = asyncio.create_task(self._run(worker, spare), name=f"worker-{worker_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return worker

    def _retire(self, worker: WorkerProcess) -> None:
        worker.retiring = True
        self.batcher.worker_unavailable(worker)
        if worker.state == STARTING:
            worker.kill()
        elif not worker.batches:
            self._dispatcher.send(worker.id, wire.encode_stop())
        # A busy worker gets its stop after its last batch's result (see _on_result).
        asyncio.get_running_loop().call_later(self.timeouts.unregister, worker.kill)

    # ----- one worker's life

    async def _run(self, worker: WorkerProcess, spare: SpareWorker | None) -> None:
        loop = asyncio.get_running_loop()
        try:
            await worker.spawn(spare)
        except OSError as exc:
            self._on_exit(worker, None, f"could not start: {exc}")
            return
        if worker.from_spare:
            log.info("%s worker %s is the spare worker (pid %s)", self.label, worker.id, worker.pid)
        startup_timer = loop.call_later(self.timeouts.startup, self._startup_timed_out, worker)
        code = await worker.wait()
        startup_timer.cancel()
        self._on_exit(worker, code, None)

    def _startup_timed_out(self, worker: WorkerProcess) -> None:
        if worker.state == STARTING:
            self.last_failure = LoadFailure(
                "WorkerLoadTimeout",
                f"the model did not load within startup_timeout ({self.timeouts.startup:g} s)",
                "",
            )
            worker.kill()

    def _on_message(
        self, worker: WorkerProcess, header: dict[str, Any], frames: list[bytes]
    ) -> None:
        kind = header["k"]
        if kind == wire.PART:
            self._on_part(worker, header, frames)
        elif kind == wire.RESULT:
            self._on_result(worker, header, frames)
        elif kind == wire.READY:
            self._on_ready(worker, header)
        elif kind == wire.LOAD_FAILED:
            self.last_failure = LoadFailure(header["type"], header["msg"], header["tb"])
            log.error("%s worker %s failed to load: %s", self.label, worker.id, header["msg"])

    def _on_ready(self, worker: WorkerProcess, header: dict[str, Any]) -> None:
        # A busy loop may read the worker's message before its spawn has returned: describe
        # must never show a READY worker without a pid (-1; kill -1 is every process).
        worker.pid = header["pid"]
        worker.state = READY
        worker.load_ms = header["load_ms"]
        if self.tensor_metadata is None and isinstance(header.get("tensors"), dict):
            self.tensor_metadata = header["tensors"]
        self._restarts.loaded()
        self.last_failure = None
        if not worker.ready.done():
            worker.ready.set_result(None)
        log.info("%s worker %s ready in %.0f ms", self.label, worker.id, worker.load_ms)
        self._metrics.worker_loaded(worker.id, worker.since_start_s() * 1000)
        for _ in range(self._depth):
            self._release(worker)

    def _release(self, worker: WorkerProcess) -> None:
        """One of the worker's batch slots is free again."""
        if not worker.retiring:
            self.batcher.worker_idle(worker)
        elif not worker.batches:
            self._dispatcher.send(worker.id, wire.encode_stop())

    def _send_batch(self, worker: WorkerProcess, jobs: list[InferenceJob]) -> None:
        now = time.perf_counter()
        for job in jobs:
            self._metrics.dispatched(job.explicit_version, now - job.enqueued_at)
            self.statistics.dispatched(now - job.enqueued_at)
            if job.streaming:
                job.control = WorkerLink(self._dispatcher, worker.id, job.request.request_id)
        batch_id = next(self._batch_ids)
        frames = wire.encode_batch(batch_id, [job.request for job in jobs])
        if not self._dispatcher.send(worker.id, frames):
            worker.kill()
            self.batcher.batch_ended(len(jobs))
            self.batcher.requeue(jobs)
            return
        worker.batches.append(InFlightBatch(batch_id, jobs, time.perf_counter() - now))
        if len(worker.batches) == 1:
            worker.time_head_batch(self.timeouts.response, self._batch_timed_out)

    def _batch_timed_out(self, worker: WorkerProcess) -> None:
        worker.response_timer = None
        log.error("%s worker %s exceeded response_timeout; killing it", self.label, worker.id)
        worker.timed_out = True
        worker.kill()

    def _on_part(self, worker: WorkerProcess, header: dict[str, Any], frames: list[bytes]) -> None:
        """One part of the answer to a request of the batch the worker works on."""
        if not worker.batches or worker.batches[0].batch_id != header["id"]:
            log.error("%s worker %s sent a part for an unknown batch", self.label, worker.id)
            return
        job = worker.batches[0].jobs[header["i"]]
        if job.request.request_id != header["rid"]:
            log.error("%s worker %s sent a part for an unknown request", self.label, worker.id)
            return
        # A part shows the worker is alive and working: response_timeout starts again.
        worker.stop_timing()
        worker.time_head_batch(self.timeouts.response, self._batch_timed_out)
        if job.control is None:
            job.control = WorkerLink(self._dispatcher, worker.id, header["rid"])
        take_part(job, wire.decode_part(header, frames), job.control, self._stream_limits)

    def _on_result(
        self, worker: WorkerProcess, header: dict[str, Any], frames: list[bytes]
    ) -> None:
        if not worker.batches or worker.batches[0].batch_id != header["id"]:
            log.error("%s worker %s answered an unknown batch", self.label, worker.id)
            return
        started = time.perf_counter()
        batch = worker.batches.popleft()
        self.batcher.batch_ended(len(batch.jobs), header["t"][1] / 1000)
        worker.stop_timing()
        if worker.batches:
            worker.time_head_batch(self.timeouts.response, self._batch_timed_out)
        self._metrics.worker_timings(*header["t"])
        self.statistics.batch_ran(len(batch.jobs), *header["t"])
        if header["m"]:
            self._metrics.apply_worker_metrics(header["m"])
        outcome = wire.decode_result(header, frames)
        if isinstance(outcome, wire.BatchError):
            for job in batch.jobs:
                job.fail(
                    ServingError(outcome.message, status=outcome.code, type_name=outcome.error_type)
                )
        else:
            limit = self._max_response_size
            for job, response in zip(batch.jobs, outcome, strict=True):
                if response is not None and response.size() > limit:
                    job.fail(
                        ResponseTooLargeException(
                            f"The response of {response.size()} bytes exceeds "
                            f"max_response_size ({limit} bytes)"
                        )
                    )
                else:
                    job.resolve(response)
        _unlink(batch.jobs)
        overhead_s = batch.send_overhead_s + time.perf_counter() - started
        self._metrics.batch_overhead(overhead_s * 1000)
        self._release(worker)

    def _on_exit(self, worker: WorkerProcess, code: int | None, reason: str | None) -> None:
        self._dispatcher.detach(worker.id)
        self.workers.pop(worker.id, None)
        self.batcher.worker_unavailable(worker)
        reason = reason or exit_reason(code)
        worker.stop_timing()
        if worker.batches:
            error: ServingError = (
                WorkerTimeoutException(
                    f"Worker timed out: no answer within response_timeout "
                    f"({self.timeouts.response:g} s); the worker was restarted"
                )
                if worker.timed_out
                else WorkerDiedException(f"Worker died ({reason}) while processing the request")
            )
            for batch in worker.batches:
                self.batcher.batch_ended(len(batch.jobs))
                for job in batch.jobs:
                    job.fail(error)
                _unlink(batch.jobs)
            worker.batches.clear()
        if not worker.ready.done():
            not_loaded = load_error(self.last_failure, reason)
            worker.ready.set_exception(not_loaded)
            if self.ready_count() == 0:
                self.batcher.fail_pending(
                    ServiceUnavailableException(
                        f"No worker of {self.label} could load: {not_loaded.message}"
                    )
                )
        if not (worker.retiring or self._closed):
            self.worker_failures += 1
            self._restarts.failed(worker.id, reason)

    def _restart_workers(self) -> None:
        if not self._closed:
            self._reconcile()


class WorkerLink:
    """A streaming job's way back to the worker holding it (``StreamControl``): credit for
    more parts, and cancellation. Silent once the batch is over (``close``)."""

    __slots__ = ("_dispatcher", "_request_id", "_worker_id", "open")

    def __init__(self, dispatcher: Dispatcher, worker_id: str, request_id: str) -> None:
        self._dispatcher = dispatcher
        self._worker_id = worker_id
        self._request_id = request_id
        self.open = True

    def grant(self, count: int) -> None:
        """The client took ``count`` parts: the worker may send that many more."""
        if self.open:
            self._dispatcher.send(self._worker_id, wire.encode_credit(self._request_id, count))

    def cancel(self) -> None:
        """Nobody wants the rest of the answer."""
        if self.open:
            self.open = False
            self._dispatcher.send(self._worker_id, wire.encode_cancel(self._request_id))


def _unlink(jobs: list[InferenceJob]) -> None:
    """The worker is done with these jobs: their links fall silent."""
    for job in jobs:
        if isinstance(job.control, WorkerLink):
            job.control.open = False
