"""``ts.handler_utils``: helpers for handler authors."""
