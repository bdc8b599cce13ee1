"""How a worker fails: the errors its requests get, and why it did not load."""

from __future__ import annotations

from dataclasses import dataclass

from modelserve.engine.errors import InvalidHandlerException, ServingError, WorkerLoadException

# The error type a worker reports when the handler string names nothing it can import
# (modelserve.worker.handler_loader.HandlerLoadError; the frontend does not import worker code).
HANDLER_LOAD_ERROR = "HandlerLoadError"


class WorkerTimeoutException(ServingError):
    """The worker did not answer a batch within response_timeout and was restarted."""

    status = 504


class ResponseTooLargeException(ServingError):
    """A handler's response is larger than max_response_size."""

    status = 500


@dataclass(slots=True)
class LoadFailure:
    """Why the last worker failed to load: shown by describe and registration errors."""

    error_type: str
    message: str
    traceback: str

    def summary(self) -> str:
        """``Type: message`` as a client sees it."""
        return f"{self.error_type}: {self.message}"


def load_error(failure: LoadFailure | None, exit_reason: str) -> WorkerLoadException:
    """What awaiting a worker that exited before it was ready raises: the handler's load
    failure when it reported one, else how the process ended. A handler that names nothing
    importable is the caller's mistake (400), not the server's."""
    if failure is None:
        return WorkerLoadException(exit_reason)
    if failure.error_type == HANDLER_LOAD_ERROR:
        return InvalidHandlerException(failure.summary())
    return WorkerLoadException(failure.summary())


def exit_reason(code: int | None) -> str:
    """How a worker process ended, from its exit code (None: unknown)."""
    if code is None:
        return "exited"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exited with code {code}"
