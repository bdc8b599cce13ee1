"""A spare worker: a worker process that does its imports first, then waits for its model.

``python -m modelserve.worker --spare`` imports what a worker for a TorchServe handler
imports before it loads a model (numpy, torch, Pillow, the BaseHandler that ``ts``
handlers subclass), as far as they are installed, prints ``wire.SPARE_READY`` and waits on its stdin
for the path of a worker spec. The frontend writes one when a pool starts a worker
(engine/spare_worker.py); the process then goes on as that worker. The end of its input (the
frontend closed it, or is gone) ends the process.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import time

from modelserve import wire

log = logging.getLogger("modelserve.worker")

# In the order a handler's import pulls them in, each one only where it is installed: the
# framework, Pillow (the image handlers decode with it) and TorchServe's BaseHandler.
WARM_MODULES = ("numpy", "torch", "PIL.Image", "modelserve_handlers.base_handler")


def warm_imports() -> list[str]:
    """Import ``WARM_MODULES``; the ones that imported. One that fails is left for the model's
    own import to report."""
    imported = []
    for name in WARM_MODULES:
        if importlib.util.find_spec(name.partition(".")[0]) is None:
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:
            log.warning("spare worker: importing %s failed: %s", name, exc)
            continue
        imported.append(name)
    return imported


def wait_for_spec() -> str | None:
    """Import, say so, then wait: the worker spec's path, or None when told nothing."""
    started = time.perf_counter()
    imported = warm_imports()
    took_ms = (time.perf_counter() - started) * 1000
    print(
        f"{wire.SPARE_READY}: imported {', '.join(imported) or 'nothing'} in {took_ms:.0f} ms",
        flush=True,
    )
    return sys.stdin.readline().strip() or None
