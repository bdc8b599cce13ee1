"""Triton's ``triton_python_backend_utils`` for Python-backend models, when Triton is not installed.

A Triton Python-backend ``model.py`` does ``import triton_python_backend_utils as pb_utils``.
The module in this directory provides that name on top of numpy and the standard library; it
never imports modelserve, because user code loads it as a top-level module. modelserve talks
to it only through what it defines (``InferenceRequest.from_client``, ``set_bls_executor`` …),
so the worker must use the very module the model sees: ``import triton_python_backend_utils``
after enable_triton_compat, never ``modelserve.worker.triton_compat.triton_python_backend_utils``
(that would be a second module object with its own executor). A real Triton installation, when
present, keeps precedence.
"""

from __future__ import annotations

from pathlib import Path

from modelserve.worker.compat_path import offer_compat_module

# The directory that holds triton_python_backend_utils.py; enable_triton_compat puts it on
# sys.path, where the module becomes top-level.
TRITON_COMPAT_DIR = Path(__file__).resolve().parent


def enable_triton_compat() -> bool:
    """Make ``import triton_python_backend_utils`` resolve to modelserve's module unless a real
    one is importable; returns whether it did."""
    return offer_compat_module("triton_python_backend_utils", TRITON_COMPAT_DIR)
