"""``ts.context``: the handler's ``Context`` and its per-request ``RequestProcessor``."""

from modelserve.worker.context import Context, RequestProcessor

__all__ = ["Context", "RequestProcessor"]
