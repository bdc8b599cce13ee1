"""Answers in parts: the streaming example (examples/streaming/tokens.py) through every
streaming protocol, and many streams at once.

    python benchmarks/run_streaming.py [--pieces N] [--delay S] [--streams N] [--rounds N]
                                       [--out DIR] [--smoke]

* **Time to first piece against total time**, per protocol (``/predictions`` chunked,
  ``generate_stream`` server-sent events, gRPC ``StreamPredictions`` and
  ``StreamPredictions2``): one stream of ``--pieces`` pieces, one every ``--delay`` seconds.
  Streaming works when the first piece comes after about one delay, not after all of them.
* **Many streams at once**: ``--streams`` concurrent ``/predictions`` streams of 50 pieces
  (batches of up to 25 on two workers), each checked piece by piece (none lost, none twice,
  in order), with the frontend's resident memory before, at its peak during, and after.

Medians of ``--rounds`` rounds. Writes ``<out>/<date>-<host>-streaming.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import psutil
from loadtest import BENCH_DIR, REPO_ROOT
from loadtest import server as serving
from loadtest.environment import describe_environment
from loadtest.options import add_rounds_option
from loadtest.report import write_named
from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions

from modelserve.grpc.proto import inference_pb2, inference_pb2_grpc

EXAMPLE = REPO_ROOT / "examples" / "streaming" / "tokens.py"
PIECE = re.compile(rb"token (\d+) of \d+\n")
LOAD_PIECES = 50
LOAD_BATCH_SIZE = 25
LOAD_WORKERS = 2
RSS_SAMPLE_S = 0.02
TIMEOUT_S = 300


class Clients:
    """One HTTP client and one gRPC channel to the server, made once: the timings are the
    server's, not a client's start-up."""

    def __init__(self, server: serving.Server) -> None:
        self.inference = server.inference
        self.http = httpx.Client(timeout=TIMEOUT_S)
        self._channel = grpc.insecure_channel(server.grpc_inference)
        self.grpc = inference_pb2_grpc.InferenceAPIsServiceStub(self._channel)

    def close(self) -> None:
        self.http.close()
        self._channel.close()


def progress(message: str) -> None:
    print(f"[run_streaming] {message}", file=sys.stderr, flush=True)


def predictions(clients: Clients, body: dict) -> Iterator[bytes]:
    url = f"{clients.inference}/predictions/tokens"
    with clients.http.stream("POST", url, json=body) as response:
        yield from _pieces(response.iter_raw())


def generate_stream(clients: Clients, body: dict) -> Iterator[bytes]:
    url = f"{clients.inference}/v2/models/tokens/generate_stream"
    with clients.http.stream("POST", url, json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                yield json.loads(line.removeprefix("data: "))["text_output"].encode()


def _request(body: dict, sequence: str | None = None) -> inference_pb2.PredictionsRequest:
    data = json.dumps(body).encode()
    return inference_pb2.PredictionsRequest(
        model_name="tokens", input={"data": data}, sequence_id=sequence
    )


def stream_predictions(clients: Clients, body: dict) -> Iterator[bytes]:
    for reply in clients.grpc.StreamPredictions(_request(body), timeout=TIMEOUT_S):
        yield reply.prediction


def stream_predictions2(clients: Clients, body: dict) -> Iterator[bytes]:
    for reply in clients.grpc.StreamPredictions2(iter([_request(body, "s")]), timeout=TIMEOUT_S):
        yield reply.prediction


# Protocol label -> one stream's pieces as they arrive.
PROTOCOLS: dict[str, Callable[[Clients, dict], Iterator[bytes]]] = {
    "/predictions (chunked)": predictions,
    "generate_stream (SSE)": generate_stream,
    "gRPC StreamPredictions": stream_predictions,
    "gRPC StreamPredictions2": stream_predictions2,
}


def _pieces(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Whole pieces out of a byte stream (a chunk may hold several, or part of one)."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        while b"\n" in pending:
            piece, pending = pending.split(b"\n", 1)
            yield piece + b"\n"


def _numbers(text: bytes) -> list[int]:
    """The piece numbers in ``text``, in order; none when anything else is in it."""
    matches = list(PIECE.finditer(text))
    if sum(len(match.group(0)) for match in matches) != len(text):
        return []
    return [int(match.group(1)) for match in matches]


def first_and_total(
    clients: Clients,
    stream: Callable[[Clients, dict], Iterator[bytes]],
    pieces: int,
    delay_s: float,
) -> dict:
    """Seconds to the first piece and to the last, for one stream; fails on a lost piece."""
    started = time.perf_counter()
    first = None
    received = []
    for piece in stream(clients, {"pieces": pieces, "delay": delay_s}):
        if first is None:
            first = time.perf_counter() - started
        received.append(piece)
    total = time.perf_counter() - started
    if _numbers(b"".join(received)) != list(range(1, pieces + 1)):
        raise serving.ServerError(f"pieces lost or out of order: {received[:5]}…")
    return {"first_s": first, "total_s": total}


async def _load_stream(client: httpx.AsyncClient, url: str) -> list[int]:
    async with client.stream("POST", url, json={"pieces": LOAD_PIECES, "delay": 0.001}) as answer:
        return _numbers(b"".join([chunk async for chunk in answer.aiter_raw()]))


async def _many(server: serving.Server, streams: int) -> list[list[int]]:
    limits = httpx.Limits(max_connections=streams)
    async with httpx.AsyncClient(limits=limits, timeout=TIMEOUT_S) as client:
        url = f"{server.inference}/predictions/many"
        return await asyncio.gather(*(_load_stream(client, url) for _ in range(streams)))


def many_streams(server: serving.Server, streams: int) -> dict:
    """``streams`` concurrent streams: time, pieces checked, frontend RSS before/peak/after."""
    frontend = psutil.Process(server.process.pid)
    before = frontend.memory_info().rss
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(RSS_SAMPLE_S):
            peak = max(peak, frontend.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        received = asyncio.run(_many(server, streams))
    finally:
        done.set()
        sampler.join()
    elapsed = time.perf_counter() - started
    complete = sum(numbers == list(range(1, LOAD_PIECES + 1)) for numbers in received)
    return {
        "streams": streams,
        "complete": complete,
        "seconds": elapsed,
        "pieces_per_s": streams * LOAD_PIECES / elapsed,
        "rss_before_mb": before / 2**20,
        "rss_peak_mb": peak / 2**20,
        "rss_after_mb": frontend.memory_info().rss / 2**20,
    }


def measure(scratch: Path, pieces: int, delay_s: float, streams: int, rounds: int) -> dict:
    store = scratch / "model_store"
    build_archive(
        ArchiveOptions(
            model_name="tokens",
            version="1.0",
            handler=str(EXAMPLE),
            export_path=store,
            force=True,
        )
    )
    with serving.running_server(scratch / "server", store) as server:
        serving.register(server, "tokens.mar", batch_size=1, max_batch_delay_ms=0)
        serving.register(
            server,
            "tokens.mar",
            batch_size=LOAD_BATCH_SIZE,
            max_batch_delay_ms=50,
            workers=LOAD_WORKERS,
            name="many",
        )
        serving.wait_healthy(server)
        latency: dict[str, dict] = {}
        clients = Clients(server)
        try:
            for label, stream in PROTOCOLS.items():
                progress(f"{label}: {rounds} x {pieces} pieces, {delay_s:g} s apart")
                first_and_total(clients, stream, 2, 0)  # warm-up: connections, first batch
                measured = [
                    first_and_total(clients, stream, pieces, delay_s) for _ in range(rounds)
                ]
                latency[label] = {
                    key: statistics.median(run[key] for run in measured)
                    for key in ("first_s", "total_s")
                }
        finally:
            clients.close()
        progress(f"{streams} concurrent streams of {LOAD_PIECES} pieces")
        many_streams(server, min(streams, 10))  # warm-up
        load = [many_streams(server, streams) for _ in range(rounds)]
    return {"latency": latency, "load": load}


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        f"## Streaming ({env.get('date', '')}, {env.get('host', '')})",
        "",
        f"One stream of {report['pieces']} pieces, one every {report['delay_s']:g} s "
        f"(examples/streaming/tokens.py, 1 worker); medians of {report['rounds']} rounds.",
        "",
        "| protocol | first piece s | all pieces s |",
        "|---|---:|---:|",
    ]
    for label, run in report["latency"].items():
        lines.append(f"| {label} | {run['first_s']:.3f} | {run['total_s']:.3f} |")
    lines += [
        "",
        f"Concurrent `/predictions` streams of {LOAD_PIECES} pieces (batches of up to "
        f"{LOAD_BATCH_SIZE}, {LOAD_WORKERS} workers): every piece checked in order.",
        "",
        "| streams | complete | s | pieces/s | frontend RSS before MB | peak MB | after MB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in report["load"]:
        lines.append(
            f"| {run['streams']} | {run['complete']} | {run['seconds']:.2f} | "
            f"{run['pieces_per_s']:,.0f} | {run['rss_before_mb']:.1f} | "
            f"{run['rss_peak_mb']:.1f} | {run['rss_after_mb']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int, help="pieces of the timed stream (default 20)")
    parser.add_argument("--delay", type=float, help="seconds between pieces (default 0.05)")
    parser.add_argument("--streams", type=int, help="concurrent streams (default 100)")
    add_rounds_option(parser, default=3)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="results folder")
    parser.add_argument("--smoke", action="store_true", help="a quick check: small and once")
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.pieces = args.pieces or (3 if smoke else 20)
    args.delay = args.delay if args.delay is not None else (0.01 if smoke else 0.05)
    args.streams = args.streams or (10 if smoke else 100)
    args.rounds = args.rounds or (1 if smoke else 3)
    if min(args.pieces, args.streams, args.rounds) < 1 or args.delay < 0:
        parser.error("--pieces, --streams and --rounds must be at least 1, --delay not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the streaming benchmark; 1 with a message when the server fails."""
    args = parse_args(argv)
    started = time.monotonic()
    try:
        environment = describe_environment(0, wrk=False)
        with tempfile.TemporaryDirectory(prefix="modelserve-streaming-") as scratch:
            measured = measure(Path(scratch), args.pieces, args.delay, args.streams, args.rounds)
    except serving.ServerError as exc:
        print(f"run_streaming: {exc}", file=sys.stderr)
        return 1
    report = {
        "environment": environment,
        "pieces": args.pieces,
        "delay_s": args.delay,
        "rounds": args.rounds,
        **measured,
    }
    text = markdown(report)
    stem = write_named(args.out, "streaming", report, text)
    print(text, flush=True)
    progress(f"wrote {stem}.md and .json in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
