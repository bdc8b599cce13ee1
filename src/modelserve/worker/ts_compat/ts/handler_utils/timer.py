"""``ts.handler_utils.timer``: ``@timed`` per-stage timings (model config ``handler.profile``)."""

from modelserve_handlers.timing import timed

__all__ = ["timed"]
