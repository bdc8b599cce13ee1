"""Errors that leave the engine, each carrying TorchServe's (status code, type, message).

The ``type`` is the exception class name a TorchServe client sees in the error body.
"""

from __future__ import annotations


class ServingError(Exception):
    """Base: an error with an HTTP status, a type name and a message for the client."""

    status = 500
    headers: dict[str, str] | None = None

    def __init__(self, message: str, *, status: int | None = None, type_name: str | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.type_name = type_name or type(self).__name__


class BadRequestException(ServingError):
    """Malformed or invalid parameters."""

    status = 400


class ModelNotFoundException(ServingError):
    """No such model, or its archive cannot be found."""

    status = 404


class WorkflowNotFoundException(ServingError):
    """No workflow of that name is registered, or no workflow archive is at that url."""

    status = 404


class ServiceNotFoundException(ServingError):
    """No Paddle Serving pipeline service of that name is served."""

    status = 404


class ModelVersionNotFoundException(ServingError):
    """The model exists but not this version."""

    status = 404


class InvalidModelException(ServingError):
    """The archive or its manifest is unusable."""

    status = 400


class ModelException(ServingError):
    """The model could not be set up, e.g. its Python dependencies failed to install."""

    status = 400


class DownloadArchiveException(ServingError):
    """An allowed url could not be downloaded: the origin failed, or the file is too large."""

    status = 400


class ConflictStatusException(ServingError):
    """The model version is already registered."""

    status = 409


class InvalidModelVersionException(ServingError):
    """An operation the version's role forbids (removing the default version)."""

    status = 403


class MethodNotAllowedException(ServingError):
    """The endpoint exists but not with this method, or the API is disabled."""

    status = 405


class RequestTimeoutException(ServingError):
    """An operation did not finish in its time limit."""

    status = 408


class ServiceUnavailableException(ServingError):
    """No worker can take the request now (none running, or the queue is full)."""

    status = 503

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}


class InternalServerException(ServingError):
    """The server or a worker failed; the message says how."""

    status = 500


class WorkerDiedException(InternalServerException):
    """The worker holding the request exited or was killed."""


class WorkerLoadException(InternalServerException):
    """A worker could not load the model; the message carries the handler's error."""


class InvalidHandlerException(WorkerLoadException):
    """The handler names nothing a worker can load (no such module, class or function): the
    archive or the register call's handler override is wrong, not the server."""

    status = 400
