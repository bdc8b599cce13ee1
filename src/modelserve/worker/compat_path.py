"""Putting a compatibility package on the worker's ``sys.path``, where user code imports it
under the name it has in the other server (``ts``, ``triton_python_backend_utils``,
``paddle_serving_server``)."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

log = logging.getLogger("modelserve.worker")


def offer_compat_module(name: str, directory: Path) -> bool:
    """Make ``import name`` resolve to the module or package of that name in ``directory``,
    unless a real one is importable (a real installation keeps precedence); returns whether
    it did."""
    if importlib.util.find_spec(name) is not None:
        return False
    # Appended, not prepended: the model's own modules and installed packages still win.
    sys.path.append(str(directory))
    log.debug("code importing %s gets modelserve's compatibility module", name)
    return True
