"""The ``context`` object handed to handlers, with TorchServe 0.12's attributes and methods.

The method signatures keep TorchServe's inconsistent argument orders on purpose: existing
handlers call them positionally. Beyond TorchServe's: ``send_part`` and ``is_cancelled``, for
handlers that answer in parts (docs/streaming.md).
"""

from __future__ import annotations

from typing import Any, Protocol


class PartStream(Protocol):
    """Where a handler's parts go: the worker's channel to the frontend."""

    def send(self, index: int, output: Any) -> bool:
        """Send ``output`` as one part of request ``index``'s answer; False when cancelled."""

    def cancelled(self, index: int) -> bool:
        """Whether request ``index`` was cancelled."""

    def answer_empty(self, index: int) -> None:
        """Request ``index``'s answer is nothing at all unless it got parts."""


class NoPartStream:
    """Outside a worker (a handler called by a test): no parts, nothing cancelled."""

    def send(self, index: int, output: Any) -> bool:
        """Refuse: parts travel only from a worker."""
        raise RuntimeError("parts of an answer can only be sent from a modelserve worker")

    def cancelled(self, index: int) -> bool:
        """Nothing is ever cancelled here."""
        return False

    def answer_empty(self, index: int) -> None:
        """Refuse: an empty answer travels only from a worker."""
        raise RuntimeError("an empty answer can only be sent from a modelserve worker")


class RequestProcessor:
    """Per-request headers in, and status and headers out."""

    def __init__(self, request_header: dict[str, Any]) -> None:
        self._request_header = request_header
        self._status_code = 200
        self._reason_phrase = ""
        self._response_header: dict[str, str] = {}

    def get_request_property(self, key: str) -> Any:
        """A request header (or frontend-added property) by name, None when absent.

        HTTP header names arrive lower-cased; handlers written for TorchServe often ask for
        ``Content-Type``, so an exact miss retries in lower case.
        """
        value = self._request_header.get(key)
        if value is None and isinstance(key, str):
            value = self._request_header.get(key.lower())
        return value

    def get_request_properties(self) -> dict[str, Any]:
        """All request headers."""
        return self._request_header

    def report_status(self, code: int, reason_phrase: str | None = None) -> None:
        """Set this request's HTTP status."""
        self._status_code = code
        self._reason_phrase = reason_phrase or ""

    def get_response_status_code(self) -> int:
        """This request's HTTP status."""
        return self._status_code

    def get_response_status_phrase(self) -> str:
        """This request's reason phrase."""
        return self._reason_phrase

    def add_response_property(self, key: str, value: str) -> None:
        """Add a response header."""
        self._response_header[key] = value

    def get_response_headers(self) -> dict[str, str]:
        """All response headers set so far."""
        return self._response_header

    def get_response_header(self, key: str) -> str | None:
        """One response header, None when unset."""
        return self._response_header.get(key)


class Context:
    """What a handler knows about its model, its worker and the batch in hand."""

    def __init__(
        self,
        model_name: str,
        model_dir: str,
        manifest: dict[str, Any] | None,
        batch_size: int,
        gpu: int | None,
        server_version: str,
        model_yaml_config: dict[str, Any] | None = None,
        worker_id: str = "",
        server_url: str = "",
        server_token: str = "",
    ) -> None:
        self.model_name = model_name
        self.manifest = manifest
        self.system_properties: dict[str, Any] = {
            "model_dir": model_dir,
            "gpu_id": gpu,
            "batch_size": batch_size,
            "server_name": "MMS",
            "server_version": server_version,
            "limit_max_image_pixels": True,
            # modelserve's own: the worker, and how its model reaches the server (BLS).
            "worker_id": worker_id,
            "server_url": server_url,
            "server_token": server_token,
        }
        self.request_ids: dict[int, str] = {}
        self.request_processor: list[RequestProcessor] = []
        self.metrics: Any = None
        self.model_yaml_config: dict[str, Any] = model_yaml_config or {}
        self.stopping_criteria = None
        self.parts: PartStream = NoPartStream()

    def start_batch(self, request_ids: list[str], headers: list[dict[str, Any]]) -> None:
        """Reset the per-request state for a new batch."""
        self.request_ids = dict(enumerate(request_ids))
        self.request_processor = [RequestProcessor(header) for header in headers]

    def get_request_id(self, idx: int = 0) -> str | None:
        """The id of request ``idx`` of the batch."""
        return self.request_ids.get(idx)

    def get_request_header(self, idx: int, key: str) -> Any:
        """Header ``key`` of request ``idx``."""
        return self.request_processor[idx].get_request_property(key)

    def get_all_request_header(self, idx: int) -> dict[str, Any]:
        """All headers of request ``idx``."""
        return self.request_processor[idx].get_request_properties()

    def set_response_content_type(self, idx: int, value: str) -> None:
        """Set the Content-Type of response ``idx``."""
        self.set_response_header(idx, "content-type", value)

    def get_response_content_type(self, idx: int) -> str | None:
        """The Content-Type set for response ``idx``."""
        return self.get_response_headers(idx).get("content-type")

    def get_response_status(self, idx: int) -> tuple[int, str]:
        """The status code and phrase of response ``idx``."""
        processor = self.request_processor[idx]
        return processor.get_response_status_code(), processor.get_response_status_phrase()

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        """Set the status of response ``idx`` without failing the rest of the batch."""
        self.request_processor[idx].report_status(code, phrase)

    def set_all_response_status(self, code: int = 200, phrase: str = "") -> None:
        """Set the status of every response of the batch."""
        for processor in self.request_processor:
            processor.report_status(code, phrase)

    def get_response_headers(self, idx: int) -> dict[str, str]:
        """The response headers of request ``idx``."""
        return self.request_processor[idx].get_response_headers()

    def set_response_header(self, idx: int, key: str, value: str) -> None:
        """Add a header to response ``idx``."""
        self.request_processor[idx].add_response_property(key, value)

    def send_part(self, idx: int, output: Any) -> bool:
        """Send ``output`` to request ``idx``'s client now, as one part of its answer, with the
        status and headers set for that request so far; the handler's return value (or, for
        a generator, nothing) ends the answer.

        Blocks while the client is ``stream_window`` parts behind. Returns False when the
        request was cancelled (the part is dropped); raises ``StreamCancelled`` when every
        request of the batch was.
        """
        return self.parts.send(idx, output)

    def answer_empty(self, idx: int) -> None:
        """Request ``idx`` gets no response at all unless parts were sent to it (a Triton
        decoupled model that sends only the FINAL flag): the handler returns ``None`` for it,
        and a streaming client gets an empty stream (any other client, an empty 204)."""
        self.parts.answer_empty(idx)

    def is_cancelled(self, idx: int = 0) -> bool:
        """Whether request ``idx``'s client went away (or its stream timed out): the handler
        may stop working on it. Cheap enough to ask between any two steps."""
        return self.parts.cancelled(idx)

    def get_sequence_id(self, idx: int) -> str | None:
        """The sequence id of request ``idx`` (stateful models), None otherwise."""
        return self.get_request_header(idx, "ts_request_sequence_id")
