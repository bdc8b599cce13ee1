"""The frontend's single ZeroMQ ROUTER socket: sends batches, routes worker replies.

The socket is driven straight from the event loop (``add_reader`` on its file descriptor)
instead of through ``zmq.asyncio`` futures: one callback drains every pending message, which
keeps the per-batch cost to a couple of syscalls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import zmq

from modelserve import wire

log = logging.getLogger("modelserve.dispatcher")


# Called with each decoded header and the body frames that followed it.
MessageHandler = Callable[[dict[str, Any], list[bytes]], None]


class Dispatcher:
    """Owns the ROUTER socket that every worker process connects to."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.ROUTER)
        # Sending to a worker that is gone must fail loudly, not be dropped silently.
        self._socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(endpoint)
        self._listeners: dict[bytes, MessageHandler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = self._socket.getsockopt(zmq.FD)

    def start(self) -> None:
        """Begin receiving on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._drain)

    def attach(self, worker_id: str, handler: MessageHandler) -> None:
        """Route messages from ``worker_id`` to ``handler``."""
        self._listeners[worker_id.encode()] = handler

    def detach(self, worker_id: str) -> None:
        """Stop routing messages from ``worker_id``."""
        self._listeners.pop(worker_id.encode(), None)

    def send(self, worker_id: str, frames: list[bytes]) -> bool:
        """Send one message to a worker; False when the worker is not connected."""
        try:
            wire.send_frames(self._socket, [worker_id.encode(), *frames], wire.NOBLOCK)
        except zmq.ZMQError as exc:
            log.warning("cannot send to worker %s: %s", worker_id, exc)
            return False
        finally:
            self._rearm()
        return True

    def _rearm(self) -> None:
        # The socket's fd is edge-triggered: any operation on it may consume the readable edge,
        # so look for messages that arrived meanwhile instead of waiting for an edge that
        # will never come.
        if self._loop is not None and self._socket.getsockopt(wire.EVENTS) & wire.POLLIN:
            self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        socket = self._socket
        while socket.getsockopt(wire.EVENTS) & wire.POLLIN:
            try:
                identity, header_frame, *frames = wire.receive_frames(socket, wire.NOBLOCK)
            except zmq.Again:
                return
            listener = self._listeners.get(identity)
            if listener is None:
                log.debug("message from unknown worker %r dropped", identity)
                continue
            try:
                listener(wire.decode_header(header_frame), frames)
            except Exception:  # one bad message must not stop the receive loop
                log.exception("error handling a message from worker %r", identity)

    def close(self) -> None:
        """Stop receiving and release the socket."""
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
        self._socket.close()
        self._context.term()
