"""An HTTP load generator in Python, for machines without wrk, that reports its own cost.

``concurrency`` coroutines on one httpx client (a keep-alive connection each), each POSTing the
body again as soon as its last request is answered, for ``duration_s`` seconds, through the
same loop as :mod:`loadtest.grpc_load`. Run in its own process (``python -m
loadtest.http_load``), it prints one JSON object: that loop's numbers plus ``client_cpu``, the
share of one core the generator itself used. Near 1.0 the generator, not the server, is the
ceiling of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx

from loadtest.grpc_load import load_calls, run_generator

REQUEST_TIMEOUT_S = 60


class NotAnswered(Exception):
    """A response other than 200: counted as an error."""


async def run(
    url: str, body: bytes, content_type: str, concurrency: int, duration_s: float
) -> dict[str, object]:
    """Load ``url`` with POSTs of ``body``; the load loop's numbers and ``client_cpu``."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Content-Type": content_type}
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as client:

        async def post() -> None:
            response = await client.post(url, content=body, headers=headers)
            if response.status_code != 200:
                raise NotAnswered(response.status_code)

        started, cpu_started = time.perf_counter(), time.process_time()
        result = await load_calls(post, concurrency, duration_s, (httpx.HTTPError, NotAnswered))
        cpu = (time.process_time() - cpu_started) / (time.perf_counter() - started)
    return {**result, "client_cpu": cpu}


def run_in_subprocess(
    url: str, body_file: Path, content_type: str, concurrency: int, duration_s: float
) -> dict[str, object]:
    """:func:`run`'s result from this module run in its own process, so that the client does
    not share the caller's interpreter; WrkError when it fails."""
    arguments = [url, str(body_file), content_type, str(concurrency), str(duration_s)]
    return run_generator("http_load", arguments, duration_s)


def main() -> None:
    """``python -m loadtest.http_load URL BODY_FILE CONTENT_TYPE CONCURRENCY DURATION``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("body_file", type=Path)
    parser.add_argument("content_type")
    parser.add_argument("concurrency", type=int)
    parser.add_argument("duration", type=float)
    args = parser.parse_args()
    body = args.body_file.read_bytes()
    result = asyncio.run(run(args.url, body, args.content_type, args.concurrency, args.duration))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
