"""``ts.metrics``: the types of the handler metrics API (``context.metrics``)."""
