"""Cancellation of a Triton Python model's requests, as ``InferenceRequest.is_cancelled()``
asks it of the worker."""

from __future__ import annotations

from typing import Any


class BatchCancellation:
    """The batch in hand, as its requests' ``is_cancelled()`` sees it: the client's word while
    it runs; once ``handle`` returned (``over``), every request counts as cancelled, so that a
    model's thread that sends late is dropped, never mixed into the worker's next batch."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.over = False

    def is_cancelled(self, index: int) -> bool:
        """Whether request ``index`` of the batch is cancelled."""
        return self.over or self.context.is_cancelled(index)
