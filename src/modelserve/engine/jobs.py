"""The unit the batcher queues: one accepted inference request awaiting its response."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from modelserve.wire import WireRequest, WireResponse

if TYPE_CHECKING:
    from modelserve.engine.streams import StreamControl


class PartsSink(Protocol):
    """Where a job's parts go once the first has come (``engine.streams``)."""

    def put(self, part: WireResponse) -> None:
        """One more part of the answer."""

    def finish(self, final: WireResponse | None) -> None:
        """The worker ended the answer, with a last part or without."""

    def fail(self, error: BaseException) -> None:
        """The answer failed."""


@dataclass(slots=True)
class InferenceJob:
    """A request plus the future its HTTP handler awaits."""

    request: WireRequest
    future: asyncio.Future
    enqueued_at: float
    # Whether the URL named the version (TorchServe labels metrics "default" otherwise).
    explicit_version: bool = False
    # The client takes the answer's parts as they come (chunked HTTP, SSE, gRPC streams):
    # the first part resolves the future with a ResponseStream (engine.streams).
    streaming: bool = False
    # Where parts go, from the first on; None while none came (then resolve and fail act on
    # the future, as for every answer that comes whole).
    parts: PartsSink | None = None
    # The way to the worker that holds a streaming job (set when it is sent to one).
    control: StreamControl | None = None

    def resolve(self, value: WireResponse | None) -> None:
        """Deliver the answer (or, after parts, its end) unless the client already went
        away."""
        if self.parts is not None:
            self.parts.finish(value)
        elif not self.future.done():
            self.future.set_result(value)

    def fail(self, error: BaseException) -> None:
        """Deliver an error unless the client already went away."""
        if self.parts is not None:
            self.parts.fail(error)
        elif not self.future.done():
            self.future.set_exception(error)

    def cancel(self) -> None:
        """The client went away before the first part: a worker holding the job drops it (a
        queued one is skipped, its future being done)."""
        if self.control is not None:
            self.control.cancel()
