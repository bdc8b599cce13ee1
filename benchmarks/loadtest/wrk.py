"""Running wrk and reading its report."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MAX_THREADS = 2
# wrk overshoots its duration a little while it closes connections; allow for a stall too.
EXIT_GRACE_S = 30
UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
PERCENTILE_LINE = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
# wrk's "Thread Stats" row: Latency  <avg>  <stdev>  <max>  <+/- stdev>.
LATENCY_MAX = re.compile(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\s", re.MULTILINE)
REQUESTS_PER_S = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
REQUEST_COUNT = re.compile(r"^\s+(\d+) requests in ", re.MULTILINE)
NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
SOCKET_ERROR_KINDS = ("connect", "read", "write", "timeout")


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed something this parser does not understand."""


@dataclass(frozen=True)
class WrkResult:
    """Throughput, latency percentiles (ms) and failures of one wrk run."""

    requests: int
    requests_per_s: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float = 0.0
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        """Every request that did not end in a 2xx/3xx response."""
        return self.non_2xx + sum(self.socket_errors.values())

    def as_dict(self) -> dict[str, Any]:
        """The result as plain JSON-ready data, with the error total."""
        return {**asdict(self), "errors": self.errors}


def wrk_binary() -> str:
    """The path of ``wrk``; raises WrkError when it is not installed."""
    path = shutil.which("wrk")
    if path is None:
        raise WrkError("wrk is not on PATH (Debian/Ubuntu: apt-get install wrk)")
    return path


def wrk_version() -> str:
    """wrk's version line, e.g. ``wrk debian/4.1.0-3+b2 [epoll]``."""
    # `wrk --version` prints the banner and usage, and exits 1.
    completed = subprocess.run([wrk_binary(), "--version"], capture_output=True, text=True)
    return (completed.stdout or completed.stderr).splitlines()[0].split(" Copyright")[0]


def parse_report(text: str) -> WrkResult:
    """Read a ``wrk --latency`` report: req/s, the 50/75/90/99% and max latencies, errors."""
    percentiles = {
        int(match[1]): float(match[2]) * UNIT_MS[match[3]]
        for match in PERCENTILE_LINE.finditer(text)
    }
    rate = REQUESTS_PER_S.search(text)
    count = REQUEST_COUNT.search(text)
    slowest = LATENCY_MAX.search(text)
    if rate is None or count is None or set(percentiles) != {50, 75, 90, 99}:
        raise WrkError(f"unexpected wrk output (was --latency given?):\n{text}")
    # wrk prints the two error lines only when something went wrong.
    non_2xx = NON_2XX.search(text)
    socket_errors = dict.fromkeys(SOCKET_ERROR_KINDS, 0)
    socket_match = SOCKET_ERRORS.search(text)
    if socket_match is not None:
        socket_errors = dict(zip(SOCKET_ERROR_KINDS, map(int, socket_match.groups()), strict=True))
    return WrkResult(
        requests=int(count[1]),
        requests_per_s=float(rate[1]),
        p50_ms=percentiles[50],
        p75_ms=percentiles[75],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
        max_ms=float(slowest[1]) * UNIT_MS[slowest[2]] if slowest else 0.0,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=socket_errors,
    )


def run_wrk(
    url: str,
    concurrency: int,
    duration_s: int,
    script: Path | None = None,
    script_args: tuple[str, ...] = (),
) -> WrkResult:
    """Load ``url`` over ``concurrency`` keep-alive connections for ``duration_s`` seconds."""
    return parse_report(wrk_output(url, concurrency, duration_s, script, script_args))


def wrk_output(
    url: str,
    concurrency: int,
    duration_s: int,
    script: Path | None = None,
    script_args: tuple[str, ...] = (),
    timeout_s: int | None = None,
) -> str:
    """What :func:`run_wrk` runs, returned as wrk's raw report, for scripts that print more.

    ``timeout_s`` replaces wrk's 2 s request timeout, past which a response counts as a
    timeout error and is left out of the latencies.
    """
    threads = min(MAX_THREADS, concurrency)
    command = [wrk_binary(), f"-t{threads}", f"-c{concurrency}", f"-d{duration_s}s", "--latency"]
    if timeout_s is not None:
        command.append(f"--timeout={timeout_s}s")
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    return run_load_tool("wrk", command, duration_s)


def run_load_tool(tool: str, command: list[str], duration_s: int) -> str:
    """What a load tool's ``command``, running for ``duration_s`` seconds, printed; WrkError
    when it stalls or fails."""
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=duration_s + EXIT_GRACE_S
        )
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"{tool} did not finish: {' '.join(command)}") from exc
    if completed.returncode != 0:
        raise WrkError(f"{tool} exited with {completed.returncode}:\n{completed.stderr}")
    return completed.stdout
