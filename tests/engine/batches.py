"""What the in-process batcher tests share: a recorder of the batches a batcher hands out,
and a way to run a scenario on a fresh event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from modelserve.engine.jobs import InferenceJob

T = TypeVar("T")
# Generous bounds for what must happen "soon": the loop turns in microseconds.
SOON_S = 5.0


class Sent:
    """What the batcher handed out: (worker, request ids) in order, awaitable; the workers
    are plain names."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[str]]] = []
        self._jobs: list[list[InferenceJob]] = []
        self._changed = asyncio.Event()

    def __call__(self, worker: str, jobs: list[InferenceJob]) -> None:
        self.batches.append((worker, [job.request.request_id for job in jobs]))
        self._jobs.append(jobs)
        self._changed.set()

    async def wait_for(self, count: int) -> list[tuple[str, list[str]]]:
        """Until ``count`` batches were sent (fails after SOON_S)."""
        async with asyncio.timeout(SOON_S):
            while len(self.batches) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.batches

    def answer(self, index: int) -> None:
        """The worker answers batch ``index``."""
        for job in self._jobs[index]:
            job.resolve("done")


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    """``scenario`` run to its end on a new event loop."""
    return asyncio.run(scenario())
