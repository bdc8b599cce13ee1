"""When to restart a model version's crashed workers: TorchServe's back-off, and giving up."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger("modelserve.workers")

# TorchServe's restart back-off table, in seconds, indexed by consecutive failures.
BACK_OFF_S = (0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597)


class RestartBackoff:
    """Schedules ``restart`` after worker failures, one step up ``BACK_OFF_S`` per round of
    failures; stops restarting once workers have failed for longer than ``max_retry_s``
    (TorchServe's maxRetryTimeoutInSec)."""

    def __init__(self, label: str, max_retry_s: float, restart: Callable[[], None]) -> None:
        self._label = label
        self._max_retry_s = max_retry_s
        self._restart = restart
        self._consecutive_failures = 0
        self._failing_since: float | None = None
        self._pending: asyncio.TimerHandle | None = None

    def loaded(self) -> None:
        """A worker loaded: the failures are over."""
        self._consecutive_failures = 0
        self._failing_since = None

    def rescaled(self) -> None:
        """A new worker count was asked for: the next failure restarts at once."""
        self._consecutive_failures = 0

    def cancel(self) -> None:
        """Drop a pending restart (the version is closing)."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def failed(self, worker_id: str, reason: str) -> None:
        """A worker that should be running ended (``reason``): schedule the restart."""
        now = time.monotonic()
        self._failing_since = self._failing_since or now
        if now - self._failing_since > self._max_retry_s:
            log.error(
                "%s workers have failed for over %g s; not restarting them (last: %s)",
                self._label,
                self._max_retry_s,
                reason,
            )
            return
        if self._pending is not None:
            # Workers failing together are restarted together: one step up the back-off
            # table per round, not one per worker (N crashes would otherwise mean minutes).
            log.warning(
                "%s worker %s %s; restarting with the others", self._label, worker_id, reason
            )
            return
        self._consecutive_failures += 1
        delay = BACK_OFF_S[min(self._consecutive_failures, len(BACK_OFF_S) - 1)]
        log.warning("%s worker %s %s; restarting in %d s", self._label, worker_id, reason, delay)
        self._pending = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._pending = None
        self._restart()
