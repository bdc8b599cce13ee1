"""``ts.metrics.dimension``: a metric's (name, value) label."""

from modelserve.worker.metrics import Dimension

__all__ = ["Dimension"]
