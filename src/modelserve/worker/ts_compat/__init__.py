"""TorchServe's ``ts`` modules for handlers written for TorchServe, when it is not installed.

Handlers import ``ts.torch_handler.base_handler``, ``ts.context``, ``ts.utils.util`` …; the
``ts`` package in this directory ships those names as thin re-exports of modelserve's own
classes (the worker's context and metrics, the built-in handlers). It lives with the worker,
which may import the handlers, so that the handlers never import the worker. A real
TorchServe installation, when present, keeps precedence.
"""

from __future__ import annotations

from pathlib import Path

from modelserve.worker.compat_path import offer_compat_module

# The directory that holds the ``ts`` compatibility package; enable_ts_compat puts it on
# sys.path, where ``ts`` becomes a top-level package.
TS_COMPAT_DIR = Path(__file__).resolve().parent


def enable_ts_compat() -> bool:
    """Make ``import ts`` resolve to modelserve's compatibility package unless TorchServe is
    installed; returns whether it did."""
    return offer_compat_module("ts", TS_COMPAT_DIR)
