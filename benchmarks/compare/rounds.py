"""Rounds of the same runs, and their medians: what the report shows of a noisy machine.

Every wrk run is kept with its round; the report reads one run per server, deployment and
concurrency whose numbers are each the median over the rounds (the req/s of every round kept
beside them), and whose latency distribution is the one of its median-throughput round.
"""

from __future__ import annotations

import statistics
from typing import Any

Run = dict[str, Any]

# Numbers where the median of the rounds stands for the run.
MEDIAN_FIELDS = (
    "requests_per_s",
    "p50_ms",
    "p75_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "cpu_s_per_1k",
    "rss_mib",
)
# Counts that add up: an error in any round is reported.
SUMMED_FIELDS = ("requests", "non_2xx", "errors")
IDENTITY = ("server", "model", "workers", "batch_size", "max_batch_delay_ms", "concurrency")


def median_of_rounds(runs: list[Run]) -> list[Run]:
    """One run per server, deployment and concurrency, in the order they first ran."""
    grouped: dict[tuple, list[Run]] = {}
    for run in runs:
        grouped.setdefault(tuple(run[key] for key in IDENTITY), []).append(run)
    return [median_run(rounds) for rounds in grouped.values()]


def median_run(rounds: list[Run]) -> Run:
    """The rounds of one run folded into one (see the module's docstring)."""
    by_throughput = sorted(rounds, key=lambda run: run["requests_per_s"])
    merged = {key: value for key, value in by_throughput[(len(rounds) - 1) // 2].items()}
    for field in MEDIAN_FIELDS:
        values = [run[field] for run in rounds if run.get(field) is not None]
        merged[field] = statistics.median(values) if values else None
    for field in SUMMED_FIELDS:
        merged[field] = sum(run[field] for run in rounds)
    merged["rounds"] = len(rounds)
    merged["requests_per_s_rounds"] = [run["requests_per_s"] for run in rounds]
    merged.pop("round", None)
    return merged
