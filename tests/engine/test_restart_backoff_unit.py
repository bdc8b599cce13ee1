"""Restart back-off in-process: one step up TorchServe's table per round of failures, a reset
once a worker loads, and giving up after maxRetryTimeoutInSec (the real-process round is
tests/test_restart_backoff.py). The table's first steps are 1, 1, 2 s, so a test waits ~2 s."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from modelserve.engine.restart_backoff import RestartBackoff

FIRE_LIMIT_S = 10


class Restarts:
    """The restart callback: counts, and lets a test await the next one."""

    def __init__(self) -> None:
        self.count = 0
        self._fired = asyncio.Event()

    def __call__(self) -> None:
        self.count += 1
        self._fired.set()

    async def next(self) -> None:
        async with asyncio.timeout(FIRE_LIMIT_S):
            await self._fired.wait()
        self._fired.clear()


def _delays(caplog: pytest.LogCaptureFixture) -> list[int]:
    return [int(delay) for delay in re.findall(r"restarting in (\d+) s", caplog.text)]


def test_one_step_per_round_and_a_reset_when_a_worker_loads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> int:
        restarts = Restarts()
        backoff = RestartBackoff("m:1.0", max_retry_s=300, restart=restarts)
        for round_ in range(3):
            backoff.failed(f"90{round_}0", "exited with code 1")
            backoff.failed(f"90{round_}1", "exited with code 1")  # same round: no new step
            if round_ < 2:
                await restarts.next()
        backoff.cancel()
        backoff.loaded()
        backoff.failed("9100", "exited with code 1")  # after a load: from the start again
        backoff.cancel()
        return restarts.count

    with caplog.at_level(logging.WARNING, logger="modelserve.workers"):
        assert asyncio.run(scenario()) == 2
    assert _delays(caplog) == [1, 1, 2, 1]
    assert caplog.text.count("restarting with the others") == 3


def test_workers_failing_longer_than_max_retry_are_not_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> int:
        restarts = Restarts()
        backoff = RestartBackoff("m:1.0", max_retry_s=0.5, restart=restarts)
        backoff.failed("9000", "exited with code 1")
        await restarts.next()  # one second later: failing for longer than 0.5 s
        backoff.failed("9001", "exited with code 1")
        return restarts.count

    with caplog.at_level(logging.WARNING, logger="modelserve.workers"):
        assert asyncio.run(scenario()) == 1
    assert "failed for over 0.5 s; not restarting them" in caplog.text
    assert _delays(caplog) == [1]
