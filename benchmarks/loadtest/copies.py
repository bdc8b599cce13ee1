"""What the copies of a request body cost, each timed alone on the real body.

Between the socket and the worker's numpy array a body is copied by the HTTP layer (uvicorn
gathers it in a ``bytearray`` and hands the app ``bytes`` of it; Starlette joins the
pieces), by the multipart parser (a form part goes through a ``SpooledTemporaryFile``), by
ZeroMQ on the way to the worker (the frontend sends its ``bytes`` without a copy; the worker
receives a body as ``bytes``, tensor data as views) and by the handler's decoding. A load run
cannot tell a copy of 600 KB from noise next to a CNN's 50 ms per image, so each step is
timed here on its own, in the benchmark's process, with the body the load run sends: the
median over many repetitions.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from starlette.requests import Request

REPETITIONS = 200
# Rounds of REPETITIONS; the median round is reported, so a busy moment of the machine is not.
ROUNDS = 5
US_PER_S = 1e6


def median_us(call: Callable[[], Any], repetitions: int = REPETITIONS) -> float:
    """The median over ``ROUNDS`` rounds of the mean time of one ``call()``, in us."""
    call()
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(repetitions):
            call()
        rounds.append((time.perf_counter() - started) * US_PER_S / repetitions)
    return statistics.median(rounds)


def copy_us(body: bytes) -> float:
    """One copy of ``body`` (``bytes`` of a view: a single memcpy)."""
    view = memoryview(body)
    return median_us(lambda: bytes(view))


def multipart_parse_us(body: bytes, content_type: str) -> float:
    """Starlette's form parsing of a ``multipart/form-data`` body and reading its file part,
    as the inference route does: from the ASGI body message to the part's ``bytes``."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-type", content_type.encode())],
    }

    async def parse_many() -> None:
        for _ in range(REPETITIONS):
            sent = False

            async def receive() -> dict[str, Any]:
                nonlocal sent
                if sent:
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            async with Request(scope, receive).form() as form:
                for _name, value in form.multi_items():
                    if not isinstance(value, str):
                        await value.read()

    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        asyncio.run(parse_many())
        rounds.append((time.perf_counter() - started) * US_PER_S / REPETITIONS)
    return statistics.median(rounds)


def zmq_transfer_us(body: bytes, copy: bool) -> float:
    """One frame of ``body`` from a socket to another over ``ipc://`` as the frontend sends it
    (``copy=False``), received as ``bytes`` (``copy=True``, what a worker does with a body)
    or as a view (``copy=False``, what it does with tensor data)."""
    context = zmq.Context()
    with tempfile.TemporaryDirectory(prefix="modelserve-copies-") as scratch:
        endpoint = f"ipc://{Path(scratch) / 'pair'}"
        sender, receiver = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
        try:
            receiver.bind(endpoint)
            sender.connect(endpoint)

            def transfer() -> None:
                sender.send(body, copy=False)
                frame = receiver.recv(copy=copy)
                if not copy:
                    memoryview(frame.buffer)

            return median_us(transfer)
        finally:
            sender.close(linger=0)
            receiver.close(linger=0)
            context.term()
