"""The worker process: load one model version, then serve batches from the frontend forever.

Started by the frontend with ``python -m modelserve.worker SPEC.json`` (never forked). It
connects a DEALER socket to the frontend's ROUTER, says ``ready`` once the handler is loaded
and then answers each ``batch`` with a ``result``. It exits on ``stop``, and on its own when
the frontend process disappears, so no worker outlives its server.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path

import zmq

from modelserve import wire
from modelserve.allocator import reuse_freed_buffers
from modelserve.wire import WorkerSpec
from modelserve.worker.paddle_compat import enable_paddle_compat
from modelserve.worker.service import ModelService
from modelserve.worker.spare import wait_for_spec
from modelserve.worker.streaming import ResponseChannel
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
    channel = ResponseChannel(
        socket, spec.stream_window, functools.partial(_parent_alive, spec.parent_pid)
    )
    started = time.perf_counter()
    try:
        service = ModelService(spec, channel)
    except Exception as exc:
        log.error("failed to load the model:\n%s", traceback.format_exc())
        message = str(exc) or type(exc).__name__
        channel.send(wire.encode_load_failed(type(exc).__name__, message, traceback.format_exc()))
        socket.close()
        zmq_context.term()
        return 1
    load_ms = (time.perf_counter() - started) * 1000
    channel.send(wire.encode_ready(spec.worker_id, os.getpid(), load_ms, service.tensor_metadata()))
    log.info("model %s version %s loaded in %.0f ms", spec.model_name, spec.model_version, load_ms)
    exit_code = _serve_batches(channel, service, spec.parent_pid)
    service.close()
    socket.close()
    zmq_context.term()
    return exit_code


def _serve_batches(channel: ResponseChannel, service: ModelService, parent_pid: int) -> int:
    while True:
        message = channel.receive(PARENT_CHECK_INTERVAL_MS)
        if message is None:
            if not _parent_alive(parent_pid):
                log.warning("frontend process is gone; worker exiting")
                return 0
            continue
        header, frames = message
        if header["k"] == wire.STOP:
            return 0
        if header["k"] != wire.BATCH:
            log.error("ignoring unexpected message kind %r", header["k"])
            continue
        requests = wire.decode_batch(header, frames)
        channel.start_batch(header["id"], [request.request_id for request in requests])
        outcome, telemetry = service.predict(requests)
        channel.end_batch()
        if isinstance(outcome, wire.BatchError):
            channel.send(wire.encode_batch_error(header["id"], outcome, telemetry))
            continue
        try:
            channel.send(wire.encode_result(header["id"], outcome, telemetry))
        except (TypeError, ValueError) as exc:
            # Output tensors the handler described with values the wire cannot carry (checked
            # before anything is sent): the batch fails instead of the worker.
            error = wire.BatchError(500, "InvalidModelOutput", f"the handler's answer: {exc}")
            channel.send(wire.encode_batch_error(header["id"], error, telemetry))


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m modelserve.worker SPEC.json``, or ``--spare``: import first,
    then read the spec's path from stdin (worker/spare.py)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f"usage: python -m modelserve.worker SPEC.json | {wire.SPARE_FLAG}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        # The frontend tags each line with the model and worker id when it forwards it.
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    spare = argv[0] == wire.SPARE_FLAG
    spec_path = wait_for_spec() if spare else argv[0]
    if spec_path is None:
        return 0
    spec = WorkerSpec(**json.loads(Path(spec_path).read_text()))
    if spec.reuse_large_buffers:
        # A spare sets it here too: the setting only shapes what is freed from now on.
        reuse_freed_buffers()
    os.chdir(spec.model_dir)  # handlers open relative paths from the model dir, as in TorchServe
    if spare:
        # Where ``python -m`` started in the model dir would have put it: first on sys.path.
        sys.path[0] = spec.model_dir
    enable_ts_compat()
    enable_triton_compat()
    enable_paddle_compat()
    return serve(spec)
