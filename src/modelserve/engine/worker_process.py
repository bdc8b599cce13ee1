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
from datetime import datetime
from pathlib import Path

import psutil

from modelserve.engine.jobs import InferenceJob
from modelserve.wire import WorkerSpec

model_log = logging.getLogger("modelserve.model_log")

STARTING = "STARTING"
READY = "READY"
STOPPING = "STOPPING"
STOPPED = "STOPPED"


@dataclasses.dataclass(slots=True)
class InFlightBatch:
    """The batch a worker holds, so its requests can be failed if the worker dies."""

    batch_id: int
    jobs: list[InferenceJob]
    timer: asyncio.TimerHandle


class WorkerProcess:
    """A spawned ``python -m modelserve.worker`` and what it is doing."""

    def __init__(
        self, spec: WorkerSpec, spec_dir: Path, log_tag: str, compute_threads: int
    ) -> None:
        self.spec = spec
        self.id = spec.worker_id
        self.state = STARTING
        self.started_at = datetime.now()
        self.pid: int | None = None
        self.batch: InFlightBatch | None = None
        self.retiring = False
        self.timed_out = False
        self.load_ms: float | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._spec_path = spec_dir / f"{self.id}.json"
        self._log_tag = log_tag
        self._compute_threads = compute_threads
        self._process: asyncio.subprocess.Process | None = None

    async def spawn(self) -> None:
        """Start the process (a fresh interpreter, never a fork of the frontend)."""
        self._spec_path.write_text(json.dumps(dataclasses.asdict(self.spec)))
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "modelserve.worker",
            str(self._spec_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=self.spec.model_dir,
            env=self._environment(),
        )
        self.pid = self._process.pid

    def _environment(self) -> dict[str, str]:
        # Framework thread pools default to one thread per core in every worker, so N workers
        # plus the frontend oversubscribe the CPU and the tail latency explodes. A thread
        # count the user set in the environment wins.
        threads = str(self._compute_threads)
        return {
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            **os.environ,
            "PYTHONUNBUFFERED": "1",
        }

    async def wait(self) -> int:
        """Forward the worker's output to the model log until it exits; its exit code."""
        assert self._process is not None and self._process.stdout is not None
        async for line in self._process.stdout:
            model_log.info(
                "[%s %s] %s", self._log_tag, self.id, line.decode(errors="replace").rstrip()
            )
        code = await self._process.wait()
        self.state = STOPPED
        with contextlib.suppress(FileNotFoundError):
            self._spec_path.unlink()
        return code

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
