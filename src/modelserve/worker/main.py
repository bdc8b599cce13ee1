"""The worker process: load one model version, then serve batches from the frontend forever.

Started by the frontend with ``python -m modelserve.worker SPEC.json`` (never forked). It
connects a DEALER socket to the frontend's ROUTER, says ``ready`` once the handler is loaded
and then answers each ``batch`` with a ``result``. It exits on ``stop``, and on its own when
the frontend process disappears, so no worker outlives its server.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import zmq

from modelserve import wire
from modelserve.wire import WorkerSpec
from modelserve.worker.paddle_compat import enable_paddle_compat
from modelserve.worker.service import ModelService
from modelserve.worker.triton_compat import enable_triton_compat
from modelserve.worker.ts_compat import enable_ts_compat

PARENT_CHECK_INTERVAL_MS = 1000
LINGER_MS = 2000

log = logging.getLogger("modelserve.worker")


def _parent_alive(parent_pid: int) -> bool:
    # Reparenting (getppid changes) is the reliable sign that the frontend died.
    return parent_pid == 0 or os.getppid() == parent_pid


def serve(spec: WorkerSpec) -> int:
    """Load the model and serve batches until told to stop; returns the exit code."""
    zmq_context = zmq.Context()
    socket = zmq_context.socket(zmq.DEALER)
    socket.setsockopt(zmq.IDENTITY, spec.worker_id.encode())
    socket.setsockopt(zmq.LINGER, LINGER_MS)
    socket.connect(spec.endpoint)
    started = time.perf_counter()
    try:
        service = ModelService(spec)
    except Exception as exc:
        log.error("failed to load the model:\n%s", traceback.format_exc())
        message = str(exc) or type(exc).__name__
        socket.send_multipart(
            wire.encode_load_failed(type(exc).__name__, message, traceback.format_exc())
        )
        socket.close()
        zmq_context.term()
        return 1
    load_ms = (time.perf_counter() - started) * 1000
    ready = wire.encode_ready(spec.worker_id, os.getpid(), load_ms, service.tensor_metadata())
    socket.send_multipart(ready)
    log.info("model %s version %s loaded in %.0f ms", spec.model_name, spec.model_version, load_ms)
    exit_code = _serve_batches(socket, service, spec.parent_pid)
    service.close()
    socket.close()
    zmq_context.term()
    return exit_code


def _serve_batches(socket: zmq.Socket, service: ModelService, parent_pid: int) -> int:
    while True:
        if not socket.poll(PARENT_CHECK_INTERVAL_MS):
            if not _parent_alive(parent_pid):
                log.warning("frontend process is gone; worker exiting")
                return 0
            continue
        header, frames = _receive(socket)
        if header["k"] == wire.STOP:
            return 0
        if header["k"] != wire.BATCH:
            log.error("ignoring unexpected message kind %r", header["k"])
            continue
        outcome, telemetry = service.predict(wire.decode_batch(header, frames))
        if isinstance(outcome, wire.BatchError):
            socket.send_multipart(wire.encode_batch_error(header["id"], outcome, telemetry))
            continue
        try:
            socket.send_multipart(wire.encode_result(header["id"], outcome, telemetry), copy=False)
        except (TypeError, ValueError) as exc:
            # Output tensors the handler described with values the wire cannot carry (checked
            # before anything is sent): the batch fails instead of the worker.
            error = wire.BatchError(500, "InvalidModelOutput", f"the handler's answer: {exc}")
            socket.send_multipart(wire.encode_batch_error(header["id"], error, telemetry))


def _receive(socket: zmq.Socket) -> tuple[dict[str, Any], list[wire.Buffer]]:
    """One message: its header and its other frames (as recv_multipart, at the same cost).

    A batch with tensors is received uncopied: tensor data reach the handler as writable views
    of what ZeroMQ received (numpy.frombuffer without a copy); its other values become bytes
    once, in ``decode_batch``.
    """
    header = wire.decode_header(socket.recv())
    copy = not wire.carries_tensors(header)
    frames: list[wire.Buffer] = []
    while socket.getsockopt(zmq.RCVMORE):
        frame = socket.recv(copy=copy)
        frames.append(frame if copy else frame.buffer)
    return header, frames


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m modelserve.worker SPEC.json``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m modelserve.worker SPEC.json", file=sys.stderr)
        return 2
    spec = WorkerSpec(**json.loads(Path(argv[0]).read_text()))
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        # The frontend tags each line with the model and worker id when it forwards it.
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    os.chdir(spec.model_dir)  # handlers open relative paths from the model dir, as in TorchServe
    enable_ts_compat()
    enable_triton_compat()
    enable_paddle_compat()
    return serve(spec)
