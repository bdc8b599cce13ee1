"""A stand-in for a model on an accelerator: every batch costs the same time, whatever its size.

A GPU runs a batch of 8 in about the time it runs a batch of 1, so what a server gains by
batching there is the number of batches. This handler sleeps (no CPU used, so the frontend and
wrk keep the cores) for ``batch_ms`` per batch. With ``shared_device`` the workers of one model
take turns, holding an exclusive ``flock`` on a file in the model's directory while they
"compute": that is what one GPU shared by several worker processes does (kernels of different
processes do not overlap without MPS). Without it each worker has a device of its own.

Settings come from the archive's model-config.yaml, ``handler:`` section: ``batch_ms`` (default
10), ``shared_device`` (default true) and ``batch_log``, a file to which each batch appends its
size as one line, so a benchmark can tell how full the batches were.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import Any

LOCK_FILE = "device.lock"

_state: dict[str, Any] = {}


def _initialise(context: Any) -> None:
    settings = context.model_yaml_config.get("handler", {})
    _state["batch_s"] = float(settings.get("batch_ms", 10)) / 1000
    _state["lock"] = None
    if settings.get("shared_device", True):
        lock_path = Path(context.system_properties["model_dir"]) / LOCK_FILE
        _state["lock"] = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    log = settings.get("batch_log")
    _state["log"] = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if log else None


def _compute(batch_s: float, lock: int | None) -> None:
    if lock is None:
        time.sleep(batch_s)
        return
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        time.sleep(batch_s)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[bytes] | None:
    """Spend one batch's device time, then answer each request with the batch's size."""
    if "batch_s" not in _state:
        _initialise(context)
    if data is None:
        return None
    _compute(_state["batch_s"], _state["lock"])
    size = b"%d" % len(data)
    if _state["log"] is not None:
        os.write(_state["log"], size + b"\n")  # one O_APPEND write: lines never interleave
    return [size] * len(data)
