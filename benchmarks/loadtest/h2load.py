"""Unary gRPC load from h2load (nghttp2's C load generator), wrk's counterpart for gRPC.

A unary gRPC call is an HTTP/2 POST of one length-prefixed protobuf message with two headers,
so h2load drives it over h2c when its body file holds that frame (:func:`grpc_body`). h2load
checks HTTP statuses only, not the ``grpc-status`` trailer: callers check one call with the
real client first (a wrong request fails there, not silently as 200s). Latency percentiles
come from h2load's per-request log, which it writes as tab-separated microseconds.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from loadtest.wrk import MAX_THREADS, WrkError, WrkResult, run_load_tool

GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")
# "requests: 1000 total, 1000 started, 1000 done, 998 succeeded, 2 failed, 0 errored, 0 timeout"
REQUESTS_LINE = re.compile(
    r"^requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout",
    re.MULTILINE,
)
# "finished in 10.00s, 4567.80 req/s, 1.23MB/s"
FINISHED_LINE = re.compile(r"^finished in [\d.]+m?s, ([\d.]+) req/s", re.MULTILINE)


def h2load_binary() -> str:
    """The path of ``h2load``; raises WrkError when it is not installed."""
    path = shutil.which("h2load")
    if path is None:
        raise WrkError("h2load is not on PATH (Debian/Ubuntu: apt-get install nghttp2-client)")
    return path


def grpc_body(message: bytes) -> bytes:
    """A serialized message as a gRPC request body: not compressed (0), its length (4 bytes),
    itself."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def _durations_ms(log_text: str) -> list[float]:
    """The latencies (ms, sorted) in h2load's per-request log: start µs, status, duration µs."""
    return sorted(int(line.split("\t")[2]) / 1000 for line in log_text.splitlines() if line)


def _percentile(durations_ms: list[float], p: int) -> float:
    if not durations_ms:
        return float("nan")
    return durations_ms[min(len(durations_ms) - 1, len(durations_ms) * p // 100)]


def parse_report(text: str, log_text: str) -> WrkResult:
    """Read h2load's report and per-request log as a :class:`WrkResult`."""
    counts, rate = REQUESTS_LINE.search(text), FINISHED_LINE.search(text)
    if counts is None or rate is None:
        raise WrkError(f"unexpected h2load output:\n{text}")
    done, succeeded, failed, errored, timeout = map(int, counts.groups()[1:])
    durations = _durations_ms(log_text)
    return WrkResult(
        requests=succeeded + failed,  # as wrk counts: every answer, non-2xx ones too
        requests_per_s=float(rate[1]),
        p50_ms=_percentile(durations, 50),
        p75_ms=_percentile(durations, 75),
        p90_ms=_percentile(durations, 90),
        p99_ms=_percentile(durations, 99),
        max_ms=durations[-1] if durations else 0.0,
        non_2xx=failed,
        socket_errors={
            "errored": errored,
            "timeout": timeout,
            "unfinished": done - succeeded - failed,
        },
    )


def run_h2load(url: str, body_file: Path, concurrency: int, duration_s: int) -> WrkResult:
    """Unary gRPC calls to ``url`` (``http://host:port/package.Service/Method``), the body
    from ``body_file``, over ``concurrency`` h2c connections with one call in flight each
    (as wrk's keep-alive connections), for ``duration_s`` seconds."""
    threads = min(MAX_THREADS, concurrency)
    with tempfile.TemporaryDirectory(prefix="h2load-") as scratch:
        log_file = Path(scratch) / "requests.tsv"
        command = [h2load_binary(), f"-t{threads}", f"-c{concurrency}", "-m1"]
        command += [f"-D{duration_s}", "-d", str(body_file), f"--log-file={log_file}"]
        for header in GRPC_HEADERS:
            command += ["-H", header]
        command.append(url)
        report = run_load_tool("h2load", command, duration_s)
        log_text = log_file.read_text() if log_file.is_file() else ""
    return parse_report(report, log_text)
