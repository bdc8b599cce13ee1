"""``@timed``: per-stage handler timings, on when the model config asks for them.

As in TorchServe, ``handler: {profile: true}`` in the model's yaml config makes each decorated
stage (``preprocess``, ``inference``, ``postprocess``) report ``ts_handler_<stage>`` in ms.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import torch

Method = TypeVar("Method", bound=Callable[..., Any])


def _profiling(context: Any) -> bool:
    config = getattr(context, "model_yaml_config", None) or {}
    handler_config = config.get("handler")
    return isinstance(handler_config, dict) and bool(handler_config.get("profile"))


def timed(method: Method) -> Method:
    """Decorate a handler method to report its duration when profiling is on."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        context = getattr(self, "context", None)
        if not _profiling(context):
            return method(self, *args, **kwargs)
        started = time.perf_counter()
        result = method(self, *args, **kwargs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # GPU work is asynchronous: wait for it to be timed
        elapsed_ms = (time.perf_counter() - started) * 1000
        context.metrics.add_time(f"ts_handler_{method.__name__}", elapsed_ms)
        return result

    return wrapper  # type: ignore[return-value]
