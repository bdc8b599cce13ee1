"""Restart back-off: workers that fail together climb the back-off table one step per round."""

from __future__ import annotations

import re

import httpx
from support import RunningServer, wait_until


def test_workers_failing_together_take_one_back_off_step(server: RunningServer) -> None:
    response = httpx.post(
        server.management + "/models",
        params={"url": "broken.mar", "initial_workers": 4, "synchronous": "false"},
    )
    assert response.status_code == 202, response.text
    try:

        def delays() -> list[int]:
            found = re.findall(r"broken:1\.0 worker \S+ .*; restarting in (\d+) s", server.log())
            return [int(delay) for delay in found]

        # Two rounds of four failed loads: TorchServe's table starts 0, 1, 1, 2, 3, 5 ...
        wait_until(lambda: len(delays()) >= 2, timeout=60)
        assert delays()[:2] == [1, 1], server.log()
        assert "restarting with the others" in server.log()
    finally:
        httpx.delete(server.management + "/models/broken", timeout=60)
