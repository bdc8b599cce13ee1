"""wrk runs for the comparison: the usual report plus a latency distribution."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from loadtest import BENCH_DIR
from loadtest.wrk import WrkError, WrkResult, parse_report, wrk_output

CDF_SCRIPT = BENCH_DIR / "latency_cdf.lua"
# Printed by latency_cdf.lua's done(): "cdf <percent> <microseconds>".
CDF_LINE = re.compile(r"^cdf ([\d.]+) (\d+)$", re.MULTILINE)
WARM_UP_TIMEOUT_S = 60
# wrk's default 2 s would drop the slowest answers (ResNet at c=64 on 2 cores) from the
# latencies; anything slower than this is an error.
REQUEST_TIMEOUT_S = 30


@dataclass(frozen=True)
class LoadResult:
    """wrk's report and the latency at each percentile, as (percent, ms) pairs."""

    wrk: WrkResult
    cdf: list[tuple[float, float]]

    def as_dict(self) -> dict[str, Any]:
        """wrk's numbers with the distribution under ``cdf``."""
        return {**self.wrk.as_dict(), "cdf": [list(point) for point in self.cdf]}


def parse_cdf(text: str) -> list[tuple[float, float]]:
    """The percentile table latency_cdf.lua appends to wrk's report."""
    points = [(float(percent), int(us) / 1000) for percent, us in CDF_LINE.findall(text)]
    if not points:
        raise WrkError(f"no latency distribution in wrk's output:\n{text}")
    return points


def load(
    url: str, body_file: Path, content_type: str, concurrency: int, duration_s: int
) -> LoadResult:
    """POST ``body_file`` to ``url`` over ``concurrency`` keep-alive connections."""
    script_args = (str(body_file), content_type)
    text = wrk_output(url, concurrency, duration_s, CDF_SCRIPT, script_args, REQUEST_TIMEOUT_S)
    report = parse_report(text)
    if report.requests == 0:
        raise WrkError(f"no request completed in {duration_s} s; try a longer --duration")
    return LoadResult(report, parse_cdf(text))


def warm_up(url: str, body: bytes, content_type: str, count: int) -> None:
    """Send ``count`` requests one after another so lazy first-call costs stay out of wrk's
    numbers (TorchScript profiling runs, allocator growth, JIT warm-up in the JVM)."""
    with httpx.Client(timeout=WARM_UP_TIMEOUT_S) as client:
        for _ in range(count):
            response = client.post(url, content=body, headers={"Content-Type": content_type})
            if response.status_code != 200:
                raise WrkError(f"warm-up {url}: HTTP {response.status_code} {response.text[:200]}")
