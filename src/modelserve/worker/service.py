"""Running one batch through a loaded handler and shaping the answer for the wire."""

from __future__ import annotations

import inspect
import logging
import time
import traceback
from collections.abc import Generator
from typing import Any

from modelserve import __version__
from modelserve.protocol_contract import TensorInferResponse
from modelserve.wire import (
    BatchError,
    BatchTelemetry,
    EmptyAnswer,
    WireRequest,
    WireResponse,
    WorkerSpec,
)
from modelserve.worker.codec import encode_output, request_headers, request_row
from modelserve.worker.context import Context, NoPartStream
from modelserve.worker.handler_loader import HandleFunction, load_entry_point
from modelserve.worker.metrics import MetricsCache
from modelserve.worker.streaming import ResponseChannel, StreamCancelled

log = logging.getLogger("modelserve.worker")
# The statuses that mean "the request was wrong", not "the handler is broken".
CLIENT_ERRORS = range(400, 500)


class ModelService:
    """A loaded handler plus its Context; parts of answers go through ``channel`` (none: the
    handler cannot answer in parts)."""

    def __init__(self, spec: WorkerSpec, channel: ResponseChannel | None = None) -> None:
        self.context = Context(
            model_name=spec.model_name,
            model_dir=spec.model_dir,
            manifest=spec.manifest,
            batch_size=spec.batch_size,
            gpu=spec.gpu_id,
            server_version=__version__,
            model_yaml_config=spec.model_yaml_config,
            worker_id=spec.worker_id,
            server_url=spec.server_url,
            server_token=spec.server_token,
        )
        self.metrics = MetricsCache(spec.model_name, spec.model_metrics)
        self.context.metrics = self.metrics
        self._channel = channel
        self._requests: list[WireRequest] = []
        # Requests of the batch in hand answered with nothing at all (``context.answer_empty``).
        self._empty: set[int] = set()
        self.context.parts = self
        self._handle: HandleFunction = load_entry_point(spec.handler, spec.model_dir, self.context)

    def tensor_metadata(self) -> dict[str, Any] | None:
        """What a handler object's ``tensor_metadata()`` says of the model's tensors, if it
        has that method; a failure there is logged, never fatal to serving."""
        describe = getattr(getattr(self._handle, "__self__", None), "tensor_metadata", None)
        if not callable(describe):
            return None
        try:
            metadata = describe()
        except Exception:
            log.warning("tensor_metadata() failed:\n%s", traceback.format_exc())
            return None
        return metadata if isinstance(metadata, dict) else None

    def close(self) -> None:
        """Tell a handler object with a ``close()`` method that the worker stops (a Triton
        Python model's ``finalize()`` runs there); a failure there is logged."""
        close = getattr(getattr(self._handle, "__self__", None), "close", None)
        if not callable(close):
            return
        try:
            close()
        except Exception:
            log.warning("the handler's close() failed:\n%s", traceback.format_exc())

    def predict(
        self, requests: list[WireRequest]
    ) -> tuple[list[WireResponse | None] | BatchError, BatchTelemetry]:
        """Run the handler on a batch; returns the outcome and what was measured.

        A raised exception fails the whole batch. A handler that returns a generator answers
        in parts: each item it yields holds one part per request (None: none this time).
        """
        started = time.perf_counter()
        context = self.context
        context.start_batch(
            [request.request_id for request in requests],
            [request_headers(request) for request in requests],
        )
        self._requests = requests
        self._empty.clear()
        self.metrics.set_request_ids(context.request_ids)
        data = [request_row(request) for request in requests]
        handler_started = time.perf_counter()
        try:
            outputs = self._handle(data, context)
            if inspect.isgenerator(outputs):
                outputs = self._send_generated(outputs, len(requests))
            outcome: list[WireResponse | None] | BatchError = self._responses(outputs, requests)
        except StreamCancelled:
            # Nobody waits for this batch any more: nothing to report, nothing to log.
            outcome = BatchError(499, "StreamCancelled", "every request of the batch was cancelled")
        except InvalidModelOutput as exc:
            outcome = BatchError(500, "InvalidModelOutput", str(exc))
        except Exception as exc:  # the handler's failure is reported, never fatal to the worker
            outcome = batch_error_from(exc)
            log_batch_error(outcome, [request.request_id for request in requests])
        finished = time.perf_counter()
        self.metrics.set_request_ids(None)
        telemetry = BatchTelemetry(
            self.metrics.drain(),
            handler_ms=(finished - handler_started) * 1000,
            prediction_ms=(finished - started) * 1000,
        )
        return outcome, telemetry

    # ----- parts (context.send_part, generators)

    def send(self, index: int, output: object) -> bool:
        """Send ``output`` now as a part of request ``index``'s answer (``context.send_part``)."""
        if self._channel is None:
            return NoPartStream().send(index, output)
        return self._channel.send_part(index, self._response(index, output, self._requests))

    def answer_empty(self, index: int) -> None:
        """Request ``index``'s answer is nothing at all, if it gets no part (``None`` from the
        handler then means that, not a ``null`` answer)."""
        self._empty.add(index)

    def cancelled(self, index: int) -> bool:
        """Whether request ``index`` was cancelled (``context.is_cancelled``)."""
        return self._channel is not None and self._channel.is_cancelled(index)

    def _send_generated(self, generated: Generator[object, None, None], count: int) -> list[object]:
        """Send each item the handler's generator yields as one part per request; the batch's
        final answers are then ``None`` (the parts were the answer), or empty for a request
        that got no part."""
        try:
            for item in generated:
                if not isinstance(item, list) or len(item) != count:
                    raise InvalidModelOutput(
                        f"handler yielded {_described(item)}, expected a list of {count} "
                        "(one part per request of the batch, None for none)"
                    )
                for index, value in enumerate(item):
                    if value is not None:
                        self.send(index, value)
                if self._channel is not None and self._channel.all_cancelled():
                    raise StreamCancelled("every request of the batch was cancelled")
        finally:
            generated.close()  # a generator left early sees GeneratorExit where it stands
        return [None if self._parts_sent(index) else b"" for index in range(count)]

    # ----- answers

    def _responses(
        self, outputs: object, requests: list[WireRequest]
    ) -> list[WireResponse | None] | BatchError:
        expected = len(requests)
        if not isinstance(outputs, list):
            return BatchError(
                500,
                "InvalidModelOutput",
                f"handler returned {type(outputs).__name__}, expected a list of {expected}",
            )
        if len(outputs) != expected:
            return BatchError(
                500,
                "InvalidModelOutput",
                f"handler returned {len(outputs)} results for a batch of {expected}",
            )
        responses: list[WireResponse | None] = []
        for index, output in enumerate(outputs):
            if output is None and self._parts_sent(index):
                responses.append(None)  # its parts were the whole answer
            elif output is None and index in self._empty:
                responses.append(EmptyAnswer())
            else:
                responses.append(self._response(index, output, requests))
        return responses

    def _response(self, index: int, output: object, requests: list[WireRequest]) -> WireResponse:
        """One answer (or part) of request ``index``: ``output`` with the status and headers
        the handler set for it; raises ``InvalidModelOutput`` when it cannot be sent."""
        processor = self.context.request_processor[index]
        # A copy: parts of one request are shaped again and again from the same headers.
        headers = dict(processor.get_response_headers())
        status = processor.get_response_status_code()
        phrase = processor.get_response_status_phrase()
        if isinstance(output, TensorInferResponse):
            if requests[index].tensors is None:
                raise InvalidModelOutput(
                    f"handler answered output tensors to request {index} of the batch, "
                    "which is not a tensor request"
                )
            content_type = headers.pop("content-type", None)
            return WireResponse(status, phrase, content_type, headers, b"", output)
        try:
            body, implied_type = encode_output(output)
        except TypeError as exc:
            raise InvalidModelOutput(f"unserialisable output: {exc}") from exc
        content_type = headers.pop("content-type", None) or implied_type
        return WireResponse(status, phrase, content_type, headers, body)

    def _parts_sent(self, index: int) -> int:
        return 0 if self._channel is None else self._channel.parts_sent(index)


class InvalidModelOutput(Exception):
    """The handler's answer cannot be sent: the message says why."""


def _described(value: object) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return type(value).__name__


def log_batch_error(error: BatchError, request_ids: list[str]) -> None:
    """Log a failed batch; call it from the ``except`` block that caught the failure.

    A client error (4xx: the handler refused the input, and the client was told why) is one
    line, because a traceback per bad request would bury the server faults; anything else
    is a fault to fix, logged with its full traceback.
    """
    if error.code in CLIENT_ERRORS:
        first = request_ids[0] if request_ids else "-"
        more = f" and {len(request_ids) - 1} more" if len(request_ids) > 1 else ""
        log.info(
            "handler refused a batch of %d (request %s%s): %d %s: %s",
            len(request_ids),
            first,
            more,
            error.code,
            error.error_type,
            # One line, whatever the message holds: the log is read line by line.
            " ".join(error.message.split()),
        )
        return
    log.error("handler failed on a batch of %d:\n%s", len(request_ids), traceback.format_exc())


def batch_error_from(exc: BaseException) -> BatchError:
    """Map a handler exception to a batch error: its type and message reach the client.

    ``PredictionException`` (TorchServe) and anything else carrying an integer ``error_code``
    choose their status; MemoryError is 507 as in TorchServe; the rest is 500.
    """
    code = getattr(exc, "error_code", None)
    if isinstance(exc, MemoryError):
        code = 507
    elif not isinstance(code, int) or not 400 <= code <= 599:
        code = 500
    # TorchServe's PredictionException renders as "message : code"; its .message is the text.
    message = getattr(exc, "message", None)
    if not isinstance(message, str):
        message = str(exc) or type(exc).__name__
    return BatchError(code, type(exc).__name__, message)
