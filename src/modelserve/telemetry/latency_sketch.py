"""Latency distributions that merge: counts in log-spaced buckets, quantiles within 1 %.

The dashboard keeps one distribution per model version and time step (a second, a minute, an
hour). Percentiles cannot be averaged, but bucket counts can be added, so a minute's p99 comes
from the sum of its seconds' buckets. Bucket ``i`` holds the values in
``(GAMMA**(i-1), GAMMA**i]``; answering a bucket's value as ``2 * GAMMA**i / (GAMMA + 1)`` is
within ``(GAMMA - 1) / (GAMMA + 1)`` (1 %) of every value in it, whatever the scale (the
scheme of DDSketch). Prometheus's fixed buckets (0.5 ms, 1 ms, 2.5 ms …) would put a 0.6 ms
and a 0.9 ms p99 in the same bucket.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

GAMMA = 1.02
_LOG_GAMMA = math.log(GAMMA)
# Shorter durations (a clock that did not move) count as this: log(0) is undefined.
SMALLEST_S = 1e-9


class LatencySketch:
    """Counts of durations (seconds) by log-spaced bucket."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0

    def add_all(self, seconds: Sequence[float]) -> None:
        """Count each duration."""
        counts = self.counts
        for value in seconds:
            index = math.ceil(math.log(max(value, SMALLEST_S)) / _LOG_GAMMA)
            counts[index] = counts.get(index, 0) + 1
        self.total += len(seconds)

    def merge(self, other: LatencySketch) -> None:
        """Add ``other``'s counts to these."""
        counts = self.counts
        for index, count in other.counts.items():
            counts[index] = counts.get(index, 0) + count
        self.total += other.total

    def quantiles(self, fractions: Sequence[float]) -> list[float | None]:
        """The durations below which ``fractions`` (ascending, in [0, 1]) of the counted ones
        lie, nearest rank; None for each when nothing was counted."""
        if not self.total:
            return [None] * len(fractions)
        answers: list[float | None] = []
        ordered = iter(sorted(self.counts.items()))
        index, seen = next(ordered)
        seen_total = seen
        for fraction in fractions:
            rank = max(1, math.ceil(fraction * self.total))
            while seen_total < rank:
                index, seen = next(ordered)
                seen_total += seen
            answers.append(2 * GAMMA**index / (GAMMA + 1))
        return answers
