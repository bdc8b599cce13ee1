"""Paddle Serving's ``paddle_serving_server`` for pipeline services, when it is not installed.

A Paddle Serving ``web_service.py`` does ``from paddle_serving_server.web_service import
WebService, Op``. The package in this directory provides those names (and
``paddle_serving_server.pipeline``'s ``Op``, ``RequestOp``, ``ResponseOp`` and error codes)
on top of the standard library; it never imports modelserve, because user code loads it as a
top-level package. modelserve reads a service through what it defines (``load_service``,
``describe``, ``service_ops``), so the worker must use the very modules the user's file
sees: ``import paddle_serving_server.web_service`` after enable_paddle_compat. A real Paddle
Serving installation, when present, keeps precedence.
"""

from __future__ import annotations

from pathlib import Path

from modelserve.worker.compat_path import offer_compat_module

# The directory that holds the ``paddle_serving_server`` package; enable_paddle_compat puts
# it on sys.path, where it becomes top-level.
PADDLE_COMPAT_DIR = Path(__file__).resolve().parent


def enable_paddle_compat() -> bool:
    """Make ``import paddle_serving_server`` resolve to modelserve's compatibility package
    unless Paddle Serving is installed; returns whether it did."""
    return offer_compat_module("paddle_serving_server", PADDLE_COMPAT_DIR)
