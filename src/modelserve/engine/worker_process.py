"""One worker process as the frontend sees it: spawn, state, output, exit."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from modelserve.engine.jobs import InferenceJob
from modelserve.wire import WorkerSpec

if TYPE_CHECKING:
    from modelserve.engine.spare_worker import SpareWorker

model_log = logging.getLogger("modelserve.model_log")
# Output is read in chunks this big; a line longer than MAX_LINE_BYTES is logged in pieces.
OUTPUT_CHUNK_BYTES = 64 * 1024
MAX_LINE_BYTES = 64 * 1024

STARTING = "STARTING"
READY = "READY"
STOPPING = "STOPPING"
STOPPED = "STOPPED"


@dataclasses.dataclass(slots=True)
class InFlightBatch:
    """A batch a worker holds, so its requests can be failed if the worker dies."""

    batch_id: int
    jobs: list[InferenceJob]
    # Frontend time spent encoding and sending it (part of WorkerThreadTime).
    send_overhead_s: float


class WorkerProcess:
    """A spawned ``python -m modelserve.worker`` and what it is doing."""

    def __init__(self, spec: WorkerSpec, spec_dir: Path, compute_threads: int) -> None:
        self.spec = spec
        self.id = spec.worker_id
        self.state = STARTING
        self.started_at = datetime.now()
        self.pid: int | None = None
        # Batches sent and not yet answered, oldest first (the worker answers in order).
        self.batches: deque[InFlightBatch] = deque()
        # response_timeout of the batch the worker is working on (the oldest): a batch waiting
        # behind it in the worker's socket is not yet being worked on.
        self.response_timer: asyncio.TimerHandle | None = None
        self.retiring = False
        self.timed_out = False
        self.load_ms: float | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._spec_path = spec_dir / f"{self.id}.json"
        self._compute_threads = compute_threads
        self._process: asyncio.subprocess.Process | None = None
        # Whether the process was the spare worker, started before the model was registered.
        self.from_spare = False

    async def spawn(self, spare: SpareWorker | None = None) -> None:
        """Start the process (a fresh interpreter, never a fork of the frontend), or hand the
        model to ``spare``'s waiting process when it was started with the same environment."""
        self._spec_path.write_text(json.dumps(dataclasses.asdict(self.spec)))
        environment = worker_environment(self._compute_threads, self.spec.python_path)
        process = await spare.take(environment, self._spec_path) if spare else None
        self.from_spare = process is not None
        if process is None:
            process = await start_worker_process(
                [str(self._spec_path)], self.spec.model_dir, environment
            )
        self._process = process
        self.pid = process.pid

    async def wait(self) -> int:
        """Forward the worker's output to the model log until it exits; its exit code."""
        assert self._process is not None and self._process.stdout is not None
        fields = {
            "model_name": self.spec.model_name,
            "model_version": self.spec.model_version,
            "worker_id": self.id,
        }
        async for line in output_lines(self._process.stdout):
            model_log.info(line.decode(errors="replace").rstrip(), extra=fields)
        code = await self._process.wait()
        self.state = STOPPED
        with contextlib.suppress(FileNotFoundError):
            self._spec_path.unlink()
        return code

    def time_head_batch(self, timeout_s: float, timed_out: Callable[[WorkerProcess], None]) -> None:
        """Start response_timeout for the batch the worker works on now (the oldest)."""
        self.response_timer = asyncio.get_running_loop().call_later(timeout_s, timed_out, self)

    def stop_timing(self) -> None:
        """Cancel the response_timeout running for the head batch, if any."""
        if self.response_timer is not None:
            self.response_timer.cancel()
            self.response_timer = None

    def kill(self) -> None:
        """SIGKILL the process (it may already be gone)."""
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()

    def memory_usage(self) -> int:
        """Resident memory in bytes, 0 when the process is gone."""
        if self.pid is None:
            return 0
        try:
            return psutil.Process(self.pid).memory_info().rss
        except psutil.Error:
            return 0

    def describe(self) -> dict:
        """The worker entry of TorchServe's describe output."""
        return {
            "id": self.id,
            "startTime": self.started_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "status": "READY" if self.state == READY else "UNLOADING",
            "memoryUsage": self.memory_usage(),
            "pid": self.pid if self.pid is not None else -1,
            "gpu": self.spec.gpu_id is not None,
            "gpuUsage": "N/A",
        }

    def since_start_s(self) -> float:
        """Seconds since the process was started."""
        return time.time() - self.started_at.timestamp()


def worker_environment(threads: int, python_path: list[str]) -> dict[str, str]:
    """The environment of a worker process: the frontend's, with ``threads`` compute threads
    and ``python_path`` first on its PYTHONPATH."""
    # Framework thread pools default to one thread per core in every worker, so N workers
    # plus the frontend oversubscribe the CPU and the tail latency explodes. A thread
    # count the user set in the environment wins.
    environment = {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        **os.environ,
        "PYTHONUNBUFFERED": "1",
    }
    if python_path:
        inherited = [environment["PYTHONPATH"]] if environment.get("PYTHONPATH") else []
        environment["PYTHONPATH"] = os.pathsep.join([*python_path, *inherited])
    return environment


async def start_worker_process(
    arguments: list[str], cwd: str | Path, environment: dict[str, str], *, stdin: int | None = None
) -> asyncio.subprocess.Process:
    """Spawn ``python -m modelserve.worker ARGUMENTS``, its output piped to the frontend."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "modelserve.worker",
        *arguments,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=cwd,
        env=environment,
        # Out of the terminal's process group: Ctrl-C stops the frontend, which stops its
        # workers in order, instead of killing them mid-batch. A worker whose frontend is
        # gone exits by itself (worker/main.py).
        start_new_session=True,
    )


async def output_lines(stream: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """A process's output line by line, without the newline; an overlong line comes in pieces.

    StreamReader's own line iteration raises on a line over its limit, which would stop the
    forwarding of a worker that prints, say, a large tensor.
    """
    pending = b""
    while chunk := await stream.read(OUTPUT_CHUNK_BYTES):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            for start in range(0, len(line) or 1, MAX_LINE_BYTES):
                yield line[start : start + MAX_LINE_BYTES]
        while len(pending) > MAX_LINE_BYTES:
            yield pending[:MAX_LINE_BYTES]
            pending = pending[MAX_LINE_BYTES:]
    if pending:
        yield pending
