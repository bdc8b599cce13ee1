"""The spare worker: one worker process started before it is needed, waiting for a model.

A new worker costs an interpreter start and its framework imports (torch alone takes most of
a second) before its model even starts to load. With ``spare_worker`` on, one process has done
that work and waits (``python -m modelserve.worker --spare``, worker/spare.py). When a
registration or a scale call starts a worker whose environment is the spare's, and the spare is
ready, the spare gets the worker's spec on its stdin and becomes that worker; another spare is
started in the background to take its place. Restarts of crashed workers spawn as before: a
worker crashing in a loop must not keep new spares importing.

A worker that needs another environment (a model's own pip packages on its PYTHONPATH, another
thread count) is spawned as before: what the spare imported was imported under its own
environment, and must not leak into a worker that asked for another. There is at most one
spare, since every worker runs the server's own interpreter. It dies with the server: stopped
at shutdown, and it exits by itself when its stdin closes (the frontend is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from modelserve import wire
from modelserve.engine.worker_process import start_worker_process

log = logging.getLogger("modelserve.workers")


class SpareWorker:
    """Keeps one spare worker process ready to be handed a model."""

    def __init__(self, directory: Path, environment: dict[str, str]) -> None:
        # The spare's working directory until it is handed a model (it then moves to the
        # model's); nothing is written there.
        self._directory = directory
        self._environment = environment
        self._process: asyncio.subprocess.Process | None = None
        # Whether the spare said its imports are done; only then is it handed a model (one
        # still importing would make a worker that needs none of it wait for them).
        self._ready = False
        # Starting the process and reading its output until it says it is ready; then waiting
        # for its exit, so a spare that dies is replaced.
        self._watcher: asyncio.Task | None = None
        self._closed = False

    def start(self) -> None:
        """Start a spare in the background, unless one is there already."""
        if self._closed or self._watcher is not None:
            return
        self._watcher = asyncio.create_task(self._keep(), name="spare-worker")

    async def take(
        self, environment: dict[str, str], spec_path: Path
    ) -> asyncio.subprocess.Process | None:
        """The spare's process, now told to serve the worker spec at ``spec_path``; None when
        no spare is ready or the worker needs another environment than the spare's."""
        process, watcher = self._process, self._watcher
        if not self._ready or process is None or process.returncode is not None:
            return None
        if environment != self._environment:
            log.debug("spare worker not used: the worker needs another environment")
            return None
        assert watcher is not None and process.stdin is not None
        self._process = self._watcher = None
        self._ready = False
        # The watcher waits for the spare's exit; the worker's pool does from now on.
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        self.start()
        if process.returncode is not None:  # died just now: the caller spawns a worker
            return None
        process.stdin.write(f"{spec_path}\n".encode())
        process.stdin.close()  # flushed first; the spare reads one line
        return process

    async def close(self) -> None:
        """Stop the spare (a model's worker that was one is its pool's to stop)."""
        self._closed = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def _keep(self) -> None:
        """Start a spare, wait until it is ready, then watch it: one that dies after it was
        ready is replaced; one that could not get ready is reported and not retried, so a
        broken environment does not spawn processes in a loop."""
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            process = await start_worker_process(
                [wire.SPARE_FLAG], self._directory, self._environment, stdin=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            log.error("spare worker could not start: %s; workers are spawned as needed", exc)
            return
        self._process = process
        assert process.stdout is not None
        while not self._ready:
            try:
                line = await process.stdout.readline()
            except ValueError:  # a line over the reader's limit: dropped, the rest is read
                continue
            if not line:
                break
            text = line.decode(errors="replace").rstrip()
            self._ready = text.startswith(wire.SPARE_READY)
            if self._ready:
                log.info(
                    "spare worker (pid %d) ready%s", process.pid, text[len(wire.SPARE_READY) :]
                )
            else:
                log.info("spare worker (pid %d): %s", process.pid, text)
        code = await process.wait()
        ready, self._ready = self._ready, False
        self._process = self._watcher = None
        if not ready:
            log.error(
                "spare worker (pid %d) exited with %s before it was ready; workers are spawned "
                "as needed",
                process.pid,
                code,
            )
            return
        log.warning("spare worker (pid %d) exited with %s; starting another", process.pid, code)
        self.start()
