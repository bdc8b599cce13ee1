"""The server's limit on inference requests in flight (``max_concurrency`` and
``max_connections``, grps's settings of those names).

At most ``max_concurrency`` requests are in the models at once (queued for a worker or in one);
the others wait here, in arrival order, for one of them to finish. A request that would make
more than ``max_connections`` in flight, running and waiting together, is refused at once with
503: the queue in front of the models stays bounded. 0 means no limit.
"""

from __future__ import annotations

import asyncio

from modelserve.engine.errors import ServiceUnavailableException


class InferenceLimit:
    """The slots of one server; ``waiting`` and ``admitted`` are read by the metrics."""

    def __init__(self, max_concurrency: int, max_connections: int) -> None:
        self.max_concurrency = max_concurrency
        self.max_connections = max_connections
        self._slots = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        # Requests in flight (running and waiting), and those waiting for a slot.
        self.admitted = 0
        self.waiting = 0

    @classmethod
    def of(cls, max_concurrency: int, max_connections: int) -> InferenceLimit | None:
        """The limit the settings ask for; None when they ask for none."""
        if not max_concurrency and not max_connections:
            return None
        return cls(max_concurrency, max_connections)

    async def acquire(self) -> None:
        """Take a slot, to ``release`` when the request ends: wait for one, or 503 when too
        many are in flight."""
        if self.max_connections and self.admitted >= self.max_connections:
            raise ServiceUnavailableException(
                f"the server has max_connections={self.max_connections} inference requests in "
                "flight; retry later"
            )
        self.admitted += 1
        if self._slots is None:
            return
        self.waiting += 1
        try:
            await self._slots.acquire()
        except BaseException:  # cancelled while waiting: it never held a slot
            self.admitted -= 1
            raise
        finally:
            self.waiting -= 1

    def release(self) -> None:
        """Give back the slot ``acquire`` took."""
        if self._slots is not None:
            self._slots.release()
        self.admitted -= 1
