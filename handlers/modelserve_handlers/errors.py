"""Exceptions a handler raises to answer with a chosen HTTP status instead of a 500.

The worker turns any exception carrying an integer ``error_code`` into an error response
with that status and the exception's message (``modelserve.worker.service.batch_error_from``).
"""

from __future__ import annotations


class PredictionException(Exception):
    """TorchServe's way for a handler to fail its batch with a status of its choosing.

    ``str(exc)`` is the message alone (TorchServe appends `` : <code>``), because the message
    is what reaches the client.
    """

    def __init__(self, message: str, error_code: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code


class BadInputError(ValueError):
    """The request cannot be served as sent: answered 400 with this message."""

    error_code = 400
