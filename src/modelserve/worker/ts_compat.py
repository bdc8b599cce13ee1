"""TorchServe's ``ts`` modules for handlers written for TorchServe, when it is not installed.

Handlers import ``ts.torch_handler.base_handler``, ``ts.context``, ``ts.utils.util`` …; the
``modelserve_handlers`` package ships those names as thin re-exports of modelserve's own
classes. A real TorchServe installation, when present, keeps precedence.
"""

from __future__ import annotations

import importlib.util
import logging
import sys

from modelserve_handlers import TS_COMPAT_DIR

log = logging.getLogger("modelserve.worker")


def enable_ts_compat() -> bool:
    """Make ``import ts`` resolve to modelserve's compatibility package unless TorchServe is
    installed; returns whether it did."""
    if importlib.util.find_spec("ts") is not None:
        return False
    # Appended, not prepended: the model's own modules and installed packages still win.
    sys.path.append(str(TS_COMPAT_DIR))
    log.debug("handlers importing ts.* get modelserve's compatibility modules")
    return True
