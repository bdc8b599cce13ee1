"""``ts.metrics.metric_type_enum``: counter, gauge or histogram."""

from modelserve.worker.metrics import MetricTypes

__all__ = ["MetricTypes"]
