"""The worker's end of streaming: parts of the batch in hand go to the frontend as the handler
makes them, within each request's window, and the frontend's credit and cancel messages
reach the handler.

The worker loop and the handler share the one DEALER socket. ZeroMQ sockets are not thread
safe, so every use of it goes through ``ResponseChannel`` under one lock: a handler may send
parts from threads of its own (a Triton decoupled model's response sender does).

Back-pressure: each request may have ``window`` parts in flight (sent, not yet taken by its
client). A send beyond that blocks, reading the socket meanwhile, until the frontend grants
more (its client read some) or cancels the request (the client went away, or its stream
timed out: ``stream_chunk_timeout`` bounds how long a slow client can hold a send). The worker
never buffers parts itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from modelserve import wire
from modelserve.wire import Buffer, WireResponse

log = logging.getLogger("modelserve.worker")

# How long one wait for the frontend holds the lock before letting other threads at the
# socket (and before looking at whether the frontend still lives).
WAIT_SLICE_MS = 50
# Cancellations of requests the worker has not started yet (they wait in its socket behind
# the batch in hand) are kept until their batch starts; this many at most.
EARLY_CANCELS_KEPT = 1024

Message = tuple[dict[str, Any], list[Buffer]]


class StreamCancelled(Exception):
    """Every request of the batch was cancelled: nobody wants what the handler makes.

    Raised by a send when no request of the batch is left, so that a handler that never asks
    ``context.is_cancelled()`` still stops and frees its worker. The worker ends the batch
    quietly: the frontend has already answered (or forgotten) its requests.
    """


@dataclass(slots=True)
class _RequestStream:
    """What the worker knows of one request of the batch in hand."""

    request_id: str
    credit: int
    parts_sent: int = 0
    cancelled: bool = False


class ResponseChannel:
    """The worker's socket, shared by the worker loop and the handler's sends."""

    def __init__(self, socket: zmq.Socket, window: int, frontend_alive: Callable[[], bool]) -> None:
        self._socket = socket
        self._window = window
        self._frontend_alive = frontend_alive
        self._lock = threading.Lock()
        # One poller for the socket's life: Socket.poll builds and registers one per call.
        self._poller = zmq.Poller()
        self._poller.register(socket, wire.POLLIN)
        # Messages for the worker loop that arrived while a batch ran (the next batch, stop).
        self._inbox: deque[Message] = deque()
        self._early_cancels: OrderedDict[str, None] = OrderedDict()
        self._batch_id: int | None = None
        self._requests: list[_RequestStream] = []
        self._by_id: dict[str, _RequestStream] = {}

    # ----- the worker loop

    def receive(self, timeout_ms: int) -> Message | None:
        """The next message for the worker loop (a batch, stop), waiting up to ``timeout_ms``;
        None when none came. Credit and cancel messages are taken on the way."""
        deadline = time.monotonic() + timeout_ms / 1000
        while not self._inbox:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                return None
            with self._lock:  # in slices: a handler's thread may still want the socket
                if self._readable(min(remaining_ms, WAIT_SLICE_MS)):
                    message = self._read()
                    if message is not None:
                        return message
        return self._inbox.popleft()

    def send(self, frames: list[Buffer]) -> None:
        """Send a message of the worker loop (ready, result) to the frontend."""
        with self._lock:
            wire.send_frames(self._socket, frames)

    def start_batch(self, batch_id: int, request_ids: list[str]) -> None:
        """A batch begins: each request gets a full window, or starts cancelled when the
        frontend cancelled it while it waited."""
        with self._lock:
            self._batch_id = batch_id
            self._requests = [
                _RequestStream(request_id, self._window) for request_id in request_ids
            ]
            self._by_id = {stream.request_id: stream for stream in self._requests}
            for stream in self._requests:
                if stream.request_id in self._early_cancels:
                    del self._early_cancels[stream.request_id]
                    stream.cancelled = True

    def end_batch(self) -> None:
        """The batch is answered: a part sent for it now is an error."""
        with self._lock:
            self._batch_id = None
            self._requests = []
            self._by_id = {}

    def parts_sent(self, index: int) -> int:
        """How many parts request ``index`` of the batch got so far."""
        return self._requests[index].parts_sent

    # ----- the handler's side

    def send_part(self, index: int, response: WireResponse) -> bool:
        """Send one part of request ``index``'s answer now; False when the request was
        cancelled (the part is dropped). Blocks while the request's window is used up (other
        threads may send meanwhile). Parts must be sent before the batch is answered.

        Raises ``StreamCancelled`` when every request of the batch has been cancelled.
        """
        while True:
            with self._lock:
                if self._batch_id is None:
                    raise RuntimeError("a part was sent outside of a batch (after its answer)")
                stream = self._requests[index]
                if stream.cancelled:
                    self._stop_if_all_cancelled()
                    return False
                if stream.credit > 0:
                    frames = wire.encode_part(self._batch_id, index, stream.request_id, response)
                    wire.send_frames(self._socket, frames)
                    stream.credit -= 1
                    stream.parts_sent += 1
                    return True
                self._wait()

    def is_cancelled(self, index: int) -> bool:
        """Whether request ``index`` was cancelled; reads what the frontend said meanwhile,
        without waiting."""
        with self._lock:
            self._read_pending()
            return self._requests[index].cancelled

    def all_cancelled(self) -> bool:
        """Whether every request of the batch was cancelled (reads as ``is_cancelled``)."""
        with self._lock:
            self._read_pending()
            return bool(self._requests) and all(stream.cancelled for stream in self._requests)

    # ----- internals (called with the lock held)

    def _readable(self, timeout_ms: int) -> bool:
        """Whether a message waits, within ``timeout_ms``; one already there is seen without
        a poll (under load the next batch usually is)."""
        if self._socket.getsockopt(wire.EVENTS) & wire.POLLIN:
            return True
        return bool(timeout_ms) and bool(self._poller.poll(timeout_ms))

    def _read_pending(self) -> None:
        """Take every message that has arrived, without waiting."""
        while self._readable(0):
            message = self._read()
            if message is not None:
                self._inbox.append(message)

    def _wait(self) -> None:
        """Read one message from the frontend, waiting a slice at most."""
        if self._readable(WAIT_SLICE_MS):
            message = self._read()
            if message is not None:
                self._inbox.append(message)
        elif not self._frontend_alive():
            raise StreamCancelled("the frontend is gone")

    def _stop_if_all_cancelled(self) -> None:
        if all(stream.cancelled for stream in self._requests):
            raise StreamCancelled("every request of the batch was cancelled")

    def _read(self) -> Message | None:
        """Receive one message; credit and cancel are applied here (None), anything else is
        returned for the worker loop.

        A batch with tensors is received uncopied: tensor data reach the handler as writable
        views of what ZeroMQ received (numpy.frombuffer without a copy); its other values
        become bytes once, in ``decode_batch``.
        """
        socket = self._socket
        header = wire.decode_header(socket.recv())
        copy = not wire.carries_tensors(header)
        frames: list[Buffer] = []
        while socket.getsockopt(wire.RCVMORE):
            frame = socket.recv(copy=copy)
            frames.append(frame if copy else frame.buffer)
        kind = header["k"]
        if kind == wire.CREDIT:
            stream = self._by_id.get(header["rid"])
            if stream is not None:
                stream.credit += header["n"]
            return None
        if kind == wire.CANCEL:
            self._cancel(header["rid"])
            return None
        return header, frames

    def _cancel(self, request_id: str) -> None:
        stream = self._by_id.get(request_id)
        if stream is not None:
            if not stream.cancelled:
                log.info("request %s was cancelled by the frontend", request_id)
            stream.cancelled = True
            return
        # A request of a batch still waiting in the socket (the frontend sends a worker its
        # next batch before the current one ends).
        self._early_cancels[request_id] = None
        while len(self._early_cancels) > EARLY_CANCELS_KEPT:
            self._early_cancels.popitem(last=False)
