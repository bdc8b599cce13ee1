"""What a served model did in a load run, read from the server itself: the batch sizes its
handler got (the v2 statistics extension) and the CPU time its processes spent per request;
and the medians over rounds that reports give."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from typing import Any

import httpx

from loadtest import server as serving

# The server finishes what the load tool left in flight before a run's batches are read.
SETTLE_POLL_S = 0.1
SETTLE_POLLS = 50


def executed_batches(server: serving.Server, model: str) -> Counter[int]:
    """How many times ``model``'s handler got each batch size so far, from the statistics
    extension."""
    response = httpx.get(f"{server.inference}/v2/models/{model}/stats", timeout=10)
    if response.status_code != 200:
        raise server.fail(f"stats: HTTP {response.status_code} {response.text[:500]}")
    (entry,) = response.json()["model_stats"]
    return Counter(
        {batch["batch_size"]: batch["compute_infer"]["count"] for batch in entry["batch_stats"]}
    )


def settled_batches(
    server: serving.Server, model: str, quiet_s: float = SETTLE_POLL_S
) -> Counter[int]:
    """The batch counts once the requests the load tool left in flight are answered: once
    they have not changed for ``quiet_s`` seconds, which must exceed one batch's time (else a
    batch still computing is taken for the end, and its CPU time lands in the next run)."""
    counts = executed_batches(server, model)
    quiet_since = time.monotonic()
    for _ in range(SETTLE_POLLS + int(quiet_s / SETTLE_POLL_S)):
        time.sleep(SETTLE_POLL_S)
        latest = executed_batches(server, model)
        if latest != counts:
            counts, quiet_since = latest, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            break
    return counts


def batch_summary(sizes: Counter[int]) -> dict[str, Any]:
    """Executions per batch size, their number and the mean batch."""
    executions = sum(sizes.values())
    requests = sum(size * count for size, count in sizes.items())
    return {
        "batches": {str(size): count for size, count in sorted(sizes.items())},
        "executions": executions,
        "mean_batch": requests / executions if executions else 0.0,
    }


def cpu_per_request(
    before: tuple[float, float] | None, after: tuple[float, float] | None, executed: Counter[int]
) -> dict[str, float | None]:
    """The server's CPU time per request answered in a run, in us: the frontend's and its
    workers' (None where it cannot be read)."""
    requests = sum(size * count for size, count in executed.items())
    if before is None or after is None or not requests:
        return {"frontend_cpu_us": None, "worker_cpu_us": None}
    return {
        "frontend_cpu_us": (after[0] - before[0]) * 1e6 / requests,
        "worker_cpu_us": (after[1] - before[1]) * 1e6 / requests,
    }


def spread(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    """Medians of ``keys`` over rounds (None when a round has none), and the min and max of
    req/s."""
    rates = [row["requests_per_s"] for row in rows]

    def median(key: str) -> float | None:
        values = [row[key] for row in rows]
        return None if None in values else statistics.median(values)

    return {
        "rounds": len(rows),
        **{key: median(key) for key in keys},
        "requests_per_s_min": min(rates),
        "requests_per_s_max": max(rates),
    }
