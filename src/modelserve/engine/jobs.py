"""The unit the batcher queues: one accepted inference request awaiting its response."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from modelserve.wire import WireRequest


@dataclass(slots=True)
class InferenceJob:
    """A request plus the future its HTTP handler awaits."""

    request: WireRequest
    future: asyncio.Future
    enqueued_at: float
    # Whether the URL named the version (TorchServe labels metrics "default" otherwise).
    explicit_version: bool = False

    def resolve(self, value: object) -> None:
        """Deliver a response unless the client already went away."""
        if not self.future.done():
            self.future.set_result(value)

    def fail(self, error: BaseException) -> None:
        """Deliver an error unless the client already went away."""
        if not self.future.done():
            self.future.set_exception(error)
